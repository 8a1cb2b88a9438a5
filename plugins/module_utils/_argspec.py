# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Argument spec pieces that several modules share, each documented by one doc fragment.

new_key_argument_spec() goes with the fragment selfjwt.kyma.new_key (jwt_keypair, jwt_keyring),
token_argument_spec() with selfjwt.kyma.token (jwt_token, token_refresher), pkcs11_argument_spec() with
selfjwt.kyma.pkcs11 and pkcs11_ring_argument_spec() with selfjwt.kyma.pkcs11.ring (jwt_keyring). A module builds its
argument_spec from them and documents them by extending the fragment, so the modules and their
documentation cannot drift apart (ansible-test sanity's validate-modules compares the two).

PRIVATE to the collection: do not import it from other collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.selfjwt.kyma.plugins.module_utils._algorithms import ALGORITHMS

#: The choices of an algorithm option: the signing algorithms the collection accepts, in their order.
ALGORITHM_CHOICES = list(ALGORITHMS)


def new_key_argument_spec():
    """type, size, curve and algorithm of a key the module generates (fragment selfjwt.kyma.new_key)."""
    # Imported here: the modules that only sign tokens (jwt_token, token_refresher) do not load _keypair.
    from ansible_collections.selfjwt.kyma.plugins.module_utils._keypair import CURVES, KEY_TYPES

    return dict(
        type=dict(type="str", default="ec", choices=list(KEY_TYPES)),
        size=dict(type="int", default=4096),
        curve=dict(type="str", default="P-256", choices=list(CURVES)),
        algorithm=dict(type="str", choices=list(ALGORITHM_CHOICES)),
    )


def token_argument_spec():
    """The token options that mean the same in every module that signs (fragment selfjwt.kyma.token).

    algorithm has no choices: an algorithm outside ALGORITHMS is refused with the message of
    _algorithms, which also says which algorithm fits the key.
    """
    # Imported here: the modules that only manage keys (jwt_keypair, jwt_keyring) do not load _token.
    from ansible_collections.selfjwt.kyma.plugins.module_utils._token import DEFAULT_EXPIRES_IN, DEFAULT_MAX_LIFETIME

    return dict(
        algorithm=dict(type="str"),
        kid=dict(type="str"),
        subject=dict(type="str", required=True),
        audience=dict(type="raw"),
        expires_in=dict(type="int", default=DEFAULT_EXPIRES_IN),
        max_lifetime=dict(type="int", default=DEFAULT_MAX_LIFETIME),
    )


def pkcs11_argument_spec():
    """A key in a PKCS#11 token instead of a key file (fragment selfjwt.kyma.pkcs11)."""
    return dict(
        pkcs11_uri=dict(type="str"),
        pkcs11_pin=dict(type="str", no_log=True),
        pkcs11_pin_file=dict(type="path"),
    )


def pkcs11_ring_argument_spec():
    """Where the key ring of a key in a PKCS#11 token keeps its state (fragment selfjwt.kyma.pkcs11.ring)."""
    return dict(
        state_path=dict(type="path"),
    )
