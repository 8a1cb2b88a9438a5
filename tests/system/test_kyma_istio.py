# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kyma_publish_api=istio: the rendered RequestAuthentication and AuthorizationPolicy.

* rendered by the role (one playbook, several cases), valid against the vendored Istio CRDs
  (``v1`` openAPIV3Schema, strict, plus their CEL rules mirrored in Python);
* enforced by the gateway stand-in (tools/kyma_standin/istio.py) as Envoy does: no token 403,
  bad token 401, ``requestPrincipals`` ``<iss>/*`` needs ``sub``, ``when`` on audiences and
  scopes, paths and methods, the gateway's Host match;
* the demo flow with ``-e kyma_publish_api=istio``: the same smoke test passes on every host.

No Istio runs here: the CRD schemas and the stand-in are the judges.
"""

from __future__ import annotations

import copy
import email.message
import json
import os
import re
import sys
import time
from pathlib import Path

import jwt as pyjwt
import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import kyma_publish_support as support  # noqa: E402  pylint: disable=wrong-import-position,import-error

sys.path.insert(0, str(support.REPO))
from tools.kyma_standin import envoy_jwt  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.apirule import ApiRuleError  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.gateway import Gateway  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.istio import IstioPolicy, load_istio  # noqa: E402  pylint: disable=wrong-import-position

ISTIO_SCHEMAS = support.SHARED_DIR / "schemas" / "istio"
RA_CRD = ISTIO_SCHEMAS / "requestauthentications.security.istio.io.yaml"
AP_CRD = ISTIO_SCHEMAS / "authorizationpolicies.security.istio.io.yaml"
ISTIO_FILES = ("requestauthentication.yaml", "authorizationpolicy.yaml")
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
RBAC = "RBAC: access denied"

#: name -> (role variables, rendered files expected besides the JWKS server's)
CASES = {
    "workload": {"kyma_publish_api": "istio", "kyma_publish_audiences": ["edge-api"],
                 "kyma_publish_apirule_rules": [
                     {"path": "/health", "methods": ["GET"], "authorizations": []},
                     {"path": "/api/{*}/items", "methods": ["GET", "POST"]},
                     {"path": "/admin/{**}", "methods": ["GET"],
                      "authorizations": [{"audiences": ["edge-api"], "requiredScopes": ["admin"]}]}]},
    "sharded-gateway": {"kyma_publish_api": "istio", "kyma_publish_istio_target": "gateway",
                        "kyma_publish_apirule_host": "edge-api.example.com", "kyma_publish_shard_count": 2,
                        "kyma_publish_audiences": ["edge-api"]},
    "target-refs": {"kyma_publish_api": "istio", "kyma_publish_istio_target": "gateway",
                    "kyma_publish_apirule_host": "*.example.com", "kyma_publish_istio_namespace": "edge",
                    "kyma_publish_istio_target_refs": [
                        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
                    "kyma_publish_audiences": ["edge-api"]},
}


# --------------------------------------------------------------------------------------
# The CRDs: v1 openAPIV3Schema (strict) plus their CEL rules, mirrored
# --------------------------------------------------------------------------------------

#: Every CEL rule of the two CRDs' v1 schemas, by path; crd_rules() fails when the CRDs change.
CEL_RULES = {
    "spec": "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
    "spec.selector.matchLabels": ['self.all(key, !key.contains("*"))', "self.all(key, key.size() != 0)"],
    "spec.selector.matchLabels.additionalProperties": '!self.contains("*")',
    "spec.targetRef.namespace": "self.size() == 0",
    "spec.targetRefs.items.namespace": "self.size() == 0",
    # RequestAuthentication only
    "spec.jwtRules.items": "(has(self.jwksUri) ? 1 : 0) + (has(self.jwks_uri) ? 1 : 0) + (has(self.jwks) ? 1 : 0) <= 1",
    "spec.jwtRules.items.jwks_uri": 'url(self).getScheme() in ["http", "https"]',
    "spec.jwtRules.items.jwksUri": 'url(self).getScheme() in ["http", "https"]',
    "spec.jwtRules.items.timeout": "duration(self) >= duration('1ms')",
    # AuthorizationPolicy only
    "spec.rules.items.from.items.source": (
        "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) &&\n"
        "!has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true"),
}


def _v1_schema(crd):
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1")


def crd_rules(crd):
    found = []
    support._walk_validations(_v1_schema(crd), (), found)  # pylint: disable=protected-access
    rules = {}
    for path, rule in found:
        key = ".".join(p for p in path if p != "properties")
        rules.setdefault(key, []).append(rule)
    for key, values in rules.items():
        expected = CEL_RULES.get(key)
        assert (values if isinstance(expected, list) else values[0]) == expected and (
            isinstance(expected, list) or len(values) == 1), "Istio CEL rule changed at %s: %s" % (key, values)
    return rules


def cel_errors(obj):
    """The CEL rules above, in Python."""
    problems = []
    spec = obj.get("spec") or {}
    if sum(1 for field in ("selector", "targetRef", "targetRefs") if field in spec) > 1:
        problems.append("spec: only one of targetRefs or selector can be set")
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    for key, value in labels.items():
        if "*" in key or not key:
            problems.append("spec.selector.matchLabels: bad key %r" % key)
        if "*" in str(value):
            problems.append("spec.selector.matchLabels: wildcard in value %r" % value)
    refs = list(spec.get("targetRefs") or []) + ([spec["targetRef"]] if "targetRef" in spec else [])
    for ref in refs:
        if ref.get("namespace"):
            problems.append("targetRefs: cross namespace referencing is not currently supported")
    for index, rule in enumerate(spec.get("jwtRules") or []):
        if sum(1 for field in ("jwksUri", "jwks_uri", "jwks") if field in rule) > 1:
            problems.append("jwtRules[%d]: only one of jwks or jwksUri can be set" % index)
        for field in ("jwksUri", "jwks_uri"):
            if field in rule and not re.match(r"^https?://", rule[field]):
                problems.append("jwtRules[%d].%s: url must have scheme http:// or https://" % (index, field))
        if "timeout" in rule:
            problems.append("jwtRules[%d].timeout: not rendered by the role" % index)
    for index, rule in enumerate(spec.get("rules") or []):
        for source in (item.get("source") or {} for item in rule.get("from") or []):
            if ("serviceAccounts" in source or "notServiceAccounts" in source) and any(
                    f in source for f in ("principals", "notPrincipals", "namespaces", "notNamespaces")):
                problems.append("rules[%d]: Cannot set serviceAccounts with namespaces or principals" % index)
    return problems


class IstioValidator:
    def __init__(self):
        import jsonschema

        for path in (RA_CRD, AP_CRD):
            if not path.is_file():
                pytest.skip("the vendored Istio CRD %s is absent (set SELFJWT_SHARED_DIR)" % path)
        self.validators = {}
        for kind, path in (("RequestAuthentication", RA_CRD), ("AuthorizationPolicy", AP_CRD)):
            crd = yaml.safe_load(path.read_text())
            crd_rules(crd)
            schema = support._structural(copy.deepcopy(_v1_schema(crd)))  # pylint: disable=protected-access
            # The API server supplies what every object has (the CRD lists spec and status only).
            schema["properties"].update(apiVersion={"type": "string"}, kind={"type": "string"},
                                        metadata={"type": "object"})
            self.validators[kind] = jsonschema.Draft7Validator(schema)

    def errors(self, obj):
        if obj.get("apiVersion") != "security.istio.io/v1":
            return ["apiVersion %r is not security.istio.io/v1" % obj.get("apiVersion")]
        validator = self.validators[obj["kind"]]
        problems = ["%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
                    for error in validator.iter_errors(obj)]
        return problems + cel_errors(obj)


@pytest.fixture(scope="module")
def validator():
    return IstioValidator()


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{case: {file name: object}}: each case rendered by the role, against the same inventory."""
    work = tmp_path_factory.mktemp("istio")
    hosts, keys = support.fleet()
    inventory = support.write_inventory(work / "inventory.yml", hosts)
    out = work / "out"
    play = work / "render.yml"
    play.write_text(yaml.safe_dump([
        {"name": name, "hosts": "localhost", "gather_facts": False, "roles": [
            {"role": "selfjwt.kyma.kyma_publish", "vars": dict(values, kyma_publish_mode="render",
                                                               kyma_publish_output_dir=str(out / name))}]}
        for name, values in CASES.items()]))
    support.run_playbook(play, inventory, work)
    found = {}
    for name in CASES:
        found[name] = dict((path.name, support.load_manifest(path)) for path in sorted((out / name).glob("*.yaml")))
    return {"objects": found, "keys": keys, "hosts": hosts, "out": out}


def test_rendered_manifests_are_block_yaml_that_yamllint_accepts(rendered):
    files = sorted(rendered["out"].glob("*/*.yaml"))
    assert len(files) > 8 * len(CASES)
    assert support.yamllint_problems(files) == []


