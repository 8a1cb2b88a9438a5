# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_publish: the checks and the plan of kyma_publish, each check tested by its refusal."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _publish
from ansible_collections.selfjwt.kyma.plugins.module_utils._jwk import PRIVATE_JWK_MEMBERS

SERVICE_URL = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = SERVICE_URL + "/.well-known/jwks.json"

#: The role's defaults, as the role passes them (selfjwt_audience set).
SETTINGS = {
    "edge_group": "edge",
    "skip_hosts_without_keys": False,
    "extra_keys": [],
    "shard_count": 0,
    "shard_groups": {},
    "shard_overrides": {},
    "jwks_name": "edge-jwks",
    "jwks_namespace": "selfjwt-system",
    "jwks_namespace_create": True,
    "jwks_service_port": 80,
    "cluster_domain": "cluster.local",
    "issuer": SERVICE_URL,
    "jwks_uri": JWKS_URI,
    "server_image": "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine",
    "network_policy": True,
    "network_policy_from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                             "podSelector": {"matchLabels": {"app": "istiod"}}}],
    "server_port": 8080,
    "server_user": 101,
    "server_replicas": 2,
    "max_keys": 1000,
    "max_bytes": 524288,
    "budget_warn_percent": 50,
    "apirule_name": "edge-api",
    "apirule_namespace": "default",
    "apirule_host": "edge-api",
    "apirule_gateway": "kyma-system/kyma-gateway",
    "apirule_service_name": "edge-api",
    "apirule_service_namespace": "default",
    "apirule_service_port": 80,
    "apirule_timeout": None,
    "apirule_rules": [{"path": "/{**}", "methods": ["GET"]}],
    "audiences": ["edge-api"],
    "required_scopes": [],
}


def _jwk(kid):
    return {"kty": "EC", "crv": "P-256", "x": "x-" + kid, "y": "y-" + kid, "kid": kid, "alg": "ES256", "use": "sig"}


HOSTS = ("edge-01", "edge-02", "edge-03")


def _keys(hosts=HOSTS):
    return dict((host, [_jwk("k-" + host)]) for host in hosts)


def _plan(settings=None, hosts=HOSTS, keys=None, claims=None, groups=None, check_mode=False, **changes):
    values = copy.deepcopy(SETTINGS if settings is None else settings)
    values.update(changes)
    return _publish.plan(values, list(hosts), _keys(hosts) if keys is None else keys, claims or {},
                         inventory_groups=groups, check_mode=check_mode)


def _refused(**kwargs):
    with pytest.raises(_publish.PublishError) as caught:
        _plan(**kwargs)
    return str(caught.value)


def test_the_jwks_namespace_is_not_a_namespace_of_the_apirule_workloads():
    message = _refused(jwks_namespace="shop", apirule_rules=[
        {"path": "/{**}", "methods": ["GET"], "service": {"name": "orders", "namespace": "shop", "port": 80}}])
    assert "kyma_publish_jwks_namespace \"shop\" is not valid" in message
    assert "not a namespace of the APIRule's workloads (default, shop)" in message
    assert "kyma_publish_jwks_namespace_create=false" in message


def test_a_namespace_managed_elsewhere_and_no_network_policy_need_no_checks_of_their_own():
    url = "http://edge-jwks.default.svc.cluster.local"
    planned = _plan(jwks_namespace="default", jwks_namespace_create=False, network_policy=False,
                    network_policy_from=[], issuer=url, jwks_uri=url + "/.well-known/jwks.json")
    assert planned["service_url"] == url


def test_the_defaults_pass_and_give_one_issuer_at_the_service_url():
    result = _plan()
    assert result["service_url"] == SERVICE_URL
    assert result["sharded"] is False
    assert result["issuers"] == [{
        "name": "default", "issuer": SERVICE_URL, "jwks_uri": JWKS_URI, "jwks_path": "/.well-known/jwks.json",
        "discovery_path": "/.well-known/openid-configuration", "jwks_key": "jwks.json",
        "discovery_key": "openid-configuration"}]
    assert result["issuer_keys"] == {"default": [_jwk("k-" + host) for host in HOSTS]}
    assert result["key_count"] == 3
    assert result["warnings"] == [] and result["hosts_without_keys"] == []


