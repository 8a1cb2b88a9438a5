# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The playbooks of `make demo` with -vvv --diff: no leaks, safe file modes, check mode changes nothing.

test_no_secret_leaks.py scans the three modules; this test scans every playbook path that runs
on one machine - playbooks/demo.yml (edge.yml, cluster.yml, the gateway stand-in and the smoke
test), then site.yml (edge.yml, cluster.yml, smoke.yml) in check mode, then edge.yml rotating
a key with a backup - from a snapshot of the collection into a temporary output directory:

1. ``site.yml --check`` on hosts that have nothing yet: nothing is created.
2. ``demo.yml`` under umask 000, followed by a play that dumps every host's variables and
   facts (hostvars) to JSON files. edge-02 gets a key passphrase (a second inventory source),
   so the passphrase file and an encrypted key are part of it.
3. Files are disturbed (a key's mode, a passphrase file's mode, the refresher configuration,
   the rendered APIRule, the rendered JWKS), then ``site.yml --check --diff``: it reports
   changes and the output tree stays byte-identical (content, mode, owner).
4. ``edge.yml --limit edge-01`` under umask 077 with ``edge_keys_key_regenerate=always`` and
   ``edge_keys_key_backup=true``: a new key and a backup of the old one.

Everything is scanned for private key material (PEM private key blocks, JWK private members,
the key files' bodies and private numbers in several encodings, via test_no_secret_leaks's
needles) and the passphrase: the output of every run, the hostvars dumps, every file of the
output tree except the secrets themselves (keys, backups, passphrase and token files), and
Ansible's temporary and async directories. Tokens (every token task in the roles is no_log)
must not appear in any run output or file except the token files, and not in the facts the
roles export (``edge_keys_*``, ``kyma_publish_*``, ``smoke_test_results``). The scanner is
checked against planted material first.

