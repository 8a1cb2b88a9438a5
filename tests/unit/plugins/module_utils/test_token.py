# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for plugins/module_utils/_token.py (minting and token files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwk, _jws, _token

NOW = 1767225600  # 2026-01-01T00:00:00Z
ISSUER = "https://edge.example.com"
SUBJECT = "edge-01"
JKU = "http://jwks.jwks.svc.cluster.local/.well-known/jwks.json"


# --------------------------------------------------------------------------------------
# Keys (generated once per test session: RSA generation is slow)
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def keys():
    return {
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="session")
def rsa4096():
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def pem(key, passphrase=None):
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def verify(token, key, algorithm, check_times=True, **kwargs):
    """Independent check with PyJWT: public key only, algorithm pinned."""
    options = {"verify_aud": "audience" in kwargs}
    if not check_times:  # tokens minted at the fixed time NOW
        options.update(verify_exp=False, verify_nbf=False, verify_iat=False)
    return jwt.decode(token, key.public_key(), algorithms=[algorithm], options=options, **kwargs)


def options(**overrides):
    values = {"issuer": ISSUER, "subject": SUBJECT}
    values.update(overrides)
    return values


# --------------------------------------------------------------------------------------
# mint
# --------------------------------------------------------------------------------------

ALGORITHM_CASES = [
    ("rsa2048", "RS256"), ("rsa2048", "RS384"), ("rsa2048", "RS512"),
    ("rsa2048", "PS256"), ("rsa2048", "PS384"), ("rsa2048", "PS512"),
    ("p256", "ES256"), ("p384", "ES384"), ("p521", "ES512"), ("ed25519", "EdDSA"),
]


@pytest.mark.parametrize("key_name, algorithm", ALGORITHM_CASES)
def test_mint_every_algorithm_verifies_with_the_public_key(keys, key_name, algorithm):
    key = keys[key_name]
    result = _token.mint(key, audience="orders-api", algorithm=algorithm, now=int(time.time()), **options())
    claims = verify(result.token, key, algorithm, audience="orders-api", issuer=ISSUER)
    assert claims == result.claims
    assert result.header["alg"] == algorithm
    assert result.algorithm == algorithm
    assert jwt.get_unverified_header(result.token) == result.header


@pytest.mark.parametrize("key_name, algorithm", [
    ("rsa2048", "RS256"), ("p256", "ES256"), ("p384", "ES384"), ("p521", "ES512"), ("ed25519", "EdDSA"),
])
def test_mint_derives_the_algorithm_from_the_key(keys, key_name, algorithm):
    assert _token.mint(keys[key_name], **options()).header["alg"] == algorithm


def test_mint_default_kid_is_the_rfc7638_thumbprint(keys):
    key = keys["p256"]
    result = _token.mint(key, **options())
    assert result.kid == _jwk.thumbprint(_jwk.jwk_key_members(key))
    assert result.kid == _jwk.public_jwk(key)["kid"]


def test_mint_claims_and_times(keys):
    result = _token.mint(keys["p256"], audience=["a", "b"], expires_in=900, not_before=-60,
                         claims={"scope": "orders.read", "groups": ["x"]}, now=NOW, **options())
    assert result.claims["iss"] == ISSUER
    assert result.claims["sub"] == SUBJECT
    assert result.claims["aud"] == ["a", "b"]
    assert result.claims["iat"] == NOW
    assert result.claims["nbf"] == NOW - 60
    assert result.claims["exp"] == NOW + 900
    assert result.expires_at == NOW + 900
    assert result.claims["scope"] == "orders.read"
    assert result.claims["groups"] == ["x"]
    assert result.header["typ"] == "JWT"
    assert "jku" not in result.header
    assert "aud" not in _token.mint(keys["p256"], now=NOW, **options()).claims


def test_mint_single_audience_list_becomes_a_string(keys):
    assert _token.mint(keys["p256"], audience=["only"], **options()).claims["aud"] == "only"


def test_mint_jti_is_random_with_at_least_128_bits(keys):
    jtis = set()
    for dummy in range(20):
        jti = _token.mint(keys["p256"], **options()).claims["jti"]
        assert len(base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4))) >= 16
        jtis.add(jti)
    assert len(jtis) == 20


