# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Section 3: provisioning a fleet of N local edge hosts, first run and idempotent re-run.

Sides (same key type, same hosts, same forks, same Ansible settings):

* ``edge_keys``: the role ``selfjwt.kyma.edge_keys`` as deployed by default (key, self-signed
  certificate, token refresher, scheduler ``auto``, first token), then
  ``selfjwt.kyma.jwks_publish`` on localhost for the fleet JWKS. The scheduler's files go below
  the bench directory: the cron file (``auto`` is cron on a host without systemd), or the systemd
  units without touching systemd (``edge_keys_refresher_systemd_enable: false``);
* ``edge_keys_keys_only``: the same with ``edge_keys_refresher_enabled: false`` (the job
  community.crypto does: key, certificate, JWKS);
* ``community.crypto``: ``openssl_privatekey`` + ``openssl_publickey`` + ``x509_certificate``
  (provider selfsigned) per host, the JWK assembled with ``set_fact`` from the
  ``community.crypto.openssl_publickey_info`` filter (RFC 7638 kid, x5c), and the JWKS written
  with ``ansible.builtin.copy`` on localhost.

community.crypto comes from the same ansible 12.3.0 wheel the Makefile downloads
(.cache/wheels), extracted into .cache/bench/collections.

The playbooks are generated here (not kept as YAML in the repository), because the
community.crypto one needs a collection that the linters of this repository do not have.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import zipfile

import harness

BENCH_COLLECTIONS = os.path.join(harness.CACHE_DIR, "collections")
WHEEL_GLOB = os.path.join(harness.ROOT, ".cache", "wheels", "ansible-12.3.0-py3-none-any.whl")
#: Targets (CPU ratio to community.crypto) per side and phase (issue 11).
TARGETS = {
    ("edge_keys", "first"): 1.0,
    ("edge_keys", "rerun"): 0.8,
    ("edge_keys_keys_only", "first"): 0.4,
    ("edge_keys_keys_only", "rerun"): 0.4,
}

KEY_TYPES = {
    # label: (edge_keys type, size, curve; community.crypto type, curve, size; JWK coordinate bytes)
    "EC P-256": {"edge": ("ec", 4096, "P-256"), "crypto": ("ECC", "secp256r1", None)},
    "RSA-4096": {"edge": ("rsa", 4096, "P-256"), "crypto": ("RSA", None, 4096)},
}

EDGE_PLAYBOOK = """---
- name: Provision the edge fleet with selfjwt.kyma.edge_keys
  hosts: bench
  gather_facts: false
  vars:
    selfjwt_issuer: https://edge-jwks.kyma-system.svc.cluster.local
    selfjwt_jwks_uri: http://edge-jwks.kyma-system.svc.cluster.local/.well-known/jwks.json
    selfjwt_audience: edge-api
    edge_keys_key_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/keys"
    edge_keys_token_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/state"
    edge_keys_refresher_bin_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/bin"
    edge_keys_refresher_lib_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/lib"
    # The default scheduler (auto), with its files below the bench directory.
    edge_keys_refresher_cron_file: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/selfjwt-token-cron"
    edge_keys_refresher_systemd_unit_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/systemd"
    edge_keys_refresher_systemd_enable: false
    edge_keys_refresher_enabled: {refresher}
    # A token that stays fresh for the whole benchmark: the re-run must not mint a new one.
    edge_keys_token_lifetime: 3600
    edge_keys_token_refresh_margin: 600
    edge_keys_key_type: {key_type}
    edge_keys_key_size: {key_size}
    edge_keys_key_curve: {key_curve}
    edge_keys_certificate: true
  roles:
    - role: selfjwt.kyma.edge_keys

- name: Publish the fleet JWKS
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the JWKS
      selfjwt.kyma.jwks_publish:
        keys: "{{{{ groups['bench'] | map('extract', hostvars, 'edge_keys_public_jwks') | flatten }}}}"
        dest: "{{{{ bench_base }}}}/jwks.json"
"""

