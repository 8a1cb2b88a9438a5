# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the key ring state machine (module_utils/_keyring.py).

Time is simulated (``now``), so the windows are exact and nothing sleeps. The crash tests
stop a run before each of its writes in turn (every file operation of a ring is one atomic
write or removal), re-run the same step, and check after every stop and every step that

* the key at the signing path is published long enough (or is the first key), and
* every key that signed a token that may still be presented is in what the host publishes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import time

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring
from ansible_collections.selfjwt.kyma.plugins.module_utils._keyring import KeyringError, Timing

W, L, S = 100, 50, 5          # propagation window, token max lifetime, clock skew
RETIRE = L + S + W
T0 = 1_800_000_000


class Crash(Exception):
    """The process was killed."""


class CrashingIO(_keyring.RingFiles):
    """Performs ``budget`` file operations, then 'dies' before the next one."""

    def __init__(self, budget):
        self.budget = budget
        self.ops = 0

    def _tick(self):
        if self.ops >= self.budget:
            raise Crash()
        self.ops += 1

    def write(self, path, data, mode, what, uid=None, gid=None):
        self._tick()
        super(CrashingIO, self).write(path, data, mode, what, uid, gid)

    def remove(self, path, what):
        self._tick()
        return super(CrashingIO, self).remove(path, what)


class CountingIO(CrashingIO):
    def __init__(self):
        super(CountingIO, self).__init__(10 ** 6)


@pytest.fixture
def key_path(tmp_path):
    path = str(tmp_path / "signing.pem")
    _keypair.ensure_present(_keypair.KeypairSpec(path=path))
    return path


def spec(path, **kwargs):
    return _keypair.KeypairSpec(path=path, **kwargs)


def kid_at(path):
    data = _files.read_bytes(path, "key")
    return None if data is None else _jwk.key_thumbprint(_keys.load_private_key(data))


def jwk_at(path):
    return _jwk.public_jwk(_keys.load_private_key(_files.read_bytes(path, "key")))


class Fleet(object):
    """One host, its publications (time, kids) and the kids seen at its signing path."""

    def __init__(self, path, timing=None, keep_retired=False):
        self.path = path
        self.timing = timing or Timing(W, L, S)
        self.keep_retired = keep_retired
        self.first_kid = kid_at(path)
        self.published = []
        self.signed = [(T0 - 10 ** 6, self.first_kid)]

    def run(self, action, now, io=None, **kwargs):
        result = _keyring.run(spec(self.path), action, self.timing, now=now, keep_retired=self.keep_retired,
                              io=io, **kwargs)
        self.observe(now)
        return result

    def offered(self):
        """What edge_keys publishes for the host now (jwt_keypair's jwks)."""
        if not os.path.exists(self.path):
            return []
        return [jwk["kid"] for jwk in _keyring.jwks_for_key(self.path, jwk_at(self.path))]

    def publish(self, now, io=None):
        kids = self.offered()
        self.check_live_keys(now, kids)
        self.published.append((now, set(kids)))
        return self.run("mark_published", now + 1, io=io, published_kids=kids)

    def observe(self, now):
        kid = kid_at(self.path)
        if kid is not None and kid != self.signed[-1][1]:
            self.signed.append((now, kid))
        self.check_signing_key(now)
        self.check_live_keys(now, self.offered() if kid is not None else None)

    def check_signing_key(self, now):
        """The key at the signing path is the first key or was published since <= now - W."""
        kid = kid_at(self.path)
        if kid is None or kid == self.first_kid:
            return
        since = None
        for when, kids in self.published:
            if kid in kids:
                since = when if since is None else since
            else:
                since = None
        assert since is not None and since <= now - W, "kid %s signs at %d but is not published since %d" % (
            kid, now, now - W)

    def check_live_keys(self, now, offered):
        """Every kid that signed at some time s with s + L + S >= now is offered."""
        if offered is None:
            return
        for index, (start, kid) in enumerate(self.signed):
            end = self.signed[index + 1][0] if index + 1 < len(self.signed) else now
            if end + L + S >= now:
                assert kid in offered, "kid %s may verify live tokens but is not published at %d" % (kid, now)


