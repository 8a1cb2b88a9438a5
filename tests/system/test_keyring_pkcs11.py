# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of key rings of keys in a PKCS#11 token (module_utils/_keyring_pkcs11.py).

Every test gets a SoftHSM2 token of its own (tests/tokens.py); nothing is mocked. Time is
simulated as in test_keyring.py. After every step the token's objects are checked: which
labels and ids exist, and which key signs through the label the signers use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jwk, _jws, _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring, _keyring_pkcs11, _pkcs11, _token
from ansible_collections.selfjwt.kyma.plugins.module_utils._keyring import KeyringError, Timing
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

W, L, S = 100, 50, 5          # propagation window, token max lifetime, clock skew
RETIRE = L + S + W
T0 = 1_800_000_000


@pytest.fixture
def hsm(tmp_path, monkeypatch):
    """A fresh SoftHSM2 token; the library is initialised again so that it reads the token's configuration."""
    return use_token(monkeypatch, SoftHSMToken(tmp_path, label="edge"))


@pytest.fixture
def ring_dir(tmp_path):
    directory = tmp_path / "ring"
    directory.mkdir(mode=0o700)
    return str(directory)


class Crash(Exception):
    """The process was killed."""


class CrashingTokenIO(_keyring_pkcs11.RingTokenIO):
    """Performs ``budget`` writes (state file, key generation, relabel, destroy), then 'dies' before the next one."""

    def __init__(self, budget):
        self.budget = budget
        self.ops = 0

    def _tick(self):
        if self.ops >= self.budget:
            raise Crash()
        self.ops += 1

    def write(self, path, data, mode, what, uid=None, gid=None):
        self._tick()
        super(CrashingTokenIO, self).write(path, data, mode, what, uid, gid)

    def remove(self, path, what):
        self._tick()
        return super(CrashingTokenIO, self).remove(path, what)

    def generate(self, session, spec, label):
        self._tick()
        return super(CrashingTokenIO, self).generate(session, spec, label)

    def relabel(self, session, key_id, label):
        self._tick()
        super(CrashingTokenIO, self).relabel(session, key_id, label)

    def destroy(self, session, key_id):
        self._tick()
        return super(CrashingTokenIO, self).destroy(session, key_id)


class CountingTokenIO(CrashingTokenIO):
    def __init__(self):
        super(CountingTokenIO, self).__init__(10 ** 6)


def session_of(hsm, write=False):
    return _pkcs11.open_session(_pkcs11.parse_uri(hsm.uri("any")), hsm.pin, write=write)


def objects(hsm, label=None):
    """Sorted (class, label, id hex) of the token's key objects (of ``label`` and its ring's labels, when given)."""
    found = []
    with session_of(hsm) as session:
        for object_class, name in ((ObjectClass.PRIVATE_KEY, "private"), (ObjectClass.PUBLIC_KEY, "public")):
            for obj in session.session.get_objects({Attribute.CLASS: object_class}):
                text = obj[Attribute.LABEL]
                if label is None or text == label or text.startswith(label + "."):
                    found.append((name, text, _pkcs11.hex_id(obj[Attribute.ID])))
    return sorted(found)


def private_labels(hsm, label):
    """{label: id hex} of the private keys of the ring of ``label``."""
    return dict((text, key_id) for kind, text, key_id in objects(hsm, label) if kind == "private")


def kids_labelled(hsm, label):
    """The kids of the private keys that carry ``label`` (what a signer with object=<label> finds)."""
    with session_of(hsm) as session:
        return sorted(_jwk.key_thumbprint(session.key(key_id=key_id))
                      for text, key_id in session.private_keys() if text == label)


def mint_kid(hsm, label):
    """Sign a token as jwt_token and the refresher do (the URI names only the label); its kid, verified."""
    session, key = _pkcs11.open_key(hsm.uri(label), pin=hsm.pin)
    try:
        result = _token.mint(key, "https://edge.example", "edge-01")
        _jws.verify(result.token, key.public_key(), result.header["alg"])
    finally:
        session.close()
    return result.kid


def spec(hsm, label="jwt", **kwargs):
    return _keypair.KeypairSpec(path=hsm.uri(label), **kwargs)


