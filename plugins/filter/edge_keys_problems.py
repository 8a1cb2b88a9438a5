# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: edge_keys_problems
short_description: What is wrong with the variables of the edge_keys role
version_added: 0.1.0
description:
  - Checks the variables of the role C(selfjwt.kyma.edge_keys) that must agree (claims, lifetimes, refresh margin
    and scheduler period, stored passphrase, systemd unit directory) and returns one message per problem, each
    naming the role variable to set. An empty list means nothing is wrong.
  - With O(refresher), it also checks the values that reach the token refresher's command, systemd units and cron
    line (paths, file names, accounts, unit name, interval) against the allow-list of the module
    C(selfjwt.kyma.token_refresher), so a value that is syntax there (whitespace, a newline, V(%), V($), quotes,
    V(:) in a path) is refused before anything is written.
  - The role runs it in one task before anything is written on a host.
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description:
      - The role variables C(edge_keys_*) that the checks read, by name, plus C(passphrase_file), the path where the
        key's passphrase would be stored.
    type: dict
    required: true
  refresher:
    description:
      - The refresher settings to check, by setting (V(key_dir), V(key_filename), V(token_dir), V(token_filename),
        V(bin_dir), V(command_name), V(lib_dir), V(python), V(user), V(group), V(token_group), V(unit_name),
        V(unit_dir), V(cron_file), V(interval)); settings not given are not checked. Messages name the
        C(edge_keys_*) role variable of each.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Check the role variables
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
  vars:
    problems: >-
      {{ {'edge_keys_issuer': edge_keys_issuer, 'edge_keys_subject': edge_keys_subject}
         | selfjwt.kyma.edge_keys_problems }}
"""

RETURN = r"""
_value:
  description: One message per problem; empty when the variables agree.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _edge_settings, _refresher_install


def edge_keys_problems(variables, refresher=None):
    if not isinstance(variables, dict):
        raise AnsibleFilterError("edge_keys_problems expects a dictionary of role variables, got %s"
                                 % type(variables).__name__)
    if refresher is not None and not isinstance(refresher, dict):
        raise AnsibleFilterError("edge_keys_problems expects a dictionary of refresher settings, got %s"
                                 % type(refresher).__name__)
    try:
        found = _refresher_install.problems(dict(refresher or {}))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))
    return _edge_settings.role_problems(variables) + found


class FilterModule(object):
    def filters(self):
        return {"edge_keys_problems": edge_keys_problems}