def rotation_steps():
    """The steps of playbooks/rotate.yml with waits: (name, time, callable(fleet, now, io))."""
    return [
        ("adopt+publish", T0, lambda f, now, io: f.run("auto", now, io=io)),
        ("publish0", T0 + 1, lambda f, now, io: f.publish(now, io=io)),
        ("rotate", T0 + 10, lambda f, now, io: f.run("rotate", now, io=io)),
        ("publish1", T0 + 11, lambda f, now, io: f.publish(now, io=io)),
        ("activate", T0 + 12 + W + 1, lambda f, now, io: f.run("auto", now, io=io)),
        ("retire", T0 + 13 + W + 1 + RETIRE + 1, lambda f, now, io: f.run("auto", now, io=io)),
        ("publish2", T0 + 15 + W + RETIRE + 2, lambda f, now, io: f.publish(now, io=io)),
    ]


def state_of(path):
    with open(_keyring.state_path(path)) as handle:
        return json.load(handle)


def states(path):
    return sorted((entry["state"], entry["kid"]) for entry in state_of(path)["keys"])


# --------------------------------------------------------------------------------------
# A whole rotation
# --------------------------------------------------------------------------------------

def test_full_rotation_records_every_step(key_path):
    fleet = Fleet(key_path)
    first = kid_at(key_path)
    results = [step(fleet, now, None) for _name, now, step in rotation_steps()]
    entries = dict((entry["kid"], entry) for entry in state_of(key_path)["keys"])
    second = kid_at(key_path)
    assert second != first
    assert entries[first]["state"] == "retired" and entries[second]["state"] == "active"
    for name in ("published_at", "activated_at", "deactivated_at", "retired_at", "withdrawn_at"):
        assert entries[first].get(name), name
    for name in ("staged_at", "published_at", "activated_at"):
        assert entries[second].get(name), name
    # Activation only after a full propagation window, retirement only after L + S + W.
    assert _keyring.parse_iso(entries[second]["activated_at"]) >= _keyring.parse_iso(entries[second]["published_at"]) + W
    assert _keyring.parse_iso(entries[first]["retired_at"]) >= _keyring.parse_iso(entries[first]["deactivated_at"]) + RETIRE
    assert fleet.published[1][1] == {first, second} and fleet.published[-1][1] == {second}
    assert not os.path.exists(_keyring.key_file(key_path, first))
    assert results[-1]["in_progress"] is False
    mode = stat.S_IMODE(os.stat(_keyring.state_path(key_path)).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600


def test_each_call_is_idempotent(key_path):
    fleet = Fleet(key_path)
    for _name, now, step in rotation_steps():
        step(fleet, now, None)
        again = fleet.run("auto", now)
        assert again["changed"] is False, _name


@pytest.mark.parametrize("index", range(len(rotation_steps())))
def test_killed_before_every_write_converges(key_path, index):
    """Kill the step ``index`` before each of its writes, re-run it, finish the rotation."""
    counter_path = key_path + ".count"
    steps = rotation_steps()
    # How many writes the step makes when it is not killed.
    reference = Fleet(_fresh_copy(key_path, counter_path))
    for position, (_name, now, step) in enumerate(steps):
        io = CountingIO() if position == index else None
        step(reference, now, io)
        if position == index:
            writes = io.ops
    assert writes >= 1 or steps[index][0] == "publish0"
    for budget in range(writes):
        path = _fresh_copy(key_path, "%s.%d" % (key_path, budget))
        fleet = Fleet(path)
        for position, (_name, now, step) in enumerate(steps):
            if position == index:
                with pytest.raises(Crash):
                    step(fleet, now, CrashingIO(budget))
                fleet.observe(now)
                # The re-run of the same step (a later moment: the operator starts it again).
                step(fleet, now + 1, None)
            else:
                step(fleet, now, None)
        final = state_of(path)
        active = [entry for entry in final["keys"] if entry["state"] == "active"]
        assert len(active) == 1 and active[0]["kid"] == kid_at(path) != fleet.first_kid
        assert not [entry for entry in final["keys"] if entry["state"] in ("next", "retiring")]
        leftovers = [name for name in os.listdir(os.path.dirname(path))
                     if name.startswith(os.path.basename(path) + ".") and len(name) == len(os.path.basename(path)) + 44]
        assert leftovers == []


def _fresh_copy(key_path, new_path):
    with open(key_path, "rb") as handle:
        data = handle.read()
    _files.write_atomic(new_path, data)
    return new_path


# --------------------------------------------------------------------------------------
# Refusals and single steps
# --------------------------------------------------------------------------------------

def test_activate_refuses_unpublished_and_too_recent(key_path):
    fleet = Fleet(key_path)
    fleet.run("stage", T0)
    with pytest.raises(KeyringError, match="has not been published yet"):
        fleet.run("activate", T0 + 10 * W)
    fleet.publish(T0 + 1)
    with pytest.raises(KeyringError, match="propagation_window 100 s"):
        fleet.run("activate", T0 + W)
    before = kid_at(key_path)
    result = fleet.run("activate", T0 + 2 + W)
    assert result["signing_kid"] == kid_at(key_path) != before
    assert [item["step"] for item in result["performed"]] == ["activate"]


def test_unpublished_next_key_starts_its_window_again(key_path):
    fleet = Fleet(key_path)
    fleet.run("stage", T0)
    fleet.publish(T0)
    nxt = [e["kid"] for e in state_of(key_path)["keys"] if e["state"] == "next"][0]
    # A later publication without the next key (someone published an old JWKS).
    result = fleet.run("mark_published", T0 + 50, published_kids=[fleet.first_kid])
    assert {"step": "unpublished", "kid": nxt} in result["performed"]
    assert fleet.run("auto", T0 + 2 * W)["signing_kid"] == fleet.first_kid
    fleet.publish(T0 + 2 * W)
    assert fleet.run("auto", T0 + 3 * W + 2)["signing_kid"] == nxt


def test_retire_waits_for_lifetime_skew_and_window(key_path):
    fleet = Fleet(key_path)
    fleet.run("stage", T0)
    fleet.publish(T0)
    fleet.run("activate", T0 + W + 1)
    deactivated = T0 + W + 1
    assert fleet.run("retire", deactivated + RETIRE - 1)["changed"] is False
    assert ("retiring", fleet.first_kid) in states(key_path)
    assert fleet.run("retire", deactivated + RETIRE)["performed"] == [{"step": "retire", "kid": fleet.first_kid}]


def test_keep_retired_keys_as_backup(key_path):
    fleet = Fleet(key_path, keep_retired=True)
    for _name, now, step in rotation_steps():
        step(fleet, now, None)
    backup = _keyring.key_file(key_path, fleet.first_kid)
    assert kid_at(backup) == fleet.first_kid
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    entry = [e for e in state_of(key_path)["keys"] if e["kid"] == fleet.first_kid][0]
    assert entry["backup_file"] == backup and entry["state"] == "retired"


def test_max_key_age_stages_one_window_before_the_age(key_path):
    timing = Timing(W, L, S, max_key_age=10 * W)
    fleet = Fleet(key_path, timing=timing)
    fleet.run("auto", T0)
    assert fleet.run("auto", T0 + 9 * W - 1)["changed"] is False
    result = fleet.run("auto", T0 + 9 * W)
    assert [item["step"] for item in result["performed"]] == ["stage"]
    assert result["next_step"] == "activate" and result["next_step_at"] is None
    assert fleet.run("auto", T0 + 9 * W + 1)["changed"] is False


def test_max_key_age_must_exceed_the_window(key_path):
    with pytest.raises(KeyringError, match="longer than propagation_window"):
        Timing(W, L, S, max_key_age=W)


def test_rotate_does_not_start_a_second_rotation(key_path):
    fleet = Fleet(key_path)
    fleet.run("rotate", T0)
    first_next = [e["kid"] for e in state_of(key_path)["keys"] if e["state"] == "next"]
    fleet.run("rotate", T0 + 1)
    fleet.publish(T0 + 2)
    fleet.run("rotate", T0 + W + 3)   # activates
    result = fleet.run("rotate", T0 + W + 4)   # still retiring: continues, stages nothing
    assert result["changed"] is False and [e for e in state_of(key_path)["keys"] if e["state"] == "next"] == []
    assert kid_at(key_path) == first_next[0]


def test_status_and_check_mode_write_nothing(key_path):
    listing = sorted(os.listdir(os.path.dirname(key_path)))
    result = _keyring.run(spec(key_path), "status", Timing(W, L, S), now=T0)
    assert result["changed"] is False and result["would_change"] is True
    assert result["kids"] == [kid_at(key_path)]
    result = _keyring.run(spec(key_path), "rotate", Timing(W, L, S), now=T0, check_mode=True)
    assert result["changed"] is True and [i["step"] for i in result["performed"]] == ["adopt", "stage"]
    assert sorted(os.listdir(os.path.dirname(key_path))) == listing


def test_publish_jwks_without_and_with_ring(key_path):
    jwk = jwk_at(key_path)
    assert _keyring.jwks_for_key(key_path, jwk) == [jwk]
    fleet = Fleet(key_path)
    fleet.run("stage", T0)
    kids = [item["kid"] for item in _keyring.jwks_for_key(key_path, jwk)]
    assert kids[0] == jwk["kid"] and len(kids) == 2
    for item in _keyring.jwks_for_key(key_path, jwk):
        assert not set(item) & set(_jwk.PRIVATE_JWK_MEMBERS)


def test_revoke_takes_every_key_out_and_removes_private_keys(key_path):
    fleet = Fleet(key_path)
    fleet.run("stage", T0)
    # Revocation drops live keys on purpose: run it without the fleet's checks.
    result = _keyring.run(spec(key_path), "revoke", Timing(W, L, S), now=T0 + 1)
    assert result["jwks"] == [] and len([i for i in result["performed"] if i["step"] == "revoke"]) == 2
    assert _keyring.jwks_for_key(key_path, jwk_at(key_path)) == []
    # Signing with a revoked key is refused.
    with pytest.raises(KeyringError, match="revoked in its key ring"):
        fleet.run("auto", T0 + 2)
    result = _keyring.run(spec(key_path), "revoke", Timing(W, L, S), now=T0 + 3, remove_private_keys=True)
    assert not os.path.exists(key_path)
    assert [name for name in os.listdir(os.path.dirname(key_path)) if len(name) == len("signing.pem.") + 43] == []
    again = _keyring.run(spec(key_path), "revoke", Timing(W, L, S), now=T0 + 4, remove_private_keys=True)
    assert again["changed"] is False
    # A new key made by edge_keys afterwards is adopted; revoked kids stay out.
    _keypair.ensure_present(_keypair.KeypairSpec(path=key_path))
    result = _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0 + 5)
    assert result["kids"] == [kid_at(key_path)]
    assert len(result["warnings"]) == 1 and "replaced outside its key ring" in result["warnings"][0]