def make_key(hsm, label="jwt", key_type="ec", size=None, curve="P-256"):
    """The signing key that jwt_keypair (pkcs11_uri) makes: a key pair labelled ``label``."""
    with session_of(hsm, write=True) as session:
        key = session.generate(key_type, size, curve, label=label)
        return _jwk.key_thumbprint(key), _pkcs11.hex_id(key.key_id)


def state_of(path):
    with open(path) as handle:
        return json.load(handle)


def entries(path):
    return dict((entry["kid"], entry) for entry in state_of(path)["keys"])


class Host(object):
    """One ring in the token: its publications and the kids seen signing, checked after every step.

    The two rules of test_keyring.Fleet, for the token: every key that carries the label is the
    first key or was published at least W ago, and every kid that signed a token that may still
    be presented is in what the host publishes.
    """

    def __init__(self, hsm, directory, label="jwt", keep_retired=False, timing=None):
        self.hsm, self.label = hsm, label
        self.state_file = os.path.join(directory, label + ".ring.json")
        self.timing = timing or Timing(W, L, S)
        self.keep_retired = keep_retired
        self.first_kid, self.first_id = make_key(hsm, label)
        self.published = []
        self.signed = [(T0 - 10 ** 6, self.first_kid)]

    def run(self, action, now, io=None, checked=True, **kwargs):
        """One run; ``checked=False`` for runs that break the rules on purpose (revocation, foreign keys)."""
        try:
            return _keyring_pkcs11.run(spec(self.hsm, self.label), self.state_file, action, self.timing, now=now,
                                       keep_retired=self.keep_retired, io=io, pin=self.hsm.pin, **kwargs)
        finally:
            if checked:
                self.observe(now)

    def offered(self):
        """What edge_keys publishes for the host now: the ring's keys and the signing key's."""
        state = _keyring.read_state_file(self.state_file)
        kids = []
        with session_of(self.hsm) as session:
            for text, key_id in session.private_keys():
                if text == self.label:
                    jwk = _jwk.public_jwk(session.key(key_id=key_id))
                    kids.extend(item["kid"] for item in _keyring.jwks_with_state(state, jwk))
        return set(kids)

    def publish(self, now, io=None):
        kids = sorted(self.offered())
        self.check_live_keys(now, kids)
        self.published.append((now, set(kids)))
        return self.run("mark_published", now + 1, io=io, published_kids=kids)

    def observe(self, now):
        for kid in kids_labelled(self.hsm, self.label):
            if kid not in [item[1] for item in self.signed]:
                self.signed.append((now, kid))
            self.check_signing_key(now, kid)
        self.check_live_keys(now, self.offered())

    def check_signing_key(self, now, kid):
        if kid == self.first_kid:
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
        for index, (_start, kid) in enumerate(self.signed):
            end = self.signed[index + 1][0] if index + 1 < len(self.signed) else now
            if end + L + S >= now:
                assert kid in offered, "kid %s may verify live tokens but is not published at %d" % (kid, now)


def rotation_steps():
    """The steps of playbooks/rotate.yml with waits, as in test_keyring.py."""
    return [
        ("adopt", T0, lambda h, now, io: h.run("auto", now, io=io)),
        ("publish0", T0 + 1, lambda h, now, io: h.publish(now, io=io)),
        ("rotate", T0 + 10, lambda h, now, io: h.run("rotate", now, io=io)),
        ("publish1", T0 + 11, lambda h, now, io: h.publish(now, io=io)),
        ("activate", T0 + 12 + W + 1, lambda h, now, io: h.run("auto", now, io=io)),
        ("retire", T0 + 13 + W + 1 + RETIRE + 1, lambda h, now, io: h.run("auto", now, io=io)),
        ("publish2", T0 + 15 + W + RETIRE + 2, lambda h, now, io: h.publish(now, io=io)),
    ]


# --------------------------------------------------------------------------------------
# A whole rotation, step by step against the token's objects
# --------------------------------------------------------------------------------------

