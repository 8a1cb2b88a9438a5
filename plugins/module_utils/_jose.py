# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""JOSE core of selfjwt.kyma: keys, JWKs, thumbprints, certificates and JWS signing.

PRIVATE to the collection: do not import it from other collections.

This file depends only on the Python standard library, ``cryptography`` and PyJWT. It must
not import anything from Ansible, so that the token refresher installed on edge hosts can
import the very same code without Ansible. Errors are raised as :class:`JoseError` with a
message that says what to do next; modules turn them into ``fail_json(msg=...)``.

JWKs are built from the key numbers here (RFC 7517, RFC 7518, RFC 8037), not with PyJWT's
``to_jwk()``, because old PyJWT releases emit unpadded EC coordinates.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import json
import operator
import os
import re
import sys
import time
import traceback

# Imports are kept to what signing needs: a module run pays for every import. PyJWT (only
# needed to verify tokens) and cryptography.x509 (only needed for certificates) are imported
# on first use, see _jwt() and _x509(); together they cost more CPU time than Ansible's
# module start-up adds to a task.
CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    import cryptography
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

MIN_CRYPTOGRAPHY_VERSION = "3.4"
MIN_PYJWT_VERSION = "2.4.0"

#: RSA keys shorter than this are refused (RFC 7518 section 3.3).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384

CURVE_BY_NAME = {
    "P-256": ("secp256r1", 32, "ES256"),
    "P-384": ("secp384r1", 48, "ES384"),
    "P-521": ("secp521r1", 66, "ES512"),
}
CURVE_NAME_BY_OPENSSL = dict((v[0], k) for k, v in CURVE_BY_NAME.items())

#: Signing algorithms this collection accepts, with the key family each one needs.
ALGORITHMS = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}
EC_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

#: Registered claims that are set by dedicated options and never through extra claims.
REGISTERED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")

#: Header members that extra headers may not set: they decide how a token is verified.
RESERVED_HEADERS = ("alg", "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "kid",
                    "b64", "enc", "zip", "typ")

#: JWK members that would disclose private or symmetric key material.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

#: The public members a published JWK may carry, in the order they are written.
PUBLIC_JWK_MEMBERS = ("kty", "kid", "use", "alg", "crv", "n", "e", "x", "y",
                      "x5c", "x5t", "x5t#S256")

KID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")

# Encoders made once: json.dumps() with options builds a new encoder on every call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)
# Compact JSON as PyJWT writes it into tokens (header members sorted, claims in order).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_COMPACT_SORTED_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)
# RFC 7638 section 3: members sorted, no whitespace, UTF-8.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class JoseError(Exception):
    """A problem with keys, JWKs or tokens, with a message fit for the user."""


