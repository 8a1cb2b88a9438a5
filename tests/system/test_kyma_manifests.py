# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Role kyma_publish, render mode: every rendered object is validated like the API server
would validate it, and the pieces are checked against each other.

* The APIRule against the vendored CRD's v2 openAPIV3Schema (x-kubernetes-* dropped, unknown
  fields refused) plus its CEL rules, mirrored in kyma_publish_support; spec.gateway is set.
* ConfigMap, Deployment and Service with kubernetes-validate (strict) for the Kubernetes
  versions in KUBERNETES_VERSIONS.
* Cross-checks: the APIRule's issuer and jwksUri are the Service's cluster-local URL and the
  path the server's nginx configuration serves from the ConfigMap; the pods stay out of the
  mesh; the JWKS holds exactly the edge hosts' public keys and no private member.
* Bad input is refused by the role itself, with a message, before anything is written.

All variable sets are rendered by one ansible-playbook run (one play per set), whose last play
runs every refusal (one block/rescue per case); a second run renders the sets again (it must
change nothing), and one --check --diff run covers check mode, to keep the test time reasonable.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

import kyma_publish_support as support
from kyma_publish_support import ISTIO_INJECT

DEFAULT_NAMESPACE = "selfjwt-system"
DEFAULT_SERVICE_URL = "http://edge-jwks.%s.svc.cluster.local" % DEFAULT_NAMESPACE
DIGEST = "sha256:" + "0123456789abcdef" * 4
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]

