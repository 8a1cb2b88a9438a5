# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwt_keyring module's side: its options as a KeypairSpec and a Timing for ``_keyring.run``, its warnings.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``); :func:`run` is the
module's whole run around ``_keyring.run`` (a key file) or ``_keyring_pkcs11.run`` (a key in
a PKCS#11 token, ``pkcs11_uri``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair, _keyring, _keyring_pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import resolve_uid


def run(module):
    params = module.params
    if params["path"] is None and params["pkcs11_uri"] is None:
        module.fail_json(msg="missing required arguments: path (the signing key file), or pkcs11_uri and state_path "
                             "for a signing key in a PKCS#11 token")
    spec = _keypair.KeypairSpec(path=params["path"] or params["pkcs11_uri"], type=params["type"],
                                size=params["size"], curve=params["curve"], algorithm=params["algorithm"],
                                passphrase=params["passphrase"])
    timing = _keyring.Timing(params["propagation_window"], params["token_max_lifetime"], params["clock_skew"],
                             params["max_key_age"])
    options = dict(published_kids=params["published_kids"], remove_private_keys=params["remove_private_keys"],
                   keep_retired=params["keep_retired_keys"], check_mode=module.check_mode,
                   owner=resolve_uid(params["owner"]))
    if params["pkcs11_uri"] is not None:
        result = _keyring_pkcs11.run(spec, params["state_path"], params["action"], timing,
                                     pin=params["pkcs11_pin"], pin_file=params["pkcs11_pin_file"], **options)
    else:
        result = _keyring.run(spec, params["action"], timing, **options)
    for warning in result.pop("warnings"):
        module.warn(warning)
    return result
