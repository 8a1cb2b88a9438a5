# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: shard_plan
short_description: Split an edge fleet's public keys into issuer shards
version_added: 0.1.0
description:
  - Takes the public keys of the edge hosts (host name to list of public JWKs) and returns the shard of every host
    and the keys of every shard, with the same rules as P(selfjwt.kyma.shard_of#filter).
  - C(selfjwt.kyma.kyma_publish) uses it to build one JWKS per shard. It runs in Python in one pass, so it stays fast
    for fleets of many thousands of hosts.
  - Hosts without keys are left out of RV(_value.keys). Keys in O(extra_keys) are added to every shard. A key that
    several hosts offer (a site key) is listed in each of their shards.
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description: Host name to list of public JWKs (the hosts' C(edge_keys_public_jwks)).
    type: dict
    required: true
  count:
    description: Number of hashed shards, as for P(selfjwt.kyma.shard_of#filter).
    type: int
    default: 0
  groups:
    description: Inventory group name to shard name.
    type: dict
    default: {}
  inventory_groups:
    description: The C(groups) magic variable (group name to host names), to find the hosts of mapped groups.
    type: dict
    default: {}
  overrides:
    description: Host name to shard name.
    type: dict
    default: {}
  extra_keys:
    description: Keys to publish in every shard.
    type: list
    elements: raw
    default: []
seealso:
  - plugin: selfjwt.kyma.shard_of
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Keys per shard for 8 hashed shards
  ansible.builtin.set_fact:
    plan: >-
      {{ dict(groups['edge'] | zip(groups['edge'] | map('extract', hostvars, 'edge_keys_public_jwks')))
      | selfjwt.kyma.shard_plan(count=8, inventory_groups=groups) }}
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    hosts:
      description: Host name to shard name, for every host of the input.
      type: dict
    keys:
      description: Shard name to the list of its public JWKs, for every shard that has keys, sorted by shard name.
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet


def shard_plan(host_keys, count=0, groups=None, inventory_groups=None, overrides=None, extra_keys=None):
    if not isinstance(host_keys, dict):
        raise AnsibleFilterError("shard_plan needs a mapping of host names to lists of public JWKs")
    try:
        hosts = _fleet.shard_map(sorted(host_keys), count, groups, inventory_groups, overrides)
        return {"hosts": hosts, "keys": _fleet.shard_keys(host_keys, hosts, extra_keys)}
    except _fleet.ShardError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"shard_plan": shard_plan}
