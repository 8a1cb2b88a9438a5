# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for plugins/module_utils/_jose.py (the JOSE core).

Expected values come from the RFCs (RFC 7638 section 3.1, RFC 8037 appendix A.3) or are
computed here independently of _jose (hashlib over the DER, PyJWT's own JWK export,
cryptography's key numbers), never copied from _jose's output.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import hashlib
import json
import math
import sys

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _certificates, _jose, _jwk, _jwks, _jws
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError

# --------------------------------------------------------------------------------------
# Published test vectors
# --------------------------------------------------------------------------------------

#: RFC 7638 section 3.1: the RSA key of RFC 7517 appendix A.1 and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
        "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

#: RFC 8037 appendix A.2/A.3: the Ed25519 public key and its SHA-256 thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
CURVE_CLASSES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_thumbprint(jwk):
    """RFC 7638 section 3 written out again, independently of _jose."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    text = "{" + ",".join('"%s":"%s"' % (name, jwk[name]) for name in required) + "}"
    return b64url(hashlib.sha256(text.encode("utf-8")).digest())


# --------------------------------------------------------------------------------------
# Keys shared by the tests (generated once per session; RSA generation is the slow part)
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "P-256": ec.generate_private_key(ec.SECP256R1()),
        "P-384": ec.generate_private_key(ec.SECP384R1()),
        "P-521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


def pem(key, password=None, fmt=serialization.PrivateFormat.PKCS8):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


# --------------------------------------------------------------------------------------
# Thumbprints (RFC 7638, RFC 8037)
# --------------------------------------------------------------------------------------

def test_thumbprint_rfc7638_example():
    assert _jwk.thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_thumbprint_rfc8037_example():
    assert _jwk.thumbprint(RFC8037_JWK) == RFC8037_THUMBPRINT


def test_thumbprint_ignores_optional_members_and_order():
    reordered = dict(reversed(list(RFC7638_JWK.items())))
    reordered.update({"use": "sig", "x5t": "ignored"})
    assert _jwk.thumbprint(reordered) == RFC7638_THUMBPRINT


def test_thumbprint_of_key_objects_built_from_the_rfc_jwks():
    """The JWK -> key -> JWK path reproduces the RFC thumbprints (n and x re-encoded by _jose)."""
    normalized, key = _jwk.jwk_to_public_key(RFC7638_JWK)
    assert _jwk.key_thumbprint(key) == RFC7638_THUMBPRINT
    assert normalized["n"] == RFC7638_JWK["n"] and normalized["e"] == "AQAB"
    assert normalized["kid"] == "2011-04-29"
    normalized, key = _jwk.jwk_to_public_key(RFC8037_JWK)
    assert _jwk.key_thumbprint(key) == RFC8037_THUMBPRINT
    # Without a kid the thumbprint becomes the kid.
    assert normalized["kid"] == RFC8037_THUMBPRINT


def test_thumbprint_sha1_is_different_and_well_formed():
    value = _jwk.thumbprint(RFC7638_JWK, "sha1")
    assert value != RFC7638_THUMBPRINT
    assert len(unb64url(value)) == 20


@pytest.mark.parametrize("jwk", [
    {"kty": "oct", "k": "AAAA"},
    {"kty": "RSA", "n": RFC7638_JWK["n"]},
    {"kty": "EC", "crv": "P-256", "x": "AA"},
    {},
])
def test_thumbprint_refuses_incomplete_or_unknown(jwk):
    with pytest.raises(JoseError):
        _jwk.thumbprint(jwk)


# --------------------------------------------------------------------------------------
# base64url helpers, RSA minimal encoding, EC padding
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (0, "AA"), (1, "AQ"), (3, "Aw"), (255, "_w"), (256, "AQA"), (65537, "AQAB"), (2 ** 64, "AQAAAAAAAAAA"),
])
def test_uint_minimal_encoding(value, expected):
    assert _jose.uint_to_b64url(value) == expected
    assert _jose.b64url_to_uint(expected, "value") == value


@pytest.mark.parametrize("text", ["AQAB=", "AQ+B", "AQ/B", "AQ B", "A", "AQABA", u"\u00e9", 12, None])
def test_b64url_decode_is_strict(text):
    with pytest.raises(JoseError):
        _jose.b64url_decode(text, "member")


def test_rsa_members_are_minimal(keys):
    members = _jwk.jwk_key_members(keys["rsa"])
    numbers = keys["rsa"].public_key().public_numbers()
    n_raw, e_raw = unb64url(members["n"]), unb64url(members["e"])
    assert n_raw[0] != 0 and len(n_raw) == 256
    assert int.from_bytes(n_raw, "big") == numbers.n
    assert members["e"] == "AQAB" and e_raw == b"\x01\x00\x01"
    assert "=" not in members["n"]


def test_rsa_small_exponent_is_minimal():
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    assert _jwk.jwk_key_members(key)["e"] == "Aw"


def _find_short_coordinate_key(curve, coordinate, limit=50000):
    """Generate keys on ``curve`` until one has a ``coordinate`` with a leading zero byte."""
    size = COORDINATE_BYTES[curve]
    for _attempt in range(limit):
        key = ec.generate_private_key(CURVE_CLASSES[curve]())
        value = getattr(key.public_key().public_numbers(), coordinate)
        if (value.bit_length() + 7) // 8 < size:
            return key, value
    raise AssertionError("no %s key with a short %s coordinate in %d attempts" % (curve, coordinate, limit))


@pytest.mark.parametrize("curve", sorted(COORDINATE_BYTES))
@pytest.mark.parametrize("coordinate", ["x", "y"])
def test_ec_coordinates_are_padded(curve, coordinate):
    key, value = _find_short_coordinate_key(curve, coordinate)
    size = COORDINATE_BYTES[curve]
    jwk = _jwk.public_jwk(key)
    raw = unb64url(jwk[coordinate])
    assert len(raw) == size, "coordinate %s of a %s key encoded in %d bytes" % (coordinate, curve, len(raw))
    assert raw[0] == 0 and int.from_bytes(raw, "big") == value
    assert len(unb64url(jwk["x" if coordinate == "y" else "y"])) == size

    # cryptography and PyJWT read the padded JWK back into the same public key.
    numbers = key.public_key().public_numbers()
    rebuilt = ec.EllipticCurvePublicNumbers(int.from_bytes(unb64url(jwk["x"]), "big"),
                                            int.from_bytes(unb64url(jwk["y"]), "big"), CURVE_CLASSES[curve]())
    assert rebuilt == numbers
    pyjwt_key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
    assert pyjwt_key.public_numbers() == numbers
    # PyJWT (>= 2.10) exports the same padded coordinates.
    exported = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert (exported["x"], exported["y"]) == (jwk["x"], jwk["y"])

    # A token signed with the key verifies with the key PyJWT built from our JWK.
    header = _jws.build_header(key)
    token = _jws.sign_token(key, header, _jws.build_claims("iss", "sub"))[0]
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]])["sub"] == "sub"

    # _jose itself accepts the padded form and refuses the unpadded (minimal) form.
    assert _jwk.jwk_to_public_key(jwk)[0] == jwk
    unpadded = dict(jwk)
    unpadded[coordinate] = _jose.uint_to_b64url(value)
    with pytest.raises(JoseError, match="bytes long"):
        _jwk.jwk_to_public_key(unpadded)


# --------------------------------------------------------------------------------------
# Certificates: x5c (standard base64) and x5t / x5t#S256 (base64url digests)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rsa", "P-256", "P-521", "ed25519"])
def test_x5c_and_x5t_digests(keys, name):
    key = keys[name]
    certificate = _certificates.self_signed_certificate(key, "edge-01.example")
    der = certificate.public_bytes(serialization.Encoding.DER)
    jwk = _jwk.public_jwk(key, certificates=[certificate])

    assert jwk["x5c"] == [base64.b64encode(der).decode("ascii")]
    assert base64.b64decode(jwk["x5c"][0], validate=True) == der
    assert jwk["x5t"] == b64url(hashlib.sha1(der).digest())
    assert jwk["x5t#S256"] == b64url(hashlib.sha256(der).digest())
    assert len(jwk["x5t"]) == 27 and len(jwk["x5t#S256"]) == 43
    assert not set("+/=") & set(jwk["x5t"] + jwk["x5t#S256"])
    # The certificate is self-signed by the key and holds the key.
    assert _jwk.jwk_key_members(certificate.public_key()) == _jwk.jwk_key_members(key)
    assert _certificates.certificate_subject_cn(certificate) == "edge-01.example"
    # jwk_to_public_key accepts it and recomputes the same members.
    assert _jwk.jwk_to_public_key(jwk)[0] == jwk
    # A PEM certificate as jwks_publish input yields the same JWK.
    assert _jwk.key_input_to_jwk(_certificates.certificate_pem(certificate)) == jwk


def test_x5c_is_standard_base64_not_base64url(keys):
    """Certificates whose DER base64 contains '+' or '/' keep them (RFC 7517 section 4.7)."""
    found = False
    for _attempt in range(50):
        certificate = _certificates.self_signed_certificate(keys["P-256"], "edge")
        der = certificate.public_bytes(serialization.Encoding.DER)
        standard = base64.b64encode(der).decode("ascii")
        if set("+/") & set(standard):
            found = True
            break
    assert found, "no certificate with '+' or '/' in its base64 form in 50 attempts"
    jwk = _jwk.public_jwk(keys["P-256"], certificates=[certificate])
    assert jwk["x5c"][0] == standard
    assert jwk["x5c"][0] != base64.urlsafe_b64encode(der).decode("ascii")


def test_certificate_of_another_key_is_refused(keys):
    other = _certificates.self_signed_certificate(keys["P-384"], "other")
    with pytest.raises(JoseError, match="does not belong"):
        _jwk.public_jwk(keys["P-256"], certificates=[other])


@pytest.mark.parametrize("kwargs", [{"common_name": ""}, {"common_name": "x", "valid_days": 0},
                                    {"common_name": "x", "valid_days": "10"}])
def test_self_signed_certificate_refusals(keys, kwargs):
    with pytest.raises(JoseError):
        _certificates.self_signed_certificate(keys["P-256"], **kwargs)


# --------------------------------------------------------------------------------------
# Algorithm / key binding
# --------------------------------------------------------------------------------------

def _expected_family(name):
    return {"rsa": "RSA", "ed25519": "OKP"}.get(name, "EC")


ALLOWED = sorted(_algorithms.ALGORITHMS)
KEY_NAMES = ["rsa", "P-256", "P-384", "P-521", "ed25519"]
EC_ALG_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def test_allowlist_is_exactly_the_documented_one():
    assert set(_algorithms.ALGORITHMS) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                           "ES256", "ES384", "ES512", "EdDSA"}


@pytest.mark.parametrize("algorithm", ALLOWED)
@pytest.mark.parametrize("name", KEY_NAMES)
def test_algorithm_key_binding(keys, name, algorithm):
    key = keys[name]
    family = _expected_family(name)
    fits = _algorithms.ALGORITHMS[algorithm] == family and (family != "EC" or EC_ALG_CURVES[algorithm] == name)
    for candidate in (key, key.public_key()):
        if fits:
            assert _algorithms.check_algorithm(candidate, algorithm) == algorithm
        else:
            with pytest.raises(JoseError, match="needs"):
                _algorithms.check_algorithm(candidate, algorithm)
    if fits:
        header = _jws.build_header(key, algorithm)
        token = _jws.sign_token(key, header, _jws.build_claims("iss", "sub"))[0]
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        assert jwt.decode(token, key.public_key(), algorithms=[algorithm])["iss"] == "iss"
        assert _jws.verify(token, key.public_key(), algorithm)[1]["sub"] == "sub"
        # The token does not verify under another key of the same type.
        other = _keys.generate_private_key(*{"RSA": ("rsa", 2048), "EC": ("ec", 0, name), "OKP": ("ed25519",)}[family])
        with pytest.raises(JoseError, match="does not verify"):
            _jws.verify(token, other.public_key(), algorithm)
    else:
        with pytest.raises(JoseError):
            _jws.build_header(key, algorithm)


@pytest.mark.parametrize("name, expected", [("rsa", "RS256"), ("P-256", "ES256"), ("P-384", "ES384"),
                                            ("P-521", "ES512"), ("ed25519", "EdDSA")])
def test_default_algorithm(keys, name, expected):
    assert _algorithms.default_algorithm(keys[name]) == expected
    assert _algorithms.check_algorithm(keys[name], None) == expected
    assert _jwk.public_jwk(keys[name])["alg"] == expected


@pytest.mark.parametrize("algorithm, message", [
    ("none", "'none' is refused"), ("None", "'none' is refused"), ("NONE", "'none' is refused"),
    ("HS256", "HMAC"), ("HS384", "HMAC"), ("HS512", "HMAC"), ("hs256", "HMAC"),
    ("RS1", "not supported"), ("ES256K", "not supported"), ("Ed25519", "not supported"),
    ("rs256", "not supported"), ("", "not supported"), (256, "must be a string such as ES256, got int"),
])
@pytest.mark.parametrize("name", ["rsa", "P-256", "ed25519"])
def test_refused_algorithms(keys, name, algorithm, message):
    with pytest.raises(JoseError, match=message):
        _algorithms.check_algorithm(keys[name], algorithm)


def test_es384_with_p256_is_refused(keys):
    with pytest.raises(JoseError, match="needs curve P-384"):
        _algorithms.check_algorithm(keys["P-256"], "ES384")
    with pytest.raises(JoseError, match="needs curve P-384"):
        _jws.build_header(keys["P-256"], "ES384")


def test_sign_rechecks_the_header_algorithm(keys):
    header = _jws.build_header(keys["P-256"])
    for forged in ("none", "HS256", "RS256", "ES384"):
        bad = dict(header, alg=forged)
        with pytest.raises(JoseError):
            _jws.sign_token(keys["P-256"], bad, {"iss": "i", "sub": "s"})


def test_verify_pins_the_algorithm(keys):
    key = keys["rsa"]
    token = _jws.sign_token(key, _jws.build_header(key, "PS256"), _jws.build_claims("iss", "sub"))[0]
    with pytest.raises(JoseError, match="does not verify"):
        _jws.verify(token, key.public_key(), "RS256")


# --------------------------------------------------------------------------------------
# Key generation and loading
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, info", [
    (("rsa", 2048), {"type": "rsa", "size": 2048}),
    (("ec", 4096, "P-384"), {"type": "ec", "curve": "P-384"}),
    (("ec", 4096, "P-521"), {"type": "ec", "curve": "P-521"}),
    (("ed25519",), {"type": "ed25519"}),
])
def test_generate_private_key(args, info):
    key = _keys.generate_private_key(*args)
    assert _keys.key_description(key) == info
    assert _keys.key_matches(key, info["type"], info.get("size"), info.get("curve"))
    assert not _keys.key_matches(key, "ec" if info["type"] != "ec" else "rsa", 2048, "P-256")


@pytest.mark.parametrize("args", [("rsa", 1024), ("rsa", 2047), ("rsa", 32768), ("rsa", "4096"), ("ec", 0, "P-192"),
                                  ("ec", 0, "secp256k1"), ("dsa",), ("ed448",)])
def test_generate_private_key_refusals(args):
    with pytest.raises(JoseError):
        _keys.generate_private_key(*args)


# PKCS#8 for every key type; PKCS#1 (RSA) and SEC1 (EC) as written by older tools. Ed25519
# has no traditional form.
@pytest.mark.parametrize("name, fmt", [(name, "PKCS8") for name in KEY_NAMES]
                         + [(name, "TraditionalOpenSSL") for name in KEY_NAMES if name != "ed25519"])
def test_load_private_key_formats(keys, name, fmt):
    key = keys[name]
    data = pem(key, fmt=getattr(serialization.PrivateFormat, fmt))
    loaded = _keys.load_private_key(data)
    assert _jwk.jwk_key_members(loaded) == _jwk.jwk_key_members(key)
    assert _keys.load_private_key(data.decode("ascii")) is not None


def test_load_private_key_with_passphrase(keys):
    data = _keys.private_key_pem(keys["P-256"], u"s\u00e9cret")
    assert b"ENCRYPTED PRIVATE KEY" in data
    loaded = _keys.load_private_key(data, u"s\u00e9cret")
    assert _jwk.key_thumbprint(loaded) == _jwk.key_thumbprint(keys["P-256"])
    assert b"ENCRYPTED" not in _keys.private_key_pem(keys["P-256"])


def test_load_encrypted_key_without_passphrase(keys):
    data = _keys.private_key_pem(keys["rsa"], "right")
    for empty in (None, ""):
        with pytest.raises(JoseError, match="encrypted: set the passphrase"):
            _keys.load_private_key(data, empty)


def test_load_encrypted_key_with_wrong_passphrase(keys):
    data = _keys.private_key_pem(keys["rsa"], "right")
    with pytest.raises(JoseError, match="passphrase is wrong"):
        _keys.load_private_key(data, "wrong")


def test_load_traditional_encrypted_key_with_wrong_passphrase(keys):
    data = keys["P-256"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.BestAvailableEncryption(b"right"))
    assert b"Proc-Type: 4,ENCRYPTED" in data
    with pytest.raises(JoseError, match="encrypted: set the passphrase"):
        _keys.load_private_key(data)
    with pytest.raises(JoseError, match="passphrase is wrong"):
        _keys.load_private_key(data, "wrong")
    assert _jwk.key_thumbprint(_keys.load_private_key(data, "right")) == _jwk.key_thumbprint(keys["P-256"])


def test_load_plain_key_with_passphrase_is_refused(keys):
    with pytest.raises(JoseError, match="not encrypted"):
        _keys.load_private_key(pem(keys["P-256"]), "unexpected")


def _corrupt(data):
    lines = data.decode("ascii").splitlines()
    middle = len(lines) // 2
    lines[middle] = lines[middle][::-1]
    return ("\n".join(lines) + "\n").encode("ascii")


@pytest.mark.parametrize("make, message", [
    (lambda k: b"", "empty"),
    (lambda k: b"   \n", "empty"),
    (lambda k: b"not a key at all", "no '-----BEGIN' line"),
    (lambda k: _corrupt(pem(k["rsa"])), "damaged"),
    (lambda k: pem(k["rsa"])[:200], "damaged"),
    (lambda k: b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "damaged"),
    (lambda k: b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "damaged"),
    (lambda k: _keys.public_key_pem(k["rsa"]).encode("ascii"), "public key or certificate"),
    (lambda k: _certificates.certificate_pem(_certificates.self_signed_certificate(k["P-256"], "x")).encode("ascii"),
     "public key or certificate"),
    (lambda k: b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "not a PEM private key"),
])
def test_load_private_key_errors(keys, make, message):
    with pytest.raises(JoseError, match=message):
        _keys.load_private_key(make(keys))


@pytest.mark.parametrize("make", [
    lambda: dsa.generate_private_key(1024),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    ed448.Ed448PrivateKey.generate,
    x25519.X25519PrivateKey.generate,
    lambda: ec.generate_private_key(ec.SECP256K1()),
    lambda: ec.generate_private_key(ec.SECP224R1()),
], ids=["dsa", "rsa-1024", "ed448", "x25519", "secp256k1", "p-224"])
def test_load_private_key_refuses_unfit_keys(make):
    data = pem(make())
    with pytest.raises(JoseError) as caught:
        _keys.load_private_key(data, source="key file /tmp/k.pem")
    message = str(caught.value)
    assert message.startswith("key file /tmp/k.pem")
    assert "use" in message or "at least 2048" in message


def test_public_key_pem_round_trip(keys):
    for name in KEY_NAMES:
        text = _keys.public_key_pem(keys[name])
        assert text.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in text
        assert _jwk.jwk_key_members(_keys.load_public_key_pem(text)) == _jwk.jwk_key_members(keys[name])
    with pytest.raises(JoseError):
        _keys.load_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(JoseError, match="at least 2048"):
        _keys.load_public_key_pem(_keys.public_key_pem(weak))


# --------------------------------------------------------------------------------------
# jwk_to_public_key and key_input_to_jwk
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_jwk_private_members_refused(keys, member):
    jwk = dict(_jwk.public_jwk(keys["rsa"]))
    jwk[member] = "AQAB"
    with pytest.raises(JoseError, match="private or secret key material"):
        _jwk.jwk_to_public_key(jwk)
    with pytest.raises(JoseError, match="private or secret key material"):
        _jwk.key_input_to_jwk(json.dumps(jwk))


def test_full_private_jwk_from_pyjwt_is_refused(keys):
    for name in KEY_NAMES:
        family = _expected_family(name)
        algorithm = {"RSA": jwt.algorithms.RSAAlgorithm, "EC": jwt.algorithms.ECAlgorithm,
                     "OKP": jwt.algorithms.OKPAlgorithm}[family]
        private_jwk = algorithm.to_jwk(keys[name], as_dict=True)
        assert "d" in private_jwk
        with pytest.raises(JoseError, match="private"):
            _jwk.jwk_to_public_key(private_jwk)


@pytest.mark.parametrize("jwk, message", [
    ({"kty": "oct", "alg": "HS256"}, "symmetric"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "private or secret"),
    ({"kty": "DSA", "x": "AQAB"}, "unknown kty"),
    ({"kty": "rsa", "n": RFC7638_JWK["n"], "e": "AQAB"}, "unknown kty"),
    ({"n": RFC7638_JWK["n"], "e": "AQAB"}, "unknown kty"),
    ({"kty": "RSA", "e": "AQAB"}, "lacks member"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"], "e": ""}, "lacks member"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"] + "=", "e": "AQAB"}, "base64url"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"].replace("-", "+"), "e": "AQAB"}, "base64url"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"] + "AAA", "e": "AQAB"}, "base64url length"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"], "e": "AQAC"}, "exponent"),
    ({"kty": "RSA", "n": RFC7638_JWK["n"], "e": "AQ"}, "exponent"),
    ({"kty": "RSA", "n": 12345, "e": "AQAB"}, "lacks member"),
    ({"kty": "OKP", "crv": "Ed448", "x": "AAAA"}, "unsupported OKP curve"),
    ({"kty": "OKP", "crv": "X25519", "x": RFC8037_JWK["x"]}, "unsupported OKP curve"),
    ({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_JWK["x"][:-3]}, "32 bytes"),
    ({"kty": "EC", "crv": "P-192", "x": "AAAA", "y": "AAAA"}, "unsupported curve"),
    ({"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"}, "unsupported curve"),
    ({"kty": "EC", "crv": "P-256", "x": "AAAA"}, "lacks member"),
    ({"kty": "EC", "crv": "P-256", "x": b64url(b"\x01" * 31), "y": b64url(b"\x01" * 32)}, "32 bytes long"),
    ({"kty": "EC", "crv": "P-256", "x": b64url(b"\x01" * 33), "y": b64url(b"\x01" * 32)}, "32 bytes long"),
    (["kty", "RSA"], "JSON object"),
    ("{}", "JSON object"),
])
def test_jwk_to_public_key_refusals(jwk, message):
    with pytest.raises(JoseError, match=message):
        _jwk.jwk_to_public_key(jwk)


@pytest.mark.parametrize("curve", sorted(COORDINATE_BYTES))
def test_point_not_on_curve_is_refused(keys, curve):
    jwk = dict(_jwk.public_jwk(keys[curve]))
    size = COORDINATE_BYTES[curve]
    y = int.from_bytes(unb64url(jwk["y"]), "big")
    jwk["y"] = b64url(((y + 1) % (2 ** (8 * size))).to_bytes(size, "big"))
    with pytest.raises(JoseError, match="not a valid EC key"):
        _jwk.jwk_to_public_key(jwk)


def test_small_rsa_jwk_is_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = _jwk.jwk_key_members(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    jwk["n"] = _jose.uint_to_b64url(weak.public_key().public_numbers().n)
    with pytest.raises(JoseError, match="at least 2048"):
        _jwk.jwk_to_public_key(jwk)


def test_rsa_jwk_with_leading_zero_is_normalized(keys):
    jwk = _jwk.public_jwk(keys["rsa"])
    padded = dict(jwk, n=b64url(b"\x00" + unb64url(jwk["n"])))
    normalized = _jwk.jwk_to_public_key(padded)[0]
    assert normalized["n"] == jwk["n"]


@pytest.mark.parametrize("change, message", [
    ({"use": "enc"}, "use 'sig'"),
    ({"alg": "none"}, "'none' is refused"),
    ({"alg": "HS256"}, "HMAC"),
    ({"alg": "ES384"}, "needs"),
    ({"alg": "RS256"}, "needs"),
    ({"kid": "has space"}, "kid"),
    ({"kid": ""}, "kid"),
    ({"kid": "x" * 129}, "kid"),
    ({"kid": 7}, "kid"),
])
def test_jwk_member_refusals(keys, change, message):
    jwk = dict(_jwk.public_jwk(keys["P-256"]), **change)
    with pytest.raises(JoseError, match=message):
        _jwk.jwk_to_public_key(jwk)


def test_jwk_normalization_drops_unknown_members_and_sets_use(keys):
    jwk = dict(_jwk.public_jwk(keys["P-256"]))
    del jwk["use"]
    jwk["key_ops"] = ["verify"]
    jwk["ext"] = True
    normalized = _jwk.jwk_to_public_key(jwk)[0]
    assert normalized == _jwk.public_jwk(keys["P-256"])
    assert list(normalized) == ["kty", "kid", "use", "alg", "crv", "x", "y"]


def test_x5c_of_another_key_is_refused(keys):
    jwk = dict(_jwk.public_jwk(keys["P-256"]))
    other = _certificates.self_signed_certificate(keys["ed25519"], "other")
    jwk.update(_jwk.certificate_members([other]))
    with pytest.raises(JoseError, match="another key"):
        _jwk.jwk_to_public_key(jwk)


@pytest.mark.parametrize("member", ["x5t", "x5t#S256"])
def test_wrong_x5t_is_refused(keys, member):
    certificate = _certificates.self_signed_certificate(keys["rsa"], "edge")
    jwk = dict(_jwk.public_jwk(keys["rsa"], certificates=[certificate]))
    other = _certificates.self_signed_certificate(keys["rsa"], "edge")  # same key, another certificate
    jwk[member] = _jwk.certificate_members([other])[member]
    with pytest.raises(JoseError, match="does not match x5c"):
        _jwk.jwk_to_public_key(jwk)


@pytest.mark.parametrize("x5c", [[], "MIIB", [12], ["not base64!"], [base64.b64encode(b"not DER").decode("ascii")],
                                 ["-_-_"]])
def test_bad_x5c_is_refused(keys, x5c):
    jwk = dict(_jwk.public_jwk(keys["P-256"]), x5c=x5c)
    with pytest.raises(JoseError, match="x5c"):
        _jwk.jwk_to_public_key(jwk)


def _certificate_with_version(key, version):
    """DER and PEM of a self-signed certificate whose version field says ``version`` (valid: 0 and 2)."""
    der = _certificates.self_signed_certificate(key, "edge").public_bytes(serialization.Encoding.DER)
    field = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2 (v3), the first one in the TBSCertificate
    assert der.count(field) >= 1
    der = der.replace(field, field[:-1] + bytes([version]), 1)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    return der, pem


def test_certificate_with_an_invalid_version_is_refused_clearly(keys):
    """cryptography raises InvalidVersion (not a ValueError) for X.509 version 2: a JoseError, no traceback."""
    der, pem = _certificate_with_version(keys["P-256"], 1)
    jwk = dict(_jwk.public_jwk(keys["P-256"]), x5c=[base64.b64encode(der).decode("ascii")])
    with pytest.raises(JoseError, match="x5c"):
        _jwk.jwk_to_public_key(jwk)
    with pytest.raises(JoseError, match="not a valid PEM certificate"):
        _certificates.load_certificate_pem(pem)
    with pytest.raises(JoseError, match="not a valid PEM certificate"):
        _jwk.key_input_to_jwk(pem.decode("ascii"))


def test_x5c_in_base64url_form_is_refused(keys):
    """x5c must be standard base64; a base64url-encoded certificate is malformed input."""
    for _attempt in range(50):
        certificate = _certificates.self_signed_certificate(keys["P-256"], "edge")
        der = certificate.public_bytes(serialization.Encoding.DER)
        urlsafe = base64.urlsafe_b64encode(der).decode("ascii")
        if set("-_") & set(urlsafe):
            break
    else:
        pytest.fail("no certificate with '-' or '_' in its base64url form in 50 attempts")
    jwk = dict(_jwk.public_jwk(keys["P-256"]), x5c=[urlsafe])
    with pytest.raises(JoseError, match="x5c"):
        _jwk.jwk_to_public_key(jwk)


def test_key_input_to_jwk_accepts_all_forms(keys):
    key = keys["P-384"]
    expected = _jwk.public_jwk(key)
    assert _jwk.key_input_to_jwk(expected) == expected
    assert _jwk.key_input_to_jwk(json.dumps(expected)) == expected
    assert _jwk.key_input_to_jwk(json.dumps(expected).encode("utf-8")) == expected
    assert _jwk.key_input_to_jwk(_keys.public_key_pem(key)) == expected
    assert _jwk.key_input_to_jwk(_keys.public_key_pem(key).encode("ascii")) == expected
    rsa_pkcs1 = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert _jwk.key_input_to_jwk(rsa_pkcs1) == _jwk.public_jwk(keys["rsa"])


@pytest.mark.parametrize("item, message", [
    (None, "must be a JWK"),
    (42, "must be a JWK"),
    (["a"], "must be a JWK"),
    ("hello", "neither a JWK nor a PEM"),
    ("{not json", "not valid JSON"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid PEM certificate"),
])
def test_key_input_to_jwk_refusals(item, message):
    with pytest.raises(JoseError, match=message):
        _jwk.key_input_to_jwk(item)


@pytest.mark.parametrize("fmt", ["PKCS8", "TraditionalOpenSSL"])
def test_key_input_to_jwk_refuses_private_pem(keys, fmt):
    with pytest.raises(JoseError, match="private key"):
        _jwk.key_input_to_jwk(pem(keys["P-256"], fmt=getattr(serialization.PrivateFormat, fmt)).decode("ascii"))


# --------------------------------------------------------------------------------------
# Claims and headers
# --------------------------------------------------------------------------------------

def test_build_claims_defaults():
    claims = _jws.build_claims("https://edge.example", "edge-01", audience="api", now=1700000000)
    assert claims["iss"] == "https://edge.example" and claims["sub"] == "edge-01" and claims["aud"] == "api"
    assert claims["iat"] == claims["nbf"] == 1700000000
    assert claims["exp"] == 1700000000 + 600
    assert len(unb64url(claims["jti"])) >= 16


def test_jti_is_random():
    jtis = set(_jws.build_claims("i", "s")["jti"] for _index in range(200))
    assert len(jtis) == 200
    assert all(len(unb64url(jti)) * 8 >= 128 for jti in jtis)


@pytest.mark.parametrize("audience, expected", [("a", "a"), (["a"], "a"), (["a", "b"], ["a", "b"]), (("a", "b"), ["a", "b"])])
def test_audience_forms(audience, expected):
    assert _jws.build_claims("i", "s", audience=audience)["aud"] == expected


@pytest.mark.parametrize("name, source", [("iss", "the option issuer"), ("sub", "the option subject"),
                                          ("aud", "the option audience"), ("exp", "the option expires_in"),
                                          ("nbf", "the option not_before"), ("iat", "the time of signing"),
                                          ("jti", "the option jti of jwt_token")])
def test_registered_claims_cannot_be_smuggled_and_the_message_names_what_sets_them(name, source):
    with pytest.raises(JoseError, match="claim '%s' cannot be set through claims: it is set by %s" % (name, source)):
        _jws.build_claims("i", "s", claims={name: "x", "role": "ok"})


@pytest.mark.parametrize("name, option", [("alg", "algorithm"), ("kid", "kid"), ("jku", "jku"), ("typ", "typ")])
def test_reserved_headers_with_an_option_name_it(name, option, keys):
    with pytest.raises(JoseError, match="header '%s' cannot be set through headers: it decides how the token is "
                                        "verified; set it with the option %s$" % (name, option)):
        _jws.build_header(keys["P-256"], headers={name: "x"})
    with pytest.raises(JoseError, match="header 'x5u' cannot be set through headers: it decides how the token is "
                                        "verified$"):
        _jws.build_header(keys["P-256"], headers={"x5u": "x"})


@pytest.mark.parametrize("kwargs, message", [
    ({"issuer": ""}, "issuer"),
    ({"issuer": "  "}, "issuer"),
    ({"issuer": None}, "issuer"),
    ({"subject": ""}, "sub"),
    ({"subject": " "}, "sub"),
    ({"subject": None}, "sub"),
    ({"subject": 12}, "sub"),
    ({"expires_in": 0}, "positive"),
    ({"expires_in": -5}, "positive"),
    ({"expires_in": True}, "positive"),
    ({"expires_in": 60.5}, "positive"),
    ({"expires_in": 3601}, "exceeds max_lifetime"),
    ({"expires_in": 7200, "max_lifetime": 3600}, "exceeds max_lifetime"),
    ({"not_before": 600}, "not_before"),
    ({"not_before": -301}, "not_before"),
    ({"not_before": False}, "not_before"),
    ({"audience": ""}, "audience"),
    ({"audience": []}, "audience"),
    ({"audience": ["a", ""]}, "audience"),
    ({"audience": 5}, "audience"),
    ({"jti": ""}, "jti"),
    ({"jti": 5}, "jti"),
    ({"claims": {"when": set([1])}}, "JSON-serializable"),
    ({"claims": {"what": object()}}, "JSON-serializable"),
    ({"claims": {"ratio": float("nan")}}, "JSON-serializable"),
    ({"claims": {"ratio": float("inf")}}, "JSON-serializable"),
    ({"claims": {"raw": b"bytes"}}, "JSON-serializable"),
])
def test_build_claims_refusals(kwargs, message):
    arguments = {"issuer": "iss", "subject": "sub"}
    arguments.update(kwargs)
    with pytest.raises(JoseError, match=message):
        _jws.build_claims(**arguments)


def test_expires_in_up_to_max_lifetime_is_accepted():
    claims = _jws.build_claims("i", "s", expires_in=3600, max_lifetime=3600, not_before=-60, now=1000)
    assert (claims["exp"], claims["nbf"], claims["iat"]) == (4600, 940, 1000)


def test_build_header(keys):
    header = _jws.build_header(keys["rsa"], "RS256", jku="https://jwks.example/jwks.json",
                               headers={"cty": "JWT", "x-edge": "01"})
    assert header == {"alg": "RS256", "typ": "JWT", "kid": _jwk.key_thumbprint(keys["rsa"]),
                      "jku": "https://jwks.example/jwks.json", "cty": "JWT", "x-edge": "01"}
    assert _jws.build_header(keys["rsa"], kid="edge-01")["kid"] == "edge-01"


@pytest.mark.parametrize("name", list(_jws.RESERVED_HEADERS))
@pytest.mark.parametrize("case", ["same", "upper", "lower", "title"])
def test_reserved_headers_cannot_be_overridden(keys, name, case):
    spelled = {"same": name, "upper": name.upper(), "lower": name.lower(), "title": name.title()}[case]
    with pytest.raises(JoseError, match="cannot be set through headers"):
        _jws.build_header(keys["P-256"], headers={spelled: "x"})


@pytest.mark.parametrize("kwargs, message", [
    ({"jku": "ftp://jwks.example/jwks.json"}, "jku"),
    ({"jku": "file:///etc/passwd"}, "jku"),
    ({"kid": "bad kid"}, "kid"),
    ({"headers": {"x": set()}}, "JSON-serializable"),
    ({"headers": {"x": float("nan")}}, "JSON-serializable"),
])
def test_build_header_refusals(keys, kwargs, message):
    with pytest.raises(JoseError, match=message):
        _jws.build_header(keys["P-256"], **kwargs)


def test_decode_unverified(keys):
    header = _jws.build_header(keys["P-256"], jku="https://x.example/jwks")
    claims = _jws.build_claims("i", "s", claims={"scope": ["a"]})
    token = _jws.sign_token(keys["P-256"], header, claims)[0]
    assert _jws.decode_unverified(token) == (header, claims)
    for bad in ("a.b", "a.b.c.d", None, "!!.e30.x", "e30.W10.x", "bm90IGpzb24.e30.x"):
        with pytest.raises(JoseError):
            _jws.decode_unverified(bad)


def test_tampered_token_does_not_verify(keys):
    key = keys["P-256"]
    token = _jws.sign_token(key, _jws.build_header(key), _jws.build_claims("i", "s"))[0]
    head, payload, signature = token.split(".")
    forged_claims = _jws.build_claims("i", "admin")
    forged = ".".join([head, b64url(json.dumps(forged_claims).encode("utf-8")), signature])
    with pytest.raises(JoseError, match="does not verify"):
        _jws.verify(forged, key.public_key(), "ES256")
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    with pytest.raises(JoseError, match="does not verify"):
        _jws.verify(".".join([head, payload, flipped]), key.public_key(), "ES256")


# --------------------------------------------------------------------------------------
# JWKS and discovery documents
# --------------------------------------------------------------------------------------

def test_jwks_document_is_deterministic(keys):
    jwks = [_jwk.public_jwk(keys[name]) for name in KEY_NAMES]
    shuffled = [dict(reversed(list(jwk.items()))) for jwk in reversed(jwks)]
    first = _jwks.jwks_document({"keys": jwks})
    assert _jwks.jwks_document({"keys": shuffled}) == first
    assert _jwks.jwks_document({"keys": copy.deepcopy(jwks)}) == first
    assert first.endswith("}\n") and not first.endswith("\n\n")
    parsed = json.loads(first)
    assert [key["kid"] for key in parsed["keys"]] == sorted(jwk["kid"] for jwk in jwks)
    for key in parsed["keys"]:
        assert list(key)[:4] == ["kty", "kid", "use", "alg"]
    # The published text carries no private member even if one slipped into the input.
    leaked = dict(jwks[0], d="secret")
    assert '"d"' not in _jwks.jwks_document({"keys": [leaked]})
    assert _jwks.jwks_document({"keys": []}) == '{\n  "keys": []\n}\n'
    assert _jwks.jwks_document({}) == '{\n  "keys": []\n}\n'


def test_discovery_document():
    text = _jwks.discovery_document("https://edge.example", "https://jwks.example/jwks.json", ["RS256", "ES256", "RS256"])
    doc = json.loads(text)
    assert doc["issuer"] == "https://edge.example"
    assert doc["jwks_uri"] == "https://jwks.example/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert text == _jwks.discovery_document("https://edge.example", "https://jwks.example/jwks.json", ["ES256", "RS256"])


def test_missing_dependencies_reports_nothing_here():
    assert _jose.missing_dependencies() == []


@pytest.mark.parametrize("version, expected", [("2.15.1", (2, 15, 1)), ("50.0.2", (50, 0, 2)), ("2.4.0rc1", (2, 4, 0)),
                                               ("3.4.dev1", (3, 4))])
def test_version_tuple(version, expected):
    assert _jose.version_tuple(version) == expected


# --------------------------------------------------------------------------------------
# Property tests (hypothesis)
# --------------------------------------------------------------------------------------

CURVE_ORDERS = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16),
    # SEC 2 section 2.9.1: 2**521 - 2**264 + the low 264 bits below.
    "P-521": 2 ** 521 - 2 ** 264 + 0xFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
}

_RSA_POOL = []


def _rsa_pool():
    if not _RSA_POOL:
        _RSA_POOL.extend(rsa.generate_private_key(public_exponent=exponent, key_size=size)
                         for exponent, size in ((65537, 2048), (3, 2048), (65537, 3072)))
    return _RSA_POOL


@st.composite
def private_keys(draw):
    """EC and Ed25519 keys derived from drawn secrets (so hypothesis can shrink them), RSA from a pool."""
    kind = draw(st.sampled_from(["P-256", "P-384", "P-521", "ed25519", "rsa"]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(draw(st.binary(min_size=32, max_size=32)))
    if kind == "rsa":
        return draw(st.sampled_from(_rsa_pool()))
    secret = draw(st.integers(min_value=1, max_value=CURVE_ORDERS[kind] - 1))
    return ec.derive_private_key(secret, CURVE_CLASSES[kind]())


def _pyjwt_algorithm(key):
    return {"RSA": jwt.algorithms.RSAAlgorithm, "EC": jwt.algorithms.ECAlgorithm,
            "OKP": jwt.algorithms.OKPAlgorithm}[_keys.key_family(key)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=private_keys())
def test_property_jwk_round_trip_and_thumbprint(key):
    jwk = _jwk.public_jwk(key)
    # The JWK survives JSON and comes back unchanged through the validator.
    text = json.dumps(jwk)
    normalized, public = _jwk.jwk_to_public_key(json.loads(text))
    assert normalized == jwk
    assert _jwk.public_jwk(public) == jwk
    assert _jwk.key_input_to_jwk(text) == jwk
    assert _jwk.key_input_to_jwk(_keys.public_key_pem(key)) == jwk
    # The thumbprint is stable and equals an independent computation.
    assert jwk["kid"] == _jwk.thumbprint(jwk) == _jwk.key_thumbprint(key) == _jwk.key_thumbprint(public)
    assert jwk["kid"] == independent_thumbprint(jwk)
    # PyJWT's own public JWK export agrees on every key member.
    exported = _pyjwt_algorithm(key).to_jwk(key.public_key(), as_dict=True)
    for name in _jwk.THUMBPRINT_MEMBERS[jwk["kty"]]:
        assert exported[name] == jwk[name], name
    # EC coordinates always have the full length.
    if jwk["kty"] == "EC":
        assert len(unb64url(jwk["x"])) == len(unb64url(jwk["y"])) == COORDINATE_BYTES[jwk["crv"]]
    if jwk["kty"] == "RSA":
        assert unb64url(jwk["n"])[0] != 0 and unb64url(jwk["e"])[0] != 0


JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 63)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
CLAIM_NAMES = st.text(min_size=0, max_size=12).filter(lambda name: name not in _jws.REGISTERED_CLAIMS)


@pytest.fixture(scope="module")
def claim_key():
    return ec.generate_private_key(ec.SECP256R1())


def _same_json(left, right):
    """Equality that also tells 1 from 1.0 and True from 1 (JSON keeps those apart)."""
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return set(left) == set(right) and all(_same_json(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same_json(a, b) for a, b in zip(left, right))
    return left == right


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(CLAIM_NAMES, JSON_VALUES, max_size=5))
def test_property_extra_claims_survive_sign_and_verify(claim_key, extra):
    claims = _jws.build_claims("https://edge.example", "edge-01", audience=["a", "b"], claims=extra)
    for name, value in extra.items():
        assert _same_json(claims[name], value)
    token = _jws.sign_token(claim_key, _jws.build_header(claim_key), claims)[0]
    header, verified = _jws.verify(token, claim_key.public_key(), "ES256")
    assert _same_json(verified, claims)
    assert header["alg"] == "ES256"
    # An independent verifier (PyJWT with full claim checks) agrees.
    decoded = jwt.decode(token, claim_key.public_key(), algorithms=["ES256"], audience="a",
                         issuer="https://edge.example")
    assert _same_json(decoded, claims)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(_jws.REGISTERED_CLAIMS), value=JSON_VALUES,
       others=st.dictionaries(CLAIM_NAMES, JSON_SCALARS, max_size=3))
def test_property_registered_claims_always_refused(name, value, others):
    extra = dict(others)
    extra[name] = value
    with pytest.raises(JoseError, match="cannot be set through claims: it is set by "):
        _jws.build_claims("i", "s", claims=extra)


def _case_variants(name):
    return st.tuples(*[st.sampled_from(sorted(set([c.lower(), c.upper()]))) for c in name]).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(_jws.RESERVED_HEADERS).flatmap(_case_variants))
def test_property_reserved_headers_refused_in_any_case(claim_key, name):
    with pytest.raises(JoseError, match="cannot be set through headers"):
        _jws.build_header(claim_key, headers={name: "x"})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda n: n.lower() not in set(h.lower() for h in _jws.RESERVED_HEADERS)), JSON_SCALARS, max_size=4))
def test_property_extra_headers_survive(claim_key, extra):
    header = _jws.build_header(claim_key, headers=extra)
    token = _jws.sign_token(claim_key, header, _jws.build_claims("i", "s"))[0]
    verified_header = _jws.verify(token, claim_key.public_key(), "ES256")[0]
    assert _same_json(verified_header, header)
    assert verified_header["alg"] == "ES256"


def _fake_jwt(tmp_path, monkeypatch, files):
    package = tmp_path / "jwt"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "jwt", raising=False)


def test_missing_dependencies_reads_an_old_pyjwt_version_without_importing_it(tmp_path, monkeypatch):
    _fake_jwt(tmp_path, monkeypatch, {"__init__.py": 'raise ImportError("must not be imported")\n'
                                                     '__version__ = "2.3.0"\n', "api_jws.py": ""})
    assert _jose.missing_dependencies() == [("PyJWT >= 2.4.0 (found 2.3.0)", None)]
    assert "jwt" not in sys.modules


def test_missing_dependencies_imports_a_jwt_package_that_is_not_pyjwt(tmp_path, monkeypatch):
    _fake_jwt(tmp_path, monkeypatch, {"__init__.py": '__version__ = "9.9.9"\n'})
    missing = _jose.missing_dependencies()
    assert [requirement for requirement, _trace in missing] == ["PyJWT >= 2.4.0"]
    assert "is not PyJWT" in missing[0][1]


def _some_jwks():
    keys = [_keys.generate_private_key("ec", curve=curve) for curve in ("P-256", "P-384", "P-521")]
    keys += [_keys.generate_private_key("ed25519"), _keys.generate_private_key("rsa", size=2048)]
    jwks = [_jwk.public_jwk(key) for key in keys]
    jwks.append(_jwk.public_jwk(keys[0], kid="with-x5c",
                                certificates=[_certificates.self_signed_certificate(keys[0], "edge-01")]))
    return jwks


def test_jwks_document_is_the_text_json_dumps_writes():
    jwks = _some_jwks()
    expected = json.dumps({"keys": sorted(jwks, key=lambda k: k["kid"])}, indent=2, ensure_ascii=True) + "\n"
    assert _jwks.jwks_document({"keys": jwks}) == expected
    assert _jwks.jwks_document({"keys": []}) == json.dumps({"keys": []}, indent=2) + "\n"
    odd = dict(jwks[0], kid="odd", x5c=[], extra=None)
    expected = json.dumps({"keys": [_jwk.ordered_jwk(odd)]}, indent=2, ensure_ascii=True) + "\n"
    assert _jwks.jwks_document({"keys": [odd]}) == expected


def test_validated_jwks_are_remembered_but_checked_again_for_everything_else():
    _jwk.clear_caches()
    jwks = _some_jwks()
    first = [_jwk.key_input_to_jwk(dict(jwk)) for jwk in jwks]
    again = [_jwk.key_input_to_jwk(dict(jwk)) for jwk in jwks]
    assert first == again
    again[0]["kty"] = "changed"
    assert _jwk.key_input_to_jwk(dict(jwks[0]))["kty"] == "EC"
    # The same numbers with a private member, a wrong alg or a damaged coordinate are still refused.
    with pytest.raises(_jose.JoseError, match="private"):
        _jwk.key_input_to_jwk(dict(jwks[0], d="AAAA"))
    with pytest.raises(_jose.JoseError, match="needs"):
        _jwk.key_input_to_jwk(dict(jwks[0], alg="ES384"))
    flipped = jwks[0]["y"][:-2] + ("A" if jwks[0]["y"][-2] != "A" else "B") + jwks[0]["y"][-1]
    with pytest.raises(_jose.JoseError, match="not a valid EC key"):
        _jwk.key_input_to_jwk(dict(jwks[0], y=flipped))
    with pytest.raises(_jose.JoseError, match="not a valid EC key"):
        _jwk.key_input_to_jwk(dict(jwks[0], y=flipped))


def test_thumbprint_without_the_encoder_matches_rfc7638_canonical_json():
    for jwk in _some_jwks() + [{"kty": "EC", "crv": "P-256", "x": 'a"b', "y": "\u00e9"}]:
        members = dict((name, jwk[name]) for name in _jwk.THUMBPRINT_MEMBERS[jwk["kty"]])
        canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        expected = _jose.b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())
        assert _jwk.thumbprint(jwk) == expected


# --------------------------------------------------------------------------------------
# JSON from outside nested deeper than the decoder can go
# --------------------------------------------------------------------------------------

DEEP_JSON = "[" * 100000 + "]" * 100000


def test_parse_json_turns_deep_nesting_into_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        _jose.parse_json(DEEP_JSON)
    assert _jose.parse_json('{"a": [1]}') == {"a": [1]}


def test_deeply_nested_token_and_key_input_are_refused():
    header = _jose.b64url_encode(b'{"alg":"ES256"}')
    with pytest.raises(_jose.JoseError, match="not valid JSON"):
        _jws.decode_unverified("%s.%s.c2ln" % (header, _jose.b64url_encode(DEEP_JSON.encode("ascii"))))
    with pytest.raises(_jose.JoseError, match="not valid JSON"):
        _jwk.key_input_to_jwk('{"kty": %s}' % DEEP_JSON)
