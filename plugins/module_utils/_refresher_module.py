# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token_refresher module's side: ``_refresher_install.install`` with its options, its warning, the diff.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``); :func:`run` is the
module's whole run. It is not one of the files the refresher copies
(``_refresher_install.REFRESHER_MODULE_UTILS``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher, _refresher_install


def run(module):
    try:
        result = _refresher_install.install(module.params, names=module.params["option_names"],
                                            check_mode=module.check_mode)
    except (_refresher_install.InstallError, _refresher.RefresherError) as exc:
        module.fail_json(msg=str(exc))
    warning = result["token_status"].get("warning")
    if warning:
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    return result
