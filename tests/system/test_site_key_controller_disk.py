# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Site keys never land on the controller's disk on their way from one host of a site to another.

Everything Ansible sends to a host as a file is first written below the controller's local
temporary directory and then handed to the connection's ``put_file``: a module it does not
pipeline, and the content of ``copy content:`` (which is how the site key used to travel).
The edge hosts here are local hosts with a connection plugin that records a copy of every file
put (it is ``ansible.builtin.local`` otherwise), so no race with a deleted temporary file is
needed to see what passed through the disk; afterwards the local temporary directory is
scanned too. A canary put with ``copy content:`` shows that the recorder sees such files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

import kyma_publish_support as support  # pylint: disable=import-error

ISSUER = "http://edge-jwks.kyma-system.svc.cluster.local"
HOSTS = ("site-a1", "site-a2", "site-a3")
CANARY = "canary-7f3d2a-put-through-the-controller-disk"

RECORDER = '''# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: recording_local
    short_description: ansible.builtin.local, keeping a copy of every file put on the host
    description:
        - For tests. Copies every file Ansible puts on the host to the directory in SELFJWT_TEST_RECORD_DIR.
    author: selfjwt.kyma maintainers (@selfjwt)
    extends_documentation_fragment:
        - connection_pipelining
"""

import os
import shutil
import tempfile

from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    transport = "recording_local"

    def put_file(self, in_path, out_path):
        handle, copy = tempfile.mkstemp(dir=os.environ["SELFJWT_TEST_RECORD_DIR"])
        os.close(handle)
        shutil.copyfile(in_path, copy)
        return super(Connection, self).put_file(in_path, out_path)
'''


@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    support.collections_path()
    workdir = tmp_path_factory.mktemp("site_key_disk")
    plugins = workdir / "connection_plugins"
    plugins.mkdir()
    (plugins / "recording_local.py").write_text(RECORDER)
    records = workdir / "records"
    records.mkdir()
    hosts = dict((host, {"ansible_connection": "recording_local",
                         "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                         "edge_keys_key_dir": str(workdir / "keys" / host)}) for host in HOSTS)
    inventory = {"all": {"vars": {"selfjwt_issuer": ISSUER, "selfjwt_site": "a", "edge_keys_key_scope": "site",
                                  "edge_keys_refresher_enabled": False},
                         "hosts": hosts}}
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    plays = [{"name": "site keys", "hosts": "all", "gather_facts": False,
              "roles": [{"role": "selfjwt.kyma.edge_keys"}],
              "tasks": [{"name": "put a canary through the controller's disk", "ansible.builtin.copy": {
                  "content": CANARY, "dest": str(workdir / "canary-{{ inventory_hostname }}"), "mode": "0600"}}]}]
    (workdir / "site.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    environment = {"ANSIBLE_CONNECTION_PLUGINS": str(plugins), "SELFJWT_TEST_RECORD_DIR": str(records),
                   # The default: Ansible puts non-pipelined modules as files.
                   "ANSIBLE_PIPELINING": "0"}
    run = support.run_playbook(workdir / "site.yml", workdir / "inventory.yml", workdir, env=environment)
    return {"work": workdir, "records": records, "output": run.stdout}


def _files_below(directory):
    for root, _dirs, names in os.walk(str(directory)):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    yield path, handle.read()


def _private_lines(pem):
    return [line.encode("ascii") for line in pem.splitlines() if line and not line.startswith("-----")]


def test_the_hosts_of_the_site_share_the_key(site_run):
    keys = [(site_run["work"] / "keys" / host / "signing.pem").read_bytes() for host in HOSTS]
    assert keys[0] == keys[1] == keys[2]
    assert b"PRIVATE KEY" in keys[0]


def test_the_site_key_was_never_put_from_the_controllers_disk(site_run):
    pem = (site_run["work"] / "keys" / HOSTS[0] / "signing.pem").read_text()
    records = dict(_files_below(site_run["records"]))
    # The recorder works: the canary went through a file on the controller.
    assert any(CANARY.encode("ascii") in data for data in records.values())
    for path, data in records.items():
        assert b"PRIVATE KEY" not in data, path
        for line in _private_lines(pem):
            assert line not in data, path


def test_the_controllers_local_temporary_directory_holds_no_key(site_run):
    pem = (site_run["work"] / "keys" / HOSTS[0] / "signing.pem").read_text()
    for path, data in _files_below(site_run["work"] / "ansible-local"):
        assert b"PRIVATE KEY" not in data, path
        for line in _private_lines(pem):
            assert line not in data, path
    assert pem.splitlines()[1] not in site_run["output"]
