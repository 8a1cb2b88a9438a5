# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Public JWKs (RFC 7517, 7518, 8037): building, validating and RFC 7638 thumbprints, with their caches.

PRIVATE to the collection: do not import it from other collections.

JWKs are built from the key numbers here, not with PyJWT's ``to_jwk()``, because old PyJWT
releases emit unpadded EC coordinates.

Part of the JOSE core (see ``_jose``): no Ansible imports, the refresher runs it on edge hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import json
import operator
import re

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:
    pass  # _jose.missing_dependencies() reports the missing library before any use

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import (
    JoseError, b64url_decode, b64url_encode, b64url_to_uint, parse_json, to_bytes, uint_to_b64url,
    x509_module
)
from ansible_collections.selfjwt.kyma.plugins.module_utils._algorithms import check_algorithm, check_public_algorithm
from ansible_collections.selfjwt.kyma.plugins.module_utils._certificates import certificate_public_key
from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import (
    CURVE_BY_NAME, MIN_RSA_BITS, clear_signing_facts, curve_name, curve_object, is_private_key, load_public_key_pem,
    public_key_of, signing_facts, signing_key_family
)

#: JWK members that would disclose private or symmetric key material.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

#: The public members a published JWK may carry, in the order they are written.
PUBLIC_JWK_MEMBERS = ("kty", "kid", "use", "alg", "crv", "n", "e", "x", "y",
                      "x5c", "x5t", "x5t#S256")

KID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")

# RFC 7638 section 3: members sorted, no whitespace, UTF-8.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def jwk_key_members(key):
    """The required public members of a key's JWK (the RFC 7638 thumbprint input)."""
    public = public_key_of(key)
    family = signing_key_family(public)
    if family == "RSA":
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": uint_to_b64url(numbers.n), "e": uint_to_b64url(numbers.e)}
    if family == "EC":
        crv = curve_name(public)
        size = CURVE_BY_NAME[crv][1]
        numbers = public.public_numbers()
        return {"kty": "EC", "crv": crv, "x": uint_to_b64url(numbers.x, size), "y": uint_to_b64url(numbers.y, size)}
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk, hash_name="sha256"):
    """RFC 7638 JWK thumbprint (base64url, no padding) of a public JWK dict."""
    kty = jwk.get("kty")
    names = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if names is None:
        raise JoseError("cannot compute a thumbprint for kty %r" % (kty,))
    try:
        values = _THUMBPRINT_VALUES[kty](jwk)
    except KeyError as exc:
        raise JoseError("JWK of kty %s lacks member %s" % (kty, exc))
    # Thumbprints of the same members are asked for again and again when a JWKS is checked.
    # Only all-string member values are ever cached, so other values simply miss.
    cache_key = (hash_name,) + values
    try:
        return _THUMBPRINTS[cache_key]
    except KeyError:
        pass
    except TypeError:  # an unhashable member value (a list, ...): not cacheable
        cache_key = None
    if cache_key is not None and not all(isinstance(value, str) for value in values):
        cache_key = None
    if cache_key is not None and _PLAIN_JSON_TEXT.match("".join(values)):
        # Texts that JSON writes as they are (base64url numbers, curve names): no encoder needed.
        canonical = _THUMBPRINT_TEMPLATES[kty] % values
    else:
        canonical = _CANONICAL_JSON.encode(dict(zip(names, values)))
    data = canonical.encode("utf-8")
    constructor = _HASH_CONSTRUCTORS.get(hash_name)
    result = b64url_encode((constructor(data) if constructor is not None else hashlib.new(hash_name, data)).digest())
    if cache_key is not None:
        if len(_THUMBPRINTS) >= _PUBLIC_MEMBERS_LIMIT:
            _THUMBPRINTS.clear()
        _THUMBPRINTS[cache_key] = result
    return result


