# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 1: minting overhead in-process.

Per algorithm, three candidates sign with the same loaded key object:

* ``collection``: ``_token.mint()``, what ``selfjwt.kyma.jwt_token`` runs per token (header
  and claims checks, kid thumbprint, PyJWT encode, decoding the result for the return value);
* ``pyjwt``: ``jwt.encode()`` of the same claims and header (for attribution only);
* ``bare``: the ``cryptography`` signature of the same JWS signing input bytes.

Each window calls one candidate back to back for about ``window`` seconds; every round visits
all (algorithm, candidate) windows in a shuffled order. Ratios are collection / bare, from
the medians and from the windows of the same round (paired).
"""

from __future__ import annotations

import functools

import harness
import keys

ALGORITHMS = (
    ("RS256-2048", "rsa2048", "RS256"),
    ("RS256-4096", "rsa4096", "RS256"),
    ("ES256", "p256", "ES256"),
    ("EdDSA", "ed25519", "EdDSA"),
)
TARGETS = {"RS256-2048": 1.2, "RS256-4096": 1.2}

TOKEN_OPTIONS = {
    "issuer": "https://edge-jwks.kyma-system.svc.cluster.local",
    "subject": "edge-0001",
    "audience": "orders-api",
    "expires_in": 600,
    "jku": "http://edge-jwks.kyma-system.svc.cluster.local/.well-known/jwks.json",
}


def _bare_signer(key, algorithm, data):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    if algorithm == "RS256":
        pad, digest = padding.PKCS1v15(), hashes.SHA256()
        return lambda: key.sign(data, pad, digest)
    if algorithm == "ES256":
        scheme = ec.ECDSA(hashes.SHA256())
        return lambda: key.sign(data, scheme)
    return lambda: key.sign(data)


def run(quick, rng):
    harness.import_collection()
    import jwt
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jws, _keys, _token

    rounds = 5 if quick else 25
    window = 0.02 if quick else 0.05
    candidates = {}
    for label, key_name, algorithm in ALGORITHMS:
        key = keys.load(key_name)
        sample = _token.mint(key, **TOKEN_OPTIONS)
        signing_input = sample.token.rsplit(".", 1)[0].encode("ascii")
        header = dict((name, value) for name, value in sample.header.items() if name != "alg")
        claims = dict(sample.claims)
        # The bare signature must verify like the token's: same key, algorithm and input.
        _jws.verify(sample.token, _keys.public_key_of(key), algorithm)

        collection = functools.partial(_token.mint, key, **TOKEN_OPTIONS)
        pyjwt = functools.partial(jwt.encode, claims, key, algorithm=algorithm, headers=header)
        for name, function in (("collection", collection), ("pyjwt", pyjwt),
                               ("bare", _bare_signer(key, algorithm, signing_input))):
            candidates[(label, name)] = (function, harness.calibrate(function, window))

    harness.log("mint: %d rounds of %d windows" % (rounds, len(candidates)))
    samples = harness.interleave(
        dict((key, (lambda f=f, n=n: harness.per_op_window(f, n))) for key, (f, n) in candidates.items()),
        rounds, rng)

    results = []
    for label, _key_name, algorithm in ALGORITHMS:
        per = dict((name, samples[(label, name)]) for name in ("collection", "pyjwt", "bare"))
        medians = dict((name, harness.median(values)) for name, values in per.items())
        paired = harness.paired_ratios(per["collection"], per["bare"])
        result = {
            "algorithm": label,
            "us_per_token": dict((name, harness.summary(values, scale=1e6, digits=2)) for name, values in per.items()),
            "ratio_collection_to_bare": harness.ratio(medians["collection"], medians["bare"]),
            "ratio_pyjwt_to_bare": harness.ratio(medians["pyjwt"], medians["bare"]),
            "paired_ratio_collection_to_bare": harness.summary(paired, digits=3),
            "overhead_us": round((medians["collection"] - medians["bare"]) * 1e6, 1),
            "target": TARGETS.get(label),
        }
        result["verdict"] = harness.verdict(result["ratio_collection_to_bare"], result["target"])
        results.append(result)
    return {"rounds": rounds, "window_seconds": window, "algorithms": results}