#: Variable sets that must render. "group" picks the inventory group of edge hosts.
CASES = {
    "defaults": {},
    "custom": {
        "kyma_publish_jwks_name": "fleet-jwks",
        "kyma_publish_jwks_namespace": "edge-system",
        "kyma_publish_jwks_service_port": 8080,
        "kyma_publish_server_port": 80,
        "kyma_publish_server_replicas": 3,
        "kyma_publish_server_resources": {"requests": {"cpu": "20m", "memory": "24Mi"},
                                          "limits": {"cpu": "200m", "memory": "96Mi"}},
        "kyma_publish_rollout_on_change": False,
        "kyma_publish_labels": {"team": "edge", "example.com/tier": "backend"},
        "kyma_publish_cluster_domain": "cluster.example",
        "kyma_publish_server_image": "docker.io/nginxinc/nginx-unprivileged@" + DIGEST,
        "kyma_publish_network_policy_from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
             "podSelector": {"matchLabels": {"app": "istiod"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        ],
        "kyma_publish_apirule_name": "orders-api",
        "kyma_publish_apirule_namespace": "shop",
        "kyma_publish_apirule_host": "orders.example.com",
        "kyma_publish_apirule_gateway": "istio-system/shop-gateway",
        "kyma_publish_apirule_service_name": "orders",
        "kyma_publish_apirule_service_port": 8080,
        "kyma_publish_apirule_timeout": 60,
        "kyma_publish_audiences": ["orders-api"],
        "kyma_publish_required_scopes": ["orders.read"],
        "kyma_publish_apirule_rules": [
            {"path": "/orders/{*}/items", "methods": ["GET", "HEAD"]},
            {"path": "/orders", "methods": ["POST"], "timeout": 30,
             "authorizations": [{"audiences": ["orders-api"], "requiredScopes": ["orders.write"]},
                                {"requiredScopes": ["admin"]}]},
            {"path": "/health", "methods": ["GET"], "authorizations": []},
            {"path": "/legacy/{**}", "methods": ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"],
             "service": {"name": "legacy", "namespace": "old", "port": 9000}},
        ],
    },
    "external_issuer": {
        "selfjwt_issuer": "https://edge.example.com/fleet",
        "selfjwt_audience": "edge-api",
    },
    "wildcard": {
        "kyma_publish_apirule_host": "*.apps.example.com",
        "kyma_publish_apirule_rules": [{"path": "/*", "methods": ALL_METHODS}],
        "kyma_publish_jwks_uri": DEFAULT_SERVICE_URL + "/keys/edge.json",
        "selfjwt_audience": ["edge-api", "orders"],
    },
    "claims_match": {"group": "edge_claims"},
    "unfenced": {
        # A namespace managed elsewhere, no NetworkPolicy, the image pinned by digest, one replica.
        "kyma_publish_jwks_namespace": "platform",
        "kyma_publish_jwks_namespace_create": False,
        "kyma_publish_network_policy": False,
        "kyma_publish_server_replicas": 1,
        "kyma_publish_server_image": "registry.example.com:5000/mirror/nginx-unprivileged:1.28.0-alpine@" + DIGEST,
    },

    "skip_without_keys": {"group": "edge_nokeys", "kyma_publish_skip_hosts_without_keys": True},
}
#: Variable sets rendered beside CASES for the tests of the YAML itself (yamllint, byte-identical
#: re-renders): issuer shards (one jwksUri per shard in the APIRule's header) and the Istio output
#: with nested rule values.
LINT_CASES = {
    "shards": dict(CASES["custom"], kyma_publish_shard_count=3),
    "istio_shards": {
        "kyma_publish_api": "istio", "kyma_publish_shard_count": 2,
        "kyma_publish_server_resources": CASES["custom"]["kyma_publish_server_resources"],
        "kyma_publish_network_policy_from": CASES["custom"]["kyma_publish_network_policy_from"],
        "kyma_publish_audiences": ["orders-api"],
        "kyma_publish_apirule_rules": [
            {"path": "/orders/{*}/items", "methods": ["GET", "HEAD"]},
            {"path": "/orders", "methods": ["POST"],
             "authorizations": [{"audiences": ["orders-api"], "requiredScopes": ["orders.write"]},
                                {"requiredScopes": ["admin"]}]},
            {"path": "/health", "methods": ["GET"], "authorizations": []}],
    },
}

#: Variable sets the role must refuse, and a part of the message it must give.
REFUSALS = {
    "lowercase_method": ({"kyma_publish_apirule_rules": [{"path": "/a", "methods": ["get"]}]},
                         "must be one or more of: GET"),
    "regex_path": ({"kyma_publish_apirule_rules": [{"path": "/.*", "methods": ["GET"]}]},
                   "regular expressions such as /.* are not allowed"),
    "regex_group_path": ({"kyma_publish_apirule_rules": [{"path": "/foo(.*)", "methods": ["GET"]}]},
                         "regular expressions such as /.* are not allowed"),
    "double_wildcard_not_last": ({"kyma_publish_apirule_rules": [{"path": "/a/{**}/b/{*}", "methods": ["GET"]}]},
                                 "{**} may appear once"),
    "unknown_rule_key": ({"kyma_publish_apirule_rules": [{"path": "/a", "method": ["GET"]}]},
                         "Supported parameters include"),
    "rule_timeout": ({"kyma_publish_apirule_rules": [{"path": "/a", "methods": ["GET"], "timeout": 5000}]},
                     "the timeout must be 1 to 3900 seconds"),
    "empty_audiences": ({"kyma_publish_apirule_rules": [{"path": "/a", "methods": ["GET"],
                                                         "authorizations": [{"audiences": []}]}]},
                        "authorizations[0].audiences must be a non-empty list"),
    "legacy_gateway": ({"kyma_publish_apirule_gateway": "kyma-gateway.kyma-system"},
                       "kyma_publish_apirule_gateway \"kyma-gateway.kyma-system\" is not valid"),
    "uppercase_host": ({"kyma_publish_apirule_host": "API.example.com"},
                       "kyma_publish_apirule_host \"API.example.com\" is not valid"),
    "foreign_jwks_uri": ({"kyma_publish_jwks_uri": "https://jwks.example.com/jwks.json"},
                         "kyma_publish_jwks_uri \"https://jwks.example.com/jwks.json\" is not valid"),
    "issuer_not_url": ({"selfjwt_issuer": "edge fleet"}, "kyma_publish_issuer \"edge fleet\" is not valid"),
    "bad_mode": ({"kyma_publish_mode": "gitops"}, "kyma_publish_mode must be one of: render, apply"),
    "host_without_keys": ({"group": "edge_nokeys"}, "These edge hosts have no public keys"),
    "empty_group": ({"group": "edge_empty"}, "has no hosts"),
    "claims_mismatch": ({"group": "edge_badclaims"}, "mint tokens that the APIRule would reject"),
    "private_key_offered": ({"group": "edge_private"}, "priv-01 (kid priv-01-ec: members d)"),
    "cluster_domain_injection": ({"kyma_publish_cluster_domain": "cluster.local;}"},
                                 "kyma_publish_cluster_domain \"cluster.local;}\" is not valid"),
    "short_digest": ({"kyma_publish_server_image": "nginx@sha256:abc"}, "a digest must be sha256:"),
    "image_with_space": ({"kyma_publish_server_image": "nginx:1 --privileged"}, "must be an image reference"),
    "empty_policy_peers": ({"kyma_publish_network_policy_from": []}, "An empty list would admit everyone"),
    "namespace_of_the_workload": ({"kyma_publish_jwks_namespace": "default"},
                                  "must be a namespace of the JWKS server alone"),
    "namespace_of_a_rule_service": ({"kyma_publish_jwks_namespace": "legacy",
                                     "kyma_publish_apirule_rules": [
                                         {"path": "/a", "methods": ["GET"],
                                          "service": {"name": "old", "namespace": "legacy", "port": 80}}]},
                                    "must be a namespace of the JWKS server alone"),
}


# --------------------------------------------------------------------------------------
# Fixtures: one run for all variable sets, one for all refusals
# --------------------------------------------------------------------------------------

def _role_vars(values, outdir):
    values = dict(values)
    group = values.pop("group", "edge")
    values.update({"kyma_publish_edge_group": group, "kyma_publish_output_dir": str(outdir)})
    return values


def _inventory(workdir):
    hosts, keys = support.fleet()
    claims_jwk = support.make_public_jwk("ec", "claims-01-ec")[1]
    nokeys_jwk = support.make_public_jwk("ec", "nokeys-02-ec")[1]
    bad_jwk = support.make_public_jwk("ec", "bad-01-ec")[1]
    private_key, priv_jwk = support.make_public_jwk("ec", "priv-01-ec")
    private_d = support.jwt.algorithms.ECAlgorithm.to_jwk(private_key, as_dict=True)["d"]
    priv_jwk = dict(priv_jwk, d=private_d)
    groups = {
        "edge": hosts,
        "edge_claims": {"claims-01": {"edge_keys_public_jwks": [claims_jwk],
                                      "edge_keys_token_claims": {"iss": DEFAULT_SERVICE_URL, "sub": "claims-01"}}},
        "edge_nokeys": {"nokeys-01": {}, "nokeys-02": {"edge_keys_public_jwks": [nokeys_jwk]}},
        "edge_badclaims": {"bad-01": {"edge_keys_public_jwks": [bad_jwk],
                                      "edge_keys_token_claims": {"iss": "http://wrong.example", "sub": "bad-01"}}},
        "edge_private": {"priv-01": {"edge_keys_public_jwks": [priv_jwk]}},
    }
    inventory = {"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": dict((name, {"hosts": dict((h, dict(v, ansible_connection="local"))
                                               for h, v in members.items())})
                         for name, members in groups.items()),
    }}
    inventory["all"]["children"]["edge_empty"] = {"hosts": {}}
    path = Path(workdir) / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path, groups, private_d


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    support.collections_path()
    return tmp_path_factory.mktemp("kyma_manifests")


