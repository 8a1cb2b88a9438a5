# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter plugin files are cheap to import.

To find any one filter of the collection, Ansible imports the collection's filter files in name
order until one provides it (ansible-core's Jinja2Loader). So every worker that renders
shard_url (edge_keys' issuer, in every run of the role, per host) imports jwks_configmap_data.py:
its heavy module_utils must wait for the filter's first call.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import ansible_collections.selfjwt.kyma.plugins.filter as filter_package

HEAVY = ("_publish", "_jwks", "_istio", "_keys", "_jwk", "cryptography")


def test_importing_every_filter_file_loads_no_jose_code():
    names = sorted(name[:-3] for name in os.listdir(list(filter_package.__path__)[0])
                   if name.endswith(".py") and name != "__init__.py")
    assert "jwks_configmap_data" in names and "shard_url" in names
    code = ("import importlib, json, sys\n"
            "for name in %r:\n"
            "    importlib.import_module('ansible_collections.selfjwt.kyma.plugins.filter.' + name)\n"
            "print(json.dumps(sorted(sys.modules)))\n" % names)
    output = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    loaded = json.loads(output)
    heavy = [module for module in loaded
             if module.rsplit(".", 1)[-1] in HEAVY or module.split(".")[0] == "cryptography"]
    assert heavy == []
