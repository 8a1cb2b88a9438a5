# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Key rotation of a simulated fleet without a single rejected token (playbooks/rotate.yml).

Three local edge hosts of the demo inventory (EC P-256, RSA-2048 and Ed25519 keys, cluster
side rendered) rotate their keys with windows of a few seconds, while a checker thread

* mints tokens on every host through the token refresher's own code (``selfjwt_refresher.refresh``,
  the code behind ``selfjwt-token``, which signs with the key at the signing path), and
* verifies every token that is still valid (up to ``exp`` + clock skew) as the gateway may see
  it: against EVERY JWKS document that was current at some moment during the last propagation
  window (istiod serves a JWKS up to one window old), with the stand-in's re-implementation
  of Envoy's checks (tools/kyma_standin/envoy_jwt.py), not with the collection's code.

The publication history is taken from the rendered jwks.json (its mtime is the moment it was
written). Before the first publication the gateway trusted the keys the hosts had before the
rotation (what edge.yml + cluster.yml leave behind).

The run is interrupted: ``rotate.yml`` is SIGKILLed once every host recorded the publication
of its next key (inside the propagation window, before any activation), and the same command
is run again; it must complete the rotation. Zero rejections are allowed.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _jwks, _keypair, _keys  # noqa: E402
from tools.kyma_standin import envoy_jwt  # noqa: E402
from helpers import ansible_env, configured_collections_path, find_ansible_playbook  # noqa: E402  pylint: disable=import-error
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher as selfjwt_refresher  # noqa: E402

HOSTS = {"edge-01": {"type": "ec"}, "edge-02": {"type": "rsa", "size": 2048}, "edge-03": {"type": "ed25519"}}
ISSUER = "http://edge-jwks.selfjwt-system.svc.cluster.local"
WINDOW = 3           # propagation window (s)
LIFETIME = 4         # token lifetime = max lifetime (s)
SKEW = 1             # clock skew (s)
PLAYBOOK_TIMEOUT = 600
EXTRA_VARS = {
    "edge_keys_token_lifetime": LIFETIME,
    "edge_keys_token_max_lifetime": LIFETIME,
    "edge_keys_token_refresh_margin": 2,
    "edge_keys_rotation_propagation_window": WINDOW,
    "edge_keys_rotation_clock_skew": SKEW,
    "selfjwt_rotation_action": "rotate",
    "selfjwt_rotation_wait": True,
}