@pytest.fixture(scope="module")
def fleet_inventory(workdir):
    return _inventory(workdir)


def _render_plays(workdir):
    return [{"name": "render %s" % name, "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": _role_vars(values, workdir / "out" / name)}]}
            for name, values in list(CASES.items()) + list(LINT_CASES.items())]


def _refusal_play(workdir):
    """One play that runs every refusal case in a block/rescue and writes what it got to <case>.result."""
    tasks = []
    for name, (values, _expected) in REFUSALS.items():
        outdir = workdir / "refused" / name
        tasks.append({
            "name": "refuse %s" % name,
            "block": [
                {"name": "run the role (%s)" % name,
                 "ansible.builtin.include_role": {"name": "selfjwt.kyma.kyma_publish"},
                 "vars": _role_vars(values, outdir)},
                {"name": "record that nothing failed (%s)" % name,
                 "ansible.builtin.copy": {"content": "NOT REFUSED", "dest": str(workdir / ("%s.result" % name)),
                                          "mode": "0644"}},
            ],
            "rescue": [
                {"name": "record the message (%s)" % name,
                 "ansible.builtin.copy": {
                     "content": "{{ (ansible_failed_result.results | selectattr('failed', 'defined')"
                                " | selectattr('failed') | map(attribute='msg') | join(' '))"
                                " if ansible_failed_result.results is defined"
                                " else ansible_failed_result.msg | default(ansible_failed_result | to_json) }}",
                     "dest": str(workdir / ("%s.result" % name)), "mode": "0644"}},
            ],
        })
    return {"name": "refusals", "hosts": "localhost", "gather_facts": False, "tasks": tasks}


@pytest.fixture(scope="module")
def rendered(workdir, fleet_inventory):
    """Render every case, and run every refusal after them; then render every case again.

    Returns {case: {"dir": Path, "vars": dict, "groups": dict, "runs": (first output, second output)},
    "refusals": ({case: (message or "NOT REFUSED", outdir)}, first output)}.
    """
    inventory, groups = fleet_inventory[:2]
    first_playbook = workdir / "render-and-refuse.yml"
    first_playbook.write_text(yaml.safe_dump(_render_plays(workdir) + [_refusal_play(workdir)], sort_keys=False))
    second_playbook = workdir / "render.yml"
    second_playbook.write_text(yaml.safe_dump(_render_plays(workdir), sort_keys=False))
    first = support.run_playbook(first_playbook, inventory, workdir)
    first_bytes = _rendered_bytes(workdir / "out")
    second = support.run_playbook(second_playbook, inventory, workdir)
    result = {}
    for name, values in CASES.items():
        result[name] = {"dir": workdir / "out" / name, "vars": values, "groups": groups,
                        "runs": (first.stdout, second.stdout)}
    result["refusals"] = (dict((name, ((workdir / ("%s.result" % name)).read_text(), workdir / "refused" / name))
                               for name in REFUSALS), first.stdout)
    result["bytes"] = (first_bytes, _rendered_bytes(workdir / "out"))
    return result


def _rendered_bytes(out):
    """{path under out: content} of every rendered file."""
    return dict((str(path.relative_to(out)), path.read_bytes()) for path in sorted(out.rglob("*")) if path.is_file())


@pytest.fixture(scope="module")
def refusals(rendered, fleet_inventory):
    """{case: (message or "NOT REFUSED", outdir)}, the output of the run, the private number that was offered."""
    results, output = rendered["refusals"]
    return results, output, fleet_inventory[2]


