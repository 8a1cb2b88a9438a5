# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Faults in-process: a full disk, a read-only destination, stale temporary files, races.

What must hold in each case: the old file stays intact, nothing partial ever carries the
target's name, the module fails with a message that says what happened (or succeeds when it
has nothing to write), and two runs against the same key or token path agree on one key or
token.

The errors are simulated by patching ``os.write`` and ``tempfile.mkstemp``, and the races run
in threads, so every fault is covered everywhere. The same faults for real (a full or
read-only tmpfs, another user, a writer killed mid-write, module processes that race) are in
tests/system/test_fault_processes.py.

Leftover temporary files: a writer killed between creating its temporary file and renaming it
leaves ``.<name>.<random>.tmp`` (mode 0600) beside the target. It never carries the target's
name, so nothing reads it as the key or token, and the next run that takes the lock of that
path removes it once it is older than ``_files.STALE_TEMP_SECONDS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import tempfile
import threading
import time

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jwk, _keypair, _keyring, _keys, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish, jwt_keypair, jwt_keyring, jwt_token
from helpers import (  # pylint: disable=import-error
    SteppingClock, digest_tree, module_result as run_module, read_file as read, temp_files, write_file as write)

ISSUER = "https://edge.example.com"
WAIT = 120

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def new_key_pem(key_type="ec"):
    return _keys.private_key_pem(_keys.generate_private_key(key_type, 2048))