# --------------------------------------------------------------------------------------
# The settings: every check by its refusal, the role variable named
# --------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("jwks_name", "Edge_JWKS", "DNS-1035 label"),
    ("jwks_name", "1edge", "DNS-1035 label"),
    ("jwks_namespace", "-default", "namespace name"),
    ("jwks_namespace", "x" * 64, "namespace name"),
    ("jwks_namespace", "default", "a namespace of the JWKS server alone"),
    ("jwks_namespace", "istio-system", "a namespace of the JWKS server alone"),
    ("cluster_domain", "cluster.local;}", "it must be a DNS name"),
    ("cluster_domain", "Cluster.Local", "it must be a DNS name"),
    ("cluster_domain", "c" * 254, "it must be a DNS name"),
    ("server_image", "nginx@sha256:abc", "an image reference"),
    ("server_image", "nginx unprivileged", "an image reference"),
    ("server_image", "docker.io/Nginx:1.28", "an image reference"),
    ("network_policy_from", [], "at least one peer"),
    ("network_policy_from", ["istiod"], "NetworkPolicyPeer objects"),
    ("network_policy_from", [{"podSelector": {}, "ports": [80]}], "NetworkPolicyPeer objects"),
    ("jwks_service_port", 0, "1 to 65535"),
    ("jwks_service_port", 65536, "1 to 65535"),
    ("server_port", 0, "1 to 65535"),
    ("server_port", 70000, "1 to 65535"),
    ("server_replicas", 0, "at least one server must run"),
    ("server_user", 0, "non-root user"),
    ("issuer", "edge fleet", "http(s) URL without query or fragment"),
    ("issuer", "http://edge-jwks.default.svc.cluster.local?x=1", "http(s) URL"),
    ("jwks_uri", "https://jwks.example.com/jwks.json", "under the JWKS Service " + SERVICE_URL + "/"),
    ("jwks_uri", SERVICE_URL + "/keys/openid-configuration", "not ending in /openid-configuration"),
    ("jwks_uri", SERVICE_URL + "/keys/a b.json", "A-Z a-z 0-9"),
    ("jwks_uri", SERVICE_URL + "/", "under the JWKS Service"),
    ("max_keys", -1, "0 for no limit"),
    ("max_bytes", 0, "at most 1040000 bytes"),
    ("max_bytes", 1040001, "at most 1040000 bytes"),
    ("budget_warn_percent", 101, "0 (never warn) to 100"),
    ("budget_warn_percent", -1, "0 (never warn) to 100"),
    ("shard_count", 1001, "0 (no hashed shards) to 1000"),
    ("shard_count", -1, "0 (no hashed shards) to 1000"),
    ("shard_groups", ["plant-a"], "maps inventory group names"),
    ("shard_overrides", "edge-01=s1", "maps host names"),
    ("apirule_name", "Edge-API", "DNS subdomain name"),
    ("apirule_name", "a" * 254, "DNS subdomain name"),
    ("apirule_namespace", "Default", "namespace name"),
    ("apirule_host", "API.example.com", "lowercase short host name"),
    ("apirule_host", "*.com", "wildcard"),
    ("apirule_gateway", "kyma-gateway.kyma-system", "namespace/name"),
    ("apirule_service_name", "1orders", "DNS-1035 label"),
    ("apirule_service_namespace", "shop_floor", "namespace name"),
    ("apirule_service_port", 0, "1 to 65535"),
    ("apirule_timeout", 0, "1 to 3900 seconds"),
    ("apirule_timeout", 3901, "1 to 3900 seconds"),
    ("audiences", [""], "list of non-empty strings"),
    ("audiences", "edge-api", "list of non-empty strings"),
    ("required_scopes", ["read", 7], "list of non-empty strings"),
    ("apirule_rules", [], "at least one rule"),
]


BAD_SETTING_IDS = ["%s-%d" % (case[0], index) for index, case in enumerate(BAD_SETTINGS)]