def test_mint_explicit_jti_kid_typ_headers(keys):
    result = _token.mint(keys["ed25519"], jti="fixed-id", kid="edge-01-2026", typ="at+jwt",
                         headers={"x-purpose": "test"}, **options())
    assert result.claims["jti"] == "fixed-id"
    assert result.header == {"alg": "EdDSA", "kid": "edge-01-2026", "typ": "at+jwt", "x-purpose": "test"}


def test_article_token_is_reproduced(rsa4096):
    """The original article: RS256, RSA-4096, header kid and jku, claims iss and jti, one hour (plus sub)."""
    result = _token.mint(rsa4096, algorithm="RS256", jku=JKU, expires_in=3600, **options())
    assert rsa4096.key_size == 4096
    assert set(result.header) == {"alg", "typ", "kid", "jku"}
    assert result.header["alg"] == "RS256"
    assert result.header["jku"] == JKU
    assert result.header["kid"] == _jwk.key_thumbprint(rsa4096)
    assert {"iss", "sub", "jti", "iat", "nbf", "exp"} <= set(result.claims)
    assert result.claims["exp"] - result.claims["iat"] == 3600
    claims = verify(result.token, rsa4096, "RS256", issuer=ISSUER)
    assert claims["sub"] == SUBJECT
    # an RS256 signature by a 4096-bit key is 512 bytes
    signature = result.token.split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == 512


@pytest.mark.parametrize("algorithm, message", [
    ("none", "'none' is refused"),
    ("None", "'none' is refused"),
    ("HS256", "shared-secret"),
    ("HS512", "shared-secret"),
    ("ES256", "needs a key of type EC"),
    ("EdDSA", "needs a key of type OKP"),
    ("RS1", "not supported"),
])
def test_mint_refuses_bad_algorithms_for_rsa(keys, algorithm, message):
    with pytest.raises(_jose.JoseError, match=message):
        _token.mint(keys["rsa2048"], algorithm=algorithm, **options())


def test_mint_refuses_curve_mismatch(keys):
    with pytest.raises(_jose.JoseError, match="needs curve P-384"):
        _token.mint(keys["p256"], algorithm="ES384", **options())
    with pytest.raises(_jose.JoseError, match="needs a key of type RSA"):
        _token.mint(keys["p256"], algorithm="RS256", **options())


@pytest.mark.parametrize("overrides, message", [
    ({"subject": ""}, "Istio rejects tokens without 'sub'"),
    ({"subject": "   "}, "Istio rejects tokens without 'sub'"),
    ({"subject": None}, "subject must be a non-empty string"),
    ({"issuer": ""}, "issuer must be a non-empty string"),
    ({"expires_in": 0}, "expires_in must be a positive"),
    ({"expires_in": -5}, "expires_in must be a positive"),
    ({"expires_in": 3601}, "exceeds max_lifetime 3600"),
    ({"expires_in": 7200, "max_lifetime": 3600}, "exceeds max_lifetime"),
    ({"not_before": -301}, "not_before must be"),
    ({"not_before": 600}, "not_before must be"),
    ({"audience": ""}, "audience must not be empty"),
    ({"audience": ["a", ""]}, "audience must be a non-empty string or a list"),
    ({"audience": 5}, "audience must be a non-empty string or a list"),
    ({"jku": "file:///etc/passwd"}, "jku must be an http"),
    ({"kid": "a b"}, "kid 'a b' is not allowed"),
    ({"kid": ""}, "kid must not be empty"),
    ({"jku": ""}, "jku must not be empty"),
    ({"jti": ""}, "jti must be a non-empty string"),
    ({"typ": ""}, "typ must be a media type"),
    ({"typ": "JWT\nx"}, "typ must be a media type"),
    ({"claims": ["scope"]}, "claims must be a dictionary"),
    ({"claims": {1: "x"}}, "claim names must be non-empty strings"),
    ({"headers": "x"}, "headers must be a dictionary"),
    ({"claims": {"when": object()}}, "JSON-serializable"),
    ({"claims": {"n": float("nan")}}, "JSON-serializable"),
    ({"claims": {"blob": "x" * 9000}}, "would be .* bytes long"),
])
def test_mint_refuses_bad_options(keys, overrides, message):
    with pytest.raises(_jose.JoseError, match=message):
        _token.mint(keys["p256"], **options(**overrides))