def test_istio_files_replace_the_apirule_and_the_server_stays(rendered):
    for name, objects in rendered["objects"].items():
        assert "apirule.yaml" not in objects, name
        assert set(ISTIO_FILES) <= set(objects), name
        for server in ("jwks-configmap.yaml", "jwks-deployment.yaml", "jwks-service.yaml", "jwks-pdb.yaml"):
            assert server in objects, (name, server)
        kustomization = objects["kustomization.yaml"]["resources"]
        assert kustomization[-2:] == list(ISTIO_FILES), name


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_policies_are_valid_against_the_istio_crds(rendered, validator, case):
    for name in ISTIO_FILES:
        obj = rendered["objects"][case][name]
        assert validator.errors(obj) == [], (case, name, support.dump_json(obj))


def test_the_validator_rejects_what_the_api_server_would(rendered, validator):
    ra = rendered["objects"]["workload"]["requestauthentication.yaml"]
    ap = rendered["objects"]["workload"]["authorizationpolicy.yaml"]
    mutations = [
        (ra, lambda o: o["spec"].update(targetRefs=[{"kind": "Gateway", "name": "g"}])),
        (ra, lambda o: o["spec"]["jwtRules"][0].update(jwksUri="ftp://x/jwks.json")),
        (ra, lambda o: o["spec"]["jwtRules"][0].update(jwks="{}")),
        (ra, lambda o: o["spec"]["jwtRules"][0].update(forwardOriginalToken="yes")),
        (ap, lambda o: o["spec"].update(action="PERMIT")),
        (ap, lambda o: o["spec"]["selector"]["matchLabels"].update({"app": "edge-*"})),
        (ap, lambda o: o["spec"]["rules"][0]["to"][0]["operation"].update(path="/x")),
        (ap, lambda o: o["spec"]["rules"][0]["from"][0]["source"].update(serviceAccounts=["a"], principals=["b"])),
        (ap, lambda o: o.update(apiVersion="security.istio.io/v1alpha3")),
    ]
    for original, mutate in mutations:
        obj = copy.deepcopy(original)
        mutate(obj)
        assert validator.errors(obj), support.dump_json(obj)


