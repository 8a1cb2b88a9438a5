# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwt_keyring module's side: its options as a KeypairSpec and a Timing for ``_keyring.run``, its warnings.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``); :func:`run` is the
module's whole run around ``_keyring.run``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair, _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import resolve_uid


def run(module):
    params = module.params
    spec = _keypair.KeypairSpec(path=params["path"], type=params["type"], size=params["size"],
                                curve=params["curve"], algorithm=params["algorithm"],
                                passphrase=params["passphrase"])
    timing = _keyring.Timing(params["propagation_window"], params["token_max_lifetime"], params["clock_skew"],
                             params["max_key_age"])
    result = _keyring.run(spec, params["action"], timing, published_kids=params["published_kids"],
                          remove_private_keys=params["remove_private_keys"],
                          keep_retired=params["keep_retired_keys"], check_mode=module.check_mode,
                          owner=resolve_uid(params["owner"]))
    for warning in result.pop("warnings"):
        module.warn(warning)
    return result
