# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Signing algorithm policy: the allowlist, each key's default algorithm, which algorithm fits which key.

PRIVATE to the collection: do not import it from other collections.

The allowlist is :data:`ALGORITHMS`; :func:`key_family_of` refuses ``none``, HMAC and unknown
names with advice, and :func:`check_algorithm` binds an algorithm to a key. Part of the JOSE
core (see ``_jose``): no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError
from ansible_collections.selfjwt.kyma.plugins.module_utils._keys import (
    CURVE_BY_NAME, curve_name, is_private_key, signing_facts, signing_key_family
)

#: Signing algorithms this collection accepts, with the key family each one needs.
ALGORITHMS = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}
EC_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def family_default(family, crv=None):
    """The default algorithm of a key family (and EC curve): RS256, ES256/384/512 or EdDSA; None when unknown."""
    if family == "RSA":
        return "RS256"
    if family == "EC":
        curve = CURVE_BY_NAME.get(crv)
        return curve[2] if curve is not None else None
    if family == "OKP":
        return "EdDSA"
    return None


def default_algorithm(key):
    """The algorithm a key signs with unless told otherwise: RS256, ES256/384/512 or EdDSA."""
    family = signing_key_family(key)
    return family_default(family, curve_name(key) if family == "EC" else None)


def jwk_algorithm(jwk):
    """The JWK's ``alg``, or the algorithm its key signs with by default (RS256, ES256, ...)."""
    if jwk.get("alg"):
        return jwk["alg"]
    algorithm = family_default(jwk.get("kty"), jwk.get("crv"))
    if algorithm is None:
        raise JoseError("cannot tell the algorithm of kid %s" % jwk.get("kid"))
    return algorithm


def key_family_of(algorithm):
    """The key family an algorithm needs (RSA, EC or OKP); JoseError for an algorithm no key may sign with.

    Refused are non-strings, ``none``, the shared-secret (HMAC) algorithms and anything outside
    :data:`ALGORITHMS`, each with its own advice.
    """
    if not isinstance(algorithm, str):
        raise JoseError("algorithm must be a string such as ES256, got %s" % type(algorithm).__name__)
    if algorithm.lower() == "none":
        raise JoseError("algorithm 'none' is refused: tokens must be signed")
    if algorithm.upper().startswith("HS"):
        raise JoseError("algorithm %s is refused: shared-secret (HMAC) algorithms cannot be verified "
                        "through a public JWKS; use an asymmetric algorithm" % algorithm)
    if algorithm not in ALGORITHMS:
        raise JoseError("algorithm %r is not supported: use one of %s" % (algorithm, ", ".join(sorted(ALGORITHMS))))
    return ALGORITHMS[algorithm]


def check_algorithm(key, algorithm):
    """Refuse algorithms outside the allowlist and algorithms that do not fit the key."""
    if is_private_key(key) and (algorithm is None or isinstance(algorithm, str)):
        # A private key signs many tokens: the answer for one (key, algorithm) pair is kept.
        known = signing_facts(key)["algorithms"]
        if algorithm not in known:
            known[algorithm] = _check_algorithm(key, algorithm)
        return known[algorithm]
    return _check_algorithm(key, algorithm)


def _check_algorithm(key, algorithm):
    if algorithm is None:
        return default_algorithm(key)
    needed = key_family_of(algorithm)
    family = signing_key_family(key)
    if needed != family:
        raise JoseError("algorithm %s needs a key of type %s, but the key is of type %s: use %s or a matching key"
                        % (algorithm, ALGORITHMS[algorithm], family, default_algorithm(key)))
    if family == "EC" and EC_ALG_CURVE[algorithm] != curve_name(key):
        raise JoseError("algorithm %s needs curve %s, but the key is on %s: use %s"
                        % (algorithm, EC_ALG_CURVE[algorithm], curve_name(key), default_algorithm(key)))
    return algorithm


def check_public_algorithm(family, crv, key, algorithm):
    """check_algorithm() for a public key whose family (and curve) are known: the common cases fast."""
    if isinstance(algorithm, str) and ALGORITHMS.get(algorithm) == family and (
            family != "EC" or EC_ALG_CURVE[algorithm] == crv):
        return algorithm
    return check_algorithm(key, algorithm)
