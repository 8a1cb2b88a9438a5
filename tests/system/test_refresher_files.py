# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token refresher's command, systemd units and cron line, as selfjwt.kyma.token_refresher writes them.

Values that pass ``_refresher_install.problems`` give a command that runs, units that
``systemd-analyze verify`` accepts and a cron line with the fields cron expects; a value that it
refuses is one that would break them. The command that the module installs runs without
Ansible. (These tests start the command and systemd-analyze as processes; the module's other
tests are in tests/unit/plugins/modules/test_token_refresher.py.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher_install as install
from ansible_collections.selfjwt.kyma.plugins.modules import token_refresher
from helpers import refresher_host, run_module_main  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

ISSUER = "https://edge-jwks.kyma-system.svc.cluster.local"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
#: Every character a path may hold besides letters, digits and "/", and a non-ASCII letter.
ODD = "a.b_c-d+e@f,gh~i\u00c5"


def _settings(base, owner=None):
    """What the installer's writers read of its checked settings (Settings), for these paths."""
    params = {
        "token_dir": os.path.join(base, "state"),
        "token_filename": "token",
        "bin_dir": os.path.join(base, "bin"),
        "command_name": "selfjwt-token",
        "lib_dir": os.path.join(base, "lib"),
        "interval": 60,
        "unit_name": "selfjwt-token-test",
        "systemd_unit_dir": os.path.join(base, "units"),
    }
    return SimpleNamespace(
        params=params, owner=owner, user="root", python=sys.executable,
        token_file=os.path.join(params["token_dir"], "token"),
        command=os.path.join(params["bin_dir"], "selfjwt-token"),
        config_path=os.path.join(params["lib_dir"], install.CONFIG_NAME))


def _values(settings):
    """The settings as the module passes them to the one check."""
    params = settings.params
    return {
        "token_dir": params["token_dir"], "token_filename": params["token_filename"], "bin_dir": params["bin_dir"],
        "lib_dir": params["lib_dir"], "command_name": params["command_name"], "python": settings.python,
        "user": settings.owner or settings.user, "unit_name": params["unit_name"],
        "unit_dir": params["systemd_unit_dir"], "interval": params["interval"],
    }


def _install(settings):
    """Write the command and the units as the module does; returns the unit paths."""
    params = settings.params
    for directory in (params["token_dir"], params["bin_dir"], params["lib_dir"], params["systemd_unit_dir"]):
        os.makedirs(directory, exist_ok=True)
    with open(settings.command, "w") as handle:
        handle.write(install.command_text(settings.python, params["lib_dir"], settings.config_path))
    os.chmod(settings.command, 0o755)
    units = []
    for kind, text in (("service", install.service_text(settings)), ("timer", install.timer_text(settings))):
        path = os.path.join(params["systemd_unit_dir"], "%s.%s" % (params["unit_name"], kind))
        with open(path, "w") as handle:
            handle.write(text)
        units.append(path)
    return units


def _verify(units):
    return subprocess.run([SYSTEMD_ANALYZE, "verify"] + units, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, timeout=60)


def test_the_command_runs_the_refresher_from_its_library(tmp_path):
    settings = _settings(str(tmp_path / ODD))
    assert install.problems(_values(settings)) == []
    _install(settings)
    lib_dir = settings.params["lib_dir"]
    with open(os.path.join(lib_dir, "selfjwt_refresher.py"), "w") as handle:
        handle.write("import sys\n\ndef main(default_config):\n    print(sys.path[0] + '|' + default_config)\n"
                     "    return 3\n")
    run = subprocess.run([settings.command], stdout=subprocess.PIPE, universal_newlines=True, check=False, timeout=60)
    assert run.returncode == 3
    assert run.stdout.strip() == lib_dir + "|" + settings.config_path


def test_the_cron_line_has_the_fields_cron_expects(tmp_path):
    settings = _settings(str(tmp_path / ODD), owner="svc-selfjwt")
    assert install.problems(_values(settings)) == []
    lines = install.cron_text(settings).splitlines()
    jobs = [line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 1
    assert jobs[0].split() == ["*", "*", "*", "*", "*", "svc-selfjwt", settings.command, "--quiet"]
    assert "%" not in "\n".join(lines)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_accepts_the_units_of_every_allowed_character(tmp_path):
    settings = _settings(str(tmp_path / ODD), owner="root")
    assert install.problems(_values(settings)) == []
    run = _verify(_install(settings))
    assert run.returncode == 0, run.stdout
    assert "selfjwt-token-test" not in run.stdout


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
@pytest.mark.parametrize("directory", ["my bin", "my\tbin", "my%bin", "my:bin"])
def test_what_systemd_finds_broken_is_refused(tmp_path, directory):
    # The refused value really breaks the units: this is what the role used to install silently.
    settings = _settings(str(tmp_path / directory))
    run = _verify(_install(settings))
    assert run.returncode != 0
    found = install.problems({"bin_dir": settings.params["bin_dir"], "unit_dir": settings.params["systemd_unit_dir"]},
                             {"bin_dir": "bin_dir", "unit_dir": "systemd_unit_dir"})
    assert [message.split()[0] for message in found] == ["bin_dir", "systemd_unit_dir"]


# --------------------------------------------------------------------------------------
# The installed command
# --------------------------------------------------------------------------------------

def test_the_installed_command_runs_without_ansible(tmp_path, capsys, monkeypatch):
    """The command imports only the installed files: run it with a module path that has no Ansible."""
    # A host with a signing key (mode 0600) and no systemd.
    monkeypatch.setattr(install, "SYSTEMD_RUNTIME_DIR", str(tmp_path / "no-systemd"))
    host = refresher_host(tmp_path / "host", ec.generate_private_key(ec.SECP256R1()), ISSUER)
    result = run_module_main(token_refresher, host, capsys).result
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    probe = subprocess.run([result["command"], "--json"], env=env, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    facts = json.loads(probe.stdout)
    assert facts["changed"] is False and facts["source"] == "kept"
    assert facts["token_file"] == result["token_file"]
    # Nothing from the repository or from Ansible was imported: ask the command's own Python.
    check = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[0] = %r; import selfjwt_refresher, ansible_collections; "
         "print(selfjwt_refresher.__file__); print(ansible_collections.__file__); "
         "print('ansible' in sys.modules)" % host["lib_dir"]],
        env=env, capture_output=True, text=True, check=True, cwd=host["lib_dir"])
    lines = check.stdout.split()
    assert lines[0].startswith(host["lib_dir"]) and lines[1].startswith(host["lib_dir"]) and lines[2] == "False"


def test_the_installed_command_signs_with_a_key_in_a_pkcs11_token(tmp_path, capsys, monkeypatch):
    """A SoftHSM2 key: the command, without Ansible, signs through the token with the PIN from its file."""
    pin = "pin-4d0c9e12-command"
    monkeypatch.setattr(install, "SYSTEMD_RUNTIME_DIR", str(tmp_path / "no-systemd"))
    token = use_token(monkeypatch, SoftHSMToken(tmp_path, label="edge", pin=pin))
    with _pkcs11.open_session(_pkcs11.parse_uri(token.uri("jwt-signing")), pin, write=True) as session:
        public = session.generate("rsa", size=2048).public_key()
    host = refresher_host(tmp_path / "host", ec.generate_private_key(ec.SECP256R1()), ISSUER)
    os.unlink(host.pop("key_path"))
    host.update(pkcs11_uri=token.uri("jwt-signing"), pkcs11_pin_file=token.pin_file(tmp_path / "host" / "keys" / "pin"),
                algorithm="PS256")
    result = run_module_main(token_refresher, host, capsys).result
    assert result["changed"] is True and "failed" not in result, result
    first = open(result["token_file"]).read()

    env = dict(token.env, PATH="/usr/bin:/bin", PYTHONNOUSERSITE="1")

    def command(*args):
        done = subprocess.run([result["command"]] + list(args), env=env, capture_output=True, text=True, check=False,
                              timeout=120)
        assert pin not in done.stdout + done.stderr
        return done

    kept = command("--json")
    assert kept.returncode == 0, kept.stderr
    facts = json.loads(kept.stdout)
    assert facts["source"] == "kept" and facts["kid"] == _jwk.key_thumbprint(public) and facts["alg"] == "PS256"
    forced = command("--force")
    assert forced.returncode == 0, forced.stderr
    token_text = forced.stdout.strip()
    assert token_text != first and open(result["token_file"]).read() == token_text
    claims = jwt.decode(token_text, public, algorithms=["PS256"], audience="orders-api", issuer=ISSUER)
    assert claims["sub"] == "edge-01" and claims["scope"] == "orders.read"
    again = command()
    assert again.returncode == 0 and again.stdout.strip() == token_text
    # No Ansible on the import path: the token key comes from the installed _pkcs11.
    check = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[0] = %r; import selfjwt_refresher; "
         "from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11; print(_pkcs11.__file__); "
         "print('ansible' in sys.modules)" % host["lib_dir"]],
        env=env, capture_output=True, text=True, check=True, cwd=host["lib_dir"])
    lines = check.stdout.split()
    assert lines[0].startswith(host["lib_dir"]) and lines[1] == "False"
    # Without the token's configuration the token is not found, and the command says so.
    lost = subprocess.run([result["command"], "--force"], env=dict(env, SOFTHSM2_CONF=str(tmp_path / "none.conf")),
                          capture_output=True, text=True, check=False, timeout=120)
    assert lost.returncode == 1 and pin not in lost.stderr
    assert lost.stderr.startswith("selfjwt-token: error: cannot load the PKCS#11 library"), lost.stderr


