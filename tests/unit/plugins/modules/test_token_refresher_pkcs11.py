# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""token_refresher with a key in a PKCS#11 token (pkcs11_uri, pkcs11_pin_file): a real SoftHSM2 token per test.

main() runs in-process; the first token is signed through the token. The installed command itself
runs as a process in tests/system/test_refresher_files.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import jwt
import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _pkcs11, _refresher, _refresher_install
from ansible_collections.selfjwt.kyma.plugins.modules import token_refresher
from helpers import read_file as read, run_module_main, tree_state  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

ISSUER = "https://edge-jwks.kyma-system.svc.cluster.local"
PIN = "pin-3b8e41f7-fleet"


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A token with an EC key and a PIN file (0600), and the module arguments of a host without systemd."""
    monkeypatch.setattr(_refresher_install, "SYSTEMD_RUNTIME_DIR", str(tmp_path / "no-systemd"))
    token = use_token(monkeypatch, SoftHSMToken(tmp_path / "hsm", pin=PIN))
    with _pkcs11.open_session(_pkcs11.parse_uri(token.uri("jwt-signing")), PIN, write=True) as session:
        public = session.generate("ec", curve="P-256").public_key()
    root = tmp_path / "host"
    (root / "keys").mkdir(parents=True, mode=0o700)
    args = {
        "pkcs11_uri": token.uri("jwt-signing"),
        "pkcs11_pin_file": token.pin_file(root / "keys" / "pin"),
        "issuer": ISSUER,
        "subject": "edge-01",
        "audience": "orders-api",
        "scopes": ["orders.read"],
        "token_dir": str(root / "state"),
        "lib_dir": str(root / "lib"),
        "bin_dir": str(root / "bin"),
        "python": sys.executable,
        "scheduler": "cron",
        "cron_file": str(root / "cron"),
    }
    return {"args": args, "public": public, "root": str(root), "token": token}


def run_module(capsys, args, check_mode=False, diff=False):
    return run_module_main(token_refresher, args, capsys, check_mode=check_mode, diff=diff)[:2]


def everything_below(root):
    """The text of every file below ``root``."""
    texts = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            texts.append(read(os.path.join(directory, name)).decode("utf-8", "replace"))
    return "\n".join(texts)


def test_installs_and_signs_the_first_token_through_the_token(host, capsys):
    out, result = run_module(capsys, host["args"], diff=True)
    assert result["changed"] is True and "failed" not in result, result
    token = read(result["token_file"]).decode("ascii")
    claims = jwt.decode(token, host["public"], algorithms=["ES256"], audience="orders-api", issuer=ISSUER)
    assert claims["sub"] == "edge-01" and claims["scope"] == "orders.read"
    assert result["token_status"]["kid"] == _jwk.key_thumbprint(host["public"])
    # The configuration names the token key and the PIN file; the PIN is nowhere.
    config = _refresher.load_config(result["config_path"])
    assert config["key"] == {"path": None, "kid": None, "algorithm": None, "passphrase_file": None,
                             "pkcs11_uri": host["args"]["pkcs11_uri"],
                             "pkcs11_pin_file": host["args"]["pkcs11_pin_file"]}
    module_utils = os.path.join(host["args"]["lib_dir"], "ansible_collections/selfjwt/kyma/plugins/module_utils")
    installed = read(os.path.join(module_utils, "_pkcs11.py"))
    assert installed == read(_pkcs11.__file__)
    assert PIN not in out and token not in out
    below = everything_below(host["root"])
    assert below.count(PIN) == 1  # the PIN file itself
    assert PIN not in read(result["command"]).decode() and PIN not in read(host["args"]["cron_file"]).decode()


def test_second_run_changes_nothing_and_check_mode_predicts(host, capsys):
    run_module(capsys, host["args"])
    before = tree_state(host["root"], mtime=True)
    _out, result = run_module(capsys, host["args"])
    assert result["changed"] is False and result["token_status"]["source"] == "kept"
    _out, result = run_module(capsys, dict(host["args"], audience="billing-api"), check_mode=True)
    assert result["changed"] is True and result["token_status"]["changed"] is True
    assert tree_state(host["root"], mtime=True) == before


def test_check_mode_on_a_new_host_writes_nothing(host, capsys):
    os.unlink(host["args"]["pkcs11_pin_file"])
    before = tree_state(host["root"])
    _out, result = run_module(capsys, host["args"], check_mode=True)
    assert "failed" not in result and result["changed"] is True
    assert "would be written" in result["token_status"]["reason"]
    assert tree_state(host["root"]) == before


def _refused(capsys, host, args, message):
    before = tree_state(host["root"])
    out, result = run_module(capsys, args)
    assert result.get("failed") is True and message in result["msg"], result
    assert "Traceback" not in out and PIN not in out
    assert tree_state(host["root"]) == before
    return result


def test_a_pin_option_is_refused_and_never_shown(host, capsys):
    args = dict(host["args"], pkcs11_pin=PIN)
    del args["pkcs11_pin_file"]
    _refused(capsys, host, args, "pkcs11_pin cannot be used with the token refresher: it runs unattended")


def test_a_pin_file_of_another_account_is_refused_before_anything_is_written(host, capsys):
    os.chown(host["args"]["pkcs11_pin_file"], 65534, 65534)
    _refused(capsys, host, host["args"], "belongs to nobody (uid 65534), not to root (uid 0)")


def test_a_pin_file_for_the_owner_must_belong_to_the_owner(host, capsys):
    """Run as root for owner nobody: the refresher reads the PIN as nobody, so a root-owned PIN file is refused."""
    if os.geteuid() != 0:
        pytest.skip("an owner other than the running account needs root")
    _refused(capsys, host, dict(host["args"], owner="nobody"), "belongs to root (uid 0), not to nobody (uid 65534)")


def test_a_pin_file_others_may_read_is_refused(host, capsys):
    os.chmod(host["args"]["pkcs11_pin_file"], 0o640)
    _refused(capsys, host, host["args"], "has mode 0640, so others may read it")


def test_a_python_without_python_pkcs11_is_refused_before_anything_is_written(host, capsys, tmp_path):
    """A Python that cannot import pkcs11 (a real interpreter, with a module path where pkcs11 fails to import)."""
    python = str(tmp_path / "python-without-pkcs11")
    with open(python, "w") as handle:
        handle.write("#!/bin/sh\nexec %s -c 'import sys; sys.modules[\"pkcs11\"] = None; exec(sys.argv[2])' \"$@\"\n"
                     % sys.executable)
    os.chmod(python, 0o755)
    result = _refused(capsys, host, dict(host["args"], python=python),
                      "the refresher's Python %s cannot import python-pkcs11 (ModuleNotFoundError: import of pkcs11 "
                      "halted" % python)
    assert "pip install python-pkcs11" in result["msg"] and "edge_keys_key_backend is pkcs11" in result["msg"]


def test_a_key_that_is_not_in_the_token_is_refused(host, capsys):
    _refused(capsys, host, dict(host["args"], pkcs11_uri=host["token"].uri("absent")),
             "there is no private key object 'absent' in token 'edge'")


def test_the_key_file_options_and_the_token_key_exclude_each_other(host, capsys):
    _refused(capsys, host, dict(host["args"], key_path="/etc/selfjwt/signing.pem"),
             "set exactly one of key_path (a key file) and pkcs11_uri (a key in a PKCS#11 token), not both")
    _refused(capsys, host, dict(host["args"], passphrase_file="/etc/selfjwt/signing.pem.passphrase"),
             "passphrase_file is for an encrypted key file")


def test_diff_never_shows_the_pin(host, capsys):
    out, result = run_module(capsys, host["args"], diff=True)
    diff = json.dumps(result["diff"])
    assert host["args"]["pkcs11_uri"] in diff  # the configuration is shown in full ...
    assert PIN not in out and PIN not in diff  # ... and it holds no PIN
