# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""jwt_token with a key in a PKCS#11 token (pkcs11_uri): a real SoftHSM2 token per test, main() in-process.

The key pair is generated in the token by ``_pkcs11`` (non-extractable); the module signs through
the token. Tokens are verified here with PyJWT and the public key that the token holds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import jwt
import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_token
from helpers import run_module_main  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

ISSUER = "https://edge.example.com"
#: A PIN that nothing else in a module result could contain by chance.
PIN = "pin-5e1d7c0a-user"

#: algorithm -> key generation arguments of TokenSession.generate
KEYS = {
    "ES256": {"key_type": "ec", "curve": "P-256"},
    "ES384": {"key_type": "ec", "curve": "P-384"},
    "RS256": {"key_type": "rsa", "size": 2048},
    "PS256": {"key_type": "rsa", "size": 2048},
    "EdDSA": {"key_type": "ed25519"},
}


@pytest.fixture
def token(tmp_path, monkeypatch):
    """A fresh SoftHSM2 token that this process's PKCS#11 library shows."""
    return use_token(monkeypatch, SoftHSMToken(tmp_path, label="edge", pin=PIN))


def make_key(token, label="jwt-signing", **generate):
    """Generate a key pair in the token; returns its public key."""
    with _pkcs11.open_session(_pkcs11.parse_uri(token.uri(label)), token.pin, write=True) as session:
        return session.generate(**(generate or KEYS["ES256"])).public_key()


def run(capsys, args, check_mode=False, diff=False):
    """(raw stdout, parsed result) of the module run like Ansible runs it."""
    return run_module_main(jwt_token, args, capsys, check_mode=check_mode, diff=diff)[:2]


def args_for(token, tmp_path, label="jwt-signing", **extra):
    args = {"pkcs11_uri": token.uri(label), "pkcs11_pin_file": token.pin_file(tmp_path / "pin"),
            "issuer": ISSUER, "subject": "edge-01", "audience": "orders-api"}
    args.update(extra)
    return args


def assert_no_pin(out, result):
    assert PIN not in out
    assert PIN not in json.dumps(result)


@pytest.fixture(autouse=True)
def _sessions(monkeypatch):
    """Count the token sessions opened and closed (the real ones: the methods run unchanged)."""
    counts = {"opened": 0, "closed": 0}
    real_open, real_close = _pkcs11.open_session, _pkcs11.TokenSession.close

    def counting_open(*args, **kwargs):
        session = real_open(*args, **kwargs)
        counts["opened"] += 1
        return session

    def counting_close(self):
        if self.session is not None:
            counts["closed"] += 1
        real_close(self)

    monkeypatch.setattr(_pkcs11, "open_session", counting_open)
    monkeypatch.setattr(_pkcs11.TokenSession, "close", counting_close)
    return counts


# --------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_signs_through_the_token_with_every_algorithm(token, tmp_path, capsys, algorithm, _sessions):
    public = make_key(token, **KEYS[algorithm])
    _sessions.update(opened=0, closed=0)
    out, result = run(capsys, args_for(token, tmp_path, algorithm=algorithm, claims={"scope": "orders.read"}))
    assert "failed" not in result, result
    assert result["changed"] is False
    claims = jwt.decode(result["token"], public, algorithms=[algorithm], audience="orders-api", issuer=ISSUER)
    assert claims == result["claims"] and claims["scope"] == "orders.read" and claims["sub"] == "edge-01"
    header = jwt.get_unverified_header(result["token"])
    assert header == result["header"] and header["alg"] == algorithm and header["typ"] == "JWT"
    # The kid is the RFC 7638 thumbprint of the public key, as for a key file with the same key.
    assert result["kid"] == header["kid"] == _jwk.key_thumbprint(public) == _jwk.public_jwk(public)["kid"]
    assert_no_pin(out, result)
    assert _sessions == {"opened": 1, "closed": 1}


def test_default_algorithm_follows_the_key_as_for_a_key_file(token, tmp_path, capsys):
    public = make_key(token, key_type="rsa", size=2048)
    _out, result = run(capsys, args_for(token, tmp_path))
    assert result["header"]["alg"] == "RS256"
    jwt.decode(result["token"], public, algorithms=["RS256"], audience="orders-api")


def test_the_pin_option_works_and_never_shows(token, tmp_path, capsys):
    public = make_key(token)
    args = args_for(token, tmp_path, dest=str(tmp_path / "token"))
    del args["pkcs11_pin_file"]
    args["pkcs11_pin"] = PIN
    out, result = run(capsys, args, diff=True)
    assert result["changed"] is True
    jwt.decode(result["token"], public, algorithms=["ES256"], audience="orders-api")
    assert "pkcs11_pin" in result["invocation"]["module_args"]
    assert_no_pin(out, result)
    assert PIN not in json.dumps(result["diff"])


