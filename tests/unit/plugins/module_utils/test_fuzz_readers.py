# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Structured fuzzing (hypothesis) of every file the collection reads back.

Each of these files may be writable by an account less privileged than the run that reads
it (the key directory's owner writes the ring state and the token file, the refresher
configuration lies on the edge host, a published JWKS or discovery document may have been
edited by hand), so everything in them is untrusted input. test_robustness_properties.py
feeds the parsers random values and bytes; this file starts from a VALID document of each
kind, written as the collection writes it, and changes exactly one thing in it: a member's
value (wrong type, huge or negative numbers, NaN and Infinity, non-ASCII text, path-like
text with ``/``, ``..``, NUL or a newline, very long text, deep nesting), a member removed,
an extra member (a private JWK member in a public key, for one), a member given twice in
the JSON text, or the text itself damaged.

The readers and their declared errors:

* ring state ``<key>.ring.json``: ``_keyring.read_state()`` and the whole ring in
  ``_keyring.run()``, KeyringError (a JoseError) or FileError;
* token file: ``_token.ensure_token_file()``, JoseError or FileError, and the refresher's
  ``read_token_file()`` (for callers that may not read the key), RefresherError;
* refresher configuration ``refresher.json``: ``load_config()`` of
  plugins/module_utils/_refresher.py, RefresherError, and what the refresher does
  with an accepted configuration: RefresherError, JoseError or FileError (what its main()
  turns into exit status 1);
* an existing JWKS: ``_jwks.parse_jwks()`` and ``_jwks.plan()``, JoseError;
* an existing discovery document: ``_jwks.check_discovery_existing()``, JoseError.

For each: any other exception fails the test (it would be a traceback in a root run);
whatever is accepted is valid by the reader's own rules; the unmutated document round-trips.
A ring state's kids name files that root removes (``<key>.<kid>``): an accepted kid must be a
safe file name component, and a ring run on an accepted state touches no file outside the key
directory.

Each reader gets 100 examples per run (FUZZ_EXAMPLES=2000 in the environment runs more, for a
deeper search).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import json
import os
from unittest import mock

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_robustness_properties import JSON_VALUES, SECRETS

from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _files, _jose, _jwk, _jwks, _jws
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair, _keyring, _keys, _token
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher as refresher

JoseError = _jose.JoseError
FileError = _files.FileError
KeyringError = _keyring.KeyringError

ISSUER = "https://edge.example.com"
NOW = 1800000000
PRIVATE = frozenset(_jwk.PRIVATE_JWK_MEMBERS)

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

#: The unchanged documents need fewer examples: they only vary in which valid members they hold.
ROUND_TRIP = settings(FUZZ, max_examples=25)


# --------------------------------------------------------------------------------------
# One change to a valid document
# --------------------------------------------------------------------------------------

class Raw(str):
    """JSON text put into a document as it is: what json.dumps cannot write (1e999, deep nesting)."""


class Pairs(list):
    """A JSON object as (name, value) pairs, so that one name can come twice."""


