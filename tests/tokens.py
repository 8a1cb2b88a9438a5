# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real PKCS#11 tokens for the tests (not a test module): SoftHSM2 in a temporary directory.

A test creates a token with SoftHSMToken(tmp_path), sets its ``env`` (SOFTHSM2_CONF) in the
process that loads the library, and names keys with ``uri(label)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
from urllib.parse import quote

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")


class TokenUnavailable(Exception):
    """A token could not be set up; the message names the step, the command and its output."""


def _first_existing(paths, what):
    for path in paths:
        if os.path.exists(path):
            return path
    raise TokenUnavailable("%s not found in %s: run scripts/system-packages.sh" % (what, ", ".join(paths)))


class SoftHSMToken(object):
    """A freshly initialised SoftHSM2 token whose store lives in ``directory``."""

    def __init__(self, directory, label="edge", pin="1234-user", so_pin="5678-so"):
        self.directory = str(directory)
        self.label, self.pin, self.so_pin = label, pin, so_pin
        self.module_path = _first_existing(SOFTHSM_MODULES, "the SoftHSM2 PKCS#11 library")
        tokens = os.path.join(self.directory, "softhsm-tokens")
        os.makedirs(tokens, exist_ok=True)
        self.conf = os.path.join(self.directory, "softhsm2.conf")
        with open(self.conf, "w") as handle:
            handle.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens)
        self.env = {"SOFTHSM2_CONF": self.conf}
        self.init_token(label)

    def init_token(self, label):
        """Initialise one more token, labelled ``label``, in the same store (same PINs)."""
        command = ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", self.pin,
                   "--so-pin", self.so_pin]
        try:
            done = subprocess.run(command, env=dict(os.environ, **self.env), capture_output=True, text=True, check=False)
        except OSError as exc:
            raise TokenUnavailable("softhsm2-util cannot run (%s): run scripts/system-packages.sh" % exc)
        if done.returncode:
            raise TokenUnavailable("%s failed: %s" % (" ".join(command[:5]), done.stderr or done.stdout))

    def pin_file(self, path, mode=0o600):
        with open(os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
            handle.write(self.pin + "\n")
        os.chmod(str(path), mode)
        return str(path)

    def uri(self, label, key_id=None, pin_source=None, token=None):
        path = "pkcs11:token=%s;object=%s" % (quote(token or self.label, safe=""), quote(label, safe=""))
        if key_id is not None:
            path += ";id=" + "".join("%%%02x" % b for b in bytearray(key_id))
        query = "module-path=" + self.module_path
        if pin_source:
            query += "&pin-source=file:" + pin_source
        return path + ";type=private?" + query


def use_token(monkeypatch, token):
    """Point this process's PKCS#11 libraries at ``token``: its environment, and a fresh C_Initialize.

    SoftHSM2 reads SOFTHSM2_CONF when the library is initialised, and _pkcs11 keeps a library
    loaded for the life of the process (a module run is one process). An in-process test that
    makes a new token must initialise the already loaded libraries again.
    """
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11  # pylint: disable=import-outside-toplevel

    for name, value in token.env.items():
        monkeypatch.setenv(name, value)
    for library in _pkcs11._LIBRARIES.values():  # pylint: disable=protected-access
        library.reinitialize()
    return token