def test_expires_in_may_be_raised_with_max_lifetime(keys):
    result = _token.mint(keys["p256"], expires_in=7200, max_lifetime=7200, now=NOW, **options())
    assert result.claims["exp"] == NOW + 7200


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])
def test_registered_claims_cannot_be_smuggled_in(keys, name):
    with pytest.raises(_jose.JoseError, match="cannot be set through claims"):
        _token.mint(keys["p256"], claims={name: "x"}, **options())


@pytest.mark.parametrize("name", ["alg", "ALG", "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "kid",
                                  "typ", "b64", "enc", "zip"])
def test_reserved_headers_cannot_be_overridden(keys, name):
    with pytest.raises(_jose.JoseError, match="cannot be set through headers"):
        _token.mint(keys["p256"], headers={name: "x"}, **options())


def test_token_result_never_shows_the_token(keys):
    result = _token.mint(keys["p256"], **options())
    assert result.token not in repr(result)
    assert result.token not in json.dumps(result.metadata())
    assert result.metadata()["claims"] == result.claims
    assert result.metadata()["expires_at"] == result.expires_at_iso


@pytest.mark.parametrize("epoch, text", [(0, "1970-01-01T00:00:00Z"), (NOW, "2026-01-01T00:00:00Z"),
                                         (NOW + 3599, "2026-01-01T00:59:59Z")])
def test_expires_at_iso(epoch, text):
    assert _jose.iso_utc(epoch) == text


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)
CLAIM_NAMES = st.text(min_size=1, max_size=12).filter(lambda name: name not in _jws.REGISTERED_CLAIMS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(CLAIM_NAMES, JSON_VALUES, max_size=5))
def test_extra_claims_round_trip_and_are_recognized(keys, extra):
    key = keys["p256"]
    result = _token.mint(key, claims=extra, now=NOW, **options())
    signed = verify(result.token, key, "ES256", check_times=False)
    for name, value in extra.items():
        assert signed[name] == value
    assert _token.reuse_problem(result.token, key, now=NOW + 1, claims=extra, **options()) is None


# --------------------------------------------------------------------------------------
# load_key
# --------------------------------------------------------------------------------------

def test_load_key_from_path_and_content(tmp_path, keys):
    path = tmp_path / "key.pem"
    path.write_bytes(pem(keys["p256"]))
    from_path = _token.load_key(path=str(path))
    from_content = _token.load_key(content=pem(keys["p256"]).decode())
    assert _jwk.key_thumbprint(from_path) == _jwk.key_thumbprint(keys["p256"])
    assert _jwk.key_thumbprint(from_content) == _jwk.key_thumbprint(keys["p256"])


def test_load_key_encrypted(tmp_path, keys):
    path = tmp_path / "key.pem"
    path.write_bytes(pem(keys["ed25519"], passphrase="correct horse"))
    key = _token.load_key(path=str(path), passphrase="correct horse")
    assert _jwk.key_thumbprint(key) == _jwk.key_thumbprint(keys["ed25519"])
    with pytest.raises(_jose.JoseError, match="is encrypted: set the passphrase"):
        _token.load_key(path=str(path))
    with pytest.raises(_jose.JoseError, match="passphrase is wrong"):
        _token.load_key(path=str(path), passphrase="wrong")


