# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_istio: kyma_publish's plain Istio output, through _publish.plan as the action runs it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _istio, _publish

SERVICE_URL = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = SERVICE_URL + "/.well-known/jwks.json"

#: The role's defaults with kyma_publish_api=istio (selfjwt_audience set).
SETTINGS = {
    "edge_group": "edge", "skip_hosts_without_keys": False, "extra_keys": [], "shard_count": 0, "shard_groups": {},
    "shard_overrides": {}, "jwks_name": "edge-jwks", "jwks_namespace": "selfjwt-system",
    "jwks_namespace_create": True, "jwks_service_port": 80, "cluster_domain": "cluster.local",
    "issuer": SERVICE_URL, "jwks_uri": JWKS_URI, "server_image": "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine",
    "network_policy": True,
    "network_policy_from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                             "podSelector": {"matchLabels": {"app": "istiod"}}}],
    "server_port": 8080, "server_user": 101, "server_replicas": 2, "max_keys": 1000, "max_bytes": 524288,
    "budget_warn_percent": 50, "apirule_name": "edge-api", "apirule_namespace": "default", "apirule_host": "edge-api",
    "apirule_gateway": "kyma-system/kyma-gateway", "apirule_service_name": "edge-api",
    "apirule_service_namespace": "default", "apirule_service_port": 80, "apirule_timeout": None,
    "apirule_rules": [{"path": "/{**}", "methods": ["GET"]}], "audiences": ["edge-api"], "required_scopes": [],
    "api": "istio", "istio_target": "workload", "istio_namespace": "default", "istio_selector": {"app": "edge-api"},
    "istio_target_refs": [],
}

HOSTS = ("edge-01", "edge-02", "edge-03")
PRINCIPAL = SERVICE_URL + "/*"


def _jwk(kid):
    return {"kty": "EC", "crv": "P-256", "x": "x-" + kid, "y": "y-" + kid, "kid": kid, "alg": "ES256", "use": "sig"}


def _plan(**changes):
    values = copy.deepcopy(SETTINGS)
    values.update(changes)
    return _publish.plan(values, list(HOSTS), dict((host, [_jwk("k-" + host)]) for host in HOSTS), {})


def _refused(**changes):
    with pytest.raises(_publish.PublishError) as caught:
        _plan(**changes)
    return str(caught.value)


def _allow(methods, paths, when=None, not_paths=None, principals=(PRINCIPAL,), hosts=None):
    operation = {}
    if hosts:
        operation["hosts"] = hosts
    operation.update(methods=methods, paths=paths)
    if not_paths:
        operation["notPaths"] = not_paths
    rule = {"from": [{"source": {"requestPrincipals": list(principals)}}], "to": [{"operation": operation}]}
    if when:
        rule["when"] = when
    return rule


def _aud(value):
    return {"key": "request.auth.claims[aud]", "values": [value]}


def test_the_apirule_output_has_no_istio_part():
    planned = _plan(api="apirule")
    assert "istio" not in planned
    # The settings of the Istio output are not looked at for the APIRule.
    assert "istio" not in _plan(api="apirule", istio_selector={}, istio_namespace=None)


def test_the_defaults_give_one_jwt_rule_and_one_allow_rule_per_rule():
    istio = _plan()["istio"]
    assert istio["namespace"] == "default"
    assert istio["selector"] == {"app": "edge-api"} and istio["target_refs"] is None
    assert istio["jwt_rules"] == [{"issuer": SERVICE_URL, "jwksUri": JWKS_URI, "forwardOriginalToken": True}]
    assert istio["rules"] == [_allow(["GET"], ["/{**}"], when=[_aud("edge-api")])]


def test_every_shard_is_a_jwt_rule_and_a_request_principal():
    istio = _plan(shard_count=2)["istio"]
    issuers = [rule["issuer"] for rule in istio["jwt_rules"]]
    assert len(issuers) == 2 and all(issuer.startswith(SERVICE_URL + "/shards/") for issuer in issuers)
    assert [rule["jwksUri"] for rule in istio["jwt_rules"]] == [issuer + "/.well-known/jwks.json" for issuer in issuers]
    assert all(rule["forwardOriginalToken"] is True for rule in istio["jwt_rules"])
    assert istio["rules"][0]["from"] == [{"source": {"requestPrincipals": [issuer + "/*" for issuer in issuers]}}]


def test_paths_are_translated_and_earlier_rules_shadow_later_ones_sharing_a_method():
    rules = [{"path": "/health", "methods": ["GET"], "authorizations": []},
             {"path": "/api/{*}/items", "methods": ["GET", "POST"], "authorizations": []},
             {"path": "/admin", "methods": ["DELETE"], "authorizations": []},
             {"path": "/*", "methods": ["GET", "DELETE"], "authorizations": []}]
    istio = _plan(apirule_rules=rules)["istio"]
    assert istio["rules"] == [
        _allow(["GET"], ["/health"]),
        _allow(["GET", "POST"], ["/api/{*}/items"], not_paths=["/health"]),
        _allow(["DELETE"], ["/admin"]),
        _allow(["GET", "DELETE"], ["/{**}"], not_paths=["/health", "/api/{*}/items", "/admin"]),
    ]


