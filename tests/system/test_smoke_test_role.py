# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The smoke_test role in real playbooks, against the gateway stand-in.

Each test runs ``ansible-playbook`` on localhost with the role and a stand-in whose APIRule
and JWKS the test controls, so that the role meets both a gateway that behaves and gateways
that do not (key not published yet, endpoint down, key published late).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import ansible_env, configured_collections_path, find_ansible_playbook  # noqa: E402  pylint: disable=wrong-import-position,import-error
from standin_process import Process  # noqa: E402  pylint: disable=wrong-import-position,import-error

ISS = "http://edge-jwks.kyma-system.svc.cluster.local"
AUD = "smoke-api"
KID = "smoke-k1"
APIRULE = """\
apiVersion: gateway.kyma-project.io/v2
kind: APIRule
metadata: {name: smoke-api, namespace: default}
spec:
  gateway: kyma-system/kyma-gateway
  hosts: [smoke-api]
  service: {name: smoke, port: 80}
  rules:
    - path: /api/{**}
      methods: [GET]
      jwt:
        authentications:
          - issuer: %s
            jwksUri: %s/.well-known/jwks.json
        authorizations:
          - audiences: [%s]
            requiredScopes: [orders.read]
""" % (ISS, ISS, AUD)

PLAYBOOK = """\
- name: Smoke test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the role and keep its results
      block:
        - name: Run selfjwt.kyma.smoke_test
          ansible.builtin.include_role:
            name: selfjwt.kyma.smoke_test
      always:
        - name: Save the results
          ansible.builtin.copy:
            content: "{{ smoke_test_results | default(none) | to_json }}"
            dest: "{{ results_file }}"
            mode: "0644"
          changed_when: false
"""


def _collection_file(*parts):
    for path in configured_collections_path().split(os.pathsep):
        candidate = os.path.join(path, "ansible_collections", "selfjwt", "kyma", *parts)
        if os.path.exists(candidate):
            return candidate
    return None


