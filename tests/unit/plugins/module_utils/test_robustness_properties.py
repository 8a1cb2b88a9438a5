# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Property tests (hypothesis): arbitrary input never crashes, and private material never leaks.

test_jose.py already checks the happy paths as properties (JWK and thumbprint round trips,
extra claims and headers surviving sign and verify, registered claims and reserved headers
refused). This file adds what those do not cover:

* every entry point that parses outside input (JWK dicts, key inputs, JWKS documents, PEM
  data, tokens) either succeeds or raises JoseError: any other exception would be a
  traceback in a module's output;
* a public JWK with any set of private members is refused, and the message names the
  members but never their values;
* a JWK whose members were changed is refused or normalizes to a key whose thumbprint
  matches its members (a changed key never keeps the old kid by accident);
* the jwt_token and jwks_publish modules, fed arbitrary claims, headers and keys, answer
  with a JSON result every time: a token whose extra claims are exactly the ones given, or
  a failure with a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import string

import jwt
import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _common, _jose, _jwk, _jwks, _jws, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish, jwt_token

JoseError = _jose.JoseError
ISSUER = "https://edge.example.com"

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
B64URL_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=90)
SECRETS = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=40).map(
    lambda text: "pRiV-" + text)
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def keys():
    made = {
        "ec": _keys.generate_private_key("ec", curve="P-256"),
        "p521": _keys.generate_private_key("ec", curve="P-521"),
        "ed": _keys.generate_private_key("ed25519"),
        "rsa": _keys.generate_private_key("rsa", size=2048),
    }
    certificate = _certificates.self_signed_certificate(made["ec"], "edge-01")
    jwks = dict((name, _jwk.public_jwk(key)) for name, key in made.items())
    jwks["ec_x5c"] = _jwk.public_jwk(made["ec"], certificates=[certificate])
    return {"objects": made, "jwks": jwks}


def member_values():
    """Values a member of a hand-edited JWK may end up with."""
    return JSON_VALUES | B64URL_TEXT | st.sampled_from(["RSA", "EC", "OKP", "oct", "P-256", "Ed25519", "sig",
                                                        "ES256", "none", "HS256", ""])


@st.composite
def edited_jwks(draw, jwks):
    """A valid public JWK with members replaced, removed or added."""
    jwk = dict(draw(st.sampled_from(sorted(jwks.items())))[1])
    names = sorted(set(jwk) | set(_jwk.PUBLIC_JWK_MEMBERS) | {"key_ops", "x5u", "ext"})
    for _edit in range(draw(st.integers(min_value=1, max_value=3))):
        name = draw(st.sampled_from(names))
        if draw(st.booleans()) and name in jwk:
            del jwk[name]
        else:
            jwk[name] = draw(member_values())
    return jwk


def _refused_or_consistent(value, what="key"):
    """key_input_to_jwk(value) is a JoseError or a normalized JWK whose kid is right for its members."""
    try:
        normalized = _jwk.key_input_to_jwk(value, what)
    except JoseError as exc:
        return str(exc)
    assert set(normalized) <= set(_jwk.PUBLIC_JWK_MEMBERS)
    assert not set(normalized) & set(_jwk.PRIVATE_JWK_MEMBERS)
    assert normalized["use"] == "sig"
    again, key = _jwk.jwk_to_public_key(normalized)
    assert again == normalized
    assert _jwk.thumbprint(normalized) == _jwk.key_thumbprint(key)
    if isinstance(value, dict) and "kid" not in value:
        assert normalized["kid"] == _jwk.thumbprint(normalized)
    return None


@SETTINGS
@given(data=st.data())
def test_edited_jwks_are_refused_or_consistent(keys, data):
    jwk = data.draw(edited_jwks(keys["jwks"]))
    _refused_or_consistent(jwk)
    _refused_or_consistent(json.dumps(jwk, allow_nan=True))


@SETTINGS
@given(value=JSON_VALUES)
def test_arbitrary_values_as_key_input(value):
    _refused_or_consistent(value)
    if isinstance(value, dict):
        _refused_or_consistent(dict(value, kty=value.get("kty", "EC")))


@SETTINGS
@given(data=st.data(), members=st.sets(st.sampled_from(_jwk.PRIVATE_JWK_MEMBERS), min_size=1),
       secret=SECRETS)
def test_any_private_member_is_refused_without_its_value(keys, data, members, secret):
    jwk = dict(data.draw(st.sampled_from(sorted(keys["jwks"].values(), key=lambda item: item["kid"]))))
    for name in members:
        jwk[name] = [{"r": secret}] if name == "oth" else secret
    for value in (jwk, json.dumps(jwk), {"keys": [jwk]}):
        with pytest.raises(JoseError) as info:
            _jwks.collect_keys([value])
        message = str(info.value)
        assert "private or secret key material (%s)" % ", ".join(sorted(members)) in message
        assert secret not in message
    # The values a module masks in its logged arguments include the secret.
    assert any(secret in text for text in _common.secret_values([jwk]))


@SETTINGS
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8")))
def test_arbitrary_bytes_as_a_jwks_file(data):
    try:
        keys = _jwks.parse_jwks(data)
    except JoseError:
        return
    assert isinstance(keys, list) and all(isinstance(key, dict) for key in keys)


@SETTINGS
@given(existing=JSON_VALUES, revoke=st.lists(st.text(max_size=10), max_size=3), merge=st.booleans())
def test_plan_with_an_arbitrary_published_jwks(keys, existing, revoke, merge):
    try:
        plan = _jwks.plan([keys["jwks"]["ed"]], existing=json.dumps(existing, allow_nan=True), revoke=revoke,
                          merge=merge, allow_empty=True)
    except JoseError:
        return
    assert json.loads(plan["document"]) == plan["jwks"]
    for key in plan["jwks"]["keys"]:
        assert not set(key) & set(_jwk.PRIVATE_JWK_MEMBERS)


