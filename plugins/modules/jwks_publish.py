#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: jwks_publish
short_description: Assemble a JWKS from public keys and publish it
version_added: 0.1.0
description:
  - Builds a JSON Web Key Set (RFC 7517) from public keys, for example the public JWKs that
    M(selfjwt.kyma.jwt_keypair) returns as RV(selfjwt.kyma.jwt_keypair#module:jwk) on every edge host, and
    writes it atomically to O(dest), the file a JWKS server serves at the APIRule's C(jwksUri).
  - Usually runs once on the controller (C(run_once) or C(delegate_to=localhost)).
  - Every key is validated. Private or secret members (C(d), C(p), C(q), C(dp), C(dq), C(qi), C(oth), C(k)),
    unknown C(kty), malformed or weak keys, the same kid for two different keys, and the same key under
    two kids are refused with a message that names the key (never its private values). Private values in
    O(keys) and O(current), in any form they are given (also a dict or text where a list is expected), are
    masked as soon as the module reads its arguments, before Ansible logs them (syslog or journal) or
    returns them as C(invocation) (shown with C(-vvv)).
  - The output is deterministic (keys sorted by kid, members in a fixed order, two-space indentation,
    no timestamps), so the same keys in any order give a byte-identical file and GitOps diffs stay minimal.
    The task reports C(changed) only when the content (or a file attribute) changes.
  - Optionally writes a minimal OpenID Connect discovery document (O(issuer), O(jwks_uri), O(discovery_dest)).
  - Without O(dest) the module only assembles the JWKS and returns it (RV(jwks), RV(document)), for example
    to put it into a ConfigMap; it then never reports C(changed).
author:
  - selfjwt.kyma maintainers (@selfjwt)
requirements:
  - cryptography >= 3.4
  - PyJWT >= 2.4.0
extends_documentation_fragment:
  - ansible.builtin.files
  - selfjwt.kyma.attributes
  - selfjwt.kyma.attributes.action_group
attributes:
  check_mode:
    description: Can run in check mode and return the changed status and RV(added)/RV(removed) without writing anything.
    support: full
  diff_mode:
    description:
      - Returns the kids and the JSON text before and after (the JWKS is public data).
      - A file that held anything but public keys is not shown (see O(dest) and O(discovery_dest)).
    support: full
  idempotent:
    support: full
options:
  keys:
    description:
      - The public keys to publish.
      - A list. Each element is a public JWK (a dict such as RV(selfjwt.kyma.jwt_keypair#module:jwk), or its
        JSON text), a PEM public key, a PEM certificate (the JWK then carries C(x5c), C(x5t) and C(x5t#S256)),
        or a whole JWKS (a dict or JSON text with a C(keys) list) whose keys are all taken.
      - One such element alone (a dict, or a JSON or PEM text) is taken as a list of one, and the JSON text of
        a list as that list. A text is never split at commas.
      - A JWK without C(kid) gets its RFC 7638 SHA-256 thumbprint as kid, as do PEM keys and certificates;
        this is the kid M(selfjwt.kyma.jwt_keypair) and M(selfjwt.kyma.jwt_token) use by default.
      - The same key given twice with the same kid is published once. The same kid for two different keys
        is refused, and so is the same kid for the same key with different members (for example C(alg)).
      - Without O(merge), the JWKS holds exactly these keys (minus O(revoke)); keys in O(dest) that are not
        listed here are removed and reported in RV(removed).
    type: raw
    default: []
  dest:
    description:
      - Path of the JWKS JSON file to write. Its directory must exist.
      - Written atomically (a temporary file in the same directory, renamed over O(dest)), with mode V(0644)
        unless O(mode) says otherwise, since a JWKS is public.
      - An existing file that is not a JWKS (a JSON object with a C(keys) list) is refused and left unchanged.
      - An existing JWKS that holds anything but public JWK members (private members such as C(d), other
        members, a PEM private key) is never shown in the diff; it is replaced by the public keys (a warning
        names what it held, never the values), and with O(merge=true) a JWKS with private members is refused.
      - When omitted, nothing is written and the task never reports C(changed).
    type: path
  current:
    description:
      - The JWKS published so far when it is not a file on this host, for example the C(jwks.json) value of a
        ConfigMap read with M(kubernetes.core.k8s_info), as a dict or JSON text. An empty string means that
        nothing is published yet.
      - Used like the content of O(dest) for O(merge), RV(added), RV(removed) and RV(updated). Nothing is written.
      - O(merge=true) without O(dest) needs this option.
    type: raw
  revoke:
    description:
      - Kids to drop from the JWKS, for example the keys of a compromised host.
      - Revoke wins over O(keys) (a kid in both is not published; a warning says so) and over keys kept by O(merge).
      - A kid that is nowhere is fine and listed in RV(revoke_not_found), so a standing list of revoked kids
        can be kept in the inventory.
    type: list
    elements: str
    default: []
  merge:
    description:
      - V(false) (default) makes O(keys) the complete list, so that keys that are no longer listed leave the
        JWKS on their own.
      - V(true) keeps the keys already in O(dest) (or O(current)) that are not in O(revoke), and adds O(keys), so
        hosts can publish their keys one by one. Keys then leave the JWKS only through O(revoke).
      - With V(true), a key in O(keys) replaces the existing key of the same kid only when it is the same key (for
        example with a renewed certificate); a kid that names another key in O(dest) is refused, since
        validators cache keys by kid.
      - With V(true) and O(dest), runs against the same O(dest) are serialized with a lock file
        C(.<name>.lock) beside it.
    type: bool
    default: false
  allow_empty:
    description:
      - A JWKS without keys makes the gateway reject every token (HTTP 401), so an empty result is refused
        unless this is V(true), for example to cut off every host on purpose.
    type: bool
    default: false
  max_keys:
    description:
      - Budget of the JWKS in keys. A JWKS with more keys is refused before anything is written, with a message that
        names the key count, the key types and the fixes (smaller key type, no x5c, issuer shards, site keys).
      - V(0) (the default) means no limit on the number of keys, because key count limits differ between validators (AWS
        IAM OIDC federation, for example, uses at most 100 keys of a JWKS), so set it for the validator that reads
        this JWKS.
      - The check counts what is published. During a rotation a host publishes two keys, so the budget must have
        room for both generations (see O(budget_warn_percent)).
    type: int
    default: 0
  max_bytes:
    description:
      - Budget of the JWKS in bytes (the size of RV(document)). A larger JWKS is refused before anything is written,
        like O(max_keys). V(0) means no limit.
      - The default of 1 MiB is the most Kubernetes keeps in one ConfigMap, from which a JWKS for Kyma is served.
        Istio's istiod inlines the whole JWKS into the configuration of every proxy that enforces the APIRule,
        on every push, so a JWKS far smaller than that is better. Validators may accept less (nimbus-jose-jwt, for
        example, reads at most 51,200 bytes by default).
    type: int
    default: 1048576
  budget_warn_percent:
    description:
      - Warn when the JWKS uses more than this percentage of O(max_keys) or O(max_bytes). V(50) warns when a rotation
        of every key (two generations published) would no longer fit. V(0) never warns.
    type: int
    default: 50
  issuer:
    description:
      - The issuer (the tokens' C(iss) and the APIRule's C(issuer)) for an OpenID Connect discovery
        document, as an http(s) URL without query or fragment.
      - Requires O(jwks_uri). The document is returned as RV(discovery) and written to O(discovery_dest) if set.
    type: str
  jwks_uri:
    description:
      - The URL that serves the JWKS (the APIRule's C(jwksUri)), for the discovery document. Requires O(issuer).
    type: str
  discovery_dest:
    description:
      - Path of the discovery document to write (usually C(.well-known/openid-configuration) below the
        directory the JWKS server serves). Requires O(issuer) and O(jwks_uri).
      - Written atomically and deterministically like O(dest), with the same file attributes.
      - An existing file must be empty or a discovery document (a JSON object with C(issuer) and C(jwks_uri)
        texts and nothing private, so no private JWK members, no C(keys) list and no PEM private key). Anything else
        may be another file at a wrong path, so it is refused, left unchanged and never shown in the diff.
    type: path
notes:
  - Istio's istiod fetches the C(jwksUri) only about every 20 minutes. Publish a new key at least that long
    before any token is signed with it, and keep an old key published until its last token has expired.
  - The file attribute options (O(mode), O(owner), O(group), ...) apply to O(dest) and O(discovery_dest).
    When O(owner) or O(group) is not given and the module runs as root, a replaced file keeps its owner and group.
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.jwt_token
  - name: RFC 7517 JSON Web Key (JWK)
    description: The JWK and JWK Set formats.
    link: https://www.rfc-editor.org/rfc/rfc7517
"""

EXAMPLES = r"""
- name: Create or read the signing key on every edge host
  selfjwt.kyma.jwt_keypair:
    path: /etc/edge-jwt/signing.key
  register: edge_key

- name: Publish the public keys of all edge hosts
  selfjwt.kyma.jwks_publish:
    keys: "{{ ansible_play_hosts | map('extract', hostvars, ['edge_key', 'jwk']) | list }}"
    dest: /srv/jwks/.well-known/jwks.json
    issuer: http://edge-jwks.selfjwt-system.svc.cluster.local
    jwks_uri: http://edge-jwks.selfjwt-system.svc.cluster.local/.well-known/jwks.json
    discovery_dest: /srv/jwks/.well-known/openid-configuration
  run_once: true
  delegate_to: localhost

- name: Cut off a compromised host at once, keep everybody else's keys
  selfjwt.kyma.jwks_publish:
    dest: /srv/jwks/.well-known/jwks.json
    merge: true
    revoke:
      - "{{ hostvars['edge-17'].edge_key.kid }}"
  run_once: true
  delegate_to: localhost

- name: Publish PEM public keys and certificates
  selfjwt.kyma.jwks_publish:
    keys:
      - "{{ lookup('ansible.builtin.file', 'keys/site-a.pub.pem') }}"
      - "{{ lookup('ansible.builtin.file', 'keys/site-b.crt') }}"
    dest: /srv/jwks/.well-known/jwks.json
  delegate_to: localhost
  run_once: true

- name: Publish for a validator that reads at most 100 keys and 50 KiB
  selfjwt.kyma.jwks_publish:
    keys: "{{ ansible_play_hosts | map('extract', hostvars, ['edge_key', 'jwk']) | list }}"
    dest: /srv/jwks/.well-known/jwks.json
    max_keys: 100
    max_bytes: 51200
  run_once: true
  delegate_to: localhost

- name: Only assemble the JWKS, to be put into a ConfigMap
  selfjwt.kyma.jwks_publish:
    keys: "{{ ansible_play_hosts | map('extract', hostvars, ['edge_key', 'jwk']) | list }}"
  register: jwks
  run_once: true
  delegate_to: localhost

- name: Put it into a ConfigMap
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: edge-jwks
        namespace: default
      data:
        jwks.json: "{{ jwks.document }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
jwks:
  description: The published JWKS, keys sorted by kid.
  returned: success
  type: dict
  sample:
    keys:
      - kty: EC
        kid: 2Qv6yDXdr4pbPAPgxQwYg3k2XjbqZhH1gMm-X8rGmJc
        use: sig
        alg: ES256
        crv: P-256
        x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU
        y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0
document:
  description:
    - The exact JSON text of the JWKS (the content of O(dest)), for publishing it elsewhere byte for byte.
  returned: success
  type: str
  sample: "{\n  \"keys\": []\n}\n"
kids:
  description: The kids in the published JWKS, sorted.
  returned: success
  type: list
  elements: str
  sample: [2Qv6yDXdr4pbPAPgxQwYg3k2XjbqZhH1gMm-X8rGmJc]
added:
  description:
    - Kids that are published now and were not in O(dest) (or O(current)) before. Without either, all kids.
  returned: success
  type: list
  elements: str
  sample: [2Qv6yDXdr4pbPAPgxQwYg3k2XjbqZhH1gMm-X8rGmJc]
removed:
  description: Kids that were in O(dest) (or O(current)) and are not published any more.
  returned: success
  type: list
  elements: str
  sample: [NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs]
updated:
  description: Kids that stay published with changed members (for example a renewed certificate in C(x5c)).
  returned: success
  type: list
  elements: str
  sample: []
revoked:
  description: Kids from O(revoke) that were found (in O(keys), O(dest) or O(current)) and are not published.
  returned: success
  type: list
  elements: str
  sample: [NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs]
revoke_not_found:
  description: Kids from O(revoke) that were found nowhere (nothing to remove).
  returned: success
  type: list
  elements: str
  sample: []
size:
  description: Size of RV(document) in bytes (what O(max_bytes) is compared with).
  returned: success
  type: int
  sample: 235
dest:
  description: The value of O(dest).
  returned: success
  type: str
  sample: /srv/jwks/.well-known/jwks.json
discovery:
  description: The OpenID Connect discovery document, or V(null) when O(issuer) is not set.
  returned: success
  type: dict
  sample:
    issuer: http://edge-jwks.selfjwt-system.svc.cluster.local
    jwks_uri: http://edge-jwks.selfjwt-system.svc.cluster.local/.well-known/jwks.json
    id_token_signing_alg_values_supported: [ES256]
    response_types_supported: [id_token]
    subject_types_supported: [public]
discovery_document:
  description:
    - The exact JSON text of the discovery document (the content of O(discovery_dest)), or V(null) when O(issuer)
      is not set.
  returned: success
  type: str
  sample: "{\n  \"id_token_signing_alg_values_supported\": [\n    \"ES256\"\n  ],\n  ...\n}\n"
discovery_dest:
  description: The value of O(discovery_dest).
  returned: success
  type: str
  sample: /srv/jwks/.well-known/openid-configuration
"""

from ansible_collections.selfjwt.kyma.plugins.module_utils._common import SecretMaskingModule, run_module
from ansible_collections.selfjwt.kyma.plugins.module_utils._jwks_module import run


def argument_spec():
    return dict(
        # raw: a text is never split at commas (see _jwks.key_list); no_log=False: the keys are
        # public, and private material given by mistake is masked by SecretMaskingModule.
        keys=dict(type="raw", default=[], no_log=False),
        dest=dict(type="path"),
        current=dict(type="raw"),
        revoke=dict(type="list", elements="str", default=[]),
        merge=dict(type="bool", default=False),
        allow_empty=dict(type="bool", default=False),
        max_keys=dict(type="int", default=0, no_log=False),
        max_bytes=dict(type="int", default=1048576),
        budget_warn_percent=dict(type="int", default=50),
        issuer=dict(type="str"),
        jwks_uri=dict(type="str"),
        discovery_dest=dict(type="path"),
    )


def main():
    module = SecretMaskingModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("dest", "current")],
        required_together=[("issuer", "jwks_uri")],
        required_by={"discovery_dest": ("issuer", "jwks_uri")},
        add_file_common_args=True,
        supports_check_mode=True,
        # A private JWK or PEM key in these options is masked before Ansible logs the arguments.
        secret_options=("keys", "current"),
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