def test_the_installed_command_signs_with_a_key_in_a_tpm(tpm_token, tmp_path, capsys, monkeypatch):
    """The same on the software TPM 2.0: the installed command signs ES256 through libtpm2_pkcs11."""
    monkeypatch.setattr(install, "SYSTEMD_RUNTIME_DIR", str(tmp_path / "no-systemd"))
    token = use_token(monkeypatch, tpm_token)
    with _pkcs11.open_session(_pkcs11.parse_uri(token.uri("refresher-es256")), token.pin, write=True) as session:
        public = session.generate("ec", curve="P-256").public_key()
    host = refresher_host(tmp_path / "host", ec.generate_private_key(ec.SECP256R1()), ISSUER)
    os.unlink(host.pop("key_path"))
    host.update(pkcs11_uri=token.uri("refresher-es256"),
                pkcs11_pin_file=token.pin_file(tmp_path / "host" / "keys" / "pin"))
    result = run_module_main(token_refresher, host, capsys).result
    assert result["changed"] is True and "failed" not in result, result
    forced = subprocess.run([result["command"], "--force"], env=dict(token.env, PATH="/usr/bin:/bin"),
                            capture_output=True, text=True, check=False, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert token.pin not in forced.stdout + forced.stderr
    claims = jwt.decode(forced.stdout.strip(), public, algorithms=["ES256"], audience="orders-api", issuer=ISSUER)
    assert claims["sub"] == "edge-01" and jwt.get_unverified_header(forced.stdout.strip())["kid"] == \
        _jwk.key_thumbprint(public)
