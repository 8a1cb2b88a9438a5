# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Install the token refresher on an edge host in one module run (selfjwt.kyma.token_refresher).

PRIVATE to the collection: do not import it from other collections.

What lands on the host::

    <lib_dir>/selfjwt_refresher.py                     this collection's _refresher.py
    <lib_dir>/ansible_collections/__init__.py          empty: a regular package at the top
    <lib_dir>/ansible_collections/selfjwt/kyma/plugins/module_utils/<name>.py  REFRESHER_MODULE_UTILS:
                                                       _files, _token, _pkcs11 and the JOSE modules
    <lib_dir>/refresher.json                           the configuration (claims, paths; no secrets)
    <bin_dir>/<command_name>                           the command
    <systemd_unit_dir>/<unit_name>.service and .timer, or <cron_file>

The code files are the bytes of the module_utils that the module process itself runs
(:func:`payload`): the module imports them, so Ansible ships them with the module, and the
refresher signs with exactly the code the modules sign with. The installed files import only
each other, the standard library, cryptography and PyJWT: the refresher runs on a host
without Ansible.

The command holds no user value as code: it names the library directory and the configuration
only as Python string literals (:func:`command_text`). Every value that reaches the command's
first line, a systemd unit or the cron line is checked against an allow-list first
(:func:`problems`, which the edge_keys role also runs through the filter
``selfjwt.kyma.edge_keys_plan`` before anything is written): nothing needs escaping.

Everything is checked before anything is written; then the directories, the files (each
written atomically, :func:`put_file`) and the first token (the refresher's own code,
:func:`first_token`) follow. The result says what changed, so the caller reloads systemd only
when the units changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import re
import stat
import subprocess
import sys

try:
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    pwd = None

from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _certificates, _files, _jose, _jwk
from ansible_collections.selfjwt.kyma.plugins.module_utils import _jws, _keys, _pkcs11, _refresher, _token
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError

#: Present on a host whose service manager is systemd (what sd_booted(3) checks).
SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
SCHEDULERS = ("auto", "systemd", "cron", "none")
CONFIG_NAME = "refresher.json"
PROGRAM_NAME = "selfjwt_refresher.py"
MODULE_UTILS_DIR = "ansible_collections/selfjwt/kyma/plugins/module_utils"

#: The module_utils the refresher imports (``_refresher`` imports ``_files``, ``_jose`` and ``_token``;
#: ``_token`` the JOSE modules and, for a key in a PKCS#11 token, ``_pkcs11``), installed unchanged
#: below MODULE_UTILS_DIR.
REFRESHER_MODULE_UTILS = (_algorithms, _certificates, _files, _jose, _jwk, _jws, _keys, _pkcs11, _token)
HEADER = "# Managed by selfjwt.kyma (module selfjwt.kyma.token_refresher): local changes are overwritten.\n"


class InstallError(Exception):
    """A setting the refresher cannot be installed with; the message says what to set."""


# --------------------------------------------------------------------------------------
# Values that reach the command, the systemd units and the cron line
# --------------------------------------------------------------------------------------

#: The settings a refresher installation takes, and the edge_keys role variable of each: the
#: name messages give unless the caller passes others (a module passes its option names).
ROLE_VARIABLES = {
    "key_dir": "edge_keys_key_dir",
    "key_filename": "edge_keys_key_filename",
    "token_dir": "edge_keys_token_dir",
    "token_filename": "edge_keys_token_filename",
    "bin_dir": "edge_keys_refresher_bin_dir",
    "command_name": "edge_keys_refresher_command_name",
    "lib_dir": "edge_keys_refresher_lib_dir",
    "python": "edge_keys_refresher_python",
    "user": "edge_keys_owner",
    "group": "edge_keys_group",
    "token_group": "edge_keys_token_group",
    "unit_name": "edge_keys_refresher_unit_name",
    "unit_dir": "edge_keys_refresher_systemd_unit_dir",
    "cron_file": "edge_keys_refresher_cron_file",
    "interval": "edge_keys_refresher_interval",
}

#: How each setting is checked. "path": an absolute path; "name": one file name; "account": a
#: user or group name or number; "unit": a systemd unit name; "seconds": a positive integer.
#: Settings marked optional may be empty (None or ""), which means "not used".
KINDS = {
    "key_dir": ("path", False),
    "key_filename": ("name", False),
    "token_dir": ("path", False),
    "token_filename": ("name", False),
    "bin_dir": ("path", False),
    "command_name": ("name", False),
    "lib_dir": ("path", False),
    "python": ("path", False),
    "user": ("account", True),
    "group": ("account", True),
    "token_group": ("account", True),
    "unit_name": ("unit", False),
    "unit_dir": ("path", False),
    "cron_file": ("cron_file", True),
    "interval": ("seconds", False),
}

#: Characters besides letters and digits that a path or name may hold: none of them means
#: anything to the words of a cron line, systemd's unit file syntax or a #! line. Not ":", which
#: separates the directories of systemd's unit search path.
PUNCTUATION = "._-+@,~"
ALLOWED_TEXT = "letters, digits and %s" % " ".join(PUNCTUATION)

