# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible glue shared by the collection's modules.

PRIVATE to the collection: do not import it from other collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError


def check_dependencies(module):
    """Fail with missing_required_lib() when cryptography or PyJWT is missing or too old."""
    missing = _jose.missing_dependencies()
    if missing:
        requirement, trace = missing[0]
        # missing_libraries tells a playbook (the edge_keys role) this failure from any other.
        module.fail_json(msg=missing_required_lib(requirement), exception=trace,
                         missing_libraries=[name for name, _trace in missing])


def check_mode_option(mode):
    """Refuse a file ``mode`` that is neither octal nor symbolic, before anything is written.

    Ansible checks ``mode`` only when it applies it, after a module wrote its file; a module
    calls this first, so a typo in ``mode`` leaves every file as it was.
    """
    if mode is None or isinstance(mode, int):
        return mode
    try:
        int(str(mode), 8)
        return mode
    except ValueError:
        pass
    try:
        AnsibleModule._symbolic_mode_to_octal(os.stat_result((stat.S_IFREG | 0o600,) + (0,) * 9), str(mode))
    except (ValueError, TypeError) as exc:
        raise FileError("mode %r is neither octal (such as '0640') nor symbolic (such as u=rw,g=r): %s" % (mode, exc))
    return mode


def run_module(module, function):
    """Run ``function(module)`` and turn expected errors into one clear fail_json()."""
    check_dependencies(module)
    try:
        result = function(module)
    except (_jose.JoseError, FileError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)
