# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File modes whatever the umask, and check mode that changes nothing on disk, for every module.

Permissions: under umask 000 (everything world-writable by default), 022 and 077 (nothing for
group and others), every file a module writes has the mode it documents from its first byte:
private keys, backups of keys, token files and lock files 0600 (token files: the configured
mode), certificates, JWKS and discovery documents 0644.

Check mode: each module runs in check mode against a tree in every state that makes it want
to change something (no files, a key of another type, an expired token, a JWKS with other
keys, wrong modes, absent), and the tree is hashed before and after: nothing may change,
not even a lock file may appear.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _keyring, _keys, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish, jwt_keypair, jwt_keyring, jwt_token
from helpers import SteppingClock, file_mode as mode_of, run_module_main, tree_state  # pylint: disable=import-error

ISSUER = "https://edge.example.com"
JWKS_URI = "http://edge-jwks.default.svc.cluster.local/jwks.json"
MODULES = {"jwt_keypair": jwt_keypair, "jwt_token": jwt_token, "jwks_publish": jwks_publish,
           "jwt_keyring": jwt_keyring}


def run(module_name, args, capsys, check_mode=False, diff=False):
    result = run_module_main(MODULES[module_name], args, capsys, check_mode=check_mode, diff=diff).result
    assert not result.get("failed"), result.get("msg")
    return result


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_modes_do_not_depend_on_the_umask(tmp_path, capsys, umask):
    root = str(tmp_path)
    key, cert = os.path.join(root, "key.pem"), os.path.join(root, "cert.pem")
    made = run("jwt_keypair", {"path": key, "certificate_path": cert}, capsys)
    replaced = run("jwt_keypair", {"path": key, "certificate_path": cert, "regenerate": "always", "backup": True},
                   capsys)
    token = os.path.join(root, "token")
    shared = os.path.join(root, "shared-token")
    symbolic = os.path.join(root, "symbolic-token")
    token_args = {"private_key_path": key, "issuer": ISSUER, "subject": "edge-01"}
    run("jwt_token", dict(token_args, dest=token), capsys)
    run("jwt_token", dict(token_args, dest=shared, mode="0640"), capsys)
    run("jwt_token", dict(token_args, dest=symbolic, mode="u=rw,g=r"), capsys)
    jwks, discovery = os.path.join(root, "jwks.json"), os.path.join(root, "openid-configuration")
    run("jwks_publish", {"keys": [made["jwk"], replaced["jwk"]], "dest": jwks, "issuer": ISSUER,
                         "jwks_uri": JWKS_URI, "discovery_dest": discovery}, capsys)
    expected = {
        "key.pem": 0o600, "cert.pem": 0o644, os.path.basename(replaced["backup_file"]): 0o600,
        os.path.basename(replaced["certificate_backup_file"]): 0o644,
        "token": 0o600, "shared-token": 0o640, "symbolic-token": 0o640,
        "jwks.json": 0o644, "openid-configuration": 0o644,
        ".key.pem.lock": 0o600, ".token.lock": 0o600, ".shared-token.lock": 0o600, ".symbolic-token.lock": 0o600,
    }
    found = dict((name, mode_of(os.path.join(root, name))) for name in os.listdir(root))
    assert found == expected, "umask %03o" % umask


def test_key_mode_is_repaired_and_never_widened(tmp_path, capsys, umask):
    key = str(tmp_path / "key.pem")
    run("jwt_keypair", {"path": key}, capsys)
    os.chmod(key, 0o666)
    assert run("jwt_keypair", {"path": key}, capsys)["changed"] is True
    assert mode_of(key) == 0o600


def test_backup_of_a_world_readable_key_is_private(tmp_path, capsys, umask):
    """Found by test_playbook_security.py: the backup kept the old key's 0644 while the key was repaired."""
    key = str(tmp_path / "key.pem")
    run("jwt_keypair", {"path": key}, capsys)
    os.chmod(key, 0o644)
    replaced = run("jwt_keypair", {"path": key, "regenerate": "always", "backup": True}, capsys)
    assert mode_of(key) == 0o600 and mode_of(replaced["backup_file"]) == 0o600
    os.chmod(key, 0o644)
    removed = run("jwt_keypair", {"path": key, "state": "absent", "backup": True}, capsys)
    assert mode_of(removed["backup_file"]) == 0o600
    shared = run("jwt_keypair", {"path": key, "mode": "0640"}, capsys)
    assert shared["changed"] is True and mode_of(key) == 0o640
    backup = run("jwt_keypair", {"path": key, "mode": "0640", "regenerate": "always", "backup": True},
                 capsys)["backup_file"]
    assert mode_of(backup) == 0o640