def test_full_rotation_moves_the_label_to_the_new_key(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    first, first_id = host.first_kid, host.first_id

    adopted = host.run("auto", T0)
    assert [item["step"] for item in adopted["performed"]] == ["adopt"]
    assert adopted["keys"][0]["object_id"] == first_id and adopted["state_file"] == host.state_file
    assert private_labels(hsm, "jwt") == {"jwt": first_id}
    state = state_of(host.state_file)
    with session_of(hsm) as session:
        serial = session.token_facts()["serial"]
    assert state["pkcs11"] == {"label": "jwt", "token_label": "edge", "token_serial": serial}
    assert oct(os.stat(host.state_file).st_mode & 0o777) == "0o600"

    host.publish(T0 + 1)
    staged = host.run("rotate", T0 + 10)
    second = staged["performed"][0]["kid"]
    assert [item["step"] for item in staged["performed"]] == ["stage"] and second != first
    second_id = entries(host.state_file)[second]["object_id"]
    assert len(second_id) == 2 * _pkcs11.GENERATED_ID_BYTES and second_id != first_id
    # The next key is a key pair of its own in the token; the label still names the old key.
    assert objects(hsm, "jwt") == sorted([("private", "jwt", first_id), ("public", "jwt", first_id),
                                          ("private", "jwt.next", second_id), ("public", "jwt.next", second_id)])
    assert mint_kid(hsm, "jwt") == first
    assert staged["next_step"] == "activate" and staged["next_step_at"] is None and staged["publish_needed"]

    host.publish(T0 + 11)
    with pytest.raises(KeyringError, match="propagation_window 100 s"):
        host.run("activate", T0 + 12 + W - 2)
    assert private_labels(hsm, "jwt") == {"jwt": first_id, "jwt.next": second_id}

    activated = host.run("auto", T0 + 12 + W + 1)
    assert activated["performed"] == [{"step": "activate", "kid": second, "previous": first, "recovered": False}]
    assert activated["signing_kid"] == second
    assert private_labels(hsm, "jwt") == {"jwt": second_id, "jwt." + first: first_id}
    assert ("public", "jwt." + first, first_id) in objects(hsm, "jwt")
    # jwt_token and the refresher sign through the same URI, and now with the new key.
    assert mint_kid(hsm, "jwt") == second
    assert activated["kids"] == [second, first]

    assert host.run("auto", T0 + 12 + W + 1 + RETIRE - 1)["changed"] is False
    retired = host.run("auto", T0 + 13 + W + 1 + RETIRE + 1)
    assert retired["performed"] == [{"step": "retire", "kid": first}] and retired["kids"] == [second]
    # Both objects of the retired key pair are destroyed.
    assert objects(hsm, "jwt") == [("private", "jwt", second_id), ("public", "jwt", second_id)]
    withdrawn = host.publish(T0 + 15 + W + RETIRE + 2)
    assert withdrawn["performed"] == [{"step": "withdrawn", "kid": first}]
    done = host.run("auto", T0 + 16 + W + RETIRE + 2)
    assert done["changed"] is False and done["in_progress"] is False
    assert [(k["kid"], k["state"], k["object_id"]) for k in done["keys"]] == [
        (second, "active", second_id), (first, "retired", first_id)]


def test_public_jwks_and_kids_are_those_of_the_keys_in_the_token(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    result = host.run("rotate", T0)
    with session_of(hsm) as session:
        for jwk in result["jwks"]:
            entry = entries(host.state_file)[jwk["kid"]]
            key = session.key(key_id=bytes.fromhex(entry["object_id"]))
            # The same JWK and RFC 7638 kid as for a key file with this public key.
            assert jwk == _jwk.public_jwk(key) and jwk["kid"] == _jwk.thumbprint(jwk)
            assert not set(jwk) & set(_jwk.PRIVATE_JWK_MEMBERS)


def test_generated_keys_are_sensitive_and_never_extractable(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    host.publish(T0 + 1)
    host.run("auto", T0 + 2 + W)
    host.run("stage", T0 + 3 + W)
    generated = [entry["object_id"] for entry in state_of(host.state_file)["keys"]
                 if entry["object_id"] != host.first_id]
    assert len(generated) == 2
    with session_of(hsm) as session:
        for key_id in generated:
            handle = session.find(key_id=bytes.fromhex(key_id))
            assert handle[Attribute.EXTRACTABLE] is False and handle[Attribute.SENSITIVE] is True
            assert handle[Attribute.NEVER_EXTRACTABLE] is True and handle[Attribute.TOKEN] is True
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                handle[Attribute.VALUE]  # pylint: disable=pointless-statement
            with pytest.raises(_pkcs11.Pkcs11Error, match="cannot be exported"):
                session.key(key_id=bytes.fromhex(key_id)).private_bytes()


@pytest.mark.parametrize("key_type, size, curve, alg", [
    ("rsa", 2048, None, "RS256"), ("ec", None, "P-384", "ES384"), ("ed25519", None, None, "EdDSA")])
def test_other_key_types(hsm, ring_dir, key_type, size, curve, alg):
    host = Host(hsm, ring_dir)
    result = _keyring_pkcs11.run(spec(hsm, type=key_type, size=size, curve=curve), host.state_file, "rotate",
                                 Timing(0, 0, 0), now=T0, pin=hsm.pin)
    nxt = [k for k in result["keys"] if k["state"] == "next"][0]
    assert nxt["alg"] == alg
    _keyring_pkcs11.run(spec(hsm), host.state_file, "mark_published", Timing(0, 0, 0), now=T0 + 1, pin=hsm.pin,
                        published_kids=result["kids"])
    _keyring_pkcs11.run(spec(hsm), host.state_file, "activate", Timing(0, 0, 0), now=T0 + 2, pin=hsm.pin)
    assert mint_kid(hsm, "jwt") == nxt["kid"]


def test_each_call_is_idempotent(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    for name, now, step in rotation_steps():
        step(host, now, None)
        before = objects(hsm)
        again = host.run("auto", now)
        assert again["changed"] is False, name
        assert objects(hsm) == before, name


def test_status_and_check_mode_change_nothing(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    before = objects(hsm)
    result = host.run("status", T0)
    assert result["changed"] is False and result["would_change"] is True and result["kids"] == [host.first_kid]
    result = host.run("rotate", T0, check_mode=True)
    assert [i["step"] for i in result["performed"]] == ["adopt", "stage"] and result["performed"][1]["kid"] is None
    assert objects(hsm) == before and os.listdir(ring_dir) == []
    # A ring in the middle of a rotation: check mode previews the activation and writes nothing.
    host.run("rotate", T0 + 1)
    host.publish(T0 + 2)
    before, state = objects(hsm), state_of(host.state_file)
    preview = host.run("auto", T0 + 3 + W, check_mode=True)
    assert [i["step"] for i in preview["performed"]] == ["activate"]
    assert objects(hsm) == before and state_of(host.state_file) == state
    assert mint_kid(hsm, "jwt") == host.first_kid
    # Revocation that would destroy every key pair, in check mode: it says so and destroys nothing.
    preview = host.run("revoke", T0 + 4 + W, check_mode=True, checked=False, remove_private_keys=True)
    assert [i["step"] for i in preview["performed"]] == ["revoke", "revoke", "remove_key", "remove_key"]
    assert objects(hsm) == before and state_of(host.state_file) == state


def test_keep_retired_keeps_the_key_pair_under_its_kid(hsm, ring_dir):
    host = Host(hsm, ring_dir, keep_retired=True)
    for _name, now, step in rotation_steps():
        step(host, now, None)
    first = host.first_kid
    entry = entries(host.state_file)[first]
    assert entry["state"] == "retired" and entry["backup_object"] == "jwt." + first
    labels = private_labels(hsm, "jwt")
    assert labels["jwt." + first] == host.first_id and len(labels) == 2
    assert host.run("auto", T0 + 10 ** 5)["changed"] is False
    # Revocation with remove_private_keys destroys the kept key pair too.
    result = host.run("revoke", T0 + 10 ** 5 + 1, checked=False, remove_private_keys=True)
    second = result["signing_kid"]
    assert second != first
    assert [(i["step"], i["kid"]) for i in result["performed"]] == [("revoke", second), ("remove_key", first),
                                                                    ("remove_key", second)]
    assert objects(hsm, "jwt") == []
    assert "backup_object" not in entries(host.state_file)[first]


def test_revoke_with_remove_private_keys_destroys_every_key_pair(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    nxt = [k["kid"] for k in host.run("status", T0)["keys"] if k["state"] == "next"][0]
    revoked = _keyring_pkcs11.run(spec(hsm), host.state_file, "revoke", Timing(W, L, S), now=T0 + 1, pin=hsm.pin)
    assert revoked["jwks"] == [] and len(objects(hsm, "jwt")) == 4
    with pytest.raises(KeyringError, match="revoked in its key ring"):
        host.run("auto", T0 + 2, checked=False)
    removed = _keyring_pkcs11.run(spec(hsm), host.state_file, "revoke", Timing(W, L, S), now=T0 + 3, pin=hsm.pin,
                                  remove_private_keys=True)
    assert [(i["step"], i["kid"]) for i in removed["performed"]] == [("remove_key", nxt),
                                                                     ("remove_key", host.first_kid)]
    assert objects(hsm) == []
    with pytest.raises(_pkcs11.Pkcs11Error, match="there is no private key"):
        mint_kid(hsm, "jwt")
    again = _keyring_pkcs11.run(spec(hsm), host.state_file, "revoke", Timing(W, L, S), now=T0 + 4, pin=hsm.pin,
                                remove_private_keys=True)
    assert again["changed"] is False
    # A new key made afterwards (edge_keys runs jwt_keypair) is adopted; the revoked kids stay out.
    new, _new_id = make_key(hsm)
    result = _keyring_pkcs11.run(spec(hsm), host.state_file, "auto", Timing(W, L, S), now=T0 + 5, pin=hsm.pin)
    assert result["kids"] == [new] and "replaced outside its key ring" in result["warnings"][0]


# --------------------------------------------------------------------------------------
# Interrupted runs
# --------------------------------------------------------------------------------------

def test_activation_cut_after_the_first_relabel_is_finished_by_the_next_run(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    host.publish(T0 + 1)
    second = [k for k in host.run("status", T0 + 2)["keys"] if k["state"] == "next"][0]
    # One relabel (the next key gets the label), then the process dies.
    with pytest.raises(Crash):
        host.run("auto", T0 + 3 + W, io=CrashingTokenIO(1))
    assert sorted(private_labels_all(hsm, "jwt")) == sorted([("jwt", host.first_id), ("jwt", second["object_id"])])
    # Meanwhile the signers refuse to guess (both keys are published, so either would be safe).
    with pytest.raises(_pkcs11.Pkcs11Error, match="2 private keys match"):
        mint_kid(hsm, "jwt")
    status = host.run("status", T0 + 4 + W)
    assert status["would_change"] is True and private_labels_all(hsm, "jwt") != []
    repaired = host.run("auto", T0 + 5 + W)
    assert repaired["performed"] == [{"step": "activate", "kid": second["kid"], "previous": host.first_kid,
                                      "recovered": True}]
    assert private_labels(hsm, "jwt") == {"jwt": second["object_id"], "jwt." + host.first_kid: host.first_id}
    assert mint_kid(hsm, "jwt") == second["kid"]
    assert host.run("auto", T0 + 6 + W)["changed"] is False


def private_labels_all(hsm, label):
    """(label, id hex) of every private key of the ring of ``label``, duplicates kept."""
    return sorted((text, key_id) for kind, text, key_id in objects(hsm, label) if kind == "private")


def test_activation_cut_before_its_state_write_is_recorded_by_the_next_run(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    host.publish(T0 + 1)
    with pytest.raises(Crash):
        host.run("auto", T0 + 2 + W, io=CrashingTokenIO(2))
    second = [k for k in entries(host.state_file).values() if k["state"] == "next"][0]
    assert mint_kid(hsm, "jwt") == second["kid"]
    repaired = host.run("mark_published", T0 + 3 + W, published_kids=[host.first_kid, second["kid"]])
    assert repaired["performed"][0] == {"step": "activate", "kid": second["kid"], "previous": host.first_kid,
                                        "recovered": True}


def test_relabel_cut_between_the_private_and_the_public_object_is_repaired(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    host.publish(T0 + 1)
    second = [k for k in entries(host.state_file).values() if k["state"] == "next"][0]
    # The activation's first relabel reached only the private object of the next key pair.
    with session_of(hsm, write=True) as session:
        handle = session.find(key_id=bytes.fromhex(second["object_id"]))
        handle[Attribute.LABEL] = "jwt"
    assert ("public", "jwt.next", second["object_id"]) in objects(hsm, "jwt")
    repaired = host.run("auto", T0 + 2 + W)
    assert [i["step"] for i in repaired["performed"]] == ["activate"] and repaired["performed"][0]["recovered"]
    assert objects(hsm, "jwt") == sorted([
        ("private", "jwt", second["object_id"]), ("public", "jwt", second["object_id"]),
        ("private", "jwt." + host.first_kid, host.first_id), ("public", "jwt." + host.first_kid, host.first_id)])
    # The retirement then destroys both objects of the old pair.
    host.run("auto", T0 + 3 + W + RETIRE)
    assert objects(hsm, "jwt") == [("private", "jwt", second["object_id"]), ("public", "jwt", second["object_id"])]


def test_stage_cut_before_its_state_write_is_adopted(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("auto", T0)
    with pytest.raises(Crash):
        host.run("stage", T0 + 1, io=CrashingTokenIO(1))
    orphan = private_labels(hsm, "jwt")["jwt.next"]
    assert [entry["state"] for entry in state_of(host.state_file)["keys"]] == ["active"]
    result = host.run("auto", T0 + 2)
    assert [(i["step"], i.get("recovered")) for i in result["performed"]] == [("stage", True)]
    assert [(k["state"], k["object_id"]) for k in result["keys"]] == [("next", orphan), ("active", host.first_id)]


def test_retirement_cut_before_the_destroy_is_finished(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    for _name, now, step in rotation_steps()[:5]:
        step(host, now, None)
    with pytest.raises(Crash):
        host.run("auto", T0 + 13 + W + 1 + RETIRE + 1, io=CrashingTokenIO(1))
    assert "jwt." + host.first_kid in private_labels(hsm, "jwt")
    host.run("auto", T0 + 14 + W + 1 + RETIRE + 1)
    assert list(private_labels(hsm, "jwt")) == ["jwt"]


@pytest.mark.parametrize("index", range(len(rotation_steps())))
def test_killed_before_every_write_converges(hsm, ring_dir, index):
    """Kill the step ``index`` before each of its writes (file or token), re-run it, finish the rotation."""
    steps = rotation_steps()
    reference = Host(hsm, ring_dir, label="ref")
    for position, (_name, now, step) in enumerate(steps):
        io = CountingTokenIO() if position == index else None
        step(reference, now, io)
        if position == index:
            writes = io.ops
    assert writes >= 1
    for budget in range(writes):
        label = "k%d" % budget
        host = Host(hsm, ring_dir, label=label)
        for position, (_name, now, step) in enumerate(steps):
            if position == index:
                with pytest.raises(Crash):
                    step(host, now, CrashingTokenIO(budget))
                step(host, now + 1, None)
            else:
                step(host, now, None)
        final = state_of(host.state_file)
        active = [entry for entry in final["keys"] if entry["state"] == "active"]
        assert len(active) == 1 and kids_labelled(hsm, label) == [active[0]["kid"]] != [host.first_kid]
        assert not [entry for entry in final["keys"] if entry["state"] in ("next", "retiring")]
        assert objects(hsm, label) == [("private", label, active[0]["object_id"]),
                                       ("public", label, active[0]["object_id"])]


# --------------------------------------------------------------------------------------
# Untrusted state and token content
# --------------------------------------------------------------------------------------

def _edit_state(path, edit):
    state = state_of(path)
    edit(state)
    _files.write_atomic(path, json.dumps(state).encode("utf-8"))


def _second(state):
    return [entry for entry in state["keys"] if entry["state"] == "next"][0]


def _active(state):
    return [entry for entry in state["keys"] if entry["state"] == "active"][0]


@pytest.mark.parametrize("edit, message", [
    (lambda state: _second(state).update(kid="../../etc/x"), "holds the kid '../../etc/x', which is not an RFC 7638"),
    (lambda state: _second(state).update(object_id="../jwt"), "object id '../jwt', which is not the CKA_ID"),
    (lambda state: _second(state).update(object_id="ABCD"), "object id 'ABCD'"),
    (lambda state: _second(state).update(object_id="abc"), "object id 'abc'"),
    (lambda state: _second(state).update(object_id=""), "object id ''"),
    (lambda state: _second(state).update(object_id=7), "object id 7"),
    (lambda state: _second(state).pop("object_id"), "object id None"),
    (lambda state: _second(state).update(object_id="ab" * 65), "object id 'abababab"),
    (lambda state: _second(state).update(object_id=_active(state)["object_id"]), "each key its own id"),
    (lambda state: _second(state).update(backup_object="jwt"), "names 'jwt' as the kept key pair"),
    (lambda state: state["pkcs11"].update(label="other"), "belongs to the key labelled 'other'"),
    (lambda state: state["pkcs11"].update(token_serial="0"), "in the token with serial '0'"),
    (lambda state: state.pop("pkcs11"), "has no pkcs11 member"),
])
def test_untrusted_state_is_refused_and_nothing_changes(hsm, ring_dir, edit, message):
    host = Host(hsm, ring_dir)
    host.run("rotate", T0)
    host.publish(T0 + 1)
    _edit_state(host.state_file, edit)
    before, data = objects(hsm), _files.read_bytes(host.state_file, "state")
    for action in ("auto", "status", "revoke"):
        with pytest.raises(KeyringError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
            host.run(action, T0 + 2 + W, remove_private_keys=True) if action == "revoke" else host.run(action, T0 + 2 + W)
        assert "nothing was changed" in str(info.value).lower()
    assert objects(hsm) == before and _files.read_bytes(host.state_file, "state") == data


def test_symlinked_state_is_refused(hsm, ring_dir, tmp_path):
    host = Host(hsm, ring_dir)
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    os.symlink(str(victim), host.state_file)
    with pytest.raises(_files.FileError, match="is a symbolic link"):
        host.run("auto", T0)
    assert victim.read_text() == "{}" and os.path.islink(host.state_file)


def test_state_in_a_directory_others_can_write_is_refused(hsm, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    with pytest.raises(_files.FileError, match="can be written by its group or by others"):
        Host(hsm, str(shared)).run("auto", T0)
    assert os.listdir(str(shared)) == []


def test_an_entry_that_names_a_foreign_key_pair_does_not_get_it_destroyed(hsm, ring_dir):
    """A state that gives a retired key the id of another key: the ring checks the key before it destroys it."""
    host = Host(hsm, ring_dir)
    other_kid, other_id = make_key(hsm, label="other-app")
    for _name, now, step in rotation_steps()[:5]:
        step(host, now, None)
    _edit_state(host.state_file, lambda state: [entry.update(object_id=other_id) for entry in state["keys"]
                                                if entry["kid"] == host.first_kid])
    result = host.run("auto", T0 + 14 + W + 1 + RETIRE + 1)
    assert result["performed"] == [{"step": "retire", "kid": host.first_kid}]
    assert any("does not hold the key %s; left alone" % host.first_kid in w for w in result["warnings"])
    assert kids_labelled(hsm, "other-app") == [other_kid]


def test_a_third_key_under_the_label_is_refused(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("auto", T0)
    make_key(hsm)
    before = objects(hsm)
    with pytest.raises(KeyringError, match="2 private keys in token 'edge' carry the label 'jwt'"):
        host.run("auto", T0 + 1, checked=False)
    assert objects(hsm) == before


def test_signing_key_labelled_away_is_reported(hsm, ring_dir):
    host = Host(hsm, ring_dir)
    host.run("auto", T0)
    with session_of(hsm, write=True) as session:
        session.relabel(bytes.fromhex(host.first_id), "elsewhere")
    with pytest.raises(KeyringError, match="no private key in token 'edge' carries the label 'jwt'"):
        host.run("auto", T0 + 1, checked=False)


@pytest.mark.parametrize("uri_suffix, kwargs, message", [
    (";id=%01%02", {}, "names an id"),
    ("", {"passphrase": "pw-123456"}, "passphrase is for key files"),
])
def test_refused_options(hsm, ring_dir, uri_suffix, kwargs, message):
    uri = hsm.uri("jwt").replace(";type=private", uri_suffix + ";type=private")
    with pytest.raises(KeyringError, match=message):
        _keyring_pkcs11.run(_keypair.KeypairSpec(path=uri, **kwargs), os.path.join(ring_dir, "s.json"), "status",
                            pin=hsm.pin)


def test_relative_state_path_is_refused(hsm):
    with pytest.raises(KeyringError, match="set state_path to an absolute path"):
        _keyring_pkcs11.run(spec(hsm), "ring.json", "status", pin=hsm.pin)


def test_no_key_under_the_label(hsm, ring_dir):
    with pytest.raises(KeyringError, match="there is no private key object 'jwt' in token 'edge' to start a key ring"):
        _keyring_pkcs11.run(spec(hsm), os.path.join(ring_dir, "s.json"), "auto", pin=hsm.pin)


def test_wrong_pin_fails_clearly(hsm, ring_dir):
    make_key(hsm)
    with pytest.raises(_pkcs11.Pkcs11Error, match="refused the PIN"):
        _keyring_pkcs11.run(spec(hsm), os.path.join(ring_dir, "s.json"), "auto", pin="0000")
    assert os.listdir(ring_dir) == [".s.json.lock"]   # the lock (empty), no state
