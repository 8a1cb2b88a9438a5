# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local stand-in for the Kubernetes API server, for tests of the role kyma_publish.

No cluster runs where the tests run, so this double implements just what
``kubernetes.core.k8s`` / ``k8s_info`` and the Python client's DynamicClient use:

* discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/apps/v1``,
  ``/apis/gateway.kyma-project.io/{v2,v2alpha1,v1beta1}`` and ``/apis/security.istio.io/{v1,v1beta1}``;
* Namespaces (cluster-scoped) and, in namespaces, ConfigMaps, Services, Deployments,
  NetworkPolicies, PodDisruptionBudgets, APIRules, RequestAuthentications and
  AuthorizationPolicies: GET (one object or a list, with
  equality label selectors), POST, PUT, PATCH (``merge-patch+json``; a
  ``strategic-merge-patch+json`` is treated as a merge patch, which is what such a patch
  does on custom resources) and DELETE, with ``dryRun=All`` (nothing is stored);
* like the API server, it refuses to create an object in a namespace that does not exist
  (404), also in a dry run: the namespaces in ``namespaces`` exist from the start (they are
  not in the store), others once a Namespace object was created; a Namespace gets the label
  ``kubernetes.io/metadata.name`` and ``status.phase: Active``;
* objects in memory with ``uid``, ``resourceVersion`` (bumped on every real change, never on a
  no-op patch), ``generation`` (bumped when anything but metadata and status changes) and
  ``creationTimestamp``; ``status`` is owned by the simulated controllers (status subresource).

Simulated controllers: after a write that changes a Deployment's or an APIRule's spec, the
object is not ready; it becomes ready on the GET that follows ``ready_after_reads`` GETs after
the write (Deployment: ``Available``, every replica updated and available,
``observedGeneration`` equal to ``generation``; APIRule: ``status.state`` ``apirule_state``,
default ``Ready``, with a new ``lastProcessedTime``), or never for the kinds in
``never_ready``. That
status change is itself a write (new resourceVersion), as the real controllers' status updates
are, and it is recorded in :attr:`KubeApiDouble.events`, so a test can check that a client
waited for readiness before its next step.

The server listens on 127.0.0.1 (free port) in a daemon thread and shuts itself down after
``lifetime`` seconds at the latest. Optional ``validators`` (kind -> callable raising
ValueError) make it refuse invalid objects with 422, as an API server with the CRD would.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml


class Kind:
    def __init__(self, group, version, plural, kind, short_names=(), status=False, versions=None, namespaced=True):
        self.namespaced = namespaced
        self.group = group
        self.version = version
        self.versions = versions or [version]
        self.plural = plural
        self.kind = kind
        self.short_names = list(short_names)
        self.status = status

    def api_version(self, version=None):
        version = version or self.version
        return "%s/%s" % (self.group, version) if self.group else version


KINDS = [
    Kind("", "v1", "namespaces", "Namespace", ["ns"], status=True, namespaced=False),
    Kind("", "v1", "configmaps", "ConfigMap", ["cm"]),
    Kind("", "v1", "services", "Service", ["svc"], status=True),
    Kind("apps", "v1", "deployments", "Deployment", ["deploy"], status=True),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", ["netpol"]),
    Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", ["pdb"], status=True),
    Kind("gateway.kyma-project.io", "v2", "apirules", "APIRule", status=True,
         versions=["v2", "v2alpha1", "v1beta1"]),
    Kind("security.istio.io", "v1", "requestauthentications", "RequestAuthentication", versions=["v1", "v1beta1"]),
    Kind("security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy", versions=["v1", "v1beta1"]),
]

#: Namespaces that exist in a fresh cluster (Kubernetes', Kyma's and Istio's own).
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "kyma-system", "istio-system")

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
KUBERNETES_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _timestamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code, reason, message, kind=None, name=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.kind = kind
        self.name = name

    def status(self):
        details = {}
        if self.name:
            details["name"] = self.name
        if self.kind:
            details["kind"] = self.kind
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": details, "code": self.code}


