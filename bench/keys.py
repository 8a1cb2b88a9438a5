# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark key fixtures, generated once and cached under .cache/bench/keys (mode 0600)."""

from __future__ import annotations

import os

import harness

KEY_DIR = os.path.join(harness.CACHE_DIR, "keys")

#: name -> (key type, size, curve) as _keys.generate_private_key takes them
KEY_SPECS = {
    "rsa2048": ("rsa", 2048, None),
    "rsa4096": ("rsa", 4096, None),
    "p256": ("ec", None, "P-256"),
    "p384": ("ec", None, "P-384"),
    "ed25519": ("ed25519", None, None),
}


def key_path(name):
    return os.path.join(KEY_DIR, "%s.pem" % name)


def ensure_key(name):
    """Path of the cached PEM (PKCS#8, unencrypted) private key ``name``; generated on first use."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _keys

    path = key_path(name)
    if not os.path.exists(path):
        os.makedirs(KEY_DIR, mode=0o700, exist_ok=True)
        key_type, size, curve = KEY_SPECS[name]
        key = _keys.generate_private_key(key_type, size=size or 4096, curve=curve or "P-256")
        _files.write_atomic(path, _keys.private_key_pem(key), mode=0o600)
    return path


def load(name):
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _keys

    with open(ensure_key(name), "rb") as handle:
        return _keys.load_private_key(handle.read())