def test_load_key_refusals(tmp_path, keys):
    public = keys["p256"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(_jose.JoseError, match="public key or certificate"):
        _token.load_key(content=public)
    with pytest.raises(_jose.JoseError, match="not encrypted, but a passphrase"):
        _token.load_key(content=pem(keys["p256"]), passphrase="x")
    damaged = pem(keys["p256"]).replace(b"M", b"A", 5)
    with pytest.raises(_jose.JoseError, match="damaged"):
        _token.load_key(content=damaged)
    with pytest.raises(_jose.JoseError, match="is empty"):
        _token.load_key(content="")
    with pytest.raises(_jose.JoseError, match="not both and not neither"):
        _token.load_key()
    with pytest.raises(_jose.JoseError, match="not both and not neither"):
        _token.load_key(path="/x", content="y")
    with pytest.raises(_files.FileError, match="does not exist"):
        _token.load_key(path=str(tmp_path / "missing.pem"))
    with pytest.raises(_files.FileError, match="is a directory"):
        _token.load_key(path=str(tmp_path))
    with pytest.raises(_jose.JoseError, match="path is empty"):
        _token.load_key(path="")


def test_load_key_refuses_weak_and_unsupported_keys():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(_jose.JoseError, match="1024 bits; at least 2048"):
        _token.load_key(content=pem(small))
    dsa_key = dsa.generate_private_key(key_size=2048)
    with pytest.raises(_jose.JoseError, match="unsupported key type"):
        _token.load_key(content=pem(dsa_key))
    with pytest.raises(_jose.JoseError, match="unsupported EC curve"):
        _token.load_key(content=pem(ec.generate_private_key(ec.SECP256K1())))


# --------------------------------------------------------------------------------------
# reuse_problem
# --------------------------------------------------------------------------------------

BASE = {"audience": "orders-api", "jku": JKU, "claims": {"scope": "read"}, "headers": {"x-env": "prod"}}


@pytest.fixture
def minted(keys):
    return _token.mint(keys["p256"], now=NOW, **options(**BASE))


def test_reuse_same_options_keeps_the_token(keys, minted):
    assert _token.reuse_problem(minted.token, keys["p256"], now=NOW + 100, **options(**BASE)) is None
    # a single-element audience list means the same as the string
    same = dict(BASE)
    same["audience"] = ["orders-api"]
    assert _token.reuse_problem(minted.token, keys["p256"], now=NOW + 100, **options(**same)) is None


@pytest.mark.parametrize("overrides, reason", [
    ({"issuer": "https://other"}, "claims differ in iss"),
    ({"subject": "edge-02"}, "claims differ in sub"),
    ({"audience": "stock-api"}, "claims differ in aud"),
    ({"audience": None}, "claims differ in aud"),
    ({"claims": {"scope": "write"}}, "claims differ in scope"),
    ({"claims": {}}, "claims differ in scope"),
    ({"claims": {"scope": "read", "extra": 1}}, "claims differ in extra"),
    ({"jti": "expected-id"}, "claims differ in jti"),
    ({"jku": "https://other/jwks.json"}, "header differs in jku"),
    ({"jku": None}, "header differs in jku"),
    ({"kid": "another-kid"}, "header differs in kid"),
    ({"headers": {"x-env": "test"}}, "header differs in x-env"),
    ({"typ": "at+jwt"}, "header differs in typ"),
    ({"expires_in": 900}, "lifetime is 600 s, not expires_in 900 s"),
    ({"not_before": -30}, "nbf is \\+0 s from iat, not not_before -30 s"),
])
def test_reuse_detects_changed_options(keys, minted, overrides, reason):
    problem = _token.reuse_problem(minted.token, keys["p256"], now=NOW + 1, **options(**dict(BASE, **overrides)))
    assert problem is not None
    assert re.search("^the token('s)? " + reason, problem), problem


def test_reuse_detects_another_algorithm(keys):
    token = _token.mint(keys["rsa2048"], algorithm="RS256", now=NOW, **options()).token
    problem = _token.reuse_problem(token, keys["rsa2048"], algorithm="PS256", now=NOW, **options())
    assert problem == "the token header differs in alg"


def test_reuse_detects_another_key_with_the_same_kid(keys):
    token = _token.mint(keys["p256"], kid="shared", now=NOW, **options()).token
    other = ec.generate_private_key(ec.SECP256R1())
    problem = _token.reuse_problem(token, other, kid="shared", now=NOW, **options())
    assert problem == "the token's signature does not verify with this key and ES256"


def test_reuse_detects_another_key_by_kid(keys):
    token = _token.mint(keys["p256"], now=NOW, **options()).token
    other = ec.generate_private_key(ec.SECP256R1())
    assert _token.reuse_problem(token, other, now=NOW, **options()) == "the token header differs in kid"


def test_reuse_detects_a_tampered_token(keys, minted):
    header, payload, signature = minted.token.split(".")
    claims = dict(minted.claims, exp=minted.claims["exp"] + 3600, iat=minted.claims["iat"] + 3600,
                  nbf=minted.claims["nbf"] + 3600)
    forged = ".".join([header, _jose.b64url_encode(json.dumps(claims).encode()), signature])
    problem = _token.reuse_problem(forged, keys["p256"], now=NOW + 3600, **options(**BASE))
    assert problem == "the token's signature does not verify with this key and ES256"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "W10.e30.x"])