def test_key_replaced_outside_the_ring_keeps_the_old_key_published(key_path):
    fleet = Fleet(key_path)
    fleet.run("auto", T0)
    old = kid_at(key_path)
    _keypair.ensure_present(_keypair.KeypairSpec(path=key_path, regenerate="always"))
    # The new key signs unpublished (not the ring's doing): run without the fleet's checks.
    result = _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0 + 1)
    assert set(result["kids"]) == {old, kid_at(key_path)}
    assert ("retiring", old) in states(key_path)


def test_orphan_key_file_of_a_killed_stage_is_adopted_or_removed(key_path):
    fleet = Fleet(key_path)
    fleet.run("auto", T0)
    with pytest.raises(Crash):
        fleet.run("stage", T0 + 1, io=CrashingIO(1))
    result = fleet.run("status", T0 + 2)
    assert [i["step"] for i in result["performed"]] == ["stage"] and result["performed"][0]["recovered"]
    orphan_kid = result["performed"][0]["kid"]
    result = fleet.run("auto", T0 + 3)
    assert ("next", orphan_kid) in states(key_path)


def test_foreign_files_are_left_alone(key_path):
    fleet = Fleet(key_path)
    decoy = _keyring.key_file(key_path, "A" * 43)
    _files.write_atomic(decoy, b"not a key")
    passphrase_file = key_path + ".passphrase"
    _files.write_atomic(passphrase_file, b"secret")
    result = fleet.run("auto", T0)
    assert os.path.exists(decoy) and os.path.exists(passphrase_file)
    assert any("does not hold the key" in warning for warning in result["warnings"])


