# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared argument spec pieces (_argspec) and the doc fragments that document them agree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.selfjwt.kyma.plugins.doc_fragments import new_key, token
from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _argspec, _keypair, _token
from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair, jwt_keyring, jwt_token, token_refresher
from helpers import rendered_doc  # pylint: disable=import-error


def assert_documents(options, spec):
    """``options`` (documentation) describe exactly the argument spec ``spec``."""
    assert sorted(options) == sorted(spec)
    for name, option in spec.items():
        documented = options[name]
        assert documented["type"] == option["type"], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("choices") == option.get("choices"), name
        assert documented.get("required", False) == option.get("required", False), name
        assert documented.get("elements") == option.get("elements"), name


@pytest.mark.parametrize("fragment, spec", [(new_key, _argspec.new_key_argument_spec),
                                            (token, _argspec.token_argument_spec)])
def test_each_fragment_documents_its_argument_spec(fragment, spec):
    assert_documents(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"], spec())


@pytest.mark.parametrize("module", [jwt_keypair, jwt_keyring, jwt_token, token_refresher])
def test_the_rendered_documentation_matches_the_argument_spec(module):
    assert_documents(rendered_doc(module), module.argument_spec())


@pytest.mark.parametrize("module", [jwt_keypair, jwt_keyring, jwt_token, token_refresher])
def test_every_attribute_is_described_and_has_a_support_level(module):
    attributes = rendered_doc(module, "attributes")
    assert {"check_mode", "diff_mode", "idempotent", "safe_file_operations", "platform",
            "action_group"} <= set(attributes)
    for name, attribute in attributes.items():
        assert attribute.get("description") and attribute.get("support") in ("full", "partial", "none"), name


def test_choices_come_from_the_policy_lists():
    spec = _argspec.new_key_argument_spec()
    assert spec["algorithm"]["choices"] == list(_algorithms.ALGORITHMS) == _argspec.ALGORITHM_CHOICES
    assert spec["type"]["choices"] == list(_keypair.KEY_TYPES)
    assert spec["curve"]["choices"] == list(_keypair.CURVES)
    assert jwt_keypair.argument_spec()["algorithm"]["choices"] == list(_algorithms.ALGORITHMS)
    assert jwt_keyring.argument_spec()["algorithm"]["choices"] == list(_algorithms.ALGORITHMS)


def test_token_defaults_are_the_signers_defaults():
    spec = _argspec.token_argument_spec()
    assert spec["expires_in"]["default"] == _token.DEFAULT_EXPIRES_IN
    assert spec["max_lifetime"]["default"] == _token.DEFAULT_MAX_LIFETIME
    assert jwt_token.argument_spec()["expires_in"] == token_refresher.argument_spec()["expires_in"]


def test_each_call_returns_new_dicts():
    """A module that changes its copy of a piece (AnsibleModule fills in defaults) leaves the next one alone."""
    first = _argspec.new_key_argument_spec()
    first["algorithm"]["choices"].append("HS256")
    first["type"]["default"] = "rsa"
    assert "HS256" not in _argspec.new_key_argument_spec()["algorithm"]["choices"]
    assert "HS256" not in _argspec.ALGORITHM_CHOICES
    assert _argspec.new_key_argument_spec()["type"]["default"] == "ec"
