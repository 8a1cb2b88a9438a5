#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: jwt_token
short_description: Mint a short-lived signed JWT with a private key on the host
description:
  - Signs a JSON Web Token (JWS compact serialization) with a private key that is on the managed host,
    for example the key that M(selfjwt.kyma.jwt_keypair) keeps there, or with a key in a PKCS#11 token (an HSM,
    a smart card or a TPM 2.0) named by O(pkcs11_uri), which signs inside the token and never leaves it.
  - The token carries C(iss), C(sub), C(aud) (optional), C(iat), C(nbf), C(exp) and a random C(jti), plus extra
    claims; its header carries C(alg), C(typ), C(kid) (by default the key's RFC 7638 thumbprint, the same
    C(kid) that M(selfjwt.kyma.jwt_keypair) publishes) and optionally C(jku).
  - Only asymmetric algorithms are used. C(none) and the HMAC algorithms C(HS*) are refused, and so is an
    algorithm that does not fit the key.
  - B(The token is a bearer secret and this module returns it) in RV(token). The module cannot hide its own
    return values, so set C(no_log) to V(true) on the task whenever the token must not reach logs or callback
    output, or write it to O(dest) and let the consumer read the file.
  - Without O(dest) the module creates nothing on the host and always reports C(changed=false), like a read.
  - With O(dest) the token is written atomically to that file (mode V(0600) unless O(mode) says otherwise).
    A token already in the file is kept, and the task reports C(changed=false), while it was signed by the same
    key with the same header and claims and stays valid for longer than O(refresh_margin).
author:
  - selfjwt.kyma maintainers (@selfjwt)
requirements:
  - cryptography >= 3.4
  - PyJWT >= 2.4.0
  - python-pkcs11 (only with O(pkcs11_uri))
extends_documentation_fragment:
  - ansible.builtin.files
  - selfjwt.kyma.attributes
  - selfjwt.kyma.attributes.files
  - selfjwt.kyma.attributes.platform
  - selfjwt.kyma.attributes.action_group
  - selfjwt.kyma.token
  - selfjwt.kyma.pkcs11
attributes:
  check_mode:
    support: full
    details:
      - Without O(dest) a token is minted and returned in check mode too; nothing is written either way.
        A key in a PKCS#11 token signs in check mode too; the token's objects are never changed.
      - With O(dest), check mode writes nothing; when a new token would be written, RV(token) is a new token that
        is not stored.
  diff_mode:
    support: full
    details:
      - With O(dest), the diff shows the header, claims and expiry of the token in the file before and after.
        It never shows the token, the key or the PKCS#11 PIN.
  idempotent:
    support: full
    details:
      - Without O(dest) every run returns a new token, and reports C(changed=false) because nothing on the host
        changes.
      - With O(dest) a second run keeps the token (C(changed=false)) until it comes within O(refresh_margin) of its
        expiry.