@pytest.fixture(scope="module")
def apirule_validator():
    return support.ApiRuleValidator()


# --------------------------------------------------------------------------------------
# Expected values per case
# --------------------------------------------------------------------------------------

def expected_service_url(values):
    name = values.get("kyma_publish_jwks_name", "edge-jwks")
    namespace = values.get("kyma_publish_jwks_namespace", DEFAULT_NAMESPACE)
    port = values.get("kyma_publish_jwks_service_port", 80)
    domain = values.get("kyma_publish_cluster_domain", "cluster.local")
    return "http://%s.%s.svc.%s%s" % (name, namespace, domain, "" if port == 80 else ":%d" % port)


def expected_manifests(values):
    """The manifests a case renders, in apply order."""
    off = set()
    if not values.get("kyma_publish_jwks_namespace_create", True):
        off.add("namespace.yaml")
    if not values.get("kyma_publish_network_policy", True):
        off.add("jwks-networkpolicy.yaml")
    return [name for name in support.MANIFESTS if name not in off]


def expected_issuer(values):
    return values.get("selfjwt_issuer") or expected_service_url(values)


def expected_jwks_uri(values):
    if values.get("kyma_publish_jwks_uri"):
        return values["kyma_publish_jwks_uri"]
    issuer = expected_issuer(values)
    base = issuer if issuer.startswith(expected_service_url(values)) else expected_service_url(values)
    return base + "/.well-known/jwks.json"


def nginx_locations(conf):
    """{exact location path: aliased file} of the nginx configuration."""
    locations, current = {}, None
    for line in conf.splitlines():
        match = re.match(r"\s*location\s+(=\s+)?(\S+)\s*\{", line)
        if match:
            current = match.group(2) if match.group(1) else None
            continue
        match = re.match(r"\s*alias\s+([^;]+);", line)
        if match and current:
            locations[current] = match.group(1)
    return locations


# --------------------------------------------------------------------------------------
# Tests: rendering
# --------------------------------------------------------------------------------------

def test_every_case_renders_the_files_and_a_second_run_changes_nothing(rendered):
    first, second = rendered["defaults"]["runs"]
    assert support.recap(first)["localhost"]["failed"] == 0
    assert support.recap(first)["localhost"]["changed"] > 0
    counts = support.recap(second)["localhost"]
    assert counts["failed"] == 0 and counts["changed"] == 0, second[-3000:]
    for name in CASES:
        case = rendered[name]
        files = sorted(p.name for p in case["dir"].iterdir())
        assert files == sorted(expected_manifests(CASES[name]) + ["kustomization.yaml", "jwks.json",
                                                                  "openid-configuration"]), (name, files)


def test_rendered_manifests_are_block_yaml_that_yamllint_accepts(rendered):
    """Every manifest of every case, the lint-only ones (shards, Istio) included."""
    files = [path for name in list(CASES) + list(LINT_CASES) for path in sorted((rendered["defaults"]["dir"].parent
                                                                                 / name).glob("*.yaml"))]
    assert len(files) > 8 * len(CASES)
    assert support.yamllint_problems(files) == []


def test_a_second_render_writes_the_same_bytes(rendered):
    first, second = rendered["bytes"]
    assert any(name.startswith("shards/") for name in first) and any(name.startswith("istio_shards/") for name in first)
    assert first == second


@pytest.mark.parametrize("case", sorted(CASES))
def test_apirule_is_valid_against_the_crd_and_its_cel_rules(rendered, apirule_validator, case):
    apirule = support.load_manifest(rendered[case]["dir"] / "apirule.yaml")
    assert apirule["apiVersion"] == "gateway.kyma-project.io/v2"
    assert apirule["kind"] == "APIRule"
    assert apirule_validator.errors(apirule) == []
    assert apirule["spec"]["gateway"] == CASES[case].get("kyma_publish_apirule_gateway", "kyma-system/kyma-gateway")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("version", support.KUBERNETES_VERSIONS)
def test_builtin_objects_are_valid_kubernetes_objects(rendered, case, version):
    names = [n for n in expected_manifests(CASES[case]) if n != "apirule.yaml"]
    assert "jwks-pdb.yaml" in names
    for name in names:
        obj = support.load_manifest(rendered[case]["dir"] / name)
        assert support.kubernetes_errors(obj, version) == [], name