CRYPTO_PLAYBOOK = """---
- name: Provision the edge fleet with community.crypto
  hosts: bench
  gather_facts: false
  vars:
    key_dir: "{{{{ bench_base }}}}/{{{{ inventory_hostname }}}}/keys"
  tasks:
    - name: Create the key directory
      ansible.builtin.file:
        path: "{{{{ key_dir }}}}"
        state: directory
        mode: "0700"

    - name: Generate the private key
      community.crypto.openssl_privatekey:
        path: "{{{{ key_dir }}}}/signing.pem"
        type: {crypto_type}
{crypto_key_options}
        mode: "0600"

    - name: Write the public key
      community.crypto.openssl_publickey:
        path: "{{{{ key_dir }}}}/signing.pub"
        privatekey_path: "{{{{ key_dir }}}}/signing.pem"
        return_content: true
        mode: "0644"
      register: bench_public_key

    - name: Issue a self-signed certificate
      community.crypto.x509_certificate:
        path: "{{{{ key_dir }}}}/signing.crt"
        privatekey_path: "{{{{ key_dir }}}}/signing.pem"
        provider: selfsigned
        selfsigned_not_after: "+3650d"
        return_content: true
        mode: "0644"
      register: bench_certificate

    - name: Assemble the public JWK
      ansible.builtin.set_fact:
        bench_jwk: "{{{{ lookup('ansible.builtin.template', '{jwk_template}') | from_json }}}}"

- name: Publish the fleet JWKS
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the JWKS
      ansible.builtin.copy:
        content: "{{{{ {{'keys': groups['bench'] | map('extract', hostvars, 'bench_jwk') | sort(attribute='kid')}}
                   | to_nice_json(indent=2) }}}}\\n"
        dest: "{{{{ bench_base }}}}/jwks.json"
        mode: "0644"
"""

# base64url of a big-endian unsigned integer of a fixed byte length, in plain Jinja
# (community.crypto returns the key numbers as integers; Jinja has no bytes type).
JWK_TEMPLATE = r"""{%- macro b64url(value, length) -%}
{%- set alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_' -%}
{%- set chars = (length * 8 + 5) // 6 -%}
{%- set shifted = value * (2 ** (chars * 6 - length * 8)) -%}
{%- for index in range(chars) -%}{{ alphabet[(shifted // (64 ** (chars - 1 - index))) % 64] }}{%- endfor -%}
{%- endmacro -%}
{%- set info = bench_public_key.publickey | community.crypto.openssl_publickey_info -%}
{%- set data = info.public_data -%}
{%- if info.type == 'RSA' -%}
{%- set members = {'e': b64url(data.exponent, 3), 'kty': 'RSA', 'n': b64url(data.modulus, (data.size + 7) // 8)} -%}
{%- set alg = 'RS256' -%}
{%- else -%}
{%- set members = {'crv': 'P-256', 'kty': 'EC', 'x': b64url(data.x, 32), 'y': b64url(data.y, 32)} -%}
{%- set alg = 'ES256' -%}
{%- endif -%}
{%- set canonical = members | to_json(separators=[',', ':'], sort_keys=true) -%}
{%- set kid = b64url(canonical | hash('sha256') | int(base=16), 32) -%}
{%- set x5c = bench_certificate.certificate | regex_replace('-----[A-Z ]+-----', '') | regex_replace('\\s', '') -%}
{{ members | combine({'kid': kid, 'use': 'sig', 'alg': alg, 'x5c': [x5c]}) | to_json }}
"""


def ensure_community_crypto():
    """Extract community.crypto from the ansible 12.3.0 wheel (once); returns its version."""
    target = os.path.join(BENCH_COLLECTIONS, "ansible_collections", "community", "crypto")
    manifest = os.path.join(target, "MANIFEST.json")
    if not os.path.exists(manifest):
        wheels = glob.glob(WHEEL_GLOB)
        if not wheels:
            raise SystemExit("the ansible 12.3.0 wheel is not in .cache/wheels: run 'make collections' first")
        prefix = "ansible_collections/community/crypto/"
        with zipfile.ZipFile(wheels[0]) as archive:
            members = [name for name in archive.namelist() if name.startswith(prefix)]
            archive.extractall(BENCH_COLLECTIONS, members)
    with open(manifest, encoding="utf-8") as handle:
        return json.load(handle)["collection_info"]["version"]


def _write_playbooks(work, key_label):
    spec = KEY_TYPES[key_label]
    key_type, key_size, key_curve = spec["edge"]
    crypto_type, crypto_curve, crypto_size = spec["crypto"]
    template = os.path.join(work, "jwk.json.j2")
    with open(template, "w", encoding="utf-8") as handle:
        handle.write(JWK_TEMPLATE)
    options = ("        curve: %s" % crypto_curve) if crypto_curve else ("        size: %d" % crypto_size)
    texts = {
        "edge_keys": EDGE_PLAYBOOK.format(refresher="true", key_type=key_type, key_size=key_size, key_curve=key_curve),
        "edge_keys_keys_only": EDGE_PLAYBOOK.format(refresher="false", key_type=key_type, key_size=key_size,
                                                    key_curve=key_curve),
        "community.crypto": CRYPTO_PLAYBOOK.format(crypto_type=crypto_type, crypto_key_options=options,
                                                   jwk_template=template),
    }
    paths = {}
    for side, text in texts.items():
        path = os.path.join(work, "%s.yml" % side.replace(".", "_"))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths[side] = path
    return paths


def _recap_changed(output):
    """Sum of changed= over the recap lines of an ansible-playbook run."""
    total = 0
    for line in output.splitlines():
        if " changed=" in line and " ok=" in line:
            total += int(line.split(" changed=")[1].split()[0])
    return total