def test_istio_path_keeps_templates_and_rewrites_everything():
    assert _istio.istio_path("/*") == "/{**}"
    assert _istio.istio_path("/orders") == "/orders"
    assert _istio.istio_path("/a/{*}/b/{**}") == "/a/{*}/b/{**}"


def test_audiences_are_anded_authorizations_ored_scopes_one_rule_per_scope_claim():
    rules = [{"path": "/a", "methods": ["GET"], "authorizations": [
        {"audiences": ["x", "y"]},
        {"requiredScopes": ["read", "write"], "audiences": ["z"]}]}]
    istio = _plan(apirule_rules=rules)["istio"]
    scoped = [_allow(["GET"], ["/a"], when=[_aud("z"),
                                            {"key": "request.auth.claims[%s]" % claim, "values": ["read"]},
                                            {"key": "request.auth.claims[%s]" % claim, "values": ["write"]}])
              for claim in ("scp", "scope", "scopes")]
    assert istio["rules"] == [_allow(["GET"], ["/a"], when=[_aud("x"), _aud("y")])] + scoped


def test_default_scopes_apply_to_rules_without_authorizations():
    istio = _plan(required_scopes=["read"])["istio"]
    assert [rule["when"] for rule in istio["rules"]] == [
        [_aud("edge-api"), {"key": "request.auth.claims[%s]" % claim, "values": ["read"]}]
        for claim in ("scp", "scope", "scopes")]


def test_the_gateway_target_matches_the_host_with_and_without_port():
    istio = _plan(istio_target="gateway", istio_namespace="istio-system", istio_selector={"istio": "ingressgateway"},
                  apirule_host="edge-api.example.com")["istio"]
    assert istio["namespace"] == "istio-system" and istio["selector"] == {"istio": "ingressgateway"}
    assert istio["rules"] == [_allow(["GET"], ["/{**}"], when=[_aud("edge-api")],
                                     hosts=["edge-api.example.com", "edge-api.example.com:*"])]


def test_target_refs_replace_the_selector():
    refs = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}]
    istio = _plan(istio_target="gateway", istio_target_refs=refs, istio_selector={},
                  apirule_host="*.example.com")["istio"]
    assert istio["target_refs"] == refs and istio["selector"] is None


@pytest.mark.parametrize("changes,expected", [
    ({"api": "virtualservice"}, 'kyma_publish_api "virtualservice" is not valid'),
    ({"istio_target": "mesh"}, 'kyma_publish_istio_target "mesh" is not valid'),
    ({"istio_namespace": "Default"}, 'kyma_publish_istio_namespace "Default" is not valid'),
    ({"istio_namespace": None}, "kyma_publish_istio_namespace null is not valid"),
    ({"istio_selector": {}}, "kyma_publish_istio_selector {} is not valid"),
    ({"istio_selector": {"app": "edge-*"}}, "kyma_publish_istio_selector"),
    ({"istio_selector": {"*": "x"}}, "kyma_publish_istio_selector"),
    ({"istio_selector": {"app": 1}}, "kyma_publish_istio_selector"),
    ({"istio_target_refs": [{"kind": "Gateway"}]}, "kyma_publish_istio_target_refs"),
    ({"istio_target_refs": [{"kind": "Gateway", "name": "g", "namespace": "other"}]}, "kyma_publish_istio_target_refs"),
    ({"istio_target": "gateway"}, 'kyma_publish_apirule_host "edge-api" is not valid with kyma_publish_istio_target=gateway'),
    ({"apirule_rules": [{"path": "/a", "methods": ["GET"], "service": {"name": "b", "port": 80}}]},
     'kyma_publish_apirule_rules[0] (path "/a") sets its own service'),
    ({"apirule_rules": [{"path": "/a", "methods": ["GET"]}, {"path": "/b", "methods": ["GET"], "timeout": 30}]},
     'kyma_publish_apirule_rules[1] (path "/b") sets its own timeout'),
])
def test_settings_the_istio_output_cannot_use_are_refused_by_their_variable(changes, expected):
    assert expected in _refused(**changes)


def test_a_rule_service_is_fine_for_the_apirule():
    planned = _plan(api="apirule", apirule_rules=[{"path": "/a", "methods": ["GET"],
                                                   "service": {"name": "b", "port": 80}}])
    assert planned["rules"][0]["service"] == {"name": "b", "namespace": "default", "port": 80}


def test_the_apirule_timeout_is_only_warned_about():
    planned = _plan(apirule_timeout=60)
    assert any("kyma_publish_apirule_timeout is set" in warning for warning in planned["warnings"])
    assert not any("apirule_timeout" in warning for warning in _plan(api="apirule", apirule_timeout=60)["warnings"])


def test_label_keys_and_values():
    assert _istio.is_label_key("app.kubernetes.io/name") and _istio.is_label_key("istio")
    assert not _istio.is_label_key("") and not _istio.is_label_key("a/b/c") and not _istio.is_label_key("-a")
    assert _istio.is_label_value("") and _istio.is_label_value("ingressgateway")
    assert not _istio.is_label_value("a*") and not _istio.is_label_value("x" * 64)
