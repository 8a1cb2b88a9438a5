# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fleet scale: JWKS budgets, issuer shards and site keys.

Two parts, to keep the cost low:

* In-process, a simulated fleet of 10,000 edge hosts (EC P-256 keys made in bulk with
  cryptography, JWKs built here from the public numbers, not by the collection) goes through
  the code kyma_publish runs for the cluster side: the filter ``shard_plan`` (shards of the
  hosts, keys per shard) and ``_jwks.plan`` with the role's default budget (what
  jwks_publish does for each shard). Checked: the unsharded JWKS is refused with the fixes,
  the sharded JWKS fit with both key generations of a rotation, 1,000 added hosts move no
  existing host, revocation touches one shard, site keys are published once, and tokens of
  sampled hosts verify against their shard's JWKS and fail against another shard's (judged by
  the gateway stand-in's Envoy re-implementation, not by the collection's JOSE code).
* One ansible-playbook run: edge_keys with site keys on three local hosts, then kyma_publish
  in render mode for them plus 45 simulated hosts in shards (hash, group mapping, override),
  then a budget refusal. The rendered objects are validated (APIRule CRD + CEL,
  kubernetes-validate), and tokens go through the stand-in gateway with the rendered APIRule.
"""

from __future__ import annotations

import base64
import json
import random
import stat
import sys
import time

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

import kyma_publish_support as support
from ansible_collections.selfjwt.kyma.plugins.filter import shard_plan as shard_plan_filter
from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _jose, _jwks

sys.path.insert(0, str(support.REPO))
from tools.kyma_standin import envoy_jwt  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.apirule import ApiRule  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.gateway import Gateway  # noqa: E402  pylint: disable=wrong-import-position

FLEET = 10000
ADDED = 1000
#: Shards for 10,000 hosts with the role's default budget (1,000 keys, 512 KiB per JWKS) and
#: room for a rotation of every host at once (two keys per host): about 420 hosts per shard.
SHARDS = 24
MAX_KEYS, MAX_BYTES = 1000, 524288
CONFIGMAP_MAX = 1048576
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = ISSUER + "/.well-known/jwks.json"
SAMPLES = 12


def _b64(value):
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode("ascii")


def _ec_jwk(private, kid):
    numbers = private.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x), "y": _b64(numbers.y), "kid": kid,
            "alg": "ES256", "use": "sig"}


def _hosts(count, start=0):
    return ["edge-%05d" % index for index in range(start, start + count)]


@pytest.fixture(scope="module")
def fleet():
    """11,000 hosts: {host: (private key, public JWK)}; the first 10,000 are the fleet."""
    keys = {}
    for host in _hosts(FLEET + ADDED):
        private = ec.generate_private_key(ec.SECP256R1())
        keys[host] = (private, _ec_jwk(private, "k1-" + host))
    return keys


def _host_keys(fleet, hosts):
    return dict((host, [fleet[host][1]]) for host in hosts)


def _plan(host_keys, **settings):
    return shard_plan_filter.shard_plan(host_keys, **settings)


def _publish(keys, **extra):
    return _jwks.plan(keys, max_keys=MAX_KEYS, max_bytes=MAX_BYTES, budget_warn_percent=50, **extra)


@pytest.fixture(scope="module")
def sharded(fleet):
    """The 10,000-host fleet in SHARDS hashed shards: (plan, {shard: jwks_publish-like result})."""
    plan = _plan(_host_keys(fleet, _hosts(FLEET)), count=SHARDS)
    return plan, dict((shard, _publish(keys)) for shard, keys in plan["keys"].items())


# --------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------

def test_unsharded_fleet_is_refused_with_the_numbers_and_the_fixes(fleet):
    keys = [fleet[host][1] for host in _hosts(FLEET)]
    with pytest.raises(_jose.JoseError) as caught:
        _publish(keys)
    message = str(caught.value)
    assert "10000 keys, more than the budget of 1000 keys" in message
    assert "more than the budget of 524288 bytes" in message
    assert "10000 EC P-256" in message
    for fix in ("smaller key type", "without x5c", "shards", "site"):
        assert fix in message
    assert "nothing was published" in message


def test_sharded_fleet_fits_the_budget_and_a_configmap(sharded):
    plan, published = sharded
    assert sorted(plan["keys"]) == ["s%03d" % index for index in range(SHARDS)]
    assert sum(len(result["kids"]) for result in published.values()) == FLEET
    for shard, result in published.items():
        assert len(result["kids"]) <= MAX_KEYS // 2, shard
        assert result["size"] <= MAX_BYTES // 2, shard
        assert result["warnings"] == [], shard
        discovery = _jwks.discovery(_fleet.shard_url(ISSUER, shard), _fleet.shard_url(JWKS_URI, shard),
                                    result["jwks"])[1]
        assert result["size"] + len(discovery) < CONFIGMAP_MAX
    # Every host's key is in exactly the JWKS of its shard.
    for host, shard in plan["hosts"].items():
        assert "k1-" + host in published[shard]["kids"]


def test_budget_holds_during_a_rotation_of_every_host(fleet, sharded):
    plan = sharded[0]
    second = {}
    for host in _hosts(FLEET):
        second[host] = [fleet[host][1], _ec_jwk(ec.generate_private_key(ec.SECP256R1()), "k2-" + host)]
    rotating = _plan(second, count=SHARDS)
    assert rotating["hosts"] == plan["hosts"]
    largest = 0
    for shard, keys in rotating["keys"].items():
        result = _publish(keys)
        assert len(result["kids"]) == 2 * len(sharded[1][shard]["kids"])
        largest = max(largest, result["size"])
    assert largest <= MAX_BYTES
    # With fewer shards the same rotation is refused before anything is published.
    crowded = _plan(dict((host, second[host]) for host in _hosts(3000)), count=2)
    with pytest.raises(_jose.JoseError, match="more than the budget of 1000 keys"):
        _publish(crowded["keys"]["s000"])


def test_a_shard_near_its_budget_warns_before_a_rotation_would_fail(fleet):
    plan = _plan(_host_keys(fleet, _hosts(1200)), count=2)
    warnings = _publish(plan["keys"]["s000"])["warnings"]
    assert len(warnings) == 1 and "of its budget of 1000 keys (warning above 50%)" in warnings[0]


# --------------------------------------------------------------------------------------
# Shard stability
# --------------------------------------------------------------------------------------

def test_adding_1000_hosts_moves_no_existing_host(fleet, sharded):
    before = sharded[0]["hosts"]
    after = _plan(_host_keys(fleet, _hosts(FLEET + ADDED)), count=SHARDS)["hosts"]
    assert len(after) == FLEET + ADDED
    assert dict((host, after[host]) for host in before) == before
    assert set(after.values()) == set(before.values())


def test_group_mapping_and_overrides_are_stable_and_win_over_the_hash(fleet):
    hosts = _hosts(FLEET + ADDED)
    inventory_groups = {"plant_a": hosts[:500], "plant_b": hosts[500:900] + hosts[FLEET:FLEET + 100]}
    settings = {"count": SHARDS, "groups": {"plant_a": "plant-a", "plant_b": "plant-b"},
                "inventory_groups": inventory_groups, "overrides": {hosts[42]: "pinned"}}
    before = _plan(_host_keys(fleet, hosts[:FLEET]), **settings)["hosts"]
    after = _plan(_host_keys(fleet, hosts), **settings)["hosts"]
    assert dict((host, after[host]) for host in before) == before
    assert after[hosts[42]] == "pinned"
    assert set(after[host] for host in hosts[:42] + hosts[43:500]) == {"plant-a"}
    assert set(after[host] for host in inventory_groups["plant_b"]) == {"plant-b"}
    assert after[hosts[FLEET + 200]] == _fleet.hashed_shard(hosts[FLEET + 200], SHARDS)


def test_more_shards_move_hosts_only_into_the_new_shards(sharded):
    before = sharded[0]["hosts"]
    after = _fleet.shard_map(sorted(before), count=SHARDS + 8)
    moved = [host for host in before if after[host] != before[host]]
    assert moved, "a new shard count must move some hosts"
    assert set(after[host] for host in moved) <= set("s%03d" % index for index in range(SHARDS, SHARDS + 8))
    assert len(moved) < FLEET * 0.4


# --------------------------------------------------------------------------------------
# Tokens against shards, revocation per shard, site keys
# --------------------------------------------------------------------------------------

def _token(private, kid, issuer, subject):
    now = int(time.time())
    return jwt.encode({"iss": issuer, "sub": subject, "iat": now, "nbf": now, "exp": now + 300,
                       "jti": "%s-%d" % (subject, now)}, private, algorithm="ES256", headers={"kid": kid})


class _Store:
    def __init__(self, documents):
        self.parsed = dict((issuer, envoy_jwt.parse_jwks(text)) for issuer, text in documents.items())

    def get(self, issuer):
        return self.parsed.get(issuer)


def _apirule(issuers):
    return ApiRule({"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
                    "metadata": {"name": "edge-api", "namespace": "default"},
                    "spec": {"hosts": ["edge-api"], "rules": [{"path": "/{**}", "methods": ["GET"], "jwt": {
                        "authentications": [{"issuer": i, "jwksUri": u} for i, u in issuers]}}]}})


def test_sampled_tokens_verify_only_against_their_shards_jwks(fleet, sharded):
    plan, published = sharded
    shards = sorted(published)
    issuers = dict((shard, _fleet.shard_url(ISSUER, shard)) for shard in shards)
    gateway = Gateway(_apirule([(issuers[s], _fleet.shard_url(JWKS_URI, s)) for s in shards]),
                      _Store(dict((issuers[s], published[s]["document"]) for s in shards)))
    for host in random.Random(7).sample(_hosts(FLEET), SAMPLES):
        shard = plan["hosts"][host]
        other = shards[(shards.index(shard) + 1) % len(shards)]
        private, public = fleet[host]
        good = _token(private, public["kid"], issuers[shard], host)
        status, parsed = envoy_jwt.parse_token(good)
        assert status == envoy_jwt.OK
        assert envoy_jwt.verify_signature(parsed, envoy_jwt.parse_jwks(published[shard]["document"])) == envoy_jwt.OK
        assert envoy_jwt.verify_signature(parsed, envoy_jwt.parse_jwks(published[other]["document"])) \
            == envoy_jwt.JWKS_KID_ALG_MISMATCH
        assert gateway.authenticate(good)[0] == envoy_jwt.OK
        # The host's key under another shard's issuer: that shard's JWKS does not hold it.
        assert gateway.authenticate(_token(private, public["kid"], issuers[other], host))[0] \
            == envoy_jwt.JWKS_KID_ALG_MISMATCH
        # A stranger's key under the host's kid: the signature does not verify.
        forged = _token(ec.generate_private_key(ec.SECP256R1()), public["kid"], issuers[shard], host)
        assert gateway.authenticate(forged)[0] == envoy_jwt.JWT_VERIFICATION_FAIL


def test_revoking_a_host_changes_only_its_shards_jwks(fleet, sharded):
    plan, published = sharded
    host = _hosts(FLEET)[1234]
    kid = "k1-" + host
    changed = []
    for shard, keys in plan["keys"].items():
        result = _publish(keys, existing=published[shard]["document"], revoke=[kid])
        if result["changed"]:
            changed.append(shard)
            assert result["removed"] == [kid] and kid not in result["kids"]
        else:
            assert result["document"] == published[shard]["document"]
    assert changed == [plan["hosts"][host]]


def test_site_keys_publish_one_key_per_site(fleet):
    # 2,000 hosts in 100 sites of 20: every host of a site offers the site's key.
    hosts = _hosts(2000)
    site_keys = dict((index, fleet[hosts[index * 20]][1]) for index in range(100))
    host_keys = dict((host, [site_keys[position // 20]]) for position, host in enumerate(hosts))
    plan = _plan(host_keys)
    assert list(plan["keys"]) == [""]
    result = _publish(plan["keys"][""])
    assert len(result["kids"]) == 100 and result["warnings"] == []
    # Sharded by site group, a site stays whole in one shard and is published once there.
    inventory_groups = dict(("site%03d" % index, hosts[index * 20:(index + 1) * 20]) for index in range(100))
    mapping = dict(("site%03d" % index, "s%03d" % (index % 4)) for index in range(100))
    by_site = _plan(host_keys, groups=mapping, inventory_groups=inventory_groups)
    assert sorted(len(_publish(keys)["kids"]) for keys in by_site["keys"].values()) == [25] * 4


# --------------------------------------------------------------------------------------
# One playbook run: edge_keys with site keys, kyma_publish with shards, a budget refusal
# --------------------------------------------------------------------------------------

SIMULATED = 45
SITE_HOSTS = ("site-a1", "site-a2", "solo-b1")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, fleet):
    support.collections_path()
    workdir = tmp_path_factory.mktemp("fleet_scale")
    simulated = _hosts(SIMULATED)
    shared = {"selfjwt_issuer": ISSUER, "selfjwt_shard_count": 3,
              "selfjwt_shard_groups": {"plant_x": "plant-x"}, "selfjwt_shard_overrides": {"edge-00007": "pinned"}}
    real = dict((host, {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        "edge_keys_key_dir": str(workdir / "keys" / host), "edge_keys_refresher_enabled": False,
                        "edge_keys_key_scope": "site" if host.startswith("site-") else "host",
                        "selfjwt_site": "a" if host.startswith("site-") else ""})
                for host in SITE_HOSTS)
    fake = {}
    for host in simulated:
        fake[host] = {"ansible_connection": "local", "edge_keys_public_jwks": [fleet[host][1]]}
    inventory = {"all": {
        "vars": shared,
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {"edge": {"children": {"real": {"hosts": real}, "simulated": {"hosts": fake}}},
                     "plant_x": {"hosts": dict((host, {}) for host in simulated[10:20])}},
    }}
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    out = workdir / "out"
    plays = [
        {"name": "edge keys", "hosts": "real", "gather_facts": False,
         "roles": [{"role": "selfjwt.kyma.edge_keys"}]},
        {"name": "publish", "hosts": "localhost", "gather_facts": False,
         "roles": [{"role": "selfjwt.kyma.kyma_publish", "vars": {"kyma_publish_output_dir": str(out)}}],
         "tasks": [{"name": "record the facts", "ansible.builtin.copy": {
             "content": "{{ {'kids': kyma_publish_published_kids, 'by_issuer': kyma_publish_jwks_by_issuer,"
                        " 'first': kyma_publish_jwks, 'issuers': kyma_publish_issuers} | to_json }}",
             "dest": str(workdir / "facts.json"), "mode": "0644"}}]},
        {"name": "budget", "hosts": "localhost", "gather_facts": False, "tasks": [{
            "name": "refuse",
            "block": [{"name": "run with a small budget", "ansible.builtin.include_role": {
                "name": "selfjwt.kyma.kyma_publish"},
                "vars": {"kyma_publish_output_dir": str(workdir / "refused"), "kyma_publish_max_keys": 5}}],
            "rescue": [{"name": "record", "ansible.builtin.copy": {
                "content": "{{ ansible_failed_result.results | default([]) | selectattr('failed', 'defined')"
                           " | selectattr('failed') | map(attribute='msg') | join(' ') }}",
                "dest": str(workdir / "refused.txt"), "mode": "0644"}}]}]},
    ]
    (workdir / "site.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    run = support.run_playbook(workdir / "site.yml", workdir / "inventory.yml", workdir)
    return {"dir": out, "work": workdir, "output": run.stdout, "simulated": simulated, "shared": shared}


def _expected_shards(rendered):
    hosts = rendered["simulated"] + list(SITE_HOSTS)
    shared = rendered["shared"]
    return _fleet.shard_map(hosts, shared["selfjwt_shard_count"], shared["selfjwt_shard_groups"],
                            {"plant_x": rendered["simulated"][10:20]}, shared["selfjwt_shard_overrides"])


def test_site_key_is_shared_by_the_sites_hosts_only(rendered):
    keys = dict((host, rendered["work"] / "keys" / host / "signing.pem") for host in SITE_HOSTS)
    for path in keys.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys["site-a1"].read_bytes() == keys["site-a2"].read_bytes()
    assert keys["solo-b1"].read_bytes() != keys["site-a1"].read_bytes()
    pem = keys["site-a1"].read_text()
    assert pem.strip().splitlines()[1] not in rendered["output"]


def test_sharded_render_has_one_authentication_and_one_configmap_per_shard(rendered):
    expected = _expected_shards(rendered)
    shards = sorted(set(expected.values()))
    assert "pinned" in shards and "plant-x" in shards
    apirule = support.load_manifest(rendered["dir"] / "apirule.yaml")
    assert support.ApiRuleValidator().errors(apirule) == []
    authentications = apirule["spec"]["rules"][0]["jwt"]["authentications"]
    assert authentications == [{"issuer": _fleet.shard_url(ISSUER, s), "jwksUri": _fleet.shard_url(JWKS_URI, s)}
                               for s in shards]
    kustomization = yaml.safe_load((rendered["dir"] / "kustomization.yaml").read_text())
    # The per-shard ConfigMaps follow the main one, in the role's order of the other manifests.
    main_configmap = support.MANIFESTS.index("jwks-configmap.yaml") + 1
    assert kustomization["resources"] == (list(support.MANIFESTS[:main_configmap])
                                          + ["jwks-configmap-%s.yaml" % s for s in shards]
                                          + list(support.MANIFESTS[main_configmap:]))
    deployment = support.load_manifest(rendered["dir"] / "jwks-deployment.yaml")
    volume = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwks"][0]
    assert [source["configMap"]["name"] for source in volume["projected"]["sources"]] == (
        ["edge-jwks"] + ["edge-jwks-%s" % s for s in shards])
    main = support.load_manifest(rendered["dir"] / "jwks-configmap.yaml")
    assert sorted(main["data"]) == ["nginx.conf"]
    locations = {}
    for line in main["data"]["nginx.conf"].splitlines():
        if line.strip().startswith("location = "):
            current = line.split()[2]
        elif line.strip().startswith("alias "):
            locations[current] = line.split()[1].rstrip(";").rsplit("/", 1)[1]
    for version in support.KUBERNETES_VERSIONS[-1:]:
        for obj in [main, deployment] + [support.load_manifest(rendered["dir"] / ("jwks-configmap-%s.yaml" % s))
                                         for s in shards]:
            assert support.kubernetes_errors(obj, version) == []
    for shard in shards:
        configmap = support.load_manifest(rendered["dir"] / ("jwks-configmap-%s.yaml" % shard))
        jwks_path = "/shards/%s/.well-known/jwks.json" % shard
        assert locations[jwks_path] == "jwks-%s.json" % shard
        assert configmap["data"]["jwks-%s.json" % shard] == (rendered["dir"] / ("jwks-%s.json" % shard)).read_text()
        discovery = json.loads(configmap["data"]["openid-configuration-%s" % shard])
        assert discovery["issuer"] == _fleet.shard_url(ISSUER, shard)
        kids = [key["kid"] for key in json.loads(configmap["data"]["jwks-%s.json" % shard])["keys"]]
        members = [host for host, s in expected.items() if s == shard and host in rendered["simulated"]]
        assert set("k1-" + host for host in members) <= set(kids)
    # The site's two hosts offer one key: published once in its shard (or once in each of two shards).
    published = sum(len(json.loads((rendered["dir"] / ("jwks-%s.json" % s)).read_text())["keys"]) for s in shards)
    site_shards = set(expected[h] for h in ("site-a1", "site-a2"))
    assert published == SIMULATED + len(site_shards) + 1


def test_published_facts_cover_every_shard(rendered):
    facts = json.loads((rendered["work"] / "facts.json").read_text())
    expected = _expected_shards(rendered)
    shards = sorted(set(expected.values()))
    files = dict((_fleet.shard_url(ISSUER, s), json.loads((rendered["dir"] / ("jwks-%s.json" % s)).read_text()))
                 for s in shards)
    assert facts["by_issuer"] == files
    assert facts["issuers"] == [_fleet.shard_url(ISSUER, s) for s in shards]
    assert facts["first"] == files[facts["issuers"][0]]
    assert facts["kids"] == sorted(set(key["kid"] for jwks in files.values() for key in jwks["keys"]))
    # Each host's key is in its own shard's JWKS and in no other (what rotate_round.yml relies on).
    for host in rendered["simulated"]:
        holders = [issuer for issuer, jwks in files.items() if "k1-" + host in [k["kid"] for k in jwks["keys"]]]
        assert holders == [_fleet.shard_url(ISSUER, expected[host])]


def test_rendered_apirule_accepts_tokens_of_the_right_shard_only(rendered, fleet):
    expected = _expected_shards(rendered)
    shards = sorted(set(expected.values()))
    apirule = ApiRule(support.load_manifest(rendered["dir"] / "apirule.yaml"))
    store = _Store(dict((_fleet.shard_url(ISSUER, s), (rendered["dir"] / ("jwks-%s.json" % s)).read_text())
                        for s in shards))
    gateway = Gateway(apirule, store)
    for host in ("edge-00007", rendered["simulated"][12], rendered["simulated"][30]):
        private, public = fleet[host]
        shard = expected[host]
        other = shards[(shards.index(shard) + 1) % len(shards)]
        assert gateway.authenticate(_token(private, public["kid"], _fleet.shard_url(ISSUER, shard), host))[0] \
            == envoy_jwt.OK
        assert gateway.authenticate(_token(private, public["kid"], _fleet.shard_url(ISSUER, other), host))[0] \
            == envoy_jwt.JWKS_KID_ALG_MISMATCH


def test_role_refuses_a_jwks_over_budget_before_writing(rendered):
    message = (rendered["work"] / "refused.txt").read_text()
    assert "more than the budget of 5 keys" in message and "shards" in message
    assert not (rendered["work"] / "refused" / "apirule.yaml").exists()
