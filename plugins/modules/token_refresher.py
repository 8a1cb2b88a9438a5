#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: token_refresher
short_description: Install the token refresher on an edge host and write its first token, in one run
description:
  - Installs the token refresher, the C(selfjwt-token) command that keeps a self-signed JWT in a token file fresh
    for the host's API clients, with its configuration, its scheduler and its first token, in one module run. The
    role M(selfjwt.kyma.edge_keys) runs it after M(selfjwt.kyma.jwt_keypair).
  - 'The refresher is the collection''s own signing code: the program and the C(_files), C(_token), C(_pkcs11) and
    JOSE module_utils (C(_jose), C(_keys), C(_algorithms), C(_jwk), C(_certificates), C(_jws)) that this module
    process carries, written unchanged below O(lib_dir). It needs only Python,
    C(cryptography) and C(PyJWT) on the host, not Ansible (and C(python-pkcs11) for a key in a PKCS#11 token).'
  - The signing key is a key file (O(key_path)) or a key in a PKCS#11 token (O(pkcs11_uri)), such as an HSM or
    a TPM 2.0, that signs every token inside the token.
  - Writes the configuration C(<lib_dir>/refresher.json) (claims and paths, never a secret; an encrypted key's
    passphrase is read from O(passphrase_file), a token's PIN from O(pkcs11_pin_file)), the command
    C(<bin_dir>/<command_name>), and for the scheduler
    a systemd service and timer C(<systemd_unit_dir>/<unit_name>.service) and C(.timer) or the cron file
    O(cron_file). Then it keeps the token file C(<token_dir>/<token_filename>) fresh as the command does, as the
    key's O(owner) when run as root.
  - The command holds no setting as code; it names the library directory and the configuration path only as
    Python string literals. Values that reach the command's first line, the units or the cron line (paths,
    names, accounts, the Python path, the interval) are checked against an allow-list (paths hold letters,
    digits, C(. _ - + @ , ~) and C(/), not C(:)); whitespace, newlines, C(%), C($), C(;), quotes, backslashes
    and other characters those formats treat specially are refused, naming the option to change.
  - Everything is checked before anything is written. Files are written atomically with their final modes.
    With O(pkcs11_uri), that includes that the refresher's O(python) imports C(python-pkcs11), that the PIN file
    is safe and belongs to the account the refresher runs as, and that the key signs a token.
  - This module does not talk to systemd. When RV(units_changed) is true, reload systemd and restart the timer,
    for example with M(ansible.builtin.systemd_service) (O(scheduler=systemd)).
author:
  - selfjwt.kyma maintainers (@selfjwt)
requirements:
  - cryptography >= 3.4
  - PyJWT >= 2.4.0
  - python-pkcs11 (only with O(pkcs11_uri), for this module's and the refresher's Python)
extends_documentation_fragment:
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
      - On a new host (no key or token directory yet), check mode reports that a first token would be written.
  diff_mode:
    support: full
    details:
      - The diff shows the configuration and the unit or cron files in full. Code files (the program, the
        module_utils and the command) are shown as one line with their SHA-256 before and after, never their
        content. Keys, passphrases, PINs and tokens are never shown.
  idempotent:
    support: full
    details:
      - The token file changes again once its token comes within the refresh margin of its expiry.
options:
  key_path:
    description:
      - Path of the signing key, as M(selfjwt.kyma.jwt_keypair) keeps it.
      - Exactly one of O(key_path) and O(pkcs11_uri) is required. With O(pkcs11_uri) the configuration holds the
        URI, and the refresher opens the token on each run as the key's O(owner).
    type: path
  passphrase_file:
    description:
      - File with the passphrase of an encrypted key (mode V(0600), owned by the key's owner), as
        M(selfjwt.kyma.jwt_keypair) writes it with O(selfjwt.kyma.jwt_keypair#module:store_passphrase=true).
      - The configuration holds only this path.
      - Not with O(pkcs11_uri).
    type: path
  pkcs11_pin:
    description:
      - Not supported by this module, and refused when set. The refresher runs unattended, so it reads the PIN
        from O(pkcs11_pin_file) on each run and never keeps it in its configuration or on its command line.
    type: str
  pkcs11_pin_file:
    description:
      - A file that holds the token's user PIN (one line), for the key in O(pkcs11_uri). The configuration holds
        only this path; the refresher reads the file on each run.
      - It must be a regular file (no symbolic link is followed) that belongs to the account the refresher runs as
        (O(owner), or the account that runs this module) and that only this account may read (mode V(0600) or
        V(0400)); otherwise nothing is installed.
      - A caller that may not read it gets the token from the token file, as a caller that may not read a key file
        does.
      - Leave it unset only for a token that needs no login, or with a C(pin-source) in the URI (which the same
        rules apply to).
    type: path
  issuer:
    description:
      - The C(iss) claim, an http(s) URL equal to the jwt issuer of the APIRule.
    type: str
    required: true
  not_before:
    description:
      - C(nbf) relative to C(iat) in seconds, V(0) or negative (down to V(-300)).
    type: int
    default: 0
  scopes:
    description:
      - Scope names, written space-separated into the C(scope) claim. Names must not contain spaces.
    type: list
    elements: str
    default: []
  claims:
    description:
      - Extra claims. Registered claims (C(iss), C(sub), C(aud), C(exp), C(nbf), C(iat), C(jti)) have their own
        options; C(scope) may be set here or by O(scopes), not both.
    type: dict
    default: {}
  jku:
    description:
      - The C(jku) header, an http(s) URL (the APIRule's C(jwksUri)); omitted when not set.
    type: str
  token_dir:
    description:
      - Directory of the token file, made with mode V(0700) (V(2750) with O(token_group)) and owned by O(owner).
      - It belongs to the key's owner, so nothing in it is trusted; a symbolic link there is refused.
    type: path
    default: /var/lib/selfjwt
  token_filename:
    description:
      - Name of the token file in O(token_dir).
    type: str
    default: token
  token_group:
    description:
      - Group that may read the token file (mode V(0640) instead of V(0600)).
    type: str
  refresh_margin:
    description:
      - The refresher replaces a token this many seconds before it expires.
      - Must be longer than the scheduler's period (O(interval), rounded up to whole minutes for cron) and
        shorter than O(expires_in).
      - Defaults to a third of O(expires_in).
    type: int
  owner:
    description:
      - The key's owner. Run as root, the refresher switches to this user; the token directory and file belong to
        it, the systemd service runs as it and the cron entry names it.
      - Unset, the account that runs this module.
    type: str
  group:
    description:
      - Group of the token directory when O(token_group) is not set.
    type: str
  lib_dir:
    description:
      - Library directory of the refresher (its code and configuration).
    type: path
    default: /usr/local/lib/selfjwt
  bin_dir:
    description:
      - Directory of the command.
    type: path
    default: /usr/local/bin
  command_name:
    description:
      - Name of the command.
    type: str
    default: selfjwt-token
  python:
    description:
      - Python that runs the command (its C(#!) line). It needs C(cryptography) and C(PyJWT), and with O(pkcs11_uri)
        C(python-pkcs11), which is checked before anything is written.
      - Defaults to the Python that runs this module.
    type: str
  scheduler:
    description:
      - What runs the refresher every O(interval) seconds.
      - V(auto) chooses V(systemd) on a host that runs systemd (C(/run/systemd/system) exists) and V(cron)
        otherwise; V(none) installs no scheduler.
    type: str
    choices: [auto, systemd, cron, none]
    default: auto
  interval:
    description:
      - Seconds between two runs of the refresher. Cron runs at most once a minute, so it rounds up to whole
        minutes.
    type: int
    default: 60
  unit_name:
    description:
      - Name of the systemd service and timer (without C(.service) or C(.timer)).
    type: str
    default: selfjwt-token
  systemd_unit_dir:
    description:
      - Directory of the systemd units.
    type: path
    default: /etc/systemd/system
  cron_file:
    description:
      - The cron file (in C(/etc/cron.d) format, with a user field).
      - Empty, no cron file is written; RV(cron) then tells what to put into the user's crontab (the role
        M(selfjwt.kyma.edge_keys) does that with M(ansible.builtin.cron)).
    type: path
    default: /etc/cron.d/selfjwt-token
  option_names:
    description:
      - What error messages call the options, for example the role variables that set them, as a dictionary of
        option names to names (the role M(selfjwt.kyma.edge_keys) maps O(issuer) to C(edge_keys_issuer)).
      - Options not named here are called by their own names.
    type: dict
    default: {}
notes:
  - The module needs the Python libraries C(cryptography) and C(PyJWT) on the managed host.
  - The installed files are owned by the account that runs the module (root, usually); only the token directory and
    file belong to O(owner).
seealso:
  - module: selfjwt.kyma.jwt_keypair
  - module: selfjwt.kyma.jwt_token
"""

EXAMPLES = r"""
---
- name: Install the token refresher with a systemd timer and write the first token
  selfjwt.kyma.token_refresher:
    key_path: /etc/selfjwt/signing.pem
    issuer: https://edge-jwks.kyma-system.svc.cluster.local
    jku: https://edge-jwks.kyma-system.svc.cluster.local/.well-known/jwks.json
    subject: "{{ inventory_hostname }}"
    audience: orders-api
    scopes: [orders.read]
    scheduler: systemd
  register: refresher

- name: Reload systemd and (re)start the timer when its units changed
  ansible.builtin.systemd_service:
    name: selfjwt-token.timer
    enabled: true
    state: restarted
    daemon_reload: true
  when: refresher.units_changed

- name: Install it with a key in a SoftHSM2 token; the PIN file belongs to the key's owner (mode 0600)
  selfjwt.kyma.token_refresher:
    pkcs11_uri: "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_pin_file: /etc/selfjwt/token-pin
    issuer: https://edge-jwks.kyma-system.svc.cluster.local
    subject: "{{ inventory_hostname }}"
    owner: edge-agent
    scheduler: systemd

- name: Install it for a service account, with a token file its group may read, and cron
  selfjwt.kyma.token_refresher:
    key_path: /etc/selfjwt/signing.pem
    issuer: https://edge-jwks.kyma-system.svc.cluster.local
    subject: "{{ inventory_hostname }}"
    owner: edge-agent
    token_group: api-clients
    scheduler: cron
    interval: 120
"""

RETURN = r"""
changed_paths:
  description: The files and directories that were (or in check mode would be) written or corrected.
  returned: always
  type: list
  elements: str
units_changed:
  description: Whether the systemd units or the cron file were (or would be) written; reload the scheduler then.
  returned: always
  type: bool
scheduler:
  description: The scheduler installed (V(auto) resolved).
  returned: always
  type: str
  sample: systemd
service_manager:
  description: V(systemd) when systemd runs the host, else V(other).
  returned: always
  type: str
token_file:
  description: Path of the token file.
  returned: always
  type: str
  sample: /var/lib/selfjwt/token
command:
  description: Path of the refresher command.
  returned: always
  type: str
  sample: /usr/local/bin/selfjwt-token
config_path:
  description: Path of the refresher configuration.
  returned: always
  type: str
  sample: /usr/local/lib/selfjwt/refresher.json
python:
  description: The Python in the command's C(#!) line.
  returned: always
  type: str
  sample: /usr/bin/python3
user:
  description: The account that ran the module (the refresher's user when O(owner) is not set).
  returned: always
  type: str
  sample: root
token_status:
  description:
    - Facts about the token in the token file after this run, as C(selfjwt-token --json) prints them. Never the
      token.
    - In check mode on a new host only C(changed), C(reason) and C(warning).
  returned: always
  type: dict
  contains:
    changed:
      description: Whether a new token was (or would be) written.
      type: bool
    reason:
      description: Why a new token was written.
      type: str
    kid:
      description: The C(kid) of the token.
      type: str
    expires_at:
      description: Expiry of the token (ISO 8601, UTC).
      type: str
    warning:
      description: A warning of the refresher, for example about a token it could only read.
      type: str
cron:
  description: The cron entry (V(minute), V(user), V(job)) with O(scheduler=cron); null otherwise.
  returned: always
  type: dict
  sample: {minute: "*", user: root, job: /usr/local/bin/selfjwt-token --quiet}
"""

from ansible_collections.selfjwt.kyma.plugins.module_utils import _argspec, _common, _refresher_install
from ansible_collections.selfjwt.kyma.plugins.module_utils._refresher_module import run


def argument_spec():
    token = _argspec.token_argument_spec()
    return dict(
        key_path=dict(type="path", no_log=False),
        kid=token["kid"],
        algorithm=token["algorithm"],
        passphrase_file=dict(type="path", no_log=False),
        issuer=dict(type="str", required=True),
        subject=token["subject"],
        audience=token["audience"],
        expires_in=token["expires_in"],
        max_lifetime=token["max_lifetime"],
        not_before=dict(type="int", default=0),
        scopes=dict(type="list", elements="str", default=[]),
        claims=dict(type="dict", default={}),
        jku=dict(type="str"),
        token_dir=dict(type="path", default="/var/lib/selfjwt"),
        token_filename=dict(type="str", default="token"),
        token_group=dict(type="str", no_log=False),
        refresh_margin=dict(type="int"),
        owner=dict(type="str"),
        group=dict(type="str"),
        lib_dir=dict(type="path", default="/usr/local/lib/selfjwt"),
        bin_dir=dict(type="path", default="/usr/local/bin"),
        command_name=dict(type="str", default="selfjwt-token"),
        python=dict(type="str"),
        scheduler=dict(type="str", choices=list(_refresher_install.SCHEDULERS), default="auto"),
        interval=dict(type="int", default=60),
        unit_name=dict(type="str", default="selfjwt-token"),
        systemd_unit_dir=dict(type="path", default="/etc/systemd/system"),
        cron_file=dict(type="path", default="/etc/cron.d/selfjwt-token"),
        option_names=dict(type="dict", default={}),
        **_argspec.pkcs11_argument_spec()
    )


def main():
    module = _common.SecretMaskingModule(argument_spec=argument_spec(), supports_check_mode=True)
    _common.run_module(module, run)


if __name__ == "__main__":
    main()
