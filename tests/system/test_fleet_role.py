# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kyma_publish role itself over a fleet of 10,000 edge hosts, in one ansible-playbook run.

A JSON inventory (it parses far faster than YAML at this size) holds 10,000 edge hosts with the
facts edge_keys leaves behind: ``edge_keys_public_jwks`` (one EC P-256 key each, made here with
cryptography, independently of the collection; the hosts of 50 sites of 20 share their site's
key) and ``edge_keys_token_claims`` (the issuer of the host's shard and the audience). The role
renders them in 24 hashed shards. Checked: every host's key is published in exactly its shard's
JWKS and nowhere else, each site key once per shard that holds its hosts, the ConfigMaps carry
the same bytes as the files, the APIRule names every shard, the kustomization lists every
object, and every JWKS stays within the role's default budget. The test asserts the result,
not the time (the bench section publish_role measures that).
"""

from __future__ import annotations

import json

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

import kyma_publish_support as support
from helpers import ec_public_jwk  # pylint: disable=import-error
from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet

FLEET = 10000
SHARDS = 24
SITES, SITE_SIZE = 50, 20
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
JWKS_URI = ISSUER + "/.well-known/jwks.json"
AUDIENCE = "edge-api"


def _jwk(kid):
    return ec_public_jwk(ec.generate_private_key(ec.SECP256R1()), kid)


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    support.collections_path()
    workdir = tmp_path_factory.mktemp("fleet_role")
    hosts = ["edge-%05d" % index for index in range(FLEET)]
    site_hosts = hosts[:SITES * SITE_SIZE]
    site_keys = [_jwk("site-%02d" % index) for index in range(SITES)]
    shards = _fleet.shard_map(hosts, SHARDS)
    edge, keys = {}, {}
    for position, host in enumerate(hosts):
        key = site_keys[position // SITE_SIZE] if position < len(site_hosts) else _jwk("k1-" + host)
        keys[host] = key
        edge[host] = {"edge_keys_public_jwks": [key],
                      "edge_keys_token_claims": {"iss": _fleet.shard_url(ISSUER, shards[host]), "sub": host,
                                                 "aud": AUDIENCE}}
    inventory = {"all": {
        "vars": {"selfjwt_issuer": ISSUER, "selfjwt_audience": AUDIENCE, "selfjwt_shard_count": SHARDS},
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {"edge": {"hosts": edge}},
    }}
    inventory_path = workdir / "inventory.json"
    inventory_path.write_text(json.dumps(inventory))
    out = workdir / "out"
    playbook = workdir / "publish.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "publish", "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "selfjwt.kyma.kyma_publish",
                   "vars": {"kyma_publish_mode": "render", "kyma_publish_output_dir": str(out)}}],
        "post_tasks": [{"name": "record the facts", "ansible.builtin.copy": {
            "dest": str(workdir / "facts.json"), "mode": "0644",
            "content": "{{ {'sizes': kyma_publish_jwks_sizes, 'issuers': kyma_publish_issuers,"
                       " 'kids': kyma_publish_published_kids | length} | to_json }}"}}],
    }], sort_keys=False))
    run = support.run_playbook(playbook, inventory_path, workdir)
    return {"dir": out, "work": workdir, "output": run.stdout, "hosts": hosts, "keys": keys, "shards": shards}


def _published(fleet_run, shard):
    return json.loads((fleet_run["dir"] / ("jwks-%s.json" % shard)).read_text())


def test_the_role_renders_10000_hosts_in_their_shards(fleet_run):
    assert support.recap(fleet_run["output"])["localhost"]["failed"] == 0
    names = sorted(set(fleet_run["shards"].values()))
    assert len(names) == SHARDS
    holders = {}
    for shard in names:
        jwks = _published(fleet_run, shard)
        kids = [key["kid"] for key in jwks["keys"]]
        assert len(kids) == len(set(kids)), shard
        assert support.private_members_of(jwks) == []
        for kid in kids:
            holders.setdefault(kid, []).append(shard)
    for host in fleet_run["hosts"]:
        kid = fleet_run["keys"][host]["kid"]
        assert fleet_run["shards"][host] in holders[kid], host
    # A host key is published in its own shard only; a site key in each shard that holds one of its hosts.
    site_shards = {}
    for host in fleet_run["hosts"]:
        site_shards.setdefault(fleet_run["keys"][host]["kid"], set()).add(fleet_run["shards"][host])
    assert dict((kid, sorted(shards)) for kid, shards in site_shards.items()) == holders
    assert len(holders) == FLEET - SITES * SITE_SIZE + SITES


def test_manifests_name_every_shard_and_carry_the_documents(fleet_run):
    out = fleet_run["dir"]
    names = sorted(set(fleet_run["shards"].values()))
    apirule = support.load_manifest(out / "apirule.yaml")
    assert apirule["spec"]["rules"][0]["jwt"]["authentications"] == [
        {"issuer": _fleet.shard_url(ISSUER, shard), "jwksUri": _fleet.shard_url(JWKS_URI, shard)} for shard in names]
    assert apirule["spec"]["rules"][0]["jwt"]["authorizations"] == [{"audiences": [AUDIENCE]}]
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    # The per-shard ConfigMaps follow the main one, in the role's order of the other manifests.
    main_configmap = support.MANIFESTS.index("jwks-configmap.yaml") + 1
    assert kustomization["resources"] == (list(support.MANIFESTS[:main_configmap])
                                          + ["jwks-configmap-%s.yaml" % s for s in names]
                                          + list(support.MANIFESTS[main_configmap:]))
    for shard in names:
        configmap = support.load_manifest(out / ("jwks-configmap-%s.yaml" % shard))
        assert configmap["data"]["jwks-%s.json" % shard] == (out / ("jwks-%s.json" % shard)).read_text()
        discovery = json.loads(configmap["data"]["openid-configuration-%s" % shard])
        assert discovery["issuer"] == _fleet.shard_url(ISSUER, shard)


def test_every_jwks_stays_within_the_default_budget(fleet_run):
    facts = json.loads((fleet_run["work"] / "facts.json").read_text())
    assert sorted(facts["sizes"]) == sorted(set(fleet_run["shards"].values()))
    assert facts["kids"] == FLEET - SITES * SITE_SIZE + SITES
    for shard, size in facts["sizes"].items():
        # The role's default budget is 1,000 keys and 512 KiB; half of it leaves room for a rotation.
        assert size["keys"] <= 500 and size["bytes"] <= 524288 // 2, shard
        assert size["keys"] == len(_published(fleet_run, shard)["keys"])