@pytest.mark.parametrize("case", sorted(CASES))
def test_apirule_points_at_the_served_jwks(rendered, case):
    values = CASES[case]
    objects = support.load_rendered(rendered[case]["dir"])
    apirule, configmap = objects["apirule.yaml"], objects["jwks-configmap.yaml"]
    service, deployment = objects["jwks-service.yaml"], objects["jwks-deployment.yaml"]
    service_url = expected_service_url(values)

    # The Service's cluster-local URL, from the Service object itself.
    port = service["spec"]["ports"][0]["port"]
    url_from_service = "http://%s.%s.svc.%s%s" % (
        service["metadata"]["name"], service["metadata"]["namespace"],
        values.get("kyma_publish_cluster_domain", "cluster.local"), "" if port == 80 else ":%d" % port)
    assert url_from_service == service_url

    for rule in apirule["spec"]["rules"]:
        authentications = rule["jwt"]["authentications"]
        assert authentications == [{"issuer": expected_issuer(values), "jwksUri": expected_jwks_uri(values)}]
    if "selfjwt_issuer" not in values:
        assert authentications[0]["issuer"] == service_url
    jwks_uri = authentications[0]["jwksUri"]
    assert jwks_uri.startswith(service_url + "/")
    jwks_path = jwks_uri[len(service_url):]

    # The server serves that path from the ConfigMap volume...
    conf = configmap["data"]["nginx.conf"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mount = [m for m in container["volumeMounts"] if m["name"] == "jwks"][0]
    volume = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwks"][0]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert container["args"][:2] == ["-c", mount["mountPath"] + "/nginx.conf"]
    locations = nginx_locations(conf)
    assert jwks_path in locations, conf
    served_key = locations[jwks_path][len(mount["mountPath"]) + 1:]
    assert locations[jwks_path] == mount["mountPath"] + "/" + served_key
    discovery_path = jwks_path.rsplit("/", 1)[0] + "/openid-configuration"
    assert discovery_path in locations
    served_discovery_key = locations[discovery_path][len(mount["mountPath"]) + 1:]

    # ... on the port the Service targets.
    listen = int(re.search(r"listen (\d+);", conf).group(1))
    named = dict((p["name"], p["containerPort"]) for p in container["ports"])
    assert service["spec"]["ports"][0]["targetPort"] == "http" and named["http"] == listen
    assert listen == values.get("kyma_publish_server_port", 8080)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]

    # The served documents are the files written beside the manifests, and agree with the APIRule.
    jwks_text = configmap["data"][served_key]
    assert jwks_text == (rendered[case]["dir"] / "jwks.json").read_text()
    discovery = json.loads(configmap["data"][served_discovery_key])
    assert configmap["data"][served_discovery_key] == (rendered[case]["dir"] / "openid-configuration").read_text()
    assert discovery["issuer"] == authentications[0]["issuer"]
    assert discovery["jwks_uri"] == jwks_uri


@pytest.mark.parametrize("case", sorted(CASES))
def test_jwks_holds_exactly_the_edge_hosts_public_keys(rendered, case):
    values = CASES[case]
    members = rendered[case]["groups"][values.get("group", "edge")]
    expected = sorted(jwk["kid"] for host in members.values() for jwk in host.get("edge_keys_public_jwks", []))
    configmap = support.load_manifest(rendered[case]["dir"] / "jwks-configmap.yaml")
    jwks = json.loads(configmap["data"]["jwks.json"])
    assert sorted(key["kid"] for key in jwks["keys"]) == expected
    assert support.private_members_of(jwks) == []
    published = dict((key["kid"], key) for key in jwks["keys"])
    for host in members.values():
        for jwk in host.get("edge_keys_public_jwks", []):
            for member in ("kty", "n", "e", "crv", "x", "y"):
                assert published[jwk["kid"]].get(member) == jwk.get(member)