def needs_issued_at():
    """The expired check mints with jwt_token's issued_at option (contract of issue 3)."""
    module = _collection_file("plugins", "modules", "jwt_token.py")
    with open(module, encoding="utf-8") as handle:
        if "issued_at" not in handle.read():
            pytest.skip("selfjwt.kyma.jwt_token has no issued_at option yet; the smoke test's expired check needs it")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if find_ansible_playbook() is None:
        pytest.skip("ansible-playbook is not installed")
    if _collection_file("roles", "smoke_test") is None:
        pytest.skip("selfjwt.kyma is not in ANSIBLE_COLLECTIONS_PATH (%s): run 'make collections'"
                    % configured_collections_path())
    workdir = str(tmp_path_factory.mktemp("smoke"))
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    key_path = os.path.join(workdir, "signing.pem")
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w", encoding="utf-8") as handle:
        handle.write(APIRULE)
    playbook = os.path.join(workdir, "smoke.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(PLAYBOOK)
    return {"dir": workdir, "key": key, "other": other, "key_path": key_path, "apirule": apirule,
            "playbook": playbook}


def jwks_of(*keys):
    out = []
    for kid, key in keys:
        jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
        out.append(jwk)
    return {"keys": out}


def write_json(path, data):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(path + ".tmp", path)


class Gateway:
    def __init__(self, env, name, jwks, refresh=3600):
        self.jwks_file = os.path.join(env["dir"], name + "-jwks.json")
        write_json(self.jwks_file, jwks)
        self.process = Process(["gateway", "--apirule", env["apirule"], "--jwks-refresh-interval", str(refresh),
                                "--jwks-map", "%s=%s" % (ISS, self.jwks_file)], env["dir"], name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.stop()


def run_role(env, name, url, check_mode=False, **role_vars):
    """(return code, output, results) of the role against ``url``."""
    results_file = os.path.join(env["dir"], name + "-results.json")
    variables = {
        "results_file": results_file,
        "smoke_test_url": url,
        "smoke_test_key_path": env["key_path"],
        "smoke_test_kid": KID,
        "smoke_test_issuer": ISS,
        "smoke_test_subject": "edge-test",
        "smoke_test_audience": AUD,
        "smoke_test_claims": {"scope": "orders.read"},
        "smoke_test_propagation_timeout": 2,
        "smoke_test_retry_delay": 1,
        # The stand-in listens on plain http on 127.0.0.1, like the demo's.
        "smoke_test_allow_http": True,
        "ansible_python_interpreter": sys.executable,
    }
    variables.update(role_vars)
    vars_file = os.path.join(env["dir"], name + "-vars.json")
    write_json(vars_file, variables)
    run_env = ansible_env(configured_collections_path(), os.path.join(env["dir"], "tmp"),
                          ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    command = [find_ansible_playbook(), "-i", "localhost,", "-c", "local", env["playbook"], "-e", "@" + vars_file]
    if check_mode:
        command.append("--check")
    done = subprocess.run(command, cwd=env["dir"], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600, check=False)
    output = done.stdout.decode("utf-8", "replace")
    results = None
    if os.path.exists(results_file):
        with open(results_file, encoding="utf-8") as handle:
            results = json.load(handle)
    return done.returncode, output, results


def by_check(results):
    return dict((result["check"], (result["expected"], result["got"], result["ok"])) for result in results)


ALL_GOOD = {"no_token": (403, 403, True), "unknown_key": (401, 401, True), "bad_signature": (401, 401, True),
            "expired": (401, 401, True), "wrong_issuer": (401, 401, True), "valid": (200, 200, True)}


def assert_no_token_in(output):
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.", output), "a token reached the output"


def test_all_checks_pass_against_a_correct_gateway(env):
    needs_issued_at()
    with Gateway(env, "good", jwks_of((KID, env["key"]))) as gateway:
        rc, output, results = run_role(env, "good", gateway.process.url + "/api/ping")
        log = gateway.process.log()
    assert rc == 0, output[-4000:]
    assert by_check(results) == ALL_GOOD
    assert [result["check"] for result in results] == list(ALL_GOOD)
    assert "All 6 checks passed" in output
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", output), "the role reported a change"
    assert_no_token_in(output)
    # The stand-in saw each kind of refusal, so the role really sent those tokens.
    for reason in ("Jwt is expired", "Jwt issuer is not configured", "Jwt verification fails",
                   "Jwks doesn't have key to match kid or alg from Jwt", "RBAC: access denied"):
        assert reason in log


def test_unpublished_key_fails_the_valid_check_clearly(env):
    needs_issued_at()
    with Gateway(env, "unpublished", jwks_of(("someone-else", env["other"]))) as gateway:
        rc, output, results = run_role(env, "unpublished", gateway.process.url + "/api/ping")
    assert rc != 0
    checks = by_check(results)
    assert checks["valid"] == (200, 401, False)
    assert checks["no_token"] == (403, 403, True) and checks["expired"] == (401, 401, True)
    assert "valid (valid token of this host) expected 200, got 401: Jwks doesn't have key to match kid or alg from Jwt" \
        in output
    assert "istiod refetches jwksUri every 20 minutes" in output
    assert_no_token_in(output)


def test_wrong_audience_is_a_403_and_results_can_be_kept_without_failing(env):
    needs_issued_at()
    with Gateway(env, "audience", jwks_of((KID, env["key"]))) as gateway:
        rc, output, results = run_role(env, "audience", gateway.process.url + "/api/ping",
                                       smoke_test_audience="another-api", smoke_test_fail_on_error=False)
    assert rc == 0, output[-4000:]
    checks = by_check(results)
    assert checks["valid"] == (200, 403, False)
    assert checks["no_token"] == (403, 403, True) and checks["unknown_key"] == (401, 401, True)
    assert re.search(r"valid +200 +403 +FAILED +RBAC: access denied", output)


def test_unreachable_endpoint(env):
    with Gateway(env, "gone", jwks_of((KID, env["key"]))) as gateway:
        url = gateway.process.url + "/api/ping"
    rc, output, results = run_role(env, "gone", url, smoke_test_checks=["no_token", "valid"],
                                   smoke_test_propagation_timeout=1)
    assert rc != 0
    assert by_check(results) == {"no_token": (403, -1, False), "valid": (200, -1, False)}
    assert "-1 means the endpoint could not be reached" in output


def test_waits_for_a_key_published_late(env):
    with Gateway(env, "late", jwks_of(("someone-else", env["other"])), refresh=1) as gateway:
        stop = threading.Event()

        def publish_after_first_refusal():
            # Publish the key only once the gateway has refused the valid token, so the role
            # must retry to pass.
            while not stop.wait(0.2):
                if "kid=%s" % KID in gateway.process.log():
                    write_json(gateway.jwks_file, jwks_of(("someone-else", env["other"]), (KID, env["key"])))
                    return

        thread = threading.Thread(target=publish_after_first_refusal)
        thread.start()
        try:
            rc, output, results = run_role(env, "late", gateway.process.url + "/api/ping",
                                           smoke_test_checks=["valid"], smoke_test_propagation_timeout=120)
        finally:
            stop.set()
            thread.join()
        log = gateway.process.log()
    assert rc == 0, output[-4000:]
    assert by_check(results) == {"valid": (200, 200, True)}
    assert "401 Jwks doesn't have key to match kid or alg from Jwt (kid=%s" % KID in log
    assert "200 OK (kid=%s" % KID in log


def test_check_mode_makes_no_request(env):
    with Gateway(env, "check", jwks_of((KID, env["key"]))) as gateway:
        rc, output, _results = run_role(env, "check", gateway.process.url + "/api/ping", check_mode=True)
        log = gateway.process.log()
    assert rc == 0, output[-4000:]
    assert "does not run in check mode" in output
    assert " -> " not in log  # the stand-in logs every request as "METHOD path -> status"


def test_missing_token_file_is_reported(env):
    with Gateway(env, "nofile", jwks_of((KID, env["key"]))) as gateway:
        rc, output, _results = run_role(env, "nofile", gateway.process.url + "/api/ping",
                                        smoke_test_token_source="refresher", smoke_test_checks=["valid"],
                                        smoke_test_token_file=os.path.join(env["dir"], "no-such-token"))
    assert rc != 0
    assert "no-such-token" in output


@pytest.mark.parametrize("bad_vars, message", [
    ({"smoke_test_url": "not-a-url"}, "smoke_test needs smoke_test_url"),
    ({"smoke_test_checks": ["valid", "bogus"]}, "bogus"),
])
def test_bad_variables_are_refused(env, bad_vars, message):
    rc, output, results = run_role(env, "bad", bad_vars.get("smoke_test_url", "http://127.0.0.1:9/api"),
                                   **dict((k, v) for k, v in bad_vars.items() if k != "smoke_test_url"))
    assert rc != 0
    assert message in output
    assert results is None


def test_plain_http_is_refused_without_the_opt_in(env):
    """Tokens signed by the host's key never cross plain http unless smoke_test_allow_http says so."""
    with Gateway(env, "plain", jwks_of((KID, env["key"]))) as gateway:
        rc, output, results = run_role(env, "plain", gateway.process.url + "/api/ping", smoke_test_allow_http=False)
        log = gateway.process.log()
    assert rc != 0
    assert "is plain http: the smoke test would send tokens signed by this host's key in clear text" in \
        " ".join(output.split())
    assert results is None
    assert " -> " not in log  # not a single request reached the gateway


class _Recorder:
    """An endpoint that records every request's token with its arrival time and answers like the
    gateway: 403 without a token, 200 for a token of the host's key with the right issuer that has
    not expired (from the second such request on, so the role must try again), 401 otherwise."""

    def __init__(self, public_key):
        self.public_key = public_key
        self.seen = []
        self.accepted = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
                header = self.headers.get("Authorization", "")
                token = header[len("Bearer "):] if header.startswith("Bearer ") else None
                status = recorder.answer(token)
                body = b"recorded\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):  # pylint: disable=arguments-differ
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, token):
        self.seen.append((time.time(), token))
        if token is None:
            return 403
        try:
            pyjwt.decode(token, self.public_key, algorithms=["ES256"], issuer=ISS, audience=AUD, leeway=0)
        except pyjwt.InvalidTokenError:
            return 401
        self.accepted += 1
        return 200 if self.accepted >= 2 else 401

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d/api/ping" % self.server.server_address[1]


def test_every_token_lives_just_long_enough_for_its_request(env):
    needs_issued_at()
    request_timeout, delay, skew = 5, 1, 60
    with _Recorder(env["key"].public_key()) as recorder:
        rc, output, results = run_role(env, "lifetimes", recorder.url, smoke_test_request_timeout=request_timeout,
                                       smoke_test_retry_delay=delay, smoke_test_propagation_timeout=30)
        seen = list(recorder.seen)
    assert rc == 0, output[-4000:]
    assert by_check(results) == ALL_GOOD
    claims = [(arrived, pyjwt.decode(token, options={"verify_signature": False}))
              for arrived, token in seen if token is not None]
    valid = [c for _arrived, c in claims if c["iss"] == ISS and c["exp"] - c["iat"] > 1]
    wrong_issuer = [c for _arrived, c in claims if c["iss"] != ISS]
    expired = [(arrived, c) for arrived, c in claims if c["exp"] - c["iat"] == 1]
    assert len(wrong_issuer) == 1 and len(expired) == 1
    # The valid check was repeated with a fresh token each time (the first one was refused).
    valid_jtis = [c["jti"] for c in valid]
    assert len(valid_jtis) == len(set(valid_jtis)) >= 2 + 2  # two valid attempts, bad_signature, unknown_key
    # A valid token covers its request plus the time between minting and sending it; the
    # others a request and its two repetitions.
    attempts = [c for c in valid if c["exp"] - c["iat"] <= request_timeout + 30]
    assert len(attempts) >= 2
    refusal_lifetime = 3 * request_timeout + 2 * delay + 30
    for token_claims in valid + wrong_issuer:
        assert 1 < token_claims["exp"] - token_claims["iat"] <= refusal_lifetime, token_claims
    # The expired token expired long ago, beyond twice the clock skew the gateway allows.
    arrived, token_claims = expired[0]
    assert token_claims["exp"] < arrived - 2 * skew


@pytest.mark.parametrize("bad_vars, message", [
    ({"smoke_test_expired_age": 120}, "smoke_test_expired_age more than twice smoke_test_clock_skew"),
    ({"smoke_test_token_lifetime": 0}, "smoke_test_token_lifetime unset or >= 1"),
])
def test_token_settings_that_cannot_hold_are_refused(env, bad_vars, message):
    rc, output, results = run_role(env, "badtokens", "http://127.0.0.1:9/api", **bad_vars)
    assert rc != 0
    assert message in " ".join(output.split())
    assert results is None
