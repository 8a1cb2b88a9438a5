# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: shard_of
short_description: The issuer shard of an edge host
version_added: 0.1.0
description:
  - Returns the shard of an edge host for issuer sharding, or an empty string when the fleet is not sharded.
  - The roles C(selfjwt.kyma.edge_keys) (the C(iss) and C(jku) of the host's tokens) and C(selfjwt.kyma.kyma_publish)
    (which JWKS publishes the host's keys) both use it with the shared variables C(selfjwt_shard_count),
    C(selfjwt_shard_groups) and C(selfjwt_shard_overrides) from C(group_vars/all), so they always agree.
  - 'Order: an entry in O(overrides); else the shard that O(groups) maps one of the host''s inventory groups
    (O(group_names)) to; else, when O(count) > 0, a hash of the host name (SHA-256, then a jump consistent hash into
    O(count) shards named V(s000), V(s001), ...); else V("").'
  - The result depends only on the host name, its groups and the settings, never on the other hosts, so adding hosts
    never moves an existing host to another shard. Changing O(count) moves hosts (growing from N to M shards moves
    about 1 - N/M of them, all into the new shards) and is an operator action, see C(docs/CAPACITY.md).
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description: The inventory host name.
    type: str
    required: true
  count:
    description: Number of hashed shards; V(0) places no host by hash. At most 1000.
    type: int
    default: 0
  groups:
    description: Inventory group name to shard name. A host in two mapped groups must map to one shard.
    type: dict
    default: {}
  group_names:
    description: The host's inventory groups (the C(group_names) magic variable).
    type: list
    elements: str
    default: []
  overrides:
    description: Host name to shard name, for hosts that must stay in (or move to) a given shard.
    type: dict
    default: {}
seealso:
  - plugin: selfjwt.kyma.shard_url
    plugin_type: filter
  - plugin: selfjwt.kyma.shard_plan
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Show the shard of this host (16 hashed shards)
  ansible.builtin.debug:
    msg: "{{ inventory_hostname | selfjwt.kyma.shard_of(count=16) }}"

- name: The same answer the roles compute from the shared variables
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname | selfjwt.kyma.shard_of(count=selfjwt_shard_count | default(0),
      groups=selfjwt_shard_groups | default({}), group_names=group_names,
      overrides=selfjwt_shard_overrides | default({})) }}
"""

RETURN = r"""
_value:
  description: The shard name (lowercase letters, digits and C(-)), or an empty string when not sharded.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet


def shard_of(host, count=0, groups=None, group_names=None, overrides=None):
    try:
        return _fleet.shard_of(host, count, groups, group_names, overrides)
    except _fleet.ShardError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"shard_of": shard_of}
