# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A RequestAuthentication plus ALLOW AuthorizationPolicies (``security.istio.io/v1``/``v1beta1``),
enforced the way Envoy's ``jwt_authn`` and RBAC filters enforce them in a sidecar or gateway.

* RequestAuthentication ``jwtRules``: the issuers, their ``jwksUri`` and token locations
  (``fromHeaders``/``fromParams``, else ``Authorization: Bearer`` and ``?access_token=``). A
  request without a token passes ``jwt_authn`` (Istio's ``allow_missing``); a present token
  that does not verify gets 401 (:mod:`gateway` and :mod:`envoy_jwt` do that part).
* AuthorizationPolicy, action ALLOW (the only action modelled; others are refused): the
  request is allowed when one rule of one policy matches, else ``403 RBAC: access denied``.
  A rule matches when one of its ``from`` sources, one of its ``to`` operations and all of
  its ``when`` conditions match; an absent ``from``/``to``/``when`` matches everything, a rule
  list that is absent or empty matches nothing.
  - ``requestPrincipals``/``notRequestPrincipals``: ``<iss>/<sub>`` of the verified token;
    ``<iss>/*`` needs that ``iss`` and a non-empty ``sub`` (Istio >= 1.21 matches ``.+``), ``*``
    any principal, a leading or trailing ``*`` a suffix or prefix match, else exact;
  - ``hosts``/``notHosts`` (Host header, case-insensitive, ``*`` prefix/suffix),
    ``methods``/``notMethods``, ``paths``/``notPaths`` (exact, ``*`` prefix/suffix/any, and
    the path templates ``{*}``/``{**}``; the query string is not part of the path);
  - ``when``: ``request.auth.claims[<name>]`` (``scope`` and ``permission`` split on spaces,
    lists element by element), ``request.auth.audiences``, ``request.auth.principal``,
    ``request.auth.presenter``, with ``values`` (any) and ``notValues`` (none).

Selectors and target references are only logged: the stand-in is the one workload (or
gateway) they select. Other sources (``principals``, ``namespaces``, IP blocks) and keys
need a mesh and are refused when the policy is loaded, so nothing is passed silently.
"""

import yaml

from .apirule import Authentication, ApiRuleError, claim_values, path_template_regex

API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
KINDS = ("RequestAuthentication", "AuthorizationPolicy")
SOURCE_FIELDS = ("requestPrincipals", "notRequestPrincipals")
OPERATION_FIELDS = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
AUTH_KEYS = ("request.auth.audiences", "request.auth.principal", "request.auth.presenter")
CLAIMS_KEY = "request.auth.claims["


def _strings(value, where):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiRuleError("%s must be a list of strings" % where)
    return value


def _glob(pattern, value, ignore_case=False):
    """Istio's string match: '*' any non-empty, '*x' suffix, 'x*' prefix, else exact."""
    if value is None:
        return False
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if pattern == "*":
        return value != ""
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def principal_matches(pattern, principal):
    """``pattern`` of requestPrincipals against ``principal`` (issuer, claims) or None."""
    if principal is None:
        return False
    issuer, claims = principal
    sub = claims.get("sub") if isinstance(claims.get("sub"), str) else ""
    if pattern.endswith("/*") and pattern != "/*":
        return issuer == pattern[:-2] and sub != ""
    if not sub:
        return False
    return _glob(pattern, "%s/%s" % (issuer, sub))


def _path_matcher(pattern):
    if "{" in pattern:
        regex = path_template_regex(pattern)
        return lambda path: bool(regex.match(path))
    return lambda path: _glob(pattern, path)


class Operation:
    def __init__(self, spec, where):
        if not isinstance(spec, dict) or set(spec) - set(OPERATION_FIELDS):
            raise ApiRuleError("%s: the stand-in emulates only %s" % (where, ", ".join(OPERATION_FIELDS)))
        self.spec = dict((field, _strings(spec[field], "%s.%s" % (where, field))) for field in spec)
        self.paths = [_path_matcher(p) for p in self.spec.get("paths", [])]
        self.not_paths = [_path_matcher(p) for p in self.spec.get("notPaths", [])]

    def matches(self, method, path, host):
        s = self.spec
        if "hosts" in s and not any(_glob(h, host, True) for h in s["hosts"]):
            return False
        if any(_glob(h, host, True) for h in s.get("notHosts", [])):
            return False
        if "methods" in s and method not in s["methods"]:
            return False
        if method in s.get("notMethods", []):
            return False
        if "paths" in s and not any(match(path) for match in self.paths):
            return False
        return not any(match(path) for match in self.not_paths)


class Condition:
    def __init__(self, spec, where):
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
            raise ApiRuleError("%s needs a key" % where)
        self.key = spec["key"]
        if not (self.key in AUTH_KEYS or (self.key.startswith(CLAIMS_KEY) and self.key.endswith("]")
                                          and "][" not in self.key)):
            raise ApiRuleError("%s: key %s is not emulated (only request.auth.claims[<name>], %s)"
                               % (where, self.key, ", ".join(AUTH_KEYS)))
        self.values = _strings(spec.get("values", []), where + ".values")
        self.not_values = _strings(spec.get("notValues", []), where + ".notValues")
        if not self.values and not self.not_values:
            raise ApiRuleError("%s needs values or notValues" % where)

    def actual(self, principal):
        if principal is None:
            return []
        issuer, claims = principal
        if self.key == "request.auth.audiences":
            return claim_values(claims, "aud")
        if self.key == "request.auth.principal":
            sub = claims.get("sub")
            return ["%s/%s" % (issuer, sub)] if isinstance(sub, str) and sub else []
        if self.key == "request.auth.presenter":
            return claim_values(claims, "azp")
        return claim_values(claims, self.key[len(CLAIMS_KEY):-1])

    def matches(self, principal):
        actual = self.actual(principal)
        if self.values and not any(_glob(v, a) for v in self.values for a in actual):
            return False
        return not any(_glob(v, a) for v in self.not_values for a in actual)


class PolicyRule:
    def __init__(self, policy, index, spec):
        where = "AuthorizationPolicy %s rules[%d]" % (policy, index)
        if not isinstance(spec, dict) or set(spec) - {"from", "to", "when"}:
            raise ApiRuleError("%s may hold only from, to and when" % where)
        self.index = index
        self.policy = policy
        self.sources = []
        for number, item in enumerate(spec.get("from") or []):
            source = (item or {}).get("source") or {}
            if set(source) - set(SOURCE_FIELDS):
                raise ApiRuleError("%s.from[%d]: the stand-in emulates only %s (no mesh identities or IPs)"
                                   % (where, number, ", ".join(SOURCE_FIELDS)))
            self.sources.append(dict((field, _strings(value, "%s.from[%d].source.%s" % (where, number, field)))
                                     for field, value in source.items()))
        self.operations = [Operation((item or {}).get("operation") or {}, "%s.to[%d].operation" % (where, number))
                           for number, item in enumerate(spec.get("to") or [])]
        self.conditions = [Condition(item, "%s.when[%d]" % (where, number))
                           for number, item in enumerate(spec.get("when") or [])]
        paths = [p for operation in self.operations for p in operation.spec.get("paths", [])]
        self.path = paths[0] if paths else "*"
        self.methods = [m for operation in self.operations for m in operation.spec.get("methods", [])]
        self.issuers = sorted(set(p[:-2] for s in self.sources for p in s.get("requestPrincipals", [])
                                  if p.endswith("/*")))
        self.strategy = "jwt" if any(s.get("requestPrincipals") for s in self.sources) else "allow"

    def source_matches(self, principal):
        if not self.sources:
            return True
        for source in self.sources:
            if "requestPrincipals" in source and not any(principal_matches(p, principal)
                                                         for p in source["requestPrincipals"]):
                continue
            if any(principal_matches(p, principal) for p in source.get("notRequestPrincipals", [])):
                continue
            return True
        return False

    def matches(self, method, path, host, principal):
        """(matched, reason when not)."""
        if self.operations and not any(op.matches(method, path, host) for op in self.operations):
            return False, None
        if not self.source_matches(principal):
            return False, "rule %s needs a request principal %s" % (
                self.describe(), ", ".join(p for s in self.sources for p in s.get("requestPrincipals", [])))
        for condition in self.conditions:
            if not condition.matches(principal):
                return False, "rule %s: %s is %s, needs %s" % (self.describe(), condition.key,
                                                               condition.actual(principal),
                                                               condition.values or "none of %s" % condition.not_values)
        return True, None

    def describe(self):
        return "%s[%d] %s %s" % (self.policy, self.index, ",".join(self.methods) or "*", self.path)


class IstioPolicy:
    """A RequestAuthentication and ALLOW AuthorizationPolicies, with the interface of :class:`apirule.ApiRule`."""

    api_version = "security.istio.io/v1"

    def __init__(self, docs, source="Istio policies"):
        requests = [d for d in docs if d.get("kind") == "RequestAuthentication"]
        policies = [d for d in docs if d.get("kind") == "AuthorizationPolicy"]
        for doc in requests + policies:
            if doc.get("apiVersion") not in API_VERSIONS:
                raise ApiRuleError("%s: %s has apiVersion %r: only %s are supported"
                                   % (source, doc["kind"], doc.get("apiVersion"), " and ".join(API_VERSIONS)))
        if not policies:
            raise ApiRuleError("%s holds no AuthorizationPolicy: without one Istio allows every request" % source)
        metadata = policies[0].get("metadata") or {}
        self.name = metadata.get("name", "")
        self.namespace = metadata.get("namespace", "default")
        self.hosts = []
        self.authentications = {}
        for doc in requests:
            name = (doc.get("metadata") or {}).get("name", "")
            for index, spec in enumerate((doc.get("spec") or {}).get("jwtRules") or []):
                auth = Authentication(spec, "RequestAuthentication %s jwtRules[%d]" % (name, index))
                known = self.authentications.get(auth.issuer)
                if known is not None and known.jwks_uri != auth.jwks_uri:
                    raise ApiRuleError("issuer %s has two jwksUri values (%s, %s)"
                                       % (auth.issuer, known.jwks_uri, auth.jwks_uri))
                self.authentications.setdefault(auth.issuer, auth)
        self.rules = []
        for doc in policies:
            name = (doc.get("metadata") or {}).get("name", "")
            spec = doc.get("spec") or {}
            if spec.get("action", "ALLOW") != "ALLOW":
                raise ApiRuleError("AuthorizationPolicy %s: only action ALLOW is emulated, not %s"
                                   % (name, spec.get("action")))
            self.rules.extend(PolicyRule(name, index, rule) for index, rule in enumerate(spec.get("rules") or []))
        for rule in self.rules:
            for operation in rule.operations:
                self.hosts.extend(h for h in operation.spec.get("hosts", []) if h not in self.hosts)

    @property
    def has_jwt(self):
        return bool(self.authentications)

    def token_locations(self):
        """(headers [(name, prefix)], params) where Envoy looks for tokens."""
        headers, params = [], []
        for auth in self.authentications.values():
            custom = bool(auth.from_headers or auth.from_params)
            for item in auth.from_headers if custom else [("Authorization", "Bearer ")]:
                if item not in headers:
                    headers.append(item)
            for item in auth.from_params if custom else ["access_token"]:
                if item not in params:
                    params.append(item)
        return headers, params

    def authorize(self, method, path, principal, host=None):
        """(rule or None, reason): ``principal`` is None or (issuer, claims) of a verified token."""
        reasons = []
        for rule in self.rules:
            matched, why = rule.matches(method, path, host, principal)
            if matched:
                return rule, None
            if why:
                reasons.append(why)
        if not reasons:
            reasons.append("no rule allows %s %s%s" % (method, path, " on host %s" % host if host else ""))
        return None, "; ".join(reasons)


def load_istio(paths):
    """Read the RequestAuthentication(s) and AuthorizationPolicy(ies) from YAML files."""
    docs = []
    for path in paths:
        try:
            with open(path, "r", encoding="utf-8") as handle:
                found = [doc for doc in yaml.safe_load_all(handle) if doc]
        except (OSError, yaml.YAMLError) as exc:
            raise ApiRuleError("cannot read %s: %s" % (path, exc))
        docs.extend(doc for doc in found if isinstance(doc, dict) and doc.get("kind") in KINDS)
    return IstioPolicy(docs, source=", ".join(paths))