_THUMBPRINTS = {}
_PLAIN_JSON_TEXT = re.compile(r"^[A-Za-z0-9_.~+/=-]*\Z")
#: The thumbprint members of each kty as a tuple, in RFC 7638 (sorted) order.
_THUMBPRINT_VALUES = dict((kty, operator.itemgetter(*names)) for kty, names in THUMBPRINT_MEMBERS.items())
#: The canonical JSON of each kty's thumbprint members, for values JSON writes as they are.
_THUMBPRINT_TEMPLATES = dict((kty, "{%s}" % ",".join('"%s":"%%s"' % name for name in names))
                             for kty, names in THUMBPRINT_MEMBERS.items())
_HASH_CONSTRUCTORS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha384": hashlib.sha384,
                      "sha512": hashlib.sha512}


def key_thumbprint(key):
    """RFC 7638 SHA-256 thumbprint of a key object: the collection's default ``kid``."""
    if is_private_key(key):
        facts = signing_facts(key)
        if facts["thumbprint"] is None:
            facts["thumbprint"] = thumbprint(jwk_key_members(key))
        return facts["thumbprint"]
    return thumbprint(jwk_key_members(key))


def check_kid(kid):
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise JoseError("kid %r is not allowed: use 1 to 128 characters from A-Z a-z 0-9 . _ ~ -" % (kid,))
    return kid


def certificate_members(certificates):
    """x5c, x5t and x5t#S256 members for a certificate chain (leaf first), RFC 7517 4.7-4.9."""
    ders = [cert.public_bytes(serialization.Encoding.DER) for cert in certificates]
    return {
        "x5c": [base64.b64encode(der).decode("ascii") for der in ders],
        "x5t": b64url_encode(hashlib.sha1(ders[0]).digest()),
        "x5t#S256": b64url_encode(hashlib.sha256(ders[0]).digest()),
    }


def public_jwk(key, kid=None, algorithm=None, certificates=None):
    """The public JWK of a key, with kid (default: thumbprint), alg, use and optional x5c chain."""
    jwk = jwk_key_members(key)
    jwk["kid"] = check_kid(kid) if kid else thumbprint(jwk)
    jwk["use"] = "sig"
    jwk["alg"] = check_algorithm(public_key_of(key), algorithm)
    if certificates:
        if jwk_key_members(certificates[0].public_key()) != jwk_key_members(key):
            raise JoseError("the certificate does not belong to the key: regenerate the certificate")
        jwk.update(certificate_members(certificates))
    return ordered_jwk(jwk)


def ordered_jwk(jwk):
    """A JWK dict with members in the published order (for stable, readable output)."""
    return dict((name, jwk[name]) for name in PUBLIC_JWK_MEMBERS if name in jwk)


def jwk_to_public_key(jwk, what="JWK"):
    """Validate a public JWK dict and return (normalized JWK, public key object).

    Refuses private or symmetric members, unknown key types, malformed numbers, weak RSA keys,
    points that are not on the curve, algorithms that do not fit the key and x5c chains whose
    first certificate holds another key.
    """
    if not isinstance(jwk, dict):
        raise JoseError("%s must be a JSON object, got %s" % (what, type(jwk).__name__))
    private = [] if jwk.keys().isdisjoint(PRIVATE_JWK_MEMBERS) else sorted(
        name for name in PRIVATE_JWK_MEMBERS if name in jwk)
    if private:
        raise JoseError("%s contains private or secret key material (%s): publish public keys only"
                        % (what, ", ".join(private)))
    kty = jwk.get("kty")
    members, key = _public_members(jwk, kty, what)
    kid = jwk.get("kid")
    # Built in the published order (PUBLIC_JWK_MEMBERS): kty, kid, use, alg, key members, x5c...
    normalized = {"kty": kty, "kid": check_kid(kid) if kid is not None else thumbprint(members), "use": "sig"}
    if "use" in jwk:
        if jwk["use"] != "sig":
            raise JoseError("%s has use %r: keys that verify JWTs need use 'sig'" % (what, jwk["use"]))
    if jwk.get("alg") is not None:
        try:
            normalized["alg"] = check_public_algorithm(kty, members.get("crv"), key, jwk["alg"])
        except JoseError as exc:
            raise JoseError("%s: %s" % (what, exc))
    normalized.update(members)
    if "x5c" in jwk:
        normalized.update(_check_x5c(jwk, key, what))
    return normalized, key


