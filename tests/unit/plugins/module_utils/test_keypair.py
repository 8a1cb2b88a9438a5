# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the key file backend behind jwt_keypair (module_utils/_keypair.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _jose, _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils._keypair import (
    KeypairError,
    KeypairSpec,
    ensure_absent,
    ensure_present,
)
from helpers import (  # pylint: disable=import-error
    file_mode, private_key_pem, read_file as read, write_file as write)


@pytest.fixture
def key_path(tmp_path):
    return str(tmp_path / "signing-key.pem")


@pytest.fixture
def cert_path(tmp_path):
    return str(tmp_path / "signing-cert.pem")


def spec(path, **kwargs):
    return KeypairSpec(path=path, **kwargs)


def load(path, passphrase=None):
    return _keys.load_private_key(read(path), passphrase)


class Backups(object):
    """Stands in for _keypair.write_backup: writes the bytes it is given and records the call."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, data, mode, what):
        dest = "%s.backup%d" % (path, len(self.calls))
        with open(dest, "wb") as dst:
            dst.write(data)
        os.chmod(dest, mode)
        self.calls.append(path)
        return dest


def pem_of(key, fmt=serialization.PrivateFormat.PKCS8, passphrase=None):
    return private_key_pem(key, passphrase, fmt)


# --------------------------------------------------------------------------------------
# Generation, returned values, file modes
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, kty, alg, crv", [
    ({}, "EC", "ES256", "P-256"),
    ({"curve": "P-384"}, "EC", "ES384", "P-384"),
    ({"curve": "P-521"}, "EC", "ES512", "P-521"),
    ({"type": "ed25519"}, "OKP", "EdDSA", "Ed25519"),
    ({"type": "rsa", "size": 2048}, "RSA", "RS256", None),
    ({"type": "rsa", "size": 2048, "algorithm": "PS384"}, "RSA", "PS384", None),
])
def test_generate_each_type(key_path, options, kty, alg, crv):
    result = ensure_present(spec(key_path, **options))
    assert result["changed"] is True
    key = load(key_path)
    assert read(key_path).startswith(b"-----BEGIN PRIVATE KEY-----")
    jwk = result["jwk"]
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    assert jwk.get("crv") == crv
    assert result["kid"] == jwk["kid"] == _jwk.key_thumbprint(key)
    assert jwk == _jwk.public_jwk(key, algorithm=alg)
    assert result["public_key"] == _keys.public_key_pem(key)
    assert result["certificate"] is None
    assert result["filename"] == key_path
    assert result["type"] == options.get("type", "ec")
    assert result["size"] == (2048 if kty == "RSA" else None)
    assert result["curve"] == (crv if kty == "EC" else None)
    assert file_mode(key_path) == 0o600


def test_second_run_changes_nothing(key_path):
    first = ensure_present(spec(key_path))
    before = read(key_path)
    second = ensure_present(spec(key_path))
    assert second["changed"] is False
    assert read(key_path) == before
    assert second["kid"] == first["kid"] and second["jwk"] == first["jwk"]
    assert second["diff"]["before"] == second["diff"]["after"]


def test_key_file_is_0600_whatever_the_umask(key_path):
    old = os.umask(0)
    try:
        ensure_present(spec(key_path))
    finally:
        os.umask(old)
    assert file_mode(key_path) == 0o600


def test_custom_kid_is_used(key_path):
    result = ensure_present(spec(key_path, kid="edge-01.2026"))
    assert result["kid"] == "edge-01.2026" == result["jwk"]["kid"]


def test_result_and_diff_hold_no_private_material(key_path, cert_path):
    result = ensure_present(spec(key_path, type="rsa", size=2048, certificate_path=cert_path))
    text = json.dumps(result)
    numbers = load(key_path).private_numbers()
    for secret in (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp):
        assert _jose.uint_to_b64url(secret) not in text
        assert str(secret) not in text
    assert "PRIVATE KEY" not in text
    assert not set(_jwk.PRIVATE_JWK_MEMBERS) & set(result["jwk"])


# --------------------------------------------------------------------------------------
# Check mode
# --------------------------------------------------------------------------------------

def test_check_mode_creates_nothing(tmp_path, key_path, cert_path):
    result = ensure_present(spec(key_path, certificate_path=cert_path), check_mode=True)
    assert result["changed"] is True
    assert os.listdir(str(tmp_path)) == []
    assert result["kid"] is None and result["jwk"] is None and result["public_key"] is None
    assert result["certificate"] is None
    assert result["type"] == "ec" and result["curve"] == "P-256"
    assert result["diff"]["before"]["state"] == "absent"
    assert result["diff"]["after"]["new_key"] is True


def test_check_mode_reports_given_kid(key_path):
    result = ensure_present(spec(key_path, kid="edge-01"), check_mode=True)
    assert result["kid"] == "edge-01"
    assert not os.path.exists(key_path)


def test_check_mode_on_existing_key_matches_real_run(key_path, cert_path):
    real = ensure_present(spec(key_path, certificate_path=cert_path))
    checked = ensure_present(spec(key_path, certificate_path=cert_path), check_mode=True)
    real["changed"] = False
    assert checked == dict(real, diff=checked["diff"])
    assert checked["diff"]["before"] == checked["diff"]["after"]


def test_check_mode_regeneration_writes_nothing(key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path))
    key_before, cert_before = read(key_path), read(cert_path)
    result = ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"), check_mode=True)
    assert result["changed"] is True
    assert result["kid"] is None and result["certificate"] is None
    assert read(key_path) == key_before and read(cert_path) == cert_before


def test_check_mode_takes_no_lock(tmp_path, key_path):
    ensure_present(spec(key_path), check_mode=True)
    assert not os.path.exists(str(tmp_path / ".signing-key.pem.lock"))
    ensure_present(spec(key_path))
    assert os.path.exists(str(tmp_path / ".signing-key.pem.lock"))


# --------------------------------------------------------------------------------------
# regenerate
# --------------------------------------------------------------------------------------

def test_default_refuses_a_key_of_another_type(key_path):
    ensure_present(spec(key_path, type="ed25519"))
    before = read(key_path)
    with pytest.raises(KeypairError) as info:
        ensure_present(spec(key_path))
    message = str(info.value)
    assert "type=ed25519" in message and "type=ec curve=P-256" in message
    assert "regenerate=partial_idempotence" in message and "kid" in message
    assert read(key_path) == before


def test_default_refuses_another_curve_and_size(key_path):
    ensure_present(spec(key_path, curve="P-384"))
    with pytest.raises(KeypairError, match="curve=P-384"):
        ensure_present(spec(key_path, curve="P-256"))
    other = str(key_path) + ".rsa"
    ensure_present(spec(other, type="rsa", size=2048))
    with pytest.raises(KeypairError, match="size=2048"):
        ensure_present(spec(other, type="rsa", size=3072))


def test_never_keeps_a_key_of_another_type(key_path):
    first = ensure_present(spec(key_path, type="ed25519"))
    before = read(key_path)
    result = ensure_present(spec(key_path, type="ec", regenerate="never"))
    assert result["changed"] is False
    assert read(key_path) == before
    assert result["type"] == "ed25519" and result["kid"] == first["kid"]
    assert result["jwk"]["alg"] == "EdDSA"


def test_never_refuses_an_algorithm_that_does_not_fit_the_kept_key(key_path):
    ensure_present(spec(key_path, type="ed25519"))
    with pytest.raises(_jose.JoseError, match="ES256"):
        ensure_present(spec(key_path, type="ec", algorithm="ES256", regenerate="never"))


@pytest.mark.parametrize("mode", ["partial_idempotence", "full_idempotence"])
def test_idempotence_modes_replace_a_key_of_another_type(key_path, mode):
    first = ensure_present(spec(key_path, type="ed25519"))
    result = ensure_present(spec(key_path, type="ec", curve="P-384", regenerate=mode))
    assert result["changed"] is True
    assert result["kid"] != first["kid"]
    assert _keys.key_description(load(key_path)) == {"type": "ec", "curve": "P-384"}
    assert result["diff"]["before"]["type"] == "ed25519"
    assert result["diff"]["after"]["curve"] == "P-384"


def test_always_makes_a_new_key_every_run(key_path):
    kids = set()
    for run in range(3):
        result = ensure_present(spec(key_path, regenerate="always"))
        assert result["changed"] is True, run
        kids.add(result["kid"])
    assert len(kids) == 3


CORRUPT = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("mode", ["never", "fail", "partial_idempotence"])
def test_corrupt_key_fails_and_stays_byte_identical(key_path, mode):
    write(key_path, CORRUPT)
    with pytest.raises(KeypairError) as info:
        ensure_present(spec(key_path, regenerate=mode))
    message = str(info.value)
    assert "damaged" in message and "Nothing was changed" in message
    assert "regenerate=full_idempotence" in message
    assert read(key_path) == CORRUPT


def test_full_idempotence_replaces_a_corrupt_key_with_backup(key_path):
    write(key_path, CORRUPT)
    backups = Backups()
    result = ensure_present(spec(key_path, regenerate="full_idempotence", backup=True), backup=backups)
    assert result["changed"] is True
    assert backups.calls == [key_path]
    assert read(result["backup_file"]) == CORRUPT
    load(key_path)
    assert result["diff"]["before"] == {"state": "present", "encrypted": False, "readable": False}


@pytest.mark.parametrize("content", [b"", b"not a key\n", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_files_that_are_no_private_key_fail(key_path, content):
    write(key_path, content)
    with pytest.raises(KeypairError):
        ensure_present(spec(key_path))
    assert read(key_path) == content


def test_unusable_key_types_fail_by_default_and_are_replaced_on_request(key_path):
    weak = pem_of(dsa.generate_private_key(key_size=2048))
    write(key_path, weak)
    with pytest.raises(KeypairError) as info:
        ensure_present(spec(key_path))
    assert "cannot sign JWTs" in str(info.value) and "DSA" in str(info.value)
    with pytest.raises(KeypairError):
        ensure_present(spec(key_path, regenerate="never"))
    assert read(key_path) == weak
    result = ensure_present(spec(key_path, regenerate="partial_idempotence"))
    assert result["changed"] is True and result["type"] == "ec"


def test_short_rsa_key_is_not_used(key_path):
    short = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    write(key_path, short)
    with pytest.raises(KeypairError, match="at least 2048"):
        ensure_present(spec(key_path, type="rsa", size=2048))
    assert read(key_path) == short


# --------------------------------------------------------------------------------------
# Passphrases
# --------------------------------------------------------------------------------------

def test_encrypted_key_reloads_with_its_passphrase(key_path):
    first = ensure_present(spec(key_path, passphrase="s3cret"))
    assert b"ENCRYPTED PRIVATE KEY" in read(key_path)
    before = read(key_path)
    again = ensure_present(spec(key_path, passphrase="s3cret"))
    assert again["changed"] is False and again["kid"] == first["kid"]
    assert read(key_path) == before
    assert again["diff"]["after"]["encrypted"] is True


@pytest.mark.parametrize("passphrase", [None, "wrong"])
def test_wrong_or_missing_passphrase_fails_and_keeps_the_file(key_path, passphrase):
    ensure_present(spec(key_path, passphrase="s3cret"))
    before = read(key_path)
    with pytest.raises(KeypairError) as info:
        ensure_present(spec(key_path, passphrase=passphrase))
    assert "passphrase" in str(info.value)
    assert "regenerate=full_idempotence" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert read(key_path) == before


def test_passphrase_on_an_unencrypted_key_encrypts_it_keeping_the_kid(key_path):
    first = ensure_present(spec(key_path))
    result = ensure_present(spec(key_path, passphrase="s3cret"))
    assert result["changed"] is True and result["kid"] == first["kid"]
    assert _jwk.key_thumbprint(load(key_path, "s3cret")) == first["kid"]
    assert result["diff"]["before"]["encrypted"] is False and result["diff"]["after"]["encrypted"] is True
    assert ensure_present(spec(key_path, passphrase="s3cret"))["changed"] is False


def test_old_passphrase_changes_the_passphrase(key_path):
    first = ensure_present(spec(key_path, passphrase="old"))
    result = ensure_present(spec(key_path, passphrase="new", old_passphrase="old"))
    assert result["changed"] is True and result["kid"] == first["kid"]
    load(key_path, "new")
    with pytest.raises(_jose.JoseError):
        load(key_path, "old")
    # Once changed, the same task is idempotent: the new passphrase decrypts the key.
    assert ensure_present(spec(key_path, passphrase="new", old_passphrase="old"))["changed"] is False


def test_old_passphrase_alone_removes_the_encryption(key_path):
    first = ensure_present(spec(key_path, passphrase="old"))
    result = ensure_present(spec(key_path, old_passphrase="old"))
    assert result["changed"] is True and result["kid"] == first["kid"]
    assert b"ENCRYPTED" not in read(key_path)


def test_wrong_old_passphrase_fails(key_path):
    ensure_present(spec(key_path, passphrase="right"))
    before = read(key_path)
    with pytest.raises(KeypairError, match="old_passphrase did not decrypt it either"):
        ensure_present(spec(key_path, passphrase="new", old_passphrase="also-wrong"))
    assert read(key_path) == before


def test_check_mode_reencryption_writes_nothing(key_path):
    ensure_present(spec(key_path))
    before = read(key_path)
    result = ensure_present(spec(key_path, passphrase="s3cret"), check_mode=True)
    assert result["changed"] is True and result["kid"] is not None
    assert read(key_path) == before


# --------------------------------------------------------------------------------------
# Key formats written by other tools
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, options", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), {"type": "rsa", "size": 2048}),
    (lambda: ec.generate_private_key(ec.SECP256R1()), {}),
])
def test_traditional_openssl_keys_are_kept_as_they_are(key_path, make, options):
    key = make()
    data = pem_of(key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert b"-----BEGIN PRIVATE KEY-----" not in data
    write(key_path, data)
    result = ensure_present(spec(key_path, **options))
    assert result["changed"] is False
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert read(key_path) == data


def test_traditional_encrypted_key_is_read_with_its_passphrase(key_path):
    key = ec.generate_private_key(ec.SECP256R1())
    data = pem_of(key, serialization.PrivateFormat.TraditionalOpenSSL, passphrase="s3cret")
    assert b"Proc-Type: 4,ENCRYPTED" in data
    write(key_path, data)
    result = ensure_present(spec(key_path, passphrase="s3cret"))
    assert result["changed"] is False and result["kid"] == _jwk.key_thumbprint(key)


# --------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------

def test_certificate_is_made_and_published_in_the_jwk(key_path, cert_path):
    result = ensure_present(spec(key_path, certificate_path=cert_path))
    assert result["changed"] is True
    assert file_mode(cert_path) == 0o644
    certificate = x509.load_pem_x509_certificate(read(cert_path))
    der = certificate.public_bytes(serialization.Encoding.DER)
    jwk = result["jwk"]
    assert jwk["x5c"] == [base64.b64encode(der).decode("ascii")]
    assert jwk["x5t"] == _jose.b64url_encode(hashlib.sha1(der).digest())
    assert jwk["x5t#S256"] == _jose.b64url_encode(hashlib.sha256(der).digest())
    assert result["certificate"] == read(cert_path).decode("ascii")
    assert _certificates.certificate_subject_cn(certificate) == result["kid"]
    assert _jwk.jwk_key_members(certificate.public_key()) == _jwk.jwk_key_members(load(key_path))
    after = result["diff"]["after"]["certificate"]
    assert after["subject"] == "CN=%s" % result["kid"] and after["x5t#S256"] == jwk["x5t#S256"]
    # The JWK passes the same validation that jwks_publish applies to its input.
    assert _jwk.key_input_to_jwk(jwk) == jwk


def test_certificate_is_kept_on_the_next_run(key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path, certificate_valid_days=30))
    before = read(cert_path)
    result = ensure_present(spec(key_path, certificate_path=cert_path))
    assert result["changed"] is False
    assert read(cert_path) == before


def test_certificate_subject_and_kid(key_path, cert_path):
    result = ensure_present(spec(key_path, kid="edge-7", certificate_path=cert_path))
    assert _certificates.certificate_subject_cn(x509.load_pem_x509_certificate(read(cert_path))) == "edge-7"
    kid = result["kid"]
    result = ensure_present(spec(key_path, kid="edge-7", certificate_path=cert_path, certificate_subject="edge.example"))
    assert result["changed"] is True and result["kid"] == kid
    assert _certificates.certificate_subject_cn(x509.load_pem_x509_certificate(read(cert_path))) == "edge.example"


@pytest.mark.parametrize("content", [b"garbage\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_unreadable_certificate_is_made_again(key_path, cert_path, content):
    first = ensure_present(spec(key_path, certificate_path=cert_path))
    write(cert_path, content, 0o644)
    result = ensure_present(spec(key_path, certificate_path=cert_path))
    assert result["changed"] is True and result["kid"] == first["kid"]
    assert result["diff"]["before"]["certificate"] == {"state": "present", "readable": False}
    x509.load_pem_x509_certificate(read(cert_path))


def test_certificate_of_another_key_is_made_again(tmp_path, key_path, cert_path):
    other_key = str(tmp_path / "other.pem")
    ensure_present(spec(other_key, certificate_path=cert_path))
    result = ensure_present(spec(key_path, certificate_path=cert_path))
    assert result["changed"] is True
    certificate = x509.load_pem_x509_certificate(read(cert_path))
    assert _jwk.jwk_key_members(certificate.public_key()) == _jwk.jwk_key_members(load(key_path))


def test_new_key_gets_a_new_certificate(key_path, cert_path):
    first = ensure_present(spec(key_path, certificate_path=cert_path))
    second = ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"))
    assert second["kid"] != first["kid"]
    assert second["jwk"]["x5t#S256"] != first["jwk"]["x5t#S256"]
    certificate = x509.load_pem_x509_certificate(read(cert_path))
    assert _certificates.certificate_subject_cn(certificate) == second["kid"]


def test_check_mode_certificate_only(key_path, cert_path):
    ensure_present(spec(key_path))
    result = ensure_present(spec(key_path, certificate_path=cert_path), check_mode=True)
    assert result["changed"] is True and result["certificate"] is None
    assert "x5c" not in result["jwk"]
    assert result["diff"]["after"]["certificate"] == {"state": "present", "new_certificate": True}
    assert not os.path.exists(cert_path)


# --------------------------------------------------------------------------------------
# Failures leave every file as it was
# --------------------------------------------------------------------------------------

def test_missing_directory_is_a_clear_error(tmp_path):
    path = str(tmp_path / "missing" / "key.pem")
    with pytest.raises(_files.FileError, match="does not exist: create it first"):
        ensure_present(spec(path))
    with pytest.raises(_files.FileError, match="does not exist"):
        ensure_present(spec(path), check_mode=True)


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(_files.FileError, match="is a directory"):
        ensure_present(spec(str(tmp_path)))


def _fail_on(path_to_fail, real=_files.write_atomic):
    def write_atomic(path, data, mode=0o600, what="file", **kwargs):
        if path == path_to_fail:
            raise _files.FileError("cannot write %s %s: No space left on device" % (what, path))
        return real(path, data, mode, what, **kwargs)
    return write_atomic


def test_failed_key_write_puts_the_certificate_back(monkeypatch, key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path))
    key_before, cert_before = read(key_path), read(cert_path)
    monkeypatch.setattr(_files, "write_atomic", _fail_on(key_path))
    with pytest.raises(_files.FileError, match="No space left"):
        ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"))
    assert read(key_path) == key_before and read(cert_path) == cert_before


def test_failed_first_key_write_removes_the_new_certificate(monkeypatch, tmp_path, key_path, cert_path):
    monkeypatch.setattr(_files, "write_atomic", _fail_on(key_path))
    with pytest.raises(_files.FileError):
        ensure_present(spec(key_path, certificate_path=cert_path))
    assert not os.path.exists(key_path) and not os.path.exists(cert_path)


def test_failed_certificate_write_leaves_the_key(monkeypatch, key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path))
    key_before, cert_before = read(key_path), read(cert_path)
    monkeypatch.setattr(_files, "write_atomic", _fail_on(cert_path))
    with pytest.raises(_files.FileError):
        ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"))
    assert read(key_path) == key_before and read(cert_path) == cert_before


# --------------------------------------------------------------------------------------
# Backups
# --------------------------------------------------------------------------------------

def test_backup_of_key_and_certificate_before_replacing(key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path))
    key_before, cert_before = read(key_path), read(cert_path)
    backups = Backups()
    result = ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always", backup=True), backup=backups)
    assert read(result["backup_file"]) == key_before
    assert read(result["certificate_backup_file"]) == cert_before
    assert sorted(backups.calls) == sorted([key_path, cert_path])


def test_no_backup_without_change_or_in_check_mode(key_path):
    ensure_present(spec(key_path))
    backups = Backups()
    result = ensure_present(spec(key_path, backup=True), backup=backups)
    assert "backup_file" not in result
    result = ensure_present(spec(key_path, backup=True, regenerate="always"), check_mode=True, backup=backups)
    assert "backup_file" not in result
    assert backups.calls == []


def test_no_backup_of_a_file_that_did_not_exist(key_path):
    backups = Backups()
    result = ensure_present(spec(key_path, backup=True), backup=backups)
    assert result["changed"] is True and backups.calls == [] and "backup_file" not in result


# --------------------------------------------------------------------------------------
# state=absent
# --------------------------------------------------------------------------------------

def test_absent_removes_key_and_certificate(key_path, cert_path):
    first = ensure_present(spec(key_path, certificate_path=cert_path))
    result = ensure_absent(spec(key_path, certificate_path=cert_path, state="absent"))
    assert result["changed"] is True
    assert not os.path.exists(key_path) and not os.path.exists(cert_path)
    assert result["kid"] is None and result["jwk"] is None
    assert result["diff"]["before"]["kid"] == first["kid"]
    assert result["diff"]["after"] == {"state": "absent"}
    again = ensure_absent(spec(key_path, certificate_path=cert_path, state="absent"))
    assert again["changed"] is False


def test_absent_in_check_mode_removes_nothing(key_path):
    ensure_present(spec(key_path))
    before = read(key_path)
    result = ensure_absent(spec(key_path, state="absent"), check_mode=True)
    assert result["changed"] is True and read(key_path) == before


def test_absent_with_backup_and_unreadable_key(key_path):
    write(key_path, CORRUPT)
    backups = Backups()
    result = ensure_absent(spec(key_path, state="absent", backup=True), backup=backups)
    assert result["changed"] is True and read(result["backup_file"]) == CORRUPT
    assert not os.path.exists(key_path)


def test_absent_without_directory_is_not_an_error(tmp_path):
    result = ensure_absent(spec(str(tmp_path / "missing" / "key.pem"), state="absent"))
    assert result["changed"] is False


# --------------------------------------------------------------------------------------
# Option validation (before any file is touched)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"type": "rsa", "size": 1024}, "size must be between 2048"),
    ({"type": "rsa", "size": 32768}, "size must be between 2048"),
    ({"type": "dsa"}, "type must be one of"),
    ({"curve": "P-192"}, "curve must be one of"),
    ({"algorithm": "HS256"}, "HMAC"),
    ({"algorithm": "none"}, "'none' is refused"),
    ({"algorithm": "RS256"}, "needs a key of type rsa"),
    ({"algorithm": "ES384"}, "needs curve P-384"),
    ({"type": "ed25519", "algorithm": "ES256"}, "needs a key of type ec"),
    ({"kid": "has space"}, "is not allowed"),
    ({"kid": "x" * 129}, "is not allowed"),
    ({"regenerate": "sometimes"}, "regenerate must be one of"),
    ({"state": "gone"}, "state must be one of"),
    ({"certificate_subject": "edge"}, "needs certificate_path"),
    ({"certificate_path": "SELF"}, "must differ from path"),
    ({"certificate_path": "CERT", "certificate_valid_days": 0}, "certificate_valid_days must be between"),
    ({"certificate_path": "CERT", "certificate_subject": "x" * 65}, "1 to 64 characters"),
    ({"certificate_path": "CERT", "kid": "k" * 65}, "set certificate_subject"),
])
def test_invalid_options_fail_before_touching_files(tmp_path, key_path, options, message):
    options = dict(options)
    if options.get("certificate_path") == "SELF":
        options["certificate_path"] = key_path
    elif options.get("certificate_path") == "CERT":
        options["certificate_path"] = str(tmp_path / "cert.pem")
    with pytest.raises(_jose.JoseError, match=message):
        ensure_present(spec(key_path, **options))
    assert os.listdir(str(tmp_path)) == []


def test_spec_repr_hides_passphrases():
    text = repr(KeypairSpec(path="/k.pem", passphrase="s3cret", old_passphrase="0ld"))
    assert "s3cret" not in text and "0ld" not in text and "/k.pem" in text


def test_spec_defaults_and_unknown_options():
    value = KeypairSpec.from_params({"path": "/k.pem", "mode": "0600", "passphrase": ""})
    assert (value.type, value.curve, value.size, value.regenerate) == ("ec", "P-256", 4096, "fail")
    assert value.passphrase is None
    assert _keypair.DEFAULT_REGENERATE == "fail"
    with pytest.raises(TypeError):
        KeypairSpec(path="/k.pem", colour="blue")


# --------------------------------------------------------------------------------------
# Owner, group and mode of replaced files
# --------------------------------------------------------------------------------------

def test_key_mode_is_set_before_the_first_byte(monkeypatch, key_path):
    seen = []
    real = _files.write_atomic

    def write_atomic(path, data, mode=0o600, what="file", **kwargs):
        seen.append((path, mode))
        return real(path, data, mode, what, **kwargs)

    monkeypatch.setattr(_files, "write_atomic", write_atomic)
    ensure_present(spec(key_path), key_mode=0o640)
    assert seen == [(key_path, 0o640)]
    assert file_mode(key_path) == 0o640


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")


@needs_root
def test_replaced_files_keep_owner_and_group_when_run_as_root(key_path, cert_path):
    ensure_present(spec(key_path, certificate_path=cert_path))
    for path in (key_path, cert_path):
        os.chown(path, 4321, 4322)
    # The files belong to uid 4321: used only when that account is the requested owner.
    ensure_present(spec(key_path, certificate_path=cert_path, passphrase="s3cret"), uid=4321)
    assert (os.stat(key_path).st_uid, os.stat(key_path).st_gid) == (4321, 4322)
    ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"), uid=4321)
    for path in (key_path, cert_path):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (4321, 4322)
    for path in (key_path, cert_path):
        os.chown(path, 0, 4322)
    ensure_present(spec(key_path, certificate_path=cert_path, regenerate="always"))
    for path in (key_path, cert_path):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (0, 4322)


@needs_root
def test_requested_owner_wins_over_the_old_one(key_path):
    ensure_present(spec(key_path))
    os.chown(key_path, 0, 4322)
    ensure_present(spec(key_path, regenerate="always"), uid=4555, gid=None)
    assert (os.stat(key_path).st_uid, os.stat(key_path).st_gid) == (4555, 4322)


def test_absent_removes_a_certificate_whose_key_directory_is_gone(tmp_path, cert_path):
    with open(cert_path, "w") as handle:
        handle.write("certificate\n")
    result = ensure_absent(spec(str(tmp_path / "missing" / "key.pem"), certificate_path=cert_path, state="absent"))
    assert result["changed"] is True and not os.path.exists(cert_path)
