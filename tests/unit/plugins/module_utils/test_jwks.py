# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _jwk, _jwks, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import JoseError

try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover - hypothesis is in tests/requirements.txt
    given = None

# A made-up private value: it must never appear in any message or output.
SECRET = "U2VjcmV0LXByaXZhdGUtbWF0ZXJpYWwtdGhhdC1tdXN0LW5vdC1sZWFr"


def _error(excinfo):
    return str(excinfo.value)


# --------------------------------------------------------------------------------------
# collect_keys
# --------------------------------------------------------------------------------------

def test_collect_keys_accepts_every_input_form(private_keys, jwks_, cert_pem):
    ed_text = json.dumps(jwks_["ed"])
    rsa_pem = _keys.public_key_pem(private_keys["rsa"])
    ec384_jwks = {"keys": [jwks_["ec384"]]}
    keys = _jwks.collect_keys([cert_pem, ed_text, rsa_pem, ec384_jwks])
    assert sorted(keys) == sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"], jwks_["rsa"]["kid"], jwks_["ec384"]["kid"]])
    assert keys[jwks_["ed"]["kid"]] == jwks_["ed"]
    assert keys[jwks_["rsa"]["kid"]] == jwks_["rsa"]
    assert keys[jwks_["ec384"]["kid"]] == jwks_["ec384"]
    from_cert = keys[jwks_["ec"]["kid"]]
    assert from_cert["x5c"] and from_cert["x5t#S256"] and from_cert["x"] == jwks_["ec"]["x"]


def test_collect_keys_accepts_a_jwks_as_json_text(jwks_):
    text = json.dumps({"keys": [jwks_["ec"], jwks_["ed"]]})
    assert sorted(_jwks.collect_keys([text])) == sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"]])


def test_jwk_without_kid_gets_its_thumbprint(jwks_):
    bare = dict((name, value) for name, value in jwks_["ed"].items() if name != "kid")
    keys = _jwks.collect_keys([bare])
    assert list(keys) == [_jwk.thumbprint(jwks_["ed"])]


def test_same_key_twice_is_published_once(jwks_):
    keys = _jwks.collect_keys([jwks_["ec"], dict(jwks_["ec"]), json.dumps(jwks_["ec"])])
    assert list(keys) == [jwks_["ec"]["kid"]]


def test_same_kid_for_different_keys_is_refused(jwks_):
    impostor = dict(jwks_["ed"], kid=jwks_["ec"]["kid"])
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([jwks_["ec"], jwks_["rsa"], impostor])
    message = _error(excinfo)
    assert jwks_["ec"]["kid"] in message
    assert "keys[0]" in message and "keys[2]" in message
    assert "different keys" in message


def test_same_kid_same_key_with_other_members_is_refused(jwks_):
    other_alg = dict(jwks_["rsa"], alg="PS256")
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([jwks_["rsa"], other_alg])
    message = _error(excinfo)
    assert jwks_["rsa"]["kid"] in message and "alg" in message and "same key" in message


@pytest.mark.parametrize("member", list(_jwk.PRIVATE_JWK_MEMBERS))
def test_private_members_are_refused_without_echoing_them(jwks_, member):
    value = [{"r": SECRET, "d": SECRET, "t": SECRET}] if member == "oth" else SECRET
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([jwks_["ed"], dict(jwks_["rsa"], **{member: value})])
    message = _error(excinfo)
    assert "keys[1]" in message and member in message
    assert SECRET not in message


def test_private_member_in_json_text_and_inside_a_jwks_is_refused(jwks_):
    for item in (json.dumps(dict(jwks_["ec"], d=SECRET)), {"keys": [jwks_["ed"], dict(jwks_["ec"], d=SECRET)]}):
        with pytest.raises(JoseError) as excinfo:
            _jwks.collect_keys([item])
        assert "private" in _error(excinfo) and SECRET not in _error(excinfo)


