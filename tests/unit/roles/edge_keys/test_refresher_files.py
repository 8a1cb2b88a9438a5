# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The edge_keys role's refresher command, systemd units and cron line, rendered from its templates.

Values that pass ``selfjwt.kyma.refresher_problems`` give a command that runs, units that
``systemd-analyze verify`` accepts and a cron line with the fields cron expects; a value that it
refuses is one that would break them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys

import jinja2
import pytest

from ansible_collections.selfjwt.kyma.plugins.filter.refresher_command import refresher_command
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher_install as install

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                         "roles", "edge_keys", "templates")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
#: Every character a path may hold besides letters, digits and "/", and a non-ASCII letter.
ODD = "a.b_c-d+e@f,gh~i\u00c5"


def _environment():
    # As Ansible's template module renders: trim_blocks, no trailing newline kept.
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["selfjwt.kyma.refresher_command"] = refresher_command
    return environment


def _render(name, variables):
    return _environment().get_template(name).render(**variables)


def _variables(base, owner=""):
    token_dir = os.path.join(base, "state")
    bin_dir = os.path.join(base, "bin")
    lib_dir = os.path.join(base, "lib")
    return {
        "edge_keys_owner": owner,
        "edge_keys_token_dir": token_dir,
        "edge_keys_refresher_lib_dir": lib_dir,
        "edge_keys_refresher_command_name": "selfjwt-token",
        "edge_keys_refresher_interval": 60,
        "edge_keys_refresher_unit_name": "selfjwt-token-test",
        "__edge_keys_python": sys.executable,
        "__edge_keys_token_file": os.path.join(token_dir, "token"),
        "__edge_keys_refresher_command": os.path.join(bin_dir, "selfjwt-token"),
        "__edge_keys_refresher_config": os.path.join(lib_dir, "refresher.json"),
        "__edge_keys_cron_minute": "*",
        "__edge_keys_cron_user": owner or "root",
    }


def _settings(variables):
    return {
        "token_dir": variables["edge_keys_token_dir"],
        "bin_dir": os.path.dirname(variables["__edge_keys_refresher_command"]),
        "lib_dir": variables["edge_keys_refresher_lib_dir"],
        "command_name": variables["edge_keys_refresher_command_name"],
        "python": variables["__edge_keys_python"],
        "user": variables["__edge_keys_cron_user"],
        "unit_name": variables["edge_keys_refresher_unit_name"],
        "interval": variables["edge_keys_refresher_interval"],
    }


def _install(base, variables):
    """Write the command and the units as the role does; returns the unit paths."""
    for directory in ("state", "bin", "lib", "units"):
        os.makedirs(os.path.join(base, directory), exist_ok=True)
    command = variables["__edge_keys_refresher_command"]
    with open(command, "w") as handle:
        handle.write(_render("selfjwt-token.j2", variables))
    os.chmod(command, 0o755)
    units = []
    for kind in ("service", "timer"):
        path = os.path.join(base, "units", "%s.%s" % (variables["edge_keys_refresher_unit_name"], kind))
        with open(path, "w") as handle:
            handle.write(_render("selfjwt-token.%s.j2" % kind, variables) + "\n")
        units.append(path)
    return units


def _verify(units):
    return subprocess.run([SYSTEMD_ANALYZE, "verify"] + units, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, timeout=60)


def test_the_command_runs_the_refresher_from_its_library(tmp_path):
    base = str(tmp_path / ODD)
    variables = _variables(base)
    assert install.problems(_settings(variables)) == []
    _install(base, variables)
    lib_dir = variables["edge_keys_refresher_lib_dir"]
    with open(os.path.join(lib_dir, "selfjwt_refresher.py"), "w") as handle:
        handle.write("import sys\n\ndef main(default_config):\n    print(sys.path[0] + '|' + default_config)\n"
                     "    return 3\n")
    run = subprocess.run([variables["__edge_keys_refresher_command"]], stdout=subprocess.PIPE,
                         universal_newlines=True, check=False, timeout=60)
    assert run.returncode == 3
    assert run.stdout.strip() == lib_dir + "|" + variables["__edge_keys_refresher_config"]


def test_the_cron_line_has_the_fields_cron_expects(tmp_path):
    variables = _variables(str(tmp_path / ODD), owner="svc-selfjwt")
    assert install.problems(_settings(variables)) == []
    lines = _render("selfjwt-token.cron.j2", variables).splitlines()
    jobs = [line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 1
    assert jobs[0].split() == ["*", "*", "*", "*", "*", "svc-selfjwt", variables["__edge_keys_refresher_command"],
                               "--quiet"]
    assert "%" not in "\n".join(lines)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_accepts_the_units_of_every_allowed_character(tmp_path):
    base = str(tmp_path / ODD)
    variables = _variables(base)
    assert install.problems(_settings(variables)) == []
    run = _verify(_install(base, variables))
    assert run.returncode == 0, run.stdout
    assert "selfjwt-token-test" not in run.stdout


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
@pytest.mark.parametrize("directory", ["my bin", "my\tbin", "my%bin", "my:bin"])
def test_what_systemd_finds_broken_is_refused(tmp_path, directory):
    # The refused value really breaks the units: this is what the role used to install silently.
    base = str(tmp_path / directory)
    variables = _variables(base)
    run = _verify(_install(base, variables))
    assert run.returncode != 0
    found = install.problems({"bin_dir": os.path.join(base, "bin"), "unit_dir": os.path.join(base, "units")})
    assert [message.split()[0] for message in found] == ["edge_keys_refresher_bin_dir",
                                                         "edge_keys_refresher_systemd_unit_dir"]
