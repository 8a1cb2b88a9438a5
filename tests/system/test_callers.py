# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The caller examples of docs/CALLERS.md (docs/callers/*), run for real against the gateway stand-in.

Each example reads the token file that the token refresher keeps fresh and calls the protected
API. The tokens are minted by the refresher's own code (``_refresher.refresh``, what the timer
or cron job runs) from a configuration as edge_keys writes it, with keys whose JWKS the stand-in
serves. For every language:

* a fresh token in the file: 200 and the body on stdout;
* an expired token: the 401 on stderr, exit status 1, and exactly one request (no retry with
  the same token);
* a token the API's rules do not allow (wrong audience): the 403 on stderr, exit status 1;
* no token file: a message naming the file, exit status 1, no stack trace;
* the file rewritten between two calls of one process (a key rotation): the second call
  carries the new token (the stand-in's answer names the new key);
* the file rewritten while the first call was on its way (an expired token replaced by the
  refresher): one retry with the new token, 200.
* a redirect: reported, not followed (the token goes nowhere else).

A small proxy in front of the stand-in counts the requests and rewrites the token file after a
given request, so the rewrite happens between two calls of the same process. No run prints a
token. The page's code blocks must equal the files (test_docs_quote_the_examples).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CALLERS = os.path.join(REPO, "docs", "callers")
DOCS_PAGE = os.path.join(REPO, "docs", "CALLERS.md")

sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
from standin_process import Process  # noqa: E402  pylint: disable=wrong-import-position,import-error

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _keys  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.selfjwt.kyma.plugins.module_utils import _refresher  # noqa: E402  pylint: disable=wrong-import-position

ISS = "http://edge-jwks.kyma-system.svc.cluster.local"
AUD = "orders-api"
APIRULE = """\
apiVersion: gateway.kyma-project.io/v2
kind: APIRule
metadata: {name: orders-api, namespace: default}
spec:
  gateway: kyma-system/kyma-gateway
  hosts: [orders-api]
  service: {name: orders, port: 8080}
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
TOKEN_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")
RUN_TIMEOUT = 120


# --------------------------------------------------------------------------------------
# The languages: each example's command, or why its runtime is absent
# --------------------------------------------------------------------------------------

def _node_command():
    node = shutil.which("node")
    if node is None:
        return None, "node is not installed (the Node.js example needs Node.js 18+ for fetch)"
    version = subprocess.run([node, "--version"], stdout=subprocess.PIPE, check=False).stdout.decode().strip()
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match.group(1)) < 18:
        return None, "node %s has no global fetch: the Node.js example needs Node.js 18+" % version
    return [node, os.path.join(CALLERS, "caller.mjs")], None


def _requests_command():
    try:
        import requests  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return None, "requests is not installed for %s" % sys.executable
    return [sys.executable, os.path.join(CALLERS, "caller_requests.py")], None


def _shell_command():
    missing = [name for name in ("bash", "curl") if shutil.which(name) is None]
    if missing:
        return None, "%s not installed" % " and ".join(missing)
    return [shutil.which("bash"), os.path.join(CALLERS, "caller.sh")], None


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    """Caller.java compiled once for the module (javac and java each start in about a second)."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.skip("a JDK is not installed (javac and java): the Java example needs Java 11+")
    classes = str(tmp_path_factory.mktemp("java-classes"))
    done = subprocess.run([javac, "-d", classes, os.path.join(CALLERS, "Caller.java")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout.decode("utf-8", "replace")
    return java, classes


LANGUAGES = ["curl", "python-urllib", "python-requests", "node", "java"]


@pytest.fixture(params=LANGUAGES)
def caller(request):
    language = request.param
    if language == "java":
        java, classes = request.getfixturevalue("java_classes")
        return [java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classes, "Caller"]
    if language == "python-urllib":
        return [sys.executable, os.path.join(CALLERS, "caller.py")]
    command, reason = {"curl": _shell_command, "python-requests": _requests_command, "node": _node_command}[language]()
    if command is None:
        pytest.skip(reason)
    return command


# --------------------------------------------------------------------------------------
# The gateway stand-in, the keys and the refresher
# --------------------------------------------------------------------------------------

def _write_key(path, key):
    with open(path + ".tmp", "wb") as handle:
        handle.write(_keys.private_key_pem(key))
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two keys (the current one and the next of a rotation), both published, and the stand-in."""
    workdir = str(tmp_path_factory.mktemp("callers"))
    keys = [_keys.generate_private_key("ec", curve="P-256"), _keys.generate_private_key("ec", curve="P-256")]
    jwks_file = os.path.join(workdir, "jwks.json")
    with open(jwks_file, "w", encoding="utf-8") as handle:
        json.dump({"keys": [_jwk.public_jwk(key) for key in keys]}, handle)
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w", encoding="utf-8") as handle:
        handle.write(APIRULE)
    gateway = Process(["gateway", "--apirule", apirule, "--jwks-refresh-interval", "3600",
                       "--jwks-map", "%s=%s" % (ISS, jwks_file)], workdir, "gateway")
    yield {"keys": keys, "kids": [_jwk.public_jwk(key)["kid"] for key in keys], "gateway": gateway}
    gateway.stop()


class Host:
    """An edge host's key directory, token directory and refresher configuration (as edge_keys writes them)."""

    def __init__(self, root, key, audience=AUD):
        keys, state = os.path.join(root, "keys"), os.path.join(root, "state")
        os.mkdir(keys, 0o700)
        os.mkdir(state, 0o700)
        self.key_path = os.path.join(keys, "signing.pem")
        _write_key(self.key_path, key)
        self.token_file = os.path.join(state, "token")
        self.config_path = os.path.join(root, "refresher.json")
        config = {
            "version": 1,
            "user": None,
            "key": {"path": self.key_path, "kid": None, "algorithm": None, "passphrase_file": None},
            "token": {"issuer": ISS, "subject": "edge-01", "audience": audience, "expires_in": 600,
                      "max_lifetime": 3600, "not_before": 0, "scopes": ["orders.read"], "claims": {},
                      "jku": ISS + "/.well-known/jwks.json"},
            "token_file": {"path": self.token_file, "mode": "0640", "group": None, "refresh_margin": 200},
        }
        with open(self.config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        self.tokens = []

    def refresh(self, now=None, force=False):
        """One run of the refresher's code; returns the token now in the file."""
        _changed, result = _refresher.refresh(_refresher.load_config(self.config_path), force=force, now=now)
        self.tokens.append(result.token)
        return result.token

    def expired(self):
        """The token file as on a host whose refresher stopped two hours ago."""
        return self.refresh(now=time.time() - 7200, force=True)

    def rotate(self, key):
        """The key ring activates the next key at the same path; the refresher switches to it by itself."""
        _write_key(self.key_path, key)
        return self.refresh()


@pytest.fixture
def host(tmp_path, world):
    return Host(str(tmp_path), world["keys"][0])


class Proxy:
    """Forwards GET requests to the stand-in, counts them, and runs ``after[n]`` once request n was answered upstream."""

    def __init__(self, upstream, after=None):
        self.upstream, self.after, self.count = upstream, dict(after or {}), 0
        self.errors = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
                proxy.count += 1
                request = urllib.request.Request(proxy.upstream + self.path,
                                                 headers={"Authorization": self.headers.get("Authorization", "")})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, body = exc.code, exc.read()
                hook = proxy.after.pop(proxy.count, None)
                if hook is not None:
                    try:
                        hook()
                    except Exception as exc:  # pylint: disable=broad-exception-caught
                        proxy.errors.append(repr(exc))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        assert not self.errors, self.errors


class Redirector:
    """Answers every GET with a 302 to its own /elsewhere path, and records which requests carried a token there."""

    def __init__(self):
        self.elsewhere = []
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
                if self.path == "/elsewhere":
                    redirector.elsewhere.append(bool(self.headers.get("Authorization")))
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(302)
                self.send_header("Location", redirector.url + "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run(command, token_file, *urls):
    """(exit status, stdout, stderr) of one caller run."""
    env = dict(os.environ, SELFJWT_TOKEN_FILE=token_file)
    done = subprocess.run(list(command) + list(urls), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT, check=False)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def assert_no_token(host, *outputs):
    for output in outputs:
        assert not TOKEN_PATTERN.search(output), "a token reached the output"
        for token in host.tokens:
            assert token not in output and token.split(".")[2] not in output, "a token reached the output"


def bodies(stdout):
    """The JSON bodies the caller printed, one a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_no_stack_trace(stderr):
    for sign in ("Traceback", "Exception in thread", "\n    at ", "node:internal"):
        assert sign not in stderr, stderr


# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------

def test_fresh_token_gets_200_and_the_body(caller, host, world):
    host.refresh()
    status, out, err = run(caller, host.token_file, world["gateway"].url + "/api/orders")
    assert_no_token(host, out, err)
    assert status == 0, err + world["gateway"].log()
    [body] = bodies(out)
    assert (body["ok"], body["sub"], body["kid"], body["path"]) == (True, "edge-01", world["kids"][0], "/api/orders")
    assert err == ""


def test_expired_token_reports_the_401(caller, host, world):
    host.expired()
    with Proxy(world["gateway"].url) as proxy:
        status, out, err = run(caller, host.token_file, proxy.url + "/api/orders")
    assert_no_token(host, out, err)
    assert status == 1, (status, out, err)
    assert out == ""
    assert "401" in err and "Jwt is expired" in err and host.token_file in err, err
    assert "selfjwt-token --json" in err, err
    assert proxy.count == 1, "the caller retried with the token it had already sent"
    assert_no_stack_trace(err)


def test_token_the_rules_do_not_allow_reports_the_403(caller, tmp_path, world):
    other = Host(str(tmp_path), world["keys"][0], audience="billing-api")
    other.refresh()
    status, out, err = run(caller, other.token_file, world["gateway"].url + "/api/orders")
    assert_no_token(other, out, err)
    assert status == 1, (status, out, err)
    assert out == ""
    assert "403" in err and "audience, scopes, path or method" in err, err
    assert_no_stack_trace(err)


def test_missing_token_file_is_a_clear_message(caller, host, world):
    assert not os.path.exists(host.token_file)
    with Proxy(world["gateway"].url) as proxy:
        status, out, err = run(caller, host.token_file, proxy.url + "/api/orders")
    assert status == 1, (status, out, err)
    assert out == ""
    assert err.startswith("caller: token file %s does not exist" % host.token_file), err
    assert "edge_keys" in err, err
    assert_no_stack_trace(err)
    assert proxy.count == 0, "the caller called the API without a token"


def test_file_rewritten_between_two_calls_is_read_again(caller, host, world):
    host.refresh()
    with Proxy(world["gateway"].url, after={1: lambda: host.rotate(world["keys"][1])}) as proxy:
        status, out, err = run(caller, host.token_file, proxy.url + "/api/first", proxy.url + "/api/second")
    assert_no_token(host, out, err)
    assert status == 0, err
    assert len(host.tokens) == 2 and host.tokens[0] != host.tokens[1]
    assert [(body["path"], body["kid"]) for body in bodies(out)] == [
        ("/api/first", world["kids"][0]), ("/api/second", world["kids"][1])]
    assert proxy.count == 2


def test_token_replaced_during_a_401_is_retried_once(caller, host, world):
    host.expired()
    with Proxy(world["gateway"].url, after={1: host.refresh}) as proxy:
        status, out, err = run(caller, host.token_file, proxy.url + "/api/orders")
    assert_no_token(host, out, err)
    assert status == 0, err
    assert len(host.tokens) == 2 and host.tokens[0] != host.tokens[1]
    assert [(body["path"], body["kid"]) for body in bodies(out)] == [("/api/orders", world["kids"][0])]
    assert proxy.count == 2


def test_redirect_is_not_followed_with_the_token(caller, host):
    host.refresh()
    with Redirector() as redirector:
        status, out, err = run(caller, host.token_file, redirector.url + "/api/orders")
    assert_no_token(host, out, err)
    assert status == 1, (status, out, err)
    assert "answered 302" in err, err
    assert redirector.elsewhere == [], "the caller followed the redirect"
    assert_no_stack_trace(err)


def test_java_example_runs_as_a_single_source_file(world, host, java_classes):
    """The page's command: ``java Caller.java URL`` (Java 11+), no build step."""
    java, _classes = java_classes
    host.refresh()
    status, out, err = run([java, os.path.join(CALLERS, "Caller.java")], host.token_file,
                           world["gateway"].url + "/api/orders")
    assert_no_token(host, out, err)
    assert status == 0, err
    assert [body["kid"] for body in bodies(out)] == [world["kids"][0]]


# --------------------------------------------------------------------------------------
# The page shows exactly the files the tests run
# --------------------------------------------------------------------------------------

QUOTED = re.compile(r"^<!-- quoted from (docs/callers/[A-Za-z0-9_.]+) -->\n```[a-z]*\n(.*?)^```$", re.M | re.S)


def test_docs_quote_the_examples():
    with open(DOCS_PAGE, encoding="utf-8") as handle:
        page = handle.read()
    quoted = QUOTED.findall(page)
    files = sorted(name for name in os.listdir(CALLERS) if not name.startswith("."))
    assert sorted(os.path.basename(path) for path, _block in quoted) == files, \
        "docs/CALLERS.md must quote every file of docs/callers once"
    for path, block in quoted:
        with open(os.path.join(REPO, path), encoding="utf-8") as handle:
            assert block == handle.read(), "the block of %s in docs/CALLERS.md differs from the file: copy the file" % path