def test_request_authentication_names_every_issuer_as_the_apirule_would(rendered):
    ra = rendered["objects"]["sharded-gateway"]["requestauthentication.yaml"]
    rules = ra["spec"]["jwtRules"]
    assert len(rules) == 2 and all(rule["forwardOriginalToken"] is True for rule in rules)
    assert all(rule["issuer"].startswith(ISSUER + "/shards/") for rule in rules)
    assert [rule["jwksUri"] for rule in rules] == [rule["issuer"] + "/.well-known/jwks.json" for rule in rules]
    assert ra["metadata"]["namespace"] == "istio-system"
    assert ra["spec"]["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    ap = rendered["objects"]["sharded-gateway"]["authorizationpolicy.yaml"]
    assert ap["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] == [r["issuer"] + "/*" for r in rules]
    assert ap["spec"]["rules"][0]["to"][0]["operation"]["hosts"] == ["edge-api.example.com", "edge-api.example.com:*"]


def test_target_refs_are_rendered_instead_of_the_selector(rendered):
    for name in ISTIO_FILES:
        spec = rendered["objects"]["target-refs"][name]["spec"]
        assert "selector" not in spec
        assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}]
        assert rendered["objects"]["target-refs"][name]["metadata"]["namespace"] == "edge"


# --------------------------------------------------------------------------------------
# The stand-in enforces the rendered policies
# --------------------------------------------------------------------------------------

class _Store:
    def __init__(self, jwks_of):
        self.jwks_of = jwks_of

    def get(self, issuer):
        jwks = self.jwks_of.get(issuer)
        return envoy_jwt.parse_jwks(json.dumps(jwks)) if jwks is not None else None


def _token(key, kid, alg, **claims):
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "edge-01", "aud": "edge-api", "iat": now, "exp": now + 300}
    payload.update(claims)
    payload = dict((name, value) for name, value in payload.items() if value is not None)
    return pyjwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def _headers(token=None, host=None):
    headers = email.message.Message()
    if token:
        headers["Authorization"] = "Bearer " + token
    if host:
        headers["Host"] = host
    return headers


@pytest.fixture(scope="module")
def workload_gateway(rendered):
    out = rendered["out"] / "workload"
    policy = load_istio([str(out / name) for name in ISTIO_FILES])
    jwks = json.loads((out / "jwks.json").read_text())
    return Gateway(policy, _Store({ISSUER: jwks}))


def _ec(rendered):
    return rendered["keys"]["edge-01-ec"], "edge-01-ec", "ES256"


@pytest.mark.parametrize("name,method,path,claims,token,status,body", [
    ("no token on an open rule", "GET", "/health", None, False, 403, RBAC),
    ("valid token, open rule", "GET", "/health", {}, True, 200, None),
    ("no token", "GET", "/api/x/items", None, False, 403, RBAC),
    ("valid", "GET", "/api/x/items", {}, True, 200, None),
    ("two segments are not {*}", "GET", "/api/x/y/items", {}, True, 403, RBAC),
    ("method not in the rule", "DELETE", "/api/x/items", {}, True, 403, RBAC),
    ("wrong audience", "POST", "/api/x/items", {"aud": "other"}, True, 403, RBAC),
    ("audience in a list", "POST", "/api/x/items", {"aud": ["other", "edge-api"]}, True, 200, None),
    ("no sub", "GET", "/api/x/items", {"sub": None}, True, 403, RBAC),
    ("empty sub", "GET", "/api/x/items", {"sub": ""}, True, 403, RBAC),
    ("expired", "GET", "/api/x/items", {"exp": 1000}, True, 401, "Jwt is expired"),
    ("unknown issuer", "GET", "/api/x/items", {"iss": "https://other.example"}, True, 401,
     "Jwt issuer is not configured"),
    ("scope missing", "GET", "/admin/users", {}, True, 403, RBAC),
    ("scope in scope (space separated)", "GET", "/admin/users", {"scope": "read admin"}, True, 200, None),
    ("scope in scp (list)", "GET", "/admin/users/1", {"scp": ["admin"]}, True, 200, None),
    ("scope but wrong audience", "GET", "/admin/users", {"scope": "admin", "aud": "x"}, True, 403, RBAC),
    ("no rule for the path", "GET", "/other", {}, True, 403, RBAC),
])
def test_stand_in_enforces_the_rendered_workload_policies(rendered, workload_gateway, name, method, path,
                                                          claims, token, status, body):
    key, kid, alg = _ec(rendered)
    value = _token(key, kid, alg, **claims) if token else None
    decision = workload_gateway.decide(method, path, _headers(value))
    assert decision.status == status, (name, decision.reason)
    if body:
        assert decision.body == body


def test_bad_signature_and_unknown_kid_get_401(rendered, workload_gateway):
    key, kid, alg = _ec(rendered)
    head, payload, _sig = _token(key, kid, alg).split(".")
    other = _token(rendered["keys"]["edge-02-rsa"], "edge-02-rsa", "RS256").split(".")[2]
    assert workload_gateway.decide("GET", "/health", _headers("%s.%s.%s" % (head, payload, other))).status == 401
    decision = workload_gateway.decide("GET", "/health", _headers(_token(key, "nope", alg)))
    assert (decision.status, decision.body) == (401, "Jwks doesn't have key to match kid or alg from Jwt")


def test_stand_in_matches_the_gateway_host(rendered):
    out = rendered["out"] / "sharded-gateway"
    policy = load_istio([str(out / name) for name in ISTIO_FILES])
    issuers = sorted(policy.authentications)
    jwks_of = dict((issuer, json.loads((out / ("jwks-%s.json" % issuer.rsplit("/", 1)[1])).read_text()))
                   for issuer in issuers)
    gateway = Gateway(policy, _Store(jwks_of))
    # Find the shard of edge-01's key and mint a token with that shard's issuer.
    issuer = next(i for i in issuers if any(k["kid"] == "edge-01-ec" for k in jwks_of[i]["keys"]))
    key, kid, alg = _ec(rendered)
    token = _token(key, kid, alg, iss=issuer)
    assert gateway.decide("GET", "/x", _headers(token, "edge-api.example.com")).status == 200
    assert gateway.decide("GET", "/x", _headers(token, "EDGE-API.example.com:443")).status == 200
    assert gateway.decide("GET", "/x", _headers(token, "other.example.com")).status == 403
    assert gateway.decide("GET", "/x", _headers(None, "edge-api.example.com")).status == 403
    other = next(i for i in issuers if i != issuer)
    # A token of the other shard's issuer does not verify with this key: 401 from jwt_authn.
    assert gateway.decide("GET", "/x", _headers(_token(key, kid, alg, iss=other), "edge-api.example.com")).status == 401


@pytest.mark.parametrize("docs,message", [
    ([{"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication", "spec": {}}], "no AuthorizationPolicy"),
    ([{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "spec": {"action": "DENY"}}],
     "only action ALLOW"),
    ([{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
       "spec": {"rules": [{"from": [{"source": {"principals": ["x"]}}]}]}}], "no mesh identities"),
    ([{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
       "spec": {"rules": [{"when": [{"key": "source.ip", "values": ["1.2.3.4"]}]}]}}], "is not emulated"),
    ([{"apiVersion": "security.istio.io/v1alpha1", "kind": "AuthorizationPolicy", "spec": {}}], "apiVersion"),
])
def test_stand_in_refuses_what_it_does_not_emulate(docs, message):
    with pytest.raises(ApiRuleError) as caught:
        IstioPolicy(docs)
    assert message in str(caught.value)


def test_an_allow_policy_without_rules_denies_everything():
    policy = IstioPolicy([{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "spec": {}}])
    rule, reason = policy.authorize("GET", "/", None)
    assert rule is None and reason


@pytest.mark.parametrize("pattern,principal,matches", [
    ("https://i/*", ("https://i", {"sub": "a"}), True),
    ("https://i/*", ("https://i", {"sub": ""}), False),
    ("https://i/*", ("https://j", {"sub": "a"}), False),
    ("*", ("https://i", {"sub": "a"}), True),
    ("https://i/a", ("https://i", {"sub": "a"}), True),
    ("https://i/a", ("https://i", {"sub": "ab"}), False),
    ("*/a", ("https://j", {"sub": "a"}), True),
])
def test_request_principal_patterns(pattern, principal, matches):
    from tools.kyma_standin.istio import principal_matches  # pylint: disable=import-outside-toplevel
    assert principal_matches(pattern, principal) is matches


