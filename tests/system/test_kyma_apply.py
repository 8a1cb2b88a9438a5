# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Role kyma_publish, apply mode, against a local Kubernetes API double.

No Kubernetes cluster runs where these tests run. The double (k8s_api_double.py) serves the
discovery documents and the CRUD that kubernetes.core.k8s / k8s_info and the Python client use,
validates what it stores like the API server would (APIRule: the vendored CRD schema and CEL
rules; built-in kinds: kubernetes-validate), and simulates the Deployment and API Gateway
controllers: an object becomes ready only after a client has read it again, so a role that
does not wait is caught. The real controllers, istiod and the gateway are not involved.

One sequence of runs against one double is recorded once; the tests check its record:
check mode on an empty cluster, first apply, second apply, check mode with a changed JWKS,
apply of the changed JWKS. Two more doubles check the failure paths.
"""

from __future__ import annotations

import json

import pytest
import yaml

import kyma_publish_support as support
from k8s_api_double import KubeApiDouble

#: The role's default namespace for the JWKS server: one of its own, which the role creates.
NAMESPACE = "selfjwt-system"
APIRULE = ("APIRule", "default", "edge-api")
NAMESPACE_OBJECT = ("Namespace", "", NAMESPACE)
NETWORK_POLICY = ("NetworkPolicy", NAMESPACE, "edge-jwks")
CONFIGMAP = ("ConfigMap", NAMESPACE, "edge-jwks")
SERVICE = ("Service", NAMESPACE, "edge-jwks")
PDB = ("PodDisruptionBudget", NAMESPACE, "edge-jwks")
DEPLOYMENT = ("Deployment", NAMESPACE, "edge-jwks")
ISSUER = "http://edge-jwks.%s.svc.cluster.local" % NAMESPACE

#: The kinds of the first apply, in the order the role must create them: the namespace, the
#: policy before the server it fences in, the server, the APIRule last.
APPLY_ORDER = ["Namespace", "NetworkPolicy", "ConfigMap", "Service", "PodDisruptionBudget", "Deployment", "APIRule"]


def _validators():
    check = support.kubernetes_validator()
    validators = dict((kind, check) for kind in APPLY_ORDER if kind != "APIRule")
    validators["APIRule"] = support.ApiRuleValidator()
    return validators


def _setup(workdir, api, hosts, extra_vars=None):
    kubeconfig = api.write_kubeconfig(str(workdir / "kubeconfig"))
    for host, values in hosts.items():
        values.setdefault("edge_keys_token_claims", {"iss": ISSUER, "sub": host})
    inventory = support.write_inventory(workdir / "inventory.yml", hosts)
    role_vars = {"kyma_publish_kubeconfig": kubeconfig, "kyma_publish_wait_sleep": 1,
                 "kyma_publish_wait_timeout": 30}
    role_vars.update(extra_vars or {})
    playbook = workdir / "apply.yml"
    playbook.write_text(yaml.safe_dump([{"name": "publish", "hosts": "localhost", "gather_facts": False,
                                         "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": role_vars}]}]))
    return inventory, playbook


def _store(api):
    return api.snapshot()


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    support.collections_path()
    support.require_crd()
    workdir = tmp_path_factory.mktemp("kyma_apply")
    hosts = support.fleet()[0]
    new_jwk = support.make_public_jwk("ec", "edge-01-next")[1]
    record = {"new_kid": new_jwk["kid"], "hosts": hosts}
    with KubeApiDouble(validators=_validators(), lifetime=900) as api:
        inventory, playbook = _setup(workdir, api, hosts)
        rotate = ["-e", json.dumps({"kyma_publish_extra_keys": [new_jwk]})]

        def step(name, *args):
            start = len(api.events)
            run = support.run_playbook(playbook, inventory, workdir, *args)
            record[name] = {"output": run.stdout, "events": api.events[start:], "store": _store(api),
                            "recap": support.recap(run.stdout)["localhost"]}

        step("check_empty", "--check")
        step("first")
        step("second")
        step("check_change", "--check", "--diff", *rotate)
        step("rotate", *rotate)
        record["requests"] = list(api.requests)
    return record


def _writes(events, dry_run=False):
    return [e for e in events if e["dry_run"] == dry_run and e["verb"] != "ready"]


def _index(events, verb, kind):
    return [i for i, e in enumerate(events) if e["verb"] == verb and e["kind"] == kind]


# --------------------------------------------------------------------------------------
# Check mode on an empty cluster
# --------------------------------------------------------------------------------------

def test_check_mode_uses_server_side_dry_run_and_stores_nothing(sequence):
    step = sequence["check_empty"]
    assert step["recap"]["failed"] == 0, step["output"][-4000:]
    assert step["store"] == {}
    assert _writes(step["events"]) == []
    dry = _writes(step["events"], dry_run=True)
    # The API server cannot dry-run objects in a namespace that does not exist yet (the double
    # refuses them like it does), so the role dry-runs the namespace and the APIRule only, and says so.
    assert [(e["verb"], e["kind"]) for e in dry] == [("create", "Namespace"), ("create", "APIRule")]
    assert "the namespace %s does not exist yet" % NAMESPACE in " ".join(step["output"].split())


# --------------------------------------------------------------------------------------
# First apply
# --------------------------------------------------------------------------------------

def test_first_apply_creates_the_objects_in_order(sequence):
    step = sequence["first"]
    assert step["recap"]["failed"] == 0
    assert step["recap"]["changed"] == len(APPLY_ORDER)
    assert set(step["store"]) == {NAMESPACE_OBJECT, NETWORK_POLICY, CONFIGMAP, SERVICE, PDB, DEPLOYMENT, APIRULE}
    creates = [(e["verb"], e["kind"]) for e in _writes(step["events"])]
    assert creates == [("create", kind) for kind in APPLY_ORDER]


def test_jwks_server_is_available_before_the_apirule_exists(sequence):
    events = sequence["first"]["events"]
    deployment_ready = _index(events, "ready", "Deployment")
    apirule_created = _index(events, "create", "APIRule")
    assert len(deployment_ready) == 1 and len(apirule_created) == 1
    assert _index(events, "create", "Deployment")[0] < deployment_ready[0] < apirule_created[0]


def test_role_waits_until_the_apirule_is_ready(sequence):
    events = sequence["first"]["events"]
    assert _index(events, "ready", "APIRule"), "the role returned before the API Gateway processed the APIRule"
    assert _index(events, "create", "APIRule")[0] < _index(events, "ready", "APIRule")[0]
    assert sequence["first"]["store"][APIRULE]["status"]["state"] == "Ready"


def test_applied_objects_match_the_rendered_templates(sequence):
    store = sequence["first"]["store"]
    namespace = store[NAMESPACE_OBJECT]["metadata"]["labels"]
    assert namespace["istio-injection"] == "disabled"
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    selector = store[DEPLOYMENT]["spec"]["selector"]
    assert store[NETWORK_POLICY]["spec"]["podSelector"] == selector
    assert store[NETWORK_POLICY]["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
         "podSelector": {"matchLabels": {"app": "istiod"}}}]
    assert store[NETWORK_POLICY]["spec"]["egress"] == []
    assert store[PDB]["spec"]["selector"] == selector and store[PDB]["spec"]["maxUnavailable"] == 1
    apirule = store[APIRULE]
    rule = apirule["spec"]["rules"][0]
    assert rule["jwt"]["authentications"] == [{"issuer": ISSUER, "jwksUri": ISSUER + "/.well-known/jwks.json"}]
    assert apirule["spec"]["gateway"] == "kyma-system/kyma-gateway"
    pod = store[DEPLOYMENT]["spec"]["template"]
    assert pod["metadata"]["labels"][support.ISTIO_INJECT] == "false"
    assert pod["metadata"]["annotations"][support.ISTIO_INJECT] == "false"
    jwks = json.loads(store[CONFIGMAP]["data"]["jwks.json"])
    expected = sorted(j["kid"] for h in sequence["hosts"].values() for j in h["edge_keys_public_jwks"])
    assert sorted(k["kid"] for k in jwks["keys"]) == expected
    assert support.private_members_of(jwks) == []


# --------------------------------------------------------------------------------------
# Idempotence
# --------------------------------------------------------------------------------------

def test_second_apply_changes_nothing(sequence):
    step = sequence["second"]
    assert step["recap"]["failed"] == 0
    assert step["recap"]["changed"] == 0, step["output"][-4000:]
    assert _writes(step["events"]) == []
    assert step["store"] == sequence["first"]["store"]


# --------------------------------------------------------------------------------------
# Check mode and diff with a changed JWKS
# --------------------------------------------------------------------------------------

def test_check_mode_with_a_new_key_changes_nothing_and_shows_it(sequence):
    step = sequence["check_change"]
    assert step["recap"]["failed"] == 0
    assert step["recap"]["changed"] == 2
    assert step["store"] == sequence["second"]["store"]
    assert _writes(step["events"]) == []
    dry = [(e["verb"], e["kind"]) for e in _writes(step["events"], dry_run=True)]
    assert dry == [("patch", "ConfigMap"), ("patch", "Deployment")]
    assert sequence["new_kid"] in step["output"]
    assert "last-applied-configuration" not in step["output"]


# --------------------------------------------------------------------------------------
# A changed JWKS (a rotation's staging step) touches the ConfigMap and the pod annotation only
# --------------------------------------------------------------------------------------

def test_changed_jwks_updates_only_the_configmap_and_the_pod_checksum(sequence):
    before, after = sequence["second"]["store"], sequence["rotate"]["store"]
    step = sequence["rotate"]
    assert step["recap"]["failed"] == 0
    assert step["recap"]["changed"] == 2
    writes = [(e["verb"], e["kind"]) for e in _writes(step["events"])]
    assert writes == [("patch", "ConfigMap"), ("patch", "Deployment")]
    for key in (APIRULE, SERVICE, NAMESPACE_OBJECT, NETWORK_POLICY, PDB):
        assert after[key] == before[key], key

    jwks = json.loads(after[CONFIGMAP]["data"]["jwks.json"])
    assert sequence["new_kid"] in [k["kid"] for k in jwks["keys"]]
    assert after[CONFIGMAP]["data"]["nginx.conf"] == before[CONFIGMAP]["data"]["nginx.conf"]

    old_pod, new_pod = before[DEPLOYMENT]["spec"]["template"], after[DEPLOYMENT]["spec"]["template"]
    key = "selfjwt.kyma/config-sha256"
    assert old_pod["metadata"]["annotations"][key] != new_pod["metadata"]["annotations"][key]
    old_pod, new_pod = json.loads(json.dumps(old_pod)), json.loads(json.dumps(new_pod))
    del old_pod["metadata"]["annotations"][key]
    del new_pod["metadata"]["annotations"][key]
    assert old_pod == new_pod
    old_spec = dict((k, v) for k, v in before[DEPLOYMENT]["spec"].items() if k != "template")
    new_spec = dict((k, v) for k, v in after[DEPLOYMENT]["spec"].items() if k != "template")
    assert old_spec == new_spec


def test_role_waits_for_the_rollout_of_the_new_jwks(sequence):
    events = sequence["rotate"]["events"]
    patched = _index(events, "patch", "Deployment")
    ready = _index(events, "ready", "Deployment")
    assert patched and ready and patched[0] < ready[-1]
    assert sequence["rotate"]["store"][DEPLOYMENT]["status"]["observedGeneration"] == \
        sequence["rotate"]["store"][DEPLOYMENT]["metadata"]["generation"]


def test_client_discovered_the_apis_it_uses(sequence):
    paths = set(r["path"] for r in sequence["requests"])
    assert {"/version", "/apis", "/api/v1", "/apis/apps/v1", "/apis/networking.k8s.io/v1", "/apis/policy/v1",
            "/apis/gateway.kyma-project.io/v2"} <= paths


# --------------------------------------------------------------------------------------
# Failure paths
# --------------------------------------------------------------------------------------

def test_apirule_is_not_applied_while_the_jwks_server_is_unavailable(tmp_path):
    support.collections_path()
    hosts = support.fleet(("ec",))[0]
    with KubeApiDouble(validators=_validators(), never_ready={"Deployment"}, lifetime=300) as api:
        inventory, playbook = _setup(tmp_path, api, hosts, {"kyma_publish_wait_timeout": 3})
        run = support.run_playbook(playbook, inventory, tmp_path, expect_rc=2)
        assert "did not become available within 3 seconds" in " ".join(run.stdout.split())
        assert api.get_object(*APIRULE) is None
        assert api.get_object(*DEPLOYMENT) is not None


def test_apirule_in_error_fails_with_the_gateway_description(tmp_path):
    support.collections_path()
    hosts = support.fleet(("ec",))[0]
    description = "Validation error: Attribute 'spec.rules[0].jwt': issuer is not reachable"
    with KubeApiDouble(validators=_validators(), apirule_state="Error", apirule_description=description,
                       lifetime=300) as api:
        inventory, playbook = _setup(tmp_path, api, hosts)
        run = support.run_playbook(playbook, inventory, tmp_path, expect_rc=2)
        text = " ".join(run.stdout.split())
        assert "APIRule default/edge-api is Error: " + description in text
        assert api.get_object(*APIRULE)["status"]["state"] == "Error"


def test_objects_are_not_applied_into_a_namespace_that_does_not_exist(tmp_path):
    """Without the role's Namespace (kyma_publish_jwks_namespace_create=false) the namespace must exist: the
    API server (and the double) refuses the first object in it, and nothing after it is applied."""
    support.collections_path()
    hosts = support.fleet(("ec",))[0]
    with KubeApiDouble(validators=_validators(), lifetime=300) as api:
        inventory, playbook = _setup(tmp_path, api, hosts, {"kyma_publish_jwks_namespace_create": False})
        run = support.run_playbook(playbook, inventory, tmp_path, expect_rc=2)
        assert 'namespaces \\"%s\\" not found' % NAMESPACE in run.stdout or \
            'namespaces "%s" not found' % NAMESPACE in run.stdout, run.stdout[-4000:]
        assert api.snapshot() == {}
