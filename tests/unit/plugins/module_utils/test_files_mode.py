# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the mode helpers of plugins/module_utils/_files.py (file_mode, creation_mode).

A symbolic mode must mean what it means to Ansible's file attributes, which apply it after a
module wrote its file: the results are compared with AnsibleModule's own conversion.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files

CLAUSE = st.builds(lambda users, operator, perms: users + operator + perms,
                   st.sampled_from(["", "a", "u", "g", "o", "ug", "go", "ugo"]), st.sampled_from(["=", "+", "-"]),
                   st.text(alphabet="rwxXstugo", max_size=4))
SYMBOLIC = st.lists(CLAUSE, min_size=1, max_size=3).map(",".join)


def ansible_mode(st_mode, text):
    return AnsibleModule._symbolic_mode_to_octal(os.stat_result((st_mode,) + (0,) * 9), text)


@settings(max_examples=400, deadline=None)
@given(SYMBOLIC, st.integers(min_value=0, max_value=0o7777), st.sampled_from([stat.S_IFREG, stat.S_IFDIR]))
def test_a_symbolic_mode_means_what_it_means_to_ansible(text, bits, kind):
    assert _files.file_mode(text, kind | bits) == ansible_mode(kind | bits, text)


@pytest.mark.parametrize("mode, expected", [(0o640, 0o640), ("0640", 0o640), ("640", 0o640), ("u=rw,g=r", 0o644),
                                            ("g-r", 0o604), ("u=rw,g=r,o=", 0o640), ("a+X", 0o644)])
def test_file_mode(mode, expected):
    assert _files.file_mode(mode, stat.S_IFREG | 0o644) == expected


@pytest.mark.parametrize("mode", ["u=rwz", "k=r", "0999", "u=rw,,x"])
def test_a_bad_mode_is_refused_with_what_a_mode_looks_like(mode):
    with pytest.raises(_files.FileError, match="neither octal .* nor symbolic .*: bad symbolic permission for mode"):
        _files.file_mode(mode, stat.S_IFREG | 0o600)


@pytest.mark.parametrize("mode, expected", [(None, 0o600), (0o640, 0o640), ("0640", 0o640), (0o100644, 0o644),
                                            ("u=rw,g=r", 0o600), (True, 0o600)])
def test_a_new_file_gets_a_numeric_mode_or_the_default(mode, expected):
    assert _files.creation_mode(mode, 0o600) == expected
