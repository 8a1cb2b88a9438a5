# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: site_key_source
short_description: The host that provides the site key of a site of edge hosts
version_added: 0.1.0
description:
  - For site keys (C(edge_keys_key_scope=site) of the role C(selfjwt.kyma.edge_keys)), where the hosts of a site share
    one signing key. Each host sets a fact (O(fact)) that names its site and the SHA-256 checksum of its key file
    (empty when it has none); this filter reads that fact of every host in the input.
  - Among the hosts of O(site) in name order, the first that has a key provides it, else the first host of the site
    (which makes it). So a new or rebuilt host gets the key its site already uses, whichever host is left.
  - Hosts without the fact, or whose fact is not a mapping, are not members of any site.
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description: The hosts to look at (the play's hosts, C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  site:
    description: The site whose source host is wanted.
    type: str
    required: true
  fact:
    description: The name of the fact that holds each host's C(site) and C(checksum).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Tell the other hosts of the site about this host's key
  ansible.builtin.set_fact:
    site_key_state:
      site: "{{ edge_keys_site }}"
      checksum: "{{ key_stat.stat.checksum | default('') }}"

- name: Choose the host that provides the site key
  ansible.builtin.set_fact:
    site_key_choice: "{{ ansible_play_hosts | selfjwt.kyma.site_key_source(hostvars, site=edge_keys_site, fact='site_key_state') }}"
"""

RETURN = r"""
_value:
  description: The choice.
  type: dict
  contains:
    source:
      description: The host that provides the site key; V(null) when no host of the input is in the site.
      type: str
    divergent:
      description: True when two hosts of the site hold different keys, so there is no one site key to keep.
      type: bool
"""

from collections.abc import Mapping

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet


def site_key_source(hosts, hostvars, site, fact):
    members = []
    for host in hosts:
        state = hostvars[host].get(fact)
        if isinstance(state, Mapping):
            members.append((host, state.get("site"), state.get("checksum")))
    return _fleet.site_key_source(members, site)


class FilterModule(object):
    def filters(self):
        return {"site_key_source": site_key_source}
