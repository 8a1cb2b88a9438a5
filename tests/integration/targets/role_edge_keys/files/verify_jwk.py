# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test helper: verify a token with PyJWT against a published public JWK.

Reads a JSON object from stdin: {"token": ..., "jwks": [JWK, ...], "issuer": ..., "subject": ...,
"audience": ... or null}. Picks the JWK by the token's kid, pins the algorithm to the JWK's
alg, and checks signature, iss, aud, exp, iat and nbf with PyJWT (not with the collection's
code). Prints {"header": ..., "claims": ..., "token": ...} as JSON; exits 1 with the reason
when the token does not verify.
"""

from __future__ import absolute_import, division, print_function

import json
import sys

import jwt


def main():
    request = json.load(sys.stdin)
    token = request["token"].strip()
    header = jwt.get_unverified_header(token)
    matching = [jwk for jwk in request["jwks"] if jwk.get("kid") == header.get("kid")]
    if len(matching) != 1:
        print("no single JWK with kid %r among %r" % (header.get("kid"), [j.get("kid") for j in request["jwks"]]))
        return 1
    jwk = matching[0]
    key = jwt.PyJWK.from_dict(jwk)
    try:
        claims = jwt.decode(token, key.key, algorithms=[jwk["alg"]], issuer=request["issuer"],
                            audience=request.get("audience"),
                            options={"require": ["iss", "sub", "exp", "iat", "nbf", "jti"],
                                     "verify_aud": request.get("audience") is not None})
    except jwt.PyJWTError as exc:
        print("token does not verify: %s" % exc)
        return 1
    if claims["sub"] != request["subject"]:
        print("token sub is %r, expected %r" % (claims["sub"], request["subject"]))
        return 1
    print(json.dumps({"header": header, "claims": claims, "token": token}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