def test_reuse_detects_unreadable_tokens(keys, token):
    problem = _token.reuse_problem(token, keys["p256"], now=NOW, **options())
    assert problem.startswith("the existing token cannot be read") or "differs" in problem


def test_reuse_refresh_margin_and_expiry(keys, minted):
    key = keys["p256"]
    # default margin: a third of 600 s = 200 s
    assert _token.reuse_problem(minted.token, key, now=NOW + 399, **options(**BASE)) is None
    assert _token.reuse_problem(minted.token, key, now=NOW + 400, **options(**BASE)) == \
        "the token expires in 200 s, within the refresh margin of 200 s"
    assert _token.reuse_problem(minted.token, key, refresh_margin=0, now=NOW + 599, **options(**BASE)) is None
    assert _token.reuse_problem(minted.token, key, refresh_margin=0, now=NOW + 600, **options(**BASE)) == \
        "the token expired 0 s ago"
    assert _token.reuse_problem(minted.token, key, refresh_margin=0, now=NOW + 700, **options(**BASE)) == \
        "the token expired 100 s ago"
    assert _token.reuse_problem(minted.token, key, refresh_margin=600, now=NOW, **options(**BASE)) is not None


def test_reuse_refuses_tokens_from_the_future(keys, minted):
    problem = _token.reuse_problem(minted.token, keys["p256"], now=NOW - 1, **options(**BASE))
    assert "issued in the future" in problem


def test_reuse_validates_options_like_mint(keys, minted):
    with pytest.raises(_jose.JoseError, match="shared-secret"):
        _token.reuse_problem(minted.token, keys["p256"], algorithm="HS256", **options())
    with pytest.raises(_jose.JoseError, match="refresh_margin must be"):
        _token.reuse_problem(minted.token, keys["p256"], refresh_margin=-1, **options())
    with pytest.raises(TypeError, match="unknown token option"):
        _token.reuse_problem(minted.token, keys["p256"], isuer="typo", **options())
    with pytest.raises(TypeError, match="subject is required"):
        _token.reuse_problem(minted.token, keys["p256"], issuer=ISSUER)


def test_default_refresh_margin():
    assert _token.default_refresh_margin(600) == 200
    assert _token.default_refresh_margin(3600) == 1200


# --------------------------------------------------------------------------------------
# ensure_token_file
# --------------------------------------------------------------------------------------

def listing(directory):
    return sorted(os.listdir(str(directory)))


def test_ensure_creates_then_keeps(tmp_path, keys):
    path = str(tmp_path / "token")
    changed, first = _token.ensure_token_file(path, keys["p256"], now=NOW, **options(**BASE))
    assert changed is True
    assert first.reason == "the token file does not exist"
    assert first.previous is None
    with open(path) as handle:
        assert handle.read() == first.token  # no trailing newline
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    verify(first.token, keys["p256"], "ES256", check_times=False, audience="orders-api")

    changed, second = _token.ensure_token_file(path, keys["p256"], now=NOW + 10, **options(**BASE))
    assert changed is False
    assert second.reason is None
    assert second.token == first.token
    assert second.previous == first.metadata()
    assert listing(tmp_path) == [".token.lock", "token"]


def test_ensure_replaces_when_options_change(tmp_path, keys):
    path = str(tmp_path / "token")
    _token.ensure_token_file(path, keys["p256"], now=NOW, **options())
    changed, result = _token.ensure_token_file(path, keys["p256"], now=NOW, **options(subject="edge-02"))
    assert changed is True
    assert result.reason == "the token claims differ in sub"
    assert result.previous["claims"]["sub"] == SUBJECT
    assert result.claims["sub"] == "edge-02"
    with open(path) as handle:
        assert handle.read() == result.token


