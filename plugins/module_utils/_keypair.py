# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Signing key files on edge hosts: the logic behind the jwt_keypair module.

PRIVATE to the collection: do not import it from other collections.

Like ``_jose`` and ``_files``, this file does not import Ansible; the modules jwt_keypair and
jwt_keyring (through ``_keyring``, which stages new keys with :class:`KeypairSpec`) use it.

One :class:`KeypairBackend` manages one private key file and, optionally, a self-signed
certificate beside it. It follows the protocol of community.crypto's backends::

    backend = KeypairBackend(spec, check_mode=..., backup=...)
    backend.set_existing(key_bytes, certificate_bytes)   # what is on disk now
    backend.plan()                                        # needs_regeneration() -> generate()
    backend.write()                                       # nothing in check mode
    result = backend.result()                             # public facts, diff

:func:`ensure_present` and :func:`ensure_absent` run that protocol under the file lock.
Everything that may fail (bad options, an unreadable key, a key of the wrong type) fails
before the first byte is written, and a failed write leaves every file as it was.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _certificates, _jose, _jwk, _keys

KEY_TYPES = ("rsa", "ec", "ed25519")
CURVES = ("P-256", "P-384", "P-521")
REGENERATE_CHOICES = ("never", "fail", "partial_idempotence", "full_idempotence", "always")
STATES = ("present", "absent")

#: The regenerate mode used when none is given: an existing key is never replaced unasked.
DEFAULT_REGENERATE = "fail"
DEFAULT_CERTIFICATE_VALID_DAYS = 3650
MAX_CERTIFICATE_VALID_DAYS = 36500
#: Upper bound of an X.509 common name (RFC 5280, ub-common-name).
MAX_COMMON_NAME_LENGTH = 64

#: The state of a key's ring (``_keyring``) is the file ``<path>`` + RING_STATE_SUFFIX beside the key.
RING_STATE_SUFFIX = ".ring.json"

#: What jwt_keypair can do about a missing key directory.
PARENT_MODE_HINT = ", or set parent_mode (for example '0700') so that jwt_keypair creates it"

KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644

_ALGORITHM_TYPE = {"RSA": "rsa", "EC": "ec", "OKP": "ed25519"}

_REPLACE_HINT = ("this changes the kid, so publish the new JWKS before tokens signed with the new key "
                 "are used; add backup=true to keep the old file")


def ring_state_path(key_path):
    """Where the ring of the key at ``key_path`` keeps its state (``_keyring.state_path``)."""
    return key_path + RING_STATE_SUFFIX


class KeypairError(_jose.JoseError):
    """An error of the key file management, with a message that says what to do next."""