# --------------------------------------------------------------------------------------
# Apply mode through kubernetes.core.k8s, against the local API double
# --------------------------------------------------------------------------------------

def test_apply_mode_applies_the_policies_after_the_jwks_server_and_no_apirule(tmp_path, validator):
    from k8s_api_double import KubeApiDouble  # pylint: disable=import-outside-toplevel,import-error

    support.collections_path()
    hosts = support.fleet(("ec",))[0]
    check = support.kubernetes_validator()
    validators = dict((kind, check) for kind in ("Namespace", "NetworkPolicy", "ConfigMap", "Service",
                                                 "PodDisruptionBudget", "Deployment"))

    def istio_check(obj):
        problems = validator.errors(obj)
        if problems:
            raise ValueError("; ".join(problems))

    validators.update(RequestAuthentication=istio_check, AuthorizationPolicy=istio_check,
                      APIRule=support.ApiRuleValidator())
    with KubeApiDouble(validators=validators, lifetime=600) as api:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        inventory = support.write_inventory(tmp_path / "inventory.yml", hosts)
        playbook = tmp_path / "apply.yml"
        playbook.write_text(yaml.safe_dump([{"name": "publish", "hosts": "localhost", "gather_facts": False,
                                             "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": {
                                                 "kyma_publish_kubeconfig": kubeconfig, "kyma_publish_api": "istio",
                                                 "kyma_publish_audiences": ["edge-api"],
                                                 "kyma_publish_wait_sleep": 1, "kyma_publish_wait_timeout": 30}}]}]))
        first = support.run_playbook(playbook, inventory, tmp_path)
        created = [e["kind"] for e in api.events if e["verb"] == "create" and not e["dry_run"]]
        store = api.snapshot()
        start = len(api.events)
        second = support.run_playbook(playbook, inventory, tmp_path)
        again = [e for e in api.events[start:] if e["verb"] != "ready" and not e["dry_run"]]
    assert support.recap(first.stdout)["localhost"]["failed"] == 0
    assert created == ["Namespace", "NetworkPolicy", "ConfigMap", "Service", "PodDisruptionBudget", "Deployment",
                       "RequestAuthentication", "AuthorizationPolicy"]
    ra = store[("RequestAuthentication", "default", "edge-api")]
    ap = store[("AuthorizationPolicy", "default", "edge-api")]
    assert ra["spec"]["jwtRules"] == [{"issuer": ISSUER, "jwksUri": ISSUER + "/.well-known/jwks.json",
                                       "forwardOriginalToken": True}]
    assert ra["spec"]["selector"] == ap["spec"]["selector"] == {"matchLabels": {"app": "edge-api"}}
    assert ap["spec"]["rules"][0]["from"] == [{"source": {"requestPrincipals": [ISSUER + "/*"]}}]
    assert not any(key[0] == "APIRule" for key in store)
    assert support.recap(second.stdout)["localhost"]["changed"] == 0 and again == [], again


