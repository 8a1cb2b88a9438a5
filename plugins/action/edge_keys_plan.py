# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of selfjwt.kyma.edge_keys_plan (documented in plugins/modules/edge_keys_plan.py).

Runs on the controller only, without a connection to the host: hands the role variables to
``module_utils._edge_settings.plan``, which holds the checks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.selfjwt.kyma.plugins.module_utils import _edge_settings

ARGUMENT_SPEC = {
    "variables": {"type": "dict", "required": True},
    "refresher": {"type": "dict", "default": {}},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, settings = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        planned = _edge_settings.plan(settings["variables"], settings["refresher"])
        if planned["warnings"]:
            result["warnings"] = planned["warnings"]
        result.update(changed=False, steps=planned["steps"], problems=planned["problems"])
        if planned["problems"]:
            result.update(failed=True, msg=" ".join(planned["problems"]))
        return result