#: systemd unit names: ASCII letters, digits and ":-_." (systemd.unit(5)); "@" would make the
#: unit a template instance, "\\" starts an escape.
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.-]+$")
#: Longest unit name without its suffix: systemd allows 255 characters with ".service".
MAX_UNIT_NAME = 255 - len(".service")
#: User and group names (or numbers) as useradd and systemd's User= take them.
_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_ACCOUNT = 256
#: Debian's and Ubuntu's cron read only files in /etc/cron.d whose names match this (run-parts
#: naming); others are ignored without a word.
_CRON_FILE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

_CHARACTER_NAMES = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a newline",
    "\r": "a carriage return",
    "%": "'%' (systemd and cron expand it)",
    "$": "'$' (systemd expands it)",
    "\\": "a backslash (systemd reads it as an escape)",
    "\"": "a double quote",
    "'": "a single quote",
    ";": "';'",
    "#": "'#'",
    "\x00": "a NUL character",
}


def scheduler_period(scheduler, interval):
    """Seconds between two runs of the refresher with this scheduler (None without one).

    Cron runs at most once a minute, so its period is the interval rounded up to whole
    minutes; ``auto`` may become cron, so it gets cron's (the longer) period.
    """
    if scheduler in ("cron", "auto"):
        return max(1, (interval + 59) // 60) * 60
    if scheduler == "systemd":
        return interval
    return None


def _describe_character(character):
    if character in _CHARACTER_NAMES:
        return _CHARACTER_NAMES[character]
    if character.isspace():
        return "a white space character (U+%04X)" % ord(character)
    if not character.isprintable():
        return "a control character (U+%04X)" % ord(character)
    return repr(character)


def _allowed(character, slash):
    if character.isalnum():
        return True
    return character in PUNCTUATION or (slash and character == "/")


def _bad_character(value, slash):
    for character in value:
        if not _allowed(character, slash):
            return character
    return None


def _empty(value):
    return value is None or value == ""


def _check_text(value, slash):
    """The problem with a path (slash=True) or a name, as a phrase, or None."""
    if not isinstance(value, str):
        return "must be a string, got %s" % type(value).__name__
    bad = _bad_character(value, slash)
    if bad is not None:
        return "holds %s" % _describe_character(bad)
    return None


def _check_path(value):
    problem = _check_text(value, slash=True)
    if problem:
        return problem
    if not value.startswith("/"):
        return "is not an absolute path (systemd and cron need one)"
    return None


def _check_name(value):
    if isinstance(value, str) and "/" in value:
        return "holds '/' (give a file name, not a path)"
    problem = _check_text(value, slash=False)
    if problem:
        return problem
    if value in (".", ".."):
        return "is not a file name"
    if value.startswith("-"):
        return "starts with '-' (a command reads it as an option)"
    return None


def _first_outside(value, punctuation):
    """The first character of ``value`` that is not an ASCII letter, digit or in ``punctuation``."""
    for character in value:
        if not (character.isascii() and (character.isalnum() or character in punctuation)):
            return character
    return None


def _check_account(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value >= 0 else "is not a user or group number"
    if not isinstance(value, str):
        return "must be a name or a number, got %s" % type(value).__name__
    if len(value) > MAX_ACCOUNT:
        return "is longer than %d characters" % MAX_ACCOUNT
    if not _ACCOUNT.match(value):
        bad = _first_outside(value, "_.-")
        where = "holds %s" % _describe_character(bad) if bad is not None else "starts with %r" % value[0]
        return where
    return None


def _check_unit(value):
    if not isinstance(value, str):
        return "must be a string, got %s" % type(value).__name__
    if not _UNIT_NAME.match(value):
        return "holds %s" % _describe_character(_first_outside(value, ":_.-"))
    if value.startswith("-"):
        return "starts with '-' (systemctl reads it as an option)"
    if len(value) > MAX_UNIT_NAME:
        return "is longer than %d characters (systemd's limit with the .service suffix)" % MAX_UNIT_NAME
    return None


def _check_cron_file(value):
    problem = _check_path(value)
    if problem:
        return problem
    name = value.rstrip("/").rsplit("/", 1)[-1]
    if not _CRON_FILE_NAME.match(name):
        return ("has the file name %r, and cron (as on Debian and Ubuntu) ignores files in /etc/cron.d whose names "
                "hold anything but letters, digits, _ and - (such as a dot)" % name)
    return None


def _check_seconds(value):
    if isinstance(value, bool):
        return "must be a whole number of seconds, got %r" % (value,)
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if not isinstance(value, int):
        return "must be a whole number of seconds, got %r" % (value,)
    if value <= 0:
        return "must be a positive number of seconds, got %d" % value
    return None


_CHECKS = {
    "path": _check_path,
    "name": _check_name,
    "account": _check_account,
    "unit": _check_unit,
    "cron_file": _check_cron_file,
    "seconds": _check_seconds,
}

_HINTS = {
    "path": "use an absolute path of %s and /" % ALLOWED_TEXT,
    "name": "use a file name of %s" % ALLOWED_TEXT,
    "account": "give a user or group name of ASCII letters, digits and _ . - (not first), or a number",
    "unit": "use a unit name of ASCII letters, digits and : _ . -",
    "cron_file": "use a file name of letters, digits, _ and - in an absolute path of %s and /" % ALLOWED_TEXT,
    "seconds": "set a positive whole number",
}


#: The token_refresher option of each setting (what the module's messages name by default).
_OPTIONS = {
    "token_dir": "token_dir", "token_filename": "token_filename", "bin_dir": "bin_dir",
    "command_name": "command_name", "lib_dir": "lib_dir", "python": "python", "user": "owner", "group": "group",
    "token_group": "token_group", "unit_name": "unit_name", "unit_dir": "systemd_unit_dir",
    "cron_file": "cron_file", "interval": "interval",
}


def problems(values, names=None):
    """Messages about the settings in ``values`` that the refresher's installation cannot hold.

    ``values`` maps keys of :data:`KINDS` to values; keys not given are not checked, so a caller
    checks only what it installs. ``names`` maps keys to the names the messages give (default:
    the edge_keys role variables, :data:`ROLE_VARIABLES`). An empty list means all is well.
    """
    unknown = sorted(set(values) - set(KINDS))
    if unknown:
        raise ValueError("unknown refresher setting(s): %s" % ", ".join(unknown))
    labels = dict(ROLE_VARIABLES)
    labels.update(names or {})
    found = []
    for key in sorted(values, key=list(KINDS).index):
        kind, optional = KINDS[key]
        value = values[key]
        if _empty(value):
            if optional:
                continue
            found.append("%s is empty: set it (the token refresher's command, systemd unit or cron line needs it)"
                         % labels[key])
            continue
        problem = _CHECKS[kind](value)
        if problem:
            found.append("%s %s %s; %s (the token refresher's command, systemd unit and cron line carry it, "
                         "where such characters are syntax)" % (labels[key], _shown(value), problem, _HINTS[kind]))
    return found


def _shown(value):
    """A value for a message: quoted, with control characters escaped."""
    if isinstance(value, str):
        return repr(value)
    return "%r" % (value,)


def _literal(value):
    """A Python string literal of ``value`` (ASCII only: every other character escaped)."""
    if not isinstance(value, str):
        raise ValueError("expected a string, got %s" % type(value).__name__)
    return ascii(value)


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------

class Names(object):
    """What messages call each option: the caller's names (role variables) or the option's own."""

    def __init__(self, names=None):
        self._names = dict(names or {})

    def __call__(self, option):
        return self._names.get(option) or option


def service_manager():
    """'systemd' when systemd runs this host, else 'other'."""
    return "systemd" if os.path.isdir(SYSTEMD_RUNTIME_DIR) else "other"


def current_user():
    """Name of the user this process runs as (its uid as text when it has no name)."""
    uid = os.geteuid()
    if pwd is not None:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            pass
    return str(uid)


def cron_minute(interval):
    """The minute field for an interval in seconds: cron runs at most once a minute."""
    period = max(1, (interval + 59) // 60)
    return "*" if period == 1 else "*/%d" % period


def _join(directory, name):
    # Plain concatenation, as the role has always built these paths (its facts keep their values).
    return "%s/%s" % (directory, name)


class Settings(object):
    """The checked settings of one installation."""

    def __init__(self, params, names=None):
        self.names = name = Names(names)
        self.params = params
        self.scheduler = params["scheduler"]
        if self.scheduler not in SCHEDULERS:
            raise InstallError("%s must be one of %s, got %r"
                               % (name("scheduler"), ", ".join(SCHEDULERS), self.scheduler))
        self.service_manager = service_manager()
        if self.scheduler == "auto":
            self.scheduler = "systemd" if self.service_manager == "systemd" else "cron"
        interval = params["interval"]
        if self.scheduler == "systemd" and not params["systemd_unit_dir"]:
            raise InstallError("set %s (default /etc/systemd/system) for the systemd scheduler"
                               % name("systemd_unit_dir"))
        self.python = params["python"] or sys.executable
        self.user = current_user()
        self.owner = params["owner"] or None
        self.token_group = params["token_group"] or None
        self.dir_group = self.token_group or params["group"] or None
        # One check (problems) for every value that reaches the command, the units or the cron line.
        values = {
            "token_dir": params["token_dir"], "token_filename": params["token_filename"],
            "bin_dir": params["bin_dir"], "command_name": params["command_name"], "lib_dir": params["lib_dir"],
            "python": self.python, "user": self.owner or self.user, "group": params["group"] or None,
            "token_group": self.token_group, "unit_name": params["unit_name"], "interval": interval,
        }
        labels = dict((key, name(option)) for key, option in _OPTIONS.items())
        if not self.owner:
            labels["user"] = "%s (unset: the account that runs the module)" % name("owner")
        if self.scheduler == "systemd":
            values["unit_dir"] = params["systemd_unit_dir"]
        if self.scheduler == "cron":
            values["cron_file"] = params["cron_file"] or None
        found = problems(values, labels)
        if found:
            raise InstallError(" ".join(found))
        self.pkcs11_uri = params.get("pkcs11_uri") or None
        self._check_key_settings()
        # Users and groups must exist before anything is written.
        self.uid = _files.resolve_uid(self.owner)
        # The account the refresher runs as: the owner (run as root, it switches to it), else this process's.
        self.refresher_uid = self.uid if self.uid is not None else os.geteuid()
        self.dir_gid = _files.resolve_gid(self.dir_group)
        if self.token_group:
            _files.resolve_gid(self.token_group)

        self.token_file = _join(params["token_dir"], params["token_filename"])
        self.command = _join(params["bin_dir"], params["command_name"])
        self.config_path = _join(params["lib_dir"], CONFIG_NAME)
        self.token_mode = "0640" if self.token_group else "0600"
        self.token_dir_mode = 0o2750 if self.token_group else 0o700
        margin = params["refresh_margin"]
        self.refresh_margin = _token.default_refresh_margin(params["expires_in"]) if margin is None else margin
        self.config = self._config()
        self._check_token_settings()
        period = scheduler_period(self.scheduler, interval)
        if period is not None and self.refresh_margin <= period:
            raise InstallError(
                "The %s scheduler runs the refresher every %d s (%s=%d%s), but tokens are renewed only %d s (%s) "
                "before they expire, so the token file could hold an expired token. Raise %s above the period "
                "(and below %s), or lower %s."
                % (self.scheduler, period, name("interval"), interval,
                   ", rounded up to whole minutes for cron" if self.scheduler == "cron" else "",
                   self.refresh_margin, name("refresh_margin"), name("refresh_margin"), name("expires_in"),
                   name("interval")))

    def _check_key_settings(self):
        """One key, a file (key_path) or a key in a PKCS#11 token (pkcs11_uri), and no PIN in the configuration."""
        name, params = self.names, self.params
        if params.get("pkcs11_pin") is not None:
            raise InstallError("%s cannot be used with the token refresher: it runs unattended and must not keep the "
                               "PIN in its configuration or command line. Write the token's user PIN into a file that "
                               "only the refresher's account may read (mode 0600) and set %s"
                               % (name("pkcs11_pin"), name("pkcs11_pin_file")))
        if bool(params["key_path"]) == bool(self.pkcs11_uri):
            raise InstallError("set exactly one of %s (a key file) and %s (a key in a PKCS#11 token)%s"
                               % (name("key_path"), name("pkcs11_uri"), ", not both" if self.pkcs11_uri else ""))
        # The key's paths reach only the configuration (JSON): they need to be absolute, nothing more.
        if not self.pkcs11_uri:
            _absolute(params["key_path"], name("key_path"))
            if params.get("pkcs11_pin_file"):
                raise InstallError("%s goes with %s, which is not set" % (name("pkcs11_pin_file"), name("pkcs11_uri")))
        else:
            if params["passphrase_file"]:
                raise InstallError("%s is for an encrypted key file; a key in a PKCS#11 token (%s) is unlocked by "
                                   "its PIN: set %s instead" % (name("passphrase_file"), name("pkcs11_uri"),
                                                                name("pkcs11_pin_file")))
            try:
                _pkcs11.parse_uri(self.pkcs11_uri)
            except _jose.JoseError as exc:
                raise InstallError("%s: %s" % (name("pkcs11_uri"), exc))
            if params.get("pkcs11_pin_file"):
                _absolute(params["pkcs11_pin_file"], name("pkcs11_pin_file"))
        if params["passphrase_file"]:
            _absolute(params["passphrase_file"], name("passphrase_file"))

    def _config(self):
        params = self.params
        key = {
            "path": params["key_path"] or None,
            "kid": params["kid"] or None,
            "algorithm": params["algorithm"] or None,
            "passphrase_file": params["passphrase_file"] or None,
        }
        if self.pkcs11_uri:
            # Only for a token key: the configuration of a key file stays as it was.
            key.update(pkcs11_uri=self.pkcs11_uri, pkcs11_pin_file=params.get("pkcs11_pin_file") or None)
        return {
            "version": _refresher.CONFIG_VERSION,
            # Run as root, the refresher switches to this user first, so every file it makes is the owner's.
            "user": self.owner or self.user,
            "key": key,
            "token": {
                "issuer": params["issuer"],
                "subject": params["subject"],
                "audience": params["audience"] or None,
                "expires_in": params["expires_in"],
                "max_lifetime": params["max_lifetime"],
                "not_before": params["not_before"],
                "scopes": list(params["scopes"] or []),
                "claims": dict(params["claims"] or {}),
                "jku": params["jku"] or None,
            },
            "token_file": {
                "path": self.token_file,
                "mode": self.token_mode,
                "group": self.token_group,
                "refresh_margin": self.refresh_margin,
            },
        }

    def _check_token_settings(self):
        """The token settings, checked as minting will check them, before anything is written."""
        name, token = self.names, self.config["token"]
        issuer = token["issuer"]
        if not isinstance(issuer, str) or not re.match(r"^https?://[^/\s]+", issuer or ""):
            raise InstallError("%s must be an http(s) URL (the APIRule's jwt issuer must be a URL, and the token's iss "
                               "must equal it), got %s" % (name("issuer"), json.dumps(issuer)))
        if token["jku"] and not re.match(r"^https?://", token["jku"]):
            raise InstallError("%s must be an http(s) URL, the same URL as the APIRule's jwksUri, got %s"
                               % (name("jku"), json.dumps(token["jku"])))
        for scope in token["scopes"]:
            if not isinstance(scope, str) or not scope or re.search(r"\s", scope):
                raise InstallError("%s must be a list of scope names without spaces, got %s"
                                   % (name("scopes"), json.dumps(token["scopes"])))
        if token["scopes"] and "scope" in token["claims"]:
            raise InstallError("the scope claim is set both by %s and by %s: keep only one"
                               % (name("scopes"), name("claims")))
        margin = self.refresh_margin
        if margin < 0 or margin >= token["expires_in"]:
            raise InstallError("%s must be at least 0 and less than %s (%d s), got %d"
                               % (name("refresh_margin"), name("expires_in"), token["expires_in"], margin))
        if token["not_before"] > 0:
            raise InstallError("%s must be 0 or negative: the token file must hold a token that is valid now"
                               % name("not_before"))
        try:
            options = _refresher.token_options(self.config)
            _jws.build_claims(options["issuer"], options["subject"], audience=options.get("audience"),
                              expires_in=options["expires_in"], max_lifetime=options["max_lifetime"],
                              not_before=options["not_before"], claims=options["claims"])
        except (_refresher.RefresherError, _jose.JoseError) as exc:
            raise InstallError("the token settings are not valid: %s (options: %s)"
                               % (exc, ", ".join(name(option) for option in (
                                   "issuer", "subject", "audience", "expires_in", "max_lifetime", "not_before",
                                   "claims"))))


def _absolute(path, name):
    if not path or not os.path.isabs(path):
        raise InstallError("%s must be an absolute path, got %s" % (name, json.dumps(path)))
    _files.check_path(path, name)


# --------------------------------------------------------------------------------------
# What is written
# --------------------------------------------------------------------------------------

def module_source(module):
    """The bytes of a module's source file, also when it is imported from a zip (Ansible's payload)."""
    path = module.__file__
    loader = getattr(module, "__loader__", None)
    get_data = getattr(loader, "get_data", None)
    if get_data is not None:
        try:
            return get_data(path)
        except (IOError, OSError):
            pass
    with open(path, "rb") as handle:
        return handle.read()


def payload():
    """{relative path below lib_dir: bytes} of the code the refresher runs."""
    files = {
        PROGRAM_NAME: module_source(_refresher),
        "ansible_collections/__init__.py": b"",
    }
    for module in REFRESHER_MODULE_UTILS:
        files["%s/%s.py" % (MODULE_UTILS_DIR, module.__name__.rsplit(".", 1)[-1])] = module_source(module)
    return files


def command_text(python, lib_dir, config_path):
    """The refresher command: a Python script that imports the refresher from ``lib_dir``.

    ``python`` is the interpreter of the ``#!`` line, which cannot be a literal: it must pass
    :func:`problems` (key ``python``) first, or ValueError is raised. ``lib_dir`` and
    ``config_path`` appear only as Python string literals, so whatever they hold stays data.
    The script holds no other value: everything else the refresher needs is in its
    configuration file, read at run time.
    """
    found = problems({"python": python})
    if found:
        raise ValueError(found[0])
    return "\n".join([
        "#!" + python,
        "# -*- coding: utf-8 -*-",
        HEADER.rstrip("\n"),
        "#",
        "# Print a valid self-signed JWT for this host and keep the token file fresh (--help for the",
        "# options). The code is the selfjwt.kyma collection's own, installed in LIBRARY; the paths and",
        "# claims are in CONFIGURATION, read at run time.",
        "import sys",
        "",
        "LIBRARY = %s" % _literal(lib_dir),
        "CONFIGURATION = %s" % _literal(config_path),
        "",
        "# The library directory replaces the script's own directory at the head of the module path,",
        "# so nothing that happens to lie beside this command is imported.",
        "sys.path[0] = LIBRARY",
        "",
        "from selfjwt_refresher import main  # noqa: E402",
        "",
        "sys.exit(main(default_config=CONFIGURATION))",
        "",
    ])


def config_text(config):
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def service_text(settings):
    params = settings.params
    lines = [
        HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Keep the self-signed JWT in %s fresh (selfjwt.kyma)" % settings.token_file,
        "After=local-fs.target",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=%s --quiet" % settings.command,
    ]
    if settings.owner:
        lines.append("User=%s" % settings.owner)
    lines += [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
        "ProtectHome=read-only",
        "ReadWritePaths=%s" % params["token_dir"],
    ]
    return "\n".join(lines) + "\n"


def timer_text(settings):
    params = settings.params
    return "\n".join([
        HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Refresh the self-signed JWT in %s every %d s (selfjwt.kyma)"
        % (settings.token_file, params["interval"]),
        "",
        "[Timer]",
        "OnActiveSec=0",
        "OnBootSec=15s",
        "OnUnitActiveSec=%ds" % params["interval"],
        "AccuracySec=1s",
        "Unit=%s.service" % params["unit_name"],
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]) + "\n"


def cron_job(settings):
    """(minute, user, job) of the cron entry."""
    return cron_minute(settings.params["interval"]), settings.owner or settings.user, "%s --quiet" % settings.command


def cron_text(settings):
    minute, user, job = cron_job(settings)
    return "\n".join([
        HEADER.rstrip("\n"),
        "# Keep the self-signed JWT in %s fresh (selfjwt.kyma)." % settings.token_file,
        "SHELL=/bin/sh",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "%s * * * * %s %s" % (minute, user, job),
    ]) + "\n"


class Entry(object):
    """One file to install: ``kind`` is code (diff: a sha256 line), config or unit (diff: the text)."""

    def __init__(self, path, data, mode, kind):
        self.path, self.data, self.mode, self.kind = path, data, mode, kind


def entries(settings):
    params = settings.params
    lib_dir = params["lib_dir"]
    files = [Entry(_join(lib_dir, relative), data, 0o644, "code") for relative, data in sorted(payload().items())]
    files.append(Entry(settings.config_path, config_text(settings.config).encode("utf-8"), 0o644, "config"))
    files.append(Entry(settings.command, command_text(settings.python, lib_dir, settings.config_path).encode("utf-8"),
                       0o755, "code"))
    if settings.scheduler == "systemd":
        base = _join(params["systemd_unit_dir"], params["unit_name"])
        files.append(Entry(base + ".service", service_text(settings).encode("utf-8"), 0o644, "unit"))
        files.append(Entry(base + ".timer", timer_text(settings).encode("utf-8"), 0o644, "unit"))
    elif settings.scheduler == "cron" and params["cron_file"]:
        files.append(Entry(params["cron_file"], cron_text(settings).encode("utf-8"), 0o644, "unit"))
    return files


def directories(settings):
    """[(path, mode, uid, gid, private)] in the order they are made; private: refuse a symlink there."""
    params = settings.params
    lib_dir = params["lib_dir"]
    result = []
    path = lib_dir
    result.append((path, 0o755, None, None, False))
    for part in MODULE_UTILS_DIR.split("/"):
        path = _join(path, part)
        result.append((path, 0o755, None, None, False))
    result.append((params["bin_dir"], 0o755, None, None, False))
    if settings.scheduler == "systemd":
        result.append((params["systemd_unit_dir"], 0o755, None, None, False))
    result.append((params["token_dir"], settings.token_dir_mode, settings.uid, settings.dir_gid, True))
    return result


# --------------------------------------------------------------------------------------
# Writing (one place: a switch to other file primitives happens here)
# --------------------------------------------------------------------------------------

def _lstat(path, what):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise FileError("cannot inspect %s %s: %s" % (what, path, exc.strerror or exc))


def ensure_directory(path, mode, uid=None, gid=None, private=False, check_mode=False):
    """Make ``path`` (its parent must exist or be made first) with ``mode``, owner and group.

    A directory that exists keeps its content; its mode, owner and group are corrected. A
    symbolic link is never followed: where the directory is private (the token directory,
    which its owner may change), a link there is refused, elsewhere too (a link in a
    root-owned place is a mistake to report, not to follow). Returns a diff line or None.
    """
    _files.check_path(path, "directory")
    status = _lstat(path, "directory")
    if status is None:
        parent = os.path.dirname(path.rstrip("/"))
        if parent and parent != path and _lstat(parent, "directory") is None:
            # Missing parents are made as "mkdir -p" would make them: 0755, owned by this process's user.
            ensure_directory(parent, 0o755, check_mode=check_mode)
        if not check_mode:
            try:
                os.mkdir(path, 0o700)
                os.chmod(path, mode)
                if uid is not None or gid is not None:
                    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError as exc:
                raise FileError("cannot create directory %s: %s" % (path, exc.strerror or exc))
        return "directory %s created (mode %04o)" % (path, mode)
    if stat.S_ISLNK(status.st_mode):
        raise FileError("%s is a symbolic link, not a directory: the %s is never followed through a link; replace "
                        "the link by a directory or choose another path"
                        % (path, "token directory" if private else "refresher's directory"))
    if not stat.S_ISDIR(status.st_mode):
        raise FileError("%s exists but is not a directory: move it away or choose another path" % path)
    changes = []
    if stat.S_IMODE(status.st_mode) != mode:
        changes.append("mode %04o -> %04o" % (stat.S_IMODE(status.st_mode), mode))
    if (uid is not None and status.st_uid != uid) or (gid is not None and status.st_gid != gid):
        changes.append("owner %d:%d -> %s:%s" % (status.st_uid, status.st_gid, status.st_uid if uid is None else uid,
                                                 status.st_gid if gid is None else gid))
    if not changes:
        return None
    if not check_mode:
        try:
            os.lchown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(path, mode)
        except OSError as exc:
            raise FileError("cannot set the owner, group or mode of directory %s: %s" % (path, exc.strerror or exc))
    return "directory %s: %s" % (path, ", ".join(changes))


def read_regular(path):
    """(bytes, mode) of the regular file at ``path``, or (None, None): a link or other file is not read."""
    status = _lstat(path, "file")
    if status is None or stat.S_ISLNK(status.st_mode):
        return None, None
    if stat.S_ISDIR(status.st_mode):
        raise FileError("%s is a directory, not a file: move it away or choose another path" % path)
    if not stat.S_ISREG(status.st_mode):
        return None, None
    # Read without following a link (one swapped in since the lstat is refused); the mode is the file's own.
    data, status = _files.read_file(path, what="file", limit=4 * 1024 * 1024)
    return data, None if status is None else stat.S_IMODE(status.st_mode)


def put_file(entry, check_mode=False):
    """Install one file atomically with its mode; returns (before bytes or None, changed)."""
    before, mode = read_regular(entry.path)
    if before == entry.data:
        if mode == entry.mode:
            return before, False
        if not check_mode:
            # Through a descriptor opened without following a link: the mode lands on this file only.
            fd, _status = _files.open_nofollow(entry.path, what="file")
            if fd is None:
                raise FileError("%s disappeared while it was installed: run again" % entry.path)
            try:
                os.fchmod(fd, entry.mode)
            except OSError as exc:
                raise FileError("cannot set the mode of %s: %s" % (entry.path, exc.strerror or exc))
            finally:
                os.close(fd)
        return before, True
    if not check_mode:
        _files.write_atomic(entry.path, entry.data, mode=entry.mode, what="file")
    return before, True


# --------------------------------------------------------------------------------------
# The first token
# --------------------------------------------------------------------------------------

def _owner_uid(config):
    """The uid the refresher switches to when run by this process, or None."""
    user = config.get("user")
    if user in (None, "") or os.geteuid() != 0:
        return None
    uid = _files.resolve_uid(user)
    return None if uid == 0 else uid


def first_token(config, check_mode=False):
    """Keep the token file fresh now, as the installed command would: the facts of ``_refresher.run``.

    Run as root for another owner, the work happens in a child process that switches to the
    owner first (``_refresher.switch_user``), so the token file and its lock file are the
    owner's, as when the timer runs the command.
    """
    if check_mode or _owner_uid(config) is None:
        _result, facts, warning = _refresher.run(config, check=check_mode)
        return facts, warning
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        status = 1
        try:
            os.close(read_end)
            try:
                _refresher.switch_user(config)
                _result, facts, warning = _refresher.run(config)
                message = {"facts": facts, "warning": warning}
                status = 0
            except (_refresher.RefresherError, _jose.JoseError, FileError) as exc:
                message = {"error": str(exc)}
            except Exception as exc:  # pylint: disable=broad-exception-caught
                message = {"error": "%s: %s" % (type(exc).__name__, exc)}
            data = json.dumps(message).encode("utf-8")
            while data:
                data = data[os.write(write_end, data):]
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    try:
        message = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise FileError("the refresher stopped without a result while it wrote the first token as %s"
                        % config.get("user"))
    if "error" in message:
        raise FileError(message["error"])
    return message["facts"], message["warning"]


# --------------------------------------------------------------------------------------
# The installation
# --------------------------------------------------------------------------------------

def _sha256(data):
    return hashlib.sha256(data).hexdigest()[:16] if data is not None else "none"


def _text(data):
    return "" if data is None else data.decode("utf-8", "replace")


def _apply(settings, files, check_mode):
    """Make the directories and install the files; returns (changed paths, diff, units changed)."""
    diff = []
    changed_paths = []
    units_changed = False
    for path, mode, uid, gid, private in directories(settings):
        line = ensure_directory(path, mode, uid, gid, private=private, check_mode=check_mode)
        if line:
            changed_paths.append(path)
            diff.append({"prepared": line + "\n"})
    for entry in files:
        before, changed = put_file(entry, check_mode=check_mode)
        if not changed:
            continue
        changed_paths.append(entry.path)
        if entry.kind == "unit":
            units_changed = True
        if entry.kind == "code":
            diff.append({"prepared": "%s %s (sha256 %s -> %s, mode %04o)\n"
                                     % ("program updated:" if before is not None else "program installed:",
                                        entry.path, _sha256(before), _sha256(entry.data), entry.mode)})
        else:
            diff.append({"before_header": entry.path, "after_header": entry.path,
                         "before": _text(before), "after": _text(entry.data)})
    return changed_paths, diff, units_changed


def check_parents(settings, files):
    """Every file goes into a directory that exists or that the installation makes."""
    made = set(path for path, _mode, _uid, _gid, _private in directories(settings))
    for entry in files:
        parent = os.path.dirname(entry.path)
        if parent not in made and not os.path.isdir(parent):
            raise FileError("the directory %s for %s does not exist: create it first (for a cron file: install "
                            "cron), or choose another path" % (parent, entry.path))


def check_key(settings, check_mode):
    """Load the key (with its passphrase) and sign once, before anything is written.

    A key that is missing, damaged, encrypted without a passphrase file, or that does not fit
    the algorithm or kid fails here, so the installation is not left with a refresher that
    cannot sign. In check mode a key that does not exist yet (a new host) is fine.
    """
    if settings.pkcs11_uri:
        check_token_key(settings, check_mode)
        return
    key_conf = settings.config["key"]
    if _files.read_bytes(key_conf["path"], what="private key file") is None:
        if check_mode:
            return
        raise FileError("private key file %s does not exist: create it with selfjwt.kyma.jwt_keypair first, or fix "
                        "%s" % (key_conf["path"], settings.names("key_path")))
    passphrase = None
    if key_conf["passphrase_file"]:
        # Read as this process (root, usually): the refresher itself checks the file's owner and mode.
        data = _files.read_bytes(key_conf["passphrase_file"], what="passphrase file", limit=4096)
        if data is None:
            if check_mode:
                return
            raise FileError("the passphrase file %s does not exist: let selfjwt.kyma.jwt_keypair store the passphrase "
                            "(store_passphrase=true), or fix %s" % (key_conf["passphrase_file"],
                                                                    settings.names("passphrase_file")))
        mode = stat.S_IMODE(os.stat(key_conf["passphrase_file"]).st_mode)
        if mode & 0o077 and not check_mode:
            # The refresher refuses it (read_passphrase): refuse it before anything is written.
            raise FileError("the passphrase file %s has mode %04o, so others may read it; the refresher refuses to "
                            "use it: run 'chmod 600 %s' (selfjwt.kyma.jwt_keypair writes it with mode 0600)"
                            % (key_conf["passphrase_file"], mode, key_conf["passphrase_file"]))
        passphrase = data.decode("utf-8", "replace").rstrip("\r\n") or None
    key = _token.load_key(path=key_conf["path"], passphrase=passphrase)
    _token.mint(key, **_refresher.token_options(settings.config))


def pkcs11_import_problem(python):
    """Why ``python`` (the refresher's interpreter) cannot import python-pkcs11, or None."""
    if python == sys.executable:
        return None if _pkcs11.HAS_PKCS11 else "No module named 'pkcs11'"
    try:
        done = subprocess.run([python, "-c", "import pkcs11"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "it cannot be run: %s" % (getattr(exc, "strerror", None) or exc)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else "exit status %d" % done.returncode
    return None


def check_token_key(settings, check_mode):
    """For a key in a PKCS#11 token: the refresher's Python has python-pkcs11, the PIN file is safe, the key signs.

    The PIN file must be a regular file (no link followed) of the account the refresher runs as,
    readable by that account only (``_pkcs11.read_pin_file``), as the refresher itself demands.
    Then the key signs one token through its token, before anything is written. In check mode
    what a new host lacks (the package, the PIN file or the key, which earlier tasks of the same
    run would install) is left to the predicted token status.
    """
    name, config = settings.names, settings.config
    problem = pkcs11_import_problem(settings.python)
    if problem:
        if check_mode:
            return
        raise InstallError(
            "the key is in a PKCS#11 token (%s), but the refresher's Python %s cannot import python-pkcs11 (%s): "
            "install it for that Python (pip install python-pkcs11; the selfjwt.kyma.edge_keys role installs it when "
            "edge_keys_key_backend is pkcs11), or set %s to a Python that has it"
            % (name("pkcs11_uri"), settings.python, problem, name("python")))
    path = _refresher.pin_file(config)
    pin = None
    if path is not None:
        if check_mode and not os.path.lexists(path):
            return
        try:
            pin = _pkcs11.read_pin_file(path, owners=frozenset([settings.refresher_uid]))
        except _pkcs11.Pkcs11Error as exc:
            raise InstallError("%s (%s; the token refresher reads it unattended as %s)"
                               % (exc, name("pkcs11_pin_file"), _files.account_name(settings.refresher_uid)))
    try:
        with _token.signing_key(pkcs11_uri=settings.pkcs11_uri, pkcs11_pin=pin) as key:
            _token.mint(key, **_refresher.token_options(config))
    except _jose.JoseError:
        if check_mode:
            return
        raise


def install(params, names=None, check_mode=False):
    """Install or update everything; returns the module result (with a ``diff`` list)."""
    settings = Settings(params, names)
    files = entries(settings)
    check_parents(settings, files)
    check_key(settings, check_mode)
    # A dry pass first: whatever is in the way (a link, a directory where a file goes) is
    # refused before anything is written.
    changed_paths, diff, units_changed = _apply(settings, files, check_mode=True)
    if changed_paths and not check_mode:
        changed_paths, diff, units_changed = _apply(settings, files, check_mode=False)

    token = _token_status(settings, check_mode)
    if token["changed"]:
        diff.append({"prepared": "token file %s: %s\n" % (settings.token_file, token["reason"])})
    minute, cron_user, job = cron_job(settings)
    return {
        "changed": bool(changed_paths) or token["changed"],
        "changed_paths": changed_paths,
        "units_changed": units_changed,
        "scheduler": settings.scheduler,
        "service_manager": settings.service_manager,
        "token_file": settings.token_file,
        "command": settings.command,
        "config_path": settings.config_path,
        "python": settings.python,
        "user": settings.user,
        "token_status": token,
        "cron": {"minute": minute, "user": cron_user, "job": job} if settings.scheduler == "cron" else None,
        "diff": diff,
    }


def _token_status(settings, check_mode):
    """Facts about the token in the token file after this run (never the token)."""
    config = settings.config
    if check_mode and (not os.path.isdir(settings.params["token_dir"]) or _key_missing(config)):
        # Check mode on a new host: the key, its passphrase or PIN file or the token directory are not there yet.
        return {"changed": True, "reason": "a new token would be written once the key and the token directory exist",
                "warning": None}
    try:
        facts, warning = first_token(config, check_mode=check_mode)
    except (_refresher.RefresherError, _jose.JoseError, FileError) as exc:
        if not check_mode:
            # The timer or cron job would fail the same way, and the token file would go stale without a word.
            raise InstallError(
                "The token refresher %s failed on its first run: %s. Scheduled runs would fail the same way, and the "
                "token in %s would expire: fix the cause and run again." % (settings.command, exc, settings.token_file))
        # Check mode predicts: what stops the refresher now (a passphrase file with a mode that the
        # key task of the same run corrects, say) is reported, not fatal; a real run stops there.
        return {"changed": True, "reason": "a new token would be written, if the refresher can: %s" % exc,
                "warning": None}
    status = dict(facts)
    status["warning"] = warning
    if status.get("reason") is None and status["changed"]:
        status["reason"] = "a new token"
    return status


def _key_missing(config):
    """Whether the key file, its passphrase file or a token key's PIN file does not exist (yet)."""
    key = config["key"]
    if key.get("pkcs11_uri"):
        path = _refresher.pin_file(config)
        return path is not None and not os.path.exists(path)
    return not os.path.exists(key["path"]) or bool(key["passphrase_file"] and not os.path.exists(key["passphrase_file"]))