def test_encrypted_ring_keys(tmp_path):
    path = str(tmp_path / "enc.pem")
    _keypair.ensure_present(_keypair.KeypairSpec(path=path, passphrase="pw-123456"))
    timing = Timing(W, L, S)
    _keyring.run(spec(path, passphrase="pw-123456"), "stage", timing, now=T0)
    nxt = [e["kid"] for e in state_of(path)["keys"] if e["state"] == "next"][0]
    assert b"ENCRYPTED" in _files.read_bytes(_keyring.key_file(path, nxt), "key")
    with pytest.raises(_jose.JoseError, match="encrypted"):
        _keyring.run(spec(path), "status", timing, now=T0)


@pytest.mark.parametrize("content, message", [
    (b"{", "not valid JSON"),
    (b'{"version": 9, "keys": []}', "not a version 1"),
    (b'{"version": 1, "keys": [{"kid": "a", "state": "odd", "jwk": {}}]}', "invalid key entry"),
    (b'{"version": 1, "keys": [{"kid": "%s", "state": "next", "jwk": {}, "staged_at": "yesterday"}]}' % (b"A" * 43),
     "UTC time"),
    # Nested deeper than the JSON decoder goes: a KeyringError, not a RecursionError.
    (b'{"version": 1, "keys": ' + b"[" * 100000 + b"]" * 100000 + b"}", "not valid JSON"),
])
def test_damaged_state_is_refused_and_left_alone(key_path, content, message):
    _files.write_atomic(_keyring.state_path(key_path), content)
    with pytest.raises(KeyringError, match=message):
        _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0)
    assert _files.read_bytes(_keyring.state_path(key_path), "state") == content