@pytest.mark.parametrize("case", sorted(CASES))
def test_jwks_server_runs_outside_the_mesh_as_non_root(rendered, case):
    values = CASES[case]
    deployment = support.load_manifest(rendered[case]["dir"] / "jwks-deployment.yaml")
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"][ISTIO_INJECT] == "false"
    assert template["metadata"]["annotations"][ISTIO_INJECT] == "false"
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = dict((m["mountPath"], m["name"]) for m in container["volumeMounts"])
    volumes = dict((v["name"], v) for v in pod["volumes"])
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["resources"] == values.get("kyma_publish_server_resources", {
        "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}})
    assert deployment["spec"]["replicas"] == values.get("kyma_publish_server_replicas", 2)
    privileged_port = values.get("kyma_publish_server_port", 8080) < 1024
    sysctls = pod["securityContext"].get("sysctls", [])
    assert (sysctls == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]) == privileged_port


@pytest.mark.parametrize("case", sorted(CASES))
def test_nginx_configuration_is_well_formed(rendered, case):
    configmap = support.load_manifest(rendered[case]["dir"] / "jwks-configmap.yaml")
    conf = configmap["data"]["nginx.conf"]
    assert conf.endswith("}\n") and not conf.endswith("\n\n")
    depth = 0
    for number, line in enumerate(conf.splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        assert text.endswith((";", "{", "}")), "nginx.conf line %d: %r" % (number, line)
        depth += text.count("{") - text.count("}")
        assert depth >= 0, "nginx.conf line %d closes too much" % number
    assert depth == 0


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fetch(url, method="GET"):
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "istiod-like-test"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), b""


@pytest.mark.parametrize("case", ["defaults", "custom", "wildcard"])
def test_rendered_nginx_serves_the_documents(rendered, tmp_path, case):
    """Runs the rendered configuration with a local nginx (the image's server) when one is installed."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        pytest.skip("nginx is not installed here (apt-get install nginx-light), so the served files are not fetched")
    objects = support.load_rendered(rendered[case]["dir"])
    configmap, deployment = objects["jwks-configmap.yaml"], objects["jwks-deployment.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mount = [m for m in container["volumeMounts"] if m["name"] == "jwks"][0]["mountPath"]
    files, scratch = tmp_path / "files", tmp_path / "tmp"
    files.mkdir()
    scratch.mkdir()
    for key, value in configmap["data"].items():
        (files / key).write_text(value)
    port = _free_port()
    # Local adaptations only: the volume paths, the port, and the user when the test runs as root.
    conf = configmap["data"]["nginx.conf"].replace(" /tmp/", " %s/" % scratch).replace(mount, str(files))
    conf = re.sub(r"listen \d+;", "listen 127.0.0.1:%d;" % port, conf)
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    (files / "nginx.conf").write_text(conf)
    test = subprocess.run([nginx, "-t", "-c", str(files / "nginx.conf"), "-e", "stderr"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert test.returncode == 0, test.stdout
    server = subprocess.Popen([nginx, "-c", str(files / "nginx.conf"), "-e", "stderr"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = "http://127.0.0.1:%d" % port
        for _attempt in range(50):
            try:
                if _fetch(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        apirule = objects["apirule.yaml"]
        jwks_uri = apirule["spec"]["rules"][0]["jwt"]["authentications"][0]["jwksUri"]
        path = "/" + jwks_uri.split("/", 3)[3]
        status, content_type, body = _fetch(base + path)
        assert (status, content_type) == (200, "application/json")
        assert body == (rendered[case]["dir"] / "jwks.json").read_bytes()
        status, content_type, body = _fetch(base + path.rsplit("/", 1)[0] + "/openid-configuration")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body)["jwks_uri"] == jwks_uri
        assert _fetch(base + path, method="POST")[0] == 403
        assert _fetch(base + "/nginx.conf")[0] == 404
        assert _fetch(base + "/")[0] == 404
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_checksum_annotation_follows_the_served_files(rendered, case):
    values = CASES[case]
    deployment = support.load_manifest(rendered[case]["dir"] / "jwks-deployment.yaml")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    if values.get("kyma_publish_rollout_on_change", True):
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["selfjwt.kyma/config-sha256"])
    else:
        assert "selfjwt.kyma/config-sha256" not in annotations


def test_checksums_differ_when_the_keys_differ(rendered):
    checksums = {}
    for case in ("defaults", "claims_match", "skip_without_keys"):
        deployment = support.load_manifest(rendered[case]["dir"] / "jwks-deployment.yaml")
        checksums[case] = deployment["spec"]["template"]["metadata"]["annotations"]["selfjwt.kyma/config-sha256"]
    assert len(set(checksums.values())) == 3


def test_custom_rules_render_as_given(rendered):
    apirule = support.load_manifest(rendered["custom"]["dir"] / "apirule.yaml")
    spec = apirule["spec"]
    assert apirule["metadata"] == {"name": "orders-api", "namespace": "shop",
                                   "labels": {"app.kubernetes.io/managed-by": "selfjwt.kyma",
                                              "app.kubernetes.io/part-of": "selfjwt", "team": "edge",
                                              "example.com/tier": "backend"}}
    assert spec["hosts"] == ["orders.example.com"]
    assert spec["gateway"] == "istio-system/shop-gateway"
    assert spec["service"] == {"name": "orders", "namespace": "shop", "port": 8080}
    assert spec["timeout"] == 60
    rules = spec["rules"]
    assert [r["path"] for r in rules] == ["/orders/{*}/items", "/orders", "/health", "/legacy/{**}"]
    default = [{"audiences": ["orders-api"], "requiredScopes": ["orders.read"]}]
    assert rules[0]["jwt"]["authorizations"] == default
    assert rules[1]["jwt"]["authorizations"] == [{"audiences": ["orders-api"], "requiredScopes": ["orders.write"]},
                                                 {"requiredScopes": ["admin"]}]
    assert rules[1]["timeout"] == 30
    assert "authorizations" not in rules[2]["jwt"]
    assert rules[3]["service"] == {"name": "legacy", "namespace": "old", "port": 9000}
    assert rules[3]["methods"] == ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]


def test_audience_defaults_from_selfjwt_audience(rendered):
    external = support.load_manifest(rendered["external_issuer"]["dir"] / "apirule.yaml")
    assert external["spec"]["rules"][0]["jwt"]["authorizations"] == [{"audiences": ["edge-api"]}]
    wildcard = support.load_manifest(rendered["wildcard"]["dir"] / "apirule.yaml")
    assert wildcard["spec"]["rules"][0]["jwt"]["authorizations"] == [{"audiences": ["edge-api", "orders"]}]
    defaults = support.load_manifest(rendered["defaults"]["dir"] / "apirule.yaml")
    assert "authorizations" not in defaults["spec"]["rules"][0]["jwt"]


@pytest.mark.parametrize("case", ["defaults", "unfenced"])
def test_kustomization_lists_the_manifests_in_apply_order(rendered, case):
    kustomization = yaml.safe_load((rendered[case]["dir"] / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == expected_manifests(CASES[case])
    assert kustomization["resources"][-1] == "apirule.yaml"


@pytest.mark.parametrize("case", sorted(CASES))
def test_jwks_server_is_fenced_in(rendered, case):
    """Its own namespace without sidecar injection, a NetworkPolicy that admits only istiod (or the
    configured peers) to the server's port and lets the server connect nowhere, and a PodDisruptionBudget."""
    values = CASES[case]
    objects = support.load_rendered(rendered[case]["dir"])
    deployment = objects["jwks-deployment.yaml"]
    namespace = values.get("kyma_publish_jwks_namespace", DEFAULT_NAMESPACE)
    selector = deployment["spec"]["selector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for name, obj in objects.items():
        if name not in ("apirule.yaml", "namespace.yaml"):
            assert obj["metadata"]["namespace"] == namespace, name

    if values.get("kyma_publish_jwks_namespace_create", True):
        labels = objects["namespace.yaml"]["metadata"]["labels"]
        assert objects["namespace.yaml"]["metadata"]["name"] == namespace
        assert labels["istio-injection"] == "disabled"
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert namespace != objects["apirule.yaml"]["metadata"]["namespace"]
    else:
        assert "namespace.yaml" not in objects

    if values.get("kyma_publish_network_policy", True):
        policy = objects["jwks-networkpolicy.yaml"]["spec"]
        assert policy["podSelector"] == selector
        assert all(pod_labels.get(k) == v for k, v in policy["podSelector"]["matchLabels"].items())
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["egress"] == []
        assert len(policy["ingress"]) == 1
        peers = policy["ingress"][0]["from"]
        assert peers == values.get("kyma_publish_network_policy_from", [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
             "podSelector": {"matchLabels": {"app": "istiod"}}}])
        assert peers and all(peer for peer in peers)  # an empty peer list or peer would admit everyone
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}]
    else:
        assert "jwks-networkpolicy.yaml" not in objects

    pdb = objects["jwks-pdb.yaml"]["spec"]
    assert pdb["selector"] == selector
    assert pdb["maxUnavailable"] == 1