def dumps(value):
    """JSON text of a document that may hold Raw and Pairs values."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{%s}" % ",".join("%s:%s" % (json.dumps(name), dumps(member)) for name, member in value)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ",".join(dumps(item) for item in value)
    return json.dumps(value, allow_nan=True)


NUMBERS = st.sampled_from([
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-1e999"), Raw("1" * 4000),
    Raw("9" * 5000), Raw("-0"), Raw("1E2"), 2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30, -(10 ** 30),
    -1, 0, 1.5, -0.5, True, False, None])
PATH_LIKE = st.sampled_from([
    "", " ", "/", ".", "..", "../x", "a/../../b", "x/y", "/../../etc/x", "x\0y", "\0", "x\ny", "x\r\ny",
    "x\ty", "x y", "%h%n", "~", "-rf", "$(id)", "\u202ex", "\ufeff", "é", "\u2028", Raw('"\\ud800"'),
    Raw('"x\\udcff"'), "x" * 300])
LONG_TEXT = st.sampled_from(["x" * 70000, "A" * 5000, "é" * 20000])
NON_ASCII = st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), min_size=1, max_size=12)
DEEP = st.sampled_from([3, 500, 1100, 30000]).flatmap(lambda depth: st.sampled_from([
    Raw("[" * depth + "]" * depth), Raw('{"a":' * depth + "1" + "}" * depth)]))


def hostile_values(extra=st.nothing()):
    """A value that a member of a document must not hold, or may not: any type, edge cases."""
    return st.one_of(JSON_VALUES, NUMBERS, PATH_LIKE, NON_ASCII, LONG_TEXT, DEEP, SECRETS, extra)


def _paths(value, prefix=()):
    found = [prefix]
    if isinstance(value, dict):
        for name in sorted(value):
            found.extend(_paths(value[name], prefix + (name,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, prefix + (index,)))
    return found


def _at(document, path):
    for step in path:
        document = document[step]
    return document


def _put(document, path, value):
    """document with the value at path replaced (the root too)."""
    if not path:
        return value
    _at(document, path[:-1])[path[-1]] = value
    return document


MEMBER_NAMES = st.sampled_from(sorted(PRIVATE) + ["__proto__", "", "keys", "kid", "kty", "version", "x5u",
                                                  "key_ops", "é", "x\0y"]) | st.text(max_size=8)


@st.composite
def one_change(draw, document, values=None, names=MEMBER_NAMES):
    """UTF-8 JSON text of ``document`` with exactly one change."""
    values = hostile_values() if values is None else values
    document = copy.deepcopy(document)
    paths = _paths(document)
    members = [path for path in paths if path]
    objects = [path for path in paths if isinstance(_at(document, path), dict)]
    containers = [path for path in paths if isinstance(_at(document, path), (dict, list))]
    kind = draw(st.sampled_from(["replace", "replace", "remove", "extra", "twice", "text"]))
    if kind == "replace":
        document = _put(document, draw(st.sampled_from(paths)), draw(values))
    elif kind == "remove" and members:
        path = draw(st.sampled_from(members))
        del _at(document, path[:-1])[path[-1]]
    elif kind == "extra" and containers:
        container = _at(document, draw(st.sampled_from(containers)))
        if isinstance(container, dict):
            container[draw(names)] = draw(values)
        else:
            container.insert(draw(st.integers(min_value=0, max_value=len(container))), draw(values))
    elif kind == "twice" and [path for path in objects if _at(document, path)]:
        path = draw(st.sampled_from([path for path in objects if _at(document, path)]))
        pairs = Pairs(_at(document, path).items())
        name = draw(st.sampled_from([pair[0] for pair in pairs]))
        # The reader sees one of the two values (Python's json keeps the last one).
        pairs.insert(draw(st.integers(min_value=0, max_value=len(pairs))), (name, draw(values)))
        document = _put(document, path, pairs)
    elif kind == "text":
        return draw(damaged_text(dumps(document).encode("utf-8")))
    return dumps(document).encode("utf-8")


@st.composite
def damaged_text(draw, data):
    """The bytes of a document cut short, wrapped, prefixed or with bytes changed."""
    how = draw(st.sampled_from(["cut", "prefix", "suffix", "byte", "utf16"]))
    if how == "cut":
        return data[:draw(st.integers(min_value=0, max_value=len(data) - 1))]
    if how == "prefix":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"\0", b"\xff", b"[", b"// x\n", b" \n\t"])) + data
    if how == "suffix":
        return data + draw(st.sampled_from([b"\0", b"\n", b"x", b"}", b"\n{}", b"\xc3", b" " * 2000]))
    if how == "byte":
        index = draw(st.integers(min_value=0, max_value=len(data) - 1))
        return data[:index] + bytes([draw(st.integers(min_value=0, max_value=255))]) + data[index + 1:]
    return data.decode("utf-8").encode("utf-16")


def _jwk_problem(jwk, kid=None):
    """None when jwk is a valid public JWK (named kid, when given) as the collection writes it."""
    if not isinstance(jwk, dict) or set(jwk) & PRIVATE:
        return "not a public JWK: %r" % (jwk,)
    try:
        normalized = _jwk.jwk_to_public_key(jwk)[0]
    except JoseError as exc:
        return str(exc)
    if kid is not None and normalized["kid"] != kid:
        return "kid %r of the JWK is not %r" % (normalized["kid"], kid)
    return None


def _message(exc):
    text = str(exc)
    assert text.strip(), "%s without a message" % type(exc).__name__
    return text


@contextlib.contextmanager
def _working_directory(path):
    """Relative paths of a fuzzed document resolve in a scratch directory, not the checkout."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# --------------------------------------------------------------------------------------
