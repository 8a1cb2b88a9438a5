# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Root runs against files that a less privileged account controls.

The key's owner (``edge_keys_owner``, here the account ``nobody``, simulated with os.chown)
can write its own files and, in the layout of earlier releases, the key directory; in a
shared directory any account can. These tests replay attacks on root's runs: a kid in the
ring state that names a file elsewhere, links planted at the lock, certificate and token
paths, and a key planted in a world-writable directory. Each must be refused with nothing
outside the key directory touched. They run as root (the suite does) in temporary
directories and skip otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import stat

import pytest
from ansible.module_utils.common import warnings as module_warnings

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils import _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair, jwt_keyring, jwt_token
from helpers import read_file as read, run_module_main, tree_state  # pylint: disable=import-error

ISSUER = "https://edge.example.com"
#: The kid of the reproduction: from <base>/etc/selfjwt/signing.pem. three levels up is <base>.
TRAVERSAL_KID = "/../../../victim2/target"
SECRET = b"root-only content 5b1e0c\n"

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="giving files to another account needs root")


def nobody():
    return pwd.getpwnam("nobody").pw_uid


def run(module, args, capsys, check_mode=False):
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    return run_module_main(module, args, capsys, check_mode=check_mode).result


def write(path, data, mode=0o600, uid=None):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)


@pytest.fixture
def host(tmp_path):
    """<base>/etc/selfjwt (the key directory, owned by the key's owner as earlier releases made it)
    and <base>/victim2 (root-only, 0700) holding a root-owned 0600 file."""
    base = tmp_path / "host"
    key_dir = base / "etc" / "selfjwt"
    key_dir.mkdir(parents=True)
    os.chown(str(key_dir), nobody(), -1)
    os.chmod(str(key_dir), 0o700)
    victim = base / "victim2"
    victim.mkdir(mode=0o700)
    write(str(victim / "target"), SECRET)
    return {"base": str(base), "key_dir": str(key_dir), "key": str(key_dir / "signing.pem"),
            "victim": str(victim / "target")}


def spec(path, **options):
    return _keypair.KeypairSpec(path=path, **options)


def ring_with_a_traversal_kid(host):
    """A ring whose state the owner has edited (and ``signing.pem.`` made a directory), as reproduced."""
    _keypair.ensure_present(spec(host["key"]), uid=nobody())
    _keyring.run(spec(host["key"]), "auto", owner=nobody())
    state_file = _keyring.state_path(host["key"])
    state = json.loads(read(state_file).decode("utf-8"))
    state["keys"].append({"kid": TRAVERSAL_KID, "state": "retiring", "jwk": {"kty": "EC"},
                          "deactivated_at": "2000-01-01T00:00:00Z"})
    write(state_file, json.dumps(state).encode("utf-8"), uid=nobody())
    os.mkdir(host["key"] + ".")
    os.chown(host["key"] + ".", nobody(), -1)
    # The path root would have removed: it is the victim.
    assert os.path.realpath(_keyring.state_path(host["key"])[:-len(_keyring.STATE_SUFFIX)] + "." + TRAVERSAL_KID) \
        == os.path.realpath(host["victim"])
    return state_file


# --------------------------------------------------------------------------------------
# 1. A kid in the ring state is never a path
# --------------------------------------------------------------------------------------

def test_auto_rotation_does_not_delete_the_file_a_kid_points_to(host, capsys):
    state_file = ring_with_a_traversal_kid(host)
    before = read(state_file)
    result = run(jwt_keyring, {"path": host["key"], "action": "auto", "owner": "nobody", "propagation_window": 0,
                               "token_max_lifetime": 0, "clock_skew": 0}, capsys)
    assert os.path.exists(host["victim"]), "root deleted the victim: %s" % result.get("performed")
    assert read(host["victim"]) == SECRET
    assert result["failed"] is True
    assert "which is not an RFC 7638 thumbprint" in result["msg"] and "restore the state" in result["msg"].lower()
    assert read(state_file) == before


def test_revoke_with_key_removal_does_not_delete_the_file_a_kid_points_to(host, capsys):
    ring_with_a_traversal_kid(host)
    result = run(jwt_keyring, {"path": host["key"], "action": "revoke", "remove_private_keys": True,
                               "owner": "nobody"}, capsys)
    assert os.path.exists(host["victim"]), "root deleted the victim: %s" % result.get("performed")
    assert read(host["victim"]) == SECRET
    assert result["failed"] is True and "not an RFC 7638 thumbprint" in result["msg"]
    assert os.path.exists(host["key"])


def test_a_state_of_another_account_is_refused(host, capsys):
    os.chown(host["key_dir"], 0, 0)
    _keypair.ensure_present(spec(host["key"]))
    _keyring.run(spec(host["key"]), "auto")
    os.chown(_keyring.state_path(host["key"]), nobody(), -1)
    result = run(jwt_keyring, {"path": host["key"]}, capsys)
    assert result["failed"] is True
    assert "key ring state %s belongs to nobody" % _keyring.state_path(host["key"]) in result["msg"]
    assert "set owner" in result["msg"]
    assert run(jwt_keyring, {"path": host["key"], "owner": "nobody"}, capsys)["changed"] is False


