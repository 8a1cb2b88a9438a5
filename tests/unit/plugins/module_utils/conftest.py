# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Keys, their public JWKs and a certificate, made once per test module (test_common, test_jwks)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _jwk, _keys


@pytest.fixture(scope="module")
def private_keys():
    return {
        "ec": _keys.generate_private_key("ec", curve="P-256"),
        "ec384": _keys.generate_private_key("ec", curve="P-384"),
        "ed": _keys.generate_private_key("ed25519"),
        "rsa": _keys.generate_private_key("rsa", size=2048),
    }


@pytest.fixture(scope="module")
def jwks_(private_keys):
    return dict((name, _jwk.public_jwk(key)) for name, key in private_keys.items())


@pytest.fixture(scope="module")
def cert_pem(private_keys):
    return _certificates.certificate_pem(_certificates.self_signed_certificate(private_keys["ec"], "edge-1"))
