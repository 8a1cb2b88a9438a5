# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fleet scale in-process: JWKS budgets, issuer shards and site keys.

A simulated fleet of 10,000 edge hosts (EC P-256 keys made in bulk with cryptography, JWKs
built here from the public numbers, not by the collection) goes through the code kyma_publish
runs for the cluster side: the filter ``shard_plan`` (shards of the hosts, keys per shard) and
``_jwks.plan`` with the role's default budget (what jwks_publish does for each shard). Checked:
the unsharded JWKS is refused with the fixes, the sharded JWKS fit with both key generations of
a rotation, 1,000 added hosts move no existing host, revocation touches one shard, site keys are
published once, and tokens of sampled hosts verify against their shard's JWKS and fail against
another shard's (judged by the gateway stand-in's Envoy re-implementation, not by the
collection's JOSE code).

The same through the roles in one ansible-playbook run (edge_keys with site keys, kyma_publish
in render mode with shards, a budget refusal) is tests/system/test_fleet_scale.py.
"""

from __future__ import annotations

import random
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.selfjwt.kyma.plugins.filter import shard_plan as shard_plan_filter
from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _jose, _jwks
from helpers import (  # pylint: disable=import-error
    REPO, StandinJwksStore as _Store, ec_public_jwk as _ec_jwk, es256_token as _token, fleet_hosts as _hosts)

sys.path.insert(0, REPO)
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
