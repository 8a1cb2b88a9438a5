# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory of bench/publish_role.py holds what edge_keys exports, and the role's plan accepts it."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _publish

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench")


@pytest.fixture(scope="module")
def publish_role():
    sys.path.insert(0, os.path.abspath(BENCH))
    try:
        import publish_role as module  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    return module


def test_the_bench_inventory_is_sharded_like_the_role_plans_it(publish_role):
    keys = [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k%04d" % index} for index in range(900)]
    inventory = publish_role.inventory(keys, 900)["all"]
    assert publish_role.shard_count(900) == 3 and inventory["vars"]["selfjwt_shard_count"] == 3
    hosts = inventory["children"]["edge"]["hosts"]
    assert len(hosts) == 900
    assert all(len(facts["edge_keys_public_jwks"]) == 1 for facts in hosts.values())
    settings = {
        "edge_group": "edge", "skip_hosts_without_keys": False, "extra_keys": [], "shard_count": 3, "shard_groups": {},
        "shard_overrides": {}, "jwks_name": "edge-jwks", "jwks_namespace": "selfjwt-system",
        "jwks_namespace_create": True, "jwks_service_port": 80, "server_image": "nginx", "network_policy": False,
        "network_policy_from": [],
        "cluster_domain": "cluster.local", "issuer": publish_role.ISSUER,
        "jwks_uri": publish_role.ISSUER + "/.well-known/jwks.json", "server_port": 8080, "server_user": 101,
        "server_replicas": 2, "max_keys": 1000, "max_bytes": 524288, "budget_warn_percent": 50,
        "apirule_name": "edge-api", "apirule_namespace": "default", "apirule_host": "edge-api",
        "apirule_gateway": "kyma-system/kyma-gateway", "apirule_service_name": "edge-api",
        "apirule_service_namespace": "default", "apirule_service_port": 80, "apirule_timeout": None,
        "apirule_rules": [{"path": "/{**}", "methods": ["GET"]}], "audiences": [inventory["vars"]["selfjwt_audience"]],
        "required_scopes": []}
    names = sorted(hosts)
    plan = _publish.plan(settings, names, dict((host, hosts[host]["edge_keys_public_jwks"]) for host in names),
                         dict((host, hosts[host]["edge_keys_token_claims"]) for host in names))
    assert [entry["name"] for entry in plan["issuers"]] == sorted(set(_fleet.shard_map(names, 3).values()))
    assert plan["key_count"] == 900
