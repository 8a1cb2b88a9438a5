# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: refresher_command
short_description: The text of the token refresher command
version_added: 0.1.0
description:
  - Returns the Python script that the P(selfjwt.kyma.edge_keys#role) role installs as the token refresher command.
  - The script imports the refresher from O(lib_dir) and reads its configuration O(config_path) at run time; both
    appear in it only as Python string literals, so no value becomes code. The interpreter (O(_input), the
    C(#!) line) must pass P(selfjwt.kyma.refresher_problems#filter).
author:
  - selfjwt.kyma maintainers (@selfjwt)
options:
  _input:
    description: Absolute path of the Python that runs the command.
    type: str
    required: true
  lib_dir:
    description: The directory of the refresher program and the collection's module_utils.
    type: str
    required: true
  config_path:
    description: The refresher configuration (JSON) the command reads by default.
    type: str
    required: true
seealso:
  - plugin: selfjwt.kyma.refresher_problems
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Install the refresher command
  ansible.builtin.copy:
    content: "{{ '/usr/bin/python3' | selfjwt.kyma.refresher_command('/usr/local/lib/selfjwt', '/usr/local/lib/selfjwt/refresher.json') }}"
    dest: /usr/local/bin/selfjwt-token
    mode: "0755"
"""

RETURN = r"""
_value:
  description: The script.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher_install


def refresher_command(python, lib_dir, config_path):
    try:
        return _refresher_install.command_text(python, lib_dir, config_path)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"refresher_command": refresher_command}