#: Validated key members and public keys by the JWK's member texts. A JWKS merge meets every
#: key twice (in the existing document and in the input); the same texts validate the same
#: way, and failures are never kept.
_PUBLIC_MEMBERS = {}
_PUBLIC_MEMBERS_LIMIT = 100000
_MEMBER_NAMES = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}


def clear_caches():
    """Forget every cached key fact (for tests and benchmarks that measure a fresh process)."""
    _PUBLIC_MEMBERS.clear()
    _THUMBPRINTS.clear()
    clear_signing_facts()


def _public_members(jwk, kty, what):
    """(normalized key members, public key object) of a JWK whose private members were refused.

    The members dict (kty first, then the key members in the published order) may be shared
    with the cache: callers must not change it.
    """
    getter = _MEMBER_VALUES.get(kty) if isinstance(kty, str) else None
    texts = None
    if getter is not None:
        # Texts are cached only after they decoded, which needs strings: other values simply
        # miss (or are missing or unhashable and not looked up).
        try:
            texts = (kty,) + getter(jwk)
            known = _PUBLIC_MEMBERS.get(texts)
        except (KeyError, TypeError):
            known = texts = None
        if known is not None:
            return known
    members, key = _decode_public_members(jwk, kty, what)
    if texts is not None:
        if len(_PUBLIC_MEMBERS) >= _PUBLIC_MEMBERS_LIMIT:
            _PUBLIC_MEMBERS.clear()
        _PUBLIC_MEMBERS[texts] = (members, key)
    # Whoever validates a key asks for its thumbprint next (the default kid, the JWKS's
    # one-kid-per-key check). The members were just encoded as base64url and known names, so
    # their canonical JSON needs no checks; thumbprint() finds the result in its cache.
    values = _THUMBPRINT_VALUES[kty](members)
    cache_key = ("sha256",) + values
    if cache_key not in _THUMBPRINTS:
        if len(_THUMBPRINTS) >= _PUBLIC_MEMBERS_LIMIT:
            _THUMBPRINTS.clear()
        _THUMBPRINTS[cache_key] = b64url_encode(hashlib.sha256(
            (_THUMBPRINT_TEMPLATES[kty] % values).encode("ascii")).digest())
    return members, key


_MEMBER_VALUES = dict((kty, operator.itemgetter(*names)) for kty, names in _MEMBER_NAMES.items())


def _decode_public_members(jwk, kty, what):
    try:
        # The normalized members are encoded from the decoded numbers, exactly as
        # jwk_key_members() would encode them from the key object built here.
        if kty == "RSA":
            _require(jwk, ("n", "e"), what)
            n = b64url_to_uint(jwk["n"], "%s member n" % what)
            e = b64url_to_uint(jwk["e"], "%s member e" % what)
            if e < 3 or e % 2 == 0:
                raise JoseError("%s has an invalid RSA exponent" % what)
            members = {"kty": "RSA", "n": uint_to_b64url(n), "e": uint_to_b64url(e)}
            key = rsa.RSAPublicNumbers(e, n).public_key()
            if n.bit_length() < MIN_RSA_BITS:
                signing_key_family(key)
        elif kty == "EC":
            crv = jwk.get("crv")
            curve = CURVE_BY_NAME.get(crv) if isinstance(crv, str) else None
            if curve is None or not (isinstance(jwk.get("x"), str) and jwk["x"]
                                     and isinstance(jwk.get("y"), str) and jwk["y"]):
                _require(jwk, ("crv", "x", "y"), what)
                raise JoseError("%s has unsupported curve %r: use P-256, P-384 or P-521" % (what, crv))
            size = curve[1]
            x_raw = b64url_decode(jwk["x"], "%s member x" % what)
            y_raw = b64url_decode(jwk["y"], "%s member y" % what)
            if len(x_raw) != size or len(y_raw) != size:
                raise JoseError("%s coordinates must be %d bytes long for %s (RFC 7518 section 6.2.1.2)"
                                % (what, size, crv))
            members = {"kty": "EC", "crv": crv, "x": b64url_encode(x_raw), "y": b64url_encode(y_raw)}
            # from_encoded_point refuses points that are not on the curve, as the numbers API does.
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve_object(crv), b"\x04" + x_raw + y_raw)
        elif kty == "OKP":
            _require(jwk, ("crv", "x"), what)
            if jwk["crv"] != "Ed25519":
                raise JoseError("%s has unsupported OKP curve %r: use Ed25519" % (what, jwk["crv"]))
            raw = b64url_decode(jwk["x"], "%s member x" % what)
            if len(raw) != 32:
                raise JoseError("%s member x must be 32 bytes for Ed25519" % what)
            members = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        elif kty == "oct":
            raise JoseError("%s is a symmetric (oct) key: publish public keys only" % what)
        else:
            raise JoseError("%s has unknown kty %r: use RSA, EC or OKP" % (what, kty))
    except ValueError as exc:
        raise JoseError("%s is not a valid %s key: %s" % (what, kty, exc))
    return members, key