Permissions: key directories 0700, keys, backups, passphrase and lock files 0600, token
directories and files per the role's mode; nothing in the output tree is world-writable, and
no world-readable file holds a secret - after runs under umask 000 and 077.
"""

import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_no_secret_leaks import JWK_PRIVATE_MEMBER, private_needles  # noqa: E402  pylint: disable=wrong-import-position,import-error

PLAYBOOK_TIMEOUT = 1200
EDGE_HOSTS = ("edge-01", "edge-02", "edge-03")
PEM_BLOCK = re.compile(r"-----BEGIN[A-Z0-9 ]* PRIVATE KEY-----")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
#: Role variables that exporting must not turn into a token carrier.
EXPORTED_FACTS = re.compile(r"^(edge_keys_|kyma_publish_|smoke_test_results$)")
#: Input variables that hold the passphrase by design (the inventory's and the derived default).
PASSPHRASE_INPUTS = ("edge_keys_key_passphrase", "smoke_test_key_passphrase")

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


# --------------------------------------------------------------------------------------
# The scanner
# --------------------------------------------------------------------------------------

def findings(text, needles, where, tokens=True):
    """(where, what, excerpt) of private material, needles and (optionally) tokens in ``text``."""
    found = []
    patterns = [(PEM_BLOCK, "PEM private key block"), (JWK_PRIVATE_MEMBER, "JWK private member")]
    if tokens:
        patterns.append((JWT, "token"))
    for pattern, what in patterns:
        for match in pattern.finditer(text):
            found.append((where, what, text[max(0, match.start() - 60):match.end() + 10]))
    lowered = text.lower()
    for label, needle in needles:
        hexa = label.endswith("(hex)")
        index = (lowered if hexa else text).find(needle.lower() if hexa else needle)
        if index >= 0:
            found.append((where, label, text[max(0, index - 40):index + 40]))
    return found


def test_scanner_finds_planted_material():
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    needles = private_needles(pem) + [("passphrase", "pp-planted-0123")]
    body = pem.decode("ascii").splitlines()[1]
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJlZGdlLTAxIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    for text, what in (("x -----BEGIN EC PRIVATE KEY----- y", "PEM private key block"),
                       ('{\\"qi\\": \\"abc\\"}', "JWK private member"),
                       ("copied: %s" % json.dumps(body), "PEM body line"),
                       ("the pass is pp-planted-0123.", "passphrase"),
                       ("Authorization: Bearer %s" % token, "token")):
        assert what in [label for _where, label, _excerpt in findings(text, needles, "planted")], text
    # Not findings: source code that names PEM markers, public keys, and tokens where they are allowed.
    quiet = 'if b"PRIVATE KEY-----" not in data: raise\n%s' % key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    assert findings(quiet, needles, "quiet") == []
    assert findings(token, needles, "token file", tokens=False) == []


# --------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------

def _ansible_playbook():
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return beside if os.access(beside, os.X_OK) else shutil.which("ansible-playbook")


def _collections_path():
    return os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(REPO, ".cache", "collections")


def snapshot_collection(workdir):
    """Copy the collection (the files git tracks or would track) into workdir; returns (root, collections path)."""
    collections = os.path.join(workdir, "collections")
    root = os.path.join(collections, "ansible_collections", "selfjwt", "kyma")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    if listed.returncode != 0:
        pytest.skip("git ls-files failed in %s: the snapshot needs a git work tree" % REPO)
    for name in sorted(set(listed.stdout.decode("utf-8").split("\0")) - {""}):
        source = os.path.join(REPO, name)
        if os.path.isfile(source) and not name.startswith(("tests/", "bench/", "docs/")):
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(root, name))
    for path in _collections_path().split(os.pathsep):
        namespaces = os.path.join(path, "ansible_collections")
        for namespace in sorted(os.listdir(namespaces)) if os.path.isdir(namespaces) else []:
            target = os.path.join(collections, "ansible_collections", namespace)
            if namespace != "selfjwt" and not os.path.exists(target):
                os.symlink(os.path.join(namespaces, namespace), target)
    return root, collections


def recap(output):
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group(1), {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                              "failed": int(m.group(5))}) for m in RECAP.finditer(tail))


def tree_state(root):
    """{relative path: (type, mode, uid, gid, sha256)} of everything below root."""
    state = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            digest = None
            if stat.S_ISREG(status.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, root)] = (stat.S_IFMT(status.st_mode), stat.S_IMODE(status.st_mode),
                                                  status.st_uid, status.st_gid, digest)
    return state


def _missing():
    if _ansible_playbook() is None:
        return "ansible-playbook is not installed"
    if shutil.which("git") is None:
        return "git is not installed (the test runs from a snapshot made with git ls-files)"
    absent = [role for role in ("edge_keys", "kyma_publish", "smoke_test")
              if not os.path.isfile(os.path.join(REPO, "roles", role, "tasks", "main.yml"))]
    if absent:
        return "the demo needs the roles %s" % ", ".join(absent)
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    work = str(tmp_path_factory.mktemp("playbook-security"))
    root, collections = snapshot_collection(work)
    out = os.path.join(work, "demo-out")
    dumps = os.path.join(work, "hostvars")
    os.makedirs(dumps)
    for name in ("tmp", "remote-tmp", "async"):
        os.makedirs(os.path.join(work, name))
    passphrase = "pp-%s" % secrets.token_hex(16)
    with open(os.path.join(work, "dump.yml"), "w", encoding="utf-8") as handle:
        handle.write(DUMP_PLAYBOOK)
    with open(os.path.join(work, "passphrase.yml"), "w", encoding="utf-8") as handle:
        handle.write(EXTRA_INVENTORY % passphrase)
    os.chmod(os.path.join(work, "passphrase.yml"), 0o600)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": os.path.join(work, "tmp"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(work, "remote-tmp"),
        "ANSIBLE_ASYNC_DIR": os.path.join(work, "async"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    })
    inventory = ["-i", os.path.join(root, "playbooks", "inventory", "demo.yml"),
                 "-i", os.path.join(work, "passphrase.yml")]

    def play(name, playbooks, umask, *extra):
        command = ([_ansible_playbook()] + inventory + playbooks
                   + ["-e", "selfjwt_demo_dir=%s" % out, "-e", "selfjwt_dump_dir=%s" % dumps, "-vvv", "--diff"]
                   + list(extra))
        started, cpu = time.monotonic(), _children_cpu()
        done = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=PLAYBOOK_TIMEOUT, check=False, preexec_fn=lambda: os.umask(umask))
        print("%s: %.0f s, %.0f s CPU" % (name, time.monotonic() - started, _children_cpu() - cpu))
        stdout, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        with open(os.path.join(work, name + ".log"), "w", encoding="utf-8") as handle:
            handle.write(stdout + stderr)
        assert done.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (name, done.returncode, stdout[-6000:],
                                                                     stderr[-3000:])
        return {"stdout": stdout, "stderr": stderr, "recap": recap(stdout)}

    playbooks = os.path.join(root, "playbooks")
    result = {"work": work, "out": out, "dumps": dumps, "passphrase": passphrase, "runs": {}}

    # 1. Check mode on hosts that have nothing yet.
    result["runs"]["fresh-check"] = play("fresh-check", [os.path.join(playbooks, "site.yml")], 0o000, "--check",
                                         "--limit", "edge-01,edge-02,localhost")
    result["fresh_out_exists"] = os.path.exists(out)

    # 2. The demo, and what every host knows afterwards.
    result["runs"]["demo"] = play("demo", [os.path.join(playbooks, "demo.yml"), os.path.join(work, "dump.yml")],
                                  0o000)
    result["after_demo"] = tree_state(out)

    # 3. Disturb, then check mode must report it and change nothing; then put everything back.
    hosts = os.path.join(out, "hosts")
    disturbed = [os.path.join(hosts, "edge-01", "keys", "signing.pem"),
                 os.path.join(hosts, "edge-02", "keys", "signing.pem.passphrase"),
                 os.path.join(hosts, "edge-03", "lib", "refresher.json"),
                 os.path.join(out, "manifests", "apirule.yaml"), os.path.join(out, "manifests", "jwks.json")]
    originals = dict((path, (_read(path), stat.S_IMODE(os.stat(path).st_mode))) for path in disturbed)
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
    result["runs"]["check"] = play("check", [os.path.join(playbooks, "site.yml")], 0o000, "--check")
    result["after_check"] = tree_state(out)
    for path, (data, mode) in originals.items():
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
    result["restored"] = tree_state(out)

    # 4. A key rotation with a backup, under the strictest umask.
    result["old_key"] = _read(os.path.join(hosts, "edge-01", "keys", "signing.pem"))
    result["runs"]["rotate"] = play("rotate", [os.path.join(playbooks, "edge.yml")], 0o077, "--limit", "edge-01",
                                    "-e", "edge_keys_key_regenerate=always", "-e", "edge_keys_key_backup=true")
    return result


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


# --------------------------------------------------------------------------------------
# What the runs did (so that the scans below mean something)
# --------------------------------------------------------------------------------------

def _secret_files(out):
    """Private keys, key backups, passphrase files and token files of the output tree."""
    found = {"key": [], "passphrase": [], "token": []}
    for host in EDGE_HOSTS:
        keys = os.path.join(out, "hosts", host, "keys")
        for name in sorted(os.listdir(keys)):
            path = os.path.join(keys, name)
            if name.endswith(".passphrase"):
                found["passphrase"].append(path)
            elif name.startswith("signing.pem") and not name.endswith(".lock"):
                found["key"].append(path)
        token = os.path.join(out, "hosts", host, "token", "token")
        if os.path.exists(token):
            found["token"].append(token)
    return found


def test_the_runs_did_what_the_checks_rely_on(runs):
    assert runs["fresh_out_exists"] is False, "check mode on new hosts created %s" % runs["out"]
    demo = runs["runs"]["demo"]["recap"]
    assert set(demo) == set(EDGE_HOSTS) | {"localhost"}
    assert all(counts["failed"] == 0 for counts in demo.values()), demo
    assert '"invocation"' in runs["runs"]["demo"]["stdout"], "-vvv was not in effect"
    assert "All 3 edge hosts passed the smoke test" in runs["runs"]["demo"]["stdout"]
    secrets_found = _secret_files(runs["out"])
    # Three keys, one backup (edge-01's old key), edge-02's passphrase file, three token files.
    assert len(secrets_found["key"]) == 4, secrets_found
    assert [os.path.basename(os.path.dirname(os.path.dirname(path))) for path in secrets_found["passphrase"]] \
        == ["edge-02"]
    assert len(secrets_found["token"]) == 3
    assert b"ENCRYPTED PRIVATE KEY" in _read(os.path.join(runs["out"], "hosts", "edge-02", "keys", "signing.pem"))
    backups = [path for path in secrets_found["key"] if not path.endswith("signing.pem")]
    assert len(backups) == 1 and _read(backups[0]) == runs["old_key"]
    assert _read(os.path.join(runs["out"], "hosts", "edge-01", "keys", "signing.pem")) != runs["old_key"]
    assert sorted(os.listdir(runs["dumps"])) == ["edge-01.json", "edge-02.json", "edge-03.json", "localhost.json"]


# --------------------------------------------------------------------------------------
# Leaks
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def needles(runs):
    found = [("passphrase", runs["passphrase"])]
    keys = _secret_files(runs["out"])["key"]
    for path in keys:
        found += [("%s: %s" % (os.path.relpath(path, runs["out"]), label), text)
                  for label, text in private_needles(_read(path), runs["passphrase"])]
    return found


@pytest.mark.parametrize("run_name", ["fresh-check", "demo", "check", "rotate"])
def test_no_secrets_in_the_run_output(runs, needles, run_name):
    run = runs["runs"][run_name]
    found = findings(run["stdout"], needles, run_name + " stdout")
    found += findings(run["stderr"], needles, run_name + " stderr")
    assert found == []


def _without_passphrase_inputs(variables):
    return dict((name, value) for name, value in variables.items() if name not in PASSPHRASE_INPUTS)


@pytest.mark.parametrize("host", list(EDGE_HOSTS) + ["localhost"])
def test_no_private_material_in_facts_and_variables(runs, needles, host):
    with open(os.path.join(runs["dumps"], host + ".json"), encoding="utf-8") as handle:
        variables = json.load(handle)
    text = json.dumps(_without_passphrase_inputs(variables), indent=1, sort_keys=True)
    assert findings(text, needles, "hostvars of %s" % host, tokens=False) == []
    # Tokens live only in the roles' internal no_log results, never in what a role exports.
    exported = dict((name, value) for name, value in variables.items() if EXPORTED_FACTS.match(name))
    assert host == "localhost" or "edge_keys_kid" in exported
    carriers = sorted(name for name, value in variables.items() if JWT.search(json.dumps(value)))
    assert [name for name in carriers if not name.startswith("__")] == []


def test_no_secrets_in_files(runs, needles):
    secret = set(path for paths in _secret_files(runs["out"]).values() for path in paths)
    scanned = 0
    found = []
    for top in (runs["out"], os.path.join(runs["work"], "tmp"), os.path.join(runs["work"], "remote-tmp"),
                os.path.join(runs["work"], "async")):
        for directory, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(directory, name)
                if path in secret or os.path.islink(path):
                    continue
                scanned += 1
                found += findings(_read(path).decode("utf-8", "replace"), needles, path)
    assert scanned >= 30, scanned
    assert found == []


def test_token_files_hold_tokens_and_nothing_else(runs, needles):
    for path in _secret_files(runs["out"])["token"]:
        text = _read(path).decode("ascii")
        assert JWT.fullmatch(text), path
        assert findings(text, needles, path, tokens=False) == []


# --------------------------------------------------------------------------------------
# Permissions (runs under umask 000 and 077)
# --------------------------------------------------------------------------------------

def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_secret_files_and_directories_are_private(runs):
    out = runs["out"]
    for host in EDGE_HOSTS:
        keys = os.path.join(out, "hosts", host, "keys")
        token_dir = os.path.join(out, "hosts", host, "token")
        assert _mode(keys) == 0o700, keys
        assert _mode(token_dir) == 0o700, token_dir
        for directory in (keys, token_dir):
            for name in os.listdir(directory):
                assert _mode(os.path.join(directory, name)) == 0o600, os.path.join(directory, name)


def test_nothing_is_world_writable_and_nothing_world_readable_holds_a_secret(runs, needles):
    problems = []
    for directory, dirnames, filenames in os.walk(runs["out"]):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            mode = _mode(path)
            if mode & stat.S_IWOTH:
                problems.append("world-writable: %s (%04o)" % (path, mode))
            if os.path.isfile(path) and mode & stat.S_IROTH:
                problems += ["world-readable %s: %s" % (what, path)
                             for _where, what, _excerpt in findings(_read(path).decode("utf-8", "replace"),
                                                                    needles, path)]
    assert problems == []


# --------------------------------------------------------------------------------------
# Check mode
# --------------------------------------------------------------------------------------

def test_check_mode_of_every_role_changes_nothing(runs):
    assert runs["disturbed"] != runs["after_demo"], "the disturbance did not change the tree"
    assert runs["restored"] == runs["after_demo"], "the test did not put the disturbed files back"
    assert runs["after_check"] == runs["disturbed"]
    counts = runs["runs"]["check"]["recap"]
    # Each disturbed host and the cluster side saw something to change.
    assert all(counts[host]["changed"] > 0 for host in EDGE_HOSTS + ("localhost",)), counts
    assert all(counts[host]["failed"] == 0 for host in counts), counts