@pytest.mark.parametrize("case", ["unfenced", "custom"])
def test_image_pinned_by_digest_is_rendered_as_given(rendered, case):
    deployment = support.load_manifest(rendered[case]["dir"] / "jwks-deployment.yaml")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == CASES[case]["kyma_publish_server_image"]
    assert image.endswith("@" + DIGEST)


def test_switched_off_manifests_are_removed(workdir, fleet_inventory, rendered):
    """A namespace or policy rendered earlier does not stay behind for a GitOps tool to keep applying."""
    inventory = fleet_inventory[0]
    outdir = workdir / "switched-off"
    playbook = workdir / "switched-off.yml"
    plays = []
    for values in ({}, {"kyma_publish_jwks_namespace_create": False, "kyma_publish_network_policy": False}):
        plays.append({"name": "render", "hosts": "localhost", "gather_facts": False,
                      "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": _role_vars(values, outdir)}]})
    playbook.write_text(yaml.safe_dump(plays))
    support.run_playbook(playbook, inventory, workdir)
    assert not (outdir / "namespace.yaml").exists()
    assert not (outdir / "jwks-networkpolicy.yaml").exists()
    assert (outdir / "jwks-pdb.yaml").exists()


# --------------------------------------------------------------------------------------
# Tests: check mode and diff work offline
# --------------------------------------------------------------------------------------

def _plays_of(output):
    """{play name: [names of the tasks that reported a change]} from ansible-playbook's default output."""
    plays, play, task = {}, None, None
    for line in output.splitlines():
        header = re.match(r"^(PLAY|TASK|RUNNING HANDLER) \[(.*)\] \**$", line)
        if header:
            if header.group(1) == "PLAY":
                play = plays.setdefault(header.group(2), [])
            else:
                task = header.group(2)
        elif line.startswith("changed: [") and play is not None and task not in play:
            play.append(task)
    return plays


def test_plays_of_parses_changes_per_play():
    output = ("PLAY [one] ***\n\nTASK [a] ***\nok: [localhost]\n\nTASK [b] ***\n"
              "changed: [localhost] => (item=x)\nchanged: [localhost] => (item=y)\n\n"
              "PLAY [two] ***\n\nTASK [c] ***\nok: [localhost]\n\nPLAY RECAP ***\n")
    assert _plays_of(output) == {"one": ["b"], "two": []}