def test_remove_refuses_a_path_that_leaves_its_directory(host):
    with pytest.raises(_files.FileError, match="contains '..'"):
        _files.remove(host["key"] + "." + TRAVERSAL_KID, "retired private key")
    assert read(host["victim"]) == SECRET


def test_remove_unlinks_a_link_not_its_target(host):
    link = os.path.join(host["key_dir"], "link")
    os.symlink(host["victim"], link)
    assert _files.remove(link, "retired private key") is True
    assert not os.path.lexists(link) and read(host["victim"]) == SECRET


# --------------------------------------------------------------------------------------
# 2. No link followed at lock, key, certificate, backup, state and token paths
# --------------------------------------------------------------------------------------

def test_a_lock_link_does_not_make_root_create_its_target(host, capsys):
    target = os.path.join(host["base"], "nologin")
    os.symlink(target, os.path.join(host["key_dir"], ".signing.pem.lock"))
    result = run(jwt_keypair, {"path": host["key"], "owner": "nobody"}, capsys)
    assert result["failed"] is True
    assert "lock file %s/.signing.pem.lock is a symbolic link" % host["key_dir"] in result["msg"]
    assert not os.path.lexists(target)
    assert not os.path.exists(host["key"])


@pytest.mark.parametrize("planted", ["fifo", "hard link", "foreign"])
def test_a_planted_lock_file_is_refused(host, planted):
    lock = os.path.join(host["key_dir"], ".signing.pem.lock")
    if planted == "fifo":
        os.mkfifo(lock)
    elif planted == "hard link":
        os.link(host["victim"], lock)
    else:
        write(lock, b"", uid=pwd.getpwnam("daemon").pw_uid)
    with pytest.raises(_files.FileError, match="lock file %s" % lock):
        _keypair.ensure_present(spec(host["key"]), uid=nobody())
    assert not os.path.exists(host["key"])
    assert read(host["victim"]) == SECRET


def test_a_certificate_link_is_not_copied_into_a_backup(host, capsys):
    private = os.path.join(host["base"], "private")
    os.mkdir(private, 0o700)
    secret = os.path.join(private, "secret.txt")
    write(secret, SECRET, 0o644)
    certificate = os.path.join(host["key_dir"], "signing.crt")
    first = run(jwt_keypair, {"path": host["key"], "owner": "nobody", "certificate_path": certificate}, capsys)
    assert first.get("failed") is None, first
    os.unlink(certificate)
    os.symlink(secret, certificate)
    result = run(jwt_keypair, {"path": host["key"], "owner": "nobody", "certificate_path": certificate,
                               "backup": True}, capsys)
    assert result["failed"] is True
    assert "certificate %s is a symbolic link" % certificate in result["msg"]
    for name in os.listdir(host["key_dir"]):
        path = os.path.join(host["key_dir"], name)
        if os.path.isfile(path) and not os.path.islink(path):
            assert SECRET not in read(path), name
    assert os.readlink(certificate) == secret


def test_a_backup_is_made_from_the_bytes_read(host, capsys):
    certificate = os.path.join(host["key_dir"], "signing.crt")
    run(jwt_keypair, {"path": host["key"], "owner": "nobody", "certificate_path": certificate}, capsys)
    key_before, certificate_before = read(host["key"]), read(certificate)
    result = run(jwt_keypair, {"path": host["key"], "owner": "nobody", "certificate_path": certificate,
                               "backup": True, "regenerate": "always"}, capsys)
    assert result["changed"] is True
    assert read(result["backup_file"]) == key_before
    assert stat.S_IMODE(os.lstat(result["backup_file"]).st_mode) == 0o600
    assert read(result["certificate_backup_file"]) == certificate_before


def test_a_key_link_is_not_followed(host, capsys):
    os.symlink(host["victim"], host["key"])
    result = run(jwt_keypair, {"path": host["key"], "owner": "nobody", "regenerate": "always"}, capsys)
    assert result["failed"] is True and "is a symbolic link" in result["msg"]
    assert read(host["victim"]) == SECRET and os.path.islink(host["key"])


def test_a_state_link_is_not_followed(host, capsys):
    _keypair.ensure_present(spec(host["key"]), uid=nobody())
    os.symlink(host["victim"], _keyring.state_path(host["key"]))
    result = run(jwt_keyring, {"path": host["key"], "owner": "nobody"}, capsys)
    assert result["failed"] is True and "ring.json is a symbolic link" in result["msg"]
    assert read(host["victim"]) == SECRET


def test_a_token_link_is_not_followed(host, capsys):
    _keypair.ensure_present(spec(host["key"]), uid=nobody())
    token = os.path.join(host["key_dir"], "token")
    os.symlink(host["victim"], token)
    result = run(jwt_token, {"private_key_path": host["key"], "issuer": ISSUER, "subject": "edge-01",
                             "dest": token, "mode": "0644"}, capsys)
    assert result["failed"] is True and "token file %s is a symbolic link" % token in result["msg"]
    assert read(host["victim"]) == SECRET
    assert stat.S_IMODE(os.stat(host["victim"]).st_mode) == 0o600


