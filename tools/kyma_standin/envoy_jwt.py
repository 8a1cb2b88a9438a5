# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Token checks as Envoy's ``jwt_authn`` filter makes them, for the local gateway stand-in.

This is a re-implementation of the behaviour of Envoy's JWT library (``source/common/jwt``:
``jwt.cc``, ``jwks.cc``, ``verify.cc``, ``status.cc``) and of the order of checks in the
``jwt_authn`` authenticator, written against ``cryptography`` only. It deliberately does not
use the collection's own JOSE code (``plugins/module_utils/_jws.py`` and others): the stand-in judges
tokens made by that code and must not share its mistakes.

Order of checks for a present token (as in Envoy's ``AuthenticatorImpl::startVerify``):

1. parse (three dot-separated sections, base64url, JSON, ``alg`` implemented, claim types);
2. ``iss`` must be one of the configured issuers (``Jwt issuer is not configured``);
3. ``nbf``/``exp`` with a clock skew (Envoy's default 60 s, which Istio does not change);
4. key selection and signature: a JWK is tried when its ``kid`` equals the token's ``kid``
   (or either has none) and its ``alg`` equals the token's ``alg`` (or the JWK has none);
   no such key -> ``Jwks doesn't have key to match kid or alg from Jwt``, keys tried but no
   signature verified -> ``Jwt verification fails``.

Every failure text below is byte-for-byte the text Envoy sends as the body of its 401.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

OK = "OK"
JWT_MISSED = "Jwt is missing"
JWT_NOT_YET_VALID = "Jwt not yet valid"
JWT_EXPIRED = "Jwt is expired"
JWT_BAD_FORMAT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
JWT_HEADER_BAD_BASE64 = "Jwt header is an invalid Base64url encoded"
JWT_HEADER_BAD_JSON = "Jwt header is an invalid JSON"
JWT_HEADER_BAD_ALG = "Jwt header [alg] field is required and must be a string"
JWT_HEADER_NOT_IMPLEMENTED_ALG = "Jwt header [alg] is not supported"
JWT_HEADER_BAD_KID = "Jwt header [kid] field is not a string"
JWT_PAYLOAD_BAD_BASE64 = "Jwt payload is an invalid Base64url encoded"
JWT_ED25519_SIGNATURE_WRONG_LENGTH = "Jwt ED25519 signature is wrong length"
JWT_PAYLOAD_BAD_JSON = "Jwt payload is an invalid JSON"
JWT_SIGNATURE_BAD_BASE64 = "Jwt signature is an invalid Base64url encoded"
JWT_UNKNOWN_ISSUER = "Jwt issuer is not configured"
JWT_VERIFICATION_FAIL = "Jwt verification fails"
JWT_MULTIPLE_TOKENS = "Found multiple Jwt tokens"
JWKS_NO_VALID_KEYS = "Jwks doesn't have any valid public key"
JWKS_KID_ALG_MISMATCH = "Jwks doesn't have key to match kid or alg from Jwt"

IMPLEMENTED_ALGS = frozenset([
    "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "EdDSA",
])

#: Envoy's default ``clock_skew_seconds``; Istio's RequestAuthentication cannot change it.
DEFAULT_CLOCK_SKEW = 60

_UINT64_LIMIT = float(2 ** 64 - 1)
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def b64url_unescape(text):
    """Decode web-safe base64 with or without padding like absl's WebSafeBase64Unescape; None on error."""
    if not isinstance(text, str) or not _B64URL.match(text):
        return None
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    if "=" in text and (len(text) % 4) != 0:
        return None
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


def _reject_constant(name):
    raise ValueError("JSON constant %s is not allowed" % name)


def _json_object(data):
    """A JSON object from bytes, or None (protobuf's JSON parser refuses NaN/Infinity too)."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class _Field:
    OK, MISSING, WRONG_TYPE, OUT_OF_RANGE = range(4)


def _get_string(obj, name):
    if name not in obj:
        return _Field.MISSING, ""
    value = obj[name]
    if not isinstance(value, str):
        return _Field.WRONG_TYPE, ""
    return _Field.OK, value


def _get_uint64(obj, name):
    if name not in obj:
        return _Field.MISSING, 0
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _Field.WRONG_TYPE, 0
    if value < 0 or float(value) >= _UINT64_LIMIT:
        return _Field.OUT_OF_RANGE, 0
    return _Field.OK, int(value)


def _get_string_list(obj, name):
    if name not in obj:
        return _Field.MISSING, []
    value = obj[name]
    if isinstance(value, str):
        return _Field.OK, [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return _Field.OK, list(value)
    return _Field.WRONG_TYPE, []


class Jwt:
    """A parsed (not yet verified) token, with the fields Envoy reads."""

    def __init__(self):
        self.header = {}
        self.payload = {}
        self.alg = ""
        self.kid = ""
        self.iss = ""
        self.sub = ""
        self.jti = ""
        self.iat = 0
        self.nbf = 0
        self.exp = 0
        self.audiences = []
        self.signed_data = b""
        self.signature = b""


_PAYLOAD_STRINGS = (("iss", "Jwt payload [iss] field is not a string"),
                    ("sub", "Jwt payload [sub] field is not a string"))
_PAYLOAD_UINTS = ("iat", "nbf", "exp")


def parse_token(token):
    """Parse a compact token like ``Jwt::parseFromString``; returns (status, Jwt or None)."""
    # Envoy splits with absl::SkipEmpty(): empty sections do not count.
    sections = [part for part in token.split(".") if part]
    if len(sections) != 3:
        return JWT_BAD_FORMAT, None
    jwt = Jwt()
    header_raw = b64url_unescape(sections[0])
    if header_raw is None:
        return JWT_HEADER_BAD_BASE64, None
    header = _json_object(header_raw)
    if header is None:
        return JWT_HEADER_BAD_JSON, None
    code, jwt.alg = _get_string(header, "alg")
    if code != _Field.OK:
        return JWT_HEADER_BAD_ALG, None
    if jwt.alg not in IMPLEMENTED_ALGS:
        return JWT_HEADER_NOT_IMPLEMENTED_ALG, None
    code, jwt.kid = _get_string(header, "kid")
    if code == _Field.WRONG_TYPE:
        return JWT_HEADER_BAD_KID, None
    payload_raw = b64url_unescape(sections[1])
    if payload_raw is None:
        return JWT_PAYLOAD_BAD_BASE64, None
    payload = _json_object(payload_raw)
    if payload is None:
        return JWT_PAYLOAD_BAD_JSON, None
    for name, message in _PAYLOAD_STRINGS:
        code, value = _get_string(payload, name)
        if code == _Field.WRONG_TYPE:
            return message, None
        setattr(jwt, name, value)
    for name in _PAYLOAD_UINTS:
        code, value = _get_uint64(payload, name)
        if code == _Field.WRONG_TYPE:
            return "Jwt payload [%s] field is not an integer" % name, None
        if code == _Field.OUT_OF_RANGE:
            return "Jwt payload [%s] field is not a positive 64 bit integer" % name, None
        setattr(jwt, name, value)
    code, jwt.jti = _get_string(payload, "jti")
    if code == _Field.WRONG_TYPE:
        return "Jwt payload [jti] field is not a string", None
    code, jwt.audiences = _get_string_list(payload, "aud")
    if code == _Field.WRONG_TYPE:
        return "Jwt payload [aud] field is not a string or string list", None
    signature = b64url_unescape(sections[2])
    if signature is None:
        return JWT_SIGNATURE_BAD_BASE64, None
    jwt.header = header
    jwt.payload = payload
    jwt.signature = signature
    jwt.signed_data = ("%s.%s" % (sections[0], sections[1])).encode("ascii")
    return OK, jwt


def verify_time(jwt, now, clock_skew=DEFAULT_CLOCK_SKEW):
    """``Jwt::verifyTimeConstraint``: nbf first, then exp (0 = no expiry), both with the skew."""
    if now + clock_skew < jwt.nbf:
        return JWT_NOT_YET_VALID
    if jwt.exp and now > jwt.exp + clock_skew:
        return JWT_EXPIRED
    return OK


# --------------------------------------------------------------------------------------
# JWKS
# --------------------------------------------------------------------------------------

class Jwk:
    """A usable public key from a JWKS."""

    def __init__(self, kty, kid, alg, key, crv=""):
        self.kty = kty
        self.kid = kid
        self.alg = alg
        self.key = key
        self.crv = crv

    def __repr__(self):
        return "Jwk(kty=%r, kid=%r, alg=%r)" % (self.kty, self.kid, self.alg)


_EC_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
_EC_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def _uint(text):
    raw = b64url_unescape(text)
    return None if raw is None else int.from_bytes(raw, "big")


def _extract_jwk(obj):
    """One JWK like Envoy's ``extractJwk``; returns (Jwk or None, problem or None)."""
    code, kty = _get_string(obj, "kty")
    if code == _Field.MISSING:
        return None, "[kty] is missing in [keys]"
    if code == _Field.WRONG_TYPE:
        return None, "[kty] is bad in [keys]"
    kid = _get_string(obj, "kid")[1]
    alg = _get_string(obj, "alg")[1]
    try:
        if kty == "RSA":
            return _extract_rsa(obj, kid, alg)
        if kty == "EC":
            return _extract_ec(obj, kid, alg)
        if kty == "OKP":
            return _extract_okp(obj, kid, alg)
        if kty == "oct":
            return _extract_oct(obj, kid, alg)
    except ValueError as exc:
        return None, "key %r is not valid: %s" % (kid, exc)
    return None, "[kty] is not supported in [keys]"


def _extract_rsa(obj, kid, alg):
    if alg and not (alg.startswith("RS") or alg.startswith("PS")):
        return None, "[alg] is not started with [RS] or [PS] for an RSA key"
    for name in ("n", "e"):
        code = _get_string(obj, name)[0]
        if code == _Field.MISSING:
            return None, "[%s] field is missing for a RSA key" % name
        if code == _Field.WRONG_TYPE:
            return None, "[%s] field is not string for a RSA key" % name
    n, e = _uint(obj["n"]), _uint(obj["e"])
    if n is None or e is None or e not in (3, 65537):
        return None, "Jwks RSA [n] or [e] field is missing or has a parse error"
    return Jwk("RSA", kid, alg, rsa.RSAPublicNumbers(e, n).public_key()), None


def _extract_ec(obj, kid, alg):
    if alg and not alg.startswith("ES"):
        return None, "[alg] is not started with [ES] for an EC key"
    code, crv = _get_string(obj, "crv")
    if code == _Field.WRONG_TYPE:
        return None, "[crv] field is not string for an EC key"
    if alg and crv and _EC_ALG_CURVE.get(alg) != crv:
        return None, "[crv] field specified is not compatible with [alg] for an EC key"
    if not alg and not crv:
        crv = "P-256"
    crv = _EC_ALG_CURVE.get(alg) or crv
    if crv not in _EC_CURVES:
        return None, "[crv] or [alg] field is not supported for an EC key"
    for name in ("x", "y"):
        code = _get_string(obj, name)[0]
        if code == _Field.MISSING:
            return None, "[%s] field is missing for an EC key" % name
        if code == _Field.WRONG_TYPE:
            return None, "[%s] field is not string for an EC key" % name
    x, y = _uint(obj["x"]), _uint(obj["y"])
    if x is None or y is None:
        return None, "Jwks EC [x] or [y] field is an invalid Base64."
    key = ec.EllipticCurvePublicNumbers(x, y, _EC_CURVES[crv]()).public_key()
    return Jwk("EC", kid, alg, key, crv), None


def _extract_okp(obj, kid, alg):
    if alg and alg != "EdDSA":
        return None, "[alg] is not [EdDSA] for an OKP key"
    code, crv = _get_string(obj, "crv")
    if code == _Field.MISSING:
        return None, "[crv] field is missing for an OKP key"
    if code == _Field.WRONG_TYPE:
        return None, "[crv] field is not string for an OKP key"
    if crv != "Ed25519":
        return None, "[crv] field is not supported for an OKP key"
    code, x_text = _get_string(obj, "x")
    if code != _Field.OK:
        return None, "[x] field is missing for an OKP key"
    raw = b64url_unescape(x_text)
    if raw is None:
        return None, "Jwks OKP [x] field is an invalid Base64."
    if len(raw) != 32:
        return None, "Jwks OKP [x] field is wrong length."
    return Jwk("OKP", kid, alg, ed25519.Ed25519PublicKey.from_public_bytes(raw), crv), None


def _extract_oct(obj, kid, alg):
    if alg and alg not in ("HS256", "HS384", "HS512"):
        return None, "[alg] does not start with [HS] for an HMAC key"
    code, k_text = _get_string(obj, "k")
    if code != _Field.OK:
        return None, "[k] field is missing for an HMAC key"
    raw = b64url_unescape(k_text)
    if not raw:
        return None, "Jwks Oct key is an invalid Base64"
    return Jwk("oct", kid, alg, raw), None


class Jwks:
    """A parsed JWKS: the usable keys, plus why other keys were skipped."""

    def __init__(self, keys, problems, status=OK):
        self.keys = keys
        self.problems = problems
        self.status = status

    @property
    def kids(self):
        return [key.kid for key in self.keys]


def parse_jwks(text):
    """Parse JWKS JSON like ``Jwks::createFromJwksCore``: invalid keys are skipped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return Jwks([], [], "Jwks is an invalid JSON")
    if not isinstance(doc, dict):
        return Jwks([], [], "Jwks is an invalid JSON")
    if "keys" not in doc:
        return Jwks([], [], "Jwks does not have [keys] field")
    if not isinstance(doc["keys"], list):
        return Jwks([], [], "[keys] in Jwks is not an array")
    keys, problems = [], []
    for index, item in enumerate(doc["keys"]):
        if not isinstance(item, dict):
            continue
        key, problem = _extract_jwk(item)
        if key is None:
            problems.append("keys[%d]: %s" % (index, problem))
        else:
            keys.append(key)
    return Jwks(keys, problems, OK if keys else JWKS_NO_VALID_KEYS)


def public_only_fallback():
    """What istiod inlines when it cannot fetch a JWKS (Istio >= 1.29.1 ``PublicOnlyJwks``).

    A lone RSA key without ``kid`` and ``alg`` whose private half nobody has: every key
    selection matches it and every signature check fails, so every token gets a 401
    ``Jwt verification fails``.
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Jwks([Jwk("RSA", "", "", private.public_key())], ["JWKS could not be fetched"], OK)


# --------------------------------------------------------------------------------------
# Signatures (``verifyJwtWithoutTimeChecking``)
# --------------------------------------------------------------------------------------

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


_EC_DIGEST = {"ES384": hashes.SHA384, "ES512": hashes.SHA512}
_RSA_DIGEST = {"RS384": hashes.SHA384, "PS384": hashes.SHA384, "RS512": hashes.SHA512, "PS512": hashes.SHA512}


def _digest(table, alg):
    """Envoy picks the digest from the token's alg and falls back to SHA-256."""
    return table.get(alg, hashes.SHA256)()


def _verify_ec(key, alg, signature, data):
    half = len(signature) // 2
    if half == 0:
        return False
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:half * 2], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_digest(_EC_DIGEST, alg)))
        return True
    except (InvalidSignature, ValueError):
        return False