PEM_LABELS = st.sampled_from(["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
                              "OPENSSH PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE", "DSA PRIVATE KEY"])


@st.composite
def pem_like(draw):
    body = draw(st.binary(max_size=200))
    label = draw(PEM_LABELS)
    text = "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label, base64.b64encode(body).decode("ascii"), draw(st.sampled_from([label, "OTHER"])))
    return text.encode("ascii")


@SETTINGS
@given(data=pem_like() | st.binary(max_size=200), passphrase=st.none() | st.text(max_size=12))
def test_arbitrary_pem_data_as_a_private_key(data, passphrase):
    try:
        key = _keys.load_private_key(data, passphrase)
    except JoseError:
        return
    _keys.signing_key_family(key)  # what loads must be usable


@SETTINGS
@given(data=pem_like())
def test_arbitrary_pem_data_as_a_public_key_input(data):
    _refused_or_consistent(data.decode("ascii"))


@st.composite
def damaged_certificates(draw, keys):
    """The DER of a real certificate with one to three bytes changed."""
    der = bytearray(base64.b64decode(keys["jwks"]["ec_x5c"]["x5c"][0]))
    for _change in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(der) - 1))
        der[index] = draw(st.integers(min_value=0, max_value=255).filter(lambda value, old=der[index]: value != old))
    return bytes(der)


def _pem_of(x5c_item):
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % x5c_item


@SETTINGS
@given(data=st.data())
def test_damaged_certificates_are_refused_or_consistent(keys, data):
    der = data.draw(damaged_certificates(keys))
    text = base64.b64encode(der).decode("ascii")
    _refused_or_consistent(_pem_of(text))
    _refused_or_consistent(dict(keys["jwks"]["ec_x5c"], x5c=[text]))


@SETTINGS
@given(token=st.text(max_size=120) | st.builds(
    lambda a, b, c: ".".join((a, b, c)), B64URL_TEXT, B64URL_TEXT, B64URL_TEXT))
def test_arbitrary_text_as_an_existing_token(keys, token):
    try:
        _jws.decode_unverified(token)
    except JoseError:
        pass
    reason = _token.reuse_problem(token, keys["objects"]["ec"], issuer=ISSUER, subject="edge-01")
    assert isinstance(reason, str) and reason


@SETTINGS
@given(header=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
       claims=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4))
def test_tampered_tokens_are_never_kept(keys, header, claims):
    """A token with any other header or claims but a real signature is not reused."""
    key = keys["objects"]["ec"]
    good = _token.mint(key, issuer=ISSUER, subject="edge-01").token
    try:
        forged_header = _jose.b64url_encode(json.dumps(dict(json.loads(_jose.b64url_decode(good.split(".")[0])),
                                                            **header), allow_nan=True).encode("utf-8"))
        forged_claims = _jose.b64url_encode(json.dumps(dict(json.loads(_jose.b64url_decode(good.split(".")[1])),
                                                            **claims), allow_nan=True).encode("utf-8"))
    except (TypeError, ValueError):
        return
    forged = "%s.%s.%s" % (forged_header, forged_claims, good.split(".")[2])
    assume(forged != good)
    assert _token.reuse_problem(forged, key, issuer=ISSUER, subject="edge-01") is not None


# --------------------------------------------------------------------------------------
# The modules, in-process, with arbitrary input
# --------------------------------------------------------------------------------------

def run_main(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return json.loads(out.out)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory, keys):
    path = tmp_path_factory.mktemp("robust") / "key.pem"
    path.write_bytes(_keys.private_key_pem(keys["objects"]["ec"]))
    return str(path)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(claims=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4),
       headers=st.none() | st.dictionaries(st.text(max_size=10), JSON_SCALARS, max_size=3),
       audience=st.none() | st.text(max_size=8) | st.lists(st.text(max_size=8), max_size=3))
def test_jwt_token_with_arbitrary_claims_and_headers(keys, key_file, capsys, claims, headers, audience):
    args = {"private_key_path": key_file, "issuer": ISSUER, "subject": "edge-01", "claims": claims}
    if headers is not None:
        args["headers"] = headers
    if audience is not None:
        args["audience"] = audience
    result = run_main(jwt_token, args, capsys)
    if result.get("failed"):
        assert result["msg"] and "token" not in result
        return
    verified = jwt.decode(result["token"], keys["objects"]["ec"].public_key(), algorithms=["ES256"],
                          options={"verify_aud": False})
    assert verified == result["claims"]
    extra = dict((name, value) for name, value in verified.items() if name not in _jws.REGISTERED_CLAIMS)
    assert extra == json.loads(json.dumps(claims))
    assert not set(claims) & set(_jws.REGISTERED_CLAIMS)
    header = jwt.get_unverified_header(result["token"])
    assert header["alg"] == "ES256" and header["kid"] == _jwk.key_thumbprint(keys["objects"]["ec"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), secret=SECRETS)
def test_jwks_publish_with_arbitrary_keys(keys, capsys, data, secret):
    items = data.draw(st.lists(edited_jwks(keys["jwks"]) | JSON_VALUES | st.sampled_from(sorted(
        keys["jwks"].values(), key=lambda item: item["kid"])), min_size=1, max_size=3))
    assume(secret not in json.dumps(items, allow_nan=True))
    if data.draw(st.booleans()):
        items.append(dict(keys["jwks"]["rsa"], d=secret))
    result = run_main(jwks_publish, {"keys": items, "allow_empty": True}, capsys)
    if result.get("failed"):
        assert result["msg"]
    else:
        assert [key["kid"] for key in result["jwks"]["keys"]] == result["kids"]
    assert secret not in json.dumps(result)
