# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: shard_url
short_description: The issuer or JWKS URL of a shard
version_added: 0.1.0
description:
  - Inserts C(/shards/<shard>) right after the origin (scheme, host and port) of an http(s) URL; returns the URL
    unchanged when the shard is empty (the fleet is not sharded).
  - The same rule gives a shard's issuer and its JWKS URL, in C(selfjwt.kyma.edge_keys) and
    C(selfjwt.kyma.kyma_publish) alike, for example C(http://edge-jwks.default.svc.cluster.local) becomes
    C(http://edge-jwks.default.svc.cluster.local/shards/s003) and its C(/.well-known/jwks.json) becomes
    C(/shards/s003/.well-known/jwks.json).
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description: An http(s) URL without query or fragment.
    type: str
    required: true
  shard:
    description: The shard name, usually from P(selfjwt.kyma.shard_of#filter).
    type: str
    required: true
seealso:
  - plugin: selfjwt.kyma.shard_of
    plugin_type: filter
"""

EXAMPLES = r"""
- name: The issuer of shard s003
  ansible.builtin.debug:
    msg: "{{ 'http://edge-jwks.default.svc.cluster.local' | selfjwt.kyma.shard_url('s003') }}"
"""

RETURN = r"""
_value:
  description: The URL of the shard.
  type: str
  sample: http://edge-jwks.default.svc.cluster.local/shards/s003
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet


def shard_url(url, shard):
    try:
        return _fleet.shard_url(url, shard)
    except _fleet.ShardError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"shard_url": shard_url}
