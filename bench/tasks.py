# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 2: the cost of one jwt_token task against one ansible.builtin.ping task.

* Playbooks with one task over the same N local hosts (``ansible_connection=local``, forks =
  N), interleaved: ``ping``, ``jwt_token`` with an EC P-256 key and with an RSA-2048 key. The
  task's wall time comes from the bench_timing callback; the whole ansible-playbook run is
  reported too.
* The module processes alone: the AnsiballZ payloads that Ansible ran (kept with
  ANSIBLE_KEEP_REMOTE_FILES) started as fresh processes, interleaved, plus ``python -c pass``.
* ``python -X importtime`` of the jwt_token payload: the heaviest imports.
* Private key loading in-process, with and without RSA key validation.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys

import harness
import keys

TARGET = 1.3

PLAY = """---
- name: Bench {name}
  hosts: bench
  gather_facts: false
  tasks:
{task}"""

TASKS = {
    "empty": """    []
""",
    "ping": """    - name: Ping
      ansible.builtin.ping:
""",
    "jwt_token_es256": """    - name: Mint a token (ES256)
      selfjwt.kyma.jwt_token:
        private_key_path: {key}
        issuer: https://edge-jwks.kyma-system.svc.cluster.local
        subject: "{{{{ inventory_hostname }}}}"
        audience: orders-api
      no_log: true
""",
    "jwt_token_rs256": """    - name: Mint a token (RS256-2048)
      selfjwt.kyma.jwt_token:
        private_key_path: {key}
        issuer: https://edge-jwks.kyma-system.svc.cluster.local
        subject: "{{{{ inventory_hostname }}}}"
        audience: orders-api
      no_log: true
""",
}
TASK_KEYS = {"jwt_token_es256": "p256", "jwt_token_rs256": "rsa2048"}


