# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible glue shared by the collection's modules.

PRIVATE to the collection: do not import it from other collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError


def check_dependencies(module):
    """Fail with missing_required_lib() when cryptography or PyJWT is missing or too old."""
    missing = _jose.missing_dependencies()
    if missing:
        requirement, trace = missing[0]
        module.fail_json(msg=missing_required_lib(requirement), exception=trace)


def run_module(module, function):
    """Run ``function(module)`` and turn expected errors into one clear fail_json()."""
    check_dependencies(module)
    try:
        result = function(module)
    except (_jose.JoseError, FileError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)