@pytest.mark.parametrize("kwargs, message", [
    ({"action": "mark_published"}, "needs published_kids"),
    ({"action": "auto", "published_kids": []}, "only used with action=mark_published"),
    ({"action": "explode"}, "action must be one of"),
])
def test_bad_arguments(key_path, kwargs, message):
    with pytest.raises(KeyringError, match=message):
        _keyring.run(spec(key_path), timing=Timing(W, L, S), now=T0, **kwargs)


def test_fixed_kid_is_refused(key_path):
    with pytest.raises(KeyringError, match="thumbprint"):
        _keyring.run(spec(key_path, kid="fixed"), "status", Timing(W, L, S), now=T0)


def test_no_key_no_ring(tmp_path):
    with pytest.raises(KeyringError, match="no signing key"):
        _keyring.run(spec(str(tmp_path / "none.pem")), "auto", Timing(W, L, S), now=T0)


def test_timing_rejects_negative_values():
    with pytest.raises(KeyringError, match="propagation_window"):
        Timing(-1, L, S)


def test_stale_temporary_key_files_of_killed_writers_are_removed(key_path):
    directory = os.path.dirname(key_path)
    stale = os.path.join(directory, ".signing.pem.%s.abc123.tmp" % ("B" * 43))
    fresh = os.path.join(directory, ".signing.pem.%s.def456.tmp" % ("C" * 43))
    state_tmp = os.path.join(directory, ".signing.pem.ring.json.xyz789.tmp")
    for path in (stale, fresh, state_tmp):
        _files.write_atomic(path, b"-----BEGIN PRIVATE KEY-----\npartial")
    old = time.time() - 3600   # _files judges staleness by the real clock
    os.utime(stale, (old, old))
    os.utime(state_tmp, (old, old))
    _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0)
    assert not os.path.exists(stale) and not os.path.exists(state_tmp)
    assert os.path.exists(fresh)   # may belong to a writer that is still running


