# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the jwt_keyring module (and the jwks result of jwt_keypair): main() in-process."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair, jwt_keyring
from helpers import SteppingClock, run_module_main  # pylint: disable=import-error

PASSPHRASE = "a long machine-made passphrase 77aa"


def call(capsys, module, args, check_mode=False, diff=False):
    out, result, _code = run_module_main(module, args, capsys, check_mode=check_mode, diff=diff)
    assert "PRIVATE KEY" not in out and PASSPHRASE not in out
    return result


@pytest.fixture
def key(tmp_path, capsys):
    path = str(tmp_path / "signing.pem")
    call(capsys, jwt_keypair, {"path": path, "passphrase": PASSPHRASE})
    return path


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = SteppingClock()
    monkeypatch.setattr(_keyring, "time", fake)
    return fake


def ring(capsys, path, **args):
    args.setdefault("passphrase", PASSPHRASE)
    return call(capsys, jwt_keyring, dict(args, path=path, propagation_window=0, token_max_lifetime=0,
                                          clock_skew=0), diff=True)


def test_rotation_through_the_module(key, capsys):
    first = ring(capsys, key, action="status")
    assert first["changed"] is False and first["would_change"] is True and len(first["kids"]) == 1
    old = first["kids"][0]
    staged = ring(capsys, key, action="rotate")
    assert [item["step"] for item in staged["performed"]] == ["adopt", "stage"]
    assert len(staged["jwks"]) == 2 and staged["signing_kid"] == old and staged["publish_needed"] is True
    assert staged["next_step"] == "activate" and staged["next_step_at"] is None
    assert staged["diff"]["before"] == {"keys": []} and len(staged["diff"]["after"]["keys"]) == 2
    assert os.stat(staged["state_file"]).st_mode & 0o777 == 0o600
    # jwt_keypair publishes both generations while the rotation runs.
    keypair = call(capsys, jwt_keypair, {"path": key, "passphrase": PASSPHRASE})
    assert keypair["changed"] is False and sorted(j["kid"] for j in keypair["jwks"]) == sorted(staged["kids"])
    marked = ring(capsys, key, action="mark_published", published_kids=staged["kids"])
    assert sorted(item["step"] for item in marked["performed"]) == ["published", "published"]
    assert ring(capsys, key, action="mark_published", published_kids=staged["kids"])["changed"] is False
    activated = ring(capsys, key, action="auto")
    new = activated["signing_kid"]
    assert new != old and activated["performed"][0]["step"] == "activate"
    # With windows of 0 s the old key retires on the next run; the run after that changes nothing.
    retired = ring(capsys, key, action="auto")
    assert retired["performed"] == [{"step": "retire", "kid": old}] and retired["kids"] == [new]
    assert ring(capsys, key, action="mark_published", published_kids=[new])["performed"] == [
        {"step": "withdrawn", "kid": old}]
    done = ring(capsys, key, action="auto")
    assert done["changed"] is False and done["in_progress"] is False
    assert [(k["kid"], k["state"]) for k in done["keys"]] == [(new, "active"), (old, "retired")]


def test_check_mode_changes_nothing(key, capsys):
    before = sorted(os.listdir(os.path.dirname(key)))
    result = call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "rotate"}, check_mode=True)
    assert result["changed"] is True and result["performed"][-1] == {"step": "stage", "kid": None}
    assert sorted(os.listdir(os.path.dirname(key))) == before


def test_activation_too_early_fails_clearly(key, capsys):
    call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "stage"})
    result = call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "activate"})
    assert result["failed"] is True
    assert result["msg"].startswith("cannot activate: the next key") and "Nothing was changed" in result["msg"]
    assert "Traceback" not in result["msg"]


@pytest.mark.parametrize("args, message", [
    ({"action": "mark_published"}, "published_kids"),
    ({"max_key_age": 60}, "longer than propagation_window"),
    ({"propagation_window": -5}, "propagation_window must be"),
    ({"action": "auto", "published_kids": ["x"]}, "only used with action=mark_published"),
])
def test_bad_options_fail_without_writing(key, capsys, args, message):
    result = call(capsys, jwt_keyring, dict({"path": key, "passphrase": PASSPHRASE}, **args))
    assert result["failed"] is True and message in result["msg"]
    assert not os.path.exists(_keyring.state_path(key))


def test_missing_key_fails_with_what_to_do(tmp_path, capsys):
    result = call(capsys, jwt_keyring, {"path": str(tmp_path / "none.pem")})
    assert result["failed"] is True and "create it first" in result["msg"]


def test_revoke_with_removal(key, capsys):
    result = call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "revoke",
                                        "remove_private_keys": True})
    assert result["jwks"] == [] and not os.path.exists(key)
    assert [item["step"] for item in result["performed"]] == ["adopt", "revoke", "remove_key"]
    again = call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "revoke",
                                       "remove_private_keys": True})
    assert again["changed"] is False


def test_a_run_that_wrote_its_state_and_then_failed_reports_what_it_performed(key, capsys, monkeypatch):
    def refuse_removal(_io, path, what):
        raise FileError("cannot remove %s %s: read-only file system" % (what, path))

    monkeypatch.setattr(_keyring.RingFiles, "remove", refuse_removal)
    result = call(capsys, jwt_keyring, {"path": key, "passphrase": PASSPHRASE, "action": "revoke",
                                        "remove_private_keys": True})
    assert result["failed"] is True and "read-only file system" in result["msg"]
    # The revocation was written to the ring state before the removal failed: the result says so.
    assert result["changed"] is True
    assert [item["step"] for item in result["performed"]] == ["adopt", "revoke"]
    assert [entry["state"] for entry in result["keys"]] == ["revoked"] and result["jwks"] == []
    with open(result["state_file"]) as handle:
        assert [entry["state"] for entry in json.load(handle)["keys"]] == ["revoked"]
    assert os.path.exists(key)


def test_keypair_jwks_without_ring_and_when_absent(tmp_path, capsys):
    path = str(tmp_path / "k.pem")
    present = call(capsys, jwt_keypair, {"path": path})
    assert present["jwks"] == [present["jwk"]]
    absent = call(capsys, jwt_keypair, {"path": path, "state": "absent"})
    assert absent["jwks"] == []
