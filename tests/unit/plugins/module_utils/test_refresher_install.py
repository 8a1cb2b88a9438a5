# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of _refresher_install: what the refresher's command, units and cron line may hold."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher_install as install

#: The role's defaults (and a path like the ones ansible-test makes, with non-ASCII letters).
GOOD = {
    "key_dir": "/etc/selfjwt",
    "key_filename": "signing.pem",
    "token_dir": "/var/lib/selfjwt",
    "token_filename": "token",
    "bin_dir": "/usr/local/bin",
    "command_name": "selfjwt-token",
    "lib_dir": "/root/ansible_collections/output/role_edge_keys-x1y2-\u00c5\u00d1\u015a\u00cc\u03b2\u0141\u00c8/lib",
    "python": "/usr/bin/python3.11",
    "user": "svc-selfjwt",
    "group": "selfjwt",
    "token_group": "1000",
    "unit_name": "selfjwt-token",
    "unit_dir": "/etc/systemd/system",
    "cron_file": "/etc/cron.d/selfjwt-token",
    "interval": 60,
}

#: Every character that is syntax somewhere in the command, the units or the cron line.
BAD_CHARACTERS = [" ", "\t", "\n", "\r", "%", "$", "\\", "\"", "'", ";", "#", "*", "&", "|", "`", "(", "<", ":",
                  "\x00", "\x0b", "\u00a0", "\u2028", "\u200b"]

TEXT_KEYS = ["key_dir", "key_filename", "token_dir", "token_filename", "bin_dir", "command_name", "lib_dir",
             "python", "user", "group", "token_group", "unit_name", "unit_dir", "cron_file"]


def test_the_defaults_pass():
    assert install.problems(GOOD) == []


def test_every_setting_has_a_role_variable_and_a_kind():
    assert set(install.ROLE_VARIABLES) == set(install.KINDS) == set(GOOD)


@pytest.mark.parametrize("key", TEXT_KEYS)
@pytest.mark.parametrize("character", BAD_CHARACTERS, ids=lambda c: "U+%04X" % ord(c))
def test_a_bad_character_is_refused_and_the_message_names_the_role_variable(key, character):
    value = GOOD[key]
    # In the middle of the value: before an extension, a name or the last path component.
    bad = value[:-1] + character + value[-1:]
    found = install.problems({key: bad})
    if key == "unit_name" and character == ":":
        assert found == []  # systemd unit names may hold ":"
        return
    assert len(found) == 1
    assert found[0].startswith(install.ROLE_VARIABLES[key] + " ")
    assert repr(bad) in found[0]


@pytest.mark.parametrize("key", TEXT_KEYS)
def test_a_newline_with_code_is_refused(key):
    value = GOOD[key] + "\nimport os; os.system('id')"
    assert install.problems({key: value})


@pytest.mark.parametrize("character, words", [
    (" ", "a space"), ("\n", "a newline"), ("%", "'%' (systemd and cron expand it)"), ("\t", "a tab"),
    ("\x01", "a control character (U+0001)"), ("\u2003", "a white space character (U+2003)"),
])
def test_the_message_names_the_character(character, words):
    (message,) = install.problems({"token_dir": "/var/lib/my" + character + "tokens"})
    assert "holds %s;" % words in message
    assert "edge_keys_token_dir" in message


@pytest.mark.parametrize("key", ["key_dir", "token_dir", "bin_dir", "lib_dir", "python", "unit_dir", "cron_file"])
@pytest.mark.parametrize("value", ["relative/dir", "~/tokens", "./x", "-x"])
def test_paths_must_be_absolute(key, value):
    (message,) = install.problems({key: value})
    assert "is not an absolute path" in message or "holds" in message


@pytest.mark.parametrize("key", ["key_filename", "token_filename", "command_name"])
@pytest.mark.parametrize("value", ["a/b", "/x", ".", ".."])
def test_names_are_plain_file_names(key, value):
    (message,) = install.problems({key: value})
    assert install.ROLE_VARIABLES[key] in message


@pytest.mark.parametrize("key", ["key_dir", "key_filename", "token_dir", "token_filename", "bin_dir",
                                 "command_name", "lib_dir", "python", "unit_name", "unit_dir", "interval"])
@pytest.mark.parametrize("value", ["", None])
def test_required_settings_may_not_be_empty(key, value):
    (message,) = install.problems({key: value})
    assert message.startswith(install.ROLE_VARIABLES[key] + " is empty")


@pytest.mark.parametrize("key", ["user", "group", "token_group", "cron_file"])
@pytest.mark.parametrize("value", ["", None])
def test_optional_settings_may_be_empty(key, value):
    assert install.problems({key: value}) == []


@pytest.mark.parametrize("value", ["root", "svc_selfjwt", "svc.selfjwt", "a-b", "_x", "1000", 0, 1000])
def test_accounts_accepted(value):
    assert install.problems({"user": value, "group": value, "token_group": value}) == []


@pytest.mark.parametrize("value", [".hidden", "-rf", "na\u00efve", "a/b", "a:b", "a@b", "x" * 257, -1, True, 1.5,
                                   ["root"]])
def test_accounts_refused(value):
    for key in ("user", "group", "token_group"):
        (message,) = install.problems({key: value})
        assert message.startswith(install.ROLE_VARIABLES[key] + " ")


@pytest.mark.parametrize("value", ["selfjwt-token", "a_b.c:d-e", "x" * install.MAX_UNIT_NAME])
def test_unit_names_accepted(value):
    assert install.problems({"unit_name": value}) == []