class KeypairSpec(object):
    """The desired state of one key file (the options of jwt_keypair)."""

    FIELDS = ("path", "state", "type", "size", "curve", "passphrase", "old_passphrase", "kid",
              "algorithm", "certificate_path", "certificate_subject", "certificate_valid_days",
              "regenerate", "backup", "pkcs11_uri")
    DEFAULTS = {
        "state": "present", "type": "ec", "size": 4096, "curve": "P-256",
        "certificate_valid_days": DEFAULT_CERTIFICATE_VALID_DAYS,
        "regenerate": DEFAULT_REGENERATE, "backup": False,
    }

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - set(self.FIELDS))
        if unknown:
            raise TypeError("unknown key pair option(s): %s" % ", ".join(unknown))
        for name in self.FIELDS:
            value = kwargs.get(name)
            if value is None:
                value = self.DEFAULTS.get(name)
            setattr(self, name, value)
        # An empty passphrase means "no passphrase", as for _keys.load_private_key().
        self.passphrase = self.passphrase or None
        self.old_passphrase = self.old_passphrase or None

    @classmethod
    def from_params(cls, params):
        """A spec from a module's params (other keys, such as file attributes, are ignored)."""
        return cls(**dict((name, params.get(name)) for name in cls.FIELDS))

    def __repr__(self):
        # Never show passphrases, not even in a traceback.
        shown = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self.FIELDS
                          if name not in ("passphrase", "old_passphrase"))
        return "KeypairSpec(%s)" % shown

    def validate(self, names=None):
        """Refuse contradictory or unsafe options before anything is read or written.

        ``names`` maps an option to the name the messages give it (a role checks its variables
        with the module's rules: ``{"type": "edge_keys_key_type"}``); options not in it keep
        their own name.
        """
        name = dict((field, (names or {}).get(field, field)) for field in self.FIELDS)
        if self.pkcs11_uri is not None:
            self._validate_token_key(name)
        elif not self.path or not isinstance(self.path, str):
            raise KeypairError("%s must be the path of the private key file" % name["path"])
        if self.state not in STATES:
            raise KeypairError("%s must be one of %s, got %r" % (name["state"], ", ".join(STATES), self.state))
        if self.regenerate not in REGENERATE_CHOICES:
            raise KeypairError("%s must be one of %s, got %r"
                               % (name["regenerate"], ", ".join(REGENERATE_CHOICES), self.regenerate))
        if self.type not in KEY_TYPES:
            raise KeypairError("%s must be one of %s, got %r" % (name["type"], ", ".join(KEY_TYPES), self.type))
        if self.type == "rsa":
            if (not isinstance(self.size, int) or isinstance(self.size, bool)
                    or not _keys.MIN_RSA_BITS <= self.size <= _keys.MAX_RSA_BITS):
                raise KeypairError("%s must be between %d and %d bits for RSA keys, got %r: use 2048, 3072 or 4096"
                                   % (name["size"], _keys.MIN_RSA_BITS, _keys.MAX_RSA_BITS, self.size))
        if self.type == "ec" and self.curve not in CURVES:
            raise KeypairError("%s must be one of %s, got %r" % (name["curve"], ", ".join(CURVES), self.curve))
        if self.algorithm is not None:
            self._validate_algorithm(name)
        if self.kid is not None:
            try:
                _jwk.check_kid(self.kid)
            except _jose.JoseError as exc:
                raise KeypairError(str(exc).replace("kid ", name["kid"] + " ", 1))
        if self.certificate_path:
            if self.path and os.path.abspath(self.certificate_path) == os.path.abspath(self.path):
                raise KeypairError("%s must differ from %s: the certificate would overwrite the key"
                                   % (name["certificate_path"], name["path"]))
            days = self.certificate_valid_days
            if (not isinstance(days, int) or isinstance(days, bool)
                    or not 1 <= days <= MAX_CERTIFICATE_VALID_DAYS):
                raise KeypairError("%s must be between 1 and %d, got %r"
                                   % (name["certificate_valid_days"], MAX_CERTIFICATE_VALID_DAYS, days))
            subject = self.certificate_subject
            if subject is not None:
                self._check_common_name(subject, name["certificate_subject"], name)
            elif self.kid is not None:
                self._check_common_name(self.kid, "%s (the default %s)" % (name["kid"], name["certificate_subject"]),
                                        name)
        elif self.certificate_subject is not None:
            raise KeypairError("%s needs %s: set the path of the certificate file"
                               % (name["certificate_subject"], name["certificate_path"]))
        return self

    def _validate_token_key(self, name):
        """A key in a PKCS#11 token: a valid URI, and none of the options that only a key file has."""
        # Imported here: runs with key files do not load the token code.
        from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11  # pylint: disable=import-outside-toplevel

        try:
            _pkcs11.parse_uri(self.pkcs11_uri)
        except _jose.JoseError as exc:
            raise KeypairError("%s: %s" % (name["pkcs11_uri"], exc))
        for field in ("path", "passphrase", "old_passphrase"):
            if getattr(self, field):
                raise KeypairError("%s and %s exclude each other: a key in a token has no file and no passphrase"
                                   % (name["pkcs11_uri"], name[field]))

    def _validate_algorithm(self, name):
        # The policy (none, HS*, unknown names) is _algorithms'; the fit is checked against the options.
        try:
            family = _algorithms.key_family_of(self.algorithm)
        except _jose.JoseError as exc:
            raise KeypairError(str(exc).replace("algorithm ", name["algorithm"] + " ", 1))
        wanted = _ALGORITHM_TYPE[family]
        if wanted != self.type:
            raise KeypairError("algorithm %s needs a key of type %s, but %s is %s: change %s or %s"
                               % (self.algorithm, wanted, name["type"], self.type, name["type"], name["algorithm"]))
        if self.type == "ec" and _algorithms.EC_ALG_CURVE[self.algorithm] != self.curve:
            raise KeypairError("algorithm %s needs curve %s, but %s is %s: change %s or %s"
                               % (self.algorithm, _algorithms.EC_ALG_CURVE[self.algorithm], name["curve"], self.curve,
                                  name["curve"], name["algorithm"]))

    @staticmethod
    def _check_common_name(value, what, name=None):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_COMMON_NAME_LENGTH:
            raise KeypairError("%s %r cannot be a certificate common name: it must have 1 to %d characters; "
                               "set %s" % (what, value, MAX_COMMON_NAME_LENGTH,
                                           (name or {}).get("certificate_subject", "certificate_subject")))

    def requested_facts(self):
        """Type and size or curve that a new key gets."""
        facts = {"type": self.type}
        if self.type == "rsa":
            facts["size"] = self.size
        elif self.type == "ec":
            facts["curve"] = self.curve
        return facts


