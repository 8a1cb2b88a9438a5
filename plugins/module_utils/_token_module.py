# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwt_token module's side: from its options to ``_token``, the token file's attributes, the result.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``); :func:`run` is the
module's whole run. The signing key is a key file, PEM content or a key in a PKCS#11 token
(``_token.signing_key``); a PIN file must belong to root or the account that runs the module.
The token refresher does not copy this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _token

TOKEN_OPTIONS = _token.TOKEN_OPTIONS


def file_mode(mode, dest):
    """Numeric mode of the token file, so that it is right from the moment the file appears.

    Unset means 0600. A symbolic mode (u=rw,g=r) applies to the existing file's mode, or to
    0600 for a new file. An invalid mode fails before anything is written.
    """
    if mode is None:
        return 0o600
    try:
        current = os.stat(dest).st_mode
    except OSError:
        current = stat.S_IFREG | 0o600
    return _files.file_mode(mode, current)


def run(module):
    """The whole run: one signing key (a token key with one session, closed at the end) for :func:`mint_or_keep`."""
    params = module.params
    with _token.signing_key(path=params["private_key_path"], content=params["private_key_content"],
                            passphrase=params["passphrase"], pkcs11_uri=params["pkcs11_uri"],
                            pkcs11_pin=params["pkcs11_pin"], pkcs11_pin_file=params["pkcs11_pin_file"],
                            pin_owners=_files.trusted_owners()) as key:
        return mint_or_keep(module, key)


def mint_or_keep(module, key):
    """Mint a token with ``key``, or keep the token file ``dest`` fresh with it; the module result."""
    params = module.params
    options = dict((name, params[name]) for name in TOKEN_OPTIONS)
    dest = params["dest"]
    if dest is None:
        return output(_token.mint(key, now=params["issued_at"], **options), changed=False)

    changed, result = _token.ensure_token_file(
        dest, key, refresh_margin=params["refresh_margin"], mode=file_mode(params["mode"], dest),
        uid=_files.resolve_uid(params["owner"]), gid=_files.resolve_gid(params["group"]),
        check_mode=module.check_mode, **options)
    diff = {
        "before_header": dest,
        "after_header": dest,
        "before": result.previous or {},
        "after": result.metadata(),
    }
    if os.path.lexists(dest):
        file_args = module.load_file_common_arguments(params, path=dest)
        changed = module.set_fs_attributes_if_different(file_args, changed, diff=diff)
    values = output(result, changed=changed, dest=dest)
    if module._diff:
        values["diff"] = diff
    return values


def output(result, changed, dest=None):
    values = dict(
        changed=changed,
        token=result.token,
        header=result.header,
        claims=result.claims,
        expires_at=result.expires_at,
        expires_at_iso=result.expires_at_iso,
        kid=result.kid,
    )
    if dest is not None:
        values["dest"] = dest
    return values
