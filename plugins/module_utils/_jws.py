# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tokens: claims and protected headers, JWS signing (RFC 7515, RFC 7518 section 3) and verifying.

PRIVATE to the collection: do not import it from other collections.

Tokens are signed by ``cryptography`` with the signing input PyJWT would build, and verified by
PyJWT (imported on first use) with a pinned algorithm. Part of the JOSE core (see ``_jose``): no
Ansible imports, the refresher signs with it on edge hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import time

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
except ImportError:
    pass  # _jose.missing_dependencies() reports the missing library before any use

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import (
    MIN_PYJWT_VERSION, JoseError, b64url_decode, b64url_encode, parse_json, pyjwt
)
from ansible_collections.selfjwt.kyma.plugins.module_utils._algorithms import EC_ALG_CURVE, check_algorithm
from ansible_collections.selfjwt.kyma.plugins.module_utils._jwk import check_kid, key_thumbprint
from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import CURVE_BY_NAME, signing_facts

#: Registered claims that are set by dedicated options and never through extra claims.
REGISTERED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")
#: The reserved headers that an option sets.
HEADER_OPTIONS = {"alg": "; set it with the option algorithm", "kid": "; set it with the option kid",
                  "jku": "; set it with the option jku", "typ": "; set it with the option typ"}
#: What sets each registered claim (the option of jwt_token and the token refresher).
CLAIM_SOURCES = {"iss": "the option issuer", "sub": "the option subject", "aud": "the option audience",
                 "exp": "the option expires_in", "nbf": "the option not_before",
                 "iat": "the time of signing, always", "jti": "the option jti of jwt_token (by default, and always in the token refresher: a random "
                 "value per token)"}

#: Header members that extra headers may not set: they decide how a token is verified.
RESERVED_HEADERS = ("alg", "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "kid",
                    "b64", "enc", "zip", "typ")

# Encoders made once: json.dumps() with options builds a new encoder on every call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)
# Compact JSON as PyJWT writes it into tokens (header members sorted, claims in order).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_COMPACT_SORTED_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)


def new_jti():
    """A random token id with 128 bits of entropy."""
    return b64url_encode(os.urandom(16))


def build_claims(issuer, subject, audience=None, expires_in=600, max_lifetime=3600, not_before=0,
                 claims=None, jti=None, now=None):
    """The claim set of a token. Registered claims come only from the named arguments."""
    if not isinstance(issuer, str) or not issuer.strip():
        raise JoseError("issuer must be a non-empty string: it must equal the APIRule's jwt issuer")
    if not isinstance(subject, str) or not subject.strip():
        raise JoseError("subject must be a non-empty string: Istio rejects tokens without 'sub' (403)")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise JoseError("expires_in must be a positive number of seconds, got %r" % (expires_in,))
    if expires_in > max_lifetime:
        raise JoseError("expires_in %d exceeds max_lifetime %d: use a shorter lifetime (short-lived tokens "
                        "limit the damage of a leaked token) or raise max_lifetime" % (expires_in, max_lifetime))
    if not isinstance(not_before, int) or isinstance(not_before, bool) or not_before >= expires_in \
            or not_before < -300:
        raise JoseError("not_before must be whole seconds from now between -300 and expires_in (%d), got %r"
                        % (expires_in, not_before))
    issued = int(now if now is not None else time.time())
    result = {"iss": issuer, "sub": subject}
    if audience is not None:
        result["aud"] = _audience(audience)
    result.update({"iat": issued, "nbf": issued + not_before, "exp": issued + expires_in})
    result["jti"] = jti if jti is not None else new_jti()
    if not isinstance(result["jti"], str) or not result["jti"]:
        raise JoseError("jti must be a non-empty string")
    for name, value in sorted((claims or {}).items()):
        if name in REGISTERED_CLAIMS:
            raise JoseError("claim %r cannot be set through claims: it is set by %s" % (name, CLAIM_SOURCES[name]))
        result[name] = value
    return _json_serializable(result, "claims")


def _audience(audience):
    if isinstance(audience, str):
        if not audience:
            raise JoseError("audience must not be empty")
        return audience
    if isinstance(audience, (list, tuple)) and audience and all(isinstance(a, str) and a for a in audience):
        return audience[0] if len(audience) == 1 else list(audience)
    raise JoseError("audience must be a non-empty string or a list of non-empty strings")


def build_header(key, algorithm=None, kid=None, jku=None, headers=None, typ="JWT"):
    """The protected header: alg from the key, kid (default: thumbprint), optional jku and extras."""
    result = {"alg": check_algorithm(key, algorithm), "typ": typ}
    result["kid"] = check_kid(kid) if kid else key_thumbprint(key)
    if jku:
        if not isinstance(jku, str) or not re.match(r"^https?://", jku):
            raise JoseError("jku must be an http(s) URL, the same URL as the APIRule's jwksUri")
        result["jku"] = jku
    for name, value in sorted((headers or {}).items()):
        # Compare case-insensitively on both sides: "x5t#S256" has an upper-case letter.
        if name.lower() in [reserved.lower() for reserved in RESERVED_HEADERS]:
            raise JoseError("header %r cannot be set through headers: it decides how the token is verified%s"
                            % (name, HEADER_OPTIONS.get(name.lower(), "")))
        result[name] = value
    return _json_serializable(result, "headers")