# Keys shared by the documents
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool():
    """Private keys and their public JWKs: four EC keys for a ring, and one of each type."""
    ring = [_keys.generate_private_key("ec", curve="P-256") for _index in range(4)]
    ed = _keys.generate_private_key("ed25519")
    rsa = _keys.generate_private_key("rsa", size=2048)
    certified = _keys.generate_private_key("ec", curve="P-384")
    jwks = [_jwk.public_jwk(key) for key in ring + [ed, rsa]]
    jwks.append(_jwk.public_jwk(certified, certificates=[_certificates.self_signed_certificate(certified, "edge-01")]))
    return {"ring": ring, "ring_jwks": [_jwk.public_jwk(key) for key in ring], "jwks": jwks}


# --------------------------------------------------------------------------------------
# Ring state: <key>.ring.json
# --------------------------------------------------------------------------------------

TIMES = st.integers(min_value=1600000000, max_value=NOW - 100000).map(_jose.iso_utc)
TIMING = _keyring.Timing(propagation_window=60, token_max_lifetime=600, clock_skew=60)


@pytest.fixture(scope="module")
def ring(pool, tmp_path_factory):
    """A key directory with the signing key (the ring's active key) and the next key's file."""
    directory = tmp_path_factory.mktemp("ring") / "keys"
    directory.mkdir(mode=0o700)
    key_path = str(directory / "signing.pem")
    _files.write_atomic(key_path, _keys.private_key_pem(pool["ring"][0]), 0o600, "private key")
    _files.write_atomic(_keyring.key_file(key_path, pool["ring_jwks"][1]["kid"]),
                        _keys.private_key_pem(pool["ring"][1]), 0o600, "private key")
    return {"dir": str(directory), "key_path": key_path, "state_path": _keyring.state_path(key_path),
            "jwks": pool["ring_jwks"]}


@st.composite
def ring_states(draw, ring):
    """A ring state as _keyring writes it: the active signing key, maybe a next, a retiring, an old key."""
    jwks = ring["jwks"]
    entries = [{"kid": jwks[0]["kid"], "state": _keyring.ACTIVE, "jwk": jwks[0], "activated_at": draw(TIMES)}]
    if draw(st.booleans()):
        entries[0]["adopted"] = True
    if draw(st.booleans()):
        entries.append({"kid": jwks[1]["kid"], "state": _keyring.NEXT, "jwk": jwks[1], "staged_at": draw(TIMES),
                        "published_at": draw(st.none() | TIMES)})
    if draw(st.booleans()):
        entries.append({"kid": jwks[2]["kid"], "state": _keyring.RETIRING, "jwk": jwks[2],
                        "activated_at": draw(TIMES), "deactivated_at": draw(TIMES)})
    old = draw(st.sampled_from([None, _keyring.RETIRED, _keyring.REVOKED]))
    if old == _keyring.RETIRED:
        entries.append({"kid": jwks[3]["kid"], "state": old, "jwk": jwks[3], "retired_at": draw(TIMES),
                        "withdrawn_at": draw(st.none() | TIMES)})
    elif old == _keyring.REVOKED:
        entries.append({"kid": jwks[3]["kid"], "state": old, "jwk": jwks[3], "revoked_at": draw(TIMES)})
    # The order _keyring.Ring._write_state() keeps.
    entries.sort(key=lambda entry: (_keyring.KEY_STATES.index(entry["state"]), entry.get("staged_at") or "",
                                    entry["kid"]))
    return {"version": _keyring.STATE_VERSION, "key_path": ring["key_path"], "keys": entries}