def test_a_kept_token_file_is_fixed_through_its_descriptor(host, monkeypatch):
    _keypair.ensure_present(spec(host["key"]), uid=nobody())
    key = _token.load_key(path=host["key"])
    token = os.path.join(host["key_dir"], "token")
    _token.ensure_token_file(token, key, issuer=ISSUER, subject="edge-01")
    # Between the read and the fix the file is swapped for a link to the victim.

    real_read_file = _files.read_file

    def swap_after_read(path, *args, **kwargs):
        result = real_read_file(path, *args, **kwargs)
        if path == token:
            os.unlink(token)
            os.symlink(host["victim"], token)
        return result

    monkeypatch.setattr(_files, "read_file", swap_after_read)
    with pytest.raises(_files.FileError, match="symbolic link"):
        _token.ensure_token_file(token, key, mode=0o644, issuer=ISSUER, subject="edge-01")
    assert stat.S_IMODE(os.stat(host["victim"]).st_mode) == 0o600


# --------------------------------------------------------------------------------------
# 4. Key paths in directories that other accounts can write
# --------------------------------------------------------------------------------------

@pytest.fixture
def shared(tmp_path):
    directory = tmp_path / "ww"
    directory.mkdir()
    os.chmod(str(directory), 0o1777)
    return str(directory)


def test_a_key_planted_in_a_world_writable_directory_is_refused(shared, capsys):
    planted = os.path.join(shared, "signing.pem")
    write(planted, _keys.private_key_pem(_keys.generate_private_key("ec")), 0o644, uid=nobody())
    before = tree_state(shared)
    for args in ({"path": planted}, {"path": planted, "parent_mode": "0700"},
                 {"path": planted, "owner": "root", "parent_mode": "0700"}):
        result = run(jwt_keypair, args, capsys)
        assert result["failed"] is True, result
        assert "can be written by its group or by others (mode 1777)" in result["msg"]
        assert result.get("kid") is None and result.get("jwk") is None
        assert tree_state(shared) == before
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777


def test_a_key_of_another_account_is_refused(host, capsys):
    os.chown(host["key_dir"], 0, 0)
    write(host["key"], _keys.private_key_pem(_keys.generate_private_key("ec")), 0o644, uid=nobody())
    before = tree_state(host["key_dir"])
    result = run(jwt_keypair, {"path": host["key"]}, capsys)
    assert result["failed"] is True
    assert "private key %s belongs to nobody" % host["key"] in result["msg"] and "set owner" in result["msg"]
    assert result.get("kid") is None
    # Nothing changed but the (empty) lock file root made in its own directory.
    after = tree_state(host["key_dir"])
    assert after.pop(".signing.pem.lock")[2:4] == (0, 0)
    assert after == before
    kept = run(jwt_keypair, {"path": host["key"], "owner": "nobody"}, capsys)
    assert kept.get("failed") is None and kept["kid"]


def test_an_existing_directory_is_not_given_away(tmp_path, capsys):
    """edge_keys_key_dir: /etc/ssl with an owner: the shared directory keeps its owner and mode."""
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    os.chmod(str(ssl), 0o755)
    key = str(ssl / "signing.pem")
    result = run(jwt_keypair, {"path": key, "owner": "nobody", "parent_mode": "0700"}, capsys)
    assert result.get("failed") is None, result
    status = os.stat(str(ssl))
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (0, 0o755)
    assert os.stat(key).st_uid == nobody()
    assert not result.get("warnings")
    result = run(jwt_keypair, {"path": key, "owner": "nobody", "parent_mode": "0750", "parent_update": True}, capsys)
    status = os.stat(str(ssl))
    assert result["changed"] is True
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (0, pwd.getpwnam("nobody").pw_gid, 0o750)


def test_an_owner_who_cannot_enter_an_existing_directory_is_warned(tmp_path, capsys):
    private = tmp_path / "selfjwt"
    private.mkdir(mode=0o700)
    key = str(private / "signing.pem")
    result = run(jwt_keypair, {"path": key, "owner": "nobody", "parent_mode": "0750"}, capsys)
    assert result.get("failed") is None, result
    warnings = json.dumps(result.get("warnings"))
    assert "the owner nobody cannot enter the key directory %s" % private in warnings
    assert "parent_update=true" in warnings
    assert stat.S_IMODE(os.stat(str(private)).st_mode) == 0o700
    result = run(jwt_keypair, {"path": key, "owner": "nobody", "parent_mode": "0750", "parent_update": True}, capsys)
    assert result["changed"] is True and not result.get("warnings")
    assert stat.S_IMODE(os.stat(str(private)).st_mode) == 0o750


def test_a_created_directory_belongs_to_root_with_the_owners_group(tmp_path, capsys):
    key = str(tmp_path / "etc" / "selfjwt" / "signing.pem")
    result = run(jwt_keypair, {"path": key, "owner": "nobody", "parent_mode": "0750"}, capsys)
    assert result.get("failed") is None, result
    status = os.stat(os.path.dirname(key))
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (0, pwd.getpwnam("nobody").pw_gid, 0o750)
    assert os.stat(key).st_uid == nobody()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
