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
  - With O(pkcs11_uri) instead of O(path), the key pair lives in a PKCS#11 token (HSM, smart card, TPM 2.0);
    it is generated there as a sensitive, non-extractable object, or an existing one is adopted, and
    the token makes every signature, including the certificate's. O(regenerate) works as for files; a
    replaced key object is destroyed after its successor exists.
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
  - selfjwt.kyma.pkcs11
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
      - Exactly one of O(path) and O(pkcs11_uri) is required.
    type: path
  state:
    description:
      - V(present) makes sure the key (and the certificate, if O(certificate_path) is set) exists.
      - V(absent) removes the key file and the certificate file at O(certificate_path). Callers signing
        with the key fail afterwards; remove its JWK from the JWKS as well.
    type: str
    choices: [present, absent]
    default: present
  state_path:
    description:
      - With O(pkcs11_uri), the state of the key's ring (the O(selfjwt.kyma.jwt_keyring#module:state_path) of
        M(selfjwt.kyma.jwt_keyring)), when the key is rotated. Its next and retiring keys then join RV(jwks), as the
        ring beside a key file does for O(path).
      - Read with the ring's rules (no symbolic link followed, a state of another account than root, the running
        account and O(owner) refused); nothing is written to it. A missing file means no ring.
    type: path
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

- name: Ensure a non-extractable P-256 key in the host's TPM 2.0 (token initialised with tpm2_ptool)
  selfjwt.kyma.jwt_keypair:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
    pkcs11_pin_file: /etc/selfjwt/token.pin
    type: ec
    curve: P-256
    certificate_path: /etc/selfjwt/signing-cert.pem
  register: signing_key

- name: Destroy that key in the token (tokens signed with it no longer verify once its JWK is unpublished)
  selfjwt.kyma.jwt_keypair:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_pin_file: /etc/selfjwt/token.pin
    state: absent
"""

RETURN = r"""
---
filename:
  description: Path of the key file; V(null) for a key in a token (O(pkcs11_uri)).
  returned: always
  type: str
  sample: /etc/selfjwt/signing-key.pem
pkcs11_uri:
  description: The PKCS#11 URI of the key, as given.
  returned: when O(pkcs11_uri) is set
  type: str
  sample: pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so
pkcs11:
  description:
    - What the token says about the key object; never key material.
    - C(extractable) is the token's C(CKA_EXTRACTABLE) and C(sensitive) its C(CKA_SENSITIVE); a key this
      module generates is sensitive and not extractable.
    - C(never_extractable) and C(always_sensitive) (C(CKA_NEVER_EXTRACTABLE), C(CKA_ALWAYS_SENSITIVE)) are the
      key's history, which the token keeps; trust them over C(extractable), which some tokens (TPM 2.0) let
      be changed later.
  returned: when O(pkcs11_uri) is set and the key exists (not in check mode for a new key)
  type: dict
  sample:
    label: jwt-signing
    id: 9f2c41d0a3b6e58c1f7d20e4b9a6c3d1
    extractable: false
    never_extractable: true
    sensitive: true
    always_sensitive: true
    token: {label: edge, manufacturer: SoftHSM project, model: SoftHSM v2, serial: 3a1b5c7d9e0f2a4b}
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

from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import SecretMaskingModule, run_module
from ansible_collections.selfjwt.kyma.plugins.module_utils._keypair_module import run


def argument_spec():
    new_key = _argspec.new_key_argument_spec()
    return dict(
        path=dict(type="path"),
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
        state_path=dict(type="path"),
        **_argspec.pkcs11_argument_spec()
    )


def main():
    module = SecretMaskingModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        add_file_common_args=True,
        required_one_of=[("path", "pkcs11_uri")],
        required_by={"certificate_subject": "certificate_path", "state_path": "pkcs11_uri"},
        mutually_exclusive=[("path", "pkcs11_uri")] + [
            ("pkcs11_uri", name) for name in ("passphrase", "old_passphrase", "passphrase_file", "private_key_content",
                                              "parent_mode")],
    )
    if module.params["mode"] is None:
        module.params["mode"] = "0600"
    run_module(module, run)


if __name__ == "__main__":
    main()
