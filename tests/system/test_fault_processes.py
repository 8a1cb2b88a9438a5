# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Faults for real, with file systems and processes: a full tmpfs, a read-only tmpfs, another
user, a writer killed mid-write, module processes that race.

What must hold in each case: the old file stays intact, nothing partial ever carries the
target's name, the module fails with a message that says what happened (or succeeds when it
has nothing to write), and two runs against the same key or token path agree on one key or
token. The same faults simulated in-process are in
tests/unit/plugins/module_utils/test_faults.py.

Some tests need root (mounting a small tmpfs, dropping privileges); they are skipped with the
reason when that is not possible.

Leftover temporary files: a writer killed between creating its temporary file and renaming it
leaves ``.<name>.<random>.tmp`` (mode 0600) beside the target. It never carries the target's
name, so nothing reads it as the key or token, and the next run that takes the lock of that
path removes it once it is older than ``_files.STALE_TEMP_SECONDS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import ansible_collections
import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jwk, _keys, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish, jwt_keypair, jwt_keyring, jwt_token
from helpers import (  # pylint: disable=import-error
    digest_tree, module_result as run_module, private_directory_above, read_file as read, temp_files,
    write_file as write)

ISSUER = "https://edge.example.com"
#: The directory that holds ansible_collections/ (for the child processes' PYTHONPATH).
COLLECTIONS = os.path.dirname(os.path.abspath(list(ansible_collections.__path__)[0]))
NOBODY = 65534
WAIT = 120


def new_key_pem(key_type="ec"):
    return _keys.private_key_pem(_keys.generate_private_key(key_type, 2048))


# --------------------------------------------------------------------------------------
# Disk full
# --------------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs():
    """A 256 KiB tmpfs (root only), unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mountpoint = tempfile.mkdtemp(prefix="selfjwt-tmpfs-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", mountpoint],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        os.rmdir(mountpoint)
        pytest.skip("cannot mount a tmpfs here: %s" % done.stdout.decode("utf-8", "replace").strip())
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", mountpoint], check=False)
        os.rmdir(mountpoint)


def _fill(directory):
    """Fill the file system of ``directory`` completely."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_really_full_file_system(small_tmpfs, capsys):
    key_path = os.path.join(small_tmpfs, "key.pem")
    token_path = os.path.join(small_tmpfs, "token")
    first = run_module(jwt_keypair, {"path": key_path}, capsys)
    _fill(small_tmpfs)
    before = digest_tree(small_tmpfs)
    # Nothing to write: a full disk does not matter.
    assert run_module(jwt_keypair, {"path": key_path}, capsys)["changed"] is False
    for module, args, what in (
            (jwt_keypair, {"path": key_path, "regenerate": "always"}, "private key"),
            (jwt_token, {"private_key_path": key_path, "issuer": ISSUER, "subject": "s", "dest": token_path},
             "token file")):
        result = run_module(module, args, capsys)
        assert result["failed"] is True
        assert "cannot write %s" % what in result["msg"] and "No space left on device" in result["msg"]
    assert digest_tree(small_tmpfs) == before
    assert temp_files(small_tmpfs) == []
    assert run_module(jwt_keypair, {"path": key_path}, capsys)["kid"] == first["kid"]


# --------------------------------------------------------------------------------------
# Read-only file system
# --------------------------------------------------------------------------------------

