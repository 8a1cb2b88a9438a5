# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: jwks_configmap_data
short_description: The JWKS server's ConfigMap data from the results of selfjwt.kyma.jwks_publish
version_added: 0.1.0
description:
  - Takes the registered results of M(selfjwt.kyma.jwks_publish) run in a loop over the issuers of
    M(selfjwt.kyma.kyma_publish_plan) (one JWKS and discovery document per issuer) and returns the files the JWKS
    server serves, the data of the main ConfigMap, the size of every JWKS, and what is too large for a ConfigMap.
  - C(selfjwt.kyma.kyma_publish) uses it between publishing the JWKS and rendering the ConfigMaps. It runs in one
    pass over the issuers.
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description:
      - The C(results) of the looped M(selfjwt.kyma.jwks_publish) task; each result's C(item) is an entry of the plan's
        C(issuers) (V(name), V(issuer), V(jwks_uri), V(jwks_key), V(discovery_key), V(configmap)).
    type: list
    elements: dict
    required: true
  sharded:
    description: Whether each issuer's documents have a ConfigMap of their own (issuer shards).
    type: bool
    default: false
  server_config:
    description: The server's configuration file (its text); it always goes into the main ConfigMap.
    type: str
    required: true
  server_config_key:
    description: The server configuration's file name and ConfigMap key.
    type: str
    default: nginx.conf
"""

EXAMPLES = r"""
- name: Assemble the ConfigMap data
  ansible.builtin.set_fact:
    configmaps: >-
      {{ published.results | selfjwt.kyma.jwks_configmap_data(sharded=false,
         server_config=lookup('ansible.builtin.template', 'nginx.conf.j2')) }}
"""

RETURN = r"""
_value:
  description: The ConfigMap data.
  type: dict
  contains:
    documents:
      description:
        - Every issuer's JWKS and discovery document by file name (the discovery document as JSON with sorted keys and
          two-space indentation), each ending in a newline.
      type: dict
    data:
      description: The main ConfigMap's data, the server configuration and, without shards, the documents.
      type: dict
    sizes:
      description: Per issuer name, its C(issuer), C(jwks_uri), number of C(keys) and JWKS C(bytes).
      type: dict
    problems:
      description: One message per ConfigMap that would exceed the 1 MiB Kubernetes allows; empty when all fit.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError


def jwks_configmap_data(published, sharded=False, server_config=None, server_config_key="nginx.conf"):
    # Imported on first use: Ansible imports every filter file of the collection to find any one
    # of its filters (for example shard_url, in every edge_keys run), and _publish pulls in the
    # JWKS and Istio code.
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _publish  # pylint: disable=import-outside-toplevel

    if not isinstance(published, list) or not all(isinstance(result, dict) for result in published):
        raise AnsibleFilterError("jwks_configmap_data expects the results of a looped selfjwt.kyma.jwks_publish task")
    if not isinstance(server_config, str):
        raise AnsibleFilterError("jwks_configmap_data needs server_config, the text of the server's configuration")
    try:
        return _publish.configmap_data(published, bool(sharded), server_config, server_config_key)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("jwks_configmap_data: a result lacks %s; pass the results of a looped "
                                 "selfjwt.kyma.jwks_publish task over the plan's issuers" % exc)


class FilterModule(object):
    def filters(self):
        return {"jwks_configmap_data": jwks_configmap_data}
