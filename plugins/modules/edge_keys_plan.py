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
  - Returns the role's steps for the host, so the role runs only the task files the host needs, and the options of
    M(selfjwt.kyma.jwt_keypair) and M(selfjwt.kyma.token_refresher) computed from the role variables, so the role
    hands them to the modules as they are.
  - Reads the role variables from the task's variables, the way the role's argument spec validation does. The key's
    passphrase (C(edge_keys_key_passphrase)) is read only to know whether there is one; it is not in the result.
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
      - The role variables, by name (C(edge_keys_issuer), C(edge_keys_key_type), ...). Variables not given are
        checked as empty.
      - Default is the role variables of the task, which is how the role calls it.
    type: dict
  rotation:
    description:
      - Plan a step of the host's key ring (the role's entry point C(rotation), which C(playbooks/rotate.yml) and
        C(playbooks/revoke.yml) run). Also reads the C(edge_keys_rotation_*) variables, refuses C(edge_keys_key_kid)
        (each generation of a rotated key needs its own kid) and a site key for any step but C(status) and
        C(revoke), and returns RV(rotation).
    type: bool
    default: false
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.token_refresher
  - module: selfjwt.kyma.kyma_publish_plan
"""

EXAMPLES = r"""
- name: Check the role variables and plan the role's run on this host (the first task of the role)
  selfjwt.kyma.edge_keys_plan:
  register: __edge_keys_plan

- name: Check the role variables and plan a step of the host's key ring (the rotation entry point)
  selfjwt.kyma.edge_keys_plan:
    rotation: true
  register: __edge_keys_plan

- name: Check a set of variables
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
keypair:
  description: The options of M(selfjwt.kyma.jwt_keypair) for the host's signing key, except C(passphrase).
  returned: always
  type: dict
  sample: {path: /etc/selfjwt/signing.pem, parent_mode: "0700", type: ec, curve: P-256, mode: "0600"}
refresher:
  description: The options of M(selfjwt.kyma.token_refresher) for the host's token refresher.
  returned: always
  type: dict
  sample: {key_path: /etc/selfjwt/signing.pem, issuer: "https://edge-jwks.selfjwt-system.svc.cluster.local"}
rotation:
  description: The plan of a key ring step.
  returned: when O(rotation=true)
  type: dict
  contains:
    keyring:
      description: The options of M(selfjwt.kyma.jwt_keyring), except C(passphrase).
      type: dict
      sample: {path: /etc/selfjwt/signing.pem, action: auto, propagation_window: 1800, type: ec, curve: P-256}
    state_dir:
      description:
        - The key directory that holds the ring state of a key in a PKCS#11 token (C(path), C(mode), C(group)), or
          V(null) for a key file (M(selfjwt.kyma.jwt_keypair) made its directory).
      type: dict
    refresher_command:
      description: The token refresher's command, which the role runs after an activation; V(null) without it.
      type: str
facts:
  description: The facts the role publishes that do not depend on the host's key.
  returned: always
  type: dict
  contains:
    edge_keys_key_path:
      description: The key file, or V(null) for a key in a PKCS#11 token.
      type: str
    edge_keys_pkcs11_uri:
      description: The key's PKCS#11 URI, or V(null) for a key file.
      type: str
    edge_keys_token_claims:
      description: The claims every token of the host carries besides C(iat), C(nbf), C(exp) and C(jti).
      type: dict
"""
