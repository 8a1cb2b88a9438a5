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

The key is a PEM file (``key.path``, with ``key.passphrase_file`` when it is encrypted) or a key
in a PKCS#11 token (``key.pkcs11_uri``, an RFC 7512 URI, with ``key.pkcs11_pin_file``, a file
that holds the token's user PIN): the token signs, through ``_pkcs11`` (installed beside the
other files, and loaded only for a token key; it needs python-pkcs11). Neither the passphrase
nor the PIN is ever in the configuration or on a command line.

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
        "path": (str, None),
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


#: Members of "key" for a key in a PKCS#11 token, absent from the configuration of a key file.
_TOKEN_KEY_MEMBERS = {
    "pkcs11_uri": (str, None),
    "pkcs11_pin_file": (str, None),
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
    _check_key_members(config["key"], path)
    # Paths and names: a NUL character or a lone surrogate would make the os functions raise ValueError.
    names = [("user", config.get("user"))] + [("%s.%s" % (section, name), config[section][name])
                                              for section in ("key", "token_file") for name in sorted(_SECTIONS[section])]
    names += [("key.%s" % name, config["key"].get(name)) for name in sorted(_TOKEN_KEY_MEMBERS)]
    for name, value in names:
        if isinstance(value, str) and not _is_os_text(value):
            raise RefresherError("%s in the refresher configuration %s holds a NUL character or text that is not "
                                 "UTF-8: run the selfjwt.kyma.edge_keys role again to rewrite it" % (name, path))
    scopes = config["token"]["scopes"]
    if not all(isinstance(scope, str) and scope and " " not in scope for scope in scopes):
        raise RefresherError("token.scopes in the refresher configuration %s must be a list of non-empty scope names "
                             "without spaces" % path)
    if token_key_uri(config) is not None:
        try:
            # Checked now (no pin-value, a module path, a key named), and _pkcs11 is imported before switch_user.
            _pkcs11().parse_uri(token_key_uri(config))
        except _jose.JoseError as exc:
            raise RefresherError("key.pkcs11_uri in the refresher configuration %s: %s" % (path, exc))
    return config


def _check_key_members(key, path):
    """A key file (key.path) or a key in a PKCS#11 token (key.pkcs11_uri), never both."""
    for name, types in _TOKEN_KEY_MEMBERS.items():
        if not _has_type(key.get(name), types):
            raise RefresherError("key.%s in the refresher configuration %s must be %s, got %r"
                                 % (name, path, _type_name(types), key.get(name)))
    if key.get("pkcs11_uri") is None:
        if key["path"] is None:
            raise RefresherError("key.path in the refresher configuration %s must be a string, got None"
                                 % path)
        if key.get("pkcs11_pin_file") is not None:
            raise RefresherError("key.pkcs11_pin_file in the refresher configuration %s goes with key.pkcs11_uri, "
                                 "which is not set: run the selfjwt.kyma.edge_keys role again" % path)
    elif key["path"] is not None or key["passphrase_file"] is not None:
        raise RefresherError("the refresher configuration %s names both a key file (key.path, key.passphrase_file) "
                             "and a key in a PKCS#11 token (key.pkcs11_uri): run the selfjwt.kyma.edge_keys role "
                             "again" % path)


def _pkcs11():
    """The module ``_pkcs11``, imported on first use: python-pkcs11 is loaded only for a token key."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11  # pylint: disable=import-outside-toplevel
    return _pkcs11


def token_key_uri(config):
    """The PKCS#11 URI of a key in a token, or None for a key file."""
    return config["key"].get("pkcs11_uri")


def pin_file(config):
    """The file that holds the token's PIN (key.pkcs11_pin_file, else the URI's pin-source), or None."""
    if config["key"].get("pkcs11_pin_file"):
        return config["key"]["pkcs11_pin_file"]
    return _pkcs11().parse_uri(token_key_uri(config)).pin_source


def key_words(config):
    """How messages name the signing key: its file, or its token and the PIN file that unlocks it."""
    if token_key_uri(config) is None:
        return "the private key %s" % config["key"]["path"]
    words = "the key %s" % _pkcs11().parse_uri(token_key_uri(config)).describe()
    return words + (" (its PIN file %s)" % pin_file(config) if pin_file(config) else "")


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
        # The mode and owner are those of the file read (fstat of the open file), not of a link's target.
        passphrase, status = _files.read_secret(
            path, "passphrase file", chmod_hint=" (the selfjwt.kyma.edge_keys role writes it with mode 0600)")
    except _files.FileError as exc:
        raise RefresherError(str(exc))
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        raise RefresherError("the passphrase file %s belongs to uid %d, not to the user running %s (uid %d): run the "
                             "refresher as the key's owner" % (path, status.st_uid, PROG, os.geteuid()))
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
    with signing_key(config, passphrase) as key:
        return _token.ensure_token_file(
            file_conf["path"], key, refresh_margin=margin, mode=int(file_conf["mode"], 8),
            gid=_files.resolve_gid(file_conf["group"]), check_mode=check, now=now, **options)


def signing_key(config, passphrase=None, pin_owner=None):
    """The signing key for a ``with`` block (``_token.signing_key``): the key file, or the key in its token.

    A token's PIN file must belong to ``pin_owner`` (default: the user running the refresher),
    be a regular file (no link followed) and be readable by its owner only.
    """
    if token_key_uri(config) is None:
        return _token.signing_key(path=config["key"]["path"], passphrase=passphrase)
    if pin_owner is None and hasattr(os, "geteuid"):
        pin_owner = os.geteuid()
    return _token.signing_key(pkcs11_uri=token_key_uri(config), pkcs11_pin_file=config["key"].get("pkcs11_pin_file"),
                              pin_owners=None if pin_owner is None else frozenset([pin_owner]))


def read_token_file(config, now=None):
    """The token in the token file, for callers that may not read the key: valid or an error."""
    path = config["token_file"]["path"]
    try:
        data = _files.read_bytes(path, what="token file", limit=4 * _token.MAX_TOKEN_BYTES)
    except _files.FileError as exc:
        raise RefresherError("%s, and %s is not readable for this user either: run %s as the key's "
                             "owner, or add this user to the token file's group" % (exc, key_words(config), PROG))
    if data is None:
        raise RefresherError("the token file %s does not exist yet and this user may not read %s to "
                             "create it: check that the refresher timer or cron job runs, or run %s as the key's "
                             "owner" % (path, key_words(config), PROG))
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

    The key is opened without following a symbolic link (``_files.open_nofollow``). For a key
    in a PKCS#11 token, which has no file, this is its PIN file: who may not read the PIN may not
    sign. A token key without a PIN file (a token that needs no login) counts as readable.
    """
    if token_key_uri(config) is None:
        path, what = config["key"]["path"], "private key file"
    else:
        path, what = pin_file(config), "PIN file"
        if path is None:
            return True
    try:
        fd, _status = _files.open_nofollow(path, what=what)
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
        raise RefresherError("--force needs %s, which this user may not read: run %s as the key's "
                             "owner" % (key_words(config), PROG))
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
