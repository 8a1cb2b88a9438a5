# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures shared by the system tests: one run of the demo for test_demo.py and test_playbook_security.py.

``demo_runs`` (session scope) runs, from one snapshot of the collection (so that edits to the
work tree during the runs change nothing) into one temporary output directory, with -vvv
--diff and the demo inventory plus a second inventory source that gives edge-02 a key
passphrase:

1. ``fresh-check``: ``site.yml --check`` on hosts that have nothing yet (umask 000);
2. ``demo``: ``demo.yml`` under umask 000, then a play that dumps every host's variables and
   facts (hostvars) to JSON files; the tree of the output directory afterwards;
3. ``second``: ``site.yml`` again (the smoke test skips itself without smoke_test_url), which
   must change nothing; then each host's refresher command prints its current token (for the
   node jose check of test_demo.py), before anything below changes a key;
4. files are disturbed (a key's mode, a passphrase file's mode, the refresher configuration,
   the rendered APIRule, the rendered JWKS), then ``check``: ``site.yml --check``; the tree
   before and after it, and after the disturbed files are put back.

``demo_rotation`` (session scope, on top of it, used by test_playbook_security.py only) then
runs ``rotate``: ``edge.yml --limit edge-01`` under umask 077 with
``edge_keys_key_regenerate=always`` and ``edge_keys_key_backup=true``.

A run that fails fails every test that uses it; the output of each run is kept in
<work>/<run>.log.

``softhsm_token`` (a new SoftHSM2 token per test) and ``tpm_token`` (one software TPM 2.0 token
per test module) are real PKCS#11 tokens from tests/tokens.py.
"""

import json
import os
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from helpers import (  # noqa: E402  pylint: disable=wrong-import-position,import-error
    REPO, ansible_env, configured_collections_path, find_ansible_playbook, recap, snapshot_collection, tree_state)
from tokens import SoftHSMToken, TPMToken, TokenUnavailable  # noqa: E402  pylint: disable=wrong-import-position,import-error

PLAYBOOK_TIMEOUT = 1200
EDGE_HOSTS = ("edge-01", "edge-02", "edge-03")

DUMP_PLAYBOOK = """\
---
- name: Dump what every host knows
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the host's variables and facts
      ansible.builtin.copy:
        content: "{{ hostvars[inventory_hostname] | to_nice_json }}"
        dest: "{{ selfjwt_dump_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      no_log: true
      check_mode: false
      diff: false
"""

EXTRA_INVENTORY = """\
---
all:
  children:
    edge:
      hosts:
        edge-02:
          edge_keys_key_passphrase: "%s"
          edge_keys_refresher_store_passphrase: true
