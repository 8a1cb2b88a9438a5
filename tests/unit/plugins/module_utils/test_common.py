# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SecretMaskingModule: secrets in the raw module arguments are masked before Ansible logs them.

secret_values: the private key material it looks for, in any form an argument can take.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.selfjwt.kyma.plugins.module_utils import _common, _keys

SECRET = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1iZS1zZWVu"
SPEC = {
    "keys": {"type": "raw"},
    "passphrase": {"type": "str", "no_log": True},
    "path": {"type": "path"},
    "count": {"type": "int"},
}


def run(capsys, module_class, args):
    """Build the module (which logs its arguments), then exit; (result, stdout)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module = module_class(argument_spec=dict((name, dict(spec)) for name, spec in SPEC.items()),
                                  **({"secret_options": ("keys",)} if module_class is not basic.AnsibleModule else {}))
            module.exit_json(changed=False)
    out = capsys.readouterr().out
    return json.loads(out), out


@pytest.mark.parametrize("args, secret", [
    # a private JWK given to an option that takes keys, in the forms a type conversion may garble
    ({"keys": {"kty": "EC", "d": SECRET}}, SECRET),
    ({"keys": json.dumps([{"kty": "EC", "d": SECRET}])}, SECRET),
    # a PEM private key where a path belongs
    ({"path": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % SECRET}, SECRET),
    # a no_log text option given a dict or list: str() shows dict keys and escapes the leaves
    ({"passphrase": {SECRET: True}}, SECRET),
    ({"passphrase": [SECRET + "\n"]}, SECRET),
    # a failed type conversion fails in the constructor, with the arguments in invocation
    ({"keys": [{"kty": "EC", "d": SECRET}], "count": "many"}, SECRET),
])
def test_secrets_are_masked_in_syslog_invocation_and_results(capsys, syslog_sent, args, secret):
    result, out = run(capsys, _common.SecretMaskingModule, args)
    assert secret not in out
    assert secret not in "".join(syslog_sent)
    if "count" not in args:
        # The module was built: it logged its arguments and returned its invocation.
        assert [message for message in syslog_sent if message.startswith("Invoked with")]
        assert "invocation" in result


@pytest.mark.parametrize("args", [
    {"keys": {"kty": "EC", "d": SECRET}},
    {"passphrase": {SECRET: True}},
    {"path": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % SECRET},
])
def test_a_plain_ansible_module_leaks_them(capsys, syslog_sent, args):
    """The control: without the masking, the same arguments do show up (the tests above can fail)."""
    _result, out = run(capsys, basic.AnsibleModule, args)
    assert SECRET in out + "".join(syslog_sent)


def test_public_values_are_not_masked(capsys, syslog_sent):
    args = {"keys": [{"kty": "EC", "kid": "edge-01", "x": "x-coordinate-1234", "y": "y-coordinate-1234"}],
            "path": "/etc/selfjwt/signing.pem"}
    result, out = run(capsys, _common.SecretMaskingModule, args)
    assert "********" not in out and "x-coordinate-1234" in out and "/etc/selfjwt/signing.pem" in out
    assert result["invocation"]["module_args"]["keys"] == args["keys"]


def test_raw_secret_values_uses_aliases_and_ignores_other_input():
    spec = {"keys": {"type": "raw", "aliases": ["jwks"]}, "secret": {"type": "str", "no_log": True}}
    found = _common.raw_secret_values({"jwks": [{"d": SECRET}], "secret": "plain"}, spec, ("keys",))
    assert SECRET in found
    # A no_log text is masked by Ansible itself; nothing extra is needed for it.
    assert "plain" not in found
    assert _common.raw_secret_values(None, spec) == set()


# --------------------------------------------------------------------------------------
# secret_values
# --------------------------------------------------------------------------------------

def test_secret_values_finds_private_material_everywhere(jwks_, private_keys):
    pem = _keys.private_key_pem(private_keys["ed"]).decode("ascii")
    other = SECRET[::-1]
    items = [
        jwks_["ec"],
        dict(jwks_["ec"], d=SECRET),
        json.dumps(dict(jwks_["rsa"], p=other)),
        {"keys": [dict(jwks_["ed"], oth=[{"r": SECRET + "r"}])]},
        pem,
        dict(jwks_["ed"], k="short"),
    ]
    found = _common.secret_values(items)
    assert SECRET in found and other in found and SECRET + "r" in found and pem.strip() in found
    assert "short" not in found
    assert jwks_["ec"]["x"] not in found
    assert found == sorted(set(found))


def test_secret_values_of_public_keys_is_empty(jwks_, cert_pem):
    assert _common.secret_values([jwks_["ec"], cert_pem, "{broken", None]) == []


@pytest.mark.parametrize("form", ["nested-lists", "python-text", "broken-json", "json-list", "jwks-in-text-in-list"])
def test_secret_values_finds_a_private_jwk_in_every_form(jwks_, form):
    jwk = dict(jwks_["ec"], d=SECRET)
    item = {
        "nested-lists": [[{"wrapped": [jwk]}]],
        "python-text": str(jwk),
        "broken-json": json.dumps(jwk)[:-1],
        "json-list": json.dumps([jwks_["ed"], jwk]),
        "jwks-in-text-in-list": [json.dumps({"keys": [jwk]})],
    }[form]
    assert SECRET in _common.secret_values([item])
    assert SECRET in _common.secret_values([item], any_dict=False)


def test_secret_values_masks_the_parts_a_pem_key_is_cut_into(private_keys):
    pem = _keys.private_key_pem(private_keys["rsa"]).decode("ascii")
    found = set(_common.secret_values([pem]))
    for line in pem.splitlines():
        assert line in found
        # A path option cuts the text at slashes (dirname, basename), a list conversion at commas.
        for part in line.split("/") + [line[:index] for index, char in enumerate(line) if char == "/"]:
            assert len(part) < _common.MIN_SECRET_LENGTH or part in found


def test_secret_values_outside_key_options_needs_a_kty(jwks_):
    """In other options (claims, for example) a member named d is not taken for a private JWK member."""
    assert _common.secret_values([{"d": "an innocent claim value"}], any_dict=False) == []
    assert _common.secret_values(['{"d": "an innocent claim value"}'], any_dict=False) == []
    assert _common.secret_values([{"d": "an innocent claim value"}]) == ["an innocent claim value"]


def test_secret_values_of_deeply_nested_json_is_empty():
    """Nesting deeper than the JSON decoder goes is no private material, and no RecursionError."""
    deep_json = "[" * 100000 + "]" * 100000
    assert _common.secret_values(['{"d": %s}' % deep_json]) == []
