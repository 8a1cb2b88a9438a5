# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""jwt_keypair with a key in a real SoftHSM2 token (pkcs11_uri): main() in-process, a token made per test."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _jws, _pkcs11, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair
from helpers import run_module_main  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

pytest.importorskip("pkcs11")


@pytest.fixture
def token(tmp_path, monkeypatch):
    return use_token(monkeypatch, SoftHSMToken(tmp_path, label="edge"))


def run(capsys, args, check_mode=False, diff=False):
    return run_module_main(jwt_keypair, args, capsys, check_mode=check_mode, diff=diff)


def private_objects(token):
    uri = _pkcs11.parse_uri(token.uri("any"))
    with _pkcs11.open_session(uri, token.pin) as session:
        return sorted((label, key_id) for label, key_id in session.private_keys())


def key_args(token, tmp_path, **extra):
    args = {"pkcs11_uri": token.uri("jwt-signing"), "pkcs11_pin_file": token.pin_file(tmp_path / "pin")}
    args.update(extra)
    return args


@pytest.mark.parametrize("options, alg", [
    ({}, "ES256"),
    ({"curve": "P-384"}, "ES384"),
    ({"type": "rsa", "size": 2048}, "RS256"),
    ({"type": "ed25519"}, "EdDSA"),
])
def test_generates_a_non_extractable_key_whose_jwk_and_kid_match_its_signatures(
        token, tmp_path, capsys, options, alg):
    ran = run(capsys, key_args(token, tmp_path, **options), diff=True)
    result = ran.result
    assert ran.code == 0 and result["changed"] is True, result
    assert result["pkcs11"]["extractable"] is False and result["pkcs11"]["sensitive"] is True
    assert result["pkcs11"]["label"] == "jwt-signing" and result["filename"] is None
    assert result["jwk"]["alg"] == alg and result["jwks"] == [result["jwk"]]
    assert "d" not in result["jwk"] and "PRIVATE KEY" not in ran.out
    session, key = _pkcs11.open_key(token.uri("jwt-signing"), token.pin)
    try:
        # The JWK is the token key's public half; a token signed by the token verifies with it.
        assert result["kid"] == _jwk.key_thumbprint(key.public_key()) == result["jwk"]["kid"]
        minted = _token.mint(key, "https://issuer.example", "edge-1")
        assert minted.header["kid"] == result["kid"]
        # Verified with the public key decoded from the returned JWK (PyJWT), not with the token's object.
        _header, claims = _jws.verify(minted.token, _jwk.jwk_to_public_key(result["jwk"])[1], alg)
        assert claims["sub"] == "edge-1"
        with pytest.raises(_pkcs11.Pkcs11Error, match="cannot be exported"):
            key.private_bytes(None, None, None)
    finally:
        session.close()


