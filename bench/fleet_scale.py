# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section fleet_scale: the cluster side of kyma_publish for 1,000 and 10,000 edge hosts.

Per topology, in-process and with the code kyma_publish runs (the filter ``shard_plan``,
then ``_jwks.plan`` with the role's default budget and ``_jwks.discovery`` per JWKS):

* ``per-host``: one key per host, one JWKS (no budget: it shows what the budget refuses);
* ``sharded``: one key per host, hosts hashed into shards of about 420 hosts (the size that
  leaves room for a rotation within the default budget of 1,000 keys / 512 KiB);
* ``site``: one key per site of 20 hosts, one JWKS.

Reported: CPU seconds to render (median of the rounds), the number of JWKS, and the largest
JWKS (keys, bytes). The keys are the cached EC P-256 fixture of the jwks section. Run it
alone with ``python bench/run.py --only fleet_scale``.
"""

from __future__ import annotations

import harness
import jwks_bench

SIZES = (1000, 10000)
HOSTS_PER_SHARD = 420
SITE_SIZE = 20
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = ISSUER + "/.well-known/jwks.json"
TOPOLOGIES = ("per-host", "sharded", "site")


def _clear_caches():
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk

    _jwk.clear_caches()


def _render(topology, hosts, keys):
    """Everything the role computes for the cluster side; returns [(keys, bytes)] per JWKS."""
    from ansible_collections.selfjwt.kyma.plugins.filter.shard_plan import shard_plan
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _jwks

    if topology == "site":
        host_keys = dict((host, [keys[index // SITE_SIZE]]) for index, host in enumerate(hosts))
    else:
        host_keys = dict((host, [keys[index]]) for index, host in enumerate(hosts))
    count = -(-len(hosts) // HOSTS_PER_SHARD) if topology == "sharded" else 0
    plan = shard_plan(host_keys, count=count)
    budget = {} if topology == "per-host" else {"max_keys": 1000, "max_bytes": 524288}
    out = []
    for shard, shard_keys in plan["keys"].items():
        result = _jwks.plan(shard_keys, budget_warn_percent=50, **budget)
        _jwks.discovery(_fleet.shard_url(ISSUER, shard), _fleet.shard_url(JWKS_URI, shard), result["jwks"])
        out.append((len(result["kids"]), result["size"]))
    return out


def run(quick, rng):
    harness.import_collection()
    keys = jwks_bench.fixture(max(SIZES))
    rounds = 2 if quick else 3
    candidates, shapes = {}, {}
    for size in SIZES:
        hosts = ["edge-%05d" % index for index in range(size)]
        for topology in TOPOLOGIES:
            shapes[(topology, size)] = _render(topology, hosts, keys)
            # Cold, like a playbook run: without the key caches of _jose (see jwks_bench).
            candidates[(topology, size)] = (lambda t=topology, h=hosts: harness.per_op_window(
                lambda: (_render(t, h, keys), _clear_caches()), 1))
    harness.log("fleet_scale: %d rounds over %d topologies and %d sizes" % (rounds, len(TOPOLOGIES), len(SIZES)))
    samples = harness.interleave(candidates, rounds, rng)
    result = {"rounds": rounds, "key_type": "EC P-256", "hosts_per_shard": HOSTS_PER_SHARD, "site_size": SITE_SIZE,
              "cases": {}}
    for (topology, size), values in sorted(samples.items()):
        shape = shapes[(topology, size)]
        largest = max(shape, key=lambda item: item[1])
        entry = {
            "render_cpu_seconds": harness.summary(values, digits=3),
            "jwks_count": len(shape),
            "largest_jwks_keys": largest[0],
            "largest_jwks_bytes": largest[1],
            "total_bytes": sum(item[1] for item in shape),
        }
        result["cases"]["%s %d" % (topology, size)] = entry
        harness.log("fleet_scale: %-8s %5d hosts: render %.3f s CPU, %d JWKS, largest %d keys / %d bytes, total %d "
                    "bytes" % (topology, size, harness.median(values), entry["jwks_count"], largest[0], largest[1],
                               entry["total_bytes"]))
    return result
