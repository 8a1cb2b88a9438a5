#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: jwt_keyring
short_description: Rotate a host's JWT signing key without a rejected call
description:
  - Manages the key ring of the signing key at O(path) (the key that M(selfjwt.kyma.jwt_keypair) created
    and that M(selfjwt.kyma.jwt_token) and the token refresher read), so that the key can be replaced while
    every token stays accepted.
  - istiod fetches an APIRule's C(jwksUri) only every ~20 minutes and does not fetch it again for an unknown
    C(kid). So a key is B(published before use) and B(retired after expiry). Every key goes through the states
    C(next) (staged and published, not signing yet), C(active) (signing), C(retiring) (no longer signing,
    still published) and C(retired) (out of the JWKS); a key may also be C(revoked).
  - A C(next) key is activated only when the JWKS that holds it was published at least O(propagation_window)
    ago. The module never guesses that time - the playbook records it with O(action=mark_published) after the
    publication succeeded. A C(retiring) key is retired O(token_max_lifetime) + O(clock_skew) +
    O(propagation_window) after it stopped signing.
  - Activation puts the next key at O(path) atomically, so the refresher and jwt_token switch without new
    configuration. The other keys are kept beside it as C(<path>.<kid>) (mode of the key file), the ring
    state in C(<path>.ring.json) (mode V(0600)) with the time every key was staged, published, activated,
    deactivated, retired, withdrawn from the JWKS and revoked (UTC, ISO 8601).
  - A run interrupted at any point (killed, power loss) and run again completes correctly - the key at O(path)
    is always published long enough, and no key leaves what is published while a token signed with it may
    still be presented.
  - Returns RV(jwks), the public JWKs to publish for the host (active, next and retiring keys); the
    C(selfjwt.kyma.edge_keys) role publishes them as C(edge_keys_public_jwks). M(selfjwt.kyma.jwt_keypair)
    returns the same list in its C(jwks) result when a ring exists.
  - The private keys are never returned, logged or shown in a diff.
  - With O(pkcs11_uri) instead of O(path), the signing key is a key pair in a PKCS#11 token (an HSM, a smart
    card, a TPM 2.0), named by the label in the URI (C(object=<label>)), the label that M(selfjwt.kyma.jwt_token)
    and the token refresher sign with. The ring's keys are key pairs in that token, each with a CKA_ID of its own
    that the ring state records - the active key carries C(<label>), the next key C(<label>.next) (generated in the
    token, sensitive and never extractable), a retiring key and a kept retired key C(<label>.<kid>).
  - There is no file to swap, so activation moves the label - first the next key pair gets C(<label>), then the
    old one C(<label>.<kid>), then the ring state records the activation. C(<label>) always names a published
    key; a run interrupted in between is completed by the next run (for that moment the label names two keys, and
    the signers of this collection refuse to choose rather than pick one). Retirement destroys the old key pair,
    unless O(keep_retired_keys) keeps it. The ring state lives at O(state_path).
version_added: 0.1.0
author:
  - selfjwt.kyma maintainers (@selfjwt)
requirements:
  - cryptography >= 3.4 on the managed host
  - PyJWT >= 2.4.0 on the managed host
  - python-pkcs11 on the managed host, with O(pkcs11_uri)
extends_documentation_fragment:
  - selfjwt.kyma.attributes
  - selfjwt.kyma.attributes.files
  - selfjwt.kyma.attributes.platform
  - selfjwt.kyma.attributes.action_group
  - selfjwt.kyma.new_key
  - selfjwt.kyma.pkcs11
  - selfjwt.kyma.pkcs11.ring
attributes:
  check_mode:
    support: full
    details:
      - In check mode no key is generated, so the kid of a key that would be staged is V(null) in RV(performed).
      - With O(pkcs11_uri), check mode opens a read-only session and changes no object in the token.
  diff_mode:
    support: full
    details:
      - Kids, states and times of the ring's keys; never key material.
  idempotent:
    support: full
    details:
      - A step that is due only later (activation, retirement, a routine rotation by O(max_key_age)) is done by
        the first run after it became due.