def _verify_rsa(key, alg, signature, data):
    digest = _digest(_RSA_DIGEST, alg)
    try:
        if alg.startswith("RS"):
            key.verify(signature, data, padding.PKCS1v15(), digest)
            return True
        if alg.startswith("PS"):
            key.verify(signature, data, padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH),
                       digest)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify_signature(jwt, jwks):
    """Select keys by kid/alg and check the signature; returns an Envoy status text."""
    matched = False
    for jwk in jwks.keys:
        if jwt.kid and jwk.kid and jwk.kid != jwt.kid:
            continue
        if jwk.alg and jwk.alg != jwt.alg:
            continue
        matched = True
        if jwk.kty == "EC":
            if _verify_ec(jwk.key, jwt.alg, jwt.signature, jwt.signed_data):
                return OK
        elif jwk.kty == "RSA":
            if _verify_rsa(jwk.key, jwt.alg, jwt.signature, jwt.signed_data):
                return OK
        elif jwk.kty == "oct":
            digest = _HMAC.get(jwt.alg, hashlib.sha256)
            expected = hmac.new(jwk.key, jwt.signed_data, digest).digest()
            if hmac.compare_digest(expected, jwt.signature):
                return OK
        elif jwk.kty == "OKP":
            if len(jwt.signature) != 64:
                return JWT_ED25519_SIGNATURE_WRONG_LENGTH
            try:
                jwk.key.verify(jwt.signature, jwt.signed_data)
                return OK
            except InvalidSignature:
                pass
    return JWT_VERIFICATION_FAIL if matched else JWKS_KID_ALG_MISMATCH
