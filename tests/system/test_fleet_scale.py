# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fleet scale through the roles: issuer shards and site keys in one ansible-playbook run.

edge_keys with site keys on three local hosts, then kyma_publish in render mode for them plus
45 simulated hosts in shards (hash, group mapping, override), then a budget refusal. The
rendered objects are validated (APIRule CRD + CEL, kubernetes-validate), and tokens go through
the stand-in gateway with the rendered APIRule. The budgets and shards of a 10,000-host fleet,
in-process, are tests/unit/plugins/module_utils/test_fleet_at_scale.py.
"""

from __future__ import annotations

import json
import stat
import sys

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

import kyma_publish_support as support
from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet
from helpers import (  # pylint: disable=import-error
    StandinJwksStore as _Store, ec_public_jwk as _ec_jwk, es256_token as _token, fleet_hosts as _hosts)

sys.path.insert(0, str(support.REPO))
from tools.kyma_standin import envoy_jwt  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.apirule import ApiRule  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.gateway import Gateway  # noqa: E402  pylint: disable=wrong-import-position

ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = ISSUER + "/.well-known/jwks.json"
SIMULATED = 45
SITE_HOSTS = ("site-a1", "site-a2", "solo-b1")


@pytest.fixture(scope="module")
def fleet():
    """The simulated hosts: {host: (private key, public JWK)}."""
    keys = {}
    for host in _hosts(SIMULATED):
        private = ec.generate_private_key(ec.SECP256R1())
        keys[host] = (private, _ec_jwk(private, "k1-" + host))
    return keys


# --------------------------------------------------------------------------------------
# One playbook run: edge_keys with site keys, kyma_publish with shards, a budget refusal
# --------------------------------------------------------------------------------------

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