# --------------------------------------------------------------------------------------
# Check mode changes nothing
# --------------------------------------------------------------------------------------

def snapshot(root):
    return tree_state(root, mtime=True)


@pytest.fixture
def used_tree(tmp_path, capsys):
    """A tree the modules made and then ran again, so check mode has things it would change."""
    root = str(tmp_path / "tree")
    os.makedirs(root)
    key, cert = os.path.join(root, "key.pem"), os.path.join(root, "cert.pem")
    made = run("jwt_keypair", {"path": key, "certificate_path": cert}, capsys)
    other = _jwk.public_jwk(_keys.generate_private_key("ed25519"))
    expired = _token.mint(_keys.load_private_key(open(key, "rb").read()), issuer=ISSUER, subject="edge-01",
                          now=int(time.time()) - 7200).token
    with open(os.path.join(root, "token"), "w") as handle:
        handle.write(expired)
    os.chmod(os.path.join(root, "token"), 0o600)
    run("jwks_publish", {"keys": [made["jwk"], other], "dest": os.path.join(root, "jwks.json"), "issuer": ISSUER,
                         "jwks_uri": JWKS_URI, "discovery_dest": os.path.join(root, "openid-configuration")}, capsys)
    os.chmod(os.path.join(root, "jwks.json"), 0o600)
    return {"root": root, "key": key, "cert": cert, "jwk": made["jwk"], "other": other}


def _check_mode_cases(tree):
    root = tree["root"]
    key, cert = tree["key"], tree["cert"]
    token_args = {"private_key_path": key, "issuer": ISSUER, "subject": "edge-01"}
    return [
        ("jwt_keypair", {"path": os.path.join(root, "new.pem"), "certificate_path": os.path.join(root, "new.crt")}),
        ("jwt_keypair", {"path": key, "certificate_path": cert, "regenerate": "always", "backup": True}),
        ("jwt_keypair", {"path": key, "type": "rsa", "size": 2048, "regenerate": "partial_idempotence"}),
        ("jwt_keypair", {"path": key, "passphrase": "a new passphrase for check mode"}),
        ("jwt_keypair", {"path": key, "mode": "0640", "certificate_path": cert, "certificate_subject": "renamed"}),
        ("jwt_keypair", {"path": key, "certificate_path": cert, "state": "absent", "backup": True}),
        ("jwt_token", dict(token_args, dest=os.path.join(root, "token"))),
        ("jwt_token", dict(token_args, dest=os.path.join(root, "new-token"), mode="0640")),
        ("jwt_token", dict(token_args, dest=os.path.join(root, "token"), mode="0644", subject="someone-else")),
        ("jwt_token", dict(token_args)),
        ("jwks_publish", {"keys": [tree["jwk"]], "dest": os.path.join(root, "jwks.json"), "mode": "0644"}),
        ("jwks_publish", {"keys": [tree["jwk"]], "dest": os.path.join(root, "jwks.json"), "merge": True,
                          "revoke": [tree["other"]["kid"]], "issuer": ISSUER + "/other", "jwks_uri": JWKS_URI,
                          "discovery_dest": os.path.join(root, "openid-configuration")}),
        ("jwks_publish", {"keys": [tree["jwk"]], "dest": os.path.join(root, "new-jwks.json"), "issuer": ISSUER,
                          "jwks_uri": JWKS_URI, "discovery_dest": os.path.join(root, "new-discovery")}),
    ]


def test_check_mode_changes_nothing(used_tree, capsys):
    cases = _check_mode_cases(used_tree)
    before = snapshot(used_tree["root"])
    changed = []
    for module_name, args in cases:
        result = run(module_name, args, capsys, check_mode=True, diff=True)
        changed.append(result["changed"])
        assert snapshot(used_tree["root"]) == before, "%s %r changed the tree in check mode" % (module_name, args)
    # Every case but the token without dest would change something: check mode had work to skip.
    assert changed == [True] * 9 + [False] + [True] * 3
    # The same runs without check mode do change the tree (the cases are real).
    for module_name, args in cases[:1]:
        run(module_name, args, capsys)
    assert snapshot(used_tree["root"]) != before


