# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The demo flow (playbooks/demo.yml with playbooks/inventory/demo.yml), end to end.

Uses the shared demo run of conftest.py (``demo_runs``: demo.yml from a snapshot of the
collection, with -vvv --diff under umask 000 and a key passphrase on edge-02; the same run
that test_playbook_security.py scans), then checks:

* every edge host passed every smoke check against the gateway stand-in;
* both stand-in servers were stopped;
* a second run of the edge and cluster part (``site.yml``; the smoke test skips itself
  without ``smoke_test_url``) reports ``changed=0`` for every host;
* the JWKS the demo rendered, served over HTTP, verifies each host's token with node
  ``jose`` (tests/interop/verify_jose.mjs), an implementation independent of the collection
  and of the stand-in.
"""

import json
import os
import re
import socket
import sys

import pytest

from conftest import node_verifier_missing, node_verify  # noqa: E402  pylint: disable=import-error
from helpers import REPO, recap  # noqa: E402  pylint: disable=import-error

DEFAULT_CHECKS = ["no_token", "unknown_key", "bad_signature", "expired", "wrong_issuer", "valid"]


@pytest.fixture(scope="module")
def demo(demo_runs):
    """The shared demo run in the shape these tests read it."""
    return {"dir": demo_runs["out"], "workdir": demo_runs["work"], "first": demo_runs["runs"]["demo"]["stdout"],
            "second": demo_runs["runs"]["second"]["stdout"], "summary": demo_runs["summary"],
            "refresher_tokens": demo_runs["refresher_tokens"]}


def test_demo_succeeds_for_every_host(demo):
    hosts = recap(demo["first"])
    assert set(hosts) == {"edge-01", "edge-02", "edge-03", "localhost"}
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in hosts.values()), hosts
    assert "LOCAL STAND-IN" in demo["first"]


def test_every_smoke_check_passed(demo):
    summary = demo["summary"]
    assert [host["host"] for host in summary["hosts"]] == ["edge-01", "edge-02", "edge-03"]
    assert sorted(host["token_source"] for host in summary["hosts"]) == ["command", "mint", "refresher"]
    assert len({host["kid"] for host in summary["hosts"]}) == 3
    for host in summary["hosts"]:
        results = host["smoke_test"]
        assert [result["check"] for result in results] == DEFAULT_CHECKS, host
        assert all(result["ok"] for result in results), host
        expected = dict((result["check"], result["got"]) for result in results)
        assert expected == {"no_token": 403, "unknown_key": 401, "bad_signature": 401, "expired": 401,
                            "wrong_issuer": 401, "valid": 200}


def test_no_token_reaches_the_output(demo):
    for name in ("first", "second"):
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.", demo[name]), name
    with open(os.path.join(demo["dir"], "summary.json"), encoding="utf-8") as handle:
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", handle.read())


def test_manifests_were_rendered(demo):
    manifests = os.path.join(demo["dir"], "manifests")
    for name in ("apirule.yaml", "jwks.json", "jwks-configmap.yaml", "jwks-deployment.yaml", "jwks-service.yaml"):
        assert os.path.isfile(os.path.join(manifests, name)), name
    sys.path.insert(0, REPO)
    from tools.kyma_standin.apirule import load_apirule  # pylint: disable=import-outside-toplevel
    rule = load_apirule(os.path.join(manifests, "apirule.yaml"))
    assert rule.api_version == "gateway.kyma-project.io/v2"
    with open(os.path.join(manifests, "jwks.json"), encoding="utf-8") as handle:
        kids = sorted(key["kid"] for key in json.load(handle)["keys"])
    assert kids == sorted(host["kid"] for host in demo["summary"]["hosts"])


def test_stand_in_was_stopped(demo):
    standin = os.path.join(demo["dir"], "standin")
    assert not os.path.exists(os.path.join(standin, "gateway.pid"))
    assert not os.path.exists(os.path.join(standin, "jwks-server.pid"))
    port = int(demo["summary"]["gateway_url"].rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_second_run_changes_nothing(demo):
    hosts = recap(demo["second"])
    assert set(hosts) == {"edge-01", "edge-02", "edge-03", "localhost"}
    changed = dict((host, counts["changed"]) for host, counts in hosts.items() if counts["changed"])
    assert not changed, "second run of edge.yml + cluster.yml changed: %s" % changed


def test_served_jwks_verifies_the_demo_tokens_with_node_jose(demo):
    reason = node_verifier_missing()
    if reason:
        pytest.skip(reason)
    summary = demo["summary"]
    cases = []
    for host in summary["hosts"]:
        # The refresher command printed the host's current token (fresh, or renewed if needed)
        # right after the second run, before test_playbook_security.py's rotation replaces a key.
        returncode, token, stderr = demo["refresher_tokens"][host["host"]]
        assert returncode == 0, stderr
        cases.append({"id": host["host"], "token": token, "issuer": summary["issuer"], "audience": "edge-api",
                      "algorithms": [host["algorithm"]]})
    # A control case that must fail: the first token with another host's signature.
    head, body, _sig = cases[0]["token"].split(".")
    cases.append(dict(cases[0], id="tampered", token="%s.%s.%s" % (head, body, cases[1]["token"].split(".")[2])))

    results = node_verify("verify_jose.mjs", os.path.join(demo["dir"], "manifests", "jwks.json"), cases,
                          demo["workdir"])
    for host in summary["hosts"]:
        verdict = results[host["host"]]
        assert verdict["valid"] is True, verdict
        assert verdict["header"]["kid"] == host["kid"] and verdict["claims"]["sub"] == host["host"]
    assert results["tampered"]["valid"] is False
