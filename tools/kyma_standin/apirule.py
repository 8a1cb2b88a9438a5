# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An APIRule ``gateway.kyma-project.io/v2`` as the Kyma API Gateway turns it into Istio policy.

For each rule with ``jwt`` the controller (api-gateway 3.10, ``internal/processing/processors/
v2alpha1``) creates a RequestAuthentication (token checks, see :mod:`envoy_jwt`) and ALLOW
AuthorizationPolicies. The policies are modelled here:

* ``to.operation``: the rule's ``methods`` and ``paths: [rule.path]`` (``/*`` becomes ``/{**}``;
  ``{*}`` is one path segment, ``{**}`` any number of them), and ``notPaths``: the paths of
  earlier rules that share a method with this one, so that rules work in order;
* ``from.source.requestPrincipals: ["<issuer>/*", ...]``: the token was verified for one of
  the rule's issuers AND has a non-empty ``sub`` (Istio >= 1.21 matches ``sub`` with ``.+``);
* ``when``: every ``audiences`` value of an ``authorizations`` entry must be in ``aud``;
  ``requiredScopes`` must all be in one of the claims ``scp``, ``scope`` or ``scopes``
  (``scope`` is split on spaces, as Istio does); entries are alternatives (OR).

A request that no policy allows gets ``403 RBAC: access denied``.
"""

import re

import yaml

API_VERSIONS = ("gateway.kyma-project.io/v2", "gateway.kyma-project.io/v2alpha1")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
SCOPE_CLAIMS = ("scp", "scope", "scopes")
#: Claims that Istio splits on spaces before matching (``buildSpaceDelimitedClaims``).
SPACE_DELIMITED_CLAIMS = ("scope", "permission")

RBAC_DENIED = "RBAC: access denied"


class ApiRuleError(Exception):
    """The APIRule cannot be used; the message says why."""


def path_template_regex(path):
    """A compiled regex for an APIRule rule path (Envoy URI template semantics)."""
    if path == "/*":
        path = "/{**}"
    if "{**}" in path and (path.count("{**}") > 1 or not path.endswith("{**}")):
        raise ApiRuleError("path %r: {**} may appear once and only at the end" % path)
    pattern = []
    for token in re.split(r"(\{\*\*\}|\{\*\})", path):
        if token == "{**}":
            pattern.append(r".*")
        elif token == "{*}":
            pattern.append(r"[^/]+")
        elif token:
            pattern.append(re.escape(token))
    return re.compile("^" + "".join(pattern) + "$")


class Authentication:
    def __init__(self, spec, where):
        if not isinstance(spec, dict) or not spec.get("issuer") or not spec.get("jwksUri"):
            raise ApiRuleError("%s needs issuer and jwksUri" % where)
        self.issuer = str(spec["issuer"])
        self.jwks_uri = str(spec["jwksUri"])
        self.from_headers = [(str(h["name"]), h.get("prefix")) for h in spec.get("fromHeaders") or []]
        self.from_params = [str(p) for p in spec.get("fromParams") or []]


class Authorization:
    def __init__(self, spec):
        spec = spec or {}
        self.audiences = [str(a) for a in spec.get("audiences") or []]
        self.required_scopes = [str(s) for s in spec.get("requiredScopes") or []]

    def allows(self, claims):
        audiences = claim_values(claims, "aud")
        if any(audience not in audiences for audience in self.audiences):
            return False, "aud %s lacks %s" % (audiences, self.audiences)
        if not self.required_scopes:
            return True, None
        for name in SCOPE_CLAIMS:
            values = claim_values(claims, name)
            if all(scope in values for scope in self.required_scopes):
                return True, None
        return False, "no scope claim (scp, scope, scopes) holds all of %s" % self.required_scopes


def claim_values(claims, name):
    """The string values Istio matches for ``request.auth.claims[name]``."""
    value = claims.get(name)
    if isinstance(value, str):
        return value.split() if name in SPACE_DELIMITED_CLAIMS else [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


class Rule:
    def __init__(self, index, spec):
        where = "spec.rules[%d]" % index
        if not isinstance(spec, dict):
            raise ApiRuleError("%s must be a mapping" % where)
        self.index = index
        self.path = spec.get("path")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ApiRuleError("%s.path must be a string starting with /" % where)
        self.regex = path_template_regex(self.path)
        self.methods = [str(m) for m in spec.get("methods") or []]
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ApiRuleError("%s.methods must list HTTP methods in upper case: %s" % (where, ", ".join(METHODS)))
        strategies = [name for name in ("jwt", "noAuth", "extAuth") if spec.get(name)]
        if len(strategies) != 1:
            raise ApiRuleError("%s: exactly one of noAuth, jwt, extAuth must be set" % where)
        self.strategy = strategies[0]
        self.authentications = []
        self.authorizations = []
        if self.strategy == "jwt":
            jwt = spec["jwt"]
            self.authentications = [Authentication(a, "%s.jwt.authentications[%d]" % (where, i))
                                    for i, a in enumerate(jwt.get("authentications") or [])]
            if not self.authentications:
                raise ApiRuleError("%s.jwt needs at least one authentication" % where)
            self.authorizations = [Authorization(a) for a in jwt.get("authorizations") or []]
        self.earlier_paths = []

    @property
    def issuers(self):
        return [a.issuer for a in self.authentications]

    def matches(self, method, path):
        return method in self.methods and bool(self.regex.match(path)) \
            and not any(regex.match(path) for regex in self.earlier_paths)

    def describe(self):
        return "%s %s (%s)" % (",".join(self.methods), self.path, self.strategy)


class ApiRule:
    """The parts of an APIRule the gateway enforces."""

    def __init__(self, doc, source="APIRule"):
        if not isinstance(doc, dict) or doc.get("kind") != "APIRule":
            raise ApiRuleError("%s is not an APIRule" % source)
        if doc.get("apiVersion") not in API_VERSIONS:
            raise ApiRuleError("%s has apiVersion %r: only %s are supported"
                               % (source, doc.get("apiVersion"), " and ".join(API_VERSIONS)))
        self.api_version = doc["apiVersion"]
        metadata = doc.get("metadata") or {}
        self.name = metadata.get("name", "")
        self.namespace = metadata.get("namespace", "default")
        spec = doc.get("spec") or {}
        self.hosts = [str(h) for h in spec.get("hosts") or []]
        rules = spec.get("rules")
        if not isinstance(rules, list) or not rules:
            raise ApiRuleError("%s has no spec.rules" % source)
        self.rules = [Rule(i, r) for i, r in enumerate(rules)]
        for rule in self.rules:
            rule.earlier_paths = [earlier.regex for earlier in self.rules[:rule.index]
                                  if set(earlier.methods) & set(rule.methods)]
        self.authentications = {}
        for rule in self.rules:
            for auth in rule.authentications:
                known = self.authentications.get(auth.issuer)
                if known is not None and known.jwks_uri != auth.jwks_uri:
                    raise ApiRuleError("issuer %s has two jwksUri values (%s, %s): the API Gateway refuses that"
                                       % (auth.issuer, known.jwks_uri, auth.jwks_uri))
                self.authentications.setdefault(auth.issuer, auth)

    @property
    def has_jwt(self):
        return bool(self.authentications)

    def token_locations(self):
        """(headers [(name, prefix)], params) where Envoy looks for tokens."""
        headers, params = [], []
        for auth in self.authentications.values():
            for item in auth.from_headers:
                if item not in headers:
                    headers.append(item)
            for item in auth.from_params:
                if item not in params:
                    params.append(item)
        if not headers and not params:
            return [("Authorization", "Bearer ")], ["access_token"]
        return headers, params

    def authorize(self, method, path, principal, host=None):
        """(rule or None, reason): ``principal`` is None or (issuer, claims) of a verified token.
        ``host`` (the Host header) is not checked: see "What it does not do" in the README."""
        del host
        reasons = []
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            if rule.strategy == "noAuth":
                return rule, None
            if rule.strategy == "extAuth":
                reasons.append("rule %s uses extAuth, which the stand-in does not emulate" % rule.describe())
                continue
            if principal is None:
                reasons.append("rule %s needs a token" % rule.describe())
                continue
            issuer, claims = principal
            if issuer not in rule.issuers:
                reasons.append("rule %s does not accept issuer %s" % (rule.describe(), issuer))
                continue
            if not isinstance(claims.get("sub"), str) or not claims.get("sub"):
                reasons.append("token has no sub: Istio's requestPrincipals need <iss>/<sub>")
                continue
            if not rule.authorizations:
                return rule, None
            for authorization in rule.authorizations:
                allowed, why = authorization.allows(claims)
                if allowed:
                    return rule, None
                reasons.append(why)
        if not reasons:
            reasons.append("no rule allows %s %s" % (method, path))
        return None, "; ".join(reasons)


def load_apirule(path, name=None):
    """Read the APIRule from a YAML file (several documents allowed)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    except (OSError, yaml.YAMLError) as exc:
        raise ApiRuleError("cannot read %s: %s" % (path, exc))
    found = [doc for doc in docs if isinstance(doc, dict) and doc.get("kind") == "APIRule"
             and (name is None or (doc.get("metadata") or {}).get("name") == name)]
    if not found:
        raise ApiRuleError("%s holds no APIRule%s" % (path, " named %s" % name if name else ""))
    if len(found) > 1:
        raise ApiRuleError("%s holds %d APIRules: choose one with --apirule-name" % (path, len(found)))
    return ApiRule(found[0], source=path)
