# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""jwt_keypair for a key in a PKCS#11 token: adopt or generate it there, certificate on disk.

PRIVATE to the collection: do not import it from other collections.

:class:`TokenKeypairBackend` is ``_keypair``'s backend with the key file replaced by a token
object (see ``_pkcs11``): the decisions (``regenerate``, the certificate, the results and
diffs) are ``_keypair``'s, so a token key behaves like a key file except where a token
differs:

- A new key is generated inside the token (sensitive, not extractable) when plan() decides
  so, also in a run that later fails; write() then destroys it again, so a failed run leaves
  the token as it was.
- A key that is replaced (``regenerate``) is destroyed only after its successor exists and
  the certificate was written.
- There is no passphrase and no backup of the key: the key cannot leave the token.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _keypair, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils._keypair import KeypairError

_TOKEN_REPLACE_HINT = ("this changes the kid, so publish the new JWKS before tokens signed with the new key are "
                       "used; the old key object is destroyed")


class TokenKeypairBackend(_keypair.KeypairBackend):
    """Decides about, creates and destroys one key pair in a token, and writes its certificate."""

    def __init__(self, spec, session, check_mode=False, uid=None, gid=None):
        super(TokenKeypairBackend, self).__init__(spec, check_mode=check_mode, uid=uid, gid=gid)
        self.session = session
        self.existing_handle = None
        self.new_key = None

    def load_existing(self):
        handle = self.session.find()
        certificate_bytes = None
        if self.spec.certificate_path:
            certificate_bytes, self.existing_status[self.spec.certificate_path] = _files.read_file(
                self.spec.certificate_path, "certificate", owners=self.owners)
        self.existing_handle = handle
        # The base class tells "no key" from "a key" by its bytes; a token key has none.
        self.set_existing(b"" if handle is not None else None, certificate_bytes)

    def _load_existing_key(self):
        try:
            self.existing_key = self.session.key(handle=self.existing_handle)
        except _jose.JoseError as exc:
            self.existing_key_error = str(exc)

    REPLACE_HINT = _TOKEN_REPLACE_HINT

    @property
    def key_name(self):
        return self.session.uri.describe()

    def needs_regeneration(self):
        if self.existing_handle is not None and self.existing_key is None and self.spec.regenerate not in (
                "full_idempotence", "always"):
            raise KeypairError("%s. Nothing was changed. To replace it with a new key instead, set "
                               "regenerate=full_idempotence or regenerate=always (%s)"
                               % (self.existing_key_error, self.REPLACE_HINT))
        return super(TokenKeypairBackend, self).needs_regeneration()

    def needs_reencryption(self):
        return False

    def generate(self):
        self.key_action = "regenerate" if self.existing_handle is not None else "generate"
        if self.check_mode:
            self.key = None
            return
        spec = self.spec
        self.key = self.new_key = self.session.generate(spec.type, spec.size, spec.curve)

    def write(self):
        """The certificate (base class), then the old key object is destroyed; a failure undoes the new key."""
        if self.check_mode:
            return
        try:
            super(TokenKeypairBackend, self).write()
        except Exception:
            self._discard_new_key()
            raise
        if self.new_key is not None and self.existing_handle is not None:
            try:
                self.existing_handle.destroy()
            except Exception as exc:  # pylint: disable=broad-except
                raise KeypairError("the new key was made, but the old key object could not be destroyed (%s): "
                                   "two objects now carry its label; destroy the old one with the token's tools"
                                   % exc)

    def _discard_new_key(self):
        if self.new_key is not None:
            try:
                self.new_key._handle.destroy()  # pylint: disable=protected-access
            except Exception:  # pylint: disable=broad-except
                pass
            self.new_key = None

    def discard(self):
        """Undo what plan() did in the token (a run that fails between plan() and write())."""
        self._discard_new_key()

    def result(self):
        result = super(TokenKeypairBackend, self).result()
        result["filename"] = None
        result["pkcs11_uri"] = self.session.uri.text
        if self.key is not None:
            result["pkcs11"] = self.key.facts()
        return result


def ensure_present(spec, pin=None, check_mode=False, uid=None, gid=None):
    """Make sure the token key (and the certificate file) exist as ``spec`` says; returns the result."""
    spec.validate()
    uri = _pkcs11.parse_uri(spec.pkcs11_uri)
    if spec.certificate_path:
        _files.check_parent_dir(spec.certificate_path, "certificate")
        _files.check_private_dir(spec.certificate_path, _files.trusted_owners(uid), "certificate")
    with _pkcs11.open_session(uri, pin, write=not check_mode) as session:
        backend = TokenKeypairBackend(spec, session, check_mode=check_mode, uid=uid, gid=gid)
        lock = spec.certificate_path if spec.certificate_path else None
        with _files.locked_unless(check_mode or lock is None, lock):
            backend.load_existing()
            try:
                backend.plan()
            except Exception:
                backend.discard()
                raise
            backend.write()
            result = backend.result()
            result["jwks"] = [result["jwk"]] if result["jwk"] else []
            return result


def ensure_absent(spec, pin=None, check_mode=False, uid=None):
    """Destroy the token's key pair and remove the certificate file (when certificate_path is set)."""
    spec.validate()
    uri = _pkcs11.parse_uri(spec.pkcs11_uri)
    result = {
        "changed": False, "filename": None, "pkcs11_uri": uri.text, "kid": None, "jwk": None, "public_key": None,
        "certificate": None, "type": None, "size": None, "curve": None, "jwks": [],
    }
    with _pkcs11.open_session(uri, pin, write=not check_mode) as session:
        backend = TokenKeypairBackend(spec, session, check_mode=check_mode, uid=uid)
        backend.load_existing()
        certificate = spec.certificate_path if spec.certificate_path and os.path.lexists(spec.certificate_path) else None
        result["changed"] = backend.existing_handle is not None or certificate is not None
        result["diff"] = {"before": backend.diff_before if result["changed"] else {"state": "absent"},
                          "after": {"state": "absent"}}
        if check_mode or not result["changed"]:
            return result
        if backend.existing_handle is not None:
            session.destroy()
        if certificate is not None:
            _files.remove(certificate, "certificate")
    return result
