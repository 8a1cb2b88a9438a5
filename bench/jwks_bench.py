# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 4: JWKS assembly at fleet scale, and JWKS bytes per key.

* ``_jwks.plan()`` (the logic of ``selfjwt.kyma.jwks_publish``) in-process with 100, 1,000 and
  10,000 EC P-256 public JWKs: a fresh publication, and a merge re-run against the JWKS it
  produced (the idempotent case). Sizes are interleaved; the 10k/1k ratio shows whether the
  cost grows linearly (10 is linear).
* Bytes per key of the published document (as jwks_publish writes it, and minified) for
  RSA-2048, RSA-4096, P-256, P-384 and Ed25519, with and without x5c (a self-signed
  certificate per key, as jwt_keypair makes it).

The 10,000 public JWKs are generated once and cached in .cache/bench/jwks-ec-10000.json.
"""

from __future__ import annotations

import json
import os

import harness

FIXTURE = os.path.join(harness.CACHE_DIR, "jwks-ec-10000.json")
SIZES = (100, 1000, 10000)
SIZE_TYPES = (("RSA-2048", "rsa", 2048, None), ("RSA-4096", "rsa", 4096, None), ("EC P-256", "ec", None, "P-256"),
              ("EC P-384", "ec", None, "P-384"), ("Ed25519", "ed25519", None, None))


def fixture(count):
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jwk, _keys

    if os.path.exists(FIXTURE):
        with open(FIXTURE, encoding="utf-8") as handle:
            keys = json.load(handle)
        if len(keys) >= count:
            return keys[:count]
    harness.log("jwks: generating %d EC P-256 public JWKs (cached in %s)" % (count, FIXTURE))
    keys = [_jwk.public_jwk(_keys.generate_private_key("ec", curve="P-256")) for _index in range(count)]
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    _files.write_atomic(FIXTURE, json.dumps(keys).encode("utf-8"), mode=0o644)
    return keys


def scaling(quick, rng):
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _jwk, _jwks

    keys = fixture(max(SIZES))
    rounds = 3 if quick else 5
    documents = dict((size, _jwks.plan(keys[:size])["document"]) for size in SIZES)
    candidates = {}

    def cold(function):
        # jwks_publish runs once per process: every sample starts without the key caches of _jose
        # (validated members, thumbprints). Each sample clears the caches it filled at its end, timed:
        # freeing 10,000 cached keys takes tens of milliseconds, which belong to the 10,000-key
        # sample, not to whichever smaller sample happens to come next.
        def run():
            result = function()
            _jwk.clear_caches()
            return result
        return run

    for size in SIZES:
        subset = keys[:size]
        candidates[("publish", size)] = lambda s=subset: harness.per_op_window(cold(lambda: _jwks.plan(s)), 1)
        candidates[("merge re-run", size)] = lambda s=subset, d=documents[size]: harness.per_op_window(
            cold(lambda: _jwks.plan(s, existing=d, merge=True)), 1)
    _jwk.clear_caches()
    harness.log("jwks: %d rounds over %d sizes" % (rounds, len(SIZES)))
    samples = harness.interleave(candidates, rounds, rng)
    result = {"rounds": rounds, "key_type": "EC P-256", "cases": {}}
    for case in ("publish", "merge re-run"):
        per_size = dict((size, samples[(case, size)]) for size in SIZES)
        medians = dict((size, harness.median(values)) for size, values in per_size.items())
        result["cases"][case] = {
            "seconds": dict((str(size), harness.summary(values, digits=4)) for size, values in per_size.items()),
            "us_per_key": dict((str(size), round(medians[size] / size * 1e6, 1)) for size in SIZES),
            "ratio_10k_to_1k": harness.ratio(medians[10000], medians[1000]),
            "document_bytes_10k": len(documents[10000].encode("utf-8")),
        }
    return result


def sizes(count=8):
    """Bytes per key: the growth of the document from 1 to ``count`` keys, divided by count - 1."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _jwk, _jwks, _keys

    rows = []
    for label, key_type, size, curve in SIZE_TYPES:
        plain, with_x5c = [], []
        for index in range(count):
            key = _keys.generate_private_key(key_type, size=size or 4096, curve=curve or "P-256")
            certificate = _certificates.self_signed_certificate(key, "edge-%04d.fleet.example" % index)
            plain.append(_jwk.public_jwk(key))
            with_x5c.append(_jwk.public_jwk(key, certificates=[certificate]))
        row = {"key_type": label}
        for name, keys in (("without_x5c", plain), ("with_x5c", with_x5c)):
            one = _jwks.jwks_document({"keys": keys[:1]})
            many = _jwks.jwks_document({"keys": keys})
            one_min = json.dumps(json.loads(one), separators=(",", ":"))
            many_min = json.dumps(json.loads(many), separators=(",", ":"))
            row[name] = {
                "bytes_per_key": round((len(many) - len(one)) / (count - 1.0), 1),
                "bytes_per_key_minified": round((len(many_min) - len(one_min)) / (count - 1.0), 1),
            }
        row["x5c_factor"] = harness.ratio(row["with_x5c"]["bytes_per_key"], row["without_x5c"]["bytes_per_key"], 2)
        for fleet in (100, 1000, 10000):
            row["kib_for_%d_keys_without_x5c" % fleet] = round(row["without_x5c"]["bytes_per_key"] * fleet / 1024, 1)
        rows.append(row)
    return rows


def run(quick, rng):
    harness.import_collection()
    return {"scaling": scaling(quick, rng), "bytes_per_key": sizes(4 if quick else 8)}
