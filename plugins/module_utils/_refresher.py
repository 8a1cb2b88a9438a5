# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token refresher behind the ``selfjwt-token`` command on edge hosts.

PRIVATE to the collection: do not import it from other collections.

The module ``selfjwt.kyma.token_refresher`` (which the role ``selfjwt.kyma.edge_keys`` runs)
installs this file as ``selfjwt_refresher.py`` in the refresher's library directory, beside the
collection's ``_files`` and ``_token`` module_utils and the JOSE modules they import (unchanged,
see ``_refresher_install.REFRESHER_MODULE_UTILS``) and a JSON
configuration, plus a small command that puts the library directory first on ``sys.path`` and
calls :func:`main`. The installed files need no Ansible: they import only each other and the
standard library, cryptography and PyJWT. Tokens are minted and token files kept fresh by
``_token.ensure_token_file``: the very code the ``selfjwt.kyma.jwt_token`` module runs. This
file only reads the configuration, reads the passphrase file, and prints.

Usage (what native callers run)::

    selfjwt-token            # keep the token file fresh and print the token
    selfjwt-token --json     # the same, but print facts about the token (never the token)
    selfjwt-token --quiet    # keep the token file fresh, print nothing (timer, cron)
    selfjwt-token --check --json   # tell whether a new token is due, write nothing
    selfjwt-token --force    # write a new token now

A caller that may read the token file but not the private key (a member of the token file's
group) gets the token from the file as long as it is valid; minting is left to the key's owner
(the timer or cron job). Run as root with an owner in the configuration, the refresher first
switches to that user, so the token file and its lock file always belong to the owner.

Exit status: 0 on success, 1 on an error (the message on stderr says what to do), 2 on a
usage error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import json
import os
import stat
import sys
import time

try:
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    pwd = None

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _token

PROG = "selfjwt-token"
CONFIG_VERSION = 1

#: Members of the configuration file, with their JSON types; ``None`` means "may be null".
_SECTIONS = {
    "key": {
        "path": (str,),
        "kid": (str, None),
        "algorithm": (str, None),
        "passphrase_file": (str, None),
    },
    "token": {
        "issuer": (str,),
        "subject": (str,),
        "audience": (str, list, None),
        "expires_in": (int,),
        "max_lifetime": (int,),
        "not_before": (int,),
        "scopes": (list,),
        "claims": (dict,),
        "jku": (str, None),
    },
    "token_file": {
        "path": (str,),
        "mode": (str,),
        "group": (str, int, None),
        "refresh_margin": (int, None),
    },
}


class RefresherError(Exception):
    """A problem the refresher cannot get past; the message says what to do."""


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

def _type_name(types):
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object", None: "null"}
    return " or ".join(names[t] for t in types)


def _has_type(value, types):
    for wanted in types:
        if wanted is None and value is None:
            return True
        if wanted is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if wanted not in (None, int) and isinstance(value, wanted):
            return True
    return False


def _is_os_text(value):
    try:
        return b"\0" not in os.fsencode(value)
    except UnicodeError:
        return False