def parse_json(text):
    """``json.loads(text)`` for text from outside (files, tokens, options): ValueError for anything not JSON.

    The decoder raises RecursionError, not ValueError, for a document nested deeper than the
    interpreter's recursion limit (``[[[...]]]``, a few kilobytes): every reader catches
    ValueError, so that case is turned into one.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON text is nested too deeply")


def missing_dependencies():
    """Return a list of (requirement, traceback) for every missing or unusable dependency."""
    missing = []
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        missing.append(("cryptography >= %s" % MIN_CRYPTOGRAPHY_VERSION, CRYPTOGRAPHY_IMPORT_ERROR))
    elif _version_tuple(cryptography.__version__) < _version_tuple(MIN_CRYPTOGRAPHY_VERSION):
        missing.append(("cryptography >= %s (found %s)" % (MIN_CRYPTOGRAPHY_VERSION, cryptography.__version__), None))
    version, trace = _pyjwt_version()
    if version is None:
        missing.append(("PyJWT >= %s" % MIN_PYJWT_VERSION, trace))
    elif _version_tuple(version) < _version_tuple(MIN_PYJWT_VERSION):
        missing.append(("PyJWT >= %s (found %s)" % (MIN_PYJWT_VERSION, version), None))
    return missing


def _pyjwt_version():
    """(version, None) of the installed PyJWT, or (None, traceback) when it cannot be used.

    Importing PyJWT costs more CPU time than a module run's signing work (and so does
    importlib.metadata), so when the ``jwt`` package found on the path has PyJWT's layout
    (``api_jws.py`` beside its ``__init__.py``), the version is read from its
    ``__init__.py``. In every other case (another package named ``jwt``, no version line, a
    zipped install) PyJWT is imported, as :func:`_jwt` does on first use.
    """
    if "jwt" not in sys.modules:
        try:
            import importlib.util  # pylint: disable=import-outside-toplevel
            spec = importlib.util.find_spec("jwt")
            origin = spec.origin if spec is not None else None
            if origin and origin.endswith("__init__.py") and os.path.isfile(
                    os.path.join(os.path.dirname(origin), "api_jws.py")):
                with open(origin, "rb") as handle:
                    found = _PYJWT_VERSION_LINE.search(handle.read())
                if found:
                    return found.group(1).decode("ascii"), None
        except (ImportError, ValueError, OSError):
            pass  # find out by importing
    try:
        module = _jwt()
    except ImportError:
        return None, traceback.format_exc()
    return module.__version__, None


_PYJWT_VERSION_LINE = re.compile(br"""^__version__\s*=\s*["']([0-9][0-9A-Za-z.+-]*)["']""", re.MULTILINE)


def _jwt():
    """PyJWT, imported on first use (ImportError when the ``jwt`` module is missing or not PyJWT)."""
    import jwt  # pylint: disable=import-outside-toplevel
    # Both PyJWT and the unrelated "jwt" package (python-jwt) install a module named jwt.
    if not hasattr(jwt, "PyJWS"):
        raise ImportError("the installed 'jwt' module is not PyJWT")
    return jwt


def _x509():
    """cryptography.x509, imported on first use."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    return x509


def import_deferred():
    """Import now what is otherwise imported on first use (PyJWT, cryptography.x509).

    For a process that switches to another user before it signs or verifies, so it does not
    depend on that user being able to read the Python installation. Missing libraries are
    left to :func:`missing_dependencies` to report.
    """
    for function in (_jwt, _x509):
        try:
            function()
        except ImportError:
            pass


def _version_tuple(version):
    parts = []
    for part in str(version).split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        parts.append(int(digits.group(0)))
    return tuple(parts)


# --------------------------------------------------------------------------------------
# base64url helpers (RFC 7515 section 2, RFC 7518 section 2)
# --------------------------------------------------------------------------------------

# base64.urlsafe_b64encode/-decode are these translations around binascii; calling binascii
# directly saves three Python calls per value (a JWKS of 10,000 EC keys decodes 20,000).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = ("", "", "==", "=")


def b64url_encode(data):
    """base64url without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


_B64URL_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_decode(text, what="value"):
    """Strict base64url decoding (no padding, no foreign characters)."""
    if not isinstance(text, str) or not _B64URL_PATTERN.match(text):
        raise JoseError("%s is not base64url text without padding" % what)
    if len(text) % 4 == 1:
        raise JoseError("%s has an impossible base64url length" % what)
    try:
        return binascii.a2b_base64((text + _PADDING[len(text) % 4]).encode("ascii").translate(_FROM_URLSAFE))
    except (binascii.Error, ValueError) as exc:
        raise JoseError("%s is not valid base64url: %s" % (what, exc))


def uint_to_b64url(value, length=None):
    """Base64urlUInt: minimal octets (RFC 7518 section 2), or exactly ``length`` octets."""
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def b64url_to_uint(text, what):
    return int.from_bytes(b64url_decode(text, what), "big")


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------

def key_family(key):
    """'RSA', 'EC' or 'OKP' for a private or public key object; JoseError otherwise."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "EC"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "OKP"
    raise JoseError(
        "unsupported key type %s: use an RSA (>= %d bits), EC (P-256, P-384, P-521) or Ed25519 key"
        % (type(key).__name__.lstrip("_"), MIN_RSA_BITS))


def curve_name(key):
    """JOSE curve name (P-256, ...) of an EC key."""
    name = CURVE_NAME_BY_OPENSSL.get(key.curve.name)
    if name is None:
        raise JoseError("unsupported EC curve %s: use P-256, P-384 or P-521" % key.curve.name)
    return name


def check_key(key):
    """Refuse key types and sizes that must not sign JWTs. Returns the key family."""
    family = key_family(key)
    if family == "RSA" and key.key_size < MIN_RSA_BITS:
        raise JoseError("RSA key has %d bits; at least %d are required (RFC 7518 section 3.3): "
                        "generate a new key" % (key.key_size, MIN_RSA_BITS))
    if family == "EC":
        curve_name(key)
    return family


def key_description(key):
    """Public facts about a key, safe for return values and diffs."""
    family = check_key(key)
    info = {"type": {"RSA": "rsa", "EC": "ec", "OKP": "ed25519"}[family]}
    if family == "RSA":
        info["size"] = key.key_size
    elif family == "EC":
        info["curve"] = curve_name(key)
    return info


def generate_private_key(key_type="ec", size=4096, curve="P-256"):
    """A new private key from the operating system's CSPRNG (through cryptography)."""
    if key_type == "rsa":
        if not isinstance(size, int) or size < MIN_RSA_BITS or size > MAX_RSA_BITS:
            raise JoseError("RSA size must be between %d and %d bits, got %r" % (MIN_RSA_BITS, MAX_RSA_BITS, size))
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if key_type == "ec":
        if curve not in CURVE_BY_NAME:
            raise JoseError("unsupported curve %r: use one of %s" % (curve, ", ".join(sorted(CURVE_BY_NAME))))
        return ec.generate_private_key(getattr(ec, CURVE_BY_NAME[curve][0].upper())())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise JoseError("unsupported key type %r: use rsa, ec or ed25519" % (key_type,))


def key_matches(key, key_type, size=None, curve=None):
    """True when ``key`` is of the requested type (and size or curve)."""
    info = key_description(key)
    if info["type"] != key_type:
        return False
    if key_type == "rsa":
        return info["size"] == size
    if key_type == "ec":
        return info["curve"] == curve
    return True


def _to_bytes(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def pem_is_encrypted(data):
    """True when PEM private key data is encrypted (PKCS#8 or a legacy ``Proc-Type: 4,ENCRYPTED`` header)."""
    return b"ENCRYPTED" in (_to_bytes(data) or b"")


def load_private_key(data, passphrase=None, source="the private key", check=True, validate_rsa=True):
    """Load a PEM (PKCS#8, PKCS#1 or SEC1) private key and check that it may sign JWTs.

    With ``check=False`` a key that decodes but must not sign JWTs (DSA, RSA < 2048 bits, an
    unsupported curve) is returned instead of refused, so callers can tell such a key from a
    damaged file; they must run :func:`check_key` before using it.

    ``validate_rsa=False`` skips cryptography's RSA consistency check (primality tests of p and
    q and a check of the CRT numbers: 50-500 ms per load) on cryptography >= 39; older releases
    always validate. Use it only for a key file that this collection manages (see
    ``_token.load_key``): such a key was fully validated when selfjwt.kyma.jwt_keypair wrote or
    last checked it, and :func:`sign_token` verifies the first signature of every key object
    with its public key, so a damaged key cannot release a token.
    """
    data = _to_bytes(data)
    password = _to_bytes(passphrase) if passphrase not in (None, "") else None
    if not data or not data.strip():
        raise JoseError("%s is empty" % source)
    if b"-----BEGIN" not in data:
        raise JoseError("%s is not a PEM private key (no '-----BEGIN' line)" % source)
    if b"PRIVATE KEY-----" not in data:
        if b"PUBLIC KEY-----" in data or b"CERTIFICATE-----" in data:
            raise JoseError("%s is a public key or certificate, not a private key" % source)
        raise JoseError("%s is not a PEM private key" % source)
    encrypted = pem_is_encrypted(data)
    if encrypted and password is None:
        raise JoseError("%s is encrypted: set the passphrase" % source)
    if not encrypted and password is not None:
        raise JoseError("%s is not encrypted, but a passphrase was given: remove the passphrase, "
                        "or regenerate the key to encrypt it" % source)
    try:
        if validate_rsa or _version_tuple(cryptography.__version__) < (39,):
            key = serialization.load_pem_private_key(data, password=password)
        else:
            key = serialization.load_pem_private_key(data, password=password, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        raise JoseError("%s could not be loaded: %s" % (source, exc))
    except UnsupportedAlgorithm as exc:
        raise JoseError("%s uses an unsupported key type: %s" % (source, exc))
    except ValueError:
        if encrypted:
            raise JoseError("%s could not be decrypted: the passphrase is wrong or the file is damaged" % source)
        raise JoseError("%s is damaged: its PEM data does not decode to a private key" % source)
    if not check:
        return key
    try:
        check_key(key)
    except JoseError as exc:
        raise JoseError("%s: %s" % (source, exc))
    return key


def private_key_pem(key, passphrase=None):
    """PKCS#8 PEM of a private key, encrypted with the best available scheme when a passphrase is set."""
    if passphrase:
        encryption = serialization.BestAvailableEncryption(_to_bytes(passphrase))
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_of(key):
    if hasattr(key, "public_key"):
        return key.public_key()
    return key


def public_key_pem(key):
    """SubjectPublicKeyInfo PEM (text) of a key's public half."""
    return public_key_of(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key_pem(data, source="the public key"):
    """Load a PEM public key (SubjectPublicKeyInfo or PKCS#1 RSA)."""
    try:
        key = serialization.load_pem_public_key(_to_bytes(data))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise JoseError("%s is not a valid PEM public key: %s" % (source, exc))
    check_key(key)
    return key


# --------------------------------------------------------------------------------------
# Facts about signing keys, computed once per key object
# --------------------------------------------------------------------------------------

#: id(key) -> (key, facts). The entry holds the key itself, so its id cannot be reused while
#: the entry exists; key objects are immutable, so the facts never go stale.
_SIGNING_FACTS = {}
_SIGNING_FACTS_LIMIT = 32


def _is_private(key):
    return isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey))


def _signing_facts(key):
    """Family, public key, thumbprint and checked algorithms of a private key; whether it signed."""
    entry = _SIGNING_FACTS.get(id(key))
    if entry is not None and entry[0] is key:
        return entry[1]
    facts = {"family": check_key(key), "public_key": key.public_key(), "thumbprint": None, "algorithms": {},
             "round_trip": False}
    if len(_SIGNING_FACTS) >= _SIGNING_FACTS_LIMIT:
        _SIGNING_FACTS.clear()
    _SIGNING_FACTS[id(key)] = (key, facts)
    return facts


# --------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------

def default_algorithm(key):
    """The algorithm a key signs with unless told otherwise: RS256, ES256/384/512 or EdDSA."""
    family = check_key(key)
    if family == "RSA":
        return "RS256"
    if family == "EC":
        return CURVE_BY_NAME[curve_name(key)][2]
    return "EdDSA"


def check_algorithm(key, algorithm):
    """Refuse algorithms outside the allowlist and algorithms that do not fit the key."""
    if _is_private(key) and (algorithm is None or isinstance(algorithm, str)):
        # A private key signs many tokens: the answer for one (key, algorithm) pair is kept.
        known = _signing_facts(key)["algorithms"]
        if algorithm not in known:
            known[algorithm] = _check_algorithm(key, algorithm)
        return known[algorithm]
    return _check_algorithm(key, algorithm)


def _check_algorithm(key, algorithm):
    if algorithm is None:
        return default_algorithm(key)
    if not isinstance(algorithm, str):
        raise JoseError("algorithm must be a string such as ES256, got %s" % type(algorithm).__name__)
    if algorithm.lower() == "none":
        raise JoseError("algorithm 'none' is refused: tokens must be signed")
    if algorithm.upper().startswith("HS"):
        raise JoseError("algorithm %s is refused: shared-secret (HMAC) algorithms cannot be verified "
                        "through a public JWKS; use an asymmetric algorithm" % algorithm)
    if algorithm not in ALGORITHMS:
        raise JoseError("algorithm %r is not supported: use one of %s" % (algorithm, ", ".join(sorted(ALGORITHMS))))
    family = check_key(key)
    if ALGORITHMS[algorithm] != family:
        raise JoseError("algorithm %s needs a key of type %s, but the key is of type %s: use %s or a matching key"
                        % (algorithm, ALGORITHMS[algorithm], family, default_algorithm(key)))
    if family == "EC" and EC_ALG_CURVE[algorithm] != curve_name(key):
        raise JoseError("algorithm %s needs curve %s, but the key is on %s: use %s"
                        % (algorithm, EC_ALG_CURVE[algorithm], curve_name(key), default_algorithm(key)))
    return algorithm


# --------------------------------------------------------------------------------------
# JWK (RFC 7517/7518/8037) and thumbprints (RFC 7638)
# --------------------------------------------------------------------------------------

def jwk_key_members(key):
    """The required public members of a key's JWK (the RFC 7638 thumbprint input)."""
    public = public_key_of(key)
    family = check_key(public)
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
    if _is_private(key):
        facts = _signing_facts(key)
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
            normalized["alg"] = _check_public_algorithm(kty, members.get("crv"), key, jwk["alg"])
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
    _SIGNING_FACTS.clear()


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
                check_key(key)
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
            key = ec.EllipticCurvePublicKey.from_encoded_point(_curve(crv), b"\x04" + x_raw + y_raw)
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


_CURVES = {}


def _curve(crv):
    """The cryptography curve object of a JOSE curve name in CURVE_BY_NAME (made once)."""
    curve = _CURVES.get(crv)
    if curve is None:
        curve = _CURVES[crv] = getattr(ec, CURVE_BY_NAME[crv][0].upper())()
    return curve


def _check_public_algorithm(family, crv, key, algorithm):
    """check_algorithm() for a public key whose family (and curve) are known: the common cases fast."""
    if isinstance(algorithm, str) and ALGORITHMS.get(algorithm) == family and (
            family != "EC" or EC_ALG_CURVE[algorithm] == crv):
        return algorithm
    return check_algorithm(key, algorithm)


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
            certificates.append(_x509().load_der_x509_certificate(der))
        except (binascii.Error, ValueError, _x509().InvalidVersion) as exc:
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
        data = _to_bytes(item).strip()
        if b"PRIVATE KEY" in data:
            raise JoseError("%s is a private key: publish public keys only" % what)
        if data.startswith(b"{"):
            try:
                return jwk_to_public_key(parse_json(data.decode("utf-8")), what)[0]
            except ValueError as exc:
                raise JoseError("%s is not valid JSON: %s" % (what, exc))
        if b"-----BEGIN CERTIFICATE-----" in data:
            try:
                certificate = _x509().load_pem_x509_certificate(data)
            except (ValueError, _x509().InvalidVersion) as exc:
                raise JoseError("%s is not a valid PEM certificate: %s" % (what, exc))
            key = certificate_public_key(certificate, what)
            check_key(key)
            return public_jwk(key, certificates=[certificate])
        if b"PUBLIC KEY-----" in data:
            return public_jwk(load_public_key_pem(data, what))
        raise JoseError("%s is neither a JWK nor a PEM public key or certificate" % what)
    raise JoseError("%s must be a JWK (dict) or a PEM string, got %s" % (what, type(item).__name__))


# --------------------------------------------------------------------------------------
# JWKS documents
# --------------------------------------------------------------------------------------

def jwks_document(jwks, normalized=False):
    """Deterministic JSON text of a JWKS: keys sorted by kid, members in a fixed order.

    ``normalized=True`` says the keys already have their members in the published order (as
    :func:`jwk_to_public_key` and :func:`public_jwk` return them), so they are not copied again.
    """
    keys = jwks.get("keys", [])
    if not normalized:
        keys = [ordered_jwk(key) for key in keys]
    keys = sorted(keys, key=_KID)
    rendered = [_indented_jwk(key) for key in keys]
    if not keys or None in rendered:
        return json.dumps({"keys": keys}, indent=2, sort_keys=False, ensure_ascii=True) + "\n"
    # The same text as json.dumps(indent=2) above, which runs in pure Python (its C encoder
    # does not indent) and so took most of the time of a 10,000-key JWKS.
    return '{\n  "keys": [\n%s\n  ]\n}\n' % ",\n".join(rendered)


_KID = operator.itemgetter("kid")


def _indented_jwk(jwk):
    """One JWK as json.dumps(indent=2) writes it at depth 2, or None when it holds other than strings."""
    try:
        # The common case: only known member names with string values (a list or number
        # raises TypeError, another name KeyError, and the general way below handles them).
        names = tuple(jwk)
        template = _JWK_TEMPLATES.get(names)
        if template is None:
            if not names or len(_JWK_TEMPLATES) >= 64:
                raise KeyError(names)
            template = _JWK_TEMPLATES[names] = "    {\n%s\n    }" % ",\n".join(
                _MEMBER_PREFIXES[name].replace("%", "%%") + "%s" for name in names)
        return template % tuple(map(_json_string, jwk.values()))
    except (KeyError, TypeError):
        pass
    lines = []
    for name, value in jwk.items():
        if isinstance(value, str):
            prefix = _MEMBER_PREFIXES.get(name)
            if prefix is None:
                prefix = "      %s: " % _json_string(name)
            lines.append(prefix + json.encoder.encode_basestring_ascii(value))
        elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            lines.append("      %s: [\n%s\n      ]" % (
                _json_string(name), ",\n".join("        " + _json_string(item) for item in value)))
        else:
            return None
    if not lines:
        return None
    return "    {\n%s\n    }" % ",\n".join(lines)


_json_string = json.encoder.encode_basestring_ascii


_MEMBER_PREFIXES = dict((name, '      "%s": ' % name) for name in PUBLIC_JWK_MEMBERS)
#: Text of a JWK of string members by its member names (a JWKS has few shapes).
_JWK_TEMPLATES = {}


def discovery_document(issuer, jwks_uri, algorithms):
    """A minimal OpenID Connect discovery document that points at the JWKS."""
    doc = {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": sorted(set(algorithms)),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


# --------------------------------------------------------------------------------------
# Self-signed certificates
# --------------------------------------------------------------------------------------

def _utc(dt):
    return dt.replace(tzinfo=None) if dt.tzinfo else dt


def self_signed_certificate(key, common_name, valid_days=3650, not_before=None, serial=None):
    """A self-signed X.509 certificate for the key (for JWK x5c / x5t)."""
    if not common_name:
        raise JoseError("the certificate subject common name must not be empty")
    if not isinstance(valid_days, int) or valid_days < 1:
        raise JoseError("certificate validity must be at least one day, got %r" % (valid_days,))
    start = not_before or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    x509 = _x509()
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    digest = None if key_family(key) == "OKP" else hashes.SHA256()
    return builder.sign(key, digest)


def certificate_public_key(certificate, what="the certificate"):
    """The public key of a certificate; a certificate whose key cannot be decoded is a JoseError.

    cryptography parses certificates lazily, so a damaged key inside a certificate that did
    load only shows up here.
    """
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise JoseError("%s holds a public key that cannot be read (%s): give an intact certificate" % (what, exc))


def load_certificate_pem(data, source="the certificate"):
    try:
        return _x509().load_pem_x509_certificate(_to_bytes(data))
    except (ValueError, _x509().InvalidVersion) as exc:
        raise JoseError("%s is not a valid PEM certificate: %s" % (source, exc))


def certificate_pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_not_after(certificate):
    value = getattr(certificate, "not_valid_after_utc", None)
    return _utc(value) if value is not None else certificate.not_valid_after


def certificate_subject_cn(certificate):
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------

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
            raise JoseError("claim %r cannot be set through claims: use the dedicated option instead" % name)
        result[name] = value
    try:
        _STRICT_JSON.encode(result)
    except (TypeError, ValueError) as exc:
        raise JoseError("claims must be JSON-serializable: %s" % exc)
    return result


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
            raise JoseError("header %r cannot be set through headers: it decides how the token is verified"
                            % name)
        result[name] = value
    try:
        _STRICT_JSON.encode(result)
    except (TypeError, ValueError) as exc:
        raise JoseError("headers must be JSON-serializable: %s" % exc)
    return result


def sign(key, header, claims):
    """Sign a claim set; ``header`` comes from :func:`build_header`. Returns the compact token."""
    return sign_token(key, header, claims)[0]


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
    facts = _signing_facts(key)
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
        jwt = _jwt()
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
