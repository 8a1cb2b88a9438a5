# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the jwt_keypair module: runs main() in-process and reads its real JSON output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import ansible_collections
import pytest
import yaml

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair
from helpers import file_mode, read_file as read, rendered_doc, run_module_main  # pylint: disable=import-error

PASSPHRASE = "a long machine-made passphrase 5c1e"


def run_module(capsys, args, check_mode=False, diff=False):
    """Run the module like Ansible does and return (raw stdout, parsed result)."""
    return run_module_main(jwt_keypair, args, capsys, check_mode=check_mode, diff=diff)[:2]


def run(capsys, args, check_mode=False, diff=False):
    """Run the module and return its parsed result."""
    return run_module_main(jwt_keypair, args, capsys, check_mode=check_mode, diff=diff).result


def test_generates_a_key_with_mode_0600_and_returns_its_jwk(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    out, result = run_module(capsys, {"path": path}, diff=True)
    assert result["changed"] is True and "failed" not in result
    assert file_mode(path) == 0o600
    key = _keys.load_private_key(read(path))
    assert result["kid"] == _jwk.key_thumbprint(key)
    assert result["jwk"] == _jwk.public_jwk(key)
    assert result["jwk"]["alg"] == "ES256"
    assert result["type"] == "ec" and result["curve"] == "P-256" and result["size"] is None
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"]["kid"] == result["kid"]
    assert "PRIVATE KEY" not in out


def test_second_run_is_unchanged(tmp_path, capsys):
    args = {"path": str(tmp_path / "key.pem"), "certificate_path": str(tmp_path / "cert.pem")}
    first = run(capsys, args)
    second = run(capsys, args)
    assert second["changed"] is False
    assert second["jwk"] == first["jwk"]
    checked = run(capsys, args, check_mode=True)
    assert checked["changed"] is False and checked["jwk"] == first["jwk"]


def test_check_mode_creates_nothing(tmp_path, capsys):
    result = run(capsys, {"path": str(tmp_path / "key.pem"), "type": "rsa", "size": 2048}, check_mode=True)
    assert result["changed"] is True and result["kid"] is None
    assert result["type"] == "rsa" and result["size"] == 2048
    assert os.listdir(str(tmp_path)) == []


def test_file_mode_is_repaired_and_reported(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    run_module(capsys, {"path": path})
    before = read(path)
    os.chmod(path, 0o644)
    checked = run(capsys, {"path": path}, check_mode=True)
    assert checked["changed"] is True and file_mode(path) == 0o644
    result = run(capsys, {"path": path})
    assert result["changed"] is True and file_mode(path) == 0o600
    assert read(path) == before


def test_explicit_mode_is_used_from_the_start(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    result = run(capsys, {"path": path, "mode": "0640"})
    assert result["changed"] is True and file_mode(path) == 0o640
    result = run(capsys, {"path": path, "mode": "u=r,g=,o="})
    assert result["changed"] is True and file_mode(path) == 0o400
    result = run(capsys, {"path": path, "mode": "0400"})
    assert result["changed"] is False


def test_certificate_file_is_public_but_not_writable_by_others(tmp_path, capsys):
    cert = str(tmp_path / "cert.pem")
    result = run(capsys, {"path": str(tmp_path / "key.pem"), "certificate_path": cert, "mode": "0640"})
    assert file_mode(cert) == 0o644
    assert set(("x5c", "x5t", "x5t#S256")) <= set(result["jwk"])
    os.chmod(cert, 0o666)
    result = run(capsys, {"path": str(tmp_path / "key.pem"), "certificate_path": cert, "mode": "0640"})
    assert result["changed"] is True and file_mode(cert) == 0o644


def test_passphrase_is_masked_and_errors_have_no_traceback(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    run_module(capsys, {"path": path, "passphrase": PASSPHRASE})
    before = read(path)
    out, result = run_module(capsys, {"path": path, "passphrase": PASSPHRASE + "x"})
    assert result["failed"] is True
    assert "could not be decrypted" in result["msg"] and "regenerate=full_idempotence" in result["msg"]
    assert "exception" not in result and "Traceback" not in out
    assert PASSPHRASE not in out
    assert read(path) == before


def test_wrong_type_fails_with_instructions(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    run_module(capsys, {"path": path, "type": "ed25519"})
    before = read(path)
    result = run(capsys, {"path": path})
    assert result["failed"] is True
    assert "regenerate=partial_idempotence" in result["msg"]
    assert read(path) == before


def test_missing_directory_is_reported(tmp_path, capsys):
    result = run(capsys, {"path": str(tmp_path / "nope" / "key.pem")})
    assert result["failed"] is True
    assert result["msg"].endswith("does not exist: create it first, or set parent_mode (for example '0700') so "
                                  "that jwt_keypair creates it")


def test_certificate_subject_needs_certificate_path(tmp_path, capsys):
    result = run(capsys, {"path": str(tmp_path / "key.pem"), "certificate_subject": "edge"})
    assert result["failed"] is True and "certificate_path" in result["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_unknown_owner_fails_before_writing(tmp_path, capsys):
    result = run(capsys, {"path": str(tmp_path / "key.pem"), "owner": "no-such-user-3f9"})
    assert result["failed"] is True and "no-such-user-3f9" in result["msg"]
    assert not os.path.exists(str(tmp_path / "key.pem"))


def test_backup_and_absent(tmp_path, capsys):
    path = str(tmp_path / "key.pem")
    cert = str(tmp_path / "cert.pem")
    first = run(capsys, {"path": path, "certificate_path": cert})
    old_key, old_cert = read(path), read(cert)
    result = run(capsys, {"path": path, "certificate_path": cert, "regenerate": "always", "backup": True})
    assert result["kid"] != first["kid"]
    assert read(result["backup_file"]) == old_key and file_mode(result["backup_file"]) == 0o600
    assert read(result["certificate_backup_file"]) == old_cert
    result = run(capsys, {"path": path, "certificate_path": cert, "state": "absent"}, check_mode=True)
    assert result["changed"] is True and os.path.exists(path)
    result = run(capsys, {"path": path, "certificate_path": cert, "state": "absent"})
    assert result["changed"] is True
    assert not os.path.exists(path) and not os.path.exists(cert)
    result = run(capsys, {"path": path, "certificate_path": cert, "state": "absent"})
    assert result["changed"] is False


def test_backup_failure_is_a_clear_error(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "key.pem")
    run_module(capsys, {"path": path})
    before = read(path)

    real_write_atomic = _files.write_atomic

    def disk_full_for_backups(path, *args, **kwargs):
        if path.endswith("~"):
            raise _files.FileError("cannot write %s: No space left on device" % path)
        return real_write_atomic(path, *args, **kwargs)

    monkeypatch.setattr(_files, "write_atomic", disk_full_for_backups)
    out, result = run_module(capsys, {"path": path, "regenerate": "always", "backup": True})
    assert result["failed"] is True and "cannot make a backup" in result["msg"]
    assert "nothing was changed" in result["msg"] and "Traceback" not in out
    assert read(path) == before


# --------------------------------------------------------------------------------------
# The documentation is the interface: it must match the argument spec
# --------------------------------------------------------------------------------------

def test_documentation_matches_the_argument_spec():
    doc = {"options": rendered_doc(jwt_keypair)}
    spec = jwt_keypair.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        documented = doc["options"][name]
        assert documented["type"] == option["type"], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("choices") == option.get("choices"), name
        assert documented.get("required", False) == option.get("required", False), name


def test_secrets_are_no_log_and_choices_follow_the_core():
    spec = jwt_keypair.argument_spec()
    assert spec["passphrase"]["no_log"] is True and spec["old_passphrase"]["no_log"] is True
    assert sorted(spec["algorithm"]["choices"]) == sorted(_algorithms.ALGORITHMS)
    assert spec["regenerate"]["default"] == _keypair.DEFAULT_REGENERATE
    assert spec["curve"]["choices"] == list(_keypair.CURVES)
    assert spec["type"]["choices"] == list(_keypair.KEY_TYPES)


def test_return_documentation_covers_the_result(tmp_path, capsys):
    documented = set(yaml.safe_load(jwt_keypair.RETURN))
    result = run(capsys, {"path": str(tmp_path / "k.pem"), "backup": True, "regenerate": "always"})
    result = run(capsys, {"path": str(tmp_path / "k.pem"), "backup": True, "regenerate": "always"})
    assert set(result) - set(("changed", "diff", "invocation", "warnings", "deprecations")) <= documented, result.get("warnings")
    assert "backup_file" in result


def test_parent_mode_creates_the_directories_then_changes_nothing(tmp_path, capsys):
    key = tmp_path / "host" / "keys" / "signing.pem"
    args = {"path": str(key), "parent_mode": "0700"}
    result = run(capsys, args, check_mode=True, diff=True)
    assert result["changed"] is True and result["kid"] is None
    assert not (tmp_path / "host").exists()
    result = run(capsys, args)
    assert result["changed"] is True
    assert file_mode(str(tmp_path / "host")) == 0o700 and file_mode(str(key.parent)) == 0o700
    assert file_mode(str(key)) == 0o600
    assert run(capsys, args)["changed"] is False
    assert run(capsys, args, check_mode=True)["changed"] is False
    # A directory the module did not create (or that changed since) is left alone unless parent_update says so.
    os.chmod(str(key.parent), 0o750)
    assert run(capsys, args)["changed"] is False
    assert file_mode(str(key.parent)) == 0o750
    update = dict(args, parent_update=True)
    assert run(capsys, update, check_mode=True)["changed"] is True
    assert file_mode(str(key.parent)) == 0o750
    assert run(capsys, update)["changed"] is True
    assert file_mode(str(key.parent)) == 0o700
    assert run(capsys, update)["changed"] is False


def test_parent_mode_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    result = run(capsys, {"path": str(tmp_path / "file" / "keys" / "signing.pem"), "parent_mode": "0700"})
    assert result["failed"] is True and "is not a directory" in result["msg"]


def test_passphrase_file_is_stored_0600_and_removed_when_not_wanted(tmp_path, capsys):
    key, stored = str(tmp_path / "signing.pem"), str(tmp_path / "signing.pem.passphrase")
    args = {"path": key, "passphrase": PASSPHRASE, "passphrase_file": stored, "store_passphrase": True}
    out, result = run_module(capsys, args, diff=True)
    assert result["changed"] is True and PASSPHRASE not in out
    assert read(stored) == PASSPHRASE.encode() and file_mode(stored) == 0o600
    assert result["diff"]["after"]["passphrase_file"] == "present"
    assert run(capsys, args)["changed"] is False
    os.chmod(stored, 0o644)
    assert run(capsys, args)["changed"] is True and file_mode(stored) == 0o600
    without = dict(args, store_passphrase=False)
    assert run(capsys, without, check_mode=True)["changed"] is True and os.path.exists(stored)
    assert run(capsys, without)["changed"] is True and not os.path.exists(stored)
    assert run(capsys, without)["changed"] is False


def test_store_passphrase_needs_a_passphrase_and_a_file(tmp_path, capsys):
    result = run(capsys, {"path": str(tmp_path / "k.pem"), "store_passphrase": True,
                          "passphrase_file": str(tmp_path / "k.pass")})
    assert result["failed"] is True and "store_passphrase needs" in result["msg"]
    assert not os.path.exists(str(tmp_path / "k.pem"))


@pytest.mark.parametrize("target", ["missing", "file"])
def test_a_link_at_the_ring_state_is_refused_not_taken_for_no_ring(tmp_path, capsys, target):
    """A link where the ring state belongs is not "no ring": the ring code reads it and refuses it."""
    path = str(tmp_path / "signing.pem")
    assert run(capsys, {"path": path})["changed"] is True
    other = tmp_path / "other.json"
    if target == "file":
        other.write_text("{}")
    os.symlink(str(other), _keypair.ring_state_path(path))
    result = run(capsys, {"path": path})
    assert result["failed"] is True and "ring.json is a symbolic link" in result["msg"]


#: Runs jwt_keypair in a fresh Python process twice (a new key, then the same key again), then
#: prints the modules that process loaded: Ansible ships module_utils as source, so each one
#: the module imports is compiled on every host on every run.
LOADED_RUNNER = r"""
import json, sys
from ansible.module_utils.testing import patch_module_args
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair
for _run in range(2):
    with patch_module_args({"path": sys.argv[1], "_ansible_check_mode": False, "_ansible_diff": False}):
        try:
            jwt_keypair.main()
        except SystemExit:
            pass
print(json.dumps(sorted(sys.modules)))
"""

#: What a run for a key file does not need: the token, JWKS and key ring code, and PKCS#11.
NOT_FOR_A_KEY_FILE = ["ansible_collections.selfjwt.kyma.plugins.module_utils." + name
                      for name in ("_token", "_jws", "_jwks", "_keyring", "_keyring_pkcs11", "_keypair_pkcs11",
                                   "_pkcs11")] + ["pkcs11", "asn1crypto"]


def test_a_key_file_run_loads_no_token_jwks_ring_or_pkcs11_code(tmp_path):
    collections = os.path.dirname(os.path.abspath(list(ansible_collections.__path__)[0]))
    env = dict(os.environ, PYTHONPATH=collections + os.pathsep + os.environ.get("PYTHONPATH", ""))
    path = str(tmp_path / "signing.pem")
    done = subprocess.run([sys.executable, "-c", LOADED_RUNNER, path], env=env, cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    lines = [line for line in done.stdout.decode("utf-8").splitlines() if line.strip()]
    first, second, loaded = (json.loads(line) for line in lines)
    assert first["changed"] is True and second["changed"] is False and "failed" not in second
    assert second["jwks"] == [second["jwk"]] and not os.path.lexists(path + ".ring.json")
    assert [name for name in NOT_FOR_A_KEY_FILE if name in loaded] == []
    assert "ansible_collections.selfjwt.kyma.plugins.module_utils._keypair_module" in loaded