"""


def demo_missing():
    """Why the demo cannot run here, or None."""
    if find_ansible_playbook() is None:
        return "ansible-playbook is not installed"
    if shutil.which("git") is None:
        return "git is not installed (the demo runs from a snapshot made with git ls-files)"
    if not any(os.path.isdir(os.path.join(path, "ansible_collections", "kubernetes", "core"))
               for path in configured_collections_path().split(os.pathsep)):
        return ("kubernetes.core is not in ANSIBLE_COLLECTIONS_PATH (%s): run 'make collections'"
                % configured_collections_path())
    absent = [role for role in ("edge_keys", "kyma_publish", "smoke_test")
              if not os.path.isfile(os.path.join(REPO, "roles", role, "tasks", "main.yml"))]
    if absent:
        return "the demo needs the roles %s, which are not in the repository" % ", ".join(absent)
    with open(os.path.join(REPO, "plugins", "modules", "jwt_token.py"), encoding="utf-8") as handle:
        if "issued_at" not in handle.read():
            return "selfjwt.kyma.jwt_token has no issued_at option yet; the smoke test's expired check needs it"
    return None


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


class DemoWork:
    """The snapshot, the output directory and the runs of the shared demo."""

    def __init__(self, work):
        self.work = work
        self.root, collections = snapshot_collection(work)
        self.out = os.path.join(work, "demo-out")
        self.dumps = os.path.join(work, "hostvars")
        os.makedirs(self.dumps)
        for name in ("tmp", "remote-tmp", "async"):
            os.makedirs(os.path.join(work, name))
        self.passphrase = "pp-%s" % secrets.token_hex(16)
        self.dump_playbook = os.path.join(work, "dump.yml")
        with open(self.dump_playbook, "w", encoding="utf-8") as handle:
            handle.write(DUMP_PLAYBOOK)
        extra_inventory = os.path.join(work, "passphrase.yml")
        with open(extra_inventory, "w", encoding="utf-8") as handle:
            handle.write(EXTRA_INVENTORY % self.passphrase)
        os.chmod(extra_inventory, 0o600)
        self.env = ansible_env(collections, os.path.join(work, "tmp"), os.path.join(work, "remote-tmp"),
                               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_ASYNC_DIR=os.path.join(work, "async"),
                               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        self.inventory = ["-i", os.path.join(self.root, "playbooks", "inventory", "demo.yml"), "-i", extra_inventory]
        self.runs = {}

    def playbook(self, name):
        return os.path.join(self.root, "playbooks", name)

    def play(self, name, playbooks, umask, *extra):
        """Run ansible-playbook with -vvv --diff under ``umask``; it must succeed. Keeps stdout, stderr, recap."""
        command = ([find_ansible_playbook()] + self.inventory + playbooks
                   + ["-e", "selfjwt_demo_dir=%s" % self.out, "-e", "selfjwt_dump_dir=%s" % self.dumps,
                      "-vvv", "--diff"] + list(extra))
        started, cpu = time.monotonic(), _children_cpu()
        done = subprocess.run(command, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=PLAYBOOK_TIMEOUT, check=False, preexec_fn=lambda: os.umask(umask))
        print("%s: %.0f s, %.0f s CPU" % (name, time.monotonic() - started, _children_cpu() - cpu))
        stdout, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        with open(os.path.join(self.work, name + ".log"), "w", encoding="utf-8") as handle:
            handle.write(stdout + stderr)
        assert done.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (name, done.returncode, stdout[-6000:],
                                                                     stderr[-3000:])
        self.runs[name] = {"stdout": stdout, "stderr": stderr, "recap": recap(stdout)}
        return self.runs[name]


INTEROP = os.path.join(REPO, "tests", "interop")


def node_verifier_missing():
    """Why the node verifiers of tests/interop cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isfile(os.path.join(INTEROP, "node_modules", "jose", "package.json")):
        return "tests/interop/node_modules is missing: run 'make node'"
    return None


