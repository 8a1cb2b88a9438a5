# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SecretMaskingModule: secrets in the raw module arguments are masked before Ansible logs them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.selfjwt.kyma.plugins.module_utils import _common

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