class KeypairBackend(object):
    """Decides about, creates and writes one key file and its optional certificate."""

    #: What the messages about replacing the key add (see _keypair_pkcs11 for a token's).
    REPLACE_HINT = _REPLACE_HINT

    def __init__(self, spec, check_mode=False, backup=None, key_mode=KEY_MODE, uid=None, gid=None):
        self.spec = spec.validate()
        self.check_mode = check_mode
        self._backup = backup or write_backup
        #: Accounts whose key and certificate files are used: root, the running account, ``uid``.
        self.owners = _files.trusted_owners(uid)
        self.existing_status = {}
        self.key_mode = key_mode
        self.uid = uid
        self.gid = gid
        self.existing_key_bytes = None
        self.existing_key = None
        self.existing_key_error = None
        self.existing_encrypted = False
        self._loaded_with = None
        self.existing_certificate_bytes = None
        self.existing_certificate = None
        self.key = None
        self.key_pem = None
        self.key_action = None
        self.certificate = None
        self.certificate_pem = None
        self.certificate_action = None
        self.backup_file = None
        self.certificate_backup_file = None
        self.diff_before = {"state": "absent"}

    # -- what is on disk -------------------------------------------------------------------

    def set_existing(self, key_bytes, certificate_bytes=None):
        """Bytes of the key file and the certificate file; None when a file does not exist."""
        self.existing_key_bytes = key_bytes
        self.existing_certificate_bytes = certificate_bytes
        if key_bytes is not None:
            self._load_existing_key()
        if certificate_bytes is not None:
            try:
                self.existing_certificate = _certificates.load_certificate_pem(certificate_bytes)
            except _jose.JoseError:
                self.existing_certificate = None
        self.diff_before = self._facts(
            self.existing_key_bytes is not None, self.existing_key, self.existing_encrypted,
            self.existing_certificate_bytes is not None, self.existing_certificate)

    def load_existing(self):
        """Read the files named by the spec (FileError when they cannot be read)."""
        key_bytes, self.existing_status[self.spec.path] = _files.read_file(
            self.spec.path, "private key", owners=self.owners)
        certificate_bytes = None
        if self.spec.certificate_path:
            certificate_bytes, self.existing_status[self.spec.certificate_path] = _files.read_file(
                self.spec.certificate_path, "certificate", owners=self.owners)
        self.set_existing(key_bytes, certificate_bytes)

    def _load_existing_key(self):
        data = self.existing_key_bytes
        source = "the private key %s" % self.spec.path
        self.existing_encrypted = _keys.pem_is_encrypted(data)
        if self.existing_encrypted:
            candidates = [p for p in (self.spec.passphrase, self.spec.old_passphrase) if p]
            if len(candidates) == 2 and candidates[0] == candidates[1]:
                candidates = candidates[:1]
        else:
            candidates = []
        first_error = None
        for candidate in candidates or [None]:
            try:
                self.existing_key = _keys.load_private_key(data, candidate, source=source, check=False)
            except _jose.JoseError as exc:
                first_error = first_error or exc
                continue
            self._loaded_with = candidate
            return
        message = str(first_error)
        if len(candidates) > 1:
            message += " (old_passphrase did not decrypt it either)"
        self.existing_key_error = message

    @property
    def key_name(self):
        """The key as the messages name it."""
        return self.spec.path

    def _unusable_reason(self):
        """Why the loaded existing key must not sign JWTs (DSA, RSA < 2048, ...), or None."""
        try:
            _keys.signing_key_family(self.existing_key)
        except _jose.JoseError as exc:
            return str(exc)
        return None

    # -- decisions -------------------------------------------------------------------------

    def needs_regeneration(self):
        """True when a new key must be generated; KeypairError when the spec forbids what is needed."""
        spec = self.spec
        if spec.regenerate == "always" or self.existing_key_bytes is None:
            return True
        if self.existing_key is None:
            if spec.regenerate == "full_idempotence":
                return True
            raise KeypairError(
                "%s. Nothing was changed. Give the right passphrase or restore the file; to replace it "
                "with a new key instead, set regenerate=full_idempotence or regenerate=always (%s)"
                % (self.existing_key_error, self.REPLACE_HINT))
        unusable = self._unusable_reason()
        if unusable is not None:
            if spec.regenerate in ("partial_idempotence", "full_idempotence"):
                return True
            raise KeypairError(
                "the private key %s cannot sign JWTs: %s. Nothing was changed. To replace it with a new "
                "key, set regenerate=partial_idempotence or regenerate=always (%s)"
                % (self.key_name, unusable, self.REPLACE_HINT))
        if _keys.key_matches(self.existing_key, spec.type, spec.size, spec.curve):
            return False
        if spec.regenerate == "never":
            return False
        if spec.regenerate == "fail":
            raise KeypairError(
                "the private key %s is %s, but %s was requested. Nothing was changed. To keep the key, "
                "set the options to match it; to replace it with a new key, set "
                "regenerate=partial_idempotence or regenerate=always (%s)"
                % (self.key_name, describe_facts(_keys.key_description(self.existing_key)),
                   describe_facts(spec.requested_facts()), self.REPLACE_HINT))
        return True

    def needs_reencryption(self):
        """True when the existing key must be written again with another passphrase (or none)."""
        wanted = self.spec.passphrase
        if not self.existing_encrypted:
            return wanted is not None
        return self._loaded_with != wanted

    def plan(self):
        """Decide what to do with the key and the certificate; nothing is written here."""
        if self.needs_regeneration():
            self.generate()
        else:
            self.key = self.existing_key
            if self.needs_reencryption():
                self.reencrypt()
        if self.key is not None:
            # Also refuses an algorithm that does not fit a key kept with regenerate=never.
            _algorithms.check_algorithm(self.key, self.spec.algorithm)
        self.plan_certificate()

    def generate(self):
        self.key_action = "regenerate" if self.existing_key_bytes is not None else "generate"
        if self.check_mode:
            # The new key is not needed to predict the result; RSA keys are slow to make.
            self.key = None
            return
        self.key = _keys.generate_private_key(self.spec.type, self.spec.size, self.spec.curve)
        self.key_pem = _keys.private_key_pem(self.key, self.spec.passphrase)

    def reencrypt(self):
        self.key_action = "reencrypt"
        if not self.check_mode:
            self.key_pem = _keys.private_key_pem(self.key, self.spec.passphrase)

    def kid(self):
        if self.spec.kid:
            return self.spec.kid
        if self.key is None:
            return None
        return _jwk.key_thumbprint(self.key)

    def certificate_subject(self):
        return self.spec.certificate_subject or self.kid()

    def certificate_mismatch(self):
        """Why the certificate must be (re)generated, or None when the existing one fits."""
        if self.existing_certificate_bytes is None:
            return "missing"
        if self.existing_certificate is None:
            return "unreadable"
        if self.key_action in ("generate", "regenerate"):
            return "new key"
        try:
            same_key = (_jwk.jwk_key_members(self.existing_certificate.public_key())
                        == _jwk.jwk_key_members(self.key))
        except (ValueError, _jose.JoseError):
            same_key = False
        if not same_key:
            return "other key"
        if _certificates.certificate_subject_cn(self.existing_certificate) != self.certificate_subject():
            return "other subject"
        return None

    def plan_certificate(self):
        if not self.spec.certificate_path:
            return
        if self.key is None:
            self.certificate_action = "regenerate" if self.existing_certificate_bytes is not None else "generate"
            return
        if self.certificate_mismatch() is None:
            self.certificate = self.existing_certificate
            return
        self.certificate_action = "regenerate" if self.existing_certificate_bytes is not None else "generate"
        subject = self.certificate_subject()
        KeypairSpec._check_common_name(subject, "certificate subject")
        if self.check_mode:
            return
        self.certificate = _certificates.self_signed_certificate(self.key, subject, self.spec.certificate_valid_days)
        self.certificate_pem = _certificates.certificate_pem(self.certificate).encode("ascii")

    @property
    def changed(self):
        return self.key_action is not None or self.certificate_action is not None

    # -- writing ---------------------------------------------------------------------------

    def write(self):
        """Write what plan() prepared: backups first, then the certificate, then the key.

        When the key cannot be written, the certificate is put back as it was, so a failed
        run leaves both files byte-identical.
        """
        if self.check_mode:
            return
        spec = self.spec
        write_certificate = self.certificate_pem is not None
        write_key = self.key_pem is not None
        if spec.backup:
            if write_certificate and self.existing_certificate_bytes is not None:
                self.certificate_backup_file = self._backup(
                    spec.certificate_path, self.existing_certificate_bytes, CERTIFICATE_MODE, "certificate")
            if write_key and self.existing_key_bytes is not None:
                self.backup_file = self._backup(spec.path, self.existing_key_bytes, self.key_mode, "private key")
        if write_certificate:
            self._write(spec.certificate_path, self.certificate_pem, CERTIFICATE_MODE, "certificate")
        if write_key:
            try:
                self._write(spec.path, self.key_pem, self.key_mode, "private key")
            except _files.FileError as exc:
                if write_certificate:
                    self._restore_certificate(exc)
                raise

    def _restore_certificate(self, cause):
        path = self.spec.certificate_path
        try:
            if self.existing_certificate_bytes is None:
                _files.remove(path, "certificate")
            else:
                self._write(path, self.existing_certificate_bytes, CERTIFICATE_MODE, "certificate")
        except _files.FileError as exc:
            raise _files.FileError("%s; restoring the previous certificate failed too: %s" % (cause, exc))

    def _write(self, path, data, mode, what):
        """write_atomic() with the final owner and group set before the file appears.

        Without a requested owner or group, a file replaced by root keeps those of the old
        file (as read by load_existing(), never through a link), so a service account that
        reads the key does not lose access to it.
        """
        uid, gid = _files.replacement_owner(self.uid, self.gid, self.existing_status.get(path))
        _files.write_atomic(path, data, mode, what, uid=uid, gid=gid)

    # -- results ---------------------------------------------------------------------------

    def _facts(self, key_exists, key, encrypted, certificate_exists, certificate, new_key=False):
        """Public facts about a key and its certificate, for diffs (never key material)."""
        if not key_exists:
            facts = {"state": "absent"}
        else:
            facts = {"state": "present", "encrypted": bool(encrypted)}
            if new_key:
                facts["new_key"] = True
            if key is None:
                if new_key:
                    facts.update(self.spec.requested_facts())
                    facts["kid"] = self.spec.kid
                else:
                    facts["readable"] = False
            else:
                try:
                    facts.update(_keys.key_description(key))
                    facts["thumbprint"] = _jwk.key_thumbprint(key)
                    facts["kid"] = self.spec.kid or facts["thumbprint"]
                except _jose.JoseError:
                    facts["usable"] = False
        if self.spec.certificate_path:
            facts["certificate"] = _certificate_facts(certificate_exists, certificate)
        return facts

    def diff_after(self):
        key_exists = True
        encrypted = self.spec.passphrase is not None if self.key_action else self.existing_encrypted
        certificate_exists = self.certificate_action is not None or self.existing_certificate_bytes is not None
        facts = self._facts(key_exists, self.key, encrypted, certificate_exists, self.certificate,
                            new_key=self.key_action in ("generate", "regenerate"))
        if self.certificate_action is not None and self.certificate is None:
            facts["certificate"] = {"state": "present", "new_certificate": True}
        elif self.certificate_action is not None:
            facts["certificate"]["new_certificate"] = True
        return facts

    def result(self):
        """The module result: public key facts only, never private key material."""
        key = self.key
        if key is not None:
            info = _keys.key_description(key)
            kid = self.kid()
            certificates = [self.certificate] if self.certificate is not None else None
            jwk = _jwk.public_jwk(key, kid=kid, algorithm=self.spec.algorithm, certificates=certificates)
            public_key = _keys.public_key_pem(key)
        else:
            info = self.spec.requested_facts()
            kid = self.spec.kid
            jwk = None
            public_key = None
        result = {
            "changed": self.changed,
            "filename": self.spec.path,
            "kid": kid,
            "jwk": jwk,
            "public_key": public_key,
            "certificate": _certificates.certificate_pem(self.certificate) if self.certificate is not None else None,
            "type": info["type"],
            "size": info.get("size"),
            "curve": info.get("curve"),
            "diff": {"before": self.diff_before, "after": self.diff_after()},
        }
        if self.backup_file:
            result["backup_file"] = self.backup_file
        if self.certificate_backup_file:
            result["certificate_backup_file"] = self.certificate_backup_file
        return result


