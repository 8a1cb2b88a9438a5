# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwt_keyring module with a signing key in a PKCS#11 token (pkcs11_uri): main() in-process, SoftHSM2."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible_collections.selfjwt.kyma.plugins.doc_fragments import pkcs11 as pkcs11_fragment
from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _jwk, _keyring, _pkcs11, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keyring
from helpers import SteppingClock, run_module_main  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error


@pytest.fixture
def hsm(tmp_path, monkeypatch):
    return use_token(monkeypatch, SoftHSMToken(tmp_path, label="edge"))


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = SteppingClock()
    monkeypatch.setattr(_keyring, "time", fake)
    return fake


@pytest.fixture
def ring(hsm, tmp_path):
    """Module arguments for the ring of the key labelled jwt-signing (created here, as jwt_keypair would)."""
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o700)
    uri = _pkcs11.parse_uri(hsm.uri("jwt-signing"))
    with _pkcs11.open_session(uri, hsm.pin, write=True) as session:
        session.generate("ec", label="jwt-signing")
    return {"pkcs11_uri": hsm.uri("jwt-signing"), "pkcs11_pin_file": hsm.pin_file(directory / "pin"),
            "state_path": str(directory / "signing.ring.json"), "propagation_window": 0, "token_max_lifetime": 0,
            "clock_skew": 0}


def call(capsys, hsm, args, check_mode=False, diff=True):
    out, result, _code = run_module_main(jwt_keyring, args, capsys, check_mode=check_mode, diff=diff)
    assert hsm.pin not in out and "PRIVATE KEY" not in out
    return result


def signing_kid(hsm):
    session, key = _pkcs11.open_key(hsm.uri("jwt-signing"), pin=hsm.pin)
    try:
        return _token.mint(key, "https://edge.example", "edge-01").kid
    finally:
        session.close()


def test_rotation_through_the_module(hsm, ring, capsys):
    status = call(capsys, hsm, dict(ring, action="status"))
    assert status["changed"] is False and status["would_change"] is True
    old = status["signing_kid"]
    staged = call(capsys, hsm, dict(ring, action="rotate"))
    assert [item["step"] for item in staged["performed"]] == ["adopt", "stage"]
    assert staged["state_file"] == ring["state_path"] and os.stat(ring["state_path"]).st_mode & 0o777 == 0o600
    assert staged["diff"]["before"] == {"keys": []} and len(staged["diff"]["after"]["keys"]) == 2
    assert all(len(item["object_id"]) == 32 for item in staged["keys"])
    marked = call(capsys, hsm, dict(ring, action="mark_published", published_kids=staged["kids"]))
    assert sorted(item["step"] for item in marked["performed"]) == ["published", "published"]
    activated = call(capsys, hsm, dict(ring, action="auto"))
    new = activated["signing_kid"]
    assert new != old and activated["performed"][0]["step"] == "activate" and signing_kid(hsm) == new
    retired = call(capsys, hsm, dict(ring, action="auto"))
    assert retired["performed"] == [{"step": "retire", "kid": old}] and retired["kids"] == [new]
    call(capsys, hsm, dict(ring, action="mark_published", published_kids=[new]))
    done = call(capsys, hsm, dict(ring, action="auto"))
    assert done["changed"] is False and done["in_progress"] is False
    # The JWK of the key in the token is the one a key file with that key gets.
    with _pkcs11.open_session(_pkcs11.parse_uri(ring["pkcs11_uri"]), hsm.pin) as session:
        assert done["jwks"] == [_jwk.public_jwk(session.key())]


def test_check_mode_writes_nothing(hsm, ring, capsys):
    result = call(capsys, hsm, dict(ring, action="rotate"), check_mode=True)
    assert result["changed"] is True and result["performed"][-1] == {"step": "stage", "kid": None}
    assert not os.path.exists(ring["state_path"])
    with _pkcs11.open_session(_pkcs11.parse_uri(ring["pkcs11_uri"]), hsm.pin) as session:
        assert [label for label, _id in session.private_keys()] == ["jwt-signing"]


def test_pin_option_is_kept_out_of_the_output(hsm, ring, capsys):
    args = dict(ring, pkcs11_pin=hsm.pin, action="rotate")
    args.pop("pkcs11_pin_file")
    result = call(capsys, hsm, args)
    assert [item["step"] for item in result["performed"]] == ["adopt", "stage"]


@pytest.mark.parametrize("change, message", [
    ({"path": "/etc/selfjwt/signing.pem"}, "parameters are mutually exclusive: path|pkcs11_uri"),
    ({"state_path": None}, "missing parameter(s) required by 'pkcs11_uri': state_path"),
    ({"pkcs11_uri": None}, "missing parameter(s) required by 'state_path': pkcs11_uri"),
    ({"passphrase": "pw-123456"}, "parameters are mutually exclusive: passphrase|pkcs11_uri"),
    ({"pkcs11_pin": "1234"}, "parameters are mutually exclusive: pkcs11_pin|pkcs11_pin_file"),
    ({"pkcs11_uri": "pkcs11:token=edge;object=jwt-signing;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so"},
     "names an id"),
    ({"state_path": "relative.json"}, "set state_path to an absolute path"),
])
def test_bad_options_fail_clearly(hsm, ring, capsys, change, message):
    args = dict((name, value) for name, value in dict(ring, **change).items() if value is not None)
    result = call(capsys, hsm, args)
    assert result["failed"] is True and message in result["msg"] and "Traceback" not in result["msg"]
    assert not os.path.exists(ring["state_path"])


def test_pin_file_others_can_read_is_refused(hsm, ring, capsys):
    os.chmod(ring["pkcs11_pin_file"], 0o644)
    result = call(capsys, hsm, ring)
    assert result["failed"] is True and "has mode 0644, so others may read it" in result["msg"]


@pytest.mark.parametrize("section, spec", [("DOCUMENTATION", _argspec.pkcs11_argument_spec),
                                           ("RING", _argspec.pkcs11_ring_argument_spec)])
def test_the_pkcs11_fragments_document_their_argument_specs(section, spec):
    documented = yaml.safe_load(getattr(pkcs11_fragment.ModuleDocFragment, section))["options"]
    assert sorted(documented) == sorted(spec())
    for name, option in spec().items():
        assert documented[name]["type"] == option["type"] and "default" not in documented[name], name
    assert set(spec()) <= set(jwt_keyring.argument_spec())