def load_config(path):
    """Read and check the refresher configuration written by the edge_keys role."""
    try:
        data = _files.read_bytes(path, what="refresher configuration", limit=256 * 1024)
    except _files.FileError as exc:
        raise RefresherError(str(exc))
    if data is None:
        raise RefresherError("the refresher configuration %s does not exist: run the selfjwt.kyma.edge_keys role "
                             "on this host, or pass --config" % path)
    try:
        config = _jose.parse_json(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RefresherError("the refresher configuration %s is not valid JSON (%s): run the selfjwt.kyma.edge_keys "
                             "role again to rewrite it" % (path, exc))
    if not isinstance(config, dict):
        raise RefresherError("the refresher configuration %s must be a JSON object" % path)
    if config.get("version") != CONFIG_VERSION:
        raise RefresherError("the refresher configuration %s has version %r, but this refresher reads version %d: "
                             "run the selfjwt.kyma.edge_keys role again" % (path, config.get("version"), CONFIG_VERSION))
    for section, members in _SECTIONS.items():
        values = config.get(section)
        if not isinstance(values, dict):
            raise RefresherError("the refresher configuration %s lacks the object %r" % (path, section))
        for name, types in members.items():
            if name not in values:
                raise RefresherError("%s.%s is missing in the refresher configuration %s: run the selfjwt.kyma.edge_keys "
                                     "role again to rewrite it" % (section, name, path))
            value = values[name]
            if not _has_type(value, types):
                raise RefresherError("%s.%s in the refresher configuration %s must be %s, got %r"
                                     % (section, name, path, _type_name(types), value))
    try:
        int(config["token_file"]["mode"], 8)
    except ValueError:
        raise RefresherError("token_file.mode in the refresher configuration %s must be an octal mode such as "
                             "'0600', got %r" % (path, config["token_file"]["mode"]))
    if not _has_type(config.get("user"), (str, int, None)):
        raise RefresherError("user in the refresher configuration %s must be a user name, a uid or null" % path)
    # Paths and names: a NUL character or a lone surrogate would make the os functions raise ValueError.
    names = [("user", config.get("user"))] + [("%s.%s" % (section, name), config[section][name])
                                              for section in ("key", "token_file") for name in sorted(_SECTIONS[section])]
    for name, value in names:
        if isinstance(value, str) and not _is_os_text(value):
            raise RefresherError("%s in the refresher configuration %s holds a NUL character or text that is not "
                                 "UTF-8: run the selfjwt.kyma.edge_keys role again to rewrite it" % (name, path))
    scopes = config["token"]["scopes"]
    if not all(isinstance(scope, str) and scope and " " not in scope for scope in scopes):
        raise RefresherError("token.scopes in the refresher configuration %s must be a list of non-empty scope names "
                             "without spaces" % path)
    return config


def token_claims(token):
    """The extra claims of the token: ``claims`` plus ``scope`` (space-separated scopes)."""
    claims = dict(token["claims"])
    if token["scopes"]:
        if "scope" in claims:
            raise RefresherError("the scope claim is set both by scopes and by claims: keep only one")
        claims["scope"] = " ".join(token["scopes"])
    return claims


def token_options(config):
    """Keyword arguments for ``_token.ensure_token_file`` / ``_token.mint`` from the configuration."""
    key, token = config["key"], config["token"]
    options = {
        "issuer": token["issuer"],
        "subject": token["subject"],
        "expires_in": token["expires_in"],
        "max_lifetime": token["max_lifetime"],
        "not_before": token["not_before"],
        "claims": token_claims(token) or None,
    }
    for name, value in (("audience", token["audience"]), ("jku", token["jku"]),
                        ("kid", key["kid"]), ("algorithm", key["algorithm"])):
        if value not in (None, "", []):
            options[name] = value
    return options


def read_passphrase(path):
    """The key's passphrase from a file that only its owner may read (no symbolic link followed)."""
    try:
        # The mode and owner below are those of the file read (fstat of the open file), not of a link's target.
        data, status = _files.read_file(path, what="passphrase file", limit=4096)
    except _files.FileError as exc:
        raise RefresherError(str(exc))
    if data is None:
        raise RefresherError("cannot read the passphrase file %s: it does not exist" % path)
    if stat.S_IMODE(status.st_mode) & 0o077:
        raise RefresherError("the passphrase file %s has mode %04o, so others may read it; refusing to use it: "
                             "run 'chmod 600 %s' (the selfjwt.kyma.edge_keys role writes it with mode 0600)"
                             % (path, stat.S_IMODE(status.st_mode), path))
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        raise RefresherError("the passphrase file %s belongs to uid %d, not to the user running %s (uid %d): run the "
                             "refresher as the key's owner" % (path, status.st_uid, PROG, os.geteuid()))
    passphrase = (data or b"").decode("utf-8").rstrip("\r\n")
    if not passphrase:
        raise RefresherError("the passphrase file %s is empty" % path)
    return passphrase


# --------------------------------------------------------------------------------------
# Work
# --------------------------------------------------------------------------------------

def _token_facts(result, changed, reason, source):
    """Facts about a token for --json: everything except the token itself."""
    claims = result.claims
    return {
        "changed": changed,
        "reason": reason,
        "source": source,
        "token_file": result.path if isinstance(result, _token.TokenFileResult) else None,
        "kid": result.kid,
        "alg": result.algorithm,
        "iss": claims.get("iss"),
        "sub": claims.get("sub"),
        "aud": claims.get("aud"),
        "scope": claims.get("scope"),
        "iat": claims.get("iat"),
        "exp": claims.get("exp"),
        "expires_at": result.expires_at_iso,
    }


def refresh(config, check=False, force=False, now=None):
    """Keep the token file fresh with the key: returns (changed, TokenFileResult)."""
    key_conf, file_conf = config["key"], config["token_file"]
    passphrase = None
    if key_conf["passphrase_file"]:
        passphrase = read_passphrase(key_conf["passphrase_file"])
    options = token_options(config)
    margin = file_conf["refresh_margin"]
    if force:
        # A margin as long as the lifetime replaces every token (see _token.reuse_problem).
        margin = options["expires_in"]
    key = _token.load_key(path=key_conf["path"], passphrase=passphrase)
    return _token.ensure_token_file(
        file_conf["path"], key, refresh_margin=margin, mode=int(file_conf["mode"], 8),
        gid=_files.resolve_gid(file_conf["group"]), check_mode=check, now=now, **options)


def read_token_file(config, now=None):
    """The token in the token file, for callers that may not read the key: valid or an error."""
    path = config["token_file"]["path"]
    try:
        data = _files.read_bytes(path, what="token file", limit=4 * _token.MAX_TOKEN_BYTES)
    except _files.FileError as exc:
        raise RefresherError("%s, and the private key %s is not readable for this user either: run %s as the key's "
                             "owner, or add this user to the token file's group" % (exc, config["key"]["path"], PROG))
    if data is None:
        raise RefresherError("the token file %s does not exist yet and this user may not read the private key %s to "
                             "create it: check that the refresher timer or cron job runs, or run %s as the key's "
                             "owner" % (path, config["key"]["path"], PROG))
    try:
        result = _token.TokenResult.from_token(data.decode("ascii").strip())
    except (UnicodeDecodeError, _jose.JoseError) as exc:
        raise RefresherError("the token file %s does not hold a readable token (%s): run %s as the key's owner to "
                             "replace it" % (path, exc, PROG))
    now = int(time.time()) if now is None else int(now)
    if result.expires_at <= now:
        raise RefresherError("the token in %s expired at %s and this user may not read the private key to mint a new "
                             "one: check that the refresher timer or cron job runs (it runs as the key's owner)"
                             % (path, result.expires_at_iso))
    margin = config["token_file"]["refresh_margin"]
    if margin is None:
        margin = _token.default_refresh_margin(config["token"]["expires_in"])
    stale = result.expires_at - now <= margin
    return _token.TokenFileResult.of(result, path), stale


def switch_user(config):
    """Run as root with a configured owner: become the owner, so every file made belongs to it.

    Returns the uid switched to, or None when nothing was switched.
    """
    user = config.get("user")
    if user in (None, "") or not hasattr(os, "geteuid") or os.geteuid() != 0 or pwd is None:
        return None
    try:
        entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(str(user))
    except KeyError:
        raise RefresherError("the key's owner %s from the refresher configuration does not exist on this host: "
                             "create the user or run the selfjwt.kyma.edge_keys role again" % (user,))
    if entry.pw_uid == 0:
        return None
    # The owner may not be able to read the Python installation: import now what is otherwise
    # imported on first use.
    _jose.import_deferred()
    try:
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as exc:
        raise RefresherError("cannot switch to the key's owner %s: %s" % (entry.pw_name, exc.strerror or exc))
    return entry.pw_uid


def key_readable(config):
    """False only when this user may not read the private key (as opposed to a missing key).

    The key is opened without following a symbolic link (``_files.open_nofollow``).
    """
    try:
        fd, _status = _files.open_nofollow(config["key"]["path"], what="private key file")
    except _files.FileError as exc:
        # A missing, linked or broken key is reported by the minting path, with what to do about it.
        return getattr(exc.__context__, "errno", None) not in (errno.EACCES, errno.EPERM)
    if fd is not None:
        os.close(fd)
    return True


def run(config, check=False, force=False, now=None):
    """Return (TokenResult, facts for --json, warning or None)."""
    if key_readable(config):
        changed, result = refresh(config, check=check, force=force, now=now)
        return result, _token_facts(result, changed, result.reason, "minted" if changed else "kept"), None
    if force:
        raise RefresherError("--force needs the private key %s, which this user may not read: run %s as the key's "
                             "owner" % (config["key"]["path"], PROG))
    result, stale = read_token_file(config, now=now)
    warning = None
    if stale:
        warning = ("the token in %s expires at %s, within the refresh margin: the refresher timer or cron job seems "
                   "not to run" % (result.path, result.expires_at_iso))
    return result, _token_facts(result, False, None, "token file"), warning


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def parser(default_config):
    arguments = argparse.ArgumentParser(
        prog=PROG,
        description="Print a valid self-signed JWT for this host, keeping the token file fresh. "
                    "Installed by the selfjwt.kyma.edge_keys Ansible role.")
    arguments.add_argument("--config", default=default_config,
                           help="refresher configuration (default: %(default)s)")
    output = arguments.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print facts about the token as JSON instead of the token")
    output.add_argument("--quiet", action="store_true",
                        help="print nothing; only keep the token file fresh (for timers and cron)")
    arguments.add_argument("--check", action="store_true",
                           help="write nothing; with --json, tell whether a new token is due")
    arguments.add_argument("--force", action="store_true",
                           help="write a new token even when the one in the file is still fresh")
    return arguments


def main(argv=None, default_config=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = parser(default_config).parse_args(argv)
    if not args.config:
        stderr.write("%s: error: no configuration: pass --config\n" % PROG)
        return 2
    if args.check and args.force:
        stderr.write("%s: error: --check and --force exclude each other\n" % PROG)
        return 2
    missing = _jose.missing_dependencies()
    if missing:
        stderr.write("%s: error: the Python at %s lacks %s: install it (python3-cryptography and python3-jwt on "
                     "Debian and Ubuntu), or run the selfjwt.kyma.edge_keys role with "
                     "edge_keys_install_dependencies=true\n"
                     % (PROG, sys.executable, ", ".join(requirement for requirement, _trace in missing)))
        return 1
    try:
        config = load_config(args.config)
        switch_user(config)
        result, facts, warning = run(config, check=args.check, force=args.force)
    except (RefresherError, _jose.JoseError, _files.FileError) as exc:
        stderr.write("%s: error: %s\n" % (PROG, exc))
        return 1
    if warning:
        stderr.write("%s: warning: %s\n" % (PROG, warning))
    if args.json:
        stdout.write(json.dumps(facts, sort_keys=True) + "\n")
    elif not args.quiet:
        stdout.write(result.token + "\n")
    return 0