def write_backup(path, data, mode, what):
    """The default backup of a key or certificate file: the bytes read from it, beside it (see _files)."""
    return _files.write_backup(path, data, mode, what)


def describe_facts(facts):
    """``a key of type=ec curve=P-256`` for key facts (``_keys.key_description``, :meth:`KeypairSpec.requested_facts`)."""
    parts = [facts["type"]]
    if "size" in facts:
        parts.append("size=%s" % facts["size"])
    if "curve" in facts:
        parts.append("curve=%s" % facts["curve"])
    return "a key of type=%s" % " ".join(parts)


def _certificate_facts(exists, certificate):
    if not exists:
        return {"state": "absent"}
    if certificate is None:
        return {"state": "present", "readable": False}
    try:
        members = _jwk.certificate_members([certificate])
        not_after = _certificates.certificate_not_after(certificate)
        return {
            "state": "present",
            "subject": "CN=%s" % _certificates.certificate_subject_cn(certificate),
            "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x5t#S256": members["x5t#S256"],
        }
    except (ValueError, _jose.JoseError):
        return {"state": "present", "readable": False}


def ensure_present(spec, check_mode=False, backup=None, key_mode=KEY_MODE, uid=None, gid=None, check_parent=True):
    """Make sure the key (and certificate) exist as the spec says; returns the result dict.

    ``backup(path, data, mode, what)`` writes the copy of a file that is replaced when
    ``spec.backup`` is true and returns its path (default :func:`write_backup`: from the bytes
    already read, never by opening the path again). ``key_mode``, ``uid`` and ``gid`` are given
    to new files before their first byte is written (see :meth:`KeypairBackend._write`); the
    caller applies the remaining attributes. ``check_parent=False`` (check mode only: a
    directory the caller would create) plans as if the files did not exist instead of refusing
    a missing directory.

    Files and directories of other accounts are refused before anything is read: the key and
    the certificate must belong to root, the running account or ``uid``, and so must their
    directories, which nobody else may write (:func:`_files.check_private_dir`).
    """
    backend = KeypairBackend(spec, check_mode=check_mode, backup=backup, key_mode=key_mode, uid=uid, gid=gid)
    if check_parent:
        _files.check_parent_dir(spec.path, "private key", PARENT_MODE_HINT)
        _files.check_private_dir(spec.path, backend.owners, "private key")
        if spec.certificate_path:
            _files.check_parent_dir(spec.certificate_path, "certificate")
            _files.check_private_dir(spec.certificate_path, backend.owners, "certificate")
    with _files.locked_unless(check_mode, spec.path):
        backend.load_existing()
        backend.plan()
        backend.write()
        return backend.result()