def _json_serializable(members, what):
    """``members``, or JoseError when strict JSON cannot encode them (NaN, sets, objects)."""
    try:
        _STRICT_JSON.encode(members)
    except (TypeError, ValueError) as exc:
        raise JoseError("%s must be JSON-serializable: %s" % (what, exc))
    return members


def sign_token(key, header, claims):
    """Sign a claim set; returns ``(token, header, claims)`` with header and claims as in the token.

    The JWS signing input is serialized once, as PyJWT's ``jwt.encode`` would (compact JSON,
    header members sorted), and signed by ``cryptography`` with the padding, hash and
    signature format of RFC 7518 section 3 (the same calls PyJWT's algorithm objects make).
    The first signature of each key object is verified with the key's public half before it
    is returned (a sign and verify round trip), so a damaged private key loaded
    without RSA key validation (:func:`load_private_key` with ``validate_rsa=False``) cannot
    release a token.
    """
    algorithm = check_algorithm(key, header["alg"])
    members = dict(header)
    members["alg"] = algorithm
    try:
        header_json = _COMPACT_SORTED_JSON.encode(members)
        claims_json = _COMPACT_JSON.encode(claims)
    except (TypeError, ValueError) as exc:
        raise JoseError("the token header and claims must be JSON-serializable: %s" % exc)
    signing_input = ("%s.%s" % (b64url_encode(header_json.encode("utf-8")),
                                b64url_encode(claims_json.encode("utf-8")))).encode("ascii")
    facts = signing_facts(key)
    signature = _sign_bytes(key, algorithm, signing_input)
    if not facts["round_trip"]:
        # The first signature of every key object is verified with the key's public half: a
        # private key whose numbers do not belong to its public key (a damaged file loaded
        # without RSA key validation) is refused before any signature leaves this function.
        if not _verifies(facts["public_key"], algorithm, signing_input, signature):
            raise JoseError("the private key made a signature that does not verify with its own public key: "
                            "the key file is damaged; restore it from a backup or generate a new key")
        facts["round_trip"] = True
    token = "%s.%s" % (signing_input.decode("ascii"), b64url_encode(signature))
    return token, json.loads(header_json), json.loads(claims_json)


_HASHES = {"256": "SHA256", "384": "SHA384", "512": "SHA512"}


def _rsa_padding(algorithm, digest):
    if algorithm.startswith("PS"):
        # RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash (as PyJWT does).
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def _sign_bytes(key, algorithm, data):
    """The JWS signature (RFC 7518 section 3) of ``data`` made by cryptography."""
    if algorithm == "EdDSA":
        return key.sign(data)
    digest = getattr(hashes, _HASHES[algorithm[2:]])()
    if algorithm.startswith("ES"):
        # JWS wants R || S as fixed-length big-endian numbers, not DER (RFC 7518 section 3.4).
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        size = CURVE_BY_NAME[EC_ALG_CURVE[algorithm]][1]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(data, _rsa_padding(algorithm, digest), digest)


def _verifies(public_key, algorithm, data, signature):
    """True when a JWS signature from :func:`_sign_bytes` verifies with ``public_key``."""
    try:
        if algorithm == "EdDSA":
            public_key.verify(signature, data)
            return True
        digest = getattr(hashes, _HASHES[algorithm[2:]])()
        if algorithm.startswith("ES"):
            size = len(signature) // 2
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            public_key.verify(der, data, ec.ECDSA(digest))
            return True
        public_key.verify(signature, data, _rsa_padding(algorithm, digest), digest)
        return True
    except InvalidSignature:
        return False


def decode_unverified(token):
    """Header and claims of a token without checking it (for inspection only)."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise JoseError("not a compact JWS token")
    try:
        header = parse_json(b64url_decode(parts[0], "token header").decode("utf-8"))
        claims = parse_json(b64url_decode(parts[1], "token claims").decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JoseError("token is not valid JSON: %s" % exc)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JoseError("token header and claims must be JSON objects")
    return header, claims


def verify(token, public_key, algorithm):
    """Verify a token's signature with a pinned algorithm; returns (header, claims).

    Only the signature is checked here; callers decide about expiry.
    """
    try:
        jwt = pyjwt()
    except ImportError:
        raise JoseError("PyJWT >= %s is needed to verify tokens, but it cannot be imported: install it (on Debian "
                        "and Ubuntu: apt-get install python3-jwt)" % MIN_PYJWT_VERSION)
    try:
        claims = jwt.decode(token, public_key, algorithms=[algorithm],
                            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except jwt.PyJWTError as exc:
        raise JoseError("token does not verify: %s" % exc)
    return jwt.get_unverified_header(token), claims
