# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kyma_publish's plain Istio output: a RequestAuthentication and an AuthorizationPolicy
(``security.istio.io/v1``) instead of the APIRule, for clusters without Kyma's API Gateway.

PRIVATE to the collection: do not import it from other collections.

The APIRule rules (``kyma_publish_apirule_rules``, as :func:`_publish.apirule_rules` lists
them) are translated the way the API Gateway translates an APIRule v2 ``jwt`` rule
(api-gateway 3.10 ``internal/processing/processors/v2alpha1``):

* one ``jwtRules`` entry per issuer (one per shard) with ``issuer``, ``jwksUri`` and
  ``forwardOriginalToken: true``;
* per rule and ``authorizations`` entry one ALLOW rule: ``from.source.requestPrincipals``
  ``<issuer>/*`` of every issuer (a verified token with a non-empty ``sub``),
  ``to.operation`` ``methods``, ``paths`` and ``notPaths`` (the paths of earlier rules that
  share a method, so that the first matching rule wins), and ``when`` conditions: every
  audience in ``request.auth.claims[aud]``; required scopes all in one of the claims ``scp``,
  ``scope`` or ``scopes`` (one ALLOW rule per claim, as the API Gateway does).

Paths: Istio's AuthorizationPolicy understands the APIRule's path templates itself (``{*}``
one segment, ``{**}`` any number of segments, at the end); an exact path stays exact and
``/*`` (everything) becomes ``/{**}``, as the API Gateway writes it. What the two resources
cannot express (a rule's own ``service`` or ``timeout``: routing, a VirtualService's job) is
refused with a message that names the role variable.

No Ansible imports: unit tests call it directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

#: Prefix of the role's variables (what messages name).
PREFIX = "kyma_publish_"

#: The outputs of kyma_publish_api.
APIS = ("apirule", "istio")
#: Where the Istio policies take effect (kyma_publish_istio_target).
TARGETS = ("workload", "gateway")

#: Claims that may carry the scopes (the API Gateway checks all three, one ALLOW rule each).
SCOPE_CLAIMS = ("scp", "scope", "scopes")

RE_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RE_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: A label key: optional DNS subdomain prefix and '/', then a name of at most 63 characters.
RE_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
RE_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
#: A fully qualified host or a wildcard *.domain (the gateway sees the Host header as sent).
RE_FQDN = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]{2,63}$")
#: What a targetRefs entry may hold (PolicyTargetReference, namespace left out: same namespace only).
TARGET_REF_FIELDS = frozenset(("group", "kind", "name"))


class IstioError(ValueError):
    """The settings cannot be rendered as Istio resources; the message says what to set."""


def _json(value):
    return json.dumps(value, default=str)


def is_label_key(key):
    if not isinstance(key, str) or not key:
        return False
    prefix, _sep, name = key.rpartition("/")
    if prefix and not (RE_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253):
        return False
    return RE_LABEL_NAME.fullmatch(name) is not None


def is_label_value(value):
    return isinstance(value, str) and RE_LABEL_VALUE.fullmatch(value) is not None


def _selector_ok(selector):
    return (isinstance(selector, dict) and len(selector) > 0
            and all(is_label_key(key) and is_label_value(value) for key, value in selector.items()))


def _target_refs_ok(refs):
    return isinstance(refs, list) and all(
        isinstance(ref, dict) and set(ref) <= TARGET_REF_FIELDS
        and all(isinstance(ref.get(field), str) and ref.get(field) for field in ("kind", "name"))
        and isinstance(ref.get("group", ""), str) for ref in refs)


def istio_path(path):
    """The AuthorizationPolicy path of an APIRule rule path (``/*`` -> ``/{**}``, the rest as written)."""
    return "/{**}" if path == "/*" else path


def check(settings):
    """Problems of the Istio settings and of the rules that cannot be translated (sentences)."""
    s = settings
    problems = []
    target, selector, refs = s.get("istio_target"), s.get("istio_selector"), s.get("istio_target_refs") or []
    if target not in TARGETS:
        problems.append("%sistio_target %s is not valid: use workload (the sidecars of the pods that "
                        "%sistio_selector selects) or gateway (the ingress gateway)." % (PREFIX, _json(target), PREFIX))
    namespace = s.get("istio_namespace")
    if not (isinstance(namespace, str) and RE_NAMESPACE.fullmatch(namespace)):
        problems.append("%sistio_namespace %s is not valid: it must be a namespace name (lowercase letters, digits "
                        "and '-', at most 63 characters): the workload's namespace, or the ingress gateway's "
                        "(istio-system)." % (PREFIX, _json(namespace)))
    if not _target_refs_ok(refs):
        problems.append("%sistio_target_refs %s is not valid: it lists policy target references, each with kind "
                        "and name and optionally group (for example [{group: gateway.networking.k8s.io, kind: "
                        "Gateway, name: my-gateway}]), in %sistio_namespace (no namespace of their own)."
                        % (PREFIX, _json(refs), PREFIX))
    elif not refs and not _selector_ok(selector):
        problems.append("%sistio_selector %s is not valid: it must hold at least one label (name: value, no '*'), "
                        "for example {app: edge-api} for the workload or {istio: ingressgateway} for the ingress "
                        "gateway. An empty selector would put every workload of the namespace behind the policy."
                        % (PREFIX, _json(selector)))
    host = s.get("apirule_host")
    if target == "gateway" and not (isinstance(host, str) and RE_FQDN.fullmatch(host)):
        problems.append("%sapirule_host %s is not valid with %sistio_target=gateway: the gateway's "
                        "AuthorizationPolicy matches the Host header, so give the fully qualified host "
                        "(api.example.com) or a wildcard (*.example.com), not a short name."
                        % (PREFIX, _json(host), PREFIX, ))
    rules = s.get("apirule_rules") if isinstance(s.get("apirule_rules"), list) else []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        for field, what in (("service", "its own service"), ("timeout", "its own timeout")):
            if rule.get(field) is not None:
                problems.append(
                    "%sapirule_rules[%d] (path %s) sets %s, which %sapi=istio cannot render: a "
                    "RequestAuthentication and an AuthorizationPolicy only check requests, routing and timeouts "
                    "are the job of your VirtualService or HTTPRoute. Remove %s from the rule, or use "
                    "%sapi=apirule." % (PREFIX, index, _json(rule.get("path")), what, PREFIX, field, PREFIX))
    return problems


def warnings(settings):
    """Settings that the Istio output does not use (they only shape the APIRule)."""
    found = []
    if settings.get("apirule_timeout") is not None:
        found.append("%sapirule_timeout is set, but %sapi=istio renders no VirtualService, so it has no effect: set "
                     "the timeout on your own VirtualService or HTTPRoute." % (PREFIX, PREFIX))
    return found


def jwt_rules(issuers):
    """RequestAuthentication ``jwtRules``: one per issuer (shard), as the API Gateway writes them."""
    return [{"issuer": entry["issuer"], "jwksUri": entry["jwks_uri"], "forwardOriginalToken": True}
            for entry in issuers]


def _conditions(authorization):
    """The ALLOW rules' ``when`` lists of one authorizations entry (several when it requires scopes)."""
    audiences = [{"key": "request.auth.claims[aud]", "values": [audience]}
                 for audience in authorization.get("audiences") or []]
    scopes = authorization.get("requiredScopes") or []
    if not scopes:
        return [audiences]
    return [audiences + [{"key": "request.auth.claims[%s]" % claim, "values": [scope]} for scope in scopes]
            for claim in SCOPE_CLAIMS]


def policy_rules(rules, issuers, hosts=None):
    """AuthorizationPolicy ``rules`` (ALLOW) of the APIRule rules as :func:`_publish.apirule_rules` lists them."""
    principals = ["%s/*" % entry["issuer"] for entry in issuers]
    translated = []
    for index, rule in enumerate(rules):
        operation = {}
        if hosts:
            operation["hosts"] = list(hosts)
        operation["methods"] = list(rule["methods"])
        operation["paths"] = [istio_path(rule["path"])]
        earlier = []
        for previous in rules[:index]:
            path = istio_path(previous["path"])
            if set(previous["methods"]) & set(rule["methods"]) and path not in earlier:
                earlier.append(path)
        if earlier:
            operation["notPaths"] = earlier
        for authorization in rule["authorizations"] or [{}]:
            for when in _conditions(authorization):
                entry = {"from": [{"source": {"requestPrincipals": list(principals)}}],
                         "to": [{"operation": dict(operation)}]}
                if when:
                    entry["when"] = when
                translated.append(entry)
    return translated


def gateway_hosts(host):
    """The Host header values the gateway's policy matches: the host, with any port."""
    return [host, host + ":*"]


def plan(settings, issuers, rules):
    """What the Istio templates render; raises IstioError with every problem at once.

    ``issuers``: the plan's issuers (``issuer``, ``jwks_uri``); ``rules``: as
    :func:`_publish.apirule_rules` returns them. Returns {"namespace", "selector" (or None),
    "target_refs" (or None), "jwt_rules", "rules"}.
    """
    problems = check(settings)
    if problems:
        raise IstioError(" ".join(problems))
    refs = settings.get("istio_target_refs") or []
    hosts = gateway_hosts(settings["apirule_host"]) if settings["istio_target"] == "gateway" else None
    return {
        "namespace": settings["istio_namespace"],
        "selector": None if refs else dict(settings["istio_selector"]),
        "target_refs": [dict(ref) for ref in refs] if refs else None,
        "jwt_rules": jwt_rules(issuers),
        "rules": policy_rules(rules, issuers, hosts),
    }