# --------------------------------------------------------------------------------------
# The demo flow with the Istio output
# --------------------------------------------------------------------------------------

DEFAULT_CHECKS = {"no_token": 403, "unknown_key": 401, "bad_signature": 401, "expired": 401, "wrong_issuer": 401,
                  "valid": 200}


def test_demo_with_the_istio_output(tmp_path_factory):
    """playbooks/demo.yml -e kyma_publish_api=istio: every host passes the same smoke test."""
    from conftest import DemoWork, demo_missing  # pylint: disable=import-outside-toplevel,import-error

    reason = demo_missing()
    if reason:
        pytest.skip(reason)
    demo = DemoWork(str(tmp_path_factory.mktemp("demo-istio")))
    demo.play("demo-istio", [demo.playbook("demo.yml")], 0o022, "-e", "kyma_publish_api=istio")
    manifests = Path(demo.out) / "manifests"
    assert not (manifests / "apirule.yaml").exists()
    assert all((manifests / name).is_file() for name in ISTIO_FILES)
    with open(os.path.join(demo.out, "standin", "gateway.log"), encoding="utf-8") as handle:
        assert "Istio policies default/edge-api" in handle.read()
    summary = json.loads((Path(demo.out) / "summary.json").read_text())
    assert [host["host"] for host in summary["hosts"]] == ["edge-01", "edge-02", "edge-03"]
    for host in summary["hosts"]:
        got = dict((result["check"], result["got"]) for result in host["smoke_test"])
        assert got == DEFAULT_CHECKS, host
        assert all(result["ok"] for result in host["smoke_test"]), host