def ensure_absent(spec, check_mode=False, backup=None, uid=None):
    """Remove the key file and the certificate (when certificate_path is set).

    Files are removed by name relative to their directory (never through a link); a backup
    is written from the bytes read without following links, and only of regular files of
    root, the running account or ``uid``.
    """
    spec.validate()
    paths = [(spec.path, "private key")]
    if spec.certificate_path:
        paths.append((spec.certificate_path, "certificate"))
    result = {
        "changed": False, "filename": spec.path, "kid": None, "jwk": None, "public_key": None,
        "certificate": None, "type": None, "size": None, "curve": None,
    }
    for path, what in paths:
        if os.path.isdir(path):
            raise KeypairError("%s %s is a directory, not a file: give the path of a file" % (what, path))
    # Without its directory there is no key, and no place for a lock file either.
    can_lock = os.path.isdir(os.path.dirname(os.path.abspath(spec.path)))
    with _files.locked_unless(check_mode or not can_lock, spec.path):
        backend = KeypairBackend(spec, check_mode=check_mode, uid=uid)
        try:
            backend.load_existing()
            before = backend.diff_before
        except _files.FileError:
            before = {"state": "present", "readable": False}
        existing = [(path, what) for path, what in paths if os.path.lexists(path)]
        result["changed"] = bool(existing)
        result["diff"] = {"before": before if existing else {"state": "absent"}, "after": {"state": "absent"}}
        if check_mode or not existing:
            return result
        if spec.backup:
            backup = backup or write_backup
            for path, what in existing:
                # The bytes of a regular file of a trusted account; a link or a foreign file is
                # removed without a copy (its content is not the key's).
                try:
                    data, status = _files.read_file(path, what, owners=backend.owners)
                except _files.FileError:
                    continue
                if data is not None:
                    name = "backup_file" if path == spec.path else "certificate_backup_file"
                    mode = backend.key_mode if path == spec.path else CERTIFICATE_MODE
                    result[name] = backup(path, data, mode, what)
        for path, what in existing:
            _files.remove(path, what)
    return result