class Checker(threading.Thread):
    """Mints on every host and verifies every live token against the recent JWKS history."""

    def __init__(self, demo_dir, configs, legacy_jwks):
        super(Checker, self).__init__(daemon=True)
        self.jwks_path = os.path.join(demo_dir, "manifests", "jwks.json")
        self.configs = configs
        self.history = [(float("-inf"), legacy_jwks)]    # (published at, JWKS text)
        self.tokens = []                                 # (host, token, kid, exp)
        self.seen = set()
        self.verified = {}                               # (host, kid) -> number of verifications
        self.rejections = []
        self.errors = []
        self.stop_event = threading.Event()

    def poll_jwks(self):
        try:
            mtime = os.stat(self.jwks_path).st_mtime
            with open(self.jwks_path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            return
        if text != self.history[-1][1] and mtime > self.history[-1][0]:
            self.history.append((mtime, text))

    def gateway_views(self, now):
        """Every JWKS document current at some moment of [now - WINDOW, now]."""
        views = []
        for index, (start, text) in enumerate(self.history):
            end = self.history[index + 1][0] if index + 1 < len(self.history) else float("inf")
            if end > now - WINDOW and start <= now:
                views.append(text)
        return views

    def mint(self):
        for host, config in sorted(self.configs.items()):
            _changed, result = selfjwt_refresher.refresh(config)
            if result.token not in self.seen:
                self.seen.add(result.token)
                self.tokens.append((host, result.token, result.kid, result.expires_at))

    def verify(self, now):
        views = self.gateway_views(now)
        for host, token, kid, exp in self.tokens:
            if now > exp + SKEW:
                continue
            status, jwt = envoy_jwt.parse_token(token)
            assert status == envoy_jwt.OK, status
            for text in views:
                verdict = envoy_jwt.verify_signature(jwt, envoy_jwt.parse_jwks(text))
                if verdict != envoy_jwt.OK:
                    self.rejections.append((round(now, 2), host, kid, verdict))
            self.verified[(host, kid)] = self.verified.get((host, kid), 0) + 1

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.poll_jwks()
                self.mint()
                self.verify(time.time())
                self.stop_event.wait(0.25)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self.errors.append(repr(exc))


def _host_dir(demo_dir, host):
    return os.path.join(demo_dir, "hosts", host)


def _setup_fleet(demo_dir):
    """Keys as edge.yml leaves them, and the refresher configuration of each host."""
    configs, legacy = {}, []
    for host, key in HOSTS.items():
        keys, token = os.path.join(_host_dir(demo_dir, host), "keys"), os.path.join(_host_dir(demo_dir, host), "token")
        os.makedirs(keys, mode=0o700)
        os.makedirs(token, mode=0o700)
        result = _keypair.ensure_present(_keypair.KeypairSpec(path=os.path.join(keys, "signing.pem"), **key))
        legacy.append(result["jwk"])
        configs[host] = {
            "version": 1, "user": None,
            "key": {"path": os.path.join(keys, "signing.pem"), "kid": None, "algorithm": None,
                    "passphrase_file": None},
            "token": {"issuer": ISSUER, "subject": host, "audience": "edge-api", "expires_in": LIFETIME,
                      "max_lifetime": LIFETIME, "not_before": 0, "scopes": ["orders.read"], "claims": {},
                      "jku": None},
            "token_file": {"path": os.path.join(token, "token"), "mode": "0600", "group": None,
                           "refresh_margin": 2},
        }
    return configs, _jwks.jwks_document({"keys": legacy})


def _ring(demo_dir, host):
    with open(os.path.join(_host_dir(demo_dir, host), "keys", "signing.pem.ring.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _rotate_command(demo_dir):
    command = [find_ansible_playbook(), "-i", os.path.join(REPO, "playbooks", "inventory", "demo.yml"),
               os.path.join(REPO, "playbooks", "rotate.yml"), "-e", "selfjwt_demo_dir=%s" % demo_dir,
               "-e", json.dumps(EXTRA_VARS)]
    env = ansible_env(configured_collections_path(),
                      PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return command, env


def _next_published_everywhere(demo_dir):
    try:
        rings = [_ring(demo_dir, host) for host in HOSTS]
    except (OSError, ValueError):
        return False
    return all([key for key in ring["keys"] if key["state"] == "next" and key.get("published_at")] for ring in rings)


@pytest.fixture(scope="module")
def rotation(tmp_path_factory):
    if find_ansible_playbook() is None:
        pytest.skip("ansible-playbook is not installed")
    if not os.path.isdir(os.path.join(configured_collections_path().split(os.pathsep)[0], "ansible_collections", "selfjwt")):
        pytest.skip("selfjwt.kyma is not in ANSIBLE_COLLECTIONS_PATH (%s): run 'make collections'"
                    % configured_collections_path())
    workdir = str(tmp_path_factory.mktemp("rotation"))
    demo_dir = os.path.join(workdir, "demo-out")
    configs, legacy_jwks = _setup_fleet(demo_dir)
    first_kids = dict((host, _jwk.key_thumbprint(_keys.load_private_key(
        open(configs[host]["key"]["path"], "rb").read()))) for host in HOSTS)
    checker = Checker(demo_dir, configs, legacy_jwks)
    checker.start()
    command, env = _rotate_command(demo_dir)
    log = open(os.path.join(workdir, "rotate.log"), "wb")
    try:
        # Run 1, killed once every host recorded the publication of its next key.
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.time() + PLAYBOOK_TIMEOUT
        while not _next_published_everywhere(demo_dir) and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        killed = process.poll() is None
        if killed:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        rings_after_kill = dict((host, _ring(demo_dir, host)) for host in HOSTS)
        apirule_path = os.path.join(demo_dir, "manifests", "apirule.yaml")
        with open(apirule_path, "rb") as handle:
            apirule_before = handle.read()
        # Run 2: the same command completes the rotation.
        second = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=PLAYBOOK_TIMEOUT, check=False)
        log.write(second.stdout)
        with open(apirule_path, "rb") as handle:
            apirule_after = handle.read()
        # Let the last tokens of the new keys be checked against the final JWKS too.
        time.sleep(WINDOW + 1)
    finally:
        checker.stop_event.set()
        checker.join(30)
        log.close()
    with open(os.path.join(workdir, "rotate.log"), encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    return {"dir": demo_dir, "checker": checker, "killed": killed, "first_kids": first_kids,
            "rings_after_kill": rings_after_kill, "rc": second.returncode, "output": output,
            "second_output": second.stdout.decode("utf-8", "replace"), "apirule": (apirule_before, apirule_after)}


def test_the_run_was_interrupted_between_steps(rotation):
    assert rotation["killed"], "rotate.yml finished before it could be interrupted"
    for host, ring in rotation["rings_after_kill"].items():
        states = dict((key["kid"], key["state"]) for key in ring["keys"])
        assert states[rotation["first_kids"][host]] == "active", host
        assert sorted(states.values()) == ["active", "next"], host


def test_the_rerun_completes_the_rotation(rotation):
    assert rotation["rc"] == 0, rotation["output"][-6000:]
    with open(os.path.join(rotation["dir"], "manifests", "jwks.json"), encoding="utf-8") as handle:
        final = json.load(handle)
    for host in HOSTS:
        ring = _ring(rotation["dir"], host)
        states = dict((key["kid"], key["state"]) for key in ring["keys"])
        assert states[rotation["first_kids"][host]] == "retired", host
        active = [kid for kid, state in states.items() if state == "active"]
        assert len(active) == 1 and active[0] != rotation["first_kids"][host]
        assert active[0] in [key["kid"] for key in final["keys"]]
        old = [key for key in ring["keys"] if key["state"] == "retired"][0]
        for name in ("published_at", "deactivated_at", "retired_at", "withdrawn_at"):
            assert old.get(name), (host, name)
    assert sorted(key["kid"] for key in final["keys"]) == sorted(
        kid for host in HOSTS for kid, state in
        ((key["kid"], key["state"]) for key in _ring(rotation["dir"], host)["keys"]) if state == "active")


def test_no_token_was_rejected(rotation):
    checker = rotation["checker"]
    assert checker.errors == []
    assert checker.rejections == [], checker.rejections[:20]
    # Both generations of every host signed tokens that were verified, and every JWKS change was seen:
    # the first publication (old + next keys) and the one without the old keys.
    for host in HOSTS:
        kids = [kid for (name, kid) in checker.verified if name == host]
        assert len(kids) == 2, (host, kids)
        assert rotation["first_kids"][host] in kids
    assert len(checker.history) >= 3


def test_the_apirule_never_changed(rotation):
    # The re-run published twice (the activation needs no publication): the JWKS and the ConfigMap
    # changed, the APIRule (issuer, jwksUri) never did.
    before, after = rotation["apirule"]
    assert before == after and ISSUER.encode() in after
    assert "changed: [localhost] => (item=jwks-configmap.yaml)" in rotation["second_output"]
    assert "changed: [localhost] => (item=apirule.yaml)" not in rotation["second_output"]


@pytest.fixture(scope="module")
def revocation(rotation):
    """After the rotation: cut edge-02 off with playbooks/revoke.yml, deleting its private keys."""
    demo_dir = rotation["dir"]
    command, env = _rotate_command(demo_dir)
    command[3] = os.path.join(REPO, "playbooks", "revoke.yml")
    command[-1] = json.dumps({"revoke_host": "edge-02", "revoke_delete_keys": True})
    rings = dict((host, open(os.path.join(_host_dir(demo_dir, host), "keys", "signing.pem.ring.json"), "rb").read())
                 for host in HOSTS)
    with open(os.path.join(demo_dir, "manifests", "jwks.json"), encoding="utf-8") as handle:
        before = json.load(handle)
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=PLAYBOOK_TIMEOUT, check=False)
    with open(os.path.join(demo_dir, "manifests", "jwks.json"), encoding="utf-8") as handle:
        after = json.load(handle)
    return {"rc": done.returncode, "output": done.stdout.decode("utf-8", "replace"), "rings": rings,
            "before": before, "after": after, "dir": demo_dir}


def test_revoke_cuts_one_host_off_and_leaves_the_others(revocation):
    assert revocation["rc"] == 0, revocation["output"][-6000:]
    demo_dir = revocation["dir"]
    revoked = _ring(demo_dir, "edge-02")
    revoked_kids = [key["kid"] for key in revoked["keys"] if key["state"] == "revoked"]
    assert len(revoked_kids) == 1 and all(key["state"] in ("revoked", "retired") for key in revoked["keys"])
    assert not os.path.exists(os.path.join(_host_dir(demo_dir, "edge-02"), "keys", "signing.pem"))
    before = set(key["kid"] for key in revocation["before"]["keys"])
    after = set(key["kid"] for key in revocation["after"]["keys"])
    assert after == before - set(revoked_kids) and len(after) == 2
    for host in ("edge-01", "edge-03"):
        path = os.path.join(_host_dir(demo_dir, host), "keys", "signing.pem.ring.json")
        assert open(path, "rb").read() == revocation["rings"][host], host
    assert "Revoked kids: %s" % revoked_kids[0] in revocation["output"]
