# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The smoke_test role when the JWKS server is down or the endpoint never answers: a clear failure, no hang.

test_smoke_test_role.py covers a closed endpoint (connection refused). Here:

* the gateway runs, but its jwksUri points at a closed port (the JWKS server is down), so it
  holds no usable key: the valid check gets 401 ``Jwt verification fails``, the role retries
  for smoke_test_propagation_timeout, then fails with a message that names the likely cause;
* the endpoint accepts connections but never answers: every request ends after
  smoke_test_request_timeout and the role fails with status -1 ("could not be reached").

Both runs must end by themselves: the playbook runs under a hard timeout far above the bound
the role's settings give (retries x (request timeout + delay)); reaching it fails the test.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The role runner and the gateway helper of the smoke_test role's own tests; ``env`` is their fixture.
from standin_process import Process  # noqa: E402  pylint: disable=wrong-import-position,import-error
from test_smoke_test_role import (  # noqa: E402,F401  pylint: disable=wrong-import-position,import-error,unused-import
    ISS, by_check, env, needs_issued_at, run_role)


def closed_port():
    """A local TCP port that nothing listens on."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_jwks_server_down_fails_the_valid_check_clearly(env):  # pylint: disable=redefined-outer-name
    needs_issued_at()
    jwks_uri = "http://127.0.0.1:%d/.well-known/jwks.json" % closed_port()
    gateway = Process(["gateway", "--apirule", env["apirule"], "--jwks-map", "%s=%s" % (ISS, jwks_uri)],
                      env["dir"], "jwks-down")
    try:
        started = time.monotonic()
        rc, output, results = run_role(env, "jwks-down", gateway.url + "/api/ping",
                                       smoke_test_checks=["no_token", "valid"], smoke_test_propagation_timeout=3,
                                       smoke_test_retry_delay=1, smoke_test_request_timeout=5)
        elapsed = time.monotonic() - started
        log = gateway.log()
    finally:
        gateway.stop()
    assert "JWKS fetch failed for issuer %s" % ISS in log, log[-2000:]
    assert rc != 0
    assert by_check(results) == {"no_token": (403, 403, True), "valid": (200, 401, False)}
    assert "valid (valid token of this host) expected 200, got 401: Jwt verification fails" in output
    assert "the gateway has no usable key for the token" in output
    assert "is the JWKS server up and reachable from istiod" in output
    print("JWKS server down: the role failed after %.0f s" % elapsed)


def test_endpoint_that_never_answers_times_out(env):  # pylint: disable=redefined-outer-name
    # A listening socket that never accepts: connections complete, requests get no answer.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = "http://127.0.0.1:%d/api/ping" % silent.getsockname()[1]
    try:
        started = time.monotonic()
        rc, output, results = run_role(env, "silent", url, smoke_test_checks=["no_token", "valid"],
                                       smoke_test_propagation_timeout=2, smoke_test_retry_delay=1,
                                       smoke_test_request_timeout=2)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert rc != 0
    assert by_check(results) == {"no_token": (403, -1, False), "valid": (200, -1, False)}
    assert "timed out" in output
    assert "-1 means the endpoint could not be reached" in output
    print("silent endpoint: the role failed after %.0f s" % elapsed)
