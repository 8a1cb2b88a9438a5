# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers shared by the test suites (not a test module).

tests/system, tests/interop and tests/unit put this directory on sys.path in their
conftest.py, so that every suite uses one copy of: where ansible-playbook is, which
ANSIBLE_COLLECTIONS_PATH holds this repository, a snapshot of the collection, the PLAY RECAP
parser, the environment of a test's ansible-playbook run, the state of a directory tree (for
"check mode changes nothing"), the harness that runs a module's main() in-process with the
file and key helpers of the unit tests, and the keys and tokens of a simulated fleet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import collections
import hashlib
import importlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import yaml

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def find_ansible_playbook():
    """ansible-playbook beside the Python that runs the tests (the pinned virtualenv), else on PATH, else None."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("ansible-playbook")


def require_ansible_playbook():
    """find_ansible_playbook(), or fail the test: the suite cannot run without it."""
    found = find_ansible_playbook()
    if not found:
        import pytest  # pylint: disable=import-outside-toplevel
        pytest.fail("ansible-playbook not found beside %s or on PATH: run 'make venv'" % sys.executable)
    return found


def configured_collections_path():
    """ANSIBLE_COLLECTIONS_PATH as set (make and scripts/env.sh set it), else <repo>/.cache/collections."""
    return os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(REPO, ".cache", "collections")


def collections_path_with_repo(tmp_dir):
    """ANSIBLE_COLLECTIONS_PATH that holds this repository as selfjwt.kyma.

    The configured path when it already links selfjwt.kyma to this repository; otherwise
    tmp_dir (created) with that link, in front of the configured path.
    """
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    for entry in configured.split(os.pathsep):
        candidate = os.path.join(entry, "ansible_collections", "selfjwt", "kyma")
        if entry and os.path.realpath(candidate) == os.path.realpath(REPO):
            return configured
    namespace = os.path.join(tmp_dir, "ansible_collections", "selfjwt")
    os.makedirs(namespace)
    os.symlink(REPO, os.path.join(namespace, "kyma"))
    return os.pathsep.join(entry for entry in (tmp_dir, configured) if entry)


def ansible_env(collections_path, local_temp=None, remote_temp=None, base=None, **settings):
    """The environment of an ansible-playbook run in a test.

    A copy of ``base`` (os.environ) with the collections path, no colours and no retry files, Ansible's local (and remote) temporary
    directory below the test's own directory when given, then ``settings`` (NAME=value, such as
    ANSIBLE_PIPELINING="1" or TMPDIR=...) on top.
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    if local_temp:
        env["ANSIBLE_LOCAL_TEMP"] = local_temp
    if remote_temp:
        env["ANSIBLE_REMOTE_TEMP"] = remote_temp
    env.update(settings)
    return env


def snapshot_collection(workdir, exclude=("tests/", "bench/", "docs/")):
    """Copy the collection (the files git tracks or would track) into workdir.

    Returns (collection root, collections path); the other collections of the configured path
    (kubernetes.core) are linked as they are. Without git, the work tree is copied.
    """
    collections = os.path.join(workdir, "collections")
    root = os.path.join(collections, "ansible_collections", "selfjwt", "kyma")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    if listed.returncode == 0:
        for name in sorted(set(listed.stdout.decode("utf-8").split("\0")) - {""}):
            source = os.path.join(REPO, name)
            if os.path.isfile(source) and not name.startswith(tuple(exclude)):
                os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
                shutil.copy2(source, os.path.join(root, name))
    else:
        shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "demo-out", "node_modules", "__pycache__", "output",
            *[path.rstrip("/") for path in exclude]))
    for path in configured_collections_path().split(os.pathsep):
        namespaces = os.path.join(path, "ansible_collections")
        for namespace in sorted(os.listdir(namespaces)) if os.path.isdir(namespaces) else []:
            target = os.path.join(collections, "ansible_collections", namespace)
            if namespace != "selfjwt" and not os.path.exists(target):
                os.symlink(os.path.join(namespaces, namespace), target)
    return root, collections


