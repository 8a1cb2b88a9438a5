# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Makes tests/helpers.py (shared by the suites) importable as ``helpers``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest
from ansible.module_utils import _internal as _ansible_module_internal
from ansible.module_utils import basic as _ansible_basic
from ansible.module_utils.common import warnings as _ansible_warnings


@pytest.fixture(autouse=True)
def _like_a_module_process(request, monkeypatch):
    """Module tests run as in a module process on a target: no controller, no earlier warnings.

    Importing controller code (ansible.errors, filter plugins) marks the whole process as the
    controller, and then module warnings go to the controller's display instead of the module
    result. A module process runs once, so ansible-core keeps its warnings in process-global
    dicts and never clears them; in one pytest process they would leak from test to test.
    """
    if "/plugins/modules/" in str(request.node.fspath):
        monkeypatch.setattr(_ansible_module_internal, "is_controller", False)
    _ansible_warnings._global_warnings.clear()
    _ansible_warnings._global_deprecations.clear()
    yield


@pytest.fixture
def syslog_sent(monkeypatch):
    """The messages a module sends to syslog (AnsibleModule logs its arguments there)."""
    # Without the systemd bindings, AnsibleModule.log() goes to syslog(3), i.e. /dev/log.
    assert _ansible_basic.HAS_SYSLOG and not _ansible_basic.has_journal
    sent = []
    monkeypatch.setattr(_ansible_basic.syslog, "openlog", lambda *args: None)
    monkeypatch.setattr(_ansible_basic.syslog, "syslog", lambda *args: sent.append(args[-1]))
    return sent