def test_ensure_refreshes_within_the_margin(tmp_path, keys):
    path = str(tmp_path / "token")
    first = _token.ensure_token_file(path, keys["p256"], now=NOW, **options())[1]
    changed, kept = _token.ensure_token_file(path, keys["p256"], now=NOW + 399, **options())
    assert (changed, kept.token) == (False, first.token)
    changed, fresh = _token.ensure_token_file(path, keys["p256"], now=NOW + 400, **options())
    assert changed is True
    assert fresh.token != first.token
    assert fresh.claims["iat"] == NOW + 400


def test_ensure_margin_at_or_above_lifetime_always_writes(tmp_path, keys):
    path = str(tmp_path / "token")
    tokens = set()
    for dummy in range(3):
        changed, result = _token.ensure_token_file(path, keys["p256"], refresh_margin=600, now=NOW, **options())
        assert changed is True
        tokens.add(result.token)
    assert len(tokens) == 3


def test_ensure_check_mode_writes_nothing(tmp_path, keys):
    path = str(tmp_path / "token")
    changed, result = _token.ensure_token_file(path, keys["p256"], check_mode=True, now=NOW, **options())
    assert changed is True
    assert result.reason == "the token file does not exist"
    assert listing(tmp_path) == []  # not even a lock file

    _token.ensure_token_file(path, keys["p256"], now=NOW, **options())
    with open(path, "rb") as handle:
        before = handle.read()
    changed = _token.ensure_token_file(path, keys["p256"], check_mode=True, now=NOW + 1, **options())[0]
    assert changed is False
    changed, result = _token.ensure_token_file(path, keys["p256"], check_mode=True, now=NOW + 500, **options())
    assert changed is True
    assert result.token.encode() != before
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_ensure_modes(tmp_path, keys):
    path = str(tmp_path / "token")
    _token.ensure_token_file(path, keys["p256"], mode=0o640, now=NOW, **options())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640

    os.chmod(path, 0o644)
    changed = _token.ensure_token_file(path, keys["p256"], mode=0o640, check_mode=True, now=NOW, **options())[0]
    assert changed is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    changed = _token.ensure_token_file(path, keys["p256"], mode=0o640, now=NOW, **options())[0]
    assert changed is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    changed = _token.ensure_token_file(path, keys["p256"], mode=0o640, now=NOW, **options())[0]
    assert changed is False

    # mode=None keeps the mode of the existing file, also for a new token
    changed = _token.ensure_token_file(path, keys["p256"], mode=None, now=NOW, **options(subject="other"))[0]
    assert changed is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    new_path = str(tmp_path / "new")
    _token.ensure_token_file(new_path, keys["p256"], mode=None, now=NOW, **options())
    assert stat.S_IMODE(os.stat(new_path).st_mode) == 0o600

    with pytest.raises(_files.FileError, match="octal permission"):
        _token.ensure_token_file(path, keys["p256"], mode="0640", now=NOW, **options())


def test_ensure_group_is_set_before_the_file_appears(tmp_path, keys):
    gid = os.getgid() if os.geteuid() != 0 else 65534
    path = str(tmp_path / "token")
    changed = _token.ensure_token_file(path, keys["p256"], mode=0o640, gid=gid, now=NOW, **options())[0]
    assert changed is True
    assert os.stat(path).st_gid == gid
    changed = _token.ensure_token_file(path, keys["p256"], mode=0o640, gid=gid, now=NOW, **options())[0]
    assert changed is False


def test_ensure_refuses_to_overwrite_foreign_files(tmp_path, keys):
    for name, content in [("text", b"important: data\n"), ("binary", b"\x00\xff\x10"),
                          ("big", b"a.b." + b"c" * (4 * _token.MAX_TOKEN_BYTES))]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(_files.FileError, match="does not hold a JWT|larger than"):
            _token.ensure_token_file(str(path), keys["p256"], now=NOW, **options())
        assert path.read_bytes() == content


