# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The playbooks of `make demo` with -vvv --diff: no leaks, safe file modes, check mode changes nothing.

test_no_secret_leaks.py scans the three modules; this test scans every playbook path that runs
on one machine. The runs are the shared demo runs of conftest.py (``demo_runs`` and
``demo_rotation``; test_demo.py checks the same demo run for what it does), all with -vvv --diff
from a snapshot of the collection into a temporary output directory:

1. ``site.yml --check`` on hosts that have nothing yet: nothing is created.
2. ``demo.yml`` under umask 000, followed by a play that dumps every host's variables and
   facts (hostvars) to JSON files. edge-02 gets a key passphrase (a second inventory source),
   so the passphrase file and an encrypted key are part of it.
3. ``site.yml`` again (test_demo.py: it changes nothing).
4. Files are disturbed (a key's mode, a passphrase file's mode, the refresher configuration,
   the rendered APIRule, the rendered JWKS), then ``site.yml --check --diff``: it reports
   changes and the output tree stays byte-identical (content, mode, owner).
5. ``edge.yml --limit edge-01`` under umask 077 with ``edge_keys_key_regenerate=always`` and
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

import json
import os
import re
import stat
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_no_secret_leaks import JWK_PRIVATE_MEMBER, private_needles  # noqa: E402  pylint: disable=wrong-import-position,import-error

EDGE_HOSTS = ("edge-01", "edge-02", "edge-03")
PEM_BLOCK = re.compile(r"-----BEGIN[A-Z0-9 ]* PRIVATE KEY-----")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
#: Role variables that exporting must not turn into a token carrier.
EXPORTED_FACTS = re.compile(r"^(edge_keys_|kyma_publish_|smoke_test_results$)")
#: Input variables that hold the passphrase by design (the inventory's and the derived default).
PASSPHRASE_INPUTS = ("edge_keys_key_passphrase", "smoke_test_key_passphrase")


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
# The runs (conftest.py)
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(demo_rotation):
    return demo_rotation


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


@pytest.mark.parametrize("run_name", ["fresh-check", "demo", "second", "check", "rotate"])
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
