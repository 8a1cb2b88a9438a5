# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A signing key in a PKCS#11 token (HSM, smart card, TPM 2.0) instead of a key file.

The argument spec that goes with it is _argspec.pkcs11_argument_spec(); RING (selfjwt.kyma.pkcs11.ring, the
state of a key ring of such a key) goes with _argspec.pkcs11_ring_argument_spec().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  pkcs11_uri:
    description:
      - The signing key as an RFC 7512 PKCS#11 URI, for a key that lives in a PKCS#11 token (a hardware
        security module, a smart card, or a TPM 2.0 through C(libtpm2-pkcs11)) and never leaves it.
      - The path part names the token (C(token=<label>) or C(serial=)) and the key (C(object=<label>) and/or
        C(id=<%XX bytes>)); C(type) may only be C(private).
      - The query part must give C(module-path), the absolute path of the token's PKCS#11 library, for
        example C(/usr/lib/softhsm/libsofthsm2.so) (SoftHSM2) or
        C(/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so) (TPM 2.0). It may give C(pin-source=file:/path).
      - A C(pin-value) in the URI is refused, since URIs end up in logs and configuration files.
      - Needs the Python package C(python-pkcs11) on the host that runs the module.
      - The public key, the JWK and its C(kid) (the RFC 7638 thumbprint) are the same as for a key file
        with the same key.
      - See the collection's C(docs/HARDWARE_KEYS.md) for the choice of token and for rotation.
    type: str
  pkcs11_pin:
    description:
      - The token's user PIN.
      - Prefer O(pkcs11_pin_file), which keeps the PIN out of playbooks and inventories.
      - Mutually exclusive with O(pkcs11_pin_file) and the URI's C(pin-source).
    type: str
  pkcs11_pin_file:
    description:
      - A file that holds the token's user PIN (one line).
      - It must be a regular file (no symbolic link is followed) that only its owner may read (mode C(0600)
        or C(0400)); otherwise the module fails without using it.
      - When neither this nor O(pkcs11_pin) nor the URI's C(pin-source) is set, the module logs in only if
        the token does not require a login.
    type: path
"""

    # The key ring of a signing key in a token (jwt_keyring): where its state lives.
    RING = r"""
options:
  state_path:
    description:
      - With O(pkcs11_uri), the path of the key ring state (JSON, mode V(0600)), for example
        C(/etc/selfjwt/jwt-signing.ring.json). A key in a token has no file beside which the ring could keep it.
      - Required with O(pkcs11_uri), and only used with it.
      - It is read like the state beside a key file - no symbolic link is followed, a state of another account
        than root, the running account and O(owner) is refused, and so is a directory that its group or others can
        write.
      - The state names the token (its serial) and the label of its key; a state of another key is refused, so
        give every key its own O(state_path).
    type: path
"""