def test_a_pin_source_in_the_uri(token, tmp_path, capsys):
    public = make_key(token)
    args = args_for(token, tmp_path)
    args["pkcs11_uri"] = token.uri("jwt-signing", pin_source=args.pop("pkcs11_pin_file"))
    _out, result = run(capsys, args)
    jwt.decode(result["token"], public, algorithms=["ES256"], audience="orders-api")


# --------------------------------------------------------------------------------------
# Token files: the rules of key files
# --------------------------------------------------------------------------------------

def test_dest_is_kept_on_the_second_run_and_renewed_when_the_claims_change(token, tmp_path, capsys, _sessions):
    public = make_key(token)
    _sessions.update(opened=0, closed=0)
    dest = str(tmp_path / "token")
    _out, first = run(capsys, args_for(token, tmp_path, dest=dest), diff=True)
    assert first["changed"] is True and first["dest"] == dest
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    with open(dest) as handle:
        assert handle.read() == first["token"]
    jwt.decode(first["token"], public, algorithms=["ES256"], audience="orders-api")
    assert first["diff"]["before"] == {} and first["diff"]["after"]["header"]["kid"] == first["kid"]
    assert first["token"] not in json.dumps(first["diff"])

    out, second = run(capsys, args_for(token, tmp_path, dest=dest), diff=True)
    assert second["changed"] is False and second["token"] == first["token"]
    assert second["diff"]["before"] == second["diff"]["after"]
    assert_no_pin(out, second)

    _out, third = run(capsys, args_for(token, tmp_path, dest=dest, subject="edge-02"))
    assert third["changed"] is True and third["claims"]["sub"] == "edge-02"
    with open(dest) as handle:
        assert handle.read() == third["token"]
    assert _sessions == {"opened": 3, "closed": 3}


def test_a_token_from_another_key_is_replaced(token, tmp_path, capsys):
    make_key(token, label="old")
    public = make_key(token, label="new")
    dest = str(tmp_path / "token")
    _out, first = run(capsys, args_for(token, tmp_path, label="old", dest=dest))
    _out, second = run(capsys, args_for(token, tmp_path, label="new", dest=dest))
    assert second["changed"] is True and second["kid"] != first["kid"]
    with open(dest) as handle:
        jwt.decode(handle.read(), public, algorithms=["ES256"], audience="orders-api")


def test_check_mode_writes_nothing(token, tmp_path, capsys):
    public = make_key(token)
    dest = tmp_path / "token"
    before = sorted(os.listdir(str(tmp_path)))
    _out, result = run(capsys, args_for(token, tmp_path, dest=str(dest)), check_mode=True)
    assert result["changed"] is True
    assert not dest.exists()
    assert sorted(os.listdir(str(tmp_path))) == sorted(before + ["pin"])
    jwt.decode(result["token"], public, algorithms=["ES256"], audience="orders-api")

    _out, written = run(capsys, args_for(token, tmp_path, dest=str(dest)))
    _out, result = run(capsys, args_for(token, tmp_path, dest=str(dest), refresh_margin=600), check_mode=True)
    assert result["changed"] is True
    assert dest.read_text() == written["token"]


# --------------------------------------------------------------------------------------
# What goes wrong: one clear message, no traceback, no PIN, nothing written
# --------------------------------------------------------------------------------------

def _uri_without(uri, part):
    return uri.replace(part, "")


