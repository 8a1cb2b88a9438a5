# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""jwt_keypair private_key_content: adopting a given key (the site keys of edge_keys)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair
from helpers import run_module_main  # pylint: disable=import-error

PASSPHRASE = "a long machine-made passphrase 77d0"


def run_module(capsys, args, check_mode=False, diff=True):
    return run_module_main(jwt_keypair, args, capsys, check_mode=check_mode, diff=diff)[:2]


@pytest.fixture(scope="module")
def key():
    return _keys.generate_private_key("ec", curve="P-256")


@pytest.fixture(scope="module")
def pem(key):
    return _keys.private_key_pem(key).decode("ascii")


def _body_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def _assert_no_key_material(out, pem):
    assert "PRIVATE KEY" not in out
    for line in _body_lines(pem):
        assert line not in out
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out  # the invocation masks the option


def test_adopts_the_key_into_a_missing_file(tmp_path, capsys, key, pem):
    path = tmp_path / "keys" / "signing.pem"
    out, result = run_module(capsys, {"path": str(path), "private_key_content": pem, "parent_mode": "0700"})
    assert result["changed"] is True and "failed" not in result
    assert path.read_bytes() == pem.encode("ascii")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert result["jwk"] == _jwk.public_jwk(key)
    assert result["jwks"] == [result["jwk"]]
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"]["kid"] == result["kid"]
    # Atomic: only the key and the lock file are left in the directory.
    assert sorted(os.listdir(str(path.parent))) == [".signing.pem.lock", "signing.pem"]
    _assert_no_key_material(out, pem)


def test_check_mode_previews_the_adoption_into_a_directory_parent_mode_would_create(tmp_path, capsys, key, pem):
    path = tmp_path / "keys" / "signing.pem"
    out, result = run_module(capsys, {"path": str(path), "private_key_content": pem, "parent_mode": "0700"},
                             check_mode=True)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is True
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert result["diff"]["before"] == {"state": "absent"}
    assert not path.parent.exists()
    _assert_no_key_material(out, pem)


def test_a_second_run_changes_nothing(tmp_path, capsys, pem):
    args = {"path": str(tmp_path / "signing.pem"), "private_key_content": pem}
    run_module(capsys, args)
    before = os.stat(args["path"])
    out, again = run_module(capsys, args)
    assert again["changed"] is False
    assert os.stat(args["path"]).st_mtime_ns == before.st_mtime_ns
    _assert_no_key_material(out, pem)
    _out, checked = run_module(capsys, args, check_mode=True)
    assert checked["changed"] is False


def test_check_mode_writes_nothing_and_tells_the_kid(tmp_path, capsys, key, pem):
    path = tmp_path / "signing.pem"
    out, result = run_module(capsys, {"path": str(path), "private_key_content": pem}, check_mode=True)
    assert result["changed"] is True
    assert not path.exists() and os.listdir(str(tmp_path)) == []
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert result["diff"]["before"] == {"state": "absent"}
    _assert_no_key_material(out, pem)


def test_an_encrypted_key_is_written_as_given(tmp_path, capsys, key):
    encrypted = _keys.private_key_pem(key, PASSPHRASE).decode("ascii")
    path = tmp_path / "signing.pem"
    out, result = run_module(capsys, {"path": str(path), "private_key_content": encrypted, "passphrase": PASSPHRASE})
    assert result["changed"] is True
    # The same bytes: the hosts of a site keep byte-identical key files (edge_keys compares checksums).
    assert path.read_bytes() == encrypted.encode("ascii")
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert PASSPHRASE not in out
    _out, again = run_module(capsys, {"path": str(path), "private_key_content": encrypted, "passphrase": PASSPHRASE})
    assert again["changed"] is False


def test_the_same_key_in_another_format_is_kept(tmp_path, capsys, key, pem):
    path = tmp_path / "signing.pem"
    sec1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    path.write_bytes(sec1)
    path.chmod(0o600)
    _out, result = run_module(capsys, {"path": str(path), "private_key_content": pem})
    assert result["changed"] is False
    assert path.read_bytes() == sec1


def test_another_key_is_never_replaced(tmp_path, capsys, pem):
    path = tmp_path / "signing.pem"
    other = _keys.private_key_pem(_keys.generate_private_key("ec", curve="P-256"))
    path.write_bytes(other)
    path.chmod(0o600)
    out, result = run_module(capsys, {"path": str(path), "private_key_content": pem})
    assert result["failed"] is True
    assert "holds another key than private_key_content" in result["msg"]
    assert path.read_bytes() == other
    _assert_no_key_material(out, pem)
