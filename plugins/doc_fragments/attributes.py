# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The attributes the collection's modules share, described once.

A module extends ``selfjwt.kyma.attributes`` and states the support (and any details) of
check_mode, diff_mode and idempotent itself; the other fragments carry their support too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The module gives support (and details) of each.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return the changed status prediction without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when in diff mode.
  idempotent:
    description: Running the task again with the same options reports no change.
"""

    # Use with selfjwt.kyma.attributes.files.
    FILES = r"""
attributes:
  safe_file_operations:
    description: Writes files atomically, with the final permissions from the first moment.
    support: full
"""

    # Use with selfjwt.kyma.attributes.platform.
    PLATFORM = r"""
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    # Use with selfjwt.kyma.attributes.action_group: the modules of meta/runtime.yml's group jose.
    ACTION_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/selfjwt.kyma.jose) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - selfjwt.kyma.jose
"""