def node_verify(script, jwks_path, cases, workdir):
    """Verdicts of a tests/interop verifier (``--batch``) for ``cases``, with ``jwks_path`` served over HTTP.

    The JWKS is served by the stand-in's JWKS server, so the verifier fetches it the way a
    service fetches a jwksUri. Returns {case id: verdict}.
    """
    port_file = os.path.join(workdir, "jwks-check-%s.port" % secrets.token_hex(4))
    server = subprocess.Popen([sys.executable, "-m", "tools.kyma_standin", "jwks-server", "--jwks", jwks_path,
                               "--port", "0", "--port-file", port_file, "--max-seconds", "300"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while not os.path.exists(port_file) and time.monotonic() < end and server.poll() is None:
            time.sleep(0.05)
        with open(port_file, encoding="ascii") as handle:
            port = int(handle.read())
        job = {"jwks_url": "http://127.0.0.1:%d/.well-known/jwks.json" % port, "cases": cases}
        done = subprocess.run(["node", os.path.join(INTEROP, script), "--batch"], cwd=INTEROP,
                              input=json.dumps(job).encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=120, check=False)
    finally:
        server.terminate()
        server.wait(30)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return json.loads(done.stdout)["results"]


def _refresher_tokens(summary):
    """{host: (return code, stdout, stderr)} of each host's refresher command."""
    found = {}
    for host in summary["hosts"]:
        done = subprocess.run([host["refresher_command"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=120, check=False)
        found[host["host"]] = (done.returncode, done.stdout.decode("ascii", "replace").strip(),
                               done.stderr.decode("utf-8", "replace"))
    return found


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    reason = demo_missing()
    if reason:
        pytest.skip(reason)
    demo = DemoWork(str(tmp_path_factory.mktemp("demo")))
    out, hosts = demo.out, os.path.join(demo.out, "hosts")
    result = {"work": demo.work, "out": out, "dumps": demo.dumps, "passphrase": demo.passphrase,
              "runs": demo.runs, "demo": demo}

    # 1. Check mode on hosts that have nothing yet.
    demo.play("fresh-check", [demo.playbook("site.yml")], 0o000, "--check", "--limit", "edge-01,edge-02,localhost")
    result["fresh_out_exists"] = os.path.exists(out)

    # 2. The demo, and what every host knows afterwards.
    demo.play("demo", [demo.playbook("demo.yml"), demo.dump_playbook], 0o000)
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as handle:
        result["summary"] = json.load(handle)

    # 3. The edge and cluster part again: nothing to change. Then each host's current token.
    demo.play("second", [demo.playbook("site.yml")], 0o000)
    result["refresher_tokens"] = _refresher_tokens(result["summary"])
    result["after_demo"] = tree_state(out)

    # 4. Disturb, then check mode must report it and change nothing; then put everything back.
    disturbed = [os.path.join(hosts, "edge-01", "keys", "signing.pem"),
                 os.path.join(hosts, "edge-02", "keys", "signing.pem.passphrase"),
                 os.path.join(hosts, "edge-03", "lib", "refresher.json"),
                 os.path.join(out, "manifests", "apirule.yaml"), os.path.join(out, "manifests", "jwks.json")]
    originals = dict((path, (read_bytes(path), stat.S_IMODE(os.stat(path).st_mode))) for path in disturbed)
    os.chmod(os.path.join(hosts, "edge-01", "keys", "signing.pem"), 0o644)
    os.chmod(os.path.join(hosts, "edge-02", "keys", "signing.pem.passphrase"), 0o644)
    with open(os.path.join(hosts, "edge-03", "lib", "refresher.json"), "a", encoding="utf-8") as handle:
        handle.write(" ")
    os.unlink(os.path.join(out, "manifests", "apirule.yaml"))
    with open(os.path.join(out, "manifests", "jwks.json"), encoding="utf-8") as handle:
        published = json.load(handle)
    with open(os.path.join(out, "manifests", "jwks.json"), "w", encoding="utf-8") as handle:
        json.dump({"keys": published["keys"][:1]}, handle)
    result["disturbed"] = tree_state(out)
    demo.play("check", [demo.playbook("site.yml")], 0o000, "--check")
    result["after_check"] = tree_state(out)
    for path, (data, mode) in originals.items():
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
    result["restored"] = tree_state(out)
    return result


@pytest.fixture(scope="session")
def demo_rotation(demo_runs):
    """demo_runs, then a key rotation with a backup on edge-01 under umask 077."""
    demo = demo_runs["demo"]
    demo_runs["old_key"] = read_bytes(os.path.join(demo_runs["out"], "hosts", "edge-01", "keys", "signing.pem"))
    demo.play("rotate", [demo.playbook("edge.yml")], 0o077, "--limit", "edge-01",
              "-e", "edge_keys_key_regenerate=always", "-e", "edge_keys_key_backup=true")
    return demo_runs


@pytest.fixture
def softhsm_token(tmp_path):
    """A new SoftHSM2 token (tests/tokens.py) in tmp_path; put ``softhsm_token.env`` into the environment to use it.

    SoftHSM2 is part of ``make test`` (scripts/system-packages.sh installs it): if it cannot be
    set up, the test fails with TokenUnavailable's message.
    """
    return SoftHSMToken(tmp_path)


@pytest.fixture(scope="module")
def tpm_token(tmp_path_factory):
    """One TPM 2.0 token (swtpm, session D-Bus, tpm2-abrmd, tpm2-pkcs11 store) per test module.

    If the stack cannot start on this machine, every test that uses it is skipped, and the skip
    reason is TokenUnavailable's message: the step, the command and its stderr.
    """
    token = TPMToken(tmp_path_factory.mktemp("tpm"))
    try:
        token.start()
    except TokenUnavailable as error:
        pytest.skip(str(error))
    yield token
    token.stop()
