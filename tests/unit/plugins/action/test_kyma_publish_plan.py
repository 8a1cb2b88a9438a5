# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin kyma_publish_plan: what it reads from hostvars and how it reports (the logic is
tested in tests/unit/plugins/module_utils/test_publish.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.selfjwt.kyma.plugins.action.kyma_publish_plan import ActionModule

URL = "http://edge-jwks.selfjwt-system.svc.cluster.local"
ARGS = {"edge_group": "edge", "issuer": URL, "jwks_uri": URL + "/.well-known/jwks.json", "apirule_host": "edge-api",
        "apirule_service_name": "edge-api", "apirule_service_namespace": "default",
        "apirule_rules": [{"path": "/{**}", "methods": ["GET"]}], "audiences": ["edge-api"]}


def _jwk(kid):
    return {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": kid}


def _run(args=None, hostvars=None, groups=None, check_mode=False):
    task = mock.MagicMock(args=dict(ARGS, **(args or {})), async_val=0, check_mode=check_mode, action="kyma_publish_plan")
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None)
    hostvars = hostvars if hostvars is not None else {
        "edge-01": {"edge_keys_public_jwks": [_jwk("k1")], "edge_keys_token_claims": {"iss": URL, "aud": "edge-api"}},
        "edge-02": {"edge_keys_public_jwks": [_jwk("k2")]},
        "other": {"edge_keys_public_jwks": [_jwk("not-an-edge-host")]},
        "localhost": {},
    }
    groups = groups if groups is not None else {"edge": ["edge-01", "edge-02"], "all": sorted(hostvars)}
    return action.run(task_vars={"hostvars": hostvars, "groups": groups})


def test_it_reads_the_keys_of_the_edge_group_only_and_changes_nothing():
    result = _run()
    assert not result.get("failed") and result["changed"] is False
    assert result["issuer_keys"] == {"default": [_jwk("k1"), _jwk("k2")]}
    assert "warnings" not in result


def test_a_refusal_fails_the_task_with_the_message():
    result = _run(args={"apirule_gateway": "kyma-gateway.kyma-system"})
    assert result["failed"] is True
    assert result["msg"].startswith("kyma_publish_apirule_gateway \"kyma-gateway.kyma-system\" is not valid")


def test_token_claims_are_read_and_judged():
    hostvars = {"edge-01": {"edge_keys_public_jwks": [_jwk("k1")],
                            "edge_keys_token_claims": {"iss": "http://wrong.example", "aud": "edge-api"}}}
    result = _run(hostvars=hostvars, groups={"edge": ["edge-01"]})
    assert result["failed"] is True and "edge-01 (iss \"http://wrong.example\"" in result["msg"]


def test_check_mode_reports_hosts_without_keys_as_a_warning():
    hostvars = {"edge-01": {"edge_keys_public_jwks": [_jwk("k1")]}, "edge-02": {}}
    assert "These edge hosts have no public keys" in _run(hostvars=hostvars)["msg"]
    result = _run(hostvars=hostvars, check_mode=True)
    assert not result.get("failed")
    assert result["hosts_without_keys"] == ["edge-02"]
    assert result["warnings"] == ["Publishing without the keys of edge-02: they have no edge_keys_public_jwks (in "
                                  "check mode their new keys do not exist yet)."]


def test_option_types_are_converted_and_unknown_options_refused():
    result = _run(args={"jwks_service_port": "8080", "issuer": URL + ":8080",
                        "jwks_uri": URL + ":8080/.well-known/jwks.json"},
                  hostvars={"edge-01": {"edge_keys_public_jwks": [_jwk("k1")]}}, groups={"edge": ["edge-01"]})
    assert result["service_url"] == URL + ":8080"
    with pytest.raises(AnsibleActionFail, match="Invalid options"):
        _run(args={"kyma_publish_issuer": URL})


def test_the_istio_output_returns_its_part_and_refuses_by_role_variable():
    result = _run({"api": "istio", "istio_namespace": "default", "istio_selector": {"app": "edge-api"}})
    assert not result.get("failed"), result
    assert result["istio"]["jwt_rules"] == [{"issuer": URL, "jwksUri": URL + "/.well-known/jwks.json",
                                             "forwardOriginalToken": True}]
    assert "istio" not in _run()
    refused = _run({"api": "istio", "istio_namespace": "default"})
    assert refused["failed"] and "kyma_publish_istio_selector {} is not valid" in refused["msg"]
