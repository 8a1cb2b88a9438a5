#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: jwt_keypair
short_description: Ensure a private JWT signing key on a host and return its public JWK
description:
  - Makes sure a PEM private key for signing JWTs exists at O(path) and returns its public half as a JSON
    Web Key (RV(jwk)) with a key id (RV(kid)), ready for M(selfjwt.kyma.jwks_publish).
  - A new key is generated on the host from the operating system's random number generator and written
    atomically (temporary file with mode V(0600) in the same directory, then renamed), so it never leaves
    the host and no reader ever sees a partial file.
  - An existing key is kept as long as it is of the requested O(type), O(size) and O(curve). It is
    B(never replaced without being asked to), because a new key has a new key id and callers using it
    are rejected until the published JWKS contains it. See O(regenerate).
  - The private key is never returned, logged or shown in a diff. The diff (C(--diff)) shows public facts
    only - key id, thumbprint, type, size or curve, whether the file is encrypted, certificate subject,
    expiry and SHA-256 fingerprint.
  - Optionally keeps a self-signed X.509 certificate for the key at O(certificate_path); its DER chain and
    digests are then published in the JWK as C(x5c), C(x5t) and C(x5t#S256).
version_added: 0.1.0
author:
  - selfjwt.kyma maintainers (@selfjwt)
requirements:
  - cryptography >= 3.4 on the managed host
  - PyJWT >= 2.4.0 on the managed host
extends_documentation_fragment:
  - ansible.builtin.files
  - selfjwt.kyma.attributes
  - selfjwt.kyma.attributes.files
  - selfjwt.kyma.attributes.platform
  - selfjwt.kyma.attributes.action_group
  - selfjwt.kyma.new_key
attributes:
  check_mode:
    support: full
    details:
      - In check mode no key is generated, so RV(kid), RV(jwk) and RV(public_key) are V(null) when a new
        key would be generated (RV(kid) is O(kid) if set), and RV(certificate) is V(null) when a new
        certificate would be made.
  diff_mode:
    support: full
    details:
      - Public facts only; never private key material.
  idempotent:
    support: partial
    details:
      - O(regenerate=always) makes a new key on every run.
options:
  path:
    description:
      - Path of the private key file (PEM).
      - The directory must exist (or be created with O(parent_mode)). It must belong to root, the account
        running the module or O(owner), and neither its group nor others may write to it, sticky bit or
        not, because in a shared directory such as V(/tmp) another account could put a key, a link or a lock
        file under the key's name first. Such a directory is refused before anything is read.
      - An existing key file (and certificate) must be a regular file of root, the running account or
        O(owner); a symbolic link or a file of another account is refused, never followed, used or
        published.
      - If O(mode) is not set, the file gets mode V(0600) whatever the umask.
    type: path
    required: true
  state:
    description:
      - V(present) makes sure the key (and the certificate, if O(certificate_path) is set) exists.
      - V(absent) removes the key file and the certificate file at O(certificate_path). Callers signing
        with the key fail afterwards; remove its JWK from the JWKS as well.
    type: str
    choices: [present, absent]
    default: present
  passphrase:
    description:
      - Passphrase that encrypts the key file (PKCS#8 with the best encryption C(cryptography) offers).
      - If the existing key is not encrypted, it is encrypted with this passphrase (same key, same RV(kid)).
      - If the existing key is encrypted with another passphrase, set O(old_passphrase) to change it.
      - Without O(passphrase), the key file is not encrypted and is protected by its file mode only.
    type: str
  old_passphrase:
    description:
      - Passphrase the existing key file is encrypted with, when it differs from O(passphrase).
      - The key is then written again, encrypted with O(passphrase) (or not encrypted when O(passphrase)
        is not set). The key and its RV(kid) stay the same.
      - Has no effect when O(passphrase) decrypts the existing key.
    type: str
  kid:
    description:
      - Key id of the JWK.
      - Defaults to the RFC 7638 SHA-256 thumbprint of the public key, which M(selfjwt.kyma.jwt_token) also
        uses by default, so both agree without configuration. If you set O(kid), give M(selfjwt.kyma.jwt_token)
        the same C(kid).
      - The key id is not stored in the key file; it is computed (or taken from O(kid)) on every run.
      - 1 to 128 characters from C(A-Z a-z 0-9 . _ ~ -).
    type: str
  certificate_path:
    description:
      - Path of a self-signed X.509 certificate (PEM) for the key. When set, the module keeps this
        certificate and the JWK carries C(x5c), C(x5t) and C(x5t#S256).
      - The certificate is made again when it is missing, cannot be read, holds another public key or has
        another subject than O(certificate_subject). Its validity dates are not checked (like
        C(ignore_timestamps) of community.crypto), so an existing certificate is kept until it is removed.
      - The certificate is public; it is written with mode V(0644) and the O(owner), O(group) and SELinux
        attributes given for the key.
    type: path
  certificate_subject:
    description:
      - Common name (CN) of the certificate subject, 1 to 64 characters.
      - Defaults to the key id (RV(kid)), so no inventory names end up in the published JWKS.
    type: str
  certificate_valid_days:
    description:
      - Validity of a new certificate in days, from the time it is made (1 to 36500).
    type: int
    default: 3650
  regenerate:
    description:
      - When an existing key may be replaced by a new one. A missing key file is always generated.
      - A new key has a new RV(kid) - publish the new JWKS before tokens signed with the new key are used,
        and use O(backup=true) to keep the old key.
      - V(fail) (default) never replaces an existing key. The module fails, changing nothing, when the key
        cannot be read (damaged file, wrong or missing passphrase), cannot sign JWTs (for example DSA or
        RSA shorter than 2048 bits), or is not of the requested O(type), O(size) or O(curve). The message
        says which value of O(regenerate) replaces it.
      - V(never) keeps an existing key even if it is not of the requested type, size or curve (the results
        describe the key as it is); it fails like V(fail) when the key cannot be read or cannot sign JWTs.
      - V(partial_idempotence) replaces a key that is not of the requested type, size or curve or cannot
        sign JWTs, but fails when the key cannot be read.
      - V(full_idempotence) also replaces a key that cannot be read (damaged file, wrong passphrase).
      - V(always) makes a new key on every run (not idempotent); use it to force a new key once.
      - A passphrase change (see O(passphrase) and O(old_passphrase)) is not a regeneration; the key is kept.
      - These values mean what they mean for C(community.crypto.openssl_privatekey), but the default differs
        there (V(full_idempotence)).
    type: str
    choices: [never, fail, partial_idempotence, full_idempotence, always]
    default: fail
  backup:
    description:
      - Copy the key file (and the certificate) aside, with a timestamp in its name, before it is replaced
        or removed. The copy is written atomically from the content the module read (never through a
        symbolic link) with the key's mode (V(0600) unless O(mode) says otherwise), or V(0644) for a
        certificate.
    type: bool
    default: false
  parent_mode:
    description:
      - Make sure the directory of O(path) exists with this mode (octal such as V(0700), or symbolic).
        Missing directories are created (with their missing parents); they belong to the account running
        the module (root), with this mode and the group O(group), or the primary group of O(owner) when
        O(group) is not set. So with O(owner) and V(0750) the key's owner can read its key but cannot put
        files or links into the directory in which root writes.
      - An existing directory is left alone (its mode, owner and group are not changed) unless
        O(parent_update=true). The module warns when O(owner) cannot enter such a directory.
      - Unset (the default), the directory must exist and is left alone.
      - Saves a separate M(ansible.builtin.file) task (a second module run per host) before this module.
    type: raw
  parent_update:
    description:
      - Also give an existing directory of O(path) the owner (the running account), mode and group that
        O(parent_mode) gives a directory it creates. Needs O(parent_mode).
      - Set it only for a directory that belongs to the key alone (such as V(/etc/selfjwt)); never for a
        shared directory such as V(/etc/ssl) or V(/tmp), whose other users would lose access.
    type: bool
    default: false
  passphrase_file:
    description:
      - A file for the passphrase of the encrypted key, for signers that run unattended (such as the token
        refresher of the P(selfjwt.kyma.edge_keys#role) role).
      - With O(store_passphrase=true) the module keeps O(passphrase) in this file, written atomically with mode
        V(0600) and the key's O(owner) and O(group) from the first byte. Otherwise it removes the file if it
        exists, so no passphrase stays on the host that nothing needs. With O(state=absent) it is removed too.
      - The passphrase is never returned or shown in a diff; the diff shows whether the file exists.
    type: path
  store_passphrase:
    description:
      - Keep O(passphrase) in O(passphrase_file). Needs both.
    type: bool
    default: false
  private_key_content:
    description:
      - A private key (PEM) to adopt instead of generating one, for a key that several hosts share (the site keys of
        the P(selfjwt.kyma.edge_keys#role) role).
      - When O(path) does not exist, these bytes are written there unchanged (an encrypted key stays encrypted),
        atomically with mode V(0600) (or O(mode)) and the O(owner) and O(group) from the first byte. When O(path)
        holds the same key (the same public key), nothing is written. When it holds another key, or one that
        cannot be read, the module fails and changes nothing.
      - The key must load (with O(passphrase) when it is encrypted), be able to sign JWTs and be of the requested
        O(type), O(size) and O(curve); the rest (certificate, passphrase, attributes) is done as for a key on disk.
      - Never returned, logged or shown in a diff. Ansible pipes a module's arguments to the host over the
        connection when pipelining is on (C(ansible_pipelining=true)); otherwise it stages them in a temporary file
        (mode V(0600)) under the controller's local temporary directory while it transfers the module.
      - Needs O(state=present) and O(regenerate=fail) or O(regenerate=never).
    type: str
notes:
  - The key file is written in PKCS#8 PEM format. Existing keys in PKCS#1 (C(BEGIN RSA PRIVATE KEY)) or
    SEC1 (C(BEGIN EC PRIVATE KEY)) format are used as they are and not rewritten.
  - When the module runs as root and O(group) is not set, a replaced key or certificate keeps the group of
    the file it replaces. Its owner is kept too when O(owner) is not set; that owner can only be root or
    the running account, since a key file of another account is refused unless O(owner) names it.
  - Two runs against the same O(path) at the same time are serialized with a lock file
    C(.<name>.lock) beside the key, so they never both generate a key. The lock file holds no data and is
    left in place, also by O(state=absent). It is opened without following links and must be a regular
    file of root, the running account or the directory's owner.
  - The module never returns the private key. There is no option to do so.
seealso:
  - name: RFC 7517 - JSON Web Key (JWK)
    description: The JWK format returned in RV(jwk).
    link: https://www.rfc-editor.org/rfc/rfc7517
  - name: RFC 7638 - JSON Web Key (JWK) Thumbprint
    description: The default key id.
    link: https://www.rfc-editor.org/rfc/rfc7638
"""

EXAMPLES = r"""
---
- name: Ensure an EC P-256 (ES256) signing key
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/signing-key.pem
  register: signing_key

- name: Show the public JWK to publish
  ansible.builtin.debug:
    var: signing_key.jwk

- name: Ensure an RSA-4096 key (RS256) with a self-signed certificate, owned by the service user
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/rsa-key.pem
    type: rsa
    size: 4096
    certificate_path: /etc/selfjwt/rsa-cert.pem
    owner: selfjwt
    group: selfjwt
    mode: "0400"

- name: Ensure an encrypted Ed25519 key
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/ed25519-key.pem
    type: ed25519
    passphrase: "{{ vault_selfjwt_passphrase }}"

- name: Change the passphrase of that key (same key, same kid)
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/ed25519-key.pem
    type: ed25519
    passphrase: "{{ vault_selfjwt_new_passphrase }}"
    old_passphrase: "{{ vault_selfjwt_passphrase }}"

- name: Replace a key of another type with a new one, keeping a copy of the old file
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/signing-key.pem
    type: ec
    curve: P-384
    regenerate: partial_idempotence
    backup: true

- name: Adopt a key that the hosts of a site share (written only when the host has no key yet)
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/signing.pem
    private_key_content: "{{ site_key_pem }}"
  no_log: true
  vars:
    # Pipe the module and its arguments to the host instead of staging them on the controller's disk.
    ansible_pipelining: true

- name: Remove a key and its certificate
  selfjwt.kyma.jwt_keypair:
    path: /etc/selfjwt/rsa-key.pem
    certificate_path: /etc/selfjwt/rsa-cert.pem
    state: absent
"""

RETURN = r"""
---
filename:
  description: Path of the key file.
  returned: always
  type: str
  sample: /etc/selfjwt/signing-key.pem
kid:
  description:
    - Key id of the key - O(kid), or the RFC 7638 SHA-256 thumbprint of the public key.
    - V(null) when O(state=absent), and in check mode when a new key would be generated and O(kid) is not set.
  returned: always
  type: str
  sample: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0
jwk:
  description:
    - Public JWK of the key (RFC 7517, 7518, 8037) - C(kty), C(kid), C(use=sig), C(alg), the public key
      numbers (C(n), C(e) or C(crv), C(x), C(y)), and C(x5c), C(x5t), C(x5t#S256) when a certificate is kept.
    - Never contains private members.
    - V(null) when O(state=absent), and in check mode when a new key would be generated.
  returned: always
  type: dict
  sample:
    kty: EC
    kid: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0
    use: sig
    alg: ES256
    crv: P-256
    x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU
    y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0
jwks:
  description:
    - The public JWKs to publish for this key - RV(jwk), and, when the key has a key ring
      (M(selfjwt.kyma.jwt_keyring)), the ring's next and retiring keys, so that publishing this list never drops a
      key of a rotation in progress. A key the ring revoked or retired is left out.
    - An empty list when O(state=absent), and in check mode when a new key would be generated.
  returned: always
  type: list
  elements: dict
  sample:
    - {kty: EC, kid: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0, use: sig, alg: ES256, crv: P-256, x: f83O..., y: x_FE...}
public_key:
  description:
    - Public key in PEM format (SubjectPublicKeyInfo).
    - V(null) when O(state=absent), and in check mode when a new key would be generated.
  returned: always
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...\n-----END PUBLIC KEY-----\n"
certificate:
  description:
    - The self-signed certificate in PEM format.
    - V(null) when O(certificate_path) is not set, when O(state=absent), and in check mode when a new
      certificate would be made.
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIBhTCCASugAwIBAgIU...\n-----END CERTIFICATE-----\n"
type:
  description:
    - Type of the key (of the requested key in check mode when a new key would be generated).
    - V(null) when O(state=absent).
  returned: always
  type: str
  sample: ec
size:
  description: Size of an RSA key in bits; V(null) for other key types and when O(state=absent).
  returned: always
  type: int
  sample: 4096
curve:
  description: Curve of an EC key; V(null) for other key types and when O(state=absent).
  returned: always
  type: str
  sample: P-256
backup_file:
  description: Name of the backup copy of the key file.
  returned: changed and if O(backup=true) and an existing key file was replaced or removed
  type: str
  sample: /etc/selfjwt/signing-key.pem.2462.2026-01-01@12:00:00~
certificate_backup_file:
  description: Name of the backup copy of the certificate file.
  returned: changed and if O(backup=true) and an existing certificate file was replaced or removed
  type: str
  sample: /etc/selfjwt/rsa-cert.pem.2462.2026-01-01@12:00:00~
"""

import os
import stat

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    grp = pwd = None

from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _files, _jose, _jwk, _keypair, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import SecretMaskingModule
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import check_mode_option, run_module, write_file
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import resolve_gid, resolve_uid


def argument_spec():
    new_key = _argspec.new_key_argument_spec()
    return dict(
        path=dict(type="path", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        type=new_key["type"],
        size=new_key["size"],
        curve=new_key["curve"],
        passphrase=dict(type="str", no_log=True),
        old_passphrase=dict(type="str", no_log=True),
        kid=dict(type="str"),
        algorithm=new_key["algorithm"],
        certificate_path=dict(type="path"),
        certificate_subject=dict(type="str"),
        certificate_valid_days=dict(type="int", default=3650),
        regenerate=dict(type="str", default="fail", choices=list(_keypair.REGENERATE_CHOICES)),
        backup=dict(type="bool", default=False),
        parent_mode=dict(type="raw"),
        parent_update=dict(type="bool", default=False),
        passphrase_file=dict(type="path", no_log=False),
        store_passphrase=dict(type="bool", default=False, no_log=False),
        private_key_content=dict(type="str", no_log=True),
    )


def _parent_group(module):
    """Group of directories that parent_mode creates: O(group), else O(owner)'s primary group, else None."""
    gid = resolve_gid(module.params["group"])
    if gid is None and module.params["owner"] is not None:
        uid = resolve_uid(module.params["owner"])
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            raise FileError("owner %s has no entry in the user database, so the group of the key directory is "
                            "unknown: set group as well" % (module.params["owner"],))
    return gid


def _set_directory(module, directory, mode, gid, changed):
    """Mode, and owner (the running account) and group ``gid`` of ``directory``; returns changed."""
    args = dict(module.load_file_common_arguments(module.params), path=directory, mode=mode,
                owner=str(os.geteuid()), group=None if gid is None else str(gid), attributes=None)
    return module.set_fs_attributes_if_different(args, changed)


def _ensure_parent(module, path):
    """O(parent_mode) and O(parent_update): the key's directory; returns changed.

    Missing directories are created by and for the running account, with O(parent_mode) and
    the group of _parent_group(). An existing directory is changed only with O(parent_update):
    a directory this module did not make may be shared (/etc/ssl), and handing it to another
    account or changing its mode would break other software or open it to others.
    """
    _files.check_path(path, "private key")
    mode = module.params["parent_mode"]
    if mode is None:
        if module.params["parent_update"]:
            raise FileError("parent_update needs parent_mode: set the mode the key directory should have")
        return False
    check_mode_option(mode)
    directory = os.path.dirname(os.path.abspath(path))
    missing = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise FileError("%s is not a directory, so the private key %s cannot be below it: give a path in a "
                        "directory" % (current, path))
    gid = _parent_group(module)
    changed = bool(missing)
    for created in reversed(missing):
        if module.check_mode:
            break
        try:
            os.mkdir(created, 0o700)
        except OSError as exc:
            raise FileError("cannot create the directory %s for the private key %s: %s"
                            % (created, path, exc.strerror or exc))
        _set_directory(module, created, mode, gid, True)
    if not missing and module.params["parent_update"]:
        changed = _set_directory(module, directory, mode, gid, False)
    return changed


def _owner_can_enter(uid, status):
    """True when the account ``uid`` may enter a directory with ``status`` (search permission)."""
    if uid == 0:
        return True
    if status.st_uid == uid:
        return bool(status.st_mode & stat.S_IXUSR)
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return bool(status.st_mode & stat.S_IXOTH)
    in_group = user.pw_gid == status.st_gid
    if not in_group and grp is not None:
        try:
            in_group = user.pw_name in grp.getgrgid(status.st_gid).gr_mem
        except KeyError:
            in_group = False
    return bool(status.st_mode & (stat.S_IXGRP if in_group else stat.S_IXOTH))


def _warn_if_owner_cannot_enter(module, path):
    """A key for an owner who cannot reach it (an existing directory that parent_mode left alone)."""
    uid = resolve_uid(module.params["owner"])
    directory = os.path.dirname(os.path.abspath(path))
    if uid is None or module.check_mode or not os.path.isdir(directory):
        return
    if not _owner_can_enter(uid, os.stat(directory)):
        module.warn("the owner %s cannot enter the key directory %s, so it cannot read its key: give the directory "
                    "the owner's group with mode 0750 (parent_mode=0750 and parent_update=true; edge_keys: "
                    "edge_keys_key_dir_update=true)" % (module.params["owner"], directory))


def _check_passphrase_file(path, key_path, store):
    """Refuse an unusable O(passphrase_file) before anything is written."""
    if path is None:
        return
    _files.check_path(path, "passphrase file")
    if os.path.isdir(path):
        raise FileError("passphrase file %s is a directory, not a file: give the path of a file" % path)
    directory = os.path.dirname(os.path.abspath(path))
    if store and directory != os.path.dirname(os.path.abspath(key_path)):
        _files.check_parent_dir(path, "passphrase file")


def _passphrase_file(module, result):
    """O(passphrase_file) and O(store_passphrase): keep the passphrase in its file, or remove the file."""
    path = module.params["passphrase_file"]
    if path is None:
        return
    store = module.params["store_passphrase"] and module.params["state"] == "present"
    existing = _files.read_bytes(path, "passphrase file", limit=64 * 1024,
                                 owners=_files.trusted_owners(resolve_uid(module.params["owner"])))
    changed = False
    if store:
        wanted = module.params["passphrase"].encode("utf-8")
        uid, gid = (None, None)
        if existing != wanted and not module.check_mode:
            uid, gid = resolve_uid(module.params["owner"]), resolve_gid(module.params["group"])
        file_args = dict(module.load_file_common_arguments(module.params), mode="0600")
        changed = write_file(module, path, wanted, existing, "passphrase file", 0o600, uid=uid, gid=gid,
                             attributes=file_args)
    elif existing is not None:
        changed = True
        if not module.check_mode:
            _files.remove(path, "passphrase file")
    result["changed"] = result["changed"] or changed
    diff = result.get("diff")
    if diff is not None:
        diff["before"]["passphrase_file"] = "absent" if existing is None else "present"
        diff["after"]["passphrase_file"] = "present" if store else "absent"


def _apply_file_attributes(module, result):
    """Owner, group, mode and SELinux context of the key and the certificate."""
    file_args = module.load_file_common_arguments(module.params)
    changed = result["changed"]
    if os.path.exists(file_args["path"]):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    certificate_path = module.params["certificate_path"]
    if certificate_path and os.path.exists(certificate_path):
        certificate_args = dict(file_args, path=certificate_path, mode="0644")
        changed = module.set_fs_attributes_if_different(certificate_args, changed)
    result["changed"] = changed


def _creation_mode(mode):
    """Mode a new key file gets before its first byte: O(mode) when numeric, else 0600.

    Symbolic modes (u=rw,g=r) are applied after the write, by set_fs_attributes_if_different().
    """
    return _files.creation_mode(mode, _keypair.KEY_MODE)


def _check_adoption_options(module, spec):
    """O(private_key_content) goes with O(state=present) and a O(regenerate) that never makes a key."""
    if module.params["private_key_content"] is None:
        return
    if spec.state != "present":
        raise FileError("private_key_content needs state=present: remove it to remove the key")
    if spec.regenerate not in ("fail", "never"):
        raise FileError("private_key_content adopts the given key and never makes a new one: leave regenerate at "
                        "fail (or set never), not %s" % spec.regenerate)


def _adoption_pending(module, spec, key_mode):
    """O(private_key_content): check the given key; write it when O(path) holds no key yet.

    Returns None when there is nothing to adopt (no O(private_key_content), or O(path) already
    holds that key), else the key's bytes: written (changed), or, in check mode, to be written.
    Everything is checked before the first byte is written; another key at O(path) is never
    replaced.
    """
    content = module.params["private_key_content"]
    if content is None:
        return None
    data = content.encode("utf-8")
    given = _keys.load_private_key(data, spec.passphrase, source="the key in private_key_content")
    if not _keys.key_matches(given, spec.type, spec.size, spec.curve):
        raise FileError("private_key_content holds %s, but type=%s was requested: set type, size and curve to match "
                        "the key" % (_keypair.describe_facts(_keys.key_description(given)), spec.type))

    owners = _files.trusted_owners(resolve_uid(module.params["owner"]))

    def adopt():
        _files.check_private_dir(spec.path, owners, "private key")
        existing = _files.read_bytes(spec.path, "private key", owners=owners)
        if existing is None:
            if not module.check_mode:
                _files.write_atomic(spec.path, data, key_mode, "private key", uid=resolve_uid(module.params["owner"]),
                                    gid=resolve_gid(module.params["group"]))
            return data
        if existing == data or _same_key(existing, given, spec):
            return None
        raise FileError("the private key %s holds another key than private_key_content (kid %s), or one that cannot "
                        "be read. Nothing was changed. Move the file away to adopt the given key, or keep the key "
                        "the file holds" % (spec.path, _jwk.key_thumbprint(given)))

    if module.check_mode:
        return adopt()
    with _files.locked(spec.path):
        return adopt()


def _same_key(existing, given, spec):
    """True when the PEM ``existing`` holds the key ``given`` (with either passphrase, if encrypted)."""
    for passphrase in (spec.passphrase, spec.old_passphrase) if _keys.pem_is_encrypted(existing) else (None,):
        try:
            key = _keys.load_private_key(existing, passphrase, check=False)
        except _jose.JoseError:
            continue
        try:
            return _jwk.jwk_key_members(key) == _jwk.jwk_key_members(given)
        except _jose.JoseError:
            return False
    return False


def _adopted_in_check_mode(spec, data):
    """The result of a check mode run that would write O(private_key_content): facts of the given key."""
    backend = _keypair.KeypairBackend(spec, check_mode=True)
    certificate = (_files.read_bytes(spec.certificate_path, "certificate", owners=backend.owners)
                   if spec.certificate_path else None)
    backend.set_existing(data, certificate)
    backend.plan()
    result = backend.result()
    result["changed"] = True
    _key_was_absent(result)
    return result


def _key_was_absent(result):
    """The diff of an adopted key: there was no key before (the certificate's facts stay)."""
    before = {"state": "absent"}
    if "certificate" in result["diff"]["before"]:
        before["certificate"] = result["diff"]["before"]["certificate"]
    result["diff"]["before"] = before


def run(module):
    check_mode_option(module.params["mode"])
    spec = _keypair.KeypairSpec.from_params(module.params)
    if module.params["store_passphrase"] and not (module.params["passphrase_file"] and module.params["passphrase"]):
        raise FileError("store_passphrase needs passphrase_file and passphrase: set both, or set store_passphrase=false")
    _check_passphrase_file(module.params["passphrase_file"], spec.path, module.params["store_passphrase"])
    _check_adoption_options(module, spec)
    key_mode = _creation_mode(module.params["mode"])
    if spec.state == "absent":
        result = dict(_keypair.ensure_absent(spec, check_mode=module.check_mode,
                                             uid=resolve_uid(module.params["owner"])), jwks=[])
        _passphrase_file(module, result)
        return result
    parent_changed = _ensure_parent(module, spec.path)
    adopted = _adoption_pending(module, spec, key_mode)
    if adopted is not None and module.check_mode:
        result = _adopted_in_check_mode(spec, adopted)
        _apply_file_attributes(module, result)
        result["jwks"] = [result["jwk"]]
        return result
    result = _keypair.ensure_present(
        spec, check_mode=module.check_mode, key_mode=key_mode,
        uid=resolve_uid(module.params["owner"]), gid=resolve_gid(module.params["group"]),
        # In check mode a directory that parent_mode would create does not exist yet.
        check_parent=not (module.check_mode and parent_changed and not os.path.isdir(os.path.dirname(
            os.path.abspath(spec.path)))))
    result["changed"] = result["changed"] or parent_changed or adopted is not None
    if adopted is not None:
        _key_was_absent(result)
    _warn_if_owner_cannot_enter(module, spec.path)
    _apply_file_attributes(module, result)
    _passphrase_file(module, result)
    owners = _files.trusted_owners(resolve_uid(module.params["owner"]))
    result["jwks"] = _keyring.jwks_for_key(spec.path, result["jwk"], owners) if result["jwk"] else []
    return result


def main():
    module = SecretMaskingModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        add_file_common_args=True,
        required_by={"certificate_subject": "certificate_path"},
    )
    if module.params["mode"] is None:
        module.params["mode"] = "0600"
    run_module(module, run)


if __name__ == "__main__":
    main()