@pytest.mark.parametrize("name,value,rule", BAD_SETTINGS, ids=BAD_SETTING_IDS)
def test_a_bad_setting_is_refused_naming_the_role_variable(name, value, rule):
    message = _refused(**{name: value})
    shown = "%d rules" % len(value) if name == "apirule_rules" else value
    assert "kyma_publish_%s %s is not valid: " % (name, json.dumps(shown)) in message
    assert rule in message


@pytest.mark.parametrize("name,value", [
    ("server_port", 65535), ("server_port", 1), ("max_keys", 0),
    ("max_bytes", 1040000), ("budget_warn_percent", 0), ("budget_warn_percent", 100), ("shard_count", 1000),
    ("apirule_timeout", 3900), ("apirule_timeout", 1), ("apirule_host", "*.apps.example.com"),
    ("apirule_host", "orders.example.com"), ("apirule_name", "edge.api"), ("apirule_namespace", "0-edge"),
    ("issuer", "https://edge.example.com/fleet"), ("jwks_uri", SERVICE_URL + "/keys/edge.json"),
    ("required_scopes", ["orders.read"]), ("cluster_domain", "cluster.local"),
    ("server_image", "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine@sha256:" + "0" * 64),
    ("server_image", "registry.local:5000/jwks/nginx"),
])
def test_the_limits_of_a_setting_pass(name, value):
    assert _plan(**{name: value})["issuers"]


@pytest.mark.parametrize("port", [1, 8080, 65535])
def test_the_service_port_is_part_of_the_urls(port):
    url = "%s:%d" % (SERVICE_URL, port)
    result = _plan(jwks_service_port=port, issuer=url, jwks_uri=url + "/.well-known/jwks.json")
    assert result["service_url"] == url and result["issuers"][0]["jwks_path"] == "/.well-known/jwks.json"


def test_every_bad_setting_is_reported_at_once():
    message = _refused(jwks_name="Bad", apirule_gateway="x.y", apirule_rules=[{"path": "/.*", "methods": ["GET"]}])
    assert "kyma_publish_jwks_name \"Bad\" is not valid" in message
    assert "kyma_publish_apirule_gateway \"x.y\" is not valid" in message
    assert "kyma_publish_apirule_rules[0]" in message


def test_service_url_follows_name_namespace_domain_and_port():
    assert _publish.service_url("fleet-jwks", "edge-system", "cluster.local", 8080) \
        == "http://fleet-jwks.edge-system.svc.cluster.local:8080"
    assert _publish.service_url("edge-jwks", "default", "example.internal", 80) \
        == "http://edge-jwks.default.svc.example.internal"
    # The JWKS URL must be under the Service URL with its port.
    message = _refused(jwks_service_port=8080)
    assert "kyma_publish_jwks_uri" in message and SERVICE_URL + ":8080/.well-known/jwks.json" in message


# --------------------------------------------------------------------------------------
# The APIRule rules (the CRD's rules)
# --------------------------------------------------------------------------------------

BAD_RULES = [
    ({"path": "/.*", "methods": ["GET"]}, "regular expressions such as /.* are not allowed"),
    ({"path": "/foo(.*)", "methods": ["GET"]}, "regular expressions such as /.* are not allowed"),
    ({"path": "orders", "methods": ["GET"]}, "the path must be an exact path"),
    ({"path": 7, "methods": ["GET"]}, "the path must be an exact path"),
    ({"path": "/a/{**}/b/{*}", "methods": ["GET"]}, "{**} may appear once, after every other {*}"),
    ({"path": "/{**}/a/{**}", "methods": ["GET"]}, "{**} may appear once"),
    ({"path": "/a", "methods": []}, "methods must be a non-empty list"),
    ({"path": "/a", "methods": "GET"}, "methods must be a non-empty list"),
    ({"path": "/a", "methods": ["GET"], "timeout": 0}, "the timeout must be 1 to 3900 seconds"),
    ({"path": "/a", "methods": ["GET"], "timeout": 5000}, "the timeout must be 1 to 3900 seconds"),
    ({"path": "/a", "methods": ["GET"], "authorizations": [{}]}, "authorizations[0] needs audiences or requiredScopes"),
    ({"path": "/a", "methods": ["GET"], "authorizations": [{"requiredScopes": ["r"]}, {"audiences": []}]},
     "authorizations[1].audiences must be a non-empty list of non-empty strings"),
    ({"path": "/a", "methods": ["GET"], "authorizations": [{"audiences": "edge-api"}]},
     "authorizations[0].audiences must be a non-empty list"),
    ({"path": "/a", "methods": ["GET"], "authorizations": [{"requiredScopes": [""]}]},
     "authorizations[0].requiredScopes must be a non-empty list of non-empty strings"),
]


