# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test helper: verify tokens with PyJWT, independently of the collection's code.

Reads a JSON list of checks from stdin, each {"token", "key" (path of a PEM private key whose
public half verifies), "alg" (the one algorithm allowed), optional "passphrase", "issuer",
"audience"}, and prints a JSON list of results {"ok", "header", "claims", "error"}.
"""

from __future__ import absolute_import, division, print_function

import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization


def check(item):
    with open(item["key"], "rb") as handle:
        passphrase = item.get("passphrase")
        private_key = serialization.load_pem_private_key(
            handle.read(), password=passphrase.encode() if passphrase else None)
    audience = item.get("audience")
    try:
        claims = jwt.decode(item["token"], private_key.public_key(), algorithms=[item["alg"]],
                            issuer=item.get("issuer"), audience=audience,
                            options={"require": ["exp", "iat", "nbf", "sub", "jti"], "verify_aud": audience is not None})
    except jwt.PyJWTError as exc:
        return {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return {"ok": True, "header": jwt.get_unverified_header(item["token"]), "claims": claims}


def main():
    print(json.dumps([check(item) for item in json.load(sys.stdin)], sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
