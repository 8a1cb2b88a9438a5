# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Command line of the local Kyma gateway stand-in.

    python -m tools.kyma_standin gateway --apirule demo-out/manifests/apirule.yaml \\
        --jwks-map http://edge-jwks.kyma-system.svc.cluster.local/.well-known/jwks.json=demo-out/manifests/jwks.json \\
        --port 0 --port-file /tmp/gw.port --max-seconds 300

    python -m tools.kyma_standin jwks-server --jwks demo-out/manifests/jwks.json --port-file /tmp/jwks.port

    python -m tools.kyma_standin stop --pid-file /tmp/gw.pid

Both servers listen on 127.0.0.1 only and stop by themselves after ``--max-seconds``.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler

from . import envoy_jwt, gateway, jwks_store
from .apirule import ApiRuleError, load_apirule
from .istio import load_istio

MAX_SECONDS_LIMIT = 24 * 3600
DEFAULT_MAX_SECONDS = 600
PROGRAM_MARKER = "kyma_standin"


def _write_file(path, text):
    """Write atomically, so a reader polling for the file never sees it half-written."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _remove(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def _seconds(text):
    value = int(text)
    if not 1 <= value <= MAX_SECONDS_LIMIT:
        raise argparse.ArgumentTypeError("must be between 1 and %d seconds" % MAX_SECONDS_LIMIT)
    return value


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 (any free port) and 65535")
    return value


def _common_server_options(parser):
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (0: any free port, the default)")
    parser.add_argument("--port-file", help="write the port to this file once listening")
    parser.add_argument("--pid-file", help="write the process id to this file (for 'stop')")
    parser.add_argument("--log-file", help="append the log here instead of standard error")
    parser.add_argument("--max-seconds", type=_seconds, default=DEFAULT_MAX_SECONDS,
                        help="stop after this many seconds (default %d, at most %d)"
                        % (DEFAULT_MAX_SECONDS, MAX_SECONDS_LIMIT))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tools.kyma_standin",
        description="Local stand-in of the Kyma API Gateway (Istio) for an APIRule v2 with jwt rules. "
                    "It is NOT a Kyma cluster: it enforces Istio's token and authorization checks in "
                    "front of a small sample upstream, on 127.0.0.1 only.")
    commands = parser.add_subparsers(dest="command", required=True)

    gw = commands.add_parser("gateway", help="serve the APIRule's rules in front of the sample upstream")
    source = gw.add_mutually_exclusive_group(required=True)
    source.add_argument("--apirule", help="YAML file with the rendered APIRule")
    source.add_argument("--istio", action="append", metavar="FILE",
                        help="YAML file with a rendered RequestAuthentication and/or AuthorizationPolicy "
                             "(security.istio.io), instead of an APIRule; repeatable")
    gw.add_argument("--apirule-name", help="which APIRule, when the file holds several")
    gw.add_argument("--jwks-map", action="append", default=[], metavar="ISSUER_OR_URI=FILE_OR_URL",
                    help="fetch the JWKS of this issuer or jwksUri from a local file or URL instead "
                         "(cluster-local URLs do not resolve here); repeatable")
    gw.add_argument("--jwks-refresh-interval", type=_seconds, default=jwks_store.DEFAULT_REFRESH_INTERVAL,
                    help="refetch every JWKS this often, like istiod (default %d s); never on an unknown kid"
                    % jwks_store.DEFAULT_REFRESH_INTERVAL)
    gw.add_argument("--clock-skew", type=int, default=envoy_jwt.DEFAULT_CLOCK_SKEW,
                    help="seconds of tolerance for exp and nbf (Envoy's default %d)" % envoy_jwt.DEFAULT_CLOCK_SKEW)
    _common_server_options(gw)

    js = commands.add_parser("jwks-server", help="serve a JWKS (and discovery document) at /.well-known/")
    js.add_argument("--jwks", required=True, help="JWKS JSON file, served at /.well-known/jwks.json")
    js.add_argument("--discovery", help="OpenID discovery JSON file, served at /.well-known/openid-configuration "
                                        "(default: openid-configuration beside the JWKS, if present)")
    _common_server_options(js)

    stop = commands.add_parser("stop", help="stop a server started with --pid-file")
    stop.add_argument("--pid-file", required=True)
    stop.add_argument("--timeout", type=_seconds, default=10)
    return parser


def _logger(args, prefix):
    if args.log_file:
        sys.stderr = open(args.log_file, "a", buffering=1, encoding="utf-8")  # pylint: disable=consider-using-with
    return gateway.stderr_log(prefix)


def _run_server(args, handler_class, log, stop_event, extra_threads=()):
    """Run until --max-seconds, SIGTERM or SIGINT; files written for the caller are removed at the end."""
    deadline = threading.Timer(args.max_seconds, stop_event.set)
    deadline.daemon = True

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        log("stopping on signal %d" % signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_ready(port):
        if args.pid_file:
            _write_file(args.pid_file, "%d\n" % os.getpid())
        if args.port_file:
            _write_file(args.port_file, "%d\n" % port)
        log("listening on http://127.0.0.1:%d/ (pid %d); stops by itself in %d s"
            % (port, os.getpid(), args.max_seconds))

    for thread in extra_threads:
        thread.start()
    deadline.start()
    try:
        gateway.serve(handler_class, args.port, stop_event, on_ready)
    except OSError as exc:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, exc))
        return 1
    finally:
        deadline.cancel()
        stop_event.set()
        _remove(args.port_file)
        _remove(args.pid_file)
    log("stopped")
    return 0


def run_gateway(args):
    log = _logger(args, "kyma-standin gateway")
    try:
        rule = load_istio(args.istio) if args.istio else load_apirule(args.apirule, args.apirule_name)
        mapping = jwks_store.parse_mapping(args.jwks_map)
    except (ApiRuleError, ValueError) as exc:
        log("error: %s" % exc)
        return 2
    store = jwks_store.JwksStore(rule.authentications, mapping, args.jwks_refresh_interval, log=log)
    what = "Istio policies" if args.istio else "APIRule"
    log("%s %s/%s (%s), hosts %s" % (what, rule.namespace, rule.name, rule.api_version, ", ".join(rule.hosts) or "-"))
    for item in rule.rules:
        log("  rule %d: %s%s" % (item.index, item.describe(),
                                 " issuers %s" % ", ".join(item.issuers) if item.issuers else ""))
    store.refresh_due()
    stop_event = threading.Event()
    refresher = threading.Thread(target=store.run, args=(stop_event, min(1.0, args.jwks_refresh_interval / 4.0)),
                                 daemon=True)
    handler = gateway.make_handler(gateway.Gateway(rule, store, args.clock_skew), log)
    return _run_server(args, handler, log, stop_event, extra_threads=(refresher,))


def make_jwks_handler(files, log):
    class Handler(BaseHTTPRequestHandler):
        server_version = "kyma-standin-jwks"
        sys_version = ""

        def do_GET(self):  # pylint: disable=invalid-name
            path = self.path.split("?", 1)[0]
            source = files.get(path)
            status, body, ctype = 404, b"not found\n", "text/plain"
            if source:
                try:
                    with open(source, "rb") as handle:
                        body = handle.read(jwks_store.MAX_JWKS_BYTES)
                    status, ctype = 200, "application/json"
                except OSError as exc:
                    status, body = 503, ("cannot read %s: %s\n" % (source, exc.strerror)).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            log("GET %s -> %d" % (path, status))

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            pass

    return Handler


def run_jwks_server(args):
    log = _logger(args, "kyma-standin jwks-server")
    if not os.path.isfile(args.jwks):
        log("error: %s does not exist" % args.jwks)
        return 2
    discovery = args.discovery or os.path.join(os.path.dirname(os.path.abspath(args.jwks)), "openid-configuration")
    files = {"/.well-known/jwks.json": os.path.abspath(args.jwks), "/jwks.json": os.path.abspath(args.jwks)}
    if os.path.isfile(discovery):
        files["/.well-known/openid-configuration"] = os.path.abspath(discovery)
    return _run_server(args, make_jwks_handler(files, log), log, threading.Event())


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None


def run_stop(args):
    try:
        with open(args.pid_file, "r", encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except FileNotFoundError:
        print(json.dumps({"stopped": False, "reason": "no pid file %s: not running" % args.pid_file}))
        return 0
    except (OSError, ValueError) as exc:
        print(json.dumps({"stopped": False, "reason": "unreadable pid file %s: %s" % (args.pid_file, exc)}))
        return 1
    cmdline = _cmdline(pid)
    if cmdline is not None and PROGRAM_MARKER not in cmdline and "kyma-standin" not in cmdline:
        print(json.dumps({"stopped": False, "reason": "pid %d is not a kyma_standin process; not touching it" % pid}))
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _remove(args.pid_file)
        print(json.dumps({"stopped": False, "reason": "pid %d had already ended" % pid}))
        return 0
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if not _cmdline(pid):
            break
        time.sleep(0.1)
    else:
        print(json.dumps({"stopped": False, "reason": "pid %d did not stop within %d s" % (pid, args.timeout)}))
        return 1
    print(json.dumps({"stopped": True, "pid": pid}))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "gateway":
        return run_gateway(args)
    if args.command == "jwks-server":
        return run_jwks_server(args)
    return run_stop(args)
