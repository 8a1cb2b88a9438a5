# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _jwk, _jwks_module, _keys
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish
from helpers import file_mode as mode_of, read_file as read, run_module_main  # pylint: disable=import-error

SECRET = "U2VjcmV0LXByaXZhdGUtbWF0ZXJpYWwtdGhhdC1tdXN0LW5vdC1sZWFr"
ISSUER = "http://edge-jwks.default.svc.cluster.local"
JWKS_URI = ISSUER + "/jwks.json"


@pytest.fixture(scope="module")
def jwks_():
    keys = {
        "ec": _keys.generate_private_key("ec", curve="P-256"),
        "ed": _keys.generate_private_key("ed25519"),
        "rsa": _keys.generate_private_key("rsa", size=2048),
    }
    return dict((name, _jwk.public_jwk(key)) for name, key in keys.items())


def run(capsys, check_mode=False, diff=False, **args):
    output, result, code = run_module_main(jwks_publish, args, capsys, check_mode=check_mode, diff=diff)
    result["_raw"] = output
    assert (code != 0) == bool(result.get("failed"))
    return result


def warnings_of(result):
    """Warning texts; ansible-core 2.19 wraps each one in a WarningSummary dict."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def kids(*jwks):
    return sorted(jwk["kid"] for jwk in jwks)


def test_without_dest_only_assembles(capsys, jwks_, tmp_path):
    result = run(capsys, keys=[jwks_["ec"], jwks_["ed"]])
    assert result["changed"] is False
    assert result["kids"] == result["added"] == kids(jwks_["ec"], jwks_["ed"])
    assert result["dest"] is None and result["discovery"] is None and result["discovery_document"] is None
    assert json.loads(result["document"]) == result["jwks"]
    assert result["size"] == len(result["document"].encode("utf-8"))
    assert "diff" not in run(capsys, diff=True, keys=[jwks_["ec"]])


def test_check_mode_then_write_then_idempotent(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    checked = run(capsys, check_mode=True, keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest))
    assert checked["changed"] is True and checked["added"] == kids(jwks_["ec"], jwks_["ed"])
    assert os.listdir(str(tmp_path)) == []

    written = run(capsys, keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest))
    assert written["changed"] is True
    assert read(str(dest)) == written["document"].encode("utf-8") == checked["document"].encode("utf-8")
    assert mode_of(str(dest)) == 0o644

    again = run(capsys, keys=[jwks_["ed"], jwks_["ec"], jwks_["ec"]], dest=str(dest))
    assert again["changed"] is False and again["added"] == [] and again["removed"] == []
    assert sorted(os.listdir(str(tmp_path))) == ["jwks.json"]


def test_check_mode_reports_removal_without_writing(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    run(capsys, keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest))
    before = read(str(dest))
    result = run(capsys, check_mode=True, keys=[jwks_["ec"], jwks_["rsa"]], dest=str(dest))
    assert result["changed"] is True
    assert result["added"] == [jwks_["rsa"]["kid"]] and result["removed"] == [jwks_["ed"]["kid"]]
    assert read(str(dest)) == before


def test_mode_option_and_attribute_only_change(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    run(capsys, keys=[jwks_["ec"]], dest=str(dest), mode="0600")
    assert mode_of(str(dest)) == 0o600
    content = read(str(dest))
    assert run(capsys, check_mode=True, keys=[jwks_["ec"]], dest=str(dest))["changed"] is True
    assert mode_of(str(dest)) == 0o600
    result = run(capsys, keys=[jwks_["ec"]], dest=str(dest))
    assert result["changed"] is True and mode_of(str(dest)) == 0o644 and read(str(dest)) == content
    assert run(capsys, keys=[jwks_["ec"]], dest=str(dest))["changed"] is False


def test_diff_lists_kids_and_text(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    first = run(capsys, keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest))
    result = run(capsys, diff=True, check_mode=True, keys=[jwks_["ec"], jwks_["rsa"]], dest=str(dest))
    kids_diff, text_diff = result["diff"]
    assert kids_diff["before"].split() == kids(jwks_["ec"], jwks_["ed"])
    assert kids_diff["after"].split() == kids(jwks_["ec"], jwks_["rsa"])
    assert text_diff["before"] == first["document"] and text_diff["after"] == result["document"]


def test_private_jwk_is_refused_and_never_echoed(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    result = run(capsys, keys=[jwks_["ed"], dict(jwks_["ec"], d=SECRET)], dest=str(dest))
    assert result["failed"] is True
    assert "keys[1]" in result["msg"] and "(d)" in result["msg"]
    # Not in the message, and not in the logged module arguments (invocation) either.
    assert SECRET not in result["_raw"]
    assert "invocation" in result
    assert not dest.exists()


def test_private_pem_is_refused_and_never_echoed(capsys, tmp_path):
    pem = _keys.private_key_pem(_keys.generate_private_key("ec")).decode("ascii")
    result = run(capsys, keys=[pem], dest=str(tmp_path / "jwks.json"))
    assert result["failed"] is True and "private key" in result["msg"]
    assert pem.splitlines()[1] not in result["_raw"]


def _private_ec_jwk():
    key = _keys.generate_private_key("ec")
    numbers = key.private_numbers()
    return dict(_jwk.public_jwk(key), d=_jose.b64url_encode(numbers.private_value.to_bytes(32, "big")))


#: Every form the keys option takes, each with a private JWK in it, and the label it is refused under.
PRIVATE_FORMS = {
    "list": (lambda jwk, other: [other, jwk], "keys[1] contains private"),
    "one-dict": (lambda jwk, other: jwk, "keys[0] contains private"),
    "json-text": (lambda jwk, other: json.dumps(jwk), "keys[0] contains private"),
    "json-list-text": (lambda jwk, other: json.dumps([other, jwk]), "keys[1] contains private"),
    "jwks-dict": (lambda jwk, other: {"keys": [other, jwk]}, "keys[0].keys[1] contains private"),
    "jwks-text-in-a-list": (lambda jwk, other: [json.dumps({"keys": [jwk]})], "keys[0].keys[0] contains private"),
    "python-text": (lambda jwk, other: str(jwk), "keys[0] is not valid JSON"),
    "broken-json-text": (lambda jwk, other: json.dumps(jwk)[:-1], "keys[0] is not valid JSON"),
    "broken-json-list-text": (lambda jwk, other: json.dumps([jwk])[:-1], "keys is a text that starts like a JSON"),
}


@pytest.mark.parametrize("form", sorted(PRIVATE_FORMS))
def test_private_jwk_in_any_form_reaches_neither_syslog_nor_invocation(capsys, jwks_, syslog_sent, form):
    jwk = _private_ec_jwk()
    make, label = PRIVATE_FORMS[form]
    result = run(capsys, keys=make(jwk, jwks_["ed"]))
    assert result["failed"] is True and label in result["msg"], result["msg"]
    # The module logged its arguments (the channel works) ...
    assert [message for message in syslog_sent if message.startswith("Invoked with keys=")]
    # ... without the private value, there and in what -vvv shows (invocation).
    assert "invocation" in result
    assert jwk["d"] not in result["_raw"]
    assert not [message for message in syslog_sent if jwk["d"] in message]


@pytest.mark.parametrize("form", ["dict", "text"])
def test_private_jwks_in_current_reaches_neither_syslog_nor_invocation(capsys, jwks_, syslog_sent, form):
    jwk = _private_ec_jwk()
    current = {"keys": [jwk]}
    result = run(capsys, keys=[jwks_["ed"]], current=json.dumps(current) if form == "text" else current, merge=True)
    assert result["failed"] is True and "cannot be merged" in result["msg"]
    assert syslog_sent and jwk["d"] not in result["_raw"] + "".join(syslog_sent)


def test_private_pem_text_reaches_neither_syslog_nor_invocation(capsys, syslog_sent):
    pem = _keys.private_key_pem(_keys.generate_private_key("rsa", size=2048)).decode("ascii")
    result = run(capsys, keys=pem)
    assert result["failed"] is True and "keys[0] is a private key" in result["msg"]
    assert syslog_sent
    for line in pem.splitlines():
        assert line not in result["_raw"] and not [message for message in syslog_sent if line in message]


@pytest.mark.parametrize("form", ["one-dict", "json-text", "json-list-text", "pem-text"])
def test_keys_in_other_forms_than_a_list_are_published(capsys, jwks_, form):
    keys = {
        "one-dict": jwks_["ec"],
        "json-text": json.dumps(jwks_["ec"]),
        "json-list-text": json.dumps([jwks_["ec"], jwks_["ed"]]),
        "pem-text": _keys.public_key_pem(_jwk.jwk_to_public_key(jwks_["ec"])[1]),
    }[form]
    result = run(capsys, keys=keys)
    expected = kids(jwks_["ec"], jwks_["ed"]) if form == "json-list-text" else [jwks_["ec"]["kid"]]
    assert result.get("failed") is not True, result.get("msg")
    assert result["kids"] == expected


def test_duplicate_kid_with_other_key_is_refused_and_file_kept(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    run(capsys, keys=[jwks_["ec"]], dest=str(dest))
    before = read(str(dest))
    impostor = dict(jwks_["ed"], kid=jwks_["ec"]["kid"])
    result = run(capsys, keys=[jwks_["ec"], impostor], dest=str(dest))
    assert result["failed"] is True and jwks_["ec"]["kid"] in result["msg"]
    assert read(str(dest)) == before


def test_unknown_kty_is_refused(capsys):
    result = run(capsys, keys=[{"kty": "PQC", "kid": "future", "x": "AAAA"}])
    assert result["failed"] is True and "unknown kty" in result["msg"] and "keys[0]" in result["msg"]


def test_dest_that_is_not_a_jwks_is_left_alone(capsys, jwks_, tmp_path):
    dest = tmp_path / "config.yml"
    dest.write_bytes(b"important: data\n")
    result = run(capsys, keys=[jwks_["ec"]], dest=str(dest))
    assert result["failed"] is True and "is not a JWKS" in result["msg"]
    assert read(str(dest)) == b"important: data\n"


def test_missing_directory_is_a_clear_failure(capsys, jwks_, tmp_path):
    result = run(capsys, keys=[jwks_["ec"]], dest=str(tmp_path / "nope" / "jwks.json"))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_empty_jwks_needs_allow_empty(capsys, tmp_path):
    dest = tmp_path / "jwks.json"
    result = run(capsys, keys=[], dest=str(dest))
    assert result["failed"] is True and "allow_empty" in result["msg"] and not dest.exists()
    result = run(capsys, keys=[], dest=str(dest), allow_empty=True)
    assert result["changed"] is True and json.loads(read(str(dest))) == {"keys": []}


def test_merge_and_revoke(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    run(capsys, keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest))
    merged = run(capsys, keys=[jwks_["rsa"]], dest=str(dest), merge=True)
    assert merged["changed"] is True and merged["added"] == [jwks_["rsa"]["kid"]]
    assert merged["kids"] == kids(jwks_["ec"], jwks_["ed"], jwks_["rsa"])
    assert os.path.exists(str(tmp_path / ".jwks.json.lock"))

    revoked = run(capsys, dest=str(dest), merge=True, revoke=[jwks_["ed"]["kid"], "never-published"])
    assert revoked["changed"] is True
    assert revoked["removed"] == revoked["revoked"] == [jwks_["ed"]["kid"]]
    assert revoked["revoke_not_found"] == ["never-published"]
    assert [key["kid"] for key in json.loads(read(str(dest)))["keys"]] == kids(jwks_["ec"], jwks_["rsa"])

    again = run(capsys, dest=str(dest), merge=True, revoke=[jwks_["ed"]["kid"], "never-published"])
    assert again["changed"] is False and again["revoked"] == [] and again.get("warnings") is None


def test_revoke_wins_over_keys_with_a_warning(capsys, jwks_, tmp_path):
    result = run(capsys, keys=[jwks_["ec"], jwks_["ed"]], revoke=[jwks_["ed"]["kid"]], dest=str(tmp_path / "j.json"))
    assert result["kids"] == [jwks_["ec"]["kid"]]
    assert any(jwks_["ed"]["kid"] in warning and "revoke wins" in warning for warning in warnings_of(result))


def test_merge_needs_what_is_published(capsys, jwks_):
    result = run(capsys, keys=[jwks_["ec"]], merge=True)
    assert result["failed"] is True and "current" in result["msg"]


@pytest.mark.parametrize("form", ["dict", "text"])
def test_current_instead_of_dest(capsys, jwks_, form):
    current = {"keys": [jwks_["ec"], jwks_["ed"]]}
    if form == "text":
        current = json.dumps(current)
    result = run(capsys, keys=[jwks_["rsa"]], current=current, merge=True, revoke=[jwks_["ed"]["kid"]])
    assert result["changed"] is False
    assert result["kids"] == kids(jwks_["ec"], jwks_["rsa"])
    assert result["added"] == [jwks_["rsa"]["kid"]] and result["removed"] == [jwks_["ed"]["kid"]]


def test_current_empty_means_nothing_published(capsys, jwks_):
    result = run(capsys, keys=[jwks_["ec"]], current="", merge=True)
    assert result["added"] == [jwks_["ec"]["kid"]] and result["removed"] == []


def test_dest_and_current_are_exclusive(capsys, jwks_, tmp_path):
    result = run(capsys, keys=[jwks_["ec"]], current="", dest=str(tmp_path / "j.json"))
    assert result["failed"] is True and "mutually exclusive" in result["msg"]


def test_discovery_document_written_and_idempotent(capsys, jwks_, tmp_path):
    dest, disc = tmp_path / "jwks.json", tmp_path / "openid-configuration"
    args = dict(keys=[jwks_["ec"], jwks_["ed"]], dest=str(dest), issuer=ISSUER, jwks_uri=JWKS_URI,
                discovery_dest=str(disc))
    result = run(capsys, **args)
    assert result["changed"] is True
    assert json.loads(read(str(disc))) == result["discovery"]
    assert read(str(disc)) == result["discovery_document"].encode("utf-8")
    assert result["discovery"]["jwks_uri"] == JWKS_URI
    assert result["discovery"]["id_token_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert mode_of(str(disc)) == 0o644
    assert run(capsys, **args)["changed"] is False
    # A new key type changes only the discovery document's algorithm list and the JWKS.
    args["keys"] = args["keys"] + [jwks_["rsa"]]
    diffed = run(capsys, diff=True, **args)
    assert diffed["changed"] is True and len(diffed["diff"]) == 3
    assert "RS256" in diffed["diff"][2]["after"] and "RS256" not in diffed["diff"][2]["before"]


def test_discovery_without_dest_is_returned(capsys, jwks_):
    result = run(capsys, keys=[jwks_["ed"]], issuer=ISSUER, jwks_uri=JWKS_URI)
    assert result["changed"] is False and result["discovery"]["issuer"] == ISSUER


def test_discovery_options_are_checked(capsys, jwks_, tmp_path):
    result = run(capsys, keys=[jwks_["ed"]], discovery_dest=str(tmp_path / "d"))
    assert result["failed"] is True and "discovery_dest" in result["msg"]
    result = run(capsys, keys=[jwks_["ed"]], issuer=ISSUER)
    assert result["failed"] is True and "jwks_uri" in result["msg"]
    result = run(capsys, keys=[jwks_["ed"]], issuer="edge", jwks_uri=JWKS_URI)
    assert result["failed"] is True and result["msg"].startswith("issuer")
    same = str(tmp_path / "j.json")
    result = run(capsys, keys=[jwks_["ed"]], dest=same, issuer=ISSUER, jwks_uri=JWKS_URI, discovery_dest=same)
    assert result["failed"] is True and "same file" in result["msg"]


def test_discovery_dest_that_is_no_json_is_left_alone(capsys, jwks_, tmp_path):
    disc = tmp_path / "openid-configuration"
    disc.write_bytes(b"not json")
    dest = tmp_path / "jwks.json"
    result = run(capsys, keys=[jwks_["ed"]], dest=str(dest), issuer=ISSUER, jwks_uri=JWKS_URI,
                 discovery_dest=str(disc))
    assert result["failed"] is True and "left unchanged" in result["msg"]
    assert read(str(disc)) == b"not json" and not dest.exists()


@pytest.mark.parametrize("content", [
    {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB", "d": SECRET},
    {"keys": [{"kty": "oct", "k": SECRET}]},
    {"issuer": ISSUER, "jwks_uri": JWKS_URI, "signing_key": {"kty": "EC", "d": SECRET}},
    {"issuer": ISSUER, "note": SECRET},
])
def test_discovery_dest_that_is_no_discovery_document_is_not_shown_or_replaced(capsys, jwks_, tmp_path, content):
    disc = tmp_path / "openid-configuration"
    disc.write_text(json.dumps(content))
    before = read(str(disc))
    for check_mode in (True, False):
        result = run(capsys, check_mode=check_mode, diff=True, keys=[jwks_["ed"]], issuer=ISSUER,
                     jwks_uri=JWKS_URI, discovery_dest=str(disc))
        assert result["failed"] is True and "is not a discovery document" in result["msg"]
        assert "left unchanged and is not shown" in result["msg"]
        assert SECRET not in result["_raw"] and "diff" not in result
        assert read(str(disc)) == before


def test_discovery_dest_that_is_a_discovery_document_is_diffed_and_replaced(capsys, jwks_, tmp_path):
    disc = tmp_path / "openid-configuration"
    disc.write_text(json.dumps({"issuer": ISSUER, "jwks_uri": JWKS_URI + "?old"}))
    result = run(capsys, diff=True, keys=[jwks_["ed"]], issuer=ISSUER, jwks_uri=JWKS_URI, discovery_dest=str(disc))
    assert result["changed"] is True and "?old" in result["diff"][0]["before"]
    assert json.loads(read(str(disc)))["jwks_uri"] == JWKS_URI


def test_replacing_a_jwks_with_other_members_hides_it_in_the_diff(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    dest.write_text(json.dumps({"keys": [dict(jwks_["ec"], private_pem="-----BEGIN PRIVATE KEY-----\n" + SECRET)],
                                "secret": SECRET}))
    result = run(capsys, check_mode=True, diff=True, keys=[jwks_["ed"]], dest=str(dest))
    assert result["changed"] is True and SECRET not in result["_raw"]
    assert "previous content not shown" in result["diff"][1]["before"]
    assert any("not a JWKS of public keys only" in warning and "member secret" in warning
               for warning in warnings_of(result))


def test_replacing_a_file_with_private_material_hides_it_in_the_diff(capsys, jwks_, tmp_path):
    dest = tmp_path / "jwks.json"
    dest.write_text(json.dumps({"keys": [dict(jwks_["ec"], d=SECRET)]}))
    result = run(capsys, diff=True, keys=[jwks_["ed"]], dest=str(dest))
    assert result["changed"] is True and result["removed"] == [jwks_["ec"]["kid"]]
    assert SECRET not in result["_raw"]
    assert any("compromised" in warning for warning in warnings_of(result))
    assert SECRET.encode() not in read(str(dest))


@pytest.mark.parametrize("mode, expected", [(None, 0o644), ("0640", 0o640), (0o600, 0o600), ("u=rw", 0o644)])
def test_creation_mode(mode, expected):
    assert _jwks_module._creation_mode(mode) == expected