@pytest.fixture
def read_only_tree(small_tmpfs, capsys):
    """A key, a fresh token and a JWKS on a tmpfs that is then remounted read-only."""
    key_path = os.path.join(small_tmpfs, "key.pem")
    token_path = os.path.join(small_tmpfs, "token")
    jwks_path = os.path.join(small_tmpfs, "jwks.json")
    made = run_module(jwt_keypair, {"path": key_path}, capsys)
    token_args = {"private_key_path": key_path, "issuer": ISSUER, "subject": "edge-01", "dest": token_path}
    run_module(jwt_token, token_args, capsys)
    run_module(jwks_publish, {"keys": [made["jwk"]], "dest": jwks_path}, capsys)
    # A second key without a key ring: jwt_keyring would have to write the ring state to adopt it.
    ring_key = os.path.join(small_tmpfs, "ring.pem")
    run_module(jwt_keypair, {"path": ring_key}, capsys)
    # Without a lock file (the key) and with one (the token): both ways of locking a read-only directory.
    os.unlink(os.path.join(small_tmpfs, ".key.pem.lock"))
    done = subprocess.run(["mount", "-o", "remount,ro", small_tmpfs], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only: %s" % done.stdout.decode("utf-8", "replace").strip())
    return {"root": small_tmpfs, "key": key_path, "token": token_path, "jwks": jwks_path, "kid": made["kid"],
            "jwk": made["jwk"], "token_args": token_args, "ring_key": ring_key}


def test_read_only_file_system_reads_and_refuses_writes(read_only_tree, capsys):
    tree = read_only_tree
    before = digest_tree(tree["root"])
    # Nothing to change: the modules succeed although they cannot take a lock file.
    kept = run_module(jwt_keypair, {"path": tree["key"]}, capsys)
    assert kept.get("failed") is None and kept["changed"] is False and kept["kid"] == tree["kid"]
    token = run_module(jwt_token, tree["token_args"], capsys)
    assert token.get("failed") is None and token["changed"] is False
    published = run_module(jwks_publish, {"keys": [tree["jwk"]], "dest": tree["jwks"]}, capsys)
    assert published.get("failed") is None and published["changed"] is False
    # Something to change: a clear failure, and nothing changed.
    replaced = run_module(jwt_keypair, {"path": tree["key"], "regenerate": "always"}, capsys)
    assert replaced["failed"] is True
    assert "Read-only file system; the previous file, if any, is unchanged" in replaced["msg"]
    fresh = run_module(jwt_token, dict(tree["token_args"], subject="someone-else"), capsys)
    assert fresh["failed"] is True and "cannot write token file" in fresh["msg"]
    assert "Read-only file system" in fresh["msg"]
    other = run_module(jwks_publish, {"keys": [tree["jwk"]], "dest": tree["jwks"], "allow_empty": True,
                                      "revoke": [tree["kid"]]}, capsys)
    assert other["failed"] is True and "cannot write JWKS file" in other["msg"]
    status = run_module(jwt_keyring, {"path": tree["ring_key"], "action": "status"}, capsys)
    assert status.get("failed") is None and status["changed"] is False and status["would_change"] is True
    adopt = run_module(jwt_keyring, {"path": tree["ring_key"]}, capsys)
    assert adopt["failed"] is True and "Read-only file system" in adopt["msg"]
    assert digest_tree(tree["root"]) == before


# --------------------------------------------------------------------------------------
# Real permission errors: a process that is not root
# --------------------------------------------------------------------------------------

#: Runs one module in a child process: optionally as another user, with a slow key generator,
#: or with a write that stalls after some bytes (so the parent can kill it mid-write).
RUNNER = r"""
import json, os, sys, time
config = json.loads(sys.argv[1])
import importlib
from ansible.module_utils.testing import patch_module_args
from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _keys
module = importlib.import_module("ansible_collections.selfjwt.kyma.plugins.modules." + config["module"])
if config.get("slow_generate"):
    real_generate = _keys.generate_private_key
    def slow_generate(*args, **kwargs):
        time.sleep(config["slow_generate"])
        return real_generate(*args, **kwargs)
    _keys.generate_private_key = slow_generate
if config.get("stall") is not None:
    real_write = os.write
    def stalled_write(fd, data):
        target = os.readlink("/proc/self/fd/%d" % fd)
        if not target.endswith(".tmp"):
            return real_write(fd, data)
        written = real_write(fd, bytes(data[:config["stall"]]))
        with open(config["signal"], "w") as handle:
            handle.write(target)
        time.sleep(600)
        return written
    os.write = stalled_write
if config.get("user") is not None:
    # The user may not read the Python installation: import what the modules import on first use.
    _jose.import_deferred()
    os.setgroups([])
    os.setgid(config["user"])
    os.setuid(config["user"])
with patch_module_args(config["args"]):
    module.main()
"""


def start_module(module_name, args, **options):
    config = dict(options, module=module_name, args=args)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(config)], env=env, cwd=tempfile.gettempdir(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    out, err = process.communicate(timeout=WAIT)
    text = out.decode("utf-8", "replace")
    assert "Traceback" not in text + err.decode("utf-8", "replace"), err.decode("utf-8", "replace")[-3000:]
    return json.loads(text)


def run_as(module_name, args, user):
    # The module process switches to ``user`` after start-up and then imports what Python,
    # cryptography and ansible-core load on first use: they must be readable by that user.
    for path in (sys.prefix, COLLECTIONS):
        private = private_directory_above(path)
        if private:
            pytest.skip("%s lies below %s, which other users cannot enter, so a module process that switched "
                        "to another user cannot import its libraries; run from a checkout other users can read"
                        % (path, private))
    return finish(start_module(module_name, args, user=user))


@pytest.fixture
def foreign_tree():
    """A root-owned directory (0755) with a root-only key and a world-readable key."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    root = tempfile.mkdtemp(prefix="selfjwt-perm-")
    os.chmod(root, 0o755)
    secret = os.path.join(root, "secret.pem")
    readable = os.path.join(root, "readable.pem")
    pem = new_key_pem()
    write(secret, pem, 0o600)
    write(readable, pem, 0o644)
    try:
        yield {"root": root, "secret": secret, "readable": readable,
               "kid": _jwk.key_thumbprint(_keys.load_private_key(pem))}
    finally:
        shutil.rmtree(root)


def test_unreadable_key_as_another_user(foreign_tree):
    tree = foreign_tree
    before = digest_tree(tree["root"])
    result = run_as("jwt_token", {"private_key_path": tree["secret"], "issuer": ISSUER, "subject": "s"}, NOBODY)
    assert result["failed"] is True
    assert "cannot read private key file %s: Permission denied" % tree["secret"] in result["msg"]
    result = run_as("jwt_keypair", {"path": tree["secret"]}, NOBODY)
    assert result["failed"] is True and "Permission denied" in result["msg"]
    assert digest_tree(tree["root"]) == before


def test_readable_key_in_a_directory_of_another_user(foreign_tree):
    """Reading works without a lock file; writing fails with the write's own error."""
    tree = foreign_tree
    before = digest_tree(tree["root"])
    kept = run_as("jwt_keypair", {"path": tree["readable"], "mode": "0644"}, NOBODY)
    assert kept.get("failed") is None, kept
    assert kept["changed"] is False and kept["kid"] == tree["kid"]
    replaced = run_as("jwt_keypair", {"path": tree["readable"], "mode": "0644", "regenerate": "always"}, NOBODY)
    assert replaced["failed"] is True
    assert "cannot write private key %s: Permission denied" % tree["readable"] in replaced["msg"]
    token = run_as("jwt_token", {"private_key_path": tree["readable"], "issuer": ISSUER, "subject": "s",
                                 "dest": os.path.join(tree["root"], "token")}, NOBODY)
    assert token["failed"] is True and "Permission denied" in token["msg"]
    assert digest_tree(tree["root"]) == before
    assert sorted(os.listdir(tree["root"])) == ["readable.pem", "secret.pem"]


def test_lock_file_of_another_user_in_a_writable_directory_is_an_error(tmp_path):
    """Where this process could write the key, a lock it cannot take is not silently skipped."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    root = tempfile.mkdtemp(prefix="selfjwt-lock-")
    try:
        os.chown(root, NOBODY, NOBODY)
        lock = os.path.join(root, ".key.pem.lock")
        write(lock, b"", 0o600)
        result = run_as("jwt_keypair", {"path": os.path.join(root, "key.pem")}, NOBODY)
        assert result["failed"] is True
        assert "cannot create lock file %s: Permission denied" % lock in result["msg"]
        assert sorted(os.listdir(root)) == [".key.pem.lock"]
    finally:
        shutil.rmtree(root)


# --------------------------------------------------------------------------------------
# Killed mid-write
# --------------------------------------------------------------------------------------

def _wait_for(path, process):
    end = time.monotonic() + WAIT
    while not os.path.exists(path) or not os.path.getsize(path):
        if process.poll() is not None:
            raise AssertionError("the writer ended early: %s" % process.communicate()[1].decode("utf-8", "replace"))
        if time.monotonic() > end:
            process.kill()
            raise AssertionError("the writer did not reach its write")
        time.sleep(0.02)
    with open(path) as handle:
        return handle.read()


@pytest.mark.parametrize("module_name", ["jwt_keypair", "jwt_token"])
def test_killed_mid_write_leaves_the_old_file(tmp_path, capsys, module_name):
    directory = str(tmp_path / "keys")
    os.makedirs(directory)
    key_path = os.path.join(directory, "key.pem")
    token_path = os.path.join(directory, "token")
    made = run_module(jwt_keypair, {"path": key_path}, capsys)
    old_token = _token.mint(_keys.load_private_key(read(key_path)), issuer=ISSUER, subject="old",
                            now=int(time.time()) - 7200).token
    write(token_path, old_token.encode("ascii"))
    target, args = {
        "jwt_keypair": (key_path, {"path": key_path, "regenerate": "always"}),
        "jwt_token": (token_path, {"private_key_path": key_path, "issuer": ISSUER, "subject": "new",
                                   "dest": token_path}),
    }[module_name]
    old = read(target)
    signal_file = str(tmp_path / "writing")
    writer = start_module(module_name, args, stall=24, signal=signal_file)
    try:
        temp_path = _wait_for(signal_file, writer)
        # Mid-write: the target is still the old file, and the partial data is only in the temp file.
        assert read(target) == old
        assert os.path.dirname(temp_path) == directory
        assert _files.temp_file_pattern(target).match(os.path.basename(temp_path))
        assert stat.S_IMODE(os.stat(temp_path).st_mode) == 0o600
        assert 0 < len(read(temp_path)) <= 24
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(WAIT)

    assert read(target) == old
    leftovers = temp_files(directory)
    assert leftovers == [os.path.basename(temp_path)]
    # The leftover is never taken for the target: it does not match the target's name or a *.pem glob.
    assert glob.glob(os.path.join(directory, "*.pem")) == [key_path]
    assert run_module(jwt_keypair, {"path": key_path}, capsys)["kid"] == made["kid"]
    # The next run of the same kind: a fresh leftover might belong to a live writer, so it is kept ...
    next_args = {
        "jwt_keypair": {"path": key_path},
        "jwt_token": {"private_key_path": key_path, "issuer": ISSUER, "subject": "old", "dest": token_path},
    }[module_name]
    module = jwt_keypair if module_name == "jwt_keypair" else jwt_token
    assert run_module(module, next_args, capsys).get("failed") is None
    assert temp_files(directory) == leftovers
    # ... and once it is older than STALE_TEMP_SECONDS, the run that holds the lock removes it.
    stale = time.time() - _files.STALE_TEMP_SECONDS - 5
    os.utime(temp_path, (stale, stale))
    assert run_module(module, next_args, capsys).get("failed") is None
    assert temp_files(directory) == []
    assert run_module(jwt_keypair, {"path": key_path}, capsys)["kid"] == made["kid"]


# --------------------------------------------------------------------------------------
# Module processes against the same path
# --------------------------------------------------------------------------------------

def test_concurrent_module_processes_agree_on_one_key_and_one_token(tmp_path):
    rounds, parallel = 2, 3
    for round_number in range(rounds):
        directory = str(tmp_path / ("round%d" % round_number))
        os.makedirs(directory)
        key_path = os.path.join(directory, "key.pem")
        writers = [start_module("jwt_keypair", {"path": key_path}, slow_generate=0.2) for _writer in range(parallel)]
        results = [finish(writer) for writer in writers]
        assert [result.get("failed") for result in results] == [None] * parallel, results
        assert sorted(result["changed"] for result in results) == [False] * (parallel - 1) + [True]
        kids = set(result["kid"] for result in results)
        assert kids == {_jwk.key_thumbprint(_keys.load_private_key(read(key_path)))}
        token_path = os.path.join(directory, "token")
        token_args = {"private_key_path": key_path, "issuer": ISSUER, "subject": "edge-01", "dest": token_path}
        minters = [start_module("jwt_token", token_args) for _minter in range(parallel)]
        tokens = [finish(minter) for minter in minters]
        assert sorted(token["changed"] for token in tokens) == [False] * (parallel - 1) + [True]
        assert set(token["token"] for token in tokens) == {read(token_path).decode("ascii")}
        assert temp_files(directory) == []