def recap(output):
    """{host: {"ok", "changed", "unreachable", "failed"}} from the last PLAY RECAP of the output."""
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group(1), {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                              "failed": int(m.group(5))}) for m in RECAP.finditer(tail))


def tree_state(root, mtime=False):
    """{relative path: (file type, mode, uid, gid[, mtime_ns], sha256 or None)} of everything below root."""
    state = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            digest = None
            if stat.S_ISREG(status.st_mode):
                sha = hashlib.sha256()
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1024 * 1024), b""):  # pylint: disable=cell-var-from-loop
                        sha.update(block)
                digest = sha.hexdigest()
            entry = (stat.S_IFMT(status.st_mode), stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid)
            if mtime:
                entry += (status.st_mtime_ns,)
            state[os.path.relpath(path, root)] = entry + (digest,)
    return state


class SteppingClock(object):
    """A stand-in for the ``time`` module of ``_keyring`` that moves 10 s on each reading.

    Every run is a later moment; with zero windows every rotation step is due at once.
    """

    def __init__(self):
        self.now = 1800000000.5

    def time(self):
        self.now += 10
        return self.now


def private_directory_above(path):
    """The first directory from / down to ``path`` that other users cannot enter, or None."""
    parts = os.path.abspath(path).split(os.sep)
    for end in range(2, len(parts) + 1):
        directory = os.sep.join(parts[:end]) or os.sep
        if os.path.isdir(directory) and not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory
    return None


# --------------------------------------------------------------------------------------
# In-process module runs and key files (the unit tests)
# --------------------------------------------------------------------------------------

ModuleRun = collections.namedtuple("ModuleRun", "out result code")


def run_module_main(module, args, capsys, check_mode=False, diff=False):
    """Run ``module.main()`` in-process with ``args`` the way Ansible runs a module.

    Check mode and diff are set as Ansible sets them; the module must exit (exit_json or
    fail_json). Returns ModuleRun(raw stdout, parsed result, exit code).
    """
    import pytest  # pylint: disable=import-outside-toplevel
    from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel
    from ansible.module_utils.common import warnings  # pylint: disable=import-outside-toplevel
    from ansible.module_utils.testing import patch_module_args  # pylint: disable=import-outside-toplevel

    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    # As in a module process: not the controller (whose display would take the module's
    # warnings), and no warnings of an earlier run (ansible-core keeps them process-global).
    was_controller = _internal.is_controller
    _internal.is_controller = False
    warnings._global_warnings.clear()  # pylint: disable=protected-access
    warnings._global_deprecations.clear()  # pylint: disable=protected-access
    try:
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exited:
                module.main()
    finally:
        _internal.is_controller = was_controller
    out = capsys.readouterr().out
    return ModuleRun(out, json.loads(out), exited.value.code)


def read_file(path):
    """The bytes of the file at ``path``."""
    with open(path, "rb") as handle:
        return handle.read()


def write_file(path, data, mode=0o600):
    """Write ``data`` (bytes) to ``path``, then give it ``mode``."""
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def file_mode(path):
    """The permission bits of ``path``."""
    return stat.S_IMODE(os.stat(path).st_mode)


def private_key_pem(key, passphrase=None, fmt=None):
    """PEM of a cryptography private key (PKCS#8 unless ``fmt``), encrypted when ``passphrase`` is given."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt or serialization.PrivateFormat.PKCS8, encryption)


def module_result(module, args, capsys, check_mode=False):
    """The parsed result of run_module_main(); its output must hold no traceback."""
    out, result, _code = run_module_main(module, args, capsys, check_mode=check_mode)
    assert "Traceback" not in out
    return result


def digest_tree(root):
    """{name: sha256} of the regular files below root (lock files hold nothing and are left out)."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".lock") and os.path.getsize(path) == 0:
                continue
            found[os.path.relpath(path, root)] = hashlib.sha256(read_file(path)).hexdigest()
    return found


