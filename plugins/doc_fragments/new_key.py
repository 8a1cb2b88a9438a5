# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options of a signing key a module generates: type, size, curve and the JWK's alg.

The argument spec that goes with it is _argspec.new_key_argument_spec().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  type:
    description:
      - Key type of a new key.
      - V(ec) (ECDSA, default) gives small keys and tokens and fast signing; with the default O(curve) the
        algorithm is C(ES256), which every JOSE library and Istio support.
      - V(rsa) gives C(RS256) (or C(PS256)... with O(algorithm)); use it where a verifier only supports RSA.
      - V(ed25519) gives C(EdDSA); not every verifier supports it.
    type: str
    choices: [rsa, ec, ed25519]
    default: ec
  size:
    description:
      - Size of a new RSA key in bits, between 2048 and 16384. Only used when O(type=rsa).
      - RSA keys shorter than 2048 bits are refused (RFC 7518).
    type: int
    default: 4096
  curve:
    description:
      - Curve of a new EC key. Only used when O(type=ec).
      - V(P-256) signs with C(ES256), V(P-384) with C(ES384), V(P-521) with C(ES512).
    type: str
    choices: [P-256, P-384, P-521]
    default: P-256
  algorithm:
    description:
      - Signing algorithm published as the JWK's C(alg).
      - Defaults to the key's natural algorithm - C(RS256) for RSA, C(ES256), C(ES384) or C(ES512) for the
        EC curves, C(EdDSA) for Ed25519.
      - Must fit O(type) and O(curve); for RSA keys the C(PS*) algorithms may be chosen.
    type: str
    choices: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA]
"""
