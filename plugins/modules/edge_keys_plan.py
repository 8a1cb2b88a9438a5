#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: edge_keys_plan
short_description: Check the variables of selfjwt.kyma.edge_keys and plan its run on a host
version_added: 0.1.0
description:
  - The first step of the role C(selfjwt.kyma.edge_keys), run on the controller before the role touches the host. It
    reports every problem at once, and every message names the role variable to set (C(edge_keys_key_type), not the
    module option C(type)).
  - Checks the key settings with the rules of M(selfjwt.kyma.jwt_keypair) (type, size, curve, algorithm, kid,
    certificate), the issuer as an http(s) URL without query or fragment (the APIRule v2 CRD accepts nothing else,
    and the tokens' C(iss) must equal the APIRule's issuer), the C(jku) URL, the shard name, the claims, lifetimes,
    refresh margin and scheduler period, the stored passphrase, the site key settings, and the values that reach the
    token refresher's command, systemd units and cron line with the allow-list of M(selfjwt.kyma.token_refresher).
  - Warns when C(edge_keys_audience) is empty. The tokens then carry no C(aud) claim, and the APIRule of
    C(selfjwt.kyma.kyma_publish) checks no audience, so it accepts any token of the issuer.
  - Returns the role's steps for the host, so the role runs only the task files the host needs.
author:
  - selfjwt.kyma maintainers (@selfjwt)
attributes:
  check_mode:
    description: Writes nothing, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: Never reports a change.
    support: full
  action:
    description: Runs on the controller; it needs no connection to the host.
    support: full
options:
  variables:
    description:
      - The role variables, by name (C(edge_keys_issuer), C(edge_keys_key_type), ...), plus C(passphrase_file), the
        path where the key's passphrase would be stored. Variables not given are checked as empty.
    type: dict
    required: true
  refresher:
    description:
      - The values that reach the refresher's command, systemd units and cron line, by setting (V(key_dir),
        V(key_filename), V(token_dir), V(token_filename), V(bin_dir), V(command_name), V(lib_dir), V(python),
        V(user), V(group), V(token_group), V(unit_name), V(unit_dir), V(cron_file), V(interval)); settings not
        given are not checked.
    type: dict
    default: {}
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.token_refresher
  - module: selfjwt.kyma.kyma_publish_plan
"""

EXAMPLES = r"""
- name: Check the role variables and plan the role's run on this host
  selfjwt.kyma.edge_keys_plan:
    variables:
      edge_keys_issuer: https://edge-jwks.selfjwt-system.svc.cluster.local
      edge_keys_subject: "{{ inventory_hostname }}"
      edge_keys_audience: edge-api
      edge_keys_key_dir: /etc/selfjwt
      edge_keys_key_filename: signing.pem
      edge_keys_key_type: ec
      edge_keys_key_curve: P-256
      edge_keys_key_regenerate: fail
      edge_keys_key_scope: host
      edge_keys_token_lifetime: 600
      edge_keys_token_max_lifetime: 3600
      edge_keys_token_refresh_margin: 200
      edge_keys_refresher_enabled: false
      edge_keys_refresher_interval: 60
  register: plan
"""

RETURN = r"""
steps:
  description: The role's task files this host runs, in order.
  returned: always
  type: list
  elements: str
  sample: [key, refresher]
problems:
  description: One message per problem, each naming the role variable to set; the task fails when there is any.
  returned: always
  type: list
  elements: str
  sample: []
"""
