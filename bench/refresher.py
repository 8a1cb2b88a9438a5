# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 5: printing a fresh token on an edge host, as fresh processes, interleaved.

One local edge host is provisioned with the ``selfjwt.kyma.edge_keys`` role (EC P-256 key,
refresher installed, scheduler ``none``); an RSA-2048 key and a second refresher configuration
that points at it are added beside. Candidates per key:

* ``selfjwt-token --force``: load the key, mint, write the token file atomically, print;
* ``selfjwt-token``: the usual call: the token in the file is still fresh, so it is checked
  (header, claims, signature with the key) and printed;
* ``node jsonwebtoken``: ``node bench/node/sign.js`` signs the same claims and header with
  jsonwebtoken 9 (tests/interop/node_modules) and prints the token;
* ``python -c pass`` and ``node -e 0``: the interpreters' floors.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import harness
import keys

NODE_MODULES = os.path.join(harness.ROOT, "tests", "interop", "node_modules")

PLAYBOOK = """---
- name: Provision one edge host with selfjwt.kyma.edge_keys
  hosts: bench
  gather_facts: false
  vars:
    selfjwt_issuer: https://edge-jwks.kyma-system.svc.cluster.local
    selfjwt_jwks_uri: http://edge-jwks.kyma-system.svc.cluster.local/.well-known/jwks.json
    selfjwt_audience: orders-api
    edge_keys_key_dir: "{base}/keys"
    edge_keys_token_dir: "{base}/state"
    edge_keys_refresher_bin_dir: "{base}/bin"
    edge_keys_refresher_lib_dir: "{base}/lib"
    edge_keys_refresher_scheduler: none
  roles:
    - role: selfjwt.kyma.edge_keys
"""


def _provision(work):
    base = os.path.join(work, "edge")
    playbook = os.path.join(work, "edge.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK.format(base=base))
    inventory = os.path.join(work, "inventory.ini")
    harness.write_inventory(inventory, ["edge001"], sys.executable)
    harness.run_timed(["ansible-playbook", "-i", inventory, playbook], env=harness.ansible_env(), cwd=work)
    return base


def _rsa_config(base):
    """A refresher configuration beside the role's that signs with an RSA-2048 key."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _files

    with open(os.path.join(base, "lib", "refresher.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    key_path = os.path.join(base, "keys", "rsa2048.pem")
    shutil.copyfile(keys.ensure_key("rsa2048"), key_path)
    os.chmod(key_path, 0o600)
    config["key"]["path"] = key_path
    config["key"]["algorithm"] = None
    config["token_file"]["path"] = os.path.join(base, "state", "token-rs256")
    path = os.path.join(base, "lib", "refresher-rs256.json")
    _files.write_atomic(path, json.dumps(config, indent=2).encode("utf-8"), mode=0o644)
    return path


def _kid(config_path):
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _jwk, _token

    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    key = _token.load_key(path=config["key"]["path"])
    return _jwk.key_thumbprint(key), _algorithms.default_algorithm(key)


def _verified(output, config_path, algorithm):
    """The printed token must verify with the key: every candidate prints a real token."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jws, _keys, _token

    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    key = _token.load_key(path=config["key"]["path"])
    _jws.verify(output.strip(), _keys.public_key_of(key), algorithm)


def run(quick, rng):
    harness.import_collection()
    node = shutil.which("node")
    work = os.path.join(harness.WORK_DIR, "refresher")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    harness.log("refresher: provisioning one edge host with edge_keys")
    base = _provision(work)
    command = os.path.join(base, "bin", "selfjwt-token")
    configs = {"ES256": os.path.join(base, "lib", "refresher.json"), "RS256-2048": _rsa_config(base)}
    env = dict(os.environ, BENCH_NODE_MODULES=NODE_MODULES)
    node_ok = node is not None and os.path.isdir(os.path.join(NODE_MODULES, "jsonwebtoken"))
    candidates = {}
    for label, config in configs.items():
        kid, algorithm = _kid(config)
        # Warm up and check: each candidate prints a token that verifies.
        harness.run_timed([command, "--config", config, "--force"])
        for name, argv in (("selfjwt-token --force", [command, "--config", config, "--force"]),
                           ("selfjwt-token", [command, "--config", config])):
            _verified(harness.run_timed(argv)[1], config, algorithm)
            candidates[(label, name)] = lambda argv=argv: harness.wall_and_cpu(argv)
        if node_ok:
            argv = [node, os.path.join(harness.BENCH_DIR, "node", "sign.js"), config, kid, algorithm]
            _verified(harness.run_timed(argv, env=env)[1], config, algorithm)
            candidates[(label, "node jsonwebtoken")] = lambda argv=argv: harness.wall_and_cpu(argv, env=env)
    candidates[("floor", "python -c pass")] = lambda: harness.wall_and_cpu([sys.executable, "-c", "pass"])
    if node:
        candidates[("floor", "node -e 0")] = lambda: harness.wall_and_cpu([node, "-e", "0"])
    rounds = 5 if quick else 20
    harness.log("refresher: %d rounds of %d commands" % (rounds, len(candidates)))
    both = harness.interleave(candidates, rounds, rng)
    result = {"rounds": rounds, "node_jsonwebtoken": node_ok, "ms": {}, "ratios": {}}
    for clock in ("wall", "cpu"):
        samples = harness.split_samples(both, clock)
        for (label, name), values in sorted(samples.items()):
            result["ms"].setdefault(clock, {}).setdefault(label, {})[name] = harness.summary(
                values, scale=1000.0, digits=1)
        for label in configs:
            if not node_ok:
                continue
            peer = samples[(label, "node jsonwebtoken")]
            for name in ("selfjwt-token --force", "selfjwt-token"):
                mine = samples[(label, name)]
                result["ratios"].setdefault("%s %s / node jsonwebtoken" % (label, name), {})[clock] = {
                    "ratio": harness.ratio(harness.median(mine), harness.median(peer)),
                    "paired": harness.summary(harness.paired_ratios(mine, peer), digits=3),
                }
    return result
