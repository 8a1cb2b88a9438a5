# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token refresher (module_utils/_refresher.py) with a key in a PKCS#11 token: a real SoftHSM2 token per test.

The configuration names the key by its URI (key.pkcs11_uri) and the PIN by its file
(key.pkcs11_pin_file); the refresh rules are those of a key file (test_refresher.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import io
import json
import os
import time

import jwt
import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher as refresher
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

ISSUER = "http://edge-jwks.kyma-system.svc.cluster.local"
PIN = "pin-90c1d2aa-refresher"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A token with an EC P-256 key, its PIN file (0600), a token directory and a configuration as the installer writes it."""
    token = use_token(monkeypatch, SoftHSMToken(tmp_path / "hsm", pin=PIN))
    with _pkcs11.open_session(_pkcs11.parse_uri(token.uri("jwt-signing")), PIN, write=True) as session:
        public = session.generate("ec", curve="P-256").public_key()
    (tmp_path / "keys").mkdir(mode=0o700)
    pin_file = token.pin_file(tmp_path / "keys" / "pin")
    token_dir = tmp_path / "state"
    token_dir.mkdir(mode=0o700)
    config = {
        "version": 1,
        "user": None,
        "key": {"path": None, "kid": None, "algorithm": None, "passphrase_file": None,
                "pkcs11_uri": token.uri("jwt-signing"), "pkcs11_pin_file": pin_file},
        "token": {"issuer": ISSUER, "subject": "edge-01", "audience": "orders-api", "expires_in": 600,
                  "max_lifetime": 3600, "not_before": 0, "scopes": ["orders.read"], "claims": {},
                  "jku": ISSUER + "/.well-known/jwks.json"},
        "token_file": {"path": str(token_dir / "token"), "mode": "0600", "group": None, "refresh_margin": 200},
    }
    config_path = tmp_path / "refresher.json"
    config_path.write_text(json.dumps(config))
    return {"config": config, "config_path": str(config_path), "public": public, "token": token, "tmp": tmp_path,
            "pin_file": pin_file}


def _write_config(setup, config):
    with open(setup["config_path"], "w") as handle:
        json.dump(config, handle)


def _main(args, setup):
    out, err = io.StringIO(), io.StringIO()
    status = refresher.main(args, default_config=setup["config_path"], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _verify(token, setup, audience="orders-api"):
    return jwt.decode(token, setup["public"], algorithms=["ES256"], issuer=ISSUER, audience=audience,
                      options={"require": ["iss", "sub", "exp", "iat", "nbf", "jti"]})


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

def test_load_config_accepts_a_token_key(setup):
    assert refresher.load_config(setup["config_path"]) == setup["config"]


@pytest.mark.parametrize("change, message", [
    ({"path": "/etc/selfjwt/signing.pem"}, r"names both a key file \(key.path, key.passphrase_file\) and a key in a "
                                           r"PKCS#11 token"),
    ({"passphrase_file": "/etc/selfjwt/signing.pem.passphrase"}, "names both a key file"),
    ({"pkcs11_uri": None}, r"key.path in the refresher configuration .* must be a string, got None"),
    ({"pkcs11_uri": "/etc/selfjwt/signing.pem"}, "key.pkcs11_uri in the refresher configuration .* is not a PKCS#11 URI"),
    ({"pkcs11_uri": 5}, r"key.pkcs11_uri in the refresher configuration .* must be a string or null, got 5"),
    ({"pkcs11_pin_file": ["/pin"]}, r"key.pkcs11_pin_file .* must be a string or null"),
    ({"pkcs11_pin_file": "/x\0y"}, "NUL character or text that is not UTF-8"),
])
def test_load_config_refuses_mixed_or_bad_key_members(setup, change, message):
    config = copy.deepcopy(setup["config"])
    config["key"].update(change)
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match=message):
        refresher.load_config(setup["config_path"])


def test_load_config_refuses_a_pin_in_the_uri(setup):
    config = copy.deepcopy(setup["config"])
    config["key"]["pkcs11_uri"] += "&pin-value=" + PIN
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match=r"carries the PIN \(pin-value\)") as excinfo:
        refresher.load_config(setup["config_path"])
    assert PIN not in str(excinfo.value)


def test_load_config_refuses_a_pin_file_beside_a_key_file(setup):
    config = copy.deepcopy(setup["config"])
    config["key"].update(path="/etc/selfjwt/signing.pem", pkcs11_uri=None)
    _write_config(setup, config)
    with pytest.raises(refresher.RefresherError, match="key.pkcs11_pin_file .* goes with key.pkcs11_uri"):
        refresher.load_config(setup["config_path"])


# --------------------------------------------------------------------------------------
# Minting and keeping tokens: the rules of key files
# --------------------------------------------------------------------------------------

def test_run_mints_then_keeps_the_token(setup):
    config = setup["config"]
    first, facts, warning = refresher.run(config)
    assert facts["changed"] and facts["source"] == "minted" and warning is None
    claims = _verify(first.token, setup)
    assert claims["sub"] == "edge-01" and claims["scope"] == "orders.read" and claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(first.token)["kid"] == _jwk.key_thumbprint(setup["public"]) == facts["kid"]
    with open(config["token_file"]["path"]) as handle:
        assert handle.read() == first.token
    assert oct(os.stat(config["token_file"]["path"]).st_mode & 0o777) == "0o600"
    second, facts, _warning = refresher.run(config)
    assert second.token == first.token and not facts["changed"] and facts["source"] == "kept"


def test_run_renews_within_the_margin_and_force_replaces(setup):
    config = setup["config"]
    now = int(time.time())
    first, _facts, _warning = refresher.run(config, now=now - 450)
    kept, facts, _warning = refresher.run(config, now=now - 350)
    assert kept.token == first.token and not facts["changed"]
    renewed, facts, _warning = refresher.run(config, now=now)
    assert renewed.token != first.token and facts["changed"] and "refresh margin" in facts["reason"]
    forced, facts, _warning = refresher.run(config, force=True)
    assert forced.token != renewed.token and facts["changed"]
    _verify(forced.token, setup)


def test_run_check_writes_nothing(setup):
    config = setup["config"]
    _result, facts, _warning = refresher.run(config, check=True)
    assert facts["changed"] and not os.path.exists(config["token_file"]["path"])


def test_a_pin_source_in_the_uri_instead_of_a_pin_file(setup):
    config = copy.deepcopy(setup["config"])
    config["key"].update(pkcs11_uri=setup["token"].uri("jwt-signing", pin_source=setup["pin_file"]),
                         pkcs11_pin_file=None)
    result, facts, _warning = refresher.run(config)
    assert facts["changed"]
    _verify(result.token, setup)


@pytest.mark.parametrize("case, message", [
    ("mode_0644", "has mode 0644, so others may read it"),
    ("other_owner", "belongs to nobody (uid 65534), not to root (uid 0)"),
    ("link", "is a symbolic link"),
    ("missing", "does not exist: write the token's user PIN into it"),
    ("wrong_pin", "refused the PIN: check pkcs11_pin_file"),
    ("absent_key", "there is no private key object 'absent' in token 'edge'"),
])
def test_pin_and_key_problems_stop_the_refresher_with_a_message(setup, case, message):
    config = copy.deepcopy(setup["config"])
    pin_file = setup["pin_file"]
    if case == "mode_0644":
        os.chmod(pin_file, 0o644)
    elif case == "other_owner":
        os.chown(pin_file, 65534, 65534)
    elif case == "link":
        os.symlink(pin_file, pin_file + ".link")
        config["key"]["pkcs11_pin_file"] = pin_file + ".link"
    elif case == "missing":
        os.unlink(pin_file)
    elif case == "wrong_pin":
        with open(pin_file, "w") as handle:
            handle.write("9999-wrong\n")
    elif case == "absent_key":
        config["key"]["pkcs11_uri"] = setup["token"].uri("absent")
    _write_config(setup, config)
    status, out, err = _main([], setup)
    assert status == 1 and out == ""
    assert err.startswith("selfjwt-token: error: ") and message in err, err
    assert PIN not in err and "Traceback" not in err
    assert not os.path.exists(config["token_file"]["path"])


# --------------------------------------------------------------------------------------
# Callers that may read the token file but not the PIN
# --------------------------------------------------------------------------------------

def _deny(monkeypatch, denied_path):
    real_open = os.open

    def denied(path, *args, **kwargs):
        if path == denied_path:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)


def test_key_readable_is_the_pin_file(setup, monkeypatch):
    config = setup["config"]
    assert refresher.key_readable(config)
    missing = copy.deepcopy(config)
    missing["key"]["pkcs11_pin_file"] = str(setup["tmp"] / "nope")
    assert refresher.key_readable(missing)  # the minting path reports a missing PIN file
    without_pin = copy.deepcopy(config)
    without_pin["key"]["pkcs11_pin_file"] = None
    assert refresher.key_readable(without_pin)  # a token that needs no login: the token decides
    _deny(monkeypatch, setup["pin_file"])
    assert not refresher.key_readable(config)


def test_a_caller_without_the_pin_gets_the_token_from_the_file(setup, monkeypatch):
    config = setup["config"]
    first, _facts, _warning = refresher.run(config)
    _deny(monkeypatch, setup["pin_file"])
    result, facts, warning = refresher.run(config)
    assert result.token == first.token
    assert facts["source"] == "token file" and not facts["changed"] and warning is None
    with pytest.raises(refresher.RefresherError, match=r"--force needs the key object 'jwt-signing' in token 'edge' "
                                                       r"\(its PIN file .*/keys/pin\), which this user may not read"):
        refresher.run(config, force=True)


def test_a_caller_without_the_pin_and_without_a_token_file(setup, monkeypatch):
    _deny(monkeypatch, setup["pin_file"])
    with pytest.raises(refresher.RefresherError, match=r"does not exist yet and this user may not read the key "
                                                       r"object 'jwt-signing' in token 'edge' \(its PIN file"):
        refresher.run(setup["config"])


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def test_main_prints_the_token_and_json_facts(setup):
    status, out, err = _main([], setup)
    assert status == 0 and err == ""
    token = out.strip()
    assert _verify(token, setup)["iss"] == ISSUER
    status, out, _err = _main(["--json"], setup)
    facts = json.loads(out)
    assert status == 0 and token not in out and PIN not in out
    assert facts["source"] == "kept" and facts["kid"] == _jwk.key_thumbprint(setup["public"])


def test_main_without_python_pkcs11(setup, monkeypatch):
    monkeypatch.setattr(_pkcs11, "HAS_PKCS11", False)
    status, out, err = _main([], setup)
    assert status == 1 and out == ""
    assert "needs the Python package python-pkcs11" in err and "edge_keys_key_backend is pkcs11" in err