@pytest.mark.parametrize("value", ["a@b", "a/b", "caf\u00e9", "a+b", "x" * (install.MAX_UNIT_NAME + 1), 5])
def test_unit_names_refused(value):
    (message,) = install.problems({"unit_name": value})
    assert message.startswith("edge_keys_refresher_unit_name ")


@pytest.mark.parametrize("value", ["/etc/cron.d/selfjwt.cron", "/etc/cron.d/selfjwt~", "/etc/cron.d/a+b"])
def test_cron_files_that_cron_ignores_are_refused(value):
    (message,) = install.problems({"cron_file": value})
    assert "cron (as on Debian and Ubuntu) ignores" in message
    assert message.startswith("edge_keys_refresher_cron_file ")


@pytest.mark.parametrize("value", [1, 60, 86400, "60"])
def test_intervals_accepted(value):
    assert install.problems({"interval": value}) == []


@pytest.mark.parametrize("value", [0, -60, "0", "60\nExecStartPre=/bin/sh", "60 ", "1e3", "\u0661\u0662", 1.5, True,
                                   [60]])
def test_intervals_refused(value):
    (message,) = install.problems({"interval": value})
    assert message.startswith("edge_keys_refresher_interval ")


def test_every_problem_is_reported_in_order():
    values = dict(GOOD, token_dir="/var/lib/my tokens", bin_dir="/usr/local/my bin", interval=0)
    found = install.problems(values)
    assert [message.split()[0] for message in found] == [
        "edge_keys_token_dir", "edge_keys_refresher_bin_dir", "edge_keys_refresher_interval"]


def test_names_given_by_the_caller():
    (message,) = install.problems({"token_dir": "/a b"}, names={"token_dir": "token_dir"})
    assert message.startswith("token_dir '/a b' holds a space")


def test_unknown_setting_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown refresher setting"):
        install.problems({"tokendir": "/x"})


def test_every_allowed_character_is_accepted():
    allowed = "/opt/A-Z_a.z+0@9,xy~\u00e9\u03b2"
    for key in ("key_dir", "token_dir", "bin_dir", "lib_dir", "python", "unit_dir"):
        assert install.problems({key: allowed}) == []


# --------------------------------------------------------------------------------------
# The command: every value is data
# --------------------------------------------------------------------------------------

def _assignments(text):
    """The module-level string assignments of a Python script, from its syntax tree (nothing is run)."""
    tree = ast.parse(text)
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            values[node.targets[0].id] = node.value.value
    return tree, values


def test_command_text_is_the_refresher_wrapper():
    text = install.command_text("/usr/bin/python3", "/usr/local/lib/selfjwt", "/usr/local/lib/selfjwt/refresher.json")
    assert text.startswith("#!/usr/bin/python3\n")
    assert text.endswith("sys.exit(main(default_config=CONFIGURATION))\n")
    _tree, values = _assignments(text)
    assert values == {"LIBRARY": "/usr/local/lib/selfjwt", "CONFIGURATION": "/usr/local/lib/selfjwt/refresher.json"}


@pytest.mark.parametrize("hostile", [
    "/x\nimport os; os.system('id')\n#",
    "/x'; import os; x = '",
    "/x\"\"\"\nimport os\n\"\"\"",
    "/x\\",
    "/x\r\nimport os",
    "/x\u2028import os",
    "/caf\u00e9/\U0001f600",
])
def test_command_text_keeps_any_value_as_data(hostile):
    text = install.command_text("/usr/bin/python3", hostile, hostile + "/refresher.json")
    text.encode("ascii")  # every other character is escaped
    tree, values = _assignments(text)
    assert values == {"LIBRARY": hostile, "CONFIGURATION": hostile + "/refresher.json"}
    # Besides the two assignments: import sys, the sys.path assignment, the import, sys.exit.
    assert len(tree.body) == 6
    assert [type(node).__name__ for node in tree.body] == ["Import", "Assign", "Assign", "Assign", "ImportFrom",
                                                           "Expr"]
    # No line of the script but the two assignments holds the value.
    lines = [line for line in text.splitlines() if "/x" in line or "caf" in line]
    assert [line.split(" = ")[0] for line in lines] == ["LIBRARY", "CONFIGURATION"]


@pytest.mark.parametrize("python", ["/usr/bin/python3 -S", "/usr/bin/python3\nimport os", "python3", ""])
def test_command_text_refuses_an_interpreter_the_hashbang_line_cannot_hold(python):
    with pytest.raises(ValueError, match="edge_keys_refresher_python"):
        install.command_text(python, "/usr/local/lib/selfjwt", "/usr/local/lib/selfjwt/refresher.json")


def test_the_payload_holds_every_module_util_that_the_installed_files_import():
    """The refresher runs without Ansible from the installed files alone: their collection imports stay inside them."""
    files = install.payload()
    installed = set(path.rsplit("/", 1)[-1][:-3] for path in files if path.startswith(install.MODULE_UTILS_DIR + "/"))
    prefix = "ansible_collections.selfjwt.kyma.plugins.module_utils"
    imported = set()
    for path, data in files.items():
        if not path.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(data)):
            if isinstance(node, ast.ImportFrom) and node.module == prefix:
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix + "."):
                imported.add(node.module.rsplit(".", 1)[-1])
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("ansible") for alias in node.names), path
    assert imported and imported <= installed, sorted(imported - installed)
