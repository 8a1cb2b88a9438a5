# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""jwks_publish: the JWKS budget (max_keys, max_bytes, budget_warn_percent)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.module_utils.common import warnings as module_warnings

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _jwk, _jwks, _keys
from ansible_collections.selfjwt.kyma.plugins.modules import jwks_publish
from helpers import run_module_main  # pylint: disable=import-error


@pytest.fixture(scope="module")
def ec_keys():
    return [_jwk.public_jwk(_keys.generate_private_key("ec", curve="P-256")) for _index in range(12)]


@pytest.fixture(scope="module")
def rsa_key():
    return _jwk.public_jwk(_keys.generate_private_key("rsa", size=2048))


def run(capsys, **args):
    # Warnings are collected process-wide; start each run without those of earlier runs.
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    _out, result, code = run_module_main(jwks_publish, args, capsys)
    assert (code != 0) == bool(result.get("failed"))
    return result


def warnings_of(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_over_the_key_budget_nothing_is_written(capsys, ec_keys, rsa_key, tmp_path):
    dest = tmp_path / "jwks.json"
    result = run(capsys, keys=ec_keys + [rsa_key], dest=str(dest), max_keys=10)
    assert result["failed"] is True
    message = result["msg"]
    assert "13 keys, more than the budget of 10 keys" in message
    assert "12 EC P-256" in message and "1 RSA-2048" in message
    for fix in ("smaller key type", "without x5c", "shards", "site"):
        assert fix in message
    assert "at least 2 JWKS of this budget" in message
    assert not dest.exists()


def test_over_the_byte_budget_keeps_the_published_file(capsys, ec_keys, tmp_path):
    dest = tmp_path / "jwks.json"
    first = run(capsys, keys=ec_keys[:2], dest=str(dest))
    assert first["changed"] is True
    before = dest.read_bytes()
    result = run(capsys, keys=ec_keys, dest=str(dest), max_bytes=1000)
    assert result["failed"] is True
    assert "more than the budget of 1000 bytes" in result["msg"]
    assert dest.read_bytes() == before


def test_budget_counts_both_generations_of_a_rotation(capsys, ec_keys):
    # Six hosts with one key fit a budget of 6 keys; during a rotation they publish 12.
    assert run(capsys, keys=ec_keys[:6], max_keys=6, budget_warn_percent=0).get("failed") is None
    rotating = run(capsys, keys=ec_keys, max_keys=6)
    assert rotating["failed"] is True and "12 keys, more than the budget of 6 keys" in rotating["msg"]


def test_warning_when_a_rotation_would_not_fit(capsys, ec_keys):
    result = run(capsys, keys=ec_keys[:6], max_keys=10)
    assert result["size"] == len(result["document"].encode("utf-8"))
    warnings = warnings_of(result)
    assert len(warnings) == 1 and "6 keys, 60% of its budget of 10 keys" in warnings[0]
    assert warnings_of(run(capsys, keys=ec_keys[:6], max_keys=10, budget_warn_percent=0)) == []
    assert warnings_of(run(capsys, keys=ec_keys[:5], max_keys=10)) == []


def test_default_byte_budget_is_one_mebibyte_and_zero_means_no_limit(capsys, ec_keys):
    big = dict(ec_keys[0], x5c=["A" * 1100000])
    # A certificate this big is not a certificate; the budget check must come first only if it parses,
    # so compare with the budget helper directly, which the module calls with its defaults.
    document = _jwks.jwks_document({"keys": [big]})
    with pytest.raises(_jose.JoseError, match="more than the budget of 1048576 bytes"):
        _jwks.check_budget(document, 1, 0, 1048576, keys=[big])
    assert _jwks.check_budget(document, 1, 0, 0) == len(document)
    assert run(capsys, keys=ec_keys, max_bytes=0, max_keys=0)["size"] > 0


def test_negative_budget_is_refused(capsys, ec_keys):
    result = run(capsys, keys=ec_keys[:1], max_keys=-1)
    assert result["failed"] is True and "max_keys must be 0 (no limit) or more" in result["msg"]