@pytest.mark.parametrize("rule,problem", BAD_RULES, ids=[str(index) for index in range(len(BAD_RULES))])
def test_a_bad_rule_is_refused_with_its_index_and_the_problem(rule, problem):
    message = _refused(apirule_rules=[{"path": "/ok", "methods": ["GET"]}, rule])
    assert message.startswith("kyma_publish_apirule_rules[1] %s is not a valid APIRule v2 rule: " % json.dumps(rule))
    assert problem in message


@pytest.mark.parametrize("service", [
    {"name": "Legacy", "port": 9000},
    {"name": "legacy", "port": 0},
    {"name": "legacy", "port": 65536},
    {"name": "legacy", "namespace": "Old", "port": 9000},
    "legacy",
])
def test_a_bad_rule_service_is_refused(service):
    message = _refused(apirule_rules=[{"path": "/legacy/{**}", "methods": ["GET"], "service": service}])
    assert "kyma_publish_apirule_rules entry for path /legacy/{**} has an invalid service %s" % json.dumps(service) \
        in message
    assert "a port 1-65535" in message


@pytest.mark.parametrize("path", ["/orders", "/orders/{*}/items", "/legacy/{**}", "/*", "/{*}/a/{**}", "/%2Fx", "/a:b@c"])
def test_valid_rule_paths_pass(path):
    assert _plan(apirule_rules=[{"path": path, "methods": ["GET"]}])["rules"][0]["path"] == path


def test_rules_are_rendered_with_own_or_default_authorizations_and_services():
    rules = [
        {"path": "/orders/{*}/items", "methods": ["GET", "HEAD"]},
        {"path": "/orders", "methods": ["POST"], "timeout": 30,
         "authorizations": [{"audiences": ["orders-api"], "requiredScopes": ["orders.write"]},
                            {"requiredScopes": ["admin"], "audiences": None}]},
        {"path": "/health", "methods": ["GET"], "authorizations": []},
        {"path": "/legacy/{**}", "methods": ["GET"], "service": {"name": "legacy", "port": 9000}},
        {"path": "/old", "methods": ["GET"], "service": {"name": "old", "namespace": "attic", "port": "81"},
         "timeout": None},
    ]
    result = _plan(apirule_rules=rules, audiences=["edge-api"], required_scopes=[], apirule_service_namespace="shop")
    default = [{"audiences": ["edge-api"]}]
    assert result["rules"] == [
        {"path": "/orders/{*}/items", "methods": ["GET", "HEAD"], "authorizations": default},
        {"path": "/orders", "methods": ["POST"], "timeout": 30,
         "authorizations": [{"audiences": ["orders-api"], "requiredScopes": ["orders.write"]},
                            {"requiredScopes": ["admin"]}]},
        {"path": "/health", "methods": ["GET"], "authorizations": []},
        {"path": "/legacy/{**}", "methods": ["GET"], "service": {"name": "legacy", "namespace": "shop", "port": 9000},
         "authorizations": default},
        {"path": "/old", "methods": ["GET"], "service": {"name": "old", "namespace": "attic", "port": 81},
         "authorizations": default},
    ]
    # Without audiences and scopes the rules check a valid token only.
    assert _plan(audiences=[], required_scopes=[])["rules"][0]["authorizations"] == []
    assert _plan(audiences=[], required_scopes=["read"])["rules"][0]["authorizations"] == [{"requiredScopes": ["read"]}]


