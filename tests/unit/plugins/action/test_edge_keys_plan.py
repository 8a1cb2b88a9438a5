# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin edge_keys_plan: how it reports (the checks are tested in
tests/unit/plugins/module_utils/test_edge_settings.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

from ansible_collections.selfjwt.kyma.plugins.action.edge_keys_plan import ActionModule
from ansible_collections.selfjwt.kyma.tests.unit.plugins.module_utils.test_edge_settings import GOOD


def _run(variables, task_vars=None):
    args = {} if variables is None else {"variables": variables}
    task = mock.MagicMock(args=args, async_val=0, check_mode=False, action="edge_keys_plan")
    templar = mock.MagicMock()
    templar.template.side_effect = lambda value: value
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=templar)
    return action.run(task_vars=task_vars or {})


def test_good_variables_give_the_steps_and_change_nothing():
    result = _run(dict(GOOD))
    assert not result.get("failed") and result["changed"] is False
    assert result["steps"] == ["key", "refresher"] and result["problems"] == []
    assert "warnings" not in result


def test_problems_fail_the_task_with_every_message():
    result = _run(dict(GOOD, edge_keys_issuer="edge-jwks", edge_keys_key_type="dsa"))
    assert result["failed"] is True
    assert result["msg"].startswith('edge_keys_issuer "edge-jwks" is not an http(s) URL')
    assert "edge_keys_key_type must be one of" in result["msg"]
    assert len(result["problems"]) == 2


def test_a_missing_audience_is_reported_as_a_warning():
    result = _run(dict(GOOD, edge_keys_audience=None))
    assert not result.get("failed")
    assert result["warnings"][0].startswith("edge_keys_audience is empty")


def test_the_refresher_settings_are_checked():
    result = _run(dict(GOOD, edge_keys_token_dir="relative/dir"))
    assert result["failed"] is True and result["msg"].startswith("edge_keys_token_dir")


def test_without_variables_it_reads_the_role_variables_from_the_task():
    result = _run(None, task_vars=dict(GOOD, unrelated="x"))
    assert not result.get("failed") and result["keypair"]["path"] == "/etc/selfjwt/signing.pem"
    result = _run(None, task_vars=dict(GOOD, edge_keys_key_type="dsa"))
    assert result["failed"] is True and "edge_keys_key_type must be one of" in result["msg"]


def test_the_passphrase_never_reaches_the_result():
    result = _run(None, task_vars=dict(GOOD, edge_keys_key_passphrase="s3cret-passphrase",
                                       edge_keys_refresher_store_passphrase=True))
    assert not result.get("failed") and result["keypair"]["store_passphrase"] is True
    assert "s3cret-passphrase" not in repr(result)
