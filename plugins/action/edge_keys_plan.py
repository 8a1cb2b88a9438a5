# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of selfjwt.kyma.edge_keys_plan (documented in plugins/modules/edge_keys_plan.py).

Runs on the controller only, without a connection to the host: hands the role variables to
``module_utils._edge_settings.plan``, which holds the checks and computes the modules' options.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.selfjwt.kyma.plugins.module_utils import _edge_settings

ARGUMENT_SPEC = {
    "variables": {"type": "dict"},
    "rotation": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, settings = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        variables = settings["variables"]
        names = _edge_settings.VARIABLES + (_edge_settings.ROTATION_VARIABLES if settings["rotation"] else ())
        if variables is None:
            variables = self._role_variables(task_vars or {}, names)
        # The passphrase is a secret: the plan only needs to know whether there is one.
        variables = dict(variables, edge_keys_key_passphrase=bool(variables.get("edge_keys_key_passphrase")))
        planned = _edge_settings.plan(variables, rotation_run=settings["rotation"])
        if planned["warnings"]:
            result["warnings"] = planned["warnings"]
        result.update((name, planned[name]) for name in ("problems", "steps", "keypair", "refresher", "facts",
                                                         "rotation") if name in planned)
        result["changed"] = False
        if planned["problems"]:
            result.update(failed=True, msg=" ".join(planned["problems"]))
        return result

    def _role_variables(self, task_vars, names):
        """The role variables ``names``, templated (one template per variable that is one)."""
        return self._templar.template(dict((name, task_vars.get(name)) for name in names))