options:
  private_key_path:
    description:
      - Path of the PEM private key (PKCS#8, PKCS#1 or SEC1) on the managed host.
      - RSA keys need at least 2048 bits; EC keys must be on P-256, P-384 or P-521; Ed25519 keys are supported.
      - Exactly one of O(private_key_path), O(private_key_content) and O(pkcs11_uri) is required.
    type: path
  private_key_content:
    description:
      - The PEM private key itself, for example from Ansible Vault.
      - Exactly one of O(private_key_path), O(private_key_content) and O(pkcs11_uri) is required.
    type: str
  passphrase:
    description:
      - Passphrase of an encrypted private key.
      - Leave it unset for an unencrypted key; giving a passphrase for an unencrypted key is refused.
      - Not with O(pkcs11_uri); a token key's PIN is O(pkcs11_pin) or O(pkcs11_pin_file).
    type: str
  issuer:
    description:
      - The C(iss) claim. It must equal the issuer of the APIRule's C(jwt) rule (Istio C(RequestAuthentication)).
    type: str
    required: true
  not_before:
    description:
      - C(nbf) relative to C(iat), in seconds.
      - Use a negative value, down to V(-300), to back-date C(nbf) for verifiers whose clocks run slightly behind.
      - A positive value (a token that becomes valid later) is allowed only without O(dest).
    type: int
    default: 0
  issued_at:
    description:
      - Mint the token as of this time (epoch seconds) instead of now; C(iat), C(nbf) and C(exp) follow from it.
      - Meant for smoke tests that must show that an expired token is refused, for example
        a time two hours ago with the default lifetime.
      - Cannot be combined with O(dest), because a token file always holds a token minted now.
    type: int
  claims:
    description:
      - Extra claims, for example C(scope) or C(groups), as a dictionary of JSON values.
      - The registered claims C(iss), C(sub), C(aud), C(exp), C(nbf), C(iat) and C(jti) cannot be set here; use
        their options.
    type: dict
  headers:
    description:
      - Extra members of the token header.
      - Members that decide how the token is verified (C(alg), C(crit), C(jwk), C(jku), C(x5u), C(x5c), C(x5t),
        C(x5t#S256), C(kid), C(b64), C(enc), C(zip), C(typ)) cannot be set here; use O(algorithm), O(kid), O(jku)
        and O(typ).
    type: dict
  jku:
    description:
      - The C(jku) header, the URL of the JWKS that holds the public key, such as the APIRule's C(jwksUri).
      - Verifiers must not follow it (Istio does not); it is informational. Omitted when not set.
    type: str
  jti:
    description:
      - The C(jti) claim, a unique token id.
      - Defaults to a random value with 128 bits of entropy, new for every token.
    type: str
  typ:
    description:
      - The C(typ) header.
    type: str
    default: JWT
  dest:
    description:
      - Write the token to this file on the managed host, atomically, without a trailing newline.
      - The directory must exist. A file that exists but does not hold a JWT is never overwritten.
      - The file gets mode V(0600) unless O(mode) is set, also when it existed with another mode. Use O(mode)
        (for example V('0640')) and O(group) to let a group of consumers read it. Mode, owner and group are set
        before the file appears under its name, so consumers never see it with other permissions.
      - A symbolic O(mode) (for example V(u=rw,g=r)) applies to the mode of the existing file, or to V(0600) for
        a new file.
      - Without O(dest) nothing is written and the task reports C(changed=false).
    type: path
  refresh_margin:
    description:
      - Only with O(dest). The token in O(dest) is kept while it stays valid for longer than this many seconds;
        otherwise a new token is written.
      - Defaults to a third of O(expires_in) (200 seconds for the default lifetime of 600 seconds), so a consumer
        that reads the file always gets a token with at least that much lifetime left, provided the task or
        a refresher runs more often than that.
      - A value equal to or above O(expires_in) writes a new token on every run.
    type: int
notes:
  - Loading an RSA private key costs 55 to 375 ms because the key is fully validated; signing is cheap. EC and
    Ed25519 keys load in well under a millisecond.
  - With O(pkcs11_uri) the module opens one session on the token for the run and closes it at the end, also when
    the run fails. The header, claims, C(kid) and the rules for keeping a token in O(dest) are those of a key file.
    A PKCS#11 PIN file must belong to root or to the account that runs the module.
  - The module needs the Python libraries C(cryptography) and C(PyJWT) on the managed host.
  - Writers of the same O(dest) are serialized with a lock file C(.<name>.lock) in the same directory.
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.jwks_publish
  - name: RFC 7512 The PKCS#11 URI Scheme
    description: How O(pkcs11_uri) names a token and a key.
    link: https://www.rfc-editor.org/rfc/rfc7512
  - name: RFC 7519 JSON Web Token
    description: The claims of a JWT.
    link: https://www.rfc-editor.org/rfc/rfc7519
  - name: RFC 8725 JSON Web Token Best Current Practices
    description: Why only asymmetric algorithms bound to the key are used.
    link: https://www.rfc-editor.org/rfc/rfc8725
"""

EXAMPLES = r"""
---
- name: Mint a token for the API (no_log keeps the bearer token out of logs)
  selfjwt.kyma.jwt_token:
    private_key_path: /etc/selfjwt/signing-key.pem
    issuer: https://edge.example.com
    subject: "{{ inventory_hostname }}"
    audience: orders-api
    claims:
      scope: orders.read
  register: api_token
  no_log: true

- name: Call the API with it
  ansible.builtin.uri:
    url: https://orders.example.kyma.ondemand.com/orders
    headers:
      Authorization: "Bearer {{ api_token.token }}"
  no_log: true

- name: The original article's token (RS256, 4096-bit key, kid and jku headers, iss and jti claims, one hour)
  selfjwt.kyma.jwt_token:
    private_key_path: /etc/selfjwt/rsa4096.pem   # created with selfjwt.kyma.jwt_keypair type=rsa size=4096
    algorithm: RS256
    issuer: https://edge.example.com
    subject: "{{ inventory_hostname }}"
    jku: http://jwks.jwks.svc.cluster.local/.well-known/jwks.json
    expires_in: 3600
  register: article_token
  no_log: true

- name: Keep a token file fresh for local programs of the group apiclients
  selfjwt.kyma.jwt_token:
    private_key_path: /etc/selfjwt/signing-key.pem
    passphrase: "{{ vault_signing_key_passphrase }}"
    issuer: https://edge.example.com
    subject: "{{ inventory_hostname }}"
    audience:
      - orders-api
      - stock-api
    expires_in: 900
    refresh_margin: 300
    dest: /var/lib/selfjwt/token
    owner: root
    group: apiclients
    mode: "0640"
  no_log: true

- name: Keep a token file fresh with a key in a SoftHSM2 token (the PIN in a 0600 file)
  selfjwt.kyma.jwt_token:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_pin_file: /etc/selfjwt/token-pin
    issuer: https://edge.example.com
    subject: "{{ inventory_hostname }}"
    audience: orders-api
    dest: /var/lib/selfjwt/token
  no_log: true

- name: Mint a token with an ES256 key in the TPM 2.0 (libtpm2-pkcs11), the PIN from Ansible Vault
  selfjwt.kyma.jwt_token:
    pkcs11_uri: "pkcs11:token=edge-tpm;object=jwt-signing?module-path=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
    pkcs11_pin: "{{ vault_tpm_user_pin }}"
    issuer: https://edge.example.com
    subject: "{{ inventory_hostname }}"
  register: tpm_token
  no_log: true

- name: Show when the token expires (metadata only)
  ansible.builtin.debug:
    msg: "kid {{ article_token.kid }} expires at {{ article_token.expires_at_iso }}"
"""

RETURN = r"""
token:
  description:
    - The signed token (JWS compact serialization). It is a bearer secret; set C(no_log) to V(true) on the task.
    - With O(dest), the token that is in the file after the task (in check mode, the token that would be written).
  returned: success
  type: str
  sample: eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIuLi4ifQ.c2lnbmF0dXJl
header:
  description: The token header as it is inside the token.
  returned: success
  type: dict
  sample:
    alg: RS256
    kid: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
    jku: http://jwks.jwks.svc.cluster.local/.well-known/jwks.json
    typ: JWT
claims:
  description: The token claims as they are inside the token.
  returned: success
  type: dict
  sample:
    iss: https://edge.example.com
    sub: edge-01
    aud: orders-api
    iat: 1767225600
    nbf: 1767225600
    exp: 1767226200
    jti: 9hF0rJ3m8TqH4Zb2Xk1WcA
expires_at:
  description: When the token expires (its C(exp) claim), in seconds since the epoch.
  returned: success
  type: int
  sample: 1767226200
expires_at_iso:
  description: When the token expires, as ISO 8601 UTC text.
  returned: success
  type: str
  sample: "2026-01-01T00:10:00Z"
kid:
  description: The C(kid) header of the token.
  returned: success
  type: str
  sample: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
dest:
  description: The token file, as given in O(dest).
  returned: when O(dest) is set
  type: str
  sample: /var/lib/selfjwt/token
"""

from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _common, _token
from ansible_collections.selfjwt.kyma.plugins.module_utils._token_module import run


def argument_spec():
    token = _argspec.token_argument_spec()
    return dict(
        private_key_path=dict(type="path", no_log=False),
        private_key_content=dict(type="str", no_log=True),
        passphrase=dict(type="str", no_log=True),
        algorithm=token["algorithm"],
        kid=token["kid"],
        issuer=dict(type="str", required=True),
        subject=token["subject"],
        audience=token["audience"],
        expires_in=token["expires_in"],
        max_lifetime=token["max_lifetime"],
        not_before=dict(type="int", default=0),
        issued_at=dict(type="int"),
        claims=dict(type="dict"),
        headers=dict(type="dict"),
        jku=dict(type="str"),
        jti=dict(type="str"),
        typ=dict(type="str", default=_token.DEFAULT_TYP),
        dest=dict(type="path"),
        refresh_margin=dict(type="int"),
        **_argspec.pkcs11_argument_spec()
    )


def main():
    module = _common.SecretMaskingModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("private_key_path", "private_key_content", "pkcs11_uri"), ("pkcs11_uri", "passphrase"),
                            ("pkcs11_pin", "pkcs11_pin_file"), ("issued_at", "dest")],
        required_one_of=[("private_key_path", "private_key_content", "pkcs11_uri")],
        required_by={"refresh_margin": "dest", "pkcs11_pin": "pkcs11_uri", "pkcs11_pin_file": "pkcs11_uri"},
        supports_check_mode=True,
        add_file_common_args=True,
    )
    _common.run_module(module, run)


if __name__ == "__main__":
    main()