def _state_text(state):
    """The bytes _keyring.Ring._write_state() writes."""
    return (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_state(ring, data):
    _files.write_atomic(ring["state_path"], data, _keyring.STATE_MODE, "key ring state")


def _spec(ring):
    return _keypair.KeypairSpec(path=ring["key_path"], type="ec", curve="P-256")


def _check_ring_state(state):
    """What read_state() promises about a state it accepts (except the kid syntax: see below)."""
    assert isinstance(state, dict) and state["version"] == _keyring.STATE_VERSION
    assert isinstance(state["keys"], list)
    kids = [entry["kid"] for entry in state["keys"]]
    assert len(set(kids)) == len(kids)
    for wanted in (_keyring.ACTIVE, _keyring.NEXT):
        assert len([entry for entry in state["keys"] if entry["state"] == wanted]) <= 1
    for entry in state["keys"]:
        assert entry["state"] in _keyring.KEY_STATES
        assert isinstance(entry["kid"], str)
        # Every key of a ring is published from its entry: a public key named by the entry's kid.
        assert _jwk_problem(entry["jwk"], entry["kid"]) is None, _jwk_problem(entry["jwk"], entry["kid"])
        for name in _keyring.TIME_FIELDS:
            if entry.get(name) is not None:
                epoch = _keyring.parse_iso(entry[name])
                assert isinstance(epoch, int)
                assert _jose.iso_utc(epoch) == entry[name] or _keyring.parse_iso(_jose.iso_utc(epoch)) == epoch


def _check_ring_result(result):
    for jwk in result["jwks"]:
        assert _jwk_problem(jwk) is None, _jwk_problem(jwk)
    assert result["kids"] == [jwk["kid"] for jwk in result["jwks"]]
    json.dumps(result, allow_nan=False)


@FUZZ
@given(data=st.data())
def test_ring_state_reader(ring, data):
    """A ring state with one change: refused with KeyringError, or valid and the ring runs on it."""
    times = st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                             "2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "2026-1-1T1:1:1Z", "+2026-01-01T00:00:00Z",
                             "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"])
    _write_state(ring, data.draw(one_change(data.draw(ring_states(ring)), hostile_values(times))))
    try:
        state = _keyring.read_state(ring["key_path"])
    except KeyringError as exc:
        _message(exc)
        return
    _check_ring_state(state)
    for jwk in _keyring.jwks_for_key(ring["key_path"], None):
        assert _jwk_problem(jwk) is None, _jwk_problem(jwk)
    try:
        result = _keyring.run(_spec(ring), "status", TIMING, now=NOW)
    except (JoseError, FileError) as exc:
        _message(exc)
        return
    _check_ring_result(result)


@ROUND_TRIP
@given(data=st.data())
def test_valid_ring_states_round_trip(ring, data):
    state = data.draw(ring_states(ring))
    _write_state(ring, _state_text(state))
    assert _keyring.read_state(ring["key_path"]) == state
    result = _keyring.run(_spec(ring), "status", TIMING, now=NOW)
    _check_ring_result(result)
    assert result["signing_kid"] == ring["jwks"][0]["kid"]


class RecordingIO(object):
    """The writes and removals of a ring, recorded instead of done."""

    def __init__(self):
        self.paths = []

    def write(self, path, data, mode, what, uid=None, gid=None):
        self.paths.append(path)

    def remove(self, path, what):
        self.paths.append(path)
        return False


def _safe_file_name_part(kid):
    return (isinstance(kid, str) and "/" not in kid and "\0" not in kid and kid not in (".", "..")
            and bool(_jwk.KID_PATTERN.match(kid)))


@FUZZ
@given(data=st.data(), action=st.sampled_from(["auto", "rotate", "revoke"]))
def test_ring_state_kids_are_safe_file_name_components(ring, data, action):
    """A kid in an accepted ring state names a file beside the key: it must not become a path.

    The owner of the key directory writes the state; root runs the ring (rotate.yml,
    revoke.yml) and removes ``<key>.<kid>``.
    """
    state = data.draw(ring_states(ring))
    kid = data.draw(st.sampled_from([".", "..", "/../../../victim/target", "a" * 43 + "/x", "x\0y"]) | PATH_LIKE
                    | st.text(max_size=50))
    index = data.draw(st.integers(min_value=0, max_value=len(state["keys"]) - 1))
    entry = state["keys"][index]
    # Whoever writes the state names the key in its JWK the same way.
    entry["kid"] = kid
    entry["jwk"] = dict(entry["jwk"], kid=kid)
    if data.draw(st.booleans()):
        entry["state"] = data.draw(st.sampled_from([_keyring.RETIRING, _keyring.RETIRED, _keyring.REVOKED]))
        entry["deactivated_at"] = "2000-01-01T00:00:00Z"
    _write_state(ring, dumps(state).encode("utf-8"))
    try:
        accepted = _keyring.read_state(ring["key_path"])
    except KeyringError as exc:
        _message(exc)
        return
    for item in accepted["keys"]:
        assert _safe_file_name_part(item["kid"]), item["kid"]
    io = RecordingIO()
    try:
        _keyring.run(_spec(ring), action, TIMING, now=NOW, io=io, remove_private_keys=True)
    except (JoseError, FileError) as exc:
        _message(exc)
    for path in io.paths:
        assert os.path.dirname(os.path.normpath(path)) == ring["dir"], path