class KubeApiDouble:
    """In-memory Kubernetes API for tests. Use as a context manager."""

    def __init__(self, ready_after_reads=1, lifetime=300, validators=None, never_ready=(),
                 apirule_state="Ready", apirule_description="Reconciled successfully", namespaces=INITIAL_NAMESPACES):
        self.namespaces = set(namespaces)
        self.ready_after_reads = ready_after_reads
        self.never_ready = set(never_ready)
        self.apirule_state = apirule_state
        self.apirule_description = apirule_description
        self.lifetime = lifetime
        self.validators = dict(validators or {})
        self.objects = {}
        self.events = []
        self.requests = []
        self._reads_since_write = {}
        self._pending = set()
        self._rv = itertools.count(1000)
        self._last_processed = None
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._timer = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self):
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="k8s-api-double", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    def write_kubeconfig(self, path, context="double"):
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": "double", "user": "double"}}],
            "current-context": context,
        }
        with open(path, "w") as handle:
            yaml.safe_dump(config, handle)
        return path

    # ---- inspection helpers for tests --------------------------------------------------

    def get_object(self, kind, namespace, name):
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def snapshot(self):
        with self._lock:
            return copy.deepcopy(self.objects)

    def writes(self, include_dry_run=False):
        """The recorded create/update/delete/ready events, in order."""
        with self._lock:
            return [e for e in self.events if include_dry_run or not e["dry_run"]]

    # ---- request handling --------------------------------------------------------------

    def handle(self, method, raw_path, headers, body):
        split = urlsplit(raw_path)
        path = split.path.rstrip("/") or "/"
        query = parse_qs(split.query)
        dry_run = query.get("dryRun") == ["All"]
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": split.query})
            if method == "GET":
                document = self._discovery(path)
                if document is not None:
                    return 200, document
            match = _PATH.match(path)
            if not match:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            kind, version = self._kind(match)
            namespace = match.group("namespace")
            name = match.group("name")
            if kind.namespaced and namespace is None:
                raise ApiError(404, "NotFound", "only namespaced requests are served by this double")
            if not kind.namespaced:
                if namespace is not None:
                    raise ApiError(404, "NotFound", "%s is cluster-scoped" % kind.kind)
                namespace = ""
            elif method == "POST" and not self._namespace_exists(namespace):
                raise ApiError(404, "NotFound", 'namespaces "%s" not found' % namespace, "namespaces", namespace)
            if match.group("sub") and method != "GET":
                raise ApiError(405, "MethodNotAllowed", "status is written by the simulated controllers only")
            if method == "GET":
                if name:
                    return 200, self._read(kind, version, namespace, name)
                return 200, self._list(kind, version, namespace, query.get("labelSelector", [""])[0])
            if method == "POST" and not name:
                return 201, self._create(kind, version, namespace, self._json(body), dry_run)
            if method == "PUT" and name:
                return 200, self._replace(kind, version, namespace, name, self._json(body), dry_run)
            if method == "PATCH" and name:
                content_type = headers.get("Content-Type", "").split(";")[0].strip()
                return 200, self._patch(kind, version, namespace, name, content_type, body, dry_run)
            if method == "DELETE" and name:
                return 200, self._delete(kind, version, namespace, name, dry_run)
            raise ApiError(405, "MethodNotAllowed", "%s is not supported on %s" % (method, path))

    def _namespace_exists(self, name):
        return name in self.namespaces or ("Namespace", "", name) in self.objects

    @staticmethod
    def _json(body):
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", "request body is not JSON: %s" % exc)

    def _kind(self, match):
        group = match.group("group") or ""
        version = match.group("core") or match.group("version")
        for kind in KINDS:
            if kind.group == group and version in kind.versions and kind.plural == match.group("plural"):
                return kind, version
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ---- discovery ---------------------------------------------------------------------

    def _discovery(self, path):
        if path == "/version":
            return KUBERNETES_VERSION
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/apis":
            groups = {}
            for kind in KINDS:
                if kind.group:
                    groups.setdefault(kind.group, kind)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": group,
                 "versions": [{"groupVersion": kind.api_version(v), "version": v} for v in kind.versions],
                 "preferredVersion": {"groupVersion": kind.api_version(), "version": kind.version}}
                for group, kind in groups.items()]}
        for prefix, group in (("/api/", ""), ("/apis/", None)):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            if group == "" and len(rest) == 1:
                version, group_name = rest[0], ""
            elif group is None and len(rest) == 2:
                group_name, version = rest
            else:
                continue
            kinds = [k for k in KINDS if k.group == group_name and version in k.versions]
            if not kinds:
                return None
            resources = []
            for kind in kinds:
                resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                                  "kind": kind.kind, "verbs": VERBS, "shortNames": kind.short_names})
                if kind.status:
                    resources.append({"name": kind.plural + "/status", "singularName": "",
                                      "namespaced": kind.namespaced,
                                      "kind": kind.kind, "verbs": ["get", "patch", "update"]})
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": kinds[0].api_version(version), "resources": resources}
        return None

    # ---- CRUD --------------------------------------------------------------------------

    def _present(self, kind, version, obj):
        out = copy.deepcopy(obj)
        out["apiVersion"] = kind.api_version(version)
        return out

    def _read(self, kind, version, namespace, name):
        key = (kind.kind, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise ApiError(404, "NotFound", '%s "%s" not found' % (kind.plural, name), kind.plural, name)
        if key in self._pending and kind.kind not in self.never_ready:
            if self._reads_since_write.get(key, 0) >= self.ready_after_reads:
                self._become_ready(kind, key)
            else:
                self._reads_since_write[key] = self._reads_since_write.get(key, 0) + 1
        return self._present(kind, version, self.objects[key])

    def _list(self, kind, version, namespace, selector):
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = []
        for (kind_name, obj_namespace, _name), obj in sorted(self.objects.items()):
            labels = obj["metadata"].get("labels") or {}
            if kind_name == kind.kind and obj_namespace == namespace and all(
                    labels.get(k) == v for k, v in wanted.items()):
                items.append(self._present(kind, version, obj))
        return {"kind": kind.kind + "List", "apiVersion": kind.api_version(version),
                "metadata": {"resourceVersion": str(next(self._rv))}, "items": items}

    def _validate(self, kind, version, obj, name):
        if obj.get("kind") != kind.kind:
            raise ApiError(400, "BadRequest", "kind %r does not match the URL (%s)" % (obj.get("kind"), kind.kind))
        if obj.get("apiVersion") != kind.api_version(version):
            raise ApiError(400, "BadRequest", "apiVersion %r does not match the URL" % (obj.get("apiVersion"),))
        if not name or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
            raise ApiError(422, "Invalid", "%s %r is invalid: metadata.name" % (kind.kind, name), kind.plural, name)
        validator = self.validators.get(kind.kind)
        if validator is not None:
            try:
                validator(obj)
            except ValueError as exc:
                raise ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind.kind, name, exc), kind.plural, name)

    def _record(self, verb, kind, namespace, name, dry_run, obj=None):
        self.events.append({"verb": verb, "kind": kind.kind, "namespace": namespace, "name": name,
                            "dry_run": dry_run,
                            "resourceVersion": (obj or {}).get("metadata", {}).get("resourceVersion")})

    def _create(self, kind, version, namespace, body, dry_run):
        metadata = body.setdefault("metadata", {})
        name = metadata.get("name")
        if metadata.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the URL")
        key = (kind.kind, namespace, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (kind.plural, name), kind.plural, name)
        self._validate(kind, version, body, name)
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        obj["metadata"] = dict(metadata, namespace=namespace, uid=str(uuid.uuid4()), generation=1,
                               creationTimestamp=_timestamp(_now()))
        if not kind.namespaced:
            del obj["metadata"]["namespace"]
        if kind.kind == "Namespace":
            obj["metadata"]["labels"] = dict(obj["metadata"].get("labels") or {},
                                             **{"kubernetes.io/metadata.name": name})
        for field in ("resourceVersion", "managedFields", "deletionTimestamp"):
            obj["metadata"].pop(field, None)
        if dry_run:
            obj["metadata"]["resourceVersion"] = ""
            self._set_status(obj, self._initial_status(kind, obj))
            self._record("create", kind, namespace, name, True, obj)
            return self._present(kind, version, obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self._set_status(obj, self._initial_status(kind, obj))
        self.objects[key] = obj
        self._written(kind, key)
        self._record("create", kind, namespace, name, False, obj)
        return self._present(kind, version, obj)

    @staticmethod
    def _set_status(obj, status):
        """Kinds without a status (ConfigMap, NetworkPolicy) have no status field at all."""
        if status is None:
            obj.pop("status", None)
        else:
            obj["status"] = status

    def _update(self, kind, version, namespace, name, new, dry_run, verb):
        key = (kind.kind, namespace, name)
        old = self.objects[key]
        new = copy.deepcopy(new)
        # status belongs to the status subresource; identity fields belong to the server.
        new["status"] = copy.deepcopy(old.get("status"))
        if new["status"] is None:
            new.pop("status")
        metadata = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion", "namespace", "name"):
            if field in old["metadata"]:
                metadata[field] = old["metadata"][field]
            else:
                metadata.pop(field, None)
        self._validate(kind, version, dict(new, apiVersion=kind.api_version(version)), name)
        if new == old:
            return self._present(kind, version, old)
        spec_changed = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")}
        if spec_changed:
            metadata["generation"] = old["metadata"]["generation"] + 1
        if dry_run:
            self._record(verb, kind, namespace, name, True, new)
            return self._present(kind, version, new)
        metadata["resourceVersion"] = str(next(self._rv))
        if spec_changed:
            new["status"] = self._initial_status(kind, new, old.get("status"))
            if new["status"] is None:
                new.pop("status")
            self._written(kind, key)
        self.objects[key] = new
        self._record(verb, kind, namespace, name, False, new)
        return self._present(kind, version, new)

    def _existing(self, kind, namespace, name):
        if (kind.kind, namespace, name) not in self.objects:
            raise ApiError(404, "NotFound", '%s "%s" not found' % (kind.plural, name), kind.plural, name)

    def _replace(self, kind, version, namespace, name, body, dry_run):
        self._existing(kind, namespace, name)
        current = self.objects[(kind.kind, namespace, name)]["metadata"]["resourceVersion"]
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current:
            raise ApiError(409, "Conflict", "the object has been modified; please apply your changes to the latest "
                           "version and try again", kind.plural, name)
        return self._update(kind, version, namespace, name, body, dry_run, "replace")

    def _patch(self, kind, version, namespace, name, content_type, body, dry_run):
        self._existing(kind, namespace, name)
        if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/merge-patch+json, "
                           "application/strategic-merge-patch+json")
        patch = self._json(body)
        old = self.objects[(kind.kind, namespace, name)]
        patch = {k: v for k, v in patch.items() if k != "status"}
        new = merge_patch(old, patch)
        return self._update(kind, version, namespace, name, new, dry_run, "patch")

    def _delete(self, kind, version, namespace, name, dry_run):
        self._existing(kind, namespace, name)
        key = (kind.kind, namespace, name)
        obj = self.objects[key]
        if not dry_run:
            del self.objects[key]
            self._pending.discard(key)
        self._record("delete", kind, namespace, name, dry_run, obj)
        return self._present(kind, version, obj)

    # ---- simulated controllers ---------------------------------------------------------

    def _initial_status(self, kind, obj, old_status=None):
        if kind.kind == "Deployment":
            replicas = obj.get("spec", {}).get("replicas", 1)
            return {"observedGeneration": (old_status or {}).get("observedGeneration", 0), "replicas": replicas,
                    "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                    "unavailableReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
        if kind.kind == "APIRule":
            status = dict(old_status or {})
            status.update({"state": "Processing", "description": "waiting for the API Gateway controller"})
            return status
        if kind.kind == "Service":
            return {"loadBalancer": {}}
        if kind.kind == "Namespace":
            return {"phase": "Active"}
        if kind.kind == "PodDisruptionBudget":
            return {"observedGeneration": obj["metadata"]["generation"], "disruptionsAllowed": 0,
                    "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
        return None

    def _written(self, kind, key):
        if kind.kind in ("Deployment", "APIRule"):
            self._pending.add(key)
            self._reads_since_write[key] = 0

    def _become_ready(self, kind, key):
        obj = self.objects[key]
        if kind.kind == "Deployment":
            replicas = obj.get("spec", {}).get("replicas", 1)
            obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                             "updatedReplicas": replicas, "readyReplicas": replicas,
                             "availableReplicas": replicas,
                             "conditions": [
                                 {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                 {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        else:
            moment = _now()
            if self._last_processed is not None and moment <= self._last_processed:
                moment = self._last_processed + datetime.timedelta(seconds=1)
            self._last_processed = moment
            obj["status"] = {"state": self.apirule_state, "description": self.apirule_description,
                             "lastProcessedTime": _timestamp(moment)}
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self._pending.discard(key)
        self._reads_since_write.pop(key, None)
        self._record("ready", kind, key[1], key[2], False, obj)


class _Handler(BaseHTTPRequestHandler):
    api = None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            code, document = self.api.handle(self.command, self.path, self.headers, body)
        except ApiError as exc:
            code, document = exc.code, exc.status()
        except Exception as exc:  # a bug in the double must show up as an error, not hang a client
            code, document = 500, ApiError(500, "InternalError", "%s: %s" % (type(exc).__name__, exc)).status()
        data = json.dumps(document).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
