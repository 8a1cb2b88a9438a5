# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper callback: wall time of every task (all hosts), written as JSON.

Enabled by bench/run.py only (ANSIBLE_CALLBACKS_ENABLED=bench_timing); the file named by
BENCH_TIMING_FILE receives a list of {"task", "action", "seconds"} in play order.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timing
type: aggregate
short_description: Wall time per task for the selfjwt.kyma benchmarks
description:
  - Writes the wall time of every task to the file named by the environment variable E(BENCH_TIMING_FILE).
author: selfjwt.kyma maintainers (@selfjwt)
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._records = []
        self._current = None

    def _close(self):
        if self._current is not None:
            name, action, start = self._current
            self._records.append({"task": name, "action": action, "seconds": time.perf_counter() - start})
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), task.action, time.perf_counter())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("BENCH_TIMING_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self._records, handle, indent=1)
