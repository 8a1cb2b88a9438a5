# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of selfjwt.kyma.kyma_publish_plan (documented in plugins/modules/kyma_publish_plan.py).

Runs on the controller only: reads the edge hosts' facts from ``hostvars`` once each and hands
everything to ``module_utils._publish.plan``, which holds the logic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.selfjwt.kyma.plugins.module_utils import _publish

#: The options; each is the role variable kyma_publish_<option> (see the module's documentation).
ARGUMENT_SPEC = {
    "edge_group": {"type": "str", "required": True},
    "skip_hosts_without_keys": {"type": "bool", "default": False},
    "extra_keys": {"type": "list", "elements": "raw", "default": []},
    "shard_count": {"type": "int", "default": 0},
    "shard_groups": {"type": "dict", "default": {}},
    "shard_overrides": {"type": "dict", "default": {}},
    "jwks_name": {"type": "str", "default": "edge-jwks"},
    "jwks_namespace": {"type": "str", "default": "selfjwt-system"},
    "jwks_namespace_create": {"type": "bool", "default": True},
    "jwks_service_port": {"type": "int", "default": 80},
    "cluster_domain": {"type": "str", "default": "cluster.local"},
    "issuer": {"type": "str", "required": True},
    "jwks_uri": {"type": "str", "required": True},
    "server_image": {"type": "str", "default": "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine"},
    "network_policy": {"type": "bool", "default": True},
    "network_policy_from": {"type": "list", "elements": "raw", "default": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
         "podSelector": {"matchLabels": {"app": "istiod"}}}]},
    "server_port": {"type": "int", "default": 8080},
    "server_user": {"type": "int", "default": 101},
    "server_replicas": {"type": "int", "default": 2},
    "max_keys": {"type": "int", "default": 1000},
    "max_bytes": {"type": "int", "default": 524288},
    "budget_warn_percent": {"type": "int", "default": 50},
    "apirule_name": {"type": "str", "default": "edge-api"},
    "apirule_namespace": {"type": "str", "default": "default"},
    "apirule_host": {"type": "str", "required": True},
    "apirule_gateway": {"type": "str", "default": "kyma-system/kyma-gateway"},
    "apirule_service_name": {"type": "str", "required": True},
    "apirule_service_namespace": {"type": "str", "required": True},
    "apirule_service_port": {"type": "int", "default": 80},
    "apirule_timeout": {"type": "int"},
    "apirule_rules": {"type": "list", "elements": "dict", "required": True},
    "audiences": {"type": "list", "elements": "str", "default": []},
    "required_scopes": {"type": "list", "elements": "str", "default": []},
    "api": {"type": "str", "default": "apirule", "choices": ["apirule", "istio"]},
    "istio_target": {"type": "str", "default": "workload", "choices": ["workload", "gateway"]},
    "istio_namespace": {"type": "str"},
    "istio_selector": {"type": "dict", "default": {}},
    "istio_target_refs": {"type": "list", "elements": "dict", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, settings = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)

        groups = task_vars.get("groups") or {}
        hostvars = task_vars.get("hostvars") or {}
        edge_hosts = list(groups.get(settings["edge_group"]) or [])
        host_keys, host_claims = {}, {}
        for host in edge_hosts:
            # One look at each host's variables (templated in the host's own context).
            variables = hostvars[host] if host in hostvars else {}
            host_keys[host] = variables.get("edge_keys_public_jwks") if "edge_keys_public_jwks" in variables else None
            if "edge_keys_token_claims" in variables:
                host_claims[host] = variables.get("edge_keys_token_claims")

        try:
            planned = _publish.plan(settings, edge_hosts, host_keys, host_claims, inventory_groups=groups,
                                    check_mode=bool(self._task.check_mode))
        except _publish.PublishError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        warnings = planned.pop("warnings")
        if warnings:
            result["warnings"] = warnings
        result.update(planned, changed=False)
        return result
