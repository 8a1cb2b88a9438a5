# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The demo flow with every edge host's key in a SoftHSM2 token (edge_keys_key_backend=pkcs11).

The demo inventory plus an overlay that gives edge-01..03 a token each (one SoftHSM2 store in a
temporary directory, made fresh for this run) and a PIN file each. Then:

* demo.yml (edge hosts, cluster render, the gateway stand-in, the smoke test from every host
  with each token source: jwt_token, the refresher's file and the refresher command) passes
  every check; a second site.yml run changes nothing;
* no private key reaches a file: nothing under the demo directory holds a private key, and
  every key object in the tokens is sensitive and not extractable;
* each host's refresher token verifies against the rendered JWKS with node jose and with
  jsonwebtoken + jwks-rsa (Ed25519 with jose only: jsonwebtoken has no EdDSA);
* the PIN appears in no playbook output (-vvv --diff);
* a rotation (rotate.yml) moves every host to a new key in its token, and the smoke test passes
  with the new keys.
"""

import json
import os
import re
import subprocess

import pytest

from conftest import DemoWork, demo_missing, node_verifier_missing, node_verify  # pylint: disable=import-error
from helpers import recap  # pylint: disable=import-error
from tokens import SoftHSMToken, TokenUnavailable  # pylint: disable=import-error

pkcs11 = pytest.importorskip("pkcs11")

HOSTS = ("edge-01", "edge-02", "edge-03")
ROTATION_VARS = {"edge_keys_token_lifetime": 4, "edge_keys_token_max_lifetime": 4, "edge_keys_token_refresh_margin": 2,
                 "edge_keys_rotation_propagation_window": 2, "edge_keys_rotation_clock_skew": 1,
                 "selfjwt_rotation_action": "rotate", "selfjwt_rotation_wait": True}
CHECKS = ["no_token", "unknown_key", "bad_signature", "expired", "wrong_issuer", "valid"]
OVERLAY = """---
edge:
  vars:
    edge_keys_key_backend: pkcs11
    edge_keys_pkcs11_uri: "pkcs11:token={{ inventory_hostname }};object=jwt-signing;type=private?module-path=%(module)s"
    edge_keys_pkcs11_pin_file: "%(pins)s/{{ inventory_hostname }}.pin"
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    reason = demo_missing()
    if reason:
        pytest.skip(reason)
    work = str(tmp_path_factory.mktemp("hsm-demo"))
    try:
        store = SoftHSMToken(work, label=HOSTS[0])
        for host in HOSTS[1:]:
            store.init_token(host)
    except TokenUnavailable as exc:
        pytest.fail("SoftHSM2 is part of the test environment (scripts/system-packages.sh): %s" % exc)
    pins = os.path.join(work, "pins")
    os.makedirs(pins)
    for host in HOSTS:
        store.pin_file(os.path.join(pins, host + ".pin"))
    demo = DemoWork(work)
    overlay = os.path.join(work, "hsm.yml")
    with open(overlay, "w", encoding="utf-8") as handle:
        handle.write(OVERLAY % {"module": store.module_path, "pins": pins})
    # Without the passphrase overlay of the shared demo (a token key has none).
    demo.inventory = [demo.inventory[0], demo.inventory[1], "-i", overlay]
    demo.env.update(store.env)
    demo.play("demo", [demo.playbook("demo.yml")], 0o022)
    with open(os.path.join(demo.out, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    demo.play("second", [demo.playbook("site.yml")], 0o022)
    phases = {"before": _phase(demo, "before", summary, store)}

    # A whole rotation (short windows), then the demo again: the smoke test with the new keys.
    demo.play("rotate", [demo.playbook("rotate.yml")], 0o022, "-e", json.dumps(ROTATION_VARS))
    rings = dict((host, _ring(demo, host)) for host in HOSTS)
    demo.play("after-rotation", [demo.playbook("demo.yml")], 0o022)
    with open(os.path.join(demo.out, "summary.json"), encoding="utf-8") as handle:
        rotated = json.load(handle)
    phases["rotated"] = _phase(demo, "rotated", rotated, store)
    return {"demo": demo, "store": store, "summary": summary, "phases": phases, "rings": rings, "rotated": rotated}


def _phase(demo, name, summary, store):
    """The JWKS rendered now (a copy) and the hosts' current tokens, for the node verifiers."""
    jwks = os.path.join(demo.work, "jwks-%s.json" % name)
    with open(os.path.join(demo.out, "manifests", "jwks.json"), "rb") as source, open(jwks, "wb") as target:
        target.write(source.read())
    return {"jwks": jwks, "cases": _refresher_cases(summary, store)}


def _ring(demo, host):
    with open(os.path.join(demo.out, "hosts", host, "keys", "signing.pem.ring.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _private_keys(store):
    """{token label: [(label, extractable, sensitive)]} of every private key object in the store."""
    library = pkcs11.lib(store.module_path)
    library.reinitialize()
    found = {}
    for token in library.get_tokens():
        if not token.label:
            continue
        with token.open(user_pin=store.pin) as session:
            found[token.label] = sorted(
                (obj[pkcs11.Attribute.LABEL], obj[pkcs11.Attribute.EXTRACTABLE], obj[pkcs11.Attribute.SENSITIVE])
                for obj in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}))
    return found


def test_every_smoke_check_passes_with_token_keys(fleet, monkeypatch):
    summary = fleet["summary"]
    assert [host["host"] for host in summary["hosts"]] == list(HOSTS)
    assert sorted(host["token_source"] for host in summary["hosts"]) == ["command", "mint", "refresher"]
    for host in summary["hosts"]:
        assert host["key_path"] is None, host
        assert [(result["check"], result["ok"]) for result in host["smoke_test"]] == [(c, True) for c in CHECKS], host
    assert sorted(host["algorithm"] for host in summary["hosts"]) == ["ES256", "EdDSA", "RS256"]


def test_the_second_run_changes_nothing(fleet):
    counts = recap(fleet["demo"].runs["second"]["stdout"])
    assert all(count["changed"] == 0 and count["failed"] == 0 for count in counts.values()), counts


def test_no_private_key_on_disk_and_none_extractable(fleet, monkeypatch):
    # A PEM private key block, not the words (the refresher's installed code names them).
    pem_private_key = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    for root, _dirs, files in os.walk(fleet["demo"].out):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                assert not pem_private_key.search(handle.read()), os.path.join(root, name)
    monkeypatch.setenv("SOFTHSM2_CONF", fleet["store"].env["SOFTHSM2_CONF"])
    objects = _private_keys(fleet["store"])
    assert sorted(objects) == sorted(HOSTS)
    for host in HOSTS:
        assert objects[host] == [("jwt-signing", False, True)], objects


def test_the_pin_is_in_no_output(fleet):
    pin = fleet["store"].pin
    for name, run in fleet["demo"].runs.items():
        assert pin not in run["stdout"] and pin not in run["stderr"], name


def _refresher_cases(summary, store):
    """Node verifier cases: each host's token from its refresher command, and a tampered one."""
    env = dict(os.environ, **store.env)
    cases = []
    for host in summary["hosts"]:
        done = subprocess.run([host["refresher_command"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        token = done.stdout.decode("ascii").strip()
        assert re.match(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$", token)
        cases.append({"id": host["host"], "token": token, "issuer": summary["issuer"], "audience": "edge-api",
                      "algorithms": [host["algorithm"]], "kid": host["kid"]})
    # A control case that must fail: edge-01's token with edge-02's signature.
    head, body, _sig = cases[0]["token"].split(".")
    cases.append(dict(cases[0], id="tampered", token="%s.%s.%s" % (head, body, cases[1]["token"].split(".")[2])))
    return cases


@pytest.mark.parametrize("phase", ["before", "rotated"])
@pytest.mark.parametrize("script", ["verify_jose.mjs", "verify_jsonwebtoken.js"])
def test_node_validators_accept_the_token_keys_signatures(fleet, script, phase):
    reason = node_verifier_missing()
    if reason:
        pytest.skip(reason)
    cases = fleet["phases"][phase]["cases"]
    if script == "verify_jsonwebtoken.js":
        cases = [case for case in cases if case["algorithms"] != ["EdDSA"]]
    results = node_verify(script, fleet["phases"][phase]["jwks"],
                          [dict((k, v) for k, v in case.items() if k != "kid") for case in cases],
                          fleet["demo"].work)
    for case in cases:
        if case["id"] == "tampered":
            assert results["tampered"]["valid"] is False
            continue
        verdict = results[case["id"]]
        assert verdict["valid"] is True, (case["id"], verdict)
        assert verdict["header"]["kid"] == case["kid"] and verdict["claims"]["sub"] == case["id"]


def test_rotation_moves_every_host_to_a_new_key_in_its_token(fleet, monkeypatch):
    first = dict((host["host"], host["kid"]) for host in fleet["summary"]["hosts"])
    rotated = dict((host["host"], host["kid"]) for host in fleet["rotated"]["hosts"])
    for host in HOSTS:
        ring = fleet["rings"][host]
        states = dict((entry["kid"], entry["state"]) for entry in ring["keys"])
        assert states.get(first[host]) == "retired" and states.get(rotated[host]) == "active", (host, states)
        assert rotated[host] != first[host]
    # The old keys were destroyed (keep_retired_keys is false): one key pair per token, the new one.
    monkeypatch.setenv("SOFTHSM2_CONF", fleet["store"].env["SOFTHSM2_CONF"])
    objects = _private_keys(fleet["store"])
    assert all(objects[host] == [("jwt-signing", False, True)] for host in HOSTS), objects


def test_the_smoke_test_passes_with_the_rotated_keys(fleet):
    for host in fleet["rotated"]["hosts"]:
        assert [(result["check"], result["ok"]) for result in host["smoke_test"]] == [(c, True) for c in CHECKS], host
    with open(os.path.join(fleet["demo"].out, "manifests", "jwks.json"), encoding="utf-8") as handle:
        published = set(key["kid"] for key in json.load(handle)["keys"])
    assert published == set(host["kid"] for host in fleet["rotated"]["hosts"])