def _edit_state(key_path, edit):
    path = _keyring.state_path(key_path)
    state = json.loads(_files.read_bytes(path, "state").decode("utf-8"))
    edit(state)
    _files.write_atomic(path, json.dumps(state).encode("utf-8"))


@pytest.mark.parametrize("edit, message", [
    # A private member would be published and returned (jwks, kids) as it is.
    (lambda jwk, other: jwk.update(d="pRiV-0123456789abcdef"), r"private or secret key material \(d\)"),
    (lambda jwk, other: jwk.update(kty="oct", k="pRiV-0123456789abcdef"), "private or secret key material"),
    (lambda jwk, other: jwk.pop("kid"), "is named None"),
    (lambda jwk, other: jwk.update(other), "is named"),
    (lambda jwk, other: jwk.update(crv="P-384"), "coordinates must be 48 bytes"),
    # Published as it is: members the ring never writes, values JSON has no text for.
    (lambda jwk, other: jwk.update(__proto__=float("nan")), "not a normalized public JWK"),
    (lambda jwk, other: jwk.update(key_ops=["sign"]), "not a normalized public JWK"),
    (lambda jwk, other: jwk.update(x=jwk["x"] + "="), "not base64url"),
])
def test_state_whose_jwk_is_not_the_entrys_public_key_is_refused(key_path, tmp_path, edit, message):
    _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0)
    other = _jwk.public_jwk(_keys.generate_private_key("ec"))
    _edit_state(key_path, lambda state: edit(state["keys"][0]["jwk"], other))
    with pytest.raises(KeyringError, match=message) as info:
        _keyring.run(spec(key_path), "status", Timing(W, L, S), now=T0)
    assert "pRiV" not in str(info.value)
    with pytest.raises(KeyringError, match=message):
        _keyring.jwks_for_key(key_path, jwk_at(key_path))


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "9000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                                    "1969-12-31T23:59:59Z"])
def test_state_times_outside_1970_to_9000_are_refused(key_path, moment):
    """A time near 9999 plus a window has no ISO 8601 text (OverflowError in next_step_at)."""
    _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0)
    _edit_state(key_path, lambda state: state["keys"][0].update(activated_at=moment))
    with pytest.raises(KeyringError, match="between 1970 and 9000"):
        _keyring.run(spec(key_path), "status", Timing(W, L, S, max_key_age=10 ** 9), now=T0)


def test_kid_with_a_final_line_break_is_refused(key_path):
    """A regular expression's ``$`` also matches before a final newline: 'thumbprint\\n' is not a thumbprint.

    Such a kid would name a key file (and, for a key in a PKCS#11 token, a label) with a line
    break in it, and would be published as it is.
    """
    _keyring.run(spec(key_path), "auto", Timing(W, L, S), now=T0)
    other = _keys.generate_private_key("ec")
    kid = _jwk.key_thumbprint(other) + "\n"
    _edit_state(key_path, lambda state: state["keys"].append({
        "kid": kid, "state": "retiring", "jwk": _jwk.public_jwk(other, kid=kid),
        "deactivated_at": "2026-01-31T12:00:00Z"}))
    with pytest.raises(KeyringError, match="which is not an RFC 7638 thumbprint"):
        _keyring.run(spec(key_path), "status", Timing(W, L, S), now=T0)
    with pytest.raises(KeyringError, match="which is not an RFC 7638 thumbprint"):
        _keyring.key_file(key_path, kid)