def test_check_mode_writes_nothing_and_diff_shows_the_change(workdir, fleet_inventory, rendered):
    """One --check --diff run: the defaults on a directory that does not exist yet, then the rendered
    defaults case with another replica count."""
    inventory = fleet_inventory[0]
    outdir = workdir / "checkmode"
    existing = rendered["defaults"]["dir"]
    before = dict((p.name, p.read_bytes()) for p in existing.iterdir())
    playbook = workdir / "checkmode.yml"
    playbook.write_text(yaml.safe_dump([
        {"name": "fresh", "hosts": "localhost", "gather_facts": False,
         "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": _role_vars({}, outdir)}]},
        {"name": "replicas", "hosts": "localhost", "gather_facts": False,
         "roles": [{"role": "selfjwt.kyma.kyma_publish",
                    "vars": _role_vars({"kyma_publish_server_replicas": 4}, existing)}]},
    ]))
    check = support.run_playbook(playbook, inventory, workdir, "--check", "--diff")
    plays = _plays_of(check.stdout)
    assert sorted(plays) == ["fresh", "replicas"], check.stdout[-3000:]
    assert len(plays["fresh"]) > 0
    assert not outdir.exists()

    assert plays["replicas"] == ["selfjwt.kyma.kyma_publish : Render the Kubernetes manifests"], plays
    replicas = check.stdout[check.stdout.index("PLAY [replicas]"):]
    assert re.search(r"^-\s+replicas: 2$", replicas, re.M) and re.search(r"^\+\s+replicas: 4$", replicas, re.M)
    assert dict((p.name, p.read_bytes()) for p in existing.iterdir()) == before


# --------------------------------------------------------------------------------------
# Tests: refusals
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_role_refuses_bad_input_before_writing_anything(refusals, case):
    results, _output, _private = refusals
    message, outdir = results[case]
    assert message != "NOT REFUSED"
    assert REFUSALS[case][1] in message
    assert not (outdir / "apirule.yaml").exists()
    assert not (outdir / "jwks.json").exists()


def test_refused_private_key_is_not_shown(refusals):
    _results, output, private_d = refusals
    assert private_d not in output


# --------------------------------------------------------------------------------------
# Tests: the validators themselves reject what the API server would reject
# --------------------------------------------------------------------------------------

def _mutations():
    def lower_method(a):
        a["spec"]["rules"][0]["methods"] = ["get"]

    def regex_path(a):
        a["spec"]["rules"][0]["path"] = "/.*"

    def two_strategies(a):
        a["spec"]["rules"][0]["noAuth"] = True

    def no_strategy(a):
        del a["spec"]["rules"][0]["jwt"]

    def legacy_gateway(a):
        a["spec"]["gateway"] = "kyma-gateway.kyma-system"

    def no_gateway(a):
        del a["spec"]["gateway"]

    def upper_host(a):
        a["spec"]["hosts"] = ["API.example.com"]

    def two_hosts(a):
        a["spec"]["hosts"] = ["a", "b"]

    def typo(a):
        a["spec"]["rules"][0]["jwt"]["authentications"][0]["jwksURI"] = "x"

    def no_issuer(a):
        del a["spec"]["rules"][0]["jwt"]["authentications"][0]["issuer"]

    def bad_port(a):
        a["spec"]["service"]["port"] = 70000

    return [lower_method, regex_path, two_strategies, no_strategy, legacy_gateway, no_gateway, upper_host,
            two_hosts, typo, no_issuer, bad_port]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_apirule_validator_rejects_invalid_objects(rendered, apirule_validator, mutate):
    apirule = support.load_manifest(rendered["defaults"]["dir"] / "apirule.yaml")
    assert apirule_validator.errors(apirule) == []
    broken = copy.deepcopy(apirule)
    mutate(broken)
    assert apirule_validator.errors(broken) != []


@pytest.mark.parametrize("name, mutate", [
    ("jwks-networkpolicy.yaml", lambda p: p["spec"]["ingress"][0].__setitem__("from", [{"pods": {}}])),
    ("jwks-pdb.yaml", lambda p: p["spec"].__setitem__("maxUnavailable", [1])),
    ("namespace.yaml", lambda n: n["metadata"].__setitem__("labels", {"istio-injection": False})),
], ids=["policy_unknown_peer", "pdb_list", "namespace_label_not_string"])
def test_kubernetes_validate_rejects_invalid_new_objects(rendered, name, mutate):
    obj = support.load_manifest(rendered["defaults"]["dir"] / name)
    assert support.kubernetes_errors(obj, support.KUBERNETES_VERSIONS[-1]) == []
    broken = copy.deepcopy(obj)
    mutate(broken)
    assert support.kubernetes_errors(broken, support.KUBERNETES_VERSIONS[-1]) != []


@pytest.mark.parametrize("mutate", [
    lambda d: d["spec"].__setitem__("replicas", "2"),
    lambda d: d["spec"]["template"]["spec"].__setitem__("sidecarInjection", False),
    lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
], ids=["string_replicas", "unknown_field", "container_without_name"])
def test_kubernetes_validate_rejects_invalid_deployments(rendered, mutate):
    deployment = support.load_manifest(rendered["defaults"]["dir"] / "jwks-deployment.yaml")
    broken = copy.deepcopy(deployment)
    mutate(broken)
    assert support.kubernetes_errors(broken, support.KUBERNETES_VERSIONS[-1]) != []