# --------------------------------------------------------------------------------------
# jwt_keyring: private files whatever the umask, check mode changes nothing
# --------------------------------------------------------------------------------------

@pytest.fixture
def ring_clock(monkeypatch):
    monkeypatch.setattr(_keyring, "time", SteppingClock())


def ring(capsys, path, action, check_mode=False, **args):
    args = dict(args, path=path, action=action, propagation_window=0, token_max_lifetime=0, clock_skew=0)
    return run("jwt_keyring", args, capsys, check_mode=check_mode, diff=True)


def _rotated_to(capsys, path, step):
    """A key at ``path`` with a ring whose rotation reached ``step`` (staged, published or activated)."""
    run("jwt_keypair", {"path": path}, capsys)
    staged = ring(capsys, path, "rotate")
    if step == "staged":
        return staged
    published = ring(capsys, path, "mark_published", published_kids=staged["kids"])
    if step == "published":
        return published
    return ring(capsys, path, "activate")


def test_keyring_files_are_private_whatever_the_umask(tmp_path, capsys, umask, ring_clock):
    key = str(tmp_path / "key.pem")
    activated = _rotated_to(capsys, key, "activated")
    retiring = [entry["kid"] for entry in activated["keys"] if entry["state"] == "retiring"]
    staged = ring(capsys, key, "stage")
    nxt = [entry["kid"] for entry in staged["keys"] if entry["state"] == "next"]
    assert len(retiring) == 1 and len(nxt) == 1
    expected = {
        "key.pem": 0o600, ".key.pem.lock": 0o600, "key.pem.ring.json": 0o600,
        "key.pem." + retiring[0]: 0o600,  # the previous key, kept until it retires
        "key.pem." + nxt[0]: 0o600,  # the staged next key
    }
    found = dict((name, mode_of(os.path.join(str(tmp_path), name))) for name in os.listdir(str(tmp_path)))
    assert found == expected, "umask %03o" % umask
    # A retired key kept as a backup stays private too.
    retired = ring(capsys, key, "retire", keep_retired_keys=True)
    assert [item["step"] for item in retired["performed"]] == ["retire"]
    assert mode_of(key + "." + retiring[0]) == 0o600


@pytest.fixture
def ring_tree(tmp_path, capsys, ring_clock):
    """Keys in every ring state that makes an action change something."""
    root = str(tmp_path / "rings")
    os.makedirs(root)
    paths = dict((name, os.path.join(root, name + ".pem")) for name in ("bare", "settled", "published", "retiring"))
    run("jwt_keypair", {"path": paths["bare"]}, capsys)  # no ring yet: any action adopts it
    run("jwt_keypair", {"path": paths["settled"]}, capsys)
    ring(capsys, paths["settled"], "auto")  # one active key: stage and revoke change it
    _rotated_to(capsys, paths["published"], "published")  # a next key due for activation
    _rotated_to(capsys, paths["retiring"], "activated")  # a retiring key due for retirement
    return root, paths


def _keyring_check_mode_cases(paths):
    return [
        (paths["bare"], "auto", {}),
        (paths["settled"], "stage", {}),
        (paths["settled"], "rotate", {}),
        (paths["published"], "activate", {}),
        (paths["published"], "auto", {}),
        (paths["published"], "mark_published", {"published_kids": []}),
        (paths["retiring"], "retire", {}),
        (paths["retiring"], "auto", {"keep_retired_keys": True}),
        (paths["retiring"], "revoke", {}),
        (paths["published"], "revoke", {"remove_private_keys": True}),
    ]


def test_keyring_check_mode_changes_nothing(ring_tree, capsys):
    root, paths = ring_tree
    cases = _keyring_check_mode_cases(paths)
    before = snapshot(root)
    for path, action, args in cases:
        result = ring(capsys, path, action, check_mode=True, **args)
        assert result["changed"] is True, "%s on %s: check mode saw nothing to do" % (action, path)
        assert result["performed"], (action, path)
        assert snapshot(root) == before, "%s %r on %s changed the tree in check mode" % (action, args, path)
    # The same runs without check mode do change the tree (the cases are real): the first case of each ring.
    done = set()
    for path, action, args in cases:
        if path not in done:
            done.add(path)
            assert ring(capsys, path, action, **args)["changed"] is True, (action, path)
            assert snapshot(root) != before, (action, path)
            before = snapshot(root)
