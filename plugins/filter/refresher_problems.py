# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: refresher_problems
short_description: What the token refresher's command, systemd unit and cron line cannot hold
version_added: 0.1.0
description:
  - Checks the paths, names, accounts and schedule that the P(selfjwt.kyma.edge_keys#role) role writes into the
    token refresher's command (a Python script root may run), its systemd service and timer, and its cron line,
    and returns one message per value that is not safe there. An empty list means all is well.
  - Paths must be absolute and names plain file names, of letters, digits and C(. _ - + @ , ~) (and C(/) in
    paths) only; whitespace, newlines, C(%), C($), quotes and backslashes are syntax in those files, so they are
    refused rather than escaped. User and group names hold ASCII letters, digits and C(_ . -), unit names ASCII
    letters, digits, colons and C(_ . -); the cron file's name only letters, digits, C(_) and C(-) (cron ignores
    other files in C(/etc/cron.d)); the interval is a positive number of seconds.
  - Each message names the role variable to change (or the name given in O(names)).
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description:
      - The settings to check, by key - C(key_dir), C(key_filename), C(token_dir), C(token_filename), C(bin_dir),
        C(command_name), C(lib_dir), C(python), C(user), C(group), C(token_group), C(unit_name), C(unit_dir),
        C(cron_file), C(interval). Keys left out are not checked; C(user), C(group), C(token_group) and
        C(cron_file) may be empty.
    type: dict
    required: true
  names:
    description: The name a message gives for a key, instead of the edge_keys role variable.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Refuse a token directory that the refresher's unit and cron line cannot hold
  vars:
    problems: "{{ {'token_dir': edge_keys_token_dir, 'interval': edge_keys_refresher_interval} | selfjwt.kyma.refresher_problems }}"
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
"""

RETURN = r"""
_value:
  description: One message per refused value; empty when every value is safe.
  type: list
  elements: str
  sample:
    - "edge_keys_token_dir '/var/lib/my tokens' holds a space; use an absolute path of letters, digits and . _ - + @ , ~
      and / (the token refresher's command, systemd unit and cron line carry it, where such characters are syntax)"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher_install


def refresher_problems(values, names=None):
    if not isinstance(values, dict):
        raise AnsibleFilterError("refresher_problems expects a dict of settings, got %s" % type(values).__name__)
    try:
        return _refresher_install.problems(values, names)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"refresher_problems": refresher_problems}