def _require(jwk, names, what):
    missing = [name for name in names if not isinstance(jwk.get(name), str) or not jwk.get(name)]
    if missing:
        raise JoseError("%s of kty %s lacks member(s) %s" % (what, jwk.get("kty"), ", ".join(missing)))


def _check_x5c(jwk, key, what):
    chain = jwk["x5c"]
    if not isinstance(chain, list) or not chain or not all(isinstance(item, str) for item in chain):
        raise JoseError("%s member x5c must be a non-empty list of base64 DER certificates" % what)
    certificates = []
    for index, item in enumerate(chain):
        try:
            der = base64.b64decode(item, validate=True)
            certificates.append(x509_module().load_der_x509_certificate(der))
        except (binascii.Error, ValueError, x509_module().InvalidVersion) as exc:
            raise JoseError("%s x5c[%d] is not a base64 DER certificate: %s" % (what, index, exc))
    if jwk_key_members(certificate_public_key(certificates[0], "%s x5c[0]" % what)) != jwk_key_members(key):
        raise JoseError("%s x5c[0] certifies another key than the JWK's" % what)
    members = certificate_members(certificates)
    for name in ("x5t", "x5t#S256"):
        if name in jwk and jwk[name] != members[name]:
            raise JoseError("%s member %s does not match x5c[0]" % (what, name))
    return members


def key_input_to_jwk(item, what="key"):
    """Turn a JWK dict, a PEM public key or a PEM certificate into a normalized public JWK."""
    if isinstance(item, dict):
        return jwk_to_public_key(item, what)[0]
    if isinstance(item, (str, bytes)):
        data = to_bytes(item).strip()
        if b"PRIVATE KEY" in data:
            raise JoseError("%s is a private key: publish public keys only" % what)
        if data.startswith(b"{"):
            try:
                return jwk_to_public_key(parse_json(data.decode("utf-8")), what)[0]
            except ValueError as exc:
                raise JoseError("%s is not valid JSON: %s" % (what, exc))
        if b"-----BEGIN CERTIFICATE-----" in data:
            try:
                certificate = x509_module().load_pem_x509_certificate(data)
            except (ValueError, x509_module().InvalidVersion) as exc:
                raise JoseError("%s is not a valid PEM certificate: %s" % (what, exc))
            key = certificate_public_key(certificate, what)
            signing_key_family(key)
            return public_jwk(key, certificates=[certificate])
        if b"PUBLIC KEY-----" in data:
            return public_jwk(load_public_key_pem(data, what))
        raise JoseError("%s is neither a JWK nor a PEM public key or certificate" % what)
    raise JoseError("%s must be a JWK (dict) or a PEM string, got %s" % (what, type(item).__name__))