class DiskFull(object):
    """os.write that writes part of the data into files below ``root``, then fails with ENOSPC."""

    def __init__(self, root, after=16):
        self.root = root
        self.after = after
        self.real = os.write
        self.calls = 0

    def __call__(self, fd, data):
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            target = ""
        if not target.startswith(self.root):
            return self.real(fd, data)
        self.calls += 1
        if self.calls == 1 and self.after:
            return self.real(fd, bytes(data[:self.after]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --------------------------------------------------------------------------------------
# Disk full
# --------------------------------------------------------------------------------------

def test_disk_full_in_write_atomic_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "key.pem")
    write(path, b"the old key")
    full = DiskFull(str(tmp_path))
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(_files.FileError) as info:
        _files.write_atomic(path, b"x" * 4096, what="private key")
    monkeypatch.undo()
    assert full.calls == 2, "the fake disk was not used"
    assert "cannot write private key %s: No space left on device" % path in str(info.value)
    assert "the previous file, if any, is unchanged" in str(info.value)
    assert read(path) == b"the old key"
    assert os.listdir(str(tmp_path)) == ["key.pem"]


#: jwt_keyring arguments with zero windows: a published next key may sign at once.
ZERO_WINDOWS = {"propagation_window": 0, "token_max_lifetime": 0, "clock_skew": 0}


@pytest.mark.parametrize("module_name", ["jwt_keypair", "jwt_token", "jwks_publish", "jwt_keyring-stage",
                                         "jwt_keyring-activate"])
def test_disk_full_in_every_module(tmp_path, capsys, monkeypatch, module_name):
    key_path = str(tmp_path / "key.pem")
    write(key_path, new_key_pem())
    token_path = str(tmp_path / "token")
    expired = _token.mint(_keys.load_private_key(read(key_path)), issuer=ISSUER, subject="edge-01",
                          now=int(time.time()) - 7200).token
    write(token_path, expired.encode("ascii"))
    jwks_path = str(tmp_path / "jwks.json")
    write(jwks_path, b'{"keys": []}\n', 0o644)
    args = {
        "jwt_keypair": {"path": key_path, "regenerate": "always"},
        "jwt_token": {"private_key_path": key_path, "issuer": ISSUER, "subject": "edge-01", "dest": token_path},
        "jwks_publish": {"keys": [_jwk.public_jwk(_keys.load_private_key(read(key_path)))], "dest": jwks_path},
        # The first write of a stage is the next key, of an activation the copy of the outgoing key.
        "jwt_keyring-stage": {"path": key_path, "action": "stage"},
        "jwt_keyring-activate": dict(ZERO_WINDOWS, path=key_path, action="activate"),
    }[module_name]
    module = {"jwt_keypair": jwt_keypair, "jwt_token": jwt_token, "jwks_publish": jwks_publish,
              "jwt_keyring-stage": jwt_keyring, "jwt_keyring-activate": jwt_keyring}[module_name]
    if module_name.startswith("jwt_keyring"):
        monkeypatch.setattr(_keyring, "time", SteppingClock())
        settled = run_module(jwt_keyring, dict(ZERO_WINDOWS, path=key_path), capsys)
        if module_name == "jwt_keyring-activate":
            staged = run_module(jwt_keyring, dict(ZERO_WINDOWS, path=key_path, action="stage"), capsys)
            run_module(jwt_keyring, dict(ZERO_WINDOWS, path=key_path, action="mark_published",
                                         published_kids=staged["kids"]), capsys)
        assert settled["changed"] is True and os.path.exists(_keyring.state_path(key_path))
    before = digest_tree(str(tmp_path))
    full = DiskFull(str(tmp_path))
    monkeypatch.setattr(os, "write", full)
    result = run_module(module, args, capsys)
    monkeypatch.undo()
    assert full.calls, "the fake disk was not used"
    assert result["failed"] is True
    assert "No space left on device" in result["msg"] and "is unchanged" in result["msg"]
    assert digest_tree(str(tmp_path)) == before
    assert temp_files(str(tmp_path)) == []


def test_disk_full_for_the_key_puts_the_certificate_back(tmp_path, capsys, monkeypatch):
    """The certificate is written first; when the key then fails, the old certificate returns."""
    key_path, cert_path = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    first = run_module(jwt_keypair, {"path": key_path, "certificate_path": cert_path}, capsys)
    before = digest_tree(str(tmp_path))
    real = os.write

    def key_disk_full(fd, data):
        if "/.key.pem." in os.readlink("/proc/self/fd/%d" % fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", key_disk_full)
    result = run_module(jwt_keypair, {"path": key_path, "certificate_path": cert_path, "regenerate": "always"}, capsys)
    monkeypatch.undo()
    assert result["failed"] is True and "No space left on device" in result["msg"]
    assert digest_tree(str(tmp_path)) == before
    assert run_module(jwt_keypair, {"path": key_path, "certificate_path": cert_path}, capsys)["jwk"] == first["jwk"]


# --------------------------------------------------------------------------------------
# Read-only destination
# --------------------------------------------------------------------------------------

def test_read_only_directory_simulated(tmp_path, capsys, monkeypatch):
    key_path = str(tmp_path / "key.pem")
    old = new_key_pem()
    write(key_path, old)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = run_module(jwt_keypair, {"path": key_path, "regenerate": "always"}, capsys)
    assert result["failed"] is True
    assert "cannot write private key %s: Read-only file system" % key_path in result["msg"]
    assert read(key_path) == old


# --------------------------------------------------------------------------------------
# Stale temporary files
# --------------------------------------------------------------------------------------

def test_remove_stale_temp_files_only_touches_old_temp_files_of_the_path(tmp_path):
    key = str(tmp_path / "key.pem")
    names = [".key.pem.abc123.tmp", ".key.pem.def456.tmp", ".other.pem.abc123.tmp", "key.pem", ".key.pem.lock",
             ".key.pem.abc123.tmp.keep", "key.pem.1234.2026-01-01@00:00:00~"]
    for name in names:
        write(str(tmp_path / name), b"x")
    os.mkdir(str(tmp_path / ".key.pem.dir1.tmp"))
    old = time.time() - 3600
    for name in names[0:1] + names[2:]:
        os.utime(str(tmp_path / name), (old, old))
    removed = _files.remove_stale_temp_files(key)
    assert removed == [str(tmp_path / ".key.pem.abc123.tmp")]
    assert sorted(os.listdir(str(tmp_path))) == sorted(names[1:] + [".key.pem.dir1.tmp"])


# --------------------------------------------------------------------------------------
# Two runs against the same path
# --------------------------------------------------------------------------------------

def _race(path, count, monkeypatch, lock=True):
    """``count`` threads run ensure_present() on one new key path at the same moment."""
    real_generate = _keys.generate_private_key

    def slow_generate(*args, **kwargs):
        time.sleep(0.3)  # widen the window between "is there a key?" and writing one
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(_keys, "generate_private_key", slow_generate)
    if not lock:
        monkeypatch.setattr(_files, "locked", _no_lock)
    barrier = threading.Barrier(count)
    results = [None] * count

    def worker(index):
        barrier.wait()
        results[index] = _keypair.ensure_present(_keypair.KeypairSpec(path=path))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return results


class _NoLock(object):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _no_lock(path):
    return _NoLock()


def test_concurrent_runs_generate_exactly_one_key(tmp_path, monkeypatch):
    path = str(tmp_path / "key.pem")
    results = _race(path, 3, monkeypatch)
    assert sorted(result["changed"] for result in results) == [False, False, True]
    assert len(set(result["kid"] for result in results)) == 1
    assert _jwk.key_thumbprint(_keys.load_private_key(read(path))) == results[0]["kid"]


def test_without_the_lock_the_race_is_seen(tmp_path, monkeypatch):
    """Control: the harness above detects a missing lock (every thread generates its own key)."""
    results = _race(str(tmp_path / "key.pem"), 3, monkeypatch, lock=False)
    assert [result["changed"] for result in results] == [True, True, True]
    assert len(set(result["kid"] for result in results)) == 3


def test_concurrent_token_writers_mint_once(tmp_path, monkeypatch):
    """A writer that waited for the lock keeps the token made meanwhile, whatever its clock said before.

    The clock advances one second per reading. The "late" writer comes first but is held up on
    its way to the lock; the "early" writer takes the lock and writes a token. Had the late
    writer read the time before waiting, that token would look issued in the future to it, and
    it would mint a second one.
    """
    key = _keys.generate_private_key("ec")
    path = str(tmp_path / "token")
    ticks = [1800000000]
    clock_lock = threading.Lock()

    def clock(now=None):
        if now is not None:
            return int(now)
        with clock_lock:
            ticks[0] += 1
            return ticks[0]

    monkeypatch.setattr(_token, "_now", clock)
    real_locked = _files.locked
    late_on_its_way = threading.Event()

    @contextlib.contextmanager
    def slow_for_the_late_one(lock_path):
        if threading.current_thread().name == "late":
            late_on_its_way.set()
            time.sleep(1.0)
        with real_locked(lock_path):
            yield

    monkeypatch.setattr(_files, "locked", slow_for_the_late_one)
    results = {}

    def writer():
        name = threading.current_thread().name
        if name == "early":
            late_on_its_way.wait(WAIT)
        results[name] = _token.ensure_token_file(path, key, issuer=ISSUER, subject="edge-01")

    threads = [threading.Thread(target=writer, name=name) for name in ("late", "early")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert results["early"][0] is True
    assert results["late"][0] is False, results["late"][1].reason
    assert results["early"][1].token == results["late"][1].token == read(path).decode("ascii")