def _check_jwks(path, count):
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    kids = [key["kid"] for key in document["keys"]]
    if len(set(kids)) != count:
        raise harness.CommandFailed("%s holds %d distinct keys, expected %d" % (path, len(set(kids)), count))


def _verify_crypto_jwks(path):
    """The hand-assembled JWKS must be right: every key validates and its kid is the RFC 7638 thumbprint."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk

    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    for jwk in document["keys"]:
        normalized = _jwk.key_input_to_jwk(jwk)
        if normalized["kid"] != _jwk.thumbprint(normalized):
            raise harness.CommandFailed("the hand-assembled JWK %s has a kid that is not its thumbprint" % jwk["kid"])


def run(quick, rng, sizes=None, sides=None, key_labels=None, pipelining=True, progress=None):
    harness.import_collection()
    crypto_version = ensure_community_crypto()
    sizes = sizes or ((2, 4) if quick else (10, 25, 50))
    sides = sides or ("edge_keys", "edge_keys_keys_only", "community.crypto")
    key_labels = key_labels or ("EC P-256",)
    work = os.path.join(harness.WORK_DIR, "fleet")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    runs = []
    for key_label in key_labels:
        playbooks = _write_playbooks(os.path.join(work), key_label)
        # Smallest fleet first, so that an interrupted run still has the small sizes.
        for size in sorted(sizes):
            inventory = os.path.join(work, "inventory-%d.ini" % size)
            harness.write_inventory(inventory, harness.host_names(size), sys.executable)
            order = list(sides)
            rng.shuffle(order)
            bases = {}
            for phase in ("first", "rerun"):
                for side in order:
                    base = bases.setdefault(side, os.path.join(work, "%s-%s-%d" % (
                        side.replace(".", "_"), key_label.replace(" ", "_"), size)))
                    if phase == "first":
                        shutil.rmtree(base, ignore_errors=True)
                        os.makedirs(base)
                    timing = os.path.join(work, "timing.json")
                    env = harness.ansible_env(extra_collections=[BENCH_COLLECTIONS], timing_file=timing,
                                              ANSIBLE_PIPELINING="true" if pipelining else "false")
                    harness.log("fleet: %s %s N=%d %s run" % (side, key_label, size, phase))
                    seconds, cpu, output = harness.run_measured(
                        ["ansible-playbook", "-i", inventory, "-f", str(size), "-e", "bench_base=%s" % base,
                         playbooks[side]], env=env, cwd=work)
                    changed = _recap_changed(output)
                    if phase == "rerun" and changed:
                        harness.log("fleet: %s re-run on %d hosts reported changed=%d (not idempotent)"
                                    % (side, size, changed))
                    _check_jwks(os.path.join(base, "jwks.json"), size)
                    if side == "community.crypto" and phase == "first":
                        _verify_crypto_jwks(os.path.join(base, "jwks.json"))
                    with open(timing, encoding="utf-8") as handle:
                        tasks = json.load(handle)
                    runs.append({"key": key_label, "hosts": size, "side": side, "phase": phase,
                                 "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "changed": changed,
                                 "slowest_tasks": sorted(({"task": t["task"], "seconds": round(t["seconds"], 3)}
                                                          for t in tasks), key=lambda t: -t["seconds"])[:6]})
            if progress is not None:
                progress(_result(crypto_version, pipelining, runs))
    return _result(crypto_version, pipelining, runs)


def _result(crypto_version, pipelining, runs):
    return {"community_crypto_version": crypto_version, "pipelining": pipelining, "forks": "N (one per host)",
            "runs": list(runs), "comparisons": compare(runs)}


def compare(runs):
    """Ratios edge_keys side / community.crypto per key type, size and phase (CPU time and wall time)."""
    by = dict(((r["key"], r["hosts"], r["side"], r["phase"]), r) for r in runs)
    rows = []
    for (key_label, size, side, phase), run in sorted(by.items()):
        if side == "community.crypto":
            continue
        base = by.get((key_label, size, "community.crypto", phase))
        if base is None:
            continue
        target = TARGETS.get((side, phase))
        value = harness.ratio(run["cpu_seconds"], base["cpu_seconds"])
        rows.append({"key": key_label, "hosts": size, "side": side, "phase": phase,
                     "cpu_seconds": run["cpu_seconds"], "community_crypto_cpu_seconds": base["cpu_seconds"],
                     "ratio": value, "target": target, "verdict": harness.verdict(value, target),
                     "seconds": run["seconds"], "community_crypto_seconds": base["seconds"],
                     "wall_ratio": harness.ratio(run["seconds"], base["seconds"]),
                     "changed_on_rerun": run["changed"] if phase == "rerun" else None})
    return rows