def _playbooks(work):
    paths = {}
    for name, task in TASKS.items():
        key = keys.ensure_key(TASK_KEYS[name]) if name in TASK_KEYS else None
        path = os.path.join(work, "%s.yml" % name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(PLAY.format(name=name, task=task.format(key=key)))
        paths[name] = path
    return paths


def _task_seconds(timing_file):
    with open(timing_file, encoding="utf-8") as handle:
        records = json.load(handle)
    return sum(record["seconds"] for record in records)


def playbook_runs(quick, rng, work):
    hosts = 4 if quick else 10
    rounds = 2 if quick else 5
    inventory = os.path.join(work, "inventory.ini")
    harness.write_inventory(inventory, harness.host_names(hosts), sys.executable)
    playbooks = _playbooks(work)
    timing = os.path.join(work, "timing.json")

    def runner(name):
        def run():
            env = harness.ansible_env(timing_file=timing)
            wall, cpu, _out = harness.run_measured(
                ["ansible-playbook", "-i", inventory, "-f", str(hosts), playbooks[name]], env=env, cwd=work)
            return {"wall": wall, "cpu": cpu, "task": _task_seconds(timing) if name != "empty" else 0.0}
        return run

    harness.log("tasks: %d rounds x %d playbooks over %d hosts" % (rounds, len(playbooks), hosts))
    samples = harness.interleave(dict((name, runner(name)) for name in playbooks), rounds, rng)
    # The CPU time one task adds to a run: the playbook's CPU time minus that of the same play
    # without tasks in the same round (Ansible's start-up, inventory and play setup).
    empty_cpu = [v["cpu"] for v in samples["empty"]]
    task_cpu = dict((name, [v["cpu"] - base for v, base in zip(values, empty_cpu)])
                    for name, values in samples.items() if name != "empty")
    result = {"hosts": hosts, "forks": hosts, "rounds": rounds, "candidates": {},
              "empty_play_cpu_seconds": harness.summary(empty_cpu, digits=3)}
    for name, values in samples.items():
        if name == "empty":
            continue
        result["candidates"][name] = {
            "task_cpu_seconds": harness.summary(task_cpu[name], digits=3),
            "task_wall_seconds": harness.summary([v["task"] for v in values], digits=3),
            "playbook_wall_seconds": harness.summary([v["wall"] for v in values], digits=3),
            "playbook_cpu_seconds": harness.summary([v["cpu"] for v in values], digits=3),
        }
    ping_wall = [v["task"] for v in samples["ping"]]
    for name in TASK_KEYS:
        wall = [v["task"] for v in samples[name]]
        entry = result["candidates"][name]
        entry["ratio_task_cpu_to_ping"] = harness.ratio(harness.median(task_cpu[name]),
                                                        harness.median(task_cpu["ping"]))
        entry["paired_ratio_task_cpu_to_ping"] = harness.summary(
            harness.paired_ratios(task_cpu[name], task_cpu["ping"]), digits=3)
        entry["ratio_task_wall_to_ping"] = harness.ratio(harness.median(wall), harness.median(ping_wall))
        entry["paired_ratio_task_wall_to_ping"] = harness.summary(harness.paired_ratios(wall, ping_wall), digits=3)
        entry["target"] = TARGET
        entry["verdict"] = harness.verdict(entry["ratio_task_cpu_to_ping"], TARGET)
    return result


def _keep_payloads(work):
    """Run each one-task playbook on one host with the remote files kept; returns name -> payload path."""
    inventory = os.path.join(work, "one.ini")
    harness.write_inventory(inventory, ["edge001"], sys.executable)
    playbooks = _playbooks(work)
    payloads = {}
    for name, path in playbooks.items():
        if name == "empty":
            continue
        remote = os.path.join(work, "kept-%s" % name)
        shutil.rmtree(remote, ignore_errors=True)
        env = harness.ansible_env(ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TEMP=remote)
        harness.run_timed(["ansible-playbook", "-i", inventory, path], env=env, cwd=work)
        found = glob.glob(os.path.join(remote, "*", "AnsiballZ_*.py"))
        if len(found) != 1:
            raise harness.CommandFailed("expected one kept AnsiballZ payload in %s, found %r" % (remote, found))
        payloads[name] = found[0]
    return payloads


IMPORT_PATTERN = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
WATCHED_IMPORTS = ("ansible.module_utils.basic", "jwt", "jwt.algorithms", "jwt.jwks_client", "cryptography.x509",
                   "cryptography.hazmat.primitives.serialization", "urllib.request", "ssl", "http.client",
                   "ansible_collections.selfjwt.kyma.plugins.module_utils._jose",
                   "ansible_collections.selfjwt.kyma.plugins.module_utils._token",
                   "ansible_collections.selfjwt.kyma.plugins.module_utils._common")


def importtime(payload, samples):
    """Cumulative import time (ms, median of ``samples`` runs) of the watched modules in a payload run."""
    values = dict((name, []) for name in WATCHED_IMPORTS)
    totals = []
    for _index in range(samples):
        proc = harness.subprocess.run([sys.executable, "-X", "importtime", payload], stdout=harness.subprocess.PIPE,
                                      stderr=harness.subprocess.PIPE, text=True, check=False)
        seen = {}
        total = 0
        for line in proc.stderr.splitlines():
            match = IMPORT_PATTERN.match(line)
            if not match:
                continue
            cumulative, indent, name = int(match.group(2)), len(match.group(3)), match.group(4)
            if indent <= 1:
                total += cumulative
            if name in values and name not in seen:
                seen[name] = cumulative
        for name, cumulative in seen.items():
            values[name].append(cumulative / 1000.0)
        totals.append(total / 1000.0)
    result = dict((name, round(harness.median(v), 1)) for name, v in values.items() if v)
    result["all top-level imports"] = round(harness.median(totals), 1)
    return result


def payload_runs(quick, rng, work):
    payloads = _keep_payloads(work)
    rounds = 5 if quick else 15
    candidates = dict((name, (lambda p=path: harness.run_measured([sys.executable, p])[1]))
                      for name, path in payloads.items())
    candidates["python -c pass"] = lambda: harness.run_measured([sys.executable, "-c", "pass"])[1]
    harness.log("tasks: %d rounds of module processes" % rounds)
    samples = harness.interleave(candidates, rounds, rng)
    result = {"rounds": rounds, "clock": "CPU time of the process (user + system)", "ms": {}}
    for name, values in samples.items():
        result["ms"][name] = harness.summary(values, scale=1000.0, digits=1)
    ping = harness.median(samples["ping"])
    for name in TASK_KEYS:
        result["ms"][name]["ratio_to_ping"] = harness.ratio(harness.median(samples[name]), ping)
        result["ms"][name]["paired_ratio_to_ping"] = harness.summary(
            harness.paired_ratios(samples[name], samples["ping"]), digits=3)
    result["importtime_ms"] = {
        "jwt_token": importtime(payloads["jwt_token_es256"], 3 if quick else 5),
        "ping": importtime(payloads["ping"], 3 if quick else 5),
    }
    return result


def key_loading(quick, rng):
    """Private key PEM loading in-process: with validation (default) and without (RSA only)."""
    from cryptography.hazmat.primitives import serialization

    rounds = 3 if quick else 9
    pems = {}
    for name in ("rsa2048", "rsa4096", "p256", "ed25519"):
        with open(keys.ensure_key(name), "rb") as handle:
            pems[name] = handle.read()

    def loader(pem, skip):
        if skip:
            return lambda: serialization.load_pem_private_key(pem, None, unsafe_skip_rsa_key_validation=True)
        return lambda: serialization.load_pem_private_key(pem, None)

    candidates = {}
    for name, pem in pems.items():
        candidates["%s validated" % name] = loader(pem, False)
        if name.startswith("rsa"):
            candidates["%s unsafe_skip_rsa_key_validation" % name] = loader(pem, True)
    windows = dict((label, (lambda f=f, n=max(1, harness.calibrate(f, 0.05)): harness.per_op_window(f, n)))
                   for label, f in candidates.items())
    samples = harness.interleave(windows, rounds, rng)
    return dict((label, harness.summary(values, scale=1000.0, digits=3)) for label, values in samples.items())


def run(quick, rng):
    harness.import_collection()
    work = os.path.join(harness.WORK_DIR, "tasks")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return {
        "playbooks": playbook_runs(quick, rng, work),
        "module_processes": payload_runs(quick, rng, work),
        "key_loading_ms": key_loading(quick, rng),
    }