def temp_files(directory):
    """The names of the temporary files (``*.tmp``) in ``directory``, sorted."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def refresher_host(root, key, issuer):
    """A host below ``root`` (a pathlib.Path) with ``key`` as its signing key (mode 0600).

    Returns the token_refresher module's arguments for it: cron, the Python that runs the tests.
    """
    (root / "keys").mkdir(parents=True)
    key_path = root / "keys" / "signing.pem"
    key_path.write_bytes(private_key_pem(key))
    os.chmod(str(key_path), 0o600)
    return {
        "key_path": str(key_path),
        "issuer": issuer,
        "jku": issuer + "/.well-known/jwks.json",
        "subject": "edge-01",
        "audience": "orders-api",
        "scopes": ["orders.read"],
        "token_dir": str(root / "state"),
        "lib_dir": str(root / "lib"),
        "bin_dir": str(root / "bin"),
        "python": sys.executable,
        "scheduler": "cron",
        "cron_file": str(root / "cron"),
        "systemd_unit_dir": str(root / "systemd"),
    }


# --------------------------------------------------------------------------------------
# Simulated edge fleets (JWKs and tokens made here, not by the collection)
# --------------------------------------------------------------------------------------

def fleet_hosts(count, start=0):
    """Host names edge-00000, edge-00001, ... of a simulated fleet."""
    return ["edge-%05d" % index for index in range(start, start + count)]


def ec_public_jwk(private, kid):
    """The public JWK (ES256, use sig) of an EC P-256 key, built from its public numbers."""
    numbers = private.public_key().public_numbers()

    def b64(value):
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode("ascii")

    return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "kid": kid,
            "alg": "ES256", "use": "sig"}


def es256_token(private, kid, issuer, subject):
    """A token of five minutes signed with PyJWT."""
    import jwt  # pylint: disable=import-outside-toplevel

    now = int(time.time())
    return jwt.encode({"iss": issuer, "sub": subject, "iat": now, "nbf": now, "exp": now + 300,
                       "jti": "%s-%d" % (subject, now)}, private, algorithm="ES256", headers={"kid": kid})


class StandinJwksStore(object):
    """JWKS documents by issuer, parsed by the gateway stand-in: the store its Gateway asks.

    Needs the repository on sys.path (for tools.kyma_standin).
    """

    def __init__(self, documents):
        from tools.kyma_standin import envoy_jwt  # pylint: disable=import-outside-toplevel

        self.parsed = dict((issuer, envoy_jwt.parse_jwks(text)) for issuer, text in documents.items())

    def get(self, issuer):
        return self.parsed.get(issuer)


def rendered_doc(module, section="options"):
    """A module's documented options (or attributes) as ansible-doc shows them, with this collection's fragments.

    Merged as Ansible merges them: a fragment's entry, updated by what the module says about it.
    Fragments of other collections (ansible.builtin.files, the file options that
    add_file_common_args adds) are left out, since a module's argument_spec() does not hold them.
    """
    doc = yaml.safe_load(module.DOCUMENTATION)
    merged = {}
    for name in doc.get("extends_documentation_fragment", []):
        if not name.startswith("selfjwt.kyma."):
            continue
        fragment, _dot, variable = name[len("selfjwt.kyma."):].partition(".")
        source = importlib.import_module("ansible_collections.selfjwt.kyma.plugins.doc_fragments." + fragment)
        text = getattr(source.ModuleDocFragment, variable.upper() or "DOCUMENTATION")
        for key, entry in (yaml.safe_load(text).get(section) or {}).items():
            merged[key] = dict(merged.get(key, {}), **entry)
    for key, entry in (doc.get(section) or {}).items():
        merged[key] = dict(merged.get(key, {}), **entry)
    return merged
