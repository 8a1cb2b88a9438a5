# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the jwt_token module: runs main() in-process and reads its real JSON output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _token_module
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_token
from helpers import private_key_pem, run_module_main  # pylint: disable=import-error

ISSUER = "https://edge.example.com"
PASSPHRASE = "a long machine-made passphrase 7f3a"


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(directory, key, name="key.pem", passphrase=None):
    data = private_key_pem(key, passphrase)
    path = directory / name
    path.write_bytes(data)
    os.chmod(str(path), 0o600)
    return str(path), data.decode()


def run_module_output(capsys, args, check_mode=False, diff=False):
    """Run the module like Ansible does and return (raw stdout, parsed result)."""
    return run_module_main(jwt_token, args, capsys, check_mode=check_mode, diff=diff)[:2]


def run_module(capsys, args, check_mode=False, diff=False):
    """Run the module like Ansible does and return its parsed result."""
    return run_module_main(jwt_token, args, capsys, check_mode=check_mode, diff=diff).result


def base_args(key_path, **extra):
    args = {"private_key_path": key_path, "issuer": ISSUER, "subject": "edge-01"}
    args.update(extra)
    return args


def test_mint_without_dest_changes_nothing(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    before = sorted(os.listdir(str(tmp_path)))
    result = run_module(capsys, base_args(key_path, audience="orders-api", claims={"scope": "read"}))
    assert result["changed"] is False
    assert "failed" not in result
    claims = jwt.decode(result["token"], ec_key.public_key(), algorithms=["ES256"], audience="orders-api",
                        issuer=ISSUER)
    assert claims == result["claims"]
    assert claims["scope"] == "read"
    assert result["header"]["alg"] == "ES256"
    assert result["kid"] == result["header"]["kid"] == _jwk.key_thumbprint(ec_key)
    assert result["expires_at"] == claims["exp"]
    assert result["expires_at_iso"].endswith("Z")
    assert "dest" not in result
    assert sorted(os.listdir(str(tmp_path))) == before


def test_mint_in_check_mode_still_returns_a_token(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    result = run_module(capsys, base_args(key_path), check_mode=True)
    assert result["changed"] is False
    jwt.decode(result["token"], ec_key.public_key(), algorithms=["ES256"])


def test_key_content_and_passphrase_never_leave_the_module(tmp_path, capsys, rsa_key):
    content = write_key(tmp_path, rsa_key, passphrase=PASSPHRASE)[1]
    args = {"private_key_content": content, "passphrase": PASSPHRASE, "issuer": ISSUER, "subject": "edge-01",
            "dest": str(tmp_path / "token")}
    out, result = run_module_output(capsys, args, diff=True)
    assert result["changed"] is True
    assert "PRIVATE KEY" not in out
    assert PASSPHRASE not in out
    body = "".join(content.splitlines()[1:-1])
    assert body[:64] not in out
    # the token is in the result, but never in the diff
    assert result["token"] not in json.dumps(result["diff"])


def test_dest_idempotence_mode_and_diff(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    dest = str(tmp_path / "token")
    first = run_module(capsys, base_args(key_path, dest=dest), diff=True)
    assert first["changed"] is True
    assert first["dest"] == dest
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    with open(dest) as handle:
        assert handle.read() == first["token"]
    assert first["diff"]["before"] == {}
    assert first["diff"]["after"]["claims"]["sub"] == "edge-01"
    assert first["diff"]["after"]["header"]["kid"] == first["kid"]
    assert first["token"] not in json.dumps(first["diff"])

    second = run_module(capsys, base_args(key_path, dest=dest), diff=True)
    assert second["changed"] is False
    assert second["token"] == first["token"]
    assert second["diff"]["before"] == second["diff"]["after"]

    third = run_module(capsys, base_args(key_path, dest=dest, subject="edge-02"), diff=True)
    assert third["changed"] is True
    assert third["diff"]["before"]["claims"]["sub"] == "edge-01"
    assert third["diff"]["after"]["claims"]["sub"] == "edge-02"


def test_dest_check_mode(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    dest = tmp_path / "token"
    result = run_module(capsys, base_args(key_path, dest=str(dest)), check_mode=True)
    assert result["changed"] is True
    assert not dest.exists()
    assert sorted(os.listdir(str(tmp_path))) == ["key.pem"]

    run_module(capsys, base_args(key_path, dest=str(dest)))
    content = dest.read_bytes()
    result = run_module(capsys, base_args(key_path, dest=str(dest)), check_mode=True)
    assert result["changed"] is False
    result = run_module(capsys, base_args(key_path, dest=str(dest), refresh_margin=600), check_mode=True)
    assert result["changed"] is True
    result = run_module(capsys, base_args(key_path, dest=str(dest), mode="0644"), check_mode=True)
    assert result["changed"] is True
    assert dest.read_bytes() == content
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o600


@pytest.mark.parametrize("mode, expected", [("0640", 0o640), (0o640, 0o640), ("u=rw,g=r", 0o640), ("0600", 0o600)])
def test_dest_modes(tmp_path, capsys, ec_key, mode, expected):
    key_path = write_key(tmp_path, ec_key)[0]
    dest = str(tmp_path / "token")
    result = run_module(capsys, base_args(key_path, dest=dest, mode=mode))
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(dest).st_mode) == expected
    result = run_module(capsys, base_args(key_path, dest=dest, mode=mode))
    assert result["changed"] is False


def test_refresh_margin_forces_a_new_token(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    dest = str(tmp_path / "token")
    first = run_module(capsys, base_args(key_path, dest=dest, expires_in=300, refresh_margin=300))
    second = run_module(capsys, base_args(key_path, dest=dest, expires_in=300, refresh_margin=300))
    assert first["changed"] is True and second["changed"] is True
    assert first["claims"]["jti"] != second["claims"]["jti"]
    with open(dest) as handle:
        assert handle.read() == second["token"]


@pytest.mark.parametrize("extra, message", [
    ({"algorithm": "HS256"}, "shared-secret (HMAC) algorithms cannot be verified"),
    ({"algorithm": "none"}, "algorithm 'none' is refused"),
    ({"algorithm": "RS256"}, "needs a key of type RSA, but the key is of type EC"),
    ({"algorithm": "ES384"}, "needs curve P-384"),
    ({"subject": ""}, "Istio rejects tokens without 'sub'"),
    ({"expires_in": 7200}, "expires_in 7200 exceeds max_lifetime 3600"),
    ({"expires_in": 0}, "expires_in must be a positive number"),
    ({"claims": {"iss": "evil"}}, "claim 'iss' cannot be set through claims"),
    ({"claims": {"exp": 9999999999}}, "claim 'exp' cannot be set through claims"),
    ({"headers": {"alg": "none"}}, "header 'alg' cannot be set through headers"),
    ({"headers": {"jku": "https://evil"}}, "header 'jku' cannot be set through headers"),
    ({"audience": {"a": 1}}, "audience must be a non-empty string or a list"),
    ({"refresh_margin": 10}, "missing parameter(s) required by 'refresh_margin': dest"),
    ({"passphrase": PASSPHRASE}, "not encrypted, but a passphrase was given"),
    ({"not_before": 60, "dest": "TMP/token"}, "not_before must be 0 or negative with a token file"),
    ({"dest": "TMP/missing/token"}, "does not exist: create it first"),
    ({"dest": "TMP"}, "is a directory"),
    ({"dest": ""}, "the token file path is empty"),
    ({"kid": ""}, "kid must not be empty"),
    ({"jku": ""}, "jku must not be empty"),
    ({"jti": ""}, "jti must be a non-empty string"),
    ({"typ": ""}, "typ must be a media type"),
    ({"algorithm": ""}, "is not supported"),
    ({"issuer": ""}, "issuer must be a non-empty string"),
    ({"owner": "no-such-user-here", "dest": "TMP/token"}, "user no-such-user-here does not exist"),
    ({"group": "no-such-group-here", "dest": "TMP/token"}, "group no-such-group-here does not exist"),
    ({"mode": "u=rwz", "dest": "TMP/token"}, "neither octal"),
    ({"mode": 0o100600, "dest": "TMP/token"}, "must be an octal permission"),
    ({"refresh_margin": -1, "dest": "TMP/token"}, "refresh_margin must be a number of seconds >= 0"),
])
def test_bad_input_fails_cleanly(tmp_path, capsys, ec_key, extra, message):
    key_path = write_key(tmp_path, ec_key)[0]
    extra = dict((name, value.replace("TMP", str(tmp_path)) if name == "dest" else value)
                 for name, value in extra.items())
    before = dict((name, (tmp_path / name).read_bytes()) for name in os.listdir(str(tmp_path)))
    out, result = run_module_output(capsys, base_args(key_path, **extra))
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in out
    assert "token" not in result
    after = dict((name, (tmp_path / name).read_bytes()) for name in os.listdir(str(tmp_path)))
    assert after == before


def test_key_option_rules(tmp_path, capsys, ec_key):
    key_path, content = write_key(tmp_path, ec_key)
    result = run_module(capsys, {"issuer": ISSUER, "subject": "s"})
    assert result["failed"] is True
    assert "one of the following is required: private_key_path, private_key_content" in result["msg"]
    both = {"issuer": ISSUER, "subject": "s", "private_key_path": key_path, "private_key_content": content}
    result = run_module(capsys, both)
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    result = run_module(capsys, {"issuer": ISSUER, "private_key_path": key_path})
    assert result["failed"] is True
    assert "missing required arguments: subject" in result["msg"]


def test_key_problems_fail_cleanly(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key, passphrase=PASSPHRASE)[0]
    result = run_module(capsys, base_args(key_path))
    assert result["failed"] is True
    assert "is encrypted: set the passphrase" in result["msg"]
    result = run_module(capsys, base_args(key_path, passphrase="not-the-right-one"))
    assert "the passphrase is wrong" in result["msg"]
    result = run_module(capsys, base_args(key_path, passphrase=PASSPHRASE))
    assert result["changed"] is False
    assert jwt.decode(result["token"], ec_key.public_key(), algorithms=["ES256"])["sub"] == "edge-01"
    result = run_module(capsys, base_args(str(tmp_path / "absent.pem")))
    assert "does not exist" in result["msg"]


def test_refuses_to_overwrite_a_foreign_file(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    precious = tmp_path / "notes.txt"
    precious.write_text("do not lose me\n")
    result = run_module(capsys, base_args(key_path, dest=str(precious)))
    assert result["failed"] is True
    assert "does not hold a JWT" in result["msg"]
    assert precious.read_text() == "do not lose me\n"


@pytest.mark.parametrize("mode, expected", [(None, 0o600), ("0640", 0o640), (0o600, 0o600), ("640", 0o640),
                                            ("u=rw,g=r", 0o640), ("g+r", 0o640), ("go-rwx", 0o600)])
def test_file_mode_of_a_new_file(tmp_path, mode, expected):
    assert _token_module.file_mode(mode, str(tmp_path / "new")) == expected


def test_symbolic_file_mode_applies_to_the_existing_file(tmp_path):
    existing = tmp_path / "token"
    existing.write_text("x")
    os.chmod(str(existing), 0o644)
    assert _token_module.file_mode("g-r", str(existing)) == 0o604
    assert _token_module.file_mode("u=rw,g=r,o=", str(existing)) == 0o640


def test_invalid_mode_fails_before_writing(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    with pytest.raises(FileError, match="neither octal"):
        _token_module.file_mode("u=rwz", str(tmp_path / "token"))
    result = run_module(capsys, base_args(key_path, dest=str(tmp_path / "token"), mode="rw-r-----"))
    assert result["failed"] is True
    assert "is neither octal (such as '0640') nor symbolic" in result["msg"]
    assert sorted(os.listdir(str(tmp_path))) == ["key.pem"]


def test_issued_at_mints_a_token_of_another_time(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    issued = 1700000000
    result = run_module(capsys, base_args(key_path, issued_at=issued, expires_in=300))
    claims = jwt.decode(result["token"], ec_key.public_key(), algorithms=["ES256"], issuer=ISSUER,
                        options={"verify_exp": False})
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (issued, issued, issued + 300)
    assert result["expires_at"] == issued + 300
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(result["token"], ec_key.public_key(), algorithms=["ES256"], issuer=ISSUER)


def test_issued_at_cannot_go_into_a_token_file(tmp_path, capsys, ec_key):
    key_path = write_key(tmp_path, ec_key)[0]
    dest = tmp_path / "token"
    result = run_module(capsys, base_args(key_path, issued_at=1700000000, dest=str(dest)))
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    assert not dest.exists()