options:
  path:
    description:
      - Path of the signing key (PEM), the file that M(selfjwt.kyma.jwt_token) and the token refresher read.
      - The key must exist. Without a ring state beside it, the key becomes the ring's active key.
      - Required unless O(pkcs11_uri) names the signing key instead; mutually exclusive with it.
    type: path
  action:
    description:
      - V(auto) does every step that is due now - retire C(retiring) keys whose last token can no longer be
        valid, activate a C(next) key published at least O(propagation_window) ago, and stage a successor when
        the active key reaches O(max_key_age) (minus O(propagation_window)). For scheduled runs.
      - V(rotate) does what V(auto) does and stages a successor unless a rotation is in progress (a C(next)
        or C(retiring) key, or a retired key still in the published JWKS), so running it again after an
        interruption continues the same rotation instead of starting another one.
      - V(stage) creates the C(next) key unless there is one.
      - V(mark_published) records that a JWKS holding O(published_kids) was published just now (run it after
        the publication succeeded). Keys not in it are noted too - a C(next) key taken out again starts its
        propagation window anew, a retired or revoked key is recorded as withdrawn.
      - V(activate) activates the C(next) key and fails, changing nothing, when it has not been published for
        O(propagation_window) yet.
      - V(retire) retires the C(retiring) keys that are due.
      - V(revoke) takes every key of the ring out of RV(jwks) at once (a compromised host). With
        O(remove_private_keys=true) the private keys, including the one at O(path), are deleted too (with
        O(pkcs11_uri), the ring's key pairs are destroyed in the token, including the one labelled C(<label>)).
      - V(status) changes nothing and reports the ring (RV(would_change) tells whether another action would
        have to complete an interrupted run first).
    type: str
    choices: [status, auto, rotate, stage, mark_published, activate, retire, revoke]
    default: auto
  published_kids:
    description:
      - With O(action=mark_published), the kids of the JWKS that was just published (for example
        C(kyma_publish_jwks.keys | map(attribute='kid'))).
      - Only with O(action=mark_published).
    type: list
    elements: str
  propagation_window:
    description:
      - Seconds after a publication until every gateway uses the new JWKS - istiod refreshes every 20 minutes,
        plus the push to the proxies and, for GitOps, the time until the rendered JWKS is deployed.
      - A C(next) key signs only this long after it was published; a retired key stays this much longer.
    type: int
    default: 1800
  token_max_lifetime:
    description:
      - The longest lifetime of a token signed with the ring's keys, in seconds (the C(max_lifetime) of the
        token refresher and of M(selfjwt.kyma.jwt_token)).
    type: int
    default: 3600
  clock_skew:
    description:
      - Seconds a gateway accepts a token after its C(exp) (Envoy accepts 60).
    type: int
    default: 60
  max_key_age:
    description:
      - With O(action=auto) or O(action=rotate), a successor is staged O(propagation_window) before the active
        key has been active for this many seconds, so that routine rotation needs only a scheduled run.
      - V(0) (default) turns routine rotation off.
      - Must be longer than O(propagation_window).
    type: int
    default: 0
  passphrase:
    description:
      - Passphrase of the key at O(path); new keys are encrypted with it too.
      - Not with O(pkcs11_uri) (the token's PIN protects its keys).
    type: str
  keep_retired_keys:
    description:
      - Keep the private key of a retired key as C(<path>.<kid>) (a backup) instead of deleting it. It is never
        published again.
      - With O(pkcs11_uri), keep the retired key pair in the token, labelled C(<label>.<kid>), instead of
        destroying it.
    type: bool
    default: false
  owner:
    description:
      - The account that owns the key files (user name or uid), such as the C(edge_keys_owner) of the
        P(selfjwt.kyma.edge_keys#role) role. New key files and the state are given to it.
      - The key at O(path), the ring state, the kid-named key files and their directory must belong to root,
        the account running the module or this account; a file of any other account, a symbolic link, a
        directory that its group or others can write, and a state whose kids are not RFC 7638 thumbprints
        are refused before anything is changed.
      - Unset, new files keep the owner of the key at O(path), which must then be root or the running account.
      - With O(pkcs11_uri), the same holds for the ring state at O(state_path), its directory and the PIN file.
    type: str
  remove_private_keys:
    description:
      - With O(action=revoke), delete the private keys of the ring, including the key at O(path). The host
        cannot sign until it gets a new key (run C(selfjwt.kyma.edge_keys) again, which makes one and
        publishes it).
    type: bool
    default: false
notes:
  - The ring names every key by its RFC 7638 thumbprint; the C(kid) option of M(selfjwt.kyma.jwt_keypair) and
    M(selfjwt.kyma.jwt_token) must not be set for a key with a ring.
  - Runs against the same O(path) are serialized with the lock file that M(selfjwt.kyma.jwt_keypair) uses.
  - Files of the ring are removed by name relative to the key directory, never through a symbolic link and
    never outside that directory.
  - Only keys generated by the ring get no certificate; a certificate that C(jwt_keypair) keeps at its
    C(certificate_path) follows the key at O(path) when C(jwt_keypair) runs again.
  - With O(pkcs11_uri), the URI must name the key by its label only (no C(id)), and the token must let the ring
    change the label (CKA_LABEL) of key objects (C_SetAttributeValue). SoftHSM2 and C(libtpm2-pkcs11) (TPM 2.0)
    do, and rotations are tested on both; a token that refuses fails the activation with the token's error before
    anything changed.
  - With O(pkcs11_uri), the ring owns the labels C(<label>.next) and C(<label>.<kid>) in the token - a key pair
    labelled C(<label>.next) that the state does not know is taken for the next key of a stage that was cut short.
    Keep other keys in the token under other labels.
  - The playbooks C(selfjwt.kyma.rotate) and C(selfjwt.kyma.revoke) drive this module across a fleet; see
    C(docs/ROTATION.md) in the collection.
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.jwks_publish
  - name: Istio JWT refresh interval (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL)
    description: Why a new key must be published long before it signs.
    link: https://istio.io/latest/docs/reference/commands/pilot-discovery/
"""

EXAMPLES = r"""
---
- name: Do the next due step of a rotation; rotate routinely every 90 days
  selfjwt.kyma.jwt_keyring:
    path: /etc/selfjwt/signing.pem
    max_key_age: 7776000
  register: ring

- name: Start a rotation now (or continue the one in progress)
  selfjwt.kyma.jwt_keyring:
    path: /etc/selfjwt/signing.pem
    action: rotate

- name: After the JWKS was published, record it
  selfjwt.kyma.jwt_keyring:
    path: /etc/selfjwt/signing.pem
    action: mark_published
    published_kids: "{{ kyma_publish_jwks['keys'] | map(attribute='kid') | list }}"

- name: Take all keys of a compromised host out of its published keys, and delete them
  selfjwt.kyma.jwt_keyring:
    path: /etc/selfjwt/signing.pem
    action: revoke
    remove_private_keys: true

- name: The same steps for a signing key in a PKCS#11 token (here SoftHSM2); the state needs a file of its own
  selfjwt.kyma.jwt_keyring:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_pin_file: /etc/selfjwt/token.pin
    state_path: /etc/selfjwt/jwt-signing.ring.json
    max_key_age: 7776000
  register: ring

- name: Revoke the keys in the token and destroy them
  selfjwt.kyma.jwt_keyring:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_pin_file: /etc/selfjwt/token.pin
    state_path: /etc/selfjwt/jwt-signing.ring.json
    action: revoke
    remove_private_keys: true
"""

RETURN = r"""
---
jwks:
  description: The public JWKs to publish for this host - the active key first, then the next and the retiring keys.
  returned: success
  type: list
  elements: dict
  sample:
    - {kty: EC, kid: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0, use: sig, alg: ES256, crv: P-256, x: f83O..., y: x_FE...}
kids:
  description: The kids of RV(jwks).
  returned: success
  type: list
  elements: str
  sample: [2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0]
signing_kid:
  description: Kid of the key at O(path) (or labelled with the label of O(pkcs11_uri)), the key that signs now; V(null) when it was removed.
  returned: success
  type: str
  sample: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0
performed:
  description:
    - What the run did (or would do in check mode), in order. C(step) is one of C(adopt), C(stage),
      C(published), C(unpublished), C(withdrawn), C(activate), C(retire), C(revoke), C(remove_key), C(drop);
      C(recovered=true) marks a step that completes an interrupted run.
  returned: success
  type: list
  elements: dict
  sample: [{step: activate, kid: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs, previous: 2mM2HyZDiNv1o7oBkRR_sWzYvL1RF7HZPu4B2uH0kU0}]
keys:
  description:
    - The ring's keys with their state and the UTC times of their steps (V(null) when not reached).
    - With O(pkcs11_uri), each also has C(object_id), the CKA_ID (hex) of its key pair in the token.
  returned: success
  type: list
  elements: dict
  sample:
    - kid: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
      state: active
      alg: ES256
      staged_at: "2026-01-31T12:00:00Z"
      published_at: "2026-01-31T12:00:05Z"
      activated_at: "2026-01-31T12:40:00Z"
      deactivated_at: null
      retired_at: null
      withdrawn_at: null
      revoked_at: null
publish_needed:
  description: True when the published JWKS may differ from RV(jwks) (a key not recorded as published yet, or a retired key not recorded as withdrawn).
  returned: success
  type: bool
  sample: false
in_progress:
  description: True while a rotation is not finished.
  returned: success
  type: bool
  sample: true
next_step:
  description: The next step of the ring (C(activate), C(retire) or C(stage)), or V(null).
  returned: success
  type: str
  sample: activate
next_step_at:
  description: When RV(next_step) is due (UTC); V(null) when it waits for a publication, or when there is no next step.
  returned: success
  type: str
  sample: "2026-01-31T12:30:05Z"
next_step_in:
  description: Seconds until RV(next_step) is due (0 when it is due now); V(null) like RV(next_step_at).
  returned: success
  type: int
  sample: 1795
would_change:
  description: With O(action=status), whether the ring must complete an interrupted run (any other action does that first).
  returned: when O(action=status)
  type: bool
  sample: false
state_file:
  description: Path of the ring state (O(state_path) with O(pkcs11_uri)).
  returned: success
  type: str
  sample: /etc/selfjwt/signing.pem.ring.json
"""

from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import SecretMaskingModule, run_module
from ansible_collections.selfjwt.kyma.plugins.module_utils._keyring_module import run


def argument_spec():
    return dict(
        path=dict(type="path"),
        action=dict(type="str", default="auto", choices=list(_keyring.ACTIONS)),
        published_kids=dict(type="list", elements="str"),
        propagation_window=dict(type="int", default=_keyring.DEFAULT_PROPAGATION_WINDOW),
        token_max_lifetime=dict(type="int", default=_keyring.DEFAULT_TOKEN_MAX_LIFETIME, no_log=False),
        clock_skew=dict(type="int", default=_keyring.DEFAULT_CLOCK_SKEW),
        max_key_age=dict(type="int", default=0, no_log=False),
        **_argspec.new_key_argument_spec(),
        passphrase=dict(type="str", no_log=True),
        keep_retired_keys=dict(type="bool", default=False),
        remove_private_keys=dict(type="bool", default=False),
        owner=dict(type="str"),
        **_argspec.pkcs11_argument_spec(),
        **_argspec.pkcs11_ring_argument_spec()
    )


def main():
    module = SecretMaskingModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("action", "mark_published", ("published_kids",))],
        mutually_exclusive=[("path", "pkcs11_uri"), ("passphrase", "pkcs11_uri"), ("pkcs11_pin", "pkcs11_pin_file")],
        required_by={"pkcs11_uri": "state_path", "state_path": "pkcs11_uri", "pkcs11_pin": "pkcs11_uri",
                     "pkcs11_pin_file": "pkcs11_uri"},
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