def test_private_value_cannot_be_read_from_the_token(token, tmp_path, capsys):
    import pkcs11  # pylint: disable=import-outside-toplevel

    assert run(capsys, key_args(token, tmp_path)).result["changed"] is True
    session = _pkcs11.open_session(_pkcs11.parse_uri(token.uri("jwt-signing")), token.pin)
    try:
        handle = session.find()
        assert handle[pkcs11.Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            handle[pkcs11.Attribute.VALUE]
    finally:
        session.close()


def test_second_run_and_check_mode_are_unchanged_and_keep_the_key(token, tmp_path, capsys):
    args = key_args(token, tmp_path, certificate_path=str(tmp_path / "cert.pem"))
    first = run(capsys, args).result
    second = run(capsys, args).result
    checked = run(capsys, args, check_mode=True).result
    assert second["changed"] is False and checked["changed"] is False
    assert first["kid"] == second["kid"] == checked["kid"]
    assert len(private_objects(token)) == 1


def test_check_mode_generates_nothing_in_the_token(token, tmp_path, capsys):
    result = run(capsys, key_args(token, tmp_path, certificate_path=str(tmp_path / "cert.pem")),
                 check_mode=True).result
    assert result["changed"] is True and result["jwk"] is None
    assert private_objects(token) == []
    assert not os.path.exists(str(tmp_path / "cert.pem"))


def test_certificate_is_signed_by_the_token_key_and_openssl_verifies_it(token, tmp_path, capsys):
    cert_path = str(tmp_path / "cert.pem")
    result = run(capsys, key_args(token, tmp_path, certificate_path=cert_path)).result
    with open(cert_path, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    # cryptography: the self-signature verifies with the public key of the JWK.
    certificate.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes,
                                    ec.ECDSA(certificate.signature_hash_algorithm))
    assert _jwk.key_thumbprint(certificate.public_key()) == result["kid"]
    assert result["jwk"]["x5c"]
    verified = subprocess.run(["openssl", "verify", "-CAfile", cert_path, cert_path], capture_output=True, text=True,
                              check=False)
    assert verified.returncode == 0, verified.stderr
    assert oct(os.stat(cert_path).st_mode & 0o777) == oct(0o644)


def test_another_key_type_is_refused_by_default_and_replaced_when_asked(token, tmp_path, capsys):
    first = run(capsys, key_args(token, tmp_path)).result
    refused = run(capsys, key_args(token, tmp_path, type="rsa", size=2048))
    assert refused.code == 1 and "Nothing was changed" in refused.result["msg"]
    assert "object 'jwt-signing' in token 'edge'" in refused.result["msg"]
    assert "regenerate=partial_idempotence" in refused.result["msg"]
    assert len(private_objects(token)) == 1
    replaced = run(capsys, key_args(token, tmp_path, type="rsa", size=2048, regenerate="partial_idempotence")).result
    assert replaced["changed"] is True and replaced["type"] == "rsa" and replaced["kid"] != first["kid"]
    # The old object is gone: one key pair carries the label, and it is the new one.
    assert len(private_objects(token)) == 1
    session, key = _pkcs11.open_key(token.uri("jwt-signing"), token.pin)
    session.close()
    assert _jwk.key_thumbprint(key.public_key()) == replaced["kid"]


def test_a_failed_certificate_write_leaves_the_token_as_it_was(token, tmp_path, capsys):
    first = run(capsys, key_args(token, tmp_path)).result
    # The certificate path is a directory: writing it fails after the new key was generated.
    blocked = tmp_path / "cert.pem"
    blocked.mkdir()
    failed = run(capsys, key_args(token, tmp_path, type="rsa", size=2048, regenerate="always",
                                  certificate_path=str(blocked)))
    assert failed.code == 1
    objects = private_objects(token)
    assert len(objects) == 1
    session, key = _pkcs11.open_key(token.uri("jwt-signing"), token.pin)
    session.close()
    assert _jwk.key_thumbprint(key.public_key()) == first["kid"]


def test_state_absent_destroys_the_key_pair_and_the_certificate(token, tmp_path, capsys):
    args = key_args(token, tmp_path, certificate_path=str(tmp_path / "cert.pem"))
    run(capsys, args)
    checked = run(capsys, dict(args, state="absent"), check_mode=True).result
    assert checked["changed"] is True and len(private_objects(token)) == 1
    removed = run(capsys, dict(args, state="absent")).result
    assert removed["changed"] is True and private_objects(token) == []
    assert not os.path.exists(str(tmp_path / "cert.pem"))
    again = run(capsys, dict(args, state="absent")).result
    assert again["changed"] is False


def test_adopts_a_key_made_with_the_tokens_own_tools(token, tmp_path, capsys):
    uri = _pkcs11.parse_uri(token.uri("made-elsewhere"))
    with _pkcs11.open_session(uri, token.pin, write=True) as session:
        made = session.generate("ec", curve="P-256")
        kid = _jwk.key_thumbprint(made.public_key())
    result = run(capsys, key_args(token, tmp_path, pkcs11_uri=token.uri("made-elsewhere"))).result
    assert result["changed"] is False and result["kid"] == kid


@pytest.mark.parametrize("change, message", [
    (lambda t, p: {"pkcs11_pin": "0000", "pkcs11_pin_file": None}, "refused the PIN"),
    (lambda t, p: {"pkcs11_pin_file": str(p / "missing")}, "does not exist"),
    (lambda t, p: {"pkcs11_uri": t.uri("k").replace("token=edge", "token=other")}, "no token matches"),
    (lambda t, p: {"pkcs11_uri": t.uri("k") + "&pin-value=1234"}, "carries the PIN"),
    (lambda t, p: {"pkcs11_uri": t.uri("k").split("?")[0]}, "module-path"),
    (lambda t, p: {"pkcs11_uri": t.uri("k").replace("/usr/lib", "/nowhere")}, "does not exist"),
    (lambda t, p: {"pkcs11_uri": "token=edge"}, "must start with 'pkcs11:'"),
    (lambda t, p: {"pkcs11_uri": t.uri("k").replace("type=private", "type=cert")}, "type=cert"),
    (lambda t, p: {"passphrase": "a passphrase of some length"}, "mutually exclusive"),
    (lambda t, p: {"path": str(p / "key.pem")}, "mutually exclusive"),
    (lambda t, p: {"backup": True}, "backup"),
])
def test_bad_input_fails_clearly_and_changes_nothing(token, tmp_path, capsys, change, message):
    args = key_args(token, tmp_path)
    args.update(change(token, tmp_path))
    args = dict((k, v) for k, v in args.items() if v is not None)
    ran = run(capsys, args)
    assert ran.code == 1 and message in ran.result["msg"], ran.result
    assert "Traceback" not in ran.out
    assert private_objects(token) == []


def test_pin_file_readable_by_others_is_refused(token, tmp_path, capsys):
    args = key_args(token, tmp_path)
    os.chmod(args["pkcs11_pin_file"], 0o644)
    ran = run(capsys, args)
    assert ran.code == 1 and "chmod 600" in ran.result["msg"]


def test_symlinked_pin_file_is_not_followed(token, tmp_path, capsys):
    args = key_args(token, tmp_path)
    link = str(tmp_path / "pin-link")
    os.symlink(args["pkcs11_pin_file"], link)
    ran = run(capsys, dict(args, pkcs11_pin_file=link))
    assert ran.code == 1 and "link" in ran.result["msg"]


def test_the_pin_is_in_no_result(token, tmp_path, capsys):
    args = {"pkcs11_uri": token.uri("jwt-signing"), "pkcs11_pin": token.pin}
    ran = run(capsys, args, diff=True)
    assert ran.code == 0
    assert token.pin not in json.dumps(ran.result)
    failed = run(capsys, dict(args, type="rsa", size=2048), diff=True)
    assert failed.code == 1 and token.pin not in failed.out


# --------------------------------------------------------------------------------------
# TPM 2.0 (swtpm + tpm2-abrmd + libtpm2_pkcs11): the same module path on another token
# --------------------------------------------------------------------------------------

@pytest.fixture
def tpm(tpm_token, monkeypatch):
    return use_token(monkeypatch, tpm_token)


@pytest.mark.parametrize("options, alg", [
    ({}, "ES256"),
    ({"curve": "P-384"}, "ES384"),
    ({"type": "rsa", "size": 2048}, "RS256"),
])
def test_a_tpm_key_is_generated_adopted_and_signs_tokens_the_jwk_verifies(tpm, tmp_path, capsys, options, alg):
    label = "tpm-" + alg
    args = {"pkcs11_uri": tpm.uri(label), "pkcs11_pin_file": tpm.pin_file(tmp_path / "pin"),
            "certificate_path": str(tmp_path / "cert.pem")}
    args.update(options)
    first = run(capsys, args).result
    assert first["changed"] is True and "msg" not in first, first
    assert first["pkcs11"]["never_extractable"] is True and first["pkcs11"]["always_sensitive"] is True
    assert first["pkcs11"]["token"]["manufacturer"] and first["jwk"]["alg"] == alg
    assert run(capsys, args).result["changed"] is False
    session, key = _pkcs11.open_key(tpm.uri(label), tpm.pin)
    try:
        minted = _token.mint(key, "https://issuer.example", "edge-tpm", algorithm=alg)
    finally:
        session.close()
    _header, claims = _jws.verify(minted.token, _jwk.jwk_to_public_key(first["jwk"])[1], alg)
    assert claims["sub"] == "edge-tpm" and minted.header["kid"] == first["kid"]
    verified = subprocess.run(["openssl", "verify", "-CAfile", args["certificate_path"], args["certificate_path"]],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr


def test_a_tpm_refuses_ed25519_with_a_message_that_says_so(tpm, tmp_path, capsys):
    ran = run(capsys, {"pkcs11_uri": tpm.uri("tpm-ed"), "pkcs11_pin": tpm.pin, "type": "ed25519"})
    assert ran.code == 1 and "cannot generate an Ed25519 key pair" in ran.result["msg"], ran.result
    assert "a TPM 2.0 has no Ed25519" in ran.result["msg"]


def test_adopting_an_extractable_key_warns(token, tmp_path, capsys):
    import pkcs11  # pylint: disable=import-outside-toplevel
    from pkcs11.util.ec import encode_named_curve_parameters  # pylint: disable=import-outside-toplevel

    uri = _pkcs11.parse_uri(token.uri("exportable"))
    with _pkcs11.open_session(uri, token.pin, write=True) as session:
        parameters = session.session.create_domain_parameters(
            pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        parameters.generate_keypair(store=True, label="exportable", id=b"\x01",
                                    private_template={pkcs11.Attribute.EXTRACTABLE: True,
                                                      pkcs11.Attribute.SENSITIVE: True})
    result = run(capsys, key_args(token, tmp_path, pkcs11_uri=token.uri("exportable"))).result
    assert result["changed"] is False and result["pkcs11"]["extractable"] is True
    assert "can be or could once be exported" in json.dumps(result.get("warnings")), result
    quiet = run(capsys, key_args(token, tmp_path)).result
    assert not quiet.get("warnings")


def test_state_path_adds_the_rings_next_key_to_jwks(token, tmp_path, capsys):
    from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keyring  # pylint: disable=import-outside-toplevel

    args = key_args(token, tmp_path)
    first = run(capsys, args).result
    state_path = str(tmp_path / "ring.json")
    staged = run_module_main(jwt_keyring, dict(args, state_path=state_path, action="rotate"), capsys).result
    assert staged.get("failed") is None and len(staged["kids"]) == 2, staged
    with_ring = run(capsys, dict(args, state_path=state_path)).result
    assert with_ring["changed"] is False and with_ring["kid"] == first["kid"]
    assert [jwk["kid"] for jwk in with_ring["jwks"]] == staged["kids"]
    assert [jwk["kid"] for jwk in run(capsys, args).result["jwks"]] == [first["kid"]]
    assert "missing parameter(s) required by 'state_path'" in run(
        capsys, {"path": str(tmp_path / "key.pem"), "state_path": state_path}).result["msg"]


#: Opens the key of argv[1] with the PIN file argv[2] through _pkcs11, as a module or the refresher does.
OPEN_KEY = """
import sys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11
try:
    session, key = _pkcs11.open_key(sys.argv[1], pin_file=sys.argv[2])
    session.close()
except _pkcs11.Pkcs11Error as exc:
    sys.exit(str(exc))
"""


def test_processes_that_log_in_at_the_same_time_all_open_the_key(token, tmp_path, capsys):
    """SoftHSM2's file store rewrites token.object on every login; a process reading it meanwhile
    lists no token, or the token without its user PIN (seen as 5-7 of 120 failed opens before
    open_session tried those again). Eight processes at a time, ten rounds: every open succeeds."""
    args = key_args(token, tmp_path)
    assert run(capsys, args).result["changed"] is True
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    failures = []
    for _round in range(10):
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_KEY, args["pkcs11_uri"], args["pkcs11_pin_file"]],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True) for _process in range(8)]
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            if proc.returncode:
                failures.append(err.strip()[-300:])
    assert failures == []


def test_a_missing_token_is_reported_after_the_retries_and_open_sessions_survive_them(
        token, tmp_path, capsys, monkeypatch):
    """The retries initialise the library again only when this process has no session open (a
    new initialisation would end that session)."""
    monkeypatch.setattr(_pkcs11, "RETRY_DELAYS", (0.01, 0.01))
    assert run(capsys, key_args(token, tmp_path)).result["changed"] is True
    missing = _pkcs11.parse_uri(token.uri("jwt-signing").replace("token=edge", "token=gone"))
    with pytest.raises(_pkcs11.Pkcs11Error, match=r"no token matches .* \(tokens: 'edge'"):
        _pkcs11.open_session(missing, token.pin)
    session, key = _pkcs11.open_key(token.uri("jwt-signing"), token.pin)
    try:
        with pytest.raises(_pkcs11.Pkcs11Error, match="no token matches"):
            _pkcs11.open_session(missing, token.pin)
        assert key.public_key() is not None and len(session.private_keys()) == 1
    finally:
        session.close()
    assert _pkcs11.TokenSession.open_count == 0