@pytest.mark.parametrize("case, message", [
    ("wrong_pin", "refused the PIN: check the PIN file"),
    ("missing_pin_file", "does not exist: write the token's user PIN into it (mode 0600)"),
    ("pin_file_0644", "has mode 0644, so others may read it; refusing to use it: run 'chmod 600"),
    ("linked_pin_file", "is a symbolic link, and links are not followed"),
    ("foreign_pin_file", "belongs to nobody (uid 65534), not to"),
    ("no_pin", "needs its user PIN: set pkcs11_pin_file"),
    ("unknown_token", "no token matches"),
    ("unknown_object", "there is no private key object 'absent' in token 'edge'"),
    ("pin_value", "carries the PIN (pin-value)"),
    ("no_module_path", "names no PKCS#11 library: add ?module-path="),
    ("missing_library", "the PKCS#11 library /usr/lib/no-such-pkcs11.so does not exist"),
    ("not_a_uri", "is not a PKCS#11 URI: it must start with 'pkcs11:'"),
    ("wrong_algorithm", "needs a key of type RSA, but the key is of type EC"),
    ("missing_dest_dir", "does not exist: create it first"),
])
def test_token_problems_fail_cleanly(token, tmp_path, capsys, case, message, _sessions):
    make_key(token)
    _sessions.update(opened=0, closed=0)
    args = args_for(token, tmp_path)
    pin_file = args["pkcs11_pin_file"]
    if case == "wrong_pin":
        del args["pkcs11_pin_file"]
        args["pkcs11_pin"] = "9999-wrong"
    elif case == "missing_pin_file":
        os.unlink(pin_file)
    elif case == "pin_file_0644":
        os.chmod(pin_file, 0o644)
    elif case == "linked_pin_file":
        os.symlink(pin_file, str(tmp_path / "pin-link"))
        args["pkcs11_pin_file"] = str(tmp_path / "pin-link")
    elif case == "foreign_pin_file":
        os.chown(pin_file, 65534, 65534)
    elif case == "no_pin":
        del args["pkcs11_pin_file"]
    elif case == "unknown_token":
        args["pkcs11_uri"] = args["pkcs11_uri"].replace("token=edge", "token=elsewhere")
    elif case == "unknown_object":
        args["pkcs11_uri"] = token.uri("absent")
    elif case == "pin_value":
        args["pkcs11_uri"] += "&pin-value=" + PIN
    elif case == "no_module_path":
        args["pkcs11_uri"] = _uri_without(args["pkcs11_uri"], "?module-path=" + token.module_path)
    elif case == "missing_library":
        args["pkcs11_uri"] = args["pkcs11_uri"].replace(token.module_path, "/usr/lib/no-such-pkcs11.so")
    elif case == "not_a_uri":
        args["pkcs11_uri"] = "/etc/selfjwt/signing.pem"
    elif case == "wrong_algorithm":
        args["algorithm"] = "RS256"
    elif case == "missing_dest_dir":
        args["dest"] = str(tmp_path / "missing" / "token")
    before = sorted(os.listdir(str(tmp_path)))
    out, result = run(capsys, args)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert "Traceback" not in out and "exception" not in result
    assert "token" not in result
    assert_no_pin(out, result)
    assert sorted(os.listdir(str(tmp_path))) == before
    # Every session that was opened was closed, also when the run failed after opening it.
    assert _sessions["opened"] == _sessions["closed"]
    if case in ("wrong_algorithm", "missing_dest_dir"):
        assert _sessions["opened"] == 1


@pytest.mark.parametrize("extra, message", [
    ({"private_key_path": "/etc/selfjwt/signing.pem"},
     "parameters are mutually exclusive: private_key_path|private_key_content|pkcs11_uri"),
    ({"private_key_content": "-----BEGIN PRIVATE KEY-----"},
     "parameters are mutually exclusive: private_key_path|private_key_content|pkcs11_uri"),
    ({"passphrase": "secret"}, "parameters are mutually exclusive: pkcs11_uri|passphrase"),
    ({"pkcs11_pin": PIN}, "parameters are mutually exclusive: pkcs11_pin|pkcs11_pin_file"),
])
def test_option_rules(token, tmp_path, capsys, extra, message):
    out, result = run(capsys, args_for(token, tmp_path, **extra))
    assert result["failed"] is True and message in result["msg"]
    assert_no_pin(out, result)


def test_a_pin_without_a_uri_is_refused(tmp_path, capsys):
    out, result = run(capsys, {"private_key_path": str(tmp_path / "key.pem"), "pkcs11_pin": PIN, "issuer": ISSUER,
                               "subject": "edge-01"})
    assert result["failed"] is True and "missing parameter(s) required by 'pkcs11_pin': pkcs11_uri" in result["msg"]
    assert_no_pin(out, result)


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "RS256", "PS256"])
def test_signs_through_a_tpm_with_dest(tpm_token, tmp_path, capsys, monkeypatch, algorithm, _sessions):
    """The same module run on the software TPM 2.0 (libtpm2_pkcs11): a token file kept, then verified."""
    tpm = use_token(monkeypatch, tpm_token)
    label = "jwt-token-" + algorithm
    public = make_key(tpm, label, **KEYS[algorithm])
    dest = str(tmp_path / "token")
    args = {"pkcs11_uri": tpm.uri(label), "pkcs11_pin_file": tpm.pin_file(tmp_path / "pin"), "issuer": ISSUER,
            "subject": "edge-tpm", "audience": "orders-api", "algorithm": algorithm, "dest": dest}
    _out, first = run(capsys, args)
    _out, second = run(capsys, args)
    assert "failed" not in first, first
    assert first["changed"] is True and second["changed"] is False and second["token"] == first["token"]
    claims = jwt.decode(first["token"], public, algorithms=[algorithm], audience="orders-api", issuer=ISSUER)
    assert claims["sub"] == "edge-tpm" and first["kid"] == _jwk.key_thumbprint(public)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert _sessions["opened"] == _sessions["closed"]
