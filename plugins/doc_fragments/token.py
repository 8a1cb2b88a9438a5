# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token options that mean the same wherever a module signs tokens.

The argument spec that goes with it is _argspec.token_argument_spec(). Options whose checks
differ between the modules (issuer, not_before, claims, jku, refresh_margin) stay in each
module's documentation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  algorithm:
    description:
      - Signing algorithm, the C(alg) header.
      - One of V(RS256), V(RS384), V(RS512), V(PS256), V(PS384), V(PS512) (RSA keys), V(ES256) (P-256 keys),
        V(ES384) (P-384 keys), V(ES512) (P-521 keys) or V(EdDSA) (Ed25519 keys).
      - Defaults to V(RS256) for RSA keys, the ES algorithm of the curve for EC keys and V(EdDSA) for Ed25519 keys.
      - V(none), the HMAC algorithms (V(HS256) and friends) and algorithms that do not fit the key are refused.
    type: str
  kid:
    description:
      - The C(kid) header that tells the verifier which key of the JWKS to use.
      - Defaults to the key's RFC 7638 SHA-256 JWK thumbprint, which is also the default C(kid) of
        M(selfjwt.kyma.jwt_keypair) and follows the key through rotations.
      - 1 to 128 characters from C(A-Z a-z 0-9 . _ ~ -).
    type: str
  subject:
    description:
      - The C(sub) claim, for example the host name.
      - Must not be empty, because Istio rejects tokens without C(sub).
    type: str
    required: true
  audience:
    description:
      - The C(aud) claim, a string or a list of strings.
      - A list with one element is written as a plain string.
      - Omitted from the token when not set.
    type: raw
  expires_in:
    description:
      - Lifetime of the token in seconds; C(exp) is C(iat) plus this.
      - Must be positive and not above O(max_lifetime).
    type: int
    default: 600
  max_lifetime:
    description:
      - Upper limit for O(expires_in) in seconds, a guard against long-lived bearer tokens.
    type: int
    default: 3600
"""
