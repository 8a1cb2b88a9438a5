# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The gateway stand-in: Istio's checks for an APIRule (or a RequestAuthentication and an
AuthorizationPolicy, :mod:`istio`) in front of a small sample upstream.

Per request, as the sidecar of a workload behind a Kyma APIRule v2 ``jwt`` rule does:

1. find the tokens (``Authorization: Bearer``, then ``?access_token=``, or the rule's
   ``fromHeaders``/``fromParams``); a present token is checked by :mod:`envoy_jwt` against
   the issuers of the whole APIRule and the cached JWKS -> ``401`` with Envoy's status text;
2. the authorization policies of :mod:`apirule` -> ``403 RBAC: access denied``;
3. the sample upstream answers ``200`` with JSON about the request.
"""

import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import envoy_jwt
from .apirule import RBAC_DENIED


class Decision:
    def __init__(self, status, body, reason, principal=None, rule=None, kid=None):
        self.status = status
        self.body = body
        self.reason = reason
        self.principal = principal
        self.rule = rule
        self.kid = kid


class Gateway:
    """Request decisions, independent of HTTP plumbing (so they can be tested directly)."""

    def __init__(self, apirule, store, clock_skew=envoy_jwt.DEFAULT_CLOCK_SKEW, clock=time.time):
        self.apirule = apirule
        self.store = store
        self.clock_skew = clock_skew
        self.clock = clock
        self.header_locations, self.param_locations = apirule.token_locations()

    def extract_tokens(self, headers, query):
        """All tokens of a request (Envoy: every configured location, every match)."""
        tokens = []
        for name, prefix in self.header_locations:
            for value in headers.get_all(name) or []:
                if prefix:
                    if value[:len(prefix)].lower() != prefix.lower():
                        continue
                    value = value[len(prefix):]
                value = value.strip()
                if value:
                    tokens.append(value)
        for name in self.param_locations:
            for value in query.get(name, []):
                if value:
                    tokens.append(value)
        return tokens

    def authenticate(self, token):
        """(status text, Jwt or None): envoy_jwt.OK when the token verifies for a configured issuer."""
        status, jwt = envoy_jwt.parse_token(token)
        if status != envoy_jwt.OK:
            return status, None
        jwks = self.store.get(jwt.iss)
        if jwt.iss not in self.apirule.authentications or jwks is None:
            return envoy_jwt.JWT_UNKNOWN_ISSUER, jwt
        status = envoy_jwt.verify_time(jwt, int(self.clock()), self.clock_skew)
        if status != envoy_jwt.OK:
            return status, jwt
        if not jwks.keys:
            return envoy_jwt.JWKS_NO_VALID_KEYS, jwt
        return envoy_jwt.verify_signature(jwt, jwks), jwt

    def decide(self, method, raw_path, headers):
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        principal = None
        kid = None
        if self.apirule.has_jwt:
            tokens = self.extract_tokens(headers, query)
            verified = []
            for token in tokens:
                status, jwt = self.authenticate(token)
                kid = jwt.kid if jwt is not None else kid
                if status != envoy_jwt.OK:
                    return Decision(401, status, "rejected by jwt_authn", kid=kid)
                verified.append(jwt)
            if verified:
                principal = (verified[-1].iss, verified[-1].payload)
        rule, reason = self.apirule.authorize(method, path, principal, host=headers.get("Host"))
        if rule is None:
            return Decision(403, RBAC_DENIED, reason, principal=principal, kid=kid)
        claims = principal[1] if principal else {}
        body = {
            "ok": True,
            "upstream": "kyma-standin sample upstream",
            "method": method,
            "path": path,
            "rule": rule.path,
            "sub": claims.get("sub"),
            "iss": principal[0] if principal else None,
            "aud": claims.get("aud"),
            "kid": kid,
        }
        return Decision(200, json.dumps(body, sort_keys=True) + "\n", "allowed by rule %s" % rule.describe(),
                        principal=principal, rule=rule, kid=kid)


def make_handler(gateway, log):
    class Handler(BaseHTTPRequestHandler):
        server_version = "kyma-standin"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 1024 * 1024))
            decision = gateway.decide(self.command, self.path, self.headers)
            body = decision.body.encode("utf-8")
            self.send_response(decision.status)
            if decision.status == 200:
                self.send_header("Content-Type", "application/json")
            else:
                self.send_header("Content-Type", "text/plain")
            if decision.status == 401:
                realm = "http://%s%s" % (self.headers.get("Host", "localhost"), urllib.parse.urlsplit(self.path).path)
                self.send_header("WWW-Authenticate", 'Bearer realm="%s", error="invalid_token"' % realm)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            sub = decision.principal[1].get("sub") if decision.principal else None
            log("%s %s -> %d %s (kid=%s sub=%s; %s)" % (
                self.command, urllib.parse.urlsplit(self.path).path, decision.status, decision.body.strip()
                if decision.status != 200 else "OK", decision.kid or "-", sub or "-", decision.reason))

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_TRACE = do_CONNECT = _handle

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(handler_class, port, stop_event, on_ready):
    """Serve on 127.0.0.1 until ``stop_event`` is set; ``on_ready(port)`` once listening."""
    httpd = Server(("127.0.0.1", port), handler_class)
    try:
        on_ready(httpd.server_address[1])
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        stop_event.wait()
        httpd.shutdown()
        thread.join(5)
    finally:
        httpd.server_close()


def stderr_log(prefix):
    lock = threading.Lock()

    def log(message):
        line = "%s %s: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), prefix, message)
        with lock:
            sys.stderr.write(line)
            sys.stderr.flush()
    return log
