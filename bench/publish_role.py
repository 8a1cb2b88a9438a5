# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section publish_role: the whole kyma_publish role in a playbook, for 1,000 and 10,000 edge hosts.

What an operator runs: ``ansible-playbook`` over a JSON inventory whose edge hosts carry the
facts edge_keys exports (``edge_keys_public_jwks``: one EC P-256 key each, and
``edge_keys_token_claims`` with the issuer of the host's shard), and one play on localhost
with ``selfjwt.kyma.kyma_publish`` in render mode. The hosts are hashed into shards of about
420 hosts (as in the fleet_scale section), so every JWKS fits the role's default budget.

Reported: CPU seconds of the whole ansible-playbook run (all processes) per size, the wall
time of the tasks that take longest (bench_timing callback), and the ratio of CPU 10,000 /
1,000 hosts (linear is about 10; the target is <= 12). A run fails only when the rendered
JWKS do not hold every host's key. Run it alone with ``python bench/run.py --only publish_role``.
"""

from __future__ import annotations

import json
import os
import sys

import harness
import jwks_bench

SIZES = (1000, 10000)
QUICK_SIZES = (100, 1000)
HOSTS_PER_SHARD = 420
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
TARGET = 12.0


def shard_count(size):
    return -(-size // HOSTS_PER_SHARD)


def inventory(keys, size):
    """The JSON inventory (a dict) of ``size`` edge hosts plus localhost, as edge_keys leaves the facts."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet

    count = shard_count(size)
    hosts = {}
    for index in range(size):
        host = "edge-%05d" % index
        issuer = _fleet.shard_url(ISSUER, _fleet.hashed_shard(host, count))
        hosts[host] = {"edge_keys_public_jwks": [keys[index]],
                       "edge_keys_token_claims": {"iss": issuer, "sub": host, "aud": "edge-api"}}
    return {"all": {
        "vars": {"selfjwt_issuer": ISSUER, "selfjwt_audience": "edge-api", "selfjwt_shard_count": count},
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {"edge": {"hosts": hosts}},
    }}


def write_files(work, keys, size):
    """Inventory and playbook for one size; returns (inventory path, playbook path, output dir)."""
    directory = os.path.join(work, "publish_role_%d" % size)
    os.makedirs(directory, exist_ok=True)
    inventory_path = os.path.join(directory, "inventory.json")
    with open(inventory_path, "w", encoding="utf-8") as handle:
        json.dump(inventory(keys, size), handle)
    out = os.path.join(directory, "manifests")
    playbook = os.path.join(directory, "publish.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        json.dump([{"name": "publish", "hosts": "localhost", "gather_facts": False,
                    "roles": [{"role": "selfjwt.kyma.kyma_publish",
                               "vars": {"kyma_publish_mode": "render", "kyma_publish_output_dir": out}}]}], handle)
    return inventory_path, playbook, out


def check_output(out, keys, size):
    """Every host's kid is in exactly one rendered shard JWKS."""
    published = []
    for name in sorted(os.listdir(out)):
        if name.startswith("jwks-") and name.endswith(".json"):
            with open(os.path.join(out, name), encoding="utf-8") as handle:
                published.extend(key["kid"] for key in json.load(handle)["keys"])
    expected = sorted(key["kid"] for key in keys[:size])
    if sorted(published) != expected:
        raise RuntimeError("publish_role: the rendered JWKS of %d hosts hold %d keys, expected %d"
                           % (size, len(published), len(expected)))


def run(quick, rng, sizes=None):
    harness.import_collection()
    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    keys = jwks_bench.fixture(max(sizes))
    work = harness.WORK_DIR
    rounds = 1 if quick else 2
    files = dict((size, write_files(work, keys, size)) for size in sizes)
    timings = dict((size, []) for size in sizes)

    def candidate(size):
        def measure():
            inventory_path, playbook, out = files[size]
            timing = os.path.join(os.path.dirname(playbook), "timing.json")
            sample = harness.wall_and_cpu(["ansible-playbook", "-i", inventory_path, playbook],
                                          env=harness.ansible_env(timing_file=timing))
            check_output(out, keys, size)
            with open(timing, encoding="utf-8") as handle:
                records = json.load(handle)
            timings[size].append(sorted(records, key=lambda record: -record["seconds"])[:3])
            harness.log("publish_role: %5d hosts: %.1f s CPU, %.1f s wall" % (size, sample["cpu"], sample["wall"]))
            return sample
        return measure

    harness.log("publish_role: %d rounds over sizes %s" % (rounds, ", ".join(str(size) for size in sizes)))
    samples = harness.interleave(dict((size, candidate(size)) for size in sizes), rounds, rng)
    cpu = harness.split_samples(samples, "cpu")
    wall = harness.split_samples(samples, "wall")
    result = {"rounds": rounds, "key_type": "EC P-256", "hosts_per_shard": HOSTS_PER_SHARD, "target": TARGET,
              "sizes": {}}
    for size in sizes:
        result["sizes"][str(size)] = {"cpu_seconds": harness.summary(cpu[size], digits=2),
                                      "wall_seconds": harness.summary(wall[size], digits=2),
                                      "shards": shard_count(size),
                                      "slowest_tasks": [dict(record, seconds=round(record["seconds"], 2))
                                                        for record in timings[size][-1]]}
    small, large = min(sizes), max(sizes)
    value = harness.ratio(harness.median(cpu[large]), harness.median(cpu[small]))
    result["ratio"] = {"small": small, "large": large, "cpu": value,
                       "paired": harness.summary(harness.paired_ratios(cpu[large], cpu[small]), digits=2),
                       "verdict": harness.verdict(value, TARGET) if (small, large) == SIZES else "n/a"}
    return result