def test_ensure_replaces_empty_and_damaged_tokens(tmp_path, keys):
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    changed, result = _token.ensure_token_file(str(empty), keys["p256"], now=NOW, **options())
    assert (changed, result.reason) == (True, "the token file is empty")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(b"eyJhbGciOi.eyJpc3Mi.xyz\n")
    changed, result = _token.ensure_token_file(str(damaged), keys["p256"], now=NOW, **options())
    assert changed is True
    assert result.reason.startswith("the existing token cannot be read")
    assert result.previous is None
    assert damaged.read_text() == result.token


def test_ensure_path_problems(tmp_path, keys):
    with pytest.raises(_files.FileError, match="does not exist: create it first"):
        _token.ensure_token_file(str(tmp_path / "missing" / "token"), keys["p256"], **options())
    with pytest.raises(_files.FileError, match="does not exist: create it first"):
        _token.ensure_token_file(str(tmp_path / "missing" / "token"), keys["p256"], check_mode=True, **options())
    with pytest.raises(_files.FileError, match="is a directory"):
        _token.ensure_token_file(str(tmp_path), keys["p256"], **options())
    with pytest.raises(_files.FileError, match="the token file path is empty"):
        _token.ensure_token_file("", keys["p256"], **options())


def test_ensure_refuses_future_not_before(tmp_path, keys):
    with pytest.raises(_jose.JoseError, match="not_before must be 0 or negative"):
        _token.ensure_token_file(str(tmp_path / "token"), keys["p256"], not_before=30, **options())
    assert listing(tmp_path) == []


def test_ensure_bad_options_leave_the_file_alone(tmp_path, keys):
    path = tmp_path / "token"
    _token.ensure_token_file(str(path), keys["p256"], now=NOW, **options())
    before = path.read_bytes()
    for bad in ({"algorithm": "HS256"}, {"expires_in": 99999}, {"claims": {"iss": "x"}}, {"headers": {"alg": "none"}},
                {"subject": ""}):
        with pytest.raises(_jose.JoseError):
            _token.ensure_token_file(str(path), keys["p256"], now=NOW, **options(**bad))
        assert path.read_bytes() == before


def test_ensure_failed_write_keeps_the_old_token(tmp_path, keys, monkeypatch):
    path = tmp_path / "token"
    _token.ensure_token_file(str(path), keys["p256"], now=NOW, **options())
    before = path.read_bytes()

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(_files.FileError, match="No space left on device; the previous file, if any, is unchanged"):
        _token.ensure_token_file(str(path), keys["p256"], now=NOW, **options(subject="new"))
    assert path.read_bytes() == before
    assert listing(tmp_path) == [".token.lock", "token"]


def test_resolve_uid_gid():
    assert _files.resolve_uid(None) is None
    assert _files.resolve_gid(None) is None
    assert _files.resolve_uid(0) == 0
    assert _files.resolve_uid("0") == 0
    assert _files.resolve_uid("root") == 0
    assert _files.resolve_gid("root") == 0
    assert _files.resolve_gid("1234") == 1234
    with pytest.raises(_files.FileError, match="user no-such-user-here does not exist"):
        _files.resolve_uid("no-such-user-here")
    with pytest.raises(_files.FileError, match="group no-such-group-here does not exist"):
        _files.resolve_gid("no-such-group-here")


# --------------------------------------------------------------------------------------
# RSA key validation on load and the sign and verify round trip
# --------------------------------------------------------------------------------------

def _damaged_rsa_pem(key):
    """PEM of an RSA key whose private exponents no longer belong to its public key."""
    numbers = key.private_numbers()
    damaged = rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d + 2, numbers.dmp1 + 2, numbers.dmq1 + 2,
                                    numbers.iqmp, numbers.public_numbers)
    return damaged.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write_key(tmp_path, data, mode):
    path = tmp_path / "signing.pem"
    path.write_bytes(data)
    os.chmod(str(path), mode)
    return str(path)


