# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Key objects: generation, PEM loading and serialisation, key family and size checks.

PRIVATE to the collection: do not import it from other collections.

Keys are ``cryptography`` key objects. :func:`signing_key_family` refuses the ones that must not
sign JWTs; :func:`signing_facts` keeps what signing needs to know about a private key object.
Part of the JOSE core (see ``_jose``): no Ansible imports, the refresher runs it on edge hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import cryptography
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:
    pass  # _jose.missing_dependencies() reports the missing library before any use

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError, to_bytes, version_tuple

#: RSA keys shorter than this are refused (RFC 7518 section 3.3).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384

CURVE_BY_NAME = {
    "P-256": ("secp256r1", 32, "ES256"),
    "P-384": ("secp384r1", 48, "ES384"),
    "P-521": ("secp521r1", 66, "ES512"),
}
CURVE_NAME_BY_OPENSSL = dict((v[0], k) for k, v in CURVE_BY_NAME.items())


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


def signing_key_family(key):
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
    family = signing_key_family(key)
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


def pem_is_encrypted(data):
    """True when PEM private key data is encrypted (PKCS#8 or a legacy ``Proc-Type: 4,ENCRYPTED`` header)."""
    return b"ENCRYPTED" in (to_bytes(data) or b"")


def load_private_key(data, passphrase=None, source="the private key", check=True, validate_rsa=True):
    """Load a PEM (PKCS#8, PKCS#1 or SEC1) private key and check that it may sign JWTs.

    With ``check=False`` a key that decodes but must not sign JWTs (DSA, RSA < 2048 bits, an
    unsupported curve) is returned instead of refused, so callers can tell such a key from a
    damaged file; they must run :func:`signing_key_family` before using it.

    ``validate_rsa=False`` skips cryptography's RSA consistency check (primality tests of p and
    q and a check of the CRT numbers: 50-500 ms per load) on cryptography >= 39; older releases
    always validate. Use it only for a key file that this collection manages (see
    ``_token.load_key``): such a key was fully validated when selfjwt.kyma.jwt_keypair wrote or
    last checked it, and :func:`sign_token` verifies the first signature of every key object
    with its public key, so a damaged key cannot release a token.
    """
    data = to_bytes(data)
    password = to_bytes(passphrase) if passphrase not in (None, "") else None
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
        if validate_rsa or version_tuple(cryptography.__version__) < (39,):
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
        signing_key_family(key)
    except JoseError as exc:
        raise JoseError("%s: %s" % (source, exc))
    return key


def private_key_pem(key, passphrase=None):
    """PKCS#8 PEM of a private key, encrypted with the best available scheme when a passphrase is set."""
    if passphrase:
        encryption = serialization.BestAvailableEncryption(to_bytes(passphrase))
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
        key = serialization.load_pem_public_key(to_bytes(data))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise JoseError("%s is not a valid PEM public key: %s" % (source, exc))
    signing_key_family(key)
    return key


# --------------------------------------------------------------------------------------
# Facts about signing keys, computed once per key object
# --------------------------------------------------------------------------------------

#: id(key) -> (key, facts). The entry holds the key itself, so its id cannot be reused while
#: the entry exists; key objects are immutable, so the facts never go stale.
_SIGNING_FACTS = {}
_SIGNING_FACTS_LIMIT = 32


def clear_signing_facts():
    """Forget the facts of every key object (see :func:`signing_facts`)."""
    _SIGNING_FACTS.clear()


def is_private_key(key):
    return isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey))


def signing_facts(key):
    """Family, public key, thumbprint and checked algorithms of a private key; whether it signed."""
    entry = _SIGNING_FACTS.get(id(key))
    if entry is not None and entry[0] is key:
        return entry[1]
    facts = {"family": signing_key_family(key), "public_key": key.public_key(), "thumbprint": None, "algorithms": {},
             "round_trip": False}
    if len(_SIGNING_FACTS) >= _SIGNING_FACTS_LIMIT:
        _SIGNING_FACTS.clear()
    _SIGNING_FACTS[id(key)] = (key, facts)
    return facts


_CURVES = {}


def curve_object(crv):
    """The cryptography curve object of a JOSE curve name in CURVE_BY_NAME (made once)."""
    curve = _CURVES.get(crv)
    if curve is None:
        curve = _CURVES[crv] = getattr(ec, CURVE_BY_NAME[crv][0].upper())()
    return curve
