# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the token refresher's installation writes into code, unit files and cron lines.

PRIVATE to the collection: do not import it from other collections.

Standard library only (no Ansible, no cryptography), so the filter plugins
``selfjwt.kyma.refresher_problems`` and ``selfjwt.kyma.refresher_command`` (used by the
``edge_keys`` role), a module that installs the refresher, and the tests share one answer.

The installation puts paths and names into places where some characters are syntax:

* the refresher command, a Python script that root may run: its ``#!`` line (a space splits
  the interpreter from an argument, a newline starts the script) and its comments (a newline
  starts a line of code);
* the systemd service and timer (``ExecStart=``, ``User=``, ``ReadWritePaths=``,
  ``Description=``): whitespace splits words, ``%`` starts a specifier, ``$`` an environment
  variable, a backslash or a quote an escape, a newline a directive;
* the cron line (a file in ``/etc/cron.d`` or a crontab entry): whitespace splits fields,
  ``%`` ends the command (the rest becomes its standard input), a newline a job.

:func:`problems` refuses every value that could carry such a character (an allowlist, not a
list of known bad characters), so nothing needs escaping; each message names the setting to
change. :func:`command_text` writes the command with every value as a Python string literal
(data), never as code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

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
        "# Managed by the selfjwt.kyma.edge_keys Ansible role: local changes are overwritten.",
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