def test_damaged_rsa_key_file_0600_loads_but_never_signs(keys, tmp_path):
    # An owner-only key file skips cryptography's RSA validation; the round trip catches the damage.
    path = _write_key(tmp_path, _damaged_rsa_pem(keys["rsa2048"]), 0o600)
    key = _token.load_key(path=path)
    with pytest.raises(_jose.JoseError, match="does not verify with its own public key"):
        _token.mint(key, ISSUER, SUBJECT, now=NOW)
    with pytest.raises(_jose.JoseError, match="does not verify with its own public key"):
        _token.ensure_token_file(str(tmp_path / "token"), key, issuer=ISSUER, subject=SUBJECT)
    assert not os.path.exists(str(tmp_path / "token"))


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_damaged_rsa_key_file_others_may_access_is_fully_validated(keys, tmp_path, mode):
    path = _write_key(tmp_path, _damaged_rsa_pem(keys["rsa2048"]), mode)
    with pytest.raises(_jose.JoseError, match="is damaged"):
        _token.load_key(path=path)


def test_damaged_rsa_key_content_is_fully_validated(keys):
    with pytest.raises(_jose.JoseError, match="is damaged"):
        _token.load_key(content=_damaged_rsa_pem(keys["rsa2048"]))


def test_intact_rsa_key_file_0600_signs_verifiable_tokens(keys, tmp_path):
    path = _write_key(tmp_path, pem(keys["rsa2048"]), 0o600)
    key = _token.load_key(path=path)
    for _index in range(2):
        result = _token.mint(key, ISSUER, SUBJECT, audience="api", now=NOW)
        claims = jwt.decode(result.token, keys["rsa2048"].public_key(), algorithms=["RS256"], audience="api",
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
        assert claims == result.claims
        assert jwt.get_unverified_header(result.token) == result.header
        assert result.kid == _jwk.key_thumbprint(keys["rsa2048"])


@pytest.mark.parametrize("name,algorithm", [("rsa2048", "PS256"), ("p384", "ES384"), ("p521", "ES512"),
                                            ("ed25519", "EdDSA")])
def test_minted_token_matches_pyjwt_encode(keys, name, algorithm):
    # The signing input is the one PyJWT would build for the same header and claims.
    key = keys[name]
    result = _token.mint(key, ISSUER, SUBJECT, algorithm=algorithm, claims={"scope": ("a", "b")}, now=NOW)
    extra = dict((member, value) for member, value in result.header.items() if member != "alg")
    reference = jwt.encode(result.claims, key, algorithm=algorithm, headers=extra)
    assert reference.rsplit(".", 1)[0] == result.token.rsplit(".", 1)[0]
    assert result.claims["scope"] == ["a", "b"]
    jwt.decode(result.token, key.public_key(), algorithms=[algorithm],
               options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})


@pytest.mark.parametrize("exp", [-998200000000, 10 ** 20, 253402300800, -1])
def test_token_file_with_an_exp_outside_1970_to_9999_is_replaced(tmp_path, keys, exp):
    """exp is read before the signature is checked: a time with no ISO 8601 text must not end the run."""
    header = _jose.b64url_encode(b'{"alg":"ES256","typ":"JWT"}')
    claims = _jose.b64url_encode(json.dumps({"iss": ISSUER, "sub": SUBJECT, "exp": exp}).encode("ascii"))
    token = "%s.%s.c2ln" % (header, claims)
    path = tmp_path / "token"
    path.write_text(token)
    changed, result = _token.ensure_token_file(str(path), keys["p256"], check_mode=True, now=NOW, **options())
    assert changed and result.previous is None and result.reason
    with pytest.raises(_jose.JoseError, match="between 1970 and 9999"):
        _token.TokenResult.from_token(token)


@pytest.mark.parametrize("value", ["x\0y", "\u00b2", 2 ** 32, -1, "99999999999999999999", 2 ** 70])
def test_resolve_refuses_names_and_ids_no_system_call_takes(value):
    """A group from the refresher configuration or a module option: FileError, not ValueError or OverflowError later."""
    for resolve in (_files.resolve_uid, _files.resolve_gid):
        with pytest.raises(_files.FileError, match="does not exist|out of range"):
            resolve(value)


def test_resolve_takes_names_and_ids():
    assert _files.resolve_uid("root") == 0 and _files.resolve_gid(0) == 0 and _files.resolve_uid("0") == 0
    assert _files.resolve_gid(None) is None and _files.resolve_uid(4294967294) == 4294967294
