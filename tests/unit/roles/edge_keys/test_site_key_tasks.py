# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The site key's way through the edge_keys tasks: no_log everywhere, no action that stages it in a file.

tests/system/test_site_key_controller_disk.py runs the role and watches the controller's disk;
this reads the tasks, so that a new task which handles the key is held to the same rules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

import yaml

from ansible_collections.selfjwt.kyma.plugins.modules import jwt_keypair

TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "roles", "edge_keys", "tasks")
SITE_KEY = "__edge_keys_site_key"
#: Actions that write a value they are given into a file on the controller before the transfer.
STAGING_ACTIONS = ("copy", "template", "ansible.builtin.copy", "ansible.builtin.template",
                   "ansible.legacy.copy", "ansible.legacy.template")
KEYWORDS = ("name", "when", "vars", "no_log", "diff", "register", "loop", "loop_control", "notify", "changed_when",
            "failed_when", "check_mode", "block", "rescue", "always", "tags", "delegate_to", "become", "module_defaults")


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for part in ("block", "rescue", "always"):
            yield from _tasks(task.get(part))


def _all_tasks():
    for path in sorted(glob.glob(os.path.join(TASKS, "*.yml"))):
        with open(path) as handle:
            for task in _tasks(yaml.safe_load(handle)):
                yield os.path.basename(path), task


def _action(task):
    """The task's action, or None for a block (its tasks are checked one by one)."""
    if "block" in task:
        return None
    actions = [key for key in task if key not in KEYWORDS]
    assert len(actions) == 1, task
    return actions[0]


def _mentions_key(task):
    action = _action(task)
    if action is None:
        return False
    return SITE_KEY in yaml.safe_dump(task[action]) or SITE_KEY in yaml.safe_dump(task.get("vars", {}))


def test_every_task_that_handles_the_site_key_is_no_log():
    handling = [(name, task) for name, task in _all_tasks() if _mentions_key(task) or task.get("register") == SITE_KEY]
    assert len(handling) >= 3  # read, write, forget
    for name, task in handling:
        assert task.get("no_log") is True, (name, task["name"])


def test_no_action_stages_the_site_key_on_the_controller():
    for name, task in _all_tasks():
        if _mentions_key(task):
            assert _action(task) not in STAGING_ACTIONS, (name, task["name"])


def test_the_site_key_is_written_by_jwt_keypair_over_a_pipelined_connection():
    writers = [task for _name, task in _all_tasks()
               if _mentions_key(task) and _action(task) not in ("ansible.builtin.set_fact", "ansible.builtin.slurp")]
    assert len(writers) == 1
    (task,) = writers
    assert _action(task) == "selfjwt.kyma.jwt_keypair"
    assert SITE_KEY in task["selfjwt.kyma.jwt_keypair"]["private_key_content"]
    assert task["vars"]["ansible_pipelining"] is True
    assert task.get("diff") is False


def test_the_module_option_is_no_log():
    assert jwt_keypair.argument_spec()["private_key_content"]["no_log"] is True