def test_pem_private_key_is_refused_without_echoing_it(private_keys):
    pem = _keys.private_key_pem(private_keys["ec"]).decode("ascii")
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([pem])
    message = _error(excinfo)
    assert "private key" in message
    body = pem.splitlines()[1]
    assert body not in message


def test_symmetric_key_is_refused():
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([{"kty": "oct", "kid": "hmac"}])
    assert "symmetric (oct) key" in _error(excinfo)


@pytest.mark.parametrize("jwk, expected", [
    ({"kty": "XYZ", "kid": "a", "x": "AAAA"}, "unknown kty"),
    ({"kid": "a", "n": "AQAB", "e": "AQAB"}, "unknown kty"),
    ({"kty": "RSA", "kid": "a", "e": "AQAB"}, "lacks member"),
    ({"kty": "EC", "kid": "a", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "32 bytes"),
    ({"kty": "EC", "kid": "a", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"}, "unsupported curve"),
    ({"kty": "OKP", "kid": "a", "crv": "Ed25519", "x": "not base64url!"}, "base64url"),
    ({"kty": "OKP", "kid": "a", "crv": "X25519", "x": "AAAA"}, "unsupported OKP curve"),
])
def test_malformed_keys_are_refused(jwk, expected):
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([jwk])
    assert expected in _error(excinfo)
    assert "keys[0]" in _error(excinfo)


def test_ec_point_not_on_the_curve_is_refused(jwks_):
    bad = dict(jwks_["ec"], y=jwks_["ec"]["x"])
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([bad])
    assert "not a valid EC key" in _error(excinfo)


def test_weak_rsa_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([_keys.public_key_pem(weak)])
    assert "2048" in _error(excinfo)


@pytest.mark.parametrize("item", [42, None, ["a"], "just text"])
def test_inputs_that_are_no_keys_are_refused(item):
    with pytest.raises(JoseError) as excinfo:
        _jwks.collect_keys([item])
    assert "keys[0]" in _error(excinfo)


def test_keys_must_be_a_list(jwks_):
    with pytest.raises(JoseError):
        _jwks.collect_keys(jwks_["ec"])


# --------------------------------------------------------------------------------------
# parse_jwks
# --------------------------------------------------------------------------------------

def test_parse_jwks_absent_blank_and_valid(jwks_):
    assert _jwks.parse_jwks(None) is None
    assert _jwks.parse_jwks(b"  \n") == []
    assert _jwks.parse_jwks(json.dumps({"keys": [jwks_["ec"]]}).encode()) == [jwks_["ec"]]
    assert _jwks.parse_jwks({"keys": []}) == []


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"key": []}', b'{"keys": {}}', b'{"keys": ["x"]}'])
def test_parse_jwks_refuses_what_is_not_a_jwks(data):
    with pytest.raises(JoseError) as excinfo:
        _jwks.parse_jwks(data, "JWKS file /x")
    assert "JWKS file /x is not a JWKS" in _error(excinfo)
    assert "left unchanged" in _error(excinfo)


# --------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------

def test_plan_document_is_sorted_and_ordered(jwks_):
    result = _jwks.plan([jwks_["rsa"], jwks_["ed"], jwks_["ec"]])
    document = json.loads(result["document"])
    kids = [key["kid"] for key in document["keys"]]
    assert kids == sorted(kids) == result["kids"]
    for key in document["keys"]:
        names = list(key)
        assert names[:4] == ["kty", "kid", "use", "alg"]
    assert result["document"].endswith("}\n") and '\n  "keys": [\n' in result["document"]
    assert result["jwks"] == document
    assert result["size"] == len(result["document"].encode("utf-8"))


def test_plan_without_existing_adds_everything(jwks_):
    result = _jwks.plan([jwks_["ec"], jwks_["ed"]])
    assert result["added"] == result["kids"] == sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"]])
    assert result["removed"] == [] and result["updated"] == []
    assert result["changed"] is True
    assert result["before_document"] is None and result["before_kids"] == []


def test_plan_is_byte_identical_for_any_order_and_duplicates(jwks_, private_keys):
    rsa_pem = _keys.public_key_pem(private_keys["rsa"])
    first = _jwks.plan([jwks_["ec"], jwks_["ed"], rsa_pem])["document"]
    second = _jwks.plan([rsa_pem, jwks_["ed"], jwks_["ec"], jwks_["ed"]])["document"]
    assert first == second


def test_plan_unchanged_when_existing_is_identical(jwks_):
    document = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([jwks_["ed"], jwks_["ec"]], existing=document.encode("utf-8"))
    assert result["changed"] is False
    assert result["added"] == result["removed"] == result["updated"] == []
    assert result["before_document"] == document


def test_plan_rewrites_the_same_keys_in_other_formatting(jwks_):
    compact = json.dumps({"keys": [jwks_["ec"]]}, separators=(",", ":"))
    result = _jwks.plan([jwks_["ec"]], existing=compact)
    assert result["changed"] is True
    assert result["added"] == result["removed"] == result["updated"] == []


def test_plan_replace_mode_removes_unlisted_keys(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([jwks_["ec"], jwks_["rsa"]], existing=old)
    assert result["added"] == [jwks_["rsa"]["kid"]]
    assert result["removed"] == [jwks_["ed"]["kid"]]
    assert result["kids"] == sorted([jwks_["ec"]["kid"], jwks_["rsa"]["kid"]])


def test_plan_merge_keeps_existing_keys(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([jwks_["rsa"]], existing=old, merge=True)
    assert result["kids"] == sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"], jwks_["rsa"]["kid"]])
    assert result["added"] == [jwks_["rsa"]["kid"]] and result["removed"] == []


def test_plan_merge_with_nothing_new_is_unchanged(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([], existing=old, merge=True)
    assert result["changed"] is False and result["document"] == old


def test_plan_merge_updates_members_of_the_same_key(jwks_, cert_pem):
    old = _jwks.plan([jwks_["ec"]])["document"]
    result = _jwks.plan([cert_pem], existing=old, merge=True)
    assert result["updated"] == [jwks_["ec"]["kid"]]
    assert result["added"] == result["removed"] == []
    assert "x5c" in result["jwks"]["keys"][0]


def test_plan_merge_refuses_a_kid_reused_for_another_key(jwks_):
    old = _jwks.plan([jwks_["ec"]])["document"]
    reuse = dict(jwks_["ed"], kid=jwks_["ec"]["kid"])
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([reuse], existing=old, merge=True, existing_what="JWKS file /srv/jwks.json")
    message = _error(excinfo)
    assert jwks_["ec"]["kid"] in message and "JWKS file /srv/jwks.json" in message and "reused" in message


def test_plan_merge_allows_reuse_when_the_old_kid_is_revoked_and_the_new_one_too(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    reuse = dict(jwks_["rsa"], kid=jwks_["ec"]["kid"])
    result = _jwks.plan([reuse], existing=old, merge=True, revoke=[jwks_["ec"]["kid"]])
    assert result["kids"] == [jwks_["ed"]["kid"]]
    assert result["revoked"] == [jwks_["ec"]["kid"]]


def test_plan_refuses_one_key_under_two_kids_across_merge(jwks_):
    old = _jwks.plan([jwks_["ec"]])["document"]
    alias = dict(jwks_["ec"], kid="edge-1")
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([alias], existing=old, merge=True)
    assert "edge-1" in _error(excinfo) and jwks_["ec"]["kid"] in _error(excinfo)
    result = _jwks.plan([alias], existing=old, merge=True, revoke=[jwks_["ec"]["kid"]])
    assert result["kids"] == ["edge-1"]


def test_plan_merge_refuses_existing_private_material_without_echo(jwks_):
    old = json.dumps({"keys": [dict(jwks_["ec"], d=SECRET)]})
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([jwks_["ed"]], existing=old, merge=True)
    assert "private key material" in _error(excinfo) and SECRET not in _error(excinfo)


def test_plan_replace_mode_hides_existing_private_material(jwks_):
    old = json.dumps({"keys": [dict(jwks_["ec"], d=SECRET)]})
    result = _jwks.plan([jwks_["ed"]], existing=old)
    assert result["before_hidden"] is True and result["before_document"] is None
    assert any("compromised" in warning for warning in result["warnings"])
    assert SECRET not in json.dumps(result)
    assert result["removed"] == [jwks_["ec"]["kid"]]


def test_plan_merge_refuses_invalid_existing_key(jwks_):
    old = json.dumps({"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB"}]})
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([jwks_["ed"]], existing=old, merge=True, existing_what="JWKS file /j")
    assert "JWKS file /j keys[0]" in _error(excinfo)


def test_plan_revoke_wins_over_keys_with_a_warning(jwks_):
    result = _jwks.plan([jwks_["ec"], jwks_["ed"]], revoke=[jwks_["ed"]["kid"]])
    assert result["kids"] == [jwks_["ec"]["kid"]]
    assert result["revoked"] == [jwks_["ed"]["kid"]]
    assert len(result["warnings"]) == 1 and jwks_["ed"]["kid"] in result["warnings"][0]


def test_plan_revoke_of_absent_kid_is_reported_not_removed(jwks_):
    old = _jwks.plan([jwks_["ec"]])["document"]
    result = _jwks.plan([], existing=old, merge=True, revoke=["gone-long-ago"])
    assert result["revoke_not_found"] == ["gone-long-ago"]
    assert result["revoked"] == [] and result["removed"] == [] and result["changed"] is False
    assert result["warnings"] == []


def test_plan_revoke_from_existing_in_merge_mode(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([], existing=old, merge=True, revoke=[jwks_["ed"]["kid"]])
    assert result["kids"] == [jwks_["ec"]["kid"]]
    assert result["removed"] == result["revoked"] == [jwks_["ed"]["kid"]]


@pytest.mark.parametrize("revoke", ["a-kid", [""], [3]])
def test_plan_revoke_must_be_a_list_of_kids(jwks_, revoke):
    with pytest.raises(JoseError):
        _jwks.plan([jwks_["ec"]], revoke=revoke)


def test_plan_refuses_an_empty_jwks_unless_allowed(jwks_):
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([])
    assert "no key" in _error(excinfo) and "allow_empty" in _error(excinfo)
    with pytest.raises(JoseError):
        _jwks.plan([jwks_["ec"]], revoke=[jwks_["ec"]["kid"]])
    result = _jwks.plan([], allow_empty=True)
    assert result["document"] == '{\n  "keys": []\n}\n'
    assert result["kids"] == []


def test_plan_refuses_a_non_jwks_existing_file(jwks_):
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan([jwks_["ec"]], existing=b"-----BEGIN PRIVATE KEY-----\n", existing_what="JWKS file /etc/x")
    assert "JWKS file /etc/x is not a JWKS" in _error(excinfo)
    assert "BEGIN" not in _error(excinfo)


def test_plan_existing_as_dict(jwks_):
    result = _jwks.plan([jwks_["ed"]], existing={"keys": [jwks_["ec"]]}, merge=True)
    assert result["added"] == [jwks_["ed"]["kid"]]
    assert sorted(result["kids"]) == sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"]])


# --------------------------------------------------------------------------------------
# budget
# --------------------------------------------------------------------------------------

def test_budget_limits(jwks_):
    keys = [jwks_["ec"], jwks_["ed"], jwks_["rsa"]]
    size = _jwks.plan(keys)["size"]
    assert _jwks.plan(keys, max_keys=3, max_bytes=size)["size"] == size
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan(keys, max_keys=2)
    assert "3 keys" in _error(excinfo) and "budget of 2 keys" in _error(excinfo) and "shards" in _error(excinfo)
    with pytest.raises(JoseError) as excinfo:
        _jwks.plan(keys, max_bytes=size - 1)
    assert "%d bytes" % size in _error(excinfo)


@pytest.mark.parametrize("value, expected", [
    (None, []), ([], []), ("", []), ("  ", []),
    ({}, [{}]),
    ([{"kty": "EC"}], [{"kty": "EC"}]),
    ({"kty": "EC"}, [{"kty": "EC"}]),
    ('{"kty": "EC"}', ['{"kty": "EC"}']),
    ('  [{"kty": "EC"}, "pem"]', [{"kty": "EC"}, "pem"]),
    ("-----BEGIN PUBLIC KEY-----\nA,B\n", ["-----BEGIN PUBLIC KEY-----\nA,B\n"]),
])
def test_key_list_takes_every_form(value, expected):
    assert _jwks.key_list(value) == expected


@pytest.mark.parametrize("value, message", [
    (True, "keys must be a list of keys (JWK dicts, JSON or PEM texts), got bool"),
    (5, "got int"),
    ('[{"kty": "EC", "d": "%s"' % SECRET, "keys is a text that starts like a JSON list but is not valid JSON"),
])
def test_key_list_refuses_other_values_without_echo(value, message):
    with pytest.raises(JoseError) as excinfo:
        _jwks.key_list(value)
    assert message in _error(excinfo) and SECRET not in _error(excinfo)


# --------------------------------------------------------------------------------------
# discovery and diff
# --------------------------------------------------------------------------------------

def test_discovery_document(jwks_):
    no_alg = dict((name, value) for name, value in jwks_["ec384"].items() if name != "alg")
    jwks = _jwks.plan([jwks_["ed"], jwks_["rsa"], no_alg])["jwks"]
    doc, text = _jwks.discovery("http://edge-jwks.default.svc.cluster.local",
                                "http://edge-jwks.default.svc.cluster.local/jwks.json", jwks)
    assert json.loads(text) == doc
    assert doc["issuer"] == "http://edge-jwks.default.svc.cluster.local"
    assert doc["jwks_uri"] == "http://edge-jwks.default.svc.cluster.local/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["ES384", "EdDSA", "RS256"]
    assert _jwks.discovery(doc["issuer"], doc["jwks_uri"], jwks)[1] == text


@pytest.mark.parametrize("issuer, jwks_uri, expected", [
    ("edge-issuer", "http://a/jwks.json", "issuer"),
    ("http://a/?x=1", "http://a/jwks.json", "issuer"),
    ("http://a#frag", "http://a/jwks.json", "issuer"),
    ("", "http://a/jwks.json", "issuer"),
    ("http://a", "file:///etc/jwks.json", "jwks_uri"),
    ("http://a", None, "jwks_uri"),
])
def test_discovery_refuses_bad_urls(issuer, jwks_uri, expected):
    with pytest.raises(JoseError) as excinfo:
        _jwks.discovery(issuer, jwks_uri, {"keys": []})
    assert _error(excinfo).startswith(expected)


def _without_alg(jwk):
    return dict((name, value) for name, value in jwk.items() if name != "alg")


def test_jwk_algorithm_defaults(jwks_):
    strip = _without_alg
    assert _algorithms.jwk_algorithm(strip(jwks_["rsa"])) == "RS256"
    assert _algorithms.jwk_algorithm(strip(jwks_["ec384"])) == "ES384"
    assert _algorithms.jwk_algorithm(strip(jwks_["ed"])) == "EdDSA"
    assert _algorithms.jwk_algorithm(dict(jwks_["rsa"], alg="PS512")) == "PS512"
    with pytest.raises(JoseError):
        _algorithms.jwk_algorithm({"kty": "oct", "kid": "x"})


def test_check_discovery_existing():
    assert _jwks.check_discovery_existing(None) is None
    assert _jwks.check_discovery_existing(b"") == ""
    document = b'{"issuer": "https://a", "jwks_uri": "https://a/jwks.json", "x": [1]}'
    assert _jwks.check_discovery_existing(document) == document.decode()
    for data in (b"-----BEGIN PRIVATE KEY-----", b"[1]"):
        with pytest.raises(JoseError) as excinfo:
            _jwks.check_discovery_existing(data, "discovery_dest /d")
        assert "discovery_dest /d" in _error(excinfo) and "left unchanged" in _error(excinfo)


@pytest.mark.parametrize("value, reason", [
    ({"issuer": "https://a"}, "lacks the text member(s) jwks_uri"),
    ({"jwks_uri": "https://a/j"}, "lacks the text member(s) issuer"),
    ({"issuer": 1, "jwks_uri": "https://a/j"}, "lacks the text member(s) issuer"),
    ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB", "d": SECRET}, "private key material (member d)"),
    ({"issuer": "https://a", "jwks_uri": "https://a/j", "signing": {"kty": "oct", "k": SECRET}},
     "private key material (member k)"),
    ({"issuer": "https://a", "jwks_uri": "https://a/j", "pem": "-----BEGIN PRIVATE KEY-----\n%s" % SECRET},
     "private key material (a PEM private key)"),
    ({"issuer": "https://a", "jwks_uri": "https://a/j", "keys": []}, "has a 'keys' member"),
])
def test_check_discovery_existing_refuses_other_documents_without_echo(value, reason):
    with pytest.raises(JoseError) as excinfo:
        _jwks.check_discovery_existing(json.dumps(value).encode(), "discovery_dest /d")
    message = _error(excinfo)
    assert message.startswith("discovery_dest /d is not a discovery document") and reason in message
    assert "left unchanged and is not shown" in message and "move the file away" in message
    assert SECRET not in message


@pytest.mark.parametrize("value, named", [
    ({"keys": [], "d": SECRET}, "member d"),
    ({"keys": [], "private": SECRET}, "member private"),
    ({"keys": [{"kty": "EC", "kid": "a", "private_key": SECRET}]}, "key member private_key"),
    ({"keys": [{"kty": "EC", "kid": "a", "x": {"inner": SECRET}}]}, "key member x that is not text"),
    ({"keys": [{"kty": "EC", "kid": "a", "x5c": ["-----BEGIN PRIVATE KEY-----" + SECRET]}]}, "a PEM private key"),
])
def test_undisclosed_members_name_what_is_not_public(value, named):
    assert named in _jwks.undisclosed_members(value)
    assert SECRET not in " ".join(_jwks.undisclosed_members(value))


def test_undisclosed_members_of_a_public_jwks_is_empty(jwks_):
    assert _jwks.undisclosed_members({"keys": [jwks_["ec"], jwks_["rsa"], jwks_["ed"]]}) == []
    assert _jwks.undisclosed_members(None) == []


def test_plan_hides_an_existing_file_that_is_not_a_public_jwks(jwks_):
    old = json.dumps({"keys": [dict(jwks_["ec"], private_key="-----BEGIN PRIVATE KEY-----\n" + SECRET)]})
    result = _jwks.plan([jwks_["ed"]], existing=old)
    assert result["before_hidden"] is True and result["before_document"] is None
    assert any("was not a JWKS of public keys only (it held a PEM private key, key member private_key)" in warning
               and "replaced by public keys only" in warning for warning in result["warnings"])
    entries = _jwks.diff_entries("/x/jwks.json", result)
    assert SECRET not in json.dumps(result) + json.dumps(entries)
    assert "previous content not shown" in entries[1]["before"]


def test_diff_entries_show_kids_and_text(jwks_):
    old = _jwks.plan([jwks_["ec"], jwks_["ed"]])["document"]
    result = _jwks.plan([jwks_["ec"], jwks_["rsa"]], existing=old)
    kids_diff, text_diff = _jwks.diff_entries("/srv/jwks.json", result)
    assert kids_diff["before"] == "".join(k + "\n" for k in sorted([jwks_["ec"]["kid"], jwks_["ed"]["kid"]]))
    assert kids_diff["after"] == "".join(k + "\n" for k in result["kids"])
    assert text_diff["before"] == old and text_diff["after"] == result["document"]
    assert text_diff["before_header"] == "/srv/jwks.json"


def test_diff_entries_hide_private_material(jwks_):
    result = _jwks.plan([jwks_["ed"]], existing=json.dumps({"keys": [dict(jwks_["ec"], d=SECRET)]}))
    entries = _jwks.diff_entries("/srv/jwks.json", result)
    assert SECRET not in json.dumps(entries)
    assert "not shown" in entries[1]["before"]


def test_text_diff_decodes_bytes():
    assert _jwks.text_diff("/p", b"a\n", "b\n") == {"before_header": "/p", "after_header": "/p",
                                                    "before": "a\n", "after": "b\n"}
    assert _jwks.text_diff("/p", None, None)["before"] == ""


# --------------------------------------------------------------------------------------
# Property: the document depends on the set of keys only
# --------------------------------------------------------------------------------------

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_document_depends_on_the_key_set_only(jwks_, data):
        pool = [jwks_["ec"], jwks_["ec384"], jwks_["ed"], jwks_["rsa"]]
        chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8))
        shuffled = data.draw(st.permutations(chosen))
        first = _jwks.plan(chosen)
        second = _jwks.plan(list(shuffled) + chosen[:1])
        assert first["document"] == second["document"]
        assert first["kids"] == sorted(set(key["kid"] for key in chosen))
        assert _jwks.plan(chosen, existing=first["document"])["changed"] is False


@pytest.mark.parametrize("cold", [True, False])
def test_plan_output_is_the_json_of_its_keys(private_keys, cert_pem, cold):
    """The document is json.dumps(indent=2) of the keys and ``jwks`` its parse, for every key shape."""
    bare = dict((name, value) for name, value in _jwk.public_jwk(private_keys["ec384"]).items()
                if name not in ("kid", "alg", "use"))
    # EC P-384 without kid/alg/use, Ed25519, RSA and an EC P-256 certificate (a JWK with x5c).
    inputs = [bare, _jwk.public_jwk(private_keys["ed"]), _jwk.public_jwk(private_keys["rsa"]), cert_pem]
    if cold:
        _jwk.clear_caches()
    result = _jwks.plan(inputs)
    keys = result["jwks"]["keys"]
    assert [key["kid"] for key in keys] == result["kids"] and len(keys) == 4
    assert result["document"] == json.dumps({"keys": keys}, indent=2) + "\n"
    assert result["jwks"] == json.loads(result["document"])
    assert [name for name in keys[0] if name in ("kty", "kid", "use")] == list(keys[0])[:3]
    assert sum(1 for key in keys if isinstance(key.get("x5c"), list)) == 1
    for key in keys:
        assert list(key) == [name for name in _jwk.PUBLIC_JWK_MEMBERS if name in key]
    # Thumbprints remembered while validating are the ones computed from scratch (RFC 7638).
    remembered = [_jwk.thumbprint(key) for key in keys]
    _jwk.clear_caches()
    assert remembered == [_jwk.thumbprint(dict(key, kid="other")) for key in keys]
    assert _jwk.thumbprint(bare) in result["kids"]


DEEP_JSON = "[" * 100000 + "]" * 100000


def test_deeply_nested_published_documents_are_refused():
    """Nesting deeper than the JSON decoder goes is a JoseError, not a RecursionError traceback."""
    for text in (DEEP_JSON, '{"keys": %s}' % DEEP_JSON):
        with pytest.raises(JoseError, match="not valid JSON"):
            _jwks.parse_jwks(text.encode("ascii"))
        with pytest.raises(JoseError, match="not valid JSON"):
            _jwks.plan([], existing=text, allow_empty=True)
        with pytest.raises(JoseError, match="not a JSON document"):
            _jwks.check_discovery_existing(text.encode("ascii"))
        with pytest.raises(JoseError, match="not valid JSON|neither a JWK"):
            _jwks.collect_keys([text])