# --------------------------------------------------------------------------------------
# Token file
# --------------------------------------------------------------------------------------

TOKEN_OPTIONS = {"issuer": ISSUER, "subject": "edge-01", "audience": "orders-api", "expires_in": 600,
                 "claims": {"scope": "orders.read"}}


@pytest.fixture(scope="module")
def tokens(pool, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokens")
    key = pool["ring"][0]
    key_path = str(directory / "signing.pem")
    _files.write_atomic(key_path, _keys.private_key_pem(key), 0o600, "private key")
    token_path = str(directory / "token")
    config = {"key": {"path": key_path}, "token": {"expires_in": 600},
              "token_file": {"path": token_path, "refresh_margin": None}}
    return {"key": key, "path": token_path, "config": config, "dir": str(directory),
            "good": _token.mint(key, now=NOW, **TOKEN_OPTIONS).token}


def _resigned(key, header_b64, claims_b64):
    signing_input = ("%s.%s" % (header_b64, claims_b64)).encode("ascii")
    return "%s.%s" % (signing_input.decode("ascii"), _jose.b64url_encode(_jws._sign_bytes(key, "ES256", signing_input)))


@st.composite
def token_files(draw, tokens):
    """A token file as ensure_token_file writes it, with one change in the header, the claims or the text."""
    good = tokens["good"]
    parts = good.split(".")
    where = draw(st.sampled_from(["header", "claims", "claims", "text"]))
    if where == "text":
        return draw(damaged_text(good.encode("ascii")) | st.sampled_from([
            good.encode("ascii") + b"\n", b" " + good.encode("ascii"), good.encode("ascii") + b".x",
            good.encode("ascii") + b"\0", good.replace(".", "..", 1).encode("ascii"), b"", b"\n",
            ("x" * 40000).encode("ascii"), good.encode("ascii") + "é".encode("utf-8")]))
    index = 0 if where == "header" else 1
    document = json.loads(_jose.b64url_decode(parts[index]))
    values = hostile_values(st.sampled_from([NOW - 10 ** 12, NOW + 10 ** 12, 10 ** 20, -(10 ** 20), 2 ** 63,
                                             NOW + 10, NOW - 10, "ES256", "none", "HS256", "JWT"]))
    parts[index] = _jose.b64url_encode(draw(one_change(document, values)))
    if draw(st.booleans()):
        # Signed by the real key: only the content decides.
        return _resigned(tokens["key"], parts[0], parts[1]).encode("ascii")
    return ".".join(parts).encode("ascii")


def _write_token(tokens, data):
    _files.write_atomic(tokens["path"], data, 0o600, "token file")


def _check_kept_token(tokens, token, now):
    claims = jwt.decode(token, tokens["key"].public_key(), algorithms=["ES256"], audience="orders-api",
                        issuer=ISSUER, options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    assert claims["sub"] == "edge-01" and claims["scope"] == "orders.read"
    assert claims["exp"] - now > _token.default_refresh_margin(600)
    assert claims["iat"] <= now and claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(token)["kid"] == _jwk.key_thumbprint(tokens["key"])


@FUZZ
@given(data=st.data())
def test_token_file_reader(tokens, data):
    """A token file with one change: kept only when it is a valid token of this key and these options."""
    content = data.draw(token_files(tokens))
    _write_token(tokens, content)
    now = NOW + 10
    try:
        changed, result = _token.ensure_token_file(tokens["path"], tokens["key"], check_mode=True, now=now,
                                                   **TOKEN_OPTIONS)
    except (JoseError, FileError) as exc:
        _message(exc)
    else:
        assert changed is (result.reason is not None)
        if result.reason is None:
            assert result.token == content.decode("ascii").strip()
            _check_kept_token(tokens, result.token, now)
        else:
            _check_kept_token(tokens, result.token, now)  # a new token made for these options
            json.dumps(result.metadata(), allow_nan=False)
            if result.previous is not None:
                json.dumps(result.previous)
    # A caller that may not read the key gets the token from the file, or an error.
    try:
        found, stale = refresher.read_token_file(tokens["config"], now=now)
    except refresher.RefresherError as exc:
        _message(exc)
        return
    assert found.token == content.decode("ascii").strip()
    assert isinstance(found.expires_at, int) and found.expires_at > now
    assert isinstance(found.expires_at_iso, str) and stale in (True, False)


def test_a_valid_token_file_is_kept(tokens):
    _write_token(tokens, tokens["good"].encode("ascii"))
    changed, result = _token.ensure_token_file(tokens["path"], tokens["key"], mode=0o600, check_mode=True,
                                               now=NOW + 10, **TOKEN_OPTIONS)
    assert (changed, result.reason, result.token) == (False, None, tokens["good"])
    found, stale = refresher.read_token_file(tokens["config"], now=NOW + 10)
    assert (found.token, stale) == (tokens["good"], False)


# --------------------------------------------------------------------------------------
# Refresher configuration: refresher.json
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def refresher_files(pool, tmp_path_factory):
    directory = tmp_path_factory.mktemp("refresher")
    key_path = str(directory / "signing.pem")
    _files.write_atomic(key_path, _keys.private_key_pem(pool["ring"][0]), 0o600, "private key")
    scratch = directory / "cwd" / "a" / "b"
    scratch.mkdir(parents=True)
    return {"key_path": key_path, "token_path": str(directory / "token"), "config_path": str(directory / "refresher.json"),
            "kid": pool["ring_jwks"][0]["kid"], "cwd": str(scratch)}


@st.composite
def refresher_configs(draw, files):
    """A configuration as roles/edge_keys/templates/refresher.json.j2 renders it (vars/main.yml)."""
    return {
        "version": 1,
        "user": draw(st.sampled_from([None, "root", 0])),
        "key": {"path": files["key_path"], "kid": draw(st.sampled_from([None, files["kid"]])),
                "algorithm": draw(st.sampled_from([None, "ES256"])), "passphrase_file": None},
        "token": {"issuer": ISSUER, "subject": "edge-01",
                  "audience": draw(st.sampled_from([None, "orders-api", ["orders-api", "billing"]])),
                  "expires_in": 600, "max_lifetime": 3600, "not_before": draw(st.sampled_from([0, -30])),
                  "scopes": draw(st.sampled_from([[], ["orders.read", "orders.write"]])),
                  "claims": draw(st.sampled_from([{}, {"site": "berlin"}])),
                  "jku": draw(st.sampled_from([None, ISSUER + "/.well-known/jwks.json"]))},
        "token_file": {"path": files["token_path"], "mode": draw(st.sampled_from(["0600", "0640"])),
                       "group": None, "refresh_margin": draw(st.sampled_from([200, 0]))},
    }


def _rendered(config):
    """What Ansible's to_nice_json(indent=2) writes."""
    return json.dumps(config, indent=2, sort_keys=True, separators=(",", ": "), ensure_ascii=False).encode("utf-8")


def _check_refresher_config(config):
    assert isinstance(config, dict) and config["version"] == refresher.CONFIG_VERSION
    for section, members in refresher._SECTIONS.items():
        for name, types in members.items():
            assert refresher._has_type(config[section].get(name), types), (section, name)
    assert isinstance(int(config["token_file"]["mode"], 8), int)


@contextlib.contextmanager
def _as_root_without_switching():
    """switch_user() as if run by root, with the calls that would change this process replaced."""
    with mock.patch.object(os, "geteuid", return_value=0), mock.patch.object(os, "initgroups"), \
            mock.patch.object(os, "setgid"), mock.patch.object(os, "setuid"):
        yield


@FUZZ
@given(data=st.data())
def test_refresher_configuration_reader(refresher_files, data):
    """A configuration with one change: refused with RefresherError, or the refresher works or errs cleanly."""
    config = data.draw(refresher_configs(refresher_files))
    with open(refresher_files["config_path"], "wb") as handle:
        handle.write(data.draw(one_change(config)))
    try:
        accepted = refresher.load_config(refresher_files["config_path"])
    except refresher.RefresherError as exc:
        _message(exc)
        return
    _check_refresher_config(accepted)
    with _working_directory(refresher_files["cwd"]):
        with _as_root_without_switching():
            try:
                refresher.switch_user(accepted)
            except refresher.RefresherError as exc:
                _message(exc)
        # What main() runs next; it turns these three errors into exit status 1.
        try:
            result, facts, _warning = refresher.run(accepted, check=True, now=NOW)
        except (refresher.RefresherError, JoseError, FileError) as exc:
            _message(exc)
        else:
            assert result.token not in json.dumps(facts)
        try:
            refresher.read_token_file(accepted, now=NOW)
        except refresher.RefresherError as exc:
            _message(exc)


@ROUND_TRIP
@given(data=st.data())
def test_valid_refresher_configurations_round_trip(refresher_files, data):
    config = data.draw(refresher_configs(refresher_files))
    with open(refresher_files["config_path"], "wb") as handle:
        handle.write(_rendered(config))
    assert refresher.load_config(refresher_files["config_path"]) == config
    result, facts, warning = refresher.run(config, check=True, now=NOW)
    assert facts["changed"] is True and warning is None
    assert result.claims["sub"] == "edge-01"


# --------------------------------------------------------------------------------------
# An existing JWKS and discovery document
# --------------------------------------------------------------------------------------

@st.composite
def jwks_documents(draw, pool):
    """A JWKS as _jwks.plan() / jwks_publish writes it."""
    chosen = draw(st.lists(st.sampled_from(pool["jwks"]), min_size=1, max_size=3,
                           unique_by=lambda jwk: jwk["kid"]))
    return json.loads(_jwks.jwks_document({"keys": list(chosen)}))


def _private_values(raw_keys):
    found = []
    for key in raw_keys or []:
        for name in PRIVATE & set(key):
            if isinstance(key[name], str) and len(key[name]) >= 8:
                found.append(key[name])
    return found


@FUZZ
@given(data=st.data(), merge=st.booleans())
def test_existing_jwks_reader(pool, data, merge):
    """A published JWKS with one change: refused, or what is published is public keys only."""
    text = data.draw(one_change(data.draw(jwks_documents(pool))))
    try:
        raw = _jwks.parse_jwks(text)
    except JoseError as exc:
        _message(exc)
        raw = None
    else:
        assert isinstance(raw, list) and all(isinstance(key, dict) for key in raw)
    secrets = _private_values(raw)
    try:
        plan = _jwks.plan([pool["jwks"][0]], existing=text, merge=merge, allow_empty=True)
    except JoseError as exc:
        for secret in secrets:
            assert secret not in _message(exc)
        return
    assert raw is not None
    assert json.loads(plan["document"]) == plan["jwks"]
    for jwk in plan["jwks"]["keys"]:
        assert _jwk_problem(jwk, jwk["kid"]) is None, _jwk_problem(jwk)
    shown = json.dumps([plan, _jwks.diff_entries("jwks.json", plan)])
    for secret in secrets:
        assert secret not in shown
    if secrets:
        assert plan["before_hidden"] and plan["before_document"] is None


@ROUND_TRIP
@given(data=st.data())
def test_valid_jwks_documents_round_trip(pool, data):
    document = data.draw(jwks_documents(pool))
    text = _jwks.jwks_document({"keys": list(document["keys"])}).encode("utf-8")
    assert _jwks.parse_jwks(text) == document["keys"]
    plan = _jwks.plan(document["keys"], existing=text, merge=data.draw(st.booleans()))
    assert not plan["changed"] and plan["jwks"] == document


@FUZZ
@given(data=st.data())
def test_existing_discovery_document_reader(pool, data):
    jwks = data.draw(jwks_documents(pool))
    document = _jwks.discovery(ISSUER, ISSUER + "/.well-known/jwks.json", jwks)[0]
    text = data.draw(one_change(document))
    try:
        accepted = _jwks.check_discovery_existing(text)
    except JoseError as exc:
        _message(exc)
        return
    assert accepted == text.decode("utf-8", "replace")
    if accepted.strip():
        assert isinstance(json.loads(accepted), dict)


@ROUND_TRIP
@given(data=st.data())
def test_valid_discovery_documents_round_trip(pool, data):
    jwks = data.draw(jwks_documents(pool))
    document, text = _jwks.discovery(ISSUER, ISSUER + "/.well-known/jwks.json", jwks)
    assert _jwks.check_discovery_existing(text.encode("utf-8")) == text
    assert json.loads(text) == document