def test_an_empty_audience_is_a_warning_that_says_what_it_means():
    rules = [{"path": "/a", "methods": ["GET"]}, {"path": "/b", "methods": ["GET"], "authorizations": []},
             {"path": "/c", "methods": ["GET"], "authorizations": [{"audiences": ["c"]}]}]
    warnings = _plan(audiences=[], apirule_rules=rules)["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("kyma_publish_audiences is empty")
    assert "rules for /a check no audience" in warnings[0]
    assert "accept any audience from this issuer" in warnings[0]
    assert _plan(audiences=["edge-api"], apirule_rules=rules)["warnings"] == []
    # Rules that all set their own authorizations do not use kyma_publish_audiences.
    assert _plan(audiences=[], apirule_rules=rules[1:])["warnings"] == []


# --------------------------------------------------------------------------------------
# The hosts: keys, private members, claims
# --------------------------------------------------------------------------------------

def test_an_empty_group_without_extra_keys_is_refused():
    message = _refused(hosts=[], keys={})
    assert "The inventory group \"edge\" has no hosts and kyma_publish_extra_keys is empty" in message
    assert "set kyma_publish_edge_group (or selfjwt_edge_group)" in message
    assert _plan(hosts=[], keys={}, extra_keys=[_jwk("extra")])["issuer_keys"] == {"default": [_jwk("extra")]}


def test_hosts_without_keys_are_refused_by_name():
    keys = dict(_keys(), **{"edge-02": None, "edge-03": []})
    message = _refused(keys=keys)
    assert "These edge hosts have no public keys" in message and "edge-02, edge-03." in message
    assert "kyma_publish_skip_hosts_without_keys=true" in message


def test_skipped_hosts_and_check_mode_are_warnings():
    keys = dict(_keys(), **{"edge-02": None})
    result = _plan(keys=keys, skip_hosts_without_keys=True)
    assert result["hosts_without_keys"] == ["edge-02"]
    assert result["issuer_keys"]["default"] == [_jwk("k-edge-01"), _jwk("k-edge-03")]
    assert result["warnings"] == ["Publishing without the keys of edge-02: they have no edge_keys_public_jwks, so "
                                  "their tokens will be rejected."]
    checked = _plan(keys=keys, check_mode=True)
    assert "(in check mode their new keys do not exist yet)" in checked["warnings"][0]
    assert _plan(keys=dict((host, None) for host in HOSTS), check_mode=True)["key_count"] == 0


@pytest.mark.parametrize("member", PRIVATE_JWK_MEMBERS)
def test_every_private_member_of_jose_is_refused_naming_host_and_kid_not_the_value(member):
    secret = "very-secret-private-value-%s" % member
    keys = _keys()
    keys["edge-02"] = [_jwk("k-edge-02"), dict(_jwk("leaked"), **{member: secret})]
    message = _refused(keys=keys)
    assert "Private key material was offered for publishing, so nothing was published" in message
    assert "edge-02 (kid leaked: members %s)" % member in message
    assert secret not in message


def test_a_private_extra_key_and_a_single_jwk_are_checked_too():
    message = _refused(extra_keys=[dict(_jwk("extra"), d="x" * 40, p="y" * 40)])
    assert "kyma_publish_extra_keys (kid extra: members d, p)" in message
    keys = _keys()
    keys["edge-01"] = dict(_jwk("single"), k="z" * 40)
    assert "edge-01 (kid single: members k)" in _refused(keys=keys)


def test_claims_the_apirule_would_reject_are_refused():
    claims = {"edge-01": {"iss": SERVICE_URL, "sub": "edge-01", "aud": "edge-api"},
              "edge-02": {"iss": "http://wrong.example", "sub": "edge-02", "aud": ["edge-api"]},
              "edge-03": {"iss": SERVICE_URL, "sub": "edge-03", "aud": ["other"]}}
    message = _refused(claims=claims)
    assert message.startswith("These edge hosts mint tokens that the APIRule would reject: "
                              "edge-02 (iss \"http://wrong.example\", aud [\"edge-api\"]); "
                              "edge-03 (iss \"%s\", aud [\"other\"])." % SERVICE_URL)
    assert "The APIRule expects iss in [\"%s\"] and audiences [\"edge-api\"]" % SERVICE_URL in message
    assert "edge-01" not in message
    # Hosts without the claims fact (not run by edge_keys in this play) are not judged.
    assert _plan(claims={"edge-01": claims["edge-01"]})["key_count"] == 3
    # A host's extra audiences are fine; the required ones must all be there.
    good = dict((host, {"iss": SERVICE_URL, "aud": ["edge-api", "x"]}) for host in HOSTS)
    assert _plan(claims=good)["key_count"] == 3
    assert "edge-01 (iss" in _refused(claims={"edge-01": {"iss": SERVICE_URL}})


def test_with_shards_each_host_must_use_its_shards_issuer():
    shards = _fleet.shard_map(HOSTS, 2)
    claims = dict((host, {"iss": _fleet.shard_url(SERVICE_URL, shards[host]), "aud": "edge-api"}) for host in HOSTS)
    assert _plan(claims=claims, shard_count=2)["sharded"] is True
    wrong = dict(claims, **{"edge-02": {"iss": SERVICE_URL, "aud": "edge-api"}})
    message = _refused(claims=wrong, shard_count=2)
    assert "edge-02 (iss \"%s\", aud \"edge-api\", its shard expects iss \"%s\")" % (
        SERVICE_URL, _fleet.shard_url(SERVICE_URL, shards["edge-02"])) in message
    assert "With issuer shards each host's iss must be the issuer of its shard" in message


# --------------------------------------------------------------------------------------
# The shard plan
# --------------------------------------------------------------------------------------

def test_shards_get_their_own_issuer_urls_documents_and_configmap():
    hosts = ["edge-%02d" % index for index in range(12)] + ["site-1", "site-2"]
    keys = _keys(hosts)
    keys["site-1"] = keys["site-2"] = [_jwk("site-key")]
    groups = {"plant": hosts[:3]}
    result = _plan(hosts=hosts, keys=keys, groups=groups, shard_count=2, shard_groups={"plant": "plant-a"},
                   shard_overrides={"site-1": "pinned", "site-2": "pinned"}, extra_keys=[_jwk("extra")],
                   jwks_uri=SERVICE_URL + "/keys/edge.json")
    shards = _fleet.shard_map(sorted(hosts), 2, {"plant": "plant-a"}, groups, {"site-1": "pinned", "site-2": "pinned"})
    names = sorted(set(shards.values()))
    assert [entry["name"] for entry in result["issuers"]] == names
    pinned = [entry for entry in result["issuers"] if entry["name"] == "pinned"][0]
    assert pinned == {
        "name": "pinned", "issuer": SERVICE_URL + "/shards/pinned", "jwks_uri": SERVICE_URL + "/shards/pinned/keys/edge.json",
        "jwks_path": "/shards/pinned/keys/edge.json", "discovery_path": "/shards/pinned/keys/openid-configuration",
        "jwks_key": "jwks-pinned.json", "discovery_key": "openid-configuration-pinned", "configmap": "edge-jwks-pinned"}
    # The site key once per host of the shard (jwks_publish publishes it once), extra keys in every shard.
    assert result["issuer_keys"]["pinned"] == [_jwk("site-key"), _jwk("site-key"), _jwk("extra")]
    for name in names:
        members = [host for host in sorted(hosts) if shards[host] == name]
        assert result["issuer_keys"][name] == [key for host in members for key in keys[host]] + [_jwk("extra")]
    assert result["key_count"] == len(hosts) + len(names)


def test_a_shard_setting_the_fleet_cannot_follow_is_refused():
    message = _refused(shard_groups={"plant": "plant-a"}, groups={"plant": ["edge-01"]})
    assert "host edge-02 is in none of the groups of selfjwt_shard_groups" in message
    assert "shard name 'Bad_Name' is not valid" in _refused(shard_overrides={"edge-01": "Bad_Name"})


def test_a_fleet_of_10000_hosts_is_planned_in_one_pass():
    hosts = ["edge-%05d" % index for index in range(10000)]
    keys = dict((host, [{"kty": "EC", "kid": host}]) for host in hosts)
    shards = _fleet.shard_map(hosts, 24)
    claims = dict((host, {"iss": _fleet.shard_url(SERVICE_URL, shards[host]), "aud": ["edge-api"]}) for host in hosts)
    result = _plan(hosts=hosts, keys=keys, claims=claims, shard_count=24)
    assert len(result["issuers"]) == 24 and result["key_count"] == 10000
    assert sorted(kid for jwks in result["issuer_keys"].values() for kid in (key["kid"] for key in jwks)) == hosts


# --------------------------------------------------------------------------------------
# configmap_data (filter jwks_configmap_data)
# --------------------------------------------------------------------------------------

def _published(name, jwks_text, kids, discovery=None, shard=True):
    suffix = "-" + name if shard else ""
    return {"item": {"name": name, "issuer": "http://i/" + name, "jwks_uri": "http://i/%s/jwks.json" % name,
                     "jwks_key": "jwks%s.json" % suffix, "discovery_key": "openid-configuration" + suffix,
                     "configmap": "edge-jwks-" + name},
            "document": jwks_text, "discovery": discovery or {"issuer": "http://i/" + name, "b": [1]},
            "kids": kids, "size": len(jwks_text)}


def test_configmap_data_without_shards_puts_everything_into_one_configmap():
    result = _publish.configmap_data([_published("default", '{"keys":[]}\n', ["a", "b"], shard=False)], False,
                                     "server {}\n\n", "nginx.conf")
    discovery = '{\n  "b": [\n    1\n  ],\n  "issuer": "http://i/default"\n}\n'
    assert result["documents"] == {"jwks.json": '{"keys":[]}\n', "openid-configuration": discovery}
    assert result["data"] == {"jwks.json": '{"keys":[]}\n', "openid-configuration": discovery,
                              "nginx.conf": "server {}\n"}
    assert result["sizes"] == {"default": {"issuer": "http://i/default", "jwks_uri": "http://i/default/jwks.json",
                                           "keys": 2, "bytes": 12}}
    assert result["problems"] == []


def test_configmap_data_with_shards_keeps_the_documents_out_of_the_main_configmap():
    published = [_published("s000", "{}\n", ["a"]), _published("s001", "{}\n", [])]
    result = _publish.configmap_data(published, True, "server {}", "nginx.conf")
    assert result["data"] == {"nginx.conf": "server {}\n"}
    assert sorted(result["documents"]) == ["jwks-s000.json", "jwks-s001.json", "openid-configuration-s000",
                                           "openid-configuration-s001"]
    assert [result["sizes"][name]["keys"] for name in ("s000", "s001")] == [1, 0]


def test_a_shard_over_the_configmap_limit_is_a_problem_that_names_it():
    published = [_published("s000", "x" * 990, ["a"]), _published("s001", "y" * 100, ["b"])]
    result = _publish.configmap_data(published, True, "server {}", "nginx.conf", max_bytes=1000)
    assert len(result["problems"]) == 1
    assert result["problems"][0].startswith("The ConfigMap edge-jwks-s000 of shard s000 would hold")
    assert "Lower kyma_publish_max_bytes" in result["problems"][0]


def test_the_main_configmap_over_the_limit_is_a_problem():
    result = _publish.configmap_data([_published("default", "x" * 990, ["a"], shard=False)], False, "server {}",
                                     "nginx.conf", max_bytes=1000)
    assert len(result["problems"]) == 1
    assert result["problems"][0].startswith("The JWKS ConfigMap would hold")
    assert _publish.configmap_data([_published("default", "x" * 10, ["a"], shard=False)], False, "server {}",
                                   "nginx.conf", max_bytes=1000)["problems"] == []


def test_the_default_limit_is_the_one_mebibyte_of_a_configmap():
    assert _publish.CONFIGMAP_MAX_BYTES == 1024 * 1024


def test_the_filter_refuses_what_is_not_a_jwks_publish_result_list():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.selfjwt.kyma.plugins.filter.jwks_configmap_data import jwks_configmap_data

    with pytest.raises(AnsibleFilterError, match="results of a looped"):
        jwks_configmap_data({"results": []}, server_config="x")
    with pytest.raises(AnsibleFilterError, match="lacks 'item'"):
        jwks_configmap_data([{"document": "{}"}], server_config="x")
    with pytest.raises(AnsibleFilterError, match="needs server_config"):
        jwks_configmap_data([])
    assert jwks_configmap_data([], server_config="x")["data"] == {"nginx.conf": "x\n"}
