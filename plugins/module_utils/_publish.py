# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The cluster side's plan: check the kyma_publish settings, gather the edge hosts' keys, shard them.

PRIVATE to the collection: do not import it from other collections.

No Ansible imports (``_fleet``, ``_jwks`` and the standard library only), so unit tests call
it directly. The action plugin ``selfjwt.kyma.kyma_publish_plan`` runs it once on the
controller, before the role writes or applies anything; the role's templates then only
render what :func:`plan` returns. Every pass over the hosts is linear.

Messages name the ROLE variable to set (``kyma_publish_...``, or the shared ``selfjwt_...``
that sets it), because this is where an operator fixes them. Every refusal is a
:class:`PublishError`; all problems of the settings are reported together.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet, _istio, _jwks

#: Prefix of the role's variables (what messages name).
PREFIX = "kyma_publish_"

# Kubernetes names, and the APIRule v2 CRD's own rules (OpenAPI pattern of rules[].path and
# the CEL rules of spec.gateway and spec.hosts).
RE_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
RE_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RE_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RE_GATEWAY = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")
RE_HOST = re.compile(
    r"^(?:\*\.(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]{2,63}|(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?:(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?:\.[a-z0-9]{2,63}))?)$")
RE_RULE_PATH = re.compile(r"^((\/([A-Za-z0-9-._~!$&'()+,;=:@]|%[0-9a-fA-F]{2})*)|(\/\{\*{1,2}\}))+$|^\/\*$")
RE_URL = re.compile(r"^https?://[^\s/?#]+[^\s?#]*$")
RE_SERVED_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
#: A container image reference (distribution/reference): [registry[:port]/]path[:tag][@sha256:<64 hex>].
RE_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
#: Longest image reference accepted.
MAX_IMAGE_LENGTH = 512
#: Namespaces the role does not create or relabel (Kubernetes', Kyma's and Istio's own).
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "kyma-system", "istio-system")
#: What a NetworkPolicyPeer may hold.
NETWORK_POLICY_PEER_FIELDS = frozenset(("podSelector", "namespaceSelector", "ipBlock"))

#: The most bytes a JWKS may have: one ConfigMap holds 1 MiB, the rest is for the discovery
#: document and the server configuration.
MAX_JWKS_BYTES = 1040000
#: Longest request timeout the APIRule v2 CRD accepts (seconds).
MAX_TIMEOUT = 3900

#: What the server serves besides each JWKS (beside its path).
DISCOVERY_NAME = "openid-configuration"


class PublishError(ValueError):
    """The settings or the hosts' facts cannot be published; the message says what to set."""


# --------------------------------------------------------------------------------------
# Small checks
# --------------------------------------------------------------------------------------

def _fullmatch(pattern, value):
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_dns_label(value):
    """A DNS-1035 label (Service names): lowercase letters, digits, '-', starting with a letter, <= 63."""
    return _fullmatch(RE_DNS_LABEL, value)


def is_namespace(value):
    """A namespace name (DNS-1123 label): lowercase letters, digits and '-', at most 63 characters."""
    return _fullmatch(RE_NAMESPACE, value)


def is_subdomain(value):
    """A DNS-1123 subdomain (object names; the cluster domain is checked the same way): at most 253."""
    return _fullmatch(RE_SUBDOMAIN, value) and len(value) <= 253


def _int(value):
    """``value`` as an int, or None for anything that is not a whole number (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _in_range(value, low, high=None):
    number = _int(value)
    return number is not None and number >= low and (high is None or number <= high)


def _strings(value):
    """A list (not a string) of non-empty strings."""
    return isinstance(value, (list, tuple)) and all(isinstance(item, str) and item for item in value)


def to_json(value):
    """JSON for messages: what Ansible's to_json shows (keys in their order, non-ASCII escaped)."""
    return json.dumps(value, default=str)


def service_url(name, namespace, cluster_domain, port):
    """Cluster-local URL of the JWKS Service (what istiod fetches; no port when it is 80)."""
    port = _int(port)
    return "http://%s.%s.svc.%s%s" % (name, namespace, cluster_domain, "" if port == 80 else ":%s" % port)


def discovery_path(jwks_path):
    """The discovery document's path beside a JWKS path (``/a/jwks.json`` -> ``/a/openid-configuration``)."""
    return jwks_path.rpartition("/")[0] + "/" + DISCOVERY_NAME


# --------------------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------------------

def workload_namespaces(settings):
    """Namespaces of the APIRule's workloads (they need sidecar injection, which the JWKS namespace turns off)."""
    s = settings
    found = [s["apirule_namespace"], s["apirule_service_namespace"]]
    rules = s["apirule_rules"] if isinstance(s["apirule_rules"], list) else []
    for rule in rules:
        service = rule.get("service") if isinstance(rule, dict) else None
        if isinstance(service, dict):
            found.append(service.get("namespace", s["apirule_service_namespace"]))
    unique = []
    for namespace in found:
        if namespace not in unique:
            unique.append(namespace)
    return unique


def _own_namespace(settings):
    """True when the JWKS namespace may be created and relabelled by the role (or it does not create it)."""
    s = settings
    if not s["jwks_namespace_create"]:
        return True
    return s["jwks_namespace"] not in RESERVED_NAMESPACES and s["jwks_namespace"] not in workload_namespaces(s)


def _network_policy_peers(settings):
    """True when kyma_publish_network_policy_from lists at least one NetworkPolicyPeer (or no policy is rendered)."""
    peers = settings["network_policy_from"]
    if not settings["network_policy"]:
        return True
    return (isinstance(peers, list) and len(peers) > 0
            and all(isinstance(peer, dict) and peer and set(peer) <= NETWORK_POLICY_PEER_FIELDS for peer in peers))


def _variable_checks(settings, url):
    """(option, shown value, valid, rule) of every scalar setting, in the order of the documentation."""
    s = settings
    jwks_uri = s["jwks_uri"]
    jwks_path = jwks_uri[len(url):] if isinstance(jwks_uri, str) else ""
    rules = s["apirule_rules"]
    return [
        ("jwks_name", s["jwks_name"], is_dns_label(s["jwks_name"]),
         "it names the Service, so it must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
         "letter, at most 63 characters)."),
        ("jwks_namespace", s["jwks_namespace"], is_namespace(s["jwks_namespace"]),
         "it must be a namespace name (lowercase letters, digits and '-', at most 63 characters)."),
        ("jwks_namespace", s["jwks_namespace"], _own_namespace(s),
         "with kyma_publish_jwks_namespace_create the role creates this namespace and turns sidecar injection off in "
         "it, so it must be a namespace of the JWKS server alone: not one of %s, and not a namespace of the APIRule's "
         "workloads (%s), whose pods need their sidecars. Use the default selfjwt-system, or set "
         "kyma_publish_jwks_namespace_create=false for a namespace that is managed elsewhere."
         % (", ".join(RESERVED_NAMESPACES), ", ".join(str(name) for name in workload_namespaces(s)))),
        ("cluster_domain", s["cluster_domain"], is_subdomain(s["cluster_domain"]),
         "it becomes part of the issuer and the jwksUri, so it must be a DNS name (lowercase letters, digits, '-' "
         "and '.', for example cluster.local, the Kubernetes default)."),
        ("server_image", s["server_image"],
         _fullmatch(RE_IMAGE, s["server_image"]) and len(s["server_image"]) <= MAX_IMAGE_LENGTH,
         "it must be an image reference [registry[:port]/]repository[:tag][@sha256:<digest>], and a digest must be "
         "sha256: followed by 64 lowercase hex digits, for example "
         "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine@sha256:<digest> (the digest pins the image; find it "
         "with 'docker buildx imagetools inspect <image>' or 'crane digest <image>')."),
        ("network_policy_from", s["network_policy_from"], _network_policy_peers(s),
         "it lists who may reach the JWKS server, as NetworkPolicyPeer objects (podSelector, namespaceSelector, "
         "ipBlock), for example the default, istiod: [{namespaceSelector: {matchLabels: "
         "{kubernetes.io/metadata.name: istio-system}}, podSelector: {matchLabels: {app: istiod}}}]. An empty list "
         "would admit everyone, so it needs at least one peer; set kyma_publish_network_policy=false to render no "
         "policy."),
        ("jwks_service_port", s["jwks_service_port"], _in_range(s["jwks_service_port"], 1, 65535),
         "use a port from 1 to 65535 (80 keeps the URLs free of a port)."),
        ("server_port", s["server_port"], _in_range(s["server_port"], 1, 65535), "use a port from 1 to 65535."),
        ("server_replicas", s["server_replicas"], _in_range(s["server_replicas"], 1),
         "at least one server must run, or istiod cannot fetch the JWKS and rejects every token."),
        ("server_user", s["server_user"], _in_range(s["server_user"], 1),
         "the server runs as a non-root user; use the image's user id (101 for nginx-unprivileged)."),
        ("issuer", s["issuer"], _fullmatch(RE_URL, s["issuer"]),
         "the issuer is the tokens' iss and the APIRule's issuer (byte for byte); it must be an http(s) URL without "
         "query or fragment, for example %s." % url),
        ("jwks_uri", jwks_uri,
         isinstance(jwks_uri, str) and jwks_uri.startswith(url + "/") and _fullmatch(RE_SERVED_PATH, jwks_path)
         and not jwks_path.endswith("/" + DISCOVERY_NAME),
         "istiod fetches the JWKS from this URL and the role's server serves exactly its path, so it must be a path "
         "under the JWKS Service %s/ made of A-Z a-z 0-9 . _ ~ - and '/' (not ending in /openid-configuration). Set "
         "kyma_publish_jwks_uri (or selfjwt_jwks_uri) to %s/.well-known/jwks.json, or change kyma_publish_jwks_name "
         "and kyma_publish_jwks_namespace to match the URL." % (url, url)),
        ("max_keys", s["max_keys"], _in_range(s["max_keys"], 0), "use the most keys one JWKS may hold, or 0 for no limit."),
        ("max_bytes", s["max_bytes"], _in_range(s["max_bytes"], 1, MAX_JWKS_BYTES),
         "every JWKS lives in a ConfigMap, which holds at most 1 MiB, so use at most %d bytes (the rest is for the "
         "discovery document and the server configuration); at most half of that leaves room for a rotation."
         % MAX_JWKS_BYTES),
        ("budget_warn_percent", s["budget_warn_percent"], _in_range(s["budget_warn_percent"], 0, 100),
         "use 0 (never warn) to 100."),
        ("shard_count", s["shard_count"], _in_range(s["shard_count"], 0, _fleet.MAX_SHARD_COUNT),
         "use 0 (no hashed shards) to %d; set selfjwt_shard_count once in group_vars/all so that edge_keys uses the "
         "same value." % _fleet.MAX_SHARD_COUNT),
        ("shard_groups", s["shard_groups"], isinstance(s["shard_groups"], dict),
         "it maps inventory group names to shard names (selfjwt_shard_groups in group_vars/all)."),
        ("shard_overrides", s["shard_overrides"], isinstance(s["shard_overrides"], dict),
         "it maps host names to shard names (selfjwt_shard_overrides in group_vars/all)."),
        ("apirule_name", s["apirule_name"], is_subdomain(s["apirule_name"]),
         "it must be a DNS subdomain name (lowercase letters, digits, '-' and '.')."),
        ("apirule_namespace", s["apirule_namespace"], is_namespace(s["apirule_namespace"]),
         "it must be a namespace name."),
        ("apirule_host", s["apirule_host"], _fullmatch(RE_HOST, s["apirule_host"]) and len(s["apirule_host"]) <= 255,
         "the APIRule v2 CRD accepts a lowercase short host name (the gateway's domain is added), a fully qualified "
         "name such as api.example.com, or a wildcard such as *.example.com."),
        ("apirule_gateway", s["apirule_gateway"], _fullmatch(RE_GATEWAY, s["apirule_gateway"]),
         "APIRule v2 needs the form namespace/name, for example kyma-system/kyma-gateway (the older "
         "kyma-gateway.kyma-system form is refused)."),
        ("apirule_service_name", s["apirule_service_name"], is_dns_label(s["apirule_service_name"]),
         "it must be the name of a Service (a DNS-1035 label)."),
        ("apirule_service_namespace", s["apirule_service_namespace"], is_namespace(s["apirule_service_namespace"]),
         "it must be a namespace name."),
        ("apirule_service_port", s["apirule_service_port"], _in_range(s["apirule_service_port"], 1, 65535),
         "use the Service's port, 1 to 65535."),
        ("apirule_timeout", s["apirule_timeout"],
         s["apirule_timeout"] is None or _in_range(s["apirule_timeout"], 1, MAX_TIMEOUT),
         "leave it unset or use 1 to %d seconds." % MAX_TIMEOUT),
        ("audiences", s["audiences"], _strings(s["audiences"]), "it must be a list of non-empty strings."),
        ("required_scopes", s["required_scopes"], _strings(s["required_scopes"]),
         "it must be a list of non-empty strings."),
        ("apirule_rules", "%d rules" % len(rules) if isinstance(rules, list) else rules,
         isinstance(rules, list) and len(rules) > 0, "an APIRule needs at least one rule."),
    ]


def check_variables(settings, url):
    """Problems of the scalar settings: ``kyma_publish_<name> <value> is not valid: <rule>``."""
    return ["%s%s %s is not valid: %s" % (PREFIX, name, to_json(value), rule)
            for name, value, valid, rule in _variable_checks(settings, url) if not valid]


def rule_problems(rule):
    """What is wrong with one entry of kyma_publish_apirule_rules (the CRD's rules), as sentences."""
    if not isinstance(rule, dict):
        return ["a rule must be a mapping with path and methods"]
    problems = []
    path = rule.get("path")
    if not _fullmatch(RE_RULE_PATH, path):
        problems.append("the path must be an exact path (/orders), {*} for one segment, {**} for any number of "
                        "segments, or /* for everything; regular expressions such as /.* are not allowed")
    elif path.count("{**}") > 1 or "{*" in path.partition("{**}")[2]:
        problems.append("{**} may appear once, after every other {*} of the path")
    methods = rule.get("methods")
    if not isinstance(methods, (list, tuple)) or not methods:
        problems.append("methods must be a non-empty list of uppercase HTTP methods")
    timeout = rule.get("timeout")
    if timeout is not None and not _in_range(timeout, 1, MAX_TIMEOUT):
        problems.append("the timeout must be 1 to %d seconds" % MAX_TIMEOUT)
    authorizations = rule.get("authorizations") or []
    if not isinstance(authorizations, (list, tuple)):
        problems.append("authorizations must be a list")
        authorizations = []
    for index, entry in enumerate(authorizations):
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("audiences") is None and entry.get("requiredScopes") is None:
            problems.append("authorizations[%d] needs audiences or requiredScopes" % index)
        for field in ("audiences", "requiredScopes"):
            values = entry.get(field)
            if values is not None and not (_strings(values) and values):
                problems.append("authorizations[%d].%s must be a non-empty list of non-empty strings" % (index, field))
    return problems


def service_problem(rule, default_namespace):
    """The problem of a rule's own ``service`` (None when it has none or it is valid)."""
    service = rule.get("service") if isinstance(rule, dict) else None
    if service is None:
        return None
    valid = isinstance(service, dict) and is_dns_label(service.get("name")) \
        and is_namespace(service.get("namespace") or default_namespace) and _in_range(service.get("port"), 1, 65535)
    if valid:
        return None
    return ("%sapirule_rules entry for path %s has an invalid service %s: it needs a Service name, a port 1-65535 "
            "and optionally a namespace." % (PREFIX, rule.get("path"), to_json(service)))


def check_rules(rules, default_namespace):
    """Problems of every entry of kyma_publish_apirule_rules."""
    problems = []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        found = rule_problems(rule)
        if found:
            problems.append("%sapirule_rules[%d] %s is not a valid APIRule v2 rule: %s."
                            % (PREFIX, index, to_json(rule), "; ".join(found)))
        service = service_problem(rule, default_namespace)
        if service:
            problems.append(service)
    return problems


# --------------------------------------------------------------------------------------
# What the templates render
# --------------------------------------------------------------------------------------

def default_authorizations(audiences, scopes):
    """Authorizations of rules that do not set their own: audiences and scopes are ANDed."""
    if audiences or scopes:
        return [{"audiences": list(audiences), "requiredScopes": list(scopes)}]
    return []


def apirule_rules(rules, audiences, scopes, service_namespace):
    """The rules as the APIRule lists them: own or default authorizations (empty members left out),
    a rule's own service with its namespace filled in, whole-number timeouts and ports."""
    defaults = default_authorizations(audiences, scopes)
    rendered = []
    for rule in rules:
        own = rule.get("authorizations")
        entry = {"path": rule["path"], "methods": list(rule["methods"])}
        service = rule.get("service")
        if service is not None:
            entry["service"] = {"name": service["name"],
                                "namespace": service.get("namespace") or service_namespace,
                                "port": _int(service["port"])}
        if rule.get("timeout") is not None:
            entry["timeout"] = _int(rule["timeout"])
        entry["authorizations"] = [dict((key, value) for key, value in authorization.items() if value)
                                   for authorization in (own if own is not None else defaults)]
        rendered.append(entry)
    return rendered


def rules_without_audience(rules, audiences):
    """Paths of the rules that would check kyma_publish_audiences but get none: the rules without
    authorizations of their own, when kyma_publish_audiences is empty."""
    if audiences:
        return []
    return [rule.get("path") for rule in rules if rule.get("authorizations") is None]


def issuer_entry(name, issuer, jwks_uri, url, suffix=""):
    """One issuer the server serves: its URLs, the served paths and the documents' keys in the ConfigMaps."""
    jwks_path = jwks_uri[len(url):]
    return {
        "name": name, "issuer": issuer, "jwks_uri": jwks_uri, "jwks_path": jwks_path,
        "discovery_path": discovery_path(jwks_path),
        "jwks_key": "jwks%s.json" % suffix, "discovery_key": DISCOVERY_NAME + suffix,
    }


# --------------------------------------------------------------------------------------
# The hosts
# --------------------------------------------------------------------------------------

def _as_list(value):
    """The JWKs a host offers: a list as it is, one JWK (or any other single value) as a list of one."""
    if not value:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def private_offers(host_keys, extra_keys):
    """'<source> (kid <kid>: members d, ...)' for every offered JWK with private members; never the values."""
    found = []
    sources = list(host_keys.items()) + [(PREFIX + "extra_keys", extra_keys)]
    for source, value in sources:
        for jwk in _as_list(value):
            if isinstance(jwk, dict):
                members = _jwks.private_members([jwk])
                if members:
                    found.append("%s (kid %s: members %s)" % (source, jwk.get("kid", "none"), ", ".join(members)))
    return found


def claim_mismatches(host_claims, expected_of, audiences):
    """[{host, iss, aud, expected}] of the hosts whose token claims the APIRule would reject."""
    found = []
    for host, claims in host_claims.items():
        if not isinstance(claims, dict):
            continue
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else list(aud or [])
        expected = expected_of(host)
        if claims.get("iss", "") not in expected or [a for a in audiences if a not in aud]:
            found.append({"host": host, "iss": claims.get("iss"), "aud": claims.get("aud"), "expected": expected})
    return found


def _mismatch_message(mismatches, sharded, issuers, audiences):
    hosts = "; ".join("%s (iss %s, aud %s%s)" % (
        item["host"], to_json(item["iss"]), to_json(item["aud"]),
        (", its shard expects iss %s" % to_json(item["expected"][0])) if sharded else "") for item in mismatches)
    if sharded:
        rule = ("With issuer shards each host's iss must be the issuer of its shard (selfjwt.kyma.shard_url of the "
                "issuer and the host's selfjwt.kyma.shard_of)")
    else:
        rule = "The APIRule expects iss in %s" % to_json(issuers)
    return ("These edge hosts mint tokens that the APIRule would reject: %s. %s and audiences %s. Set selfjwt_issuer "
            "(and selfjwt_audience, selfjwt_shard_count, selfjwt_shard_groups, selfjwt_shard_overrides) once for all "
            "hosts in group_vars/all so that edge_keys and kyma_publish use the same values, and run edge_keys again."
            % (hosts, rule, to_json(audiences)))


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------

def plan(settings, edge_hosts, host_keys, host_claims, inventory_groups=None, check_mode=False):
    """Check everything and compute what the role publishes; raises PublishError.

    ``settings``: the role's variables without the ``kyma_publish_`` prefix (see the action
    plugin's options). ``edge_hosts``: the hosts of the edge group, in inventory order.
    ``host_keys``: {host: edge_keys_public_jwks or None}; ``host_claims``: {host:
    edge_keys_token_claims} (hosts without the fact left out). ``inventory_groups``: Ansible's
    ``groups``, for kyma_publish_shard_groups.

    Returns {"service_url", "sharded", "issuers" (without keys), "issuer_keys" ({issuer name: [JWK]}),
    "key_count", "rules" (as the APIRule lists them), "hosts_without_keys" (published without their keys),
    "warnings"}, and with ``api`` ``istio`` also "istio" (:func:`_istio.plan`: the RequestAuthentication's
    and AuthorizationPolicy's parts).
    """
    s = settings
    url = service_url(s["jwks_name"], s["jwks_namespace"], s["cluster_domain"], s["jwks_service_port"])
    problems = check_variables(s, url) + check_rules(s["apirule_rules"], s["apirule_service_namespace"])
    api = s.get("api", "apirule")
    if api not in _istio.APIS:
        problems.append("%sapi %s is not valid: use apirule (an APIRule for Kyma's API Gateway) or istio (a "
                        "RequestAuthentication and an AuthorizationPolicy)." % (PREFIX, to_json(api)))
    elif api == "istio":
        problems.extend(_istio.check(s))
    if problems:
        raise PublishError(" ".join(problems))
    warnings = _istio.warnings(s) if api == "istio" else []
    audiences, scopes = list(s["audiences"]), list(s["required_scopes"])
    open_rules = rules_without_audience(s["apirule_rules"], audiences)
    if open_rules:
        warnings.append(
            "%saudiences is empty (selfjwt_audience is not set), so the APIRule rules for %s check no audience: they "
            "accept any audience from this issuer (a token minted for another API of the same issuer passes). Set "
            "selfjwt_audience once in group_vars/all (edge_keys puts it into the tokens' aud claim), or give these "
            "rules authorizations of their own." % (PREFIX, ", ".join(open_rules)))

    extra_keys = list(s["extra_keys"] or [])
    edge_group = s["edge_group"]
    if not edge_hosts and not extra_keys:
        raise PublishError(
            "The inventory group %s has no hosts and %sextra_keys is empty, so there is no key to publish: set "
            "%sedge_group (or selfjwt_edge_group) to the group of edge hosts." % (to_json(edge_group), PREFIX, PREFIX))
    without = [host for host in edge_hosts if not host_keys.get(host)]
    if without and not (s["skip_hosts_without_keys"] or check_mode):
        raise PublishError(
            "These edge hosts have no public keys (hostvars[host].edge_keys_public_jwks is missing or empty): %s. Run "
            "the selfjwt.kyma.edge_keys role on them in the same run (before this role), or set "
            "%sskip_hosts_without_keys=true to publish without them (their tokens will then be rejected). In check "
            "mode, hosts whose keys do not exist yet are only reported." % (", ".join(without), PREFIX))
    offers = private_offers(dict((host, host_keys.get(host)) for host in edge_hosts), extra_keys)
    if offers:
        raise PublishError(
            "Private key material was offered for publishing, so nothing was published: %s. edge_keys_public_jwks "
            "(and %sextra_keys) must hold public JWKs only. Treat these keys as compromised: replace them on the hosts "
            "(selfjwt.kyma.edge_keys with a new key) and find out how the private members got into the host facts."
            % ("; ".join(offers), PREFIX))
    if without:
        warnings.append("Publishing without the keys of %s: they have no edge_keys_public_jwks%s." % (
            ", ".join(without), " (in check mode their new keys do not exist yet)" if check_mode
            else ", so their tokens will be rejected"))

    try:
        sharded = _fleet.is_sharded(s["shard_count"], s["shard_groups"], s["shard_overrides"])
        if sharded:
            offered = dict((host, host_keys.get(host)) for host in edge_hosts)
            shards = _fleet.shard_map(sorted(offered), s["shard_count"], s["shard_groups"], inventory_groups,
                                      s["shard_overrides"])
            keys_of = _fleet.shard_keys(offered, shards, extra_keys)
            issuers, issuer_keys = [], {}
            for shard, keys in keys_of.items():
                entry = issuer_entry(shard, _fleet.shard_url(s["issuer"], shard), _fleet.shard_url(s["jwks_uri"], shard),
                                     url, "-" + shard)
                entry["configmap"] = "%s-%s" % (s["jwks_name"], shard)
                issuers.append(entry)
                issuer_keys[shard] = keys
            key_count = sum(len(keys) for keys in keys_of.values())
        else:
            keys = []
            for host in edge_hosts:
                keys.extend(_as_list(host_keys.get(host)))
            keys.extend(extra_keys)
            issuers = [issuer_entry("default", s["issuer"], s["jwks_uri"], url)]
            issuer_keys = {"default": keys}
            key_count = len(keys)
    except _fleet.ShardError as exc:
        raise PublishError(str(exc))

    def expected_of(host):
        if sharded:
            return [_fleet.shard_url(s["issuer"], shards[host])]
        return [entry["issuer"] for entry in issuers]

    mismatches = claim_mismatches(dict((host, host_claims[host]) for host in edge_hosts if host in host_claims),
                                  expected_of, audiences)
    if mismatches:
        raise PublishError(_mismatch_message(mismatches, sharded, [entry["issuer"] for entry in issuers], audiences))

    planned = {
        "service_url": url,
        "sharded": sharded,
        "issuers": issuers,
        "issuer_keys": issuer_keys,
        "key_count": key_count,
        "rules": apirule_rules(s["apirule_rules"], audiences, scopes, s["apirule_service_namespace"]),
        "hosts_without_keys": without,
        "warnings": warnings,
    }
    if api == "istio":
        planned["istio"] = _istio.plan(s, issuers, planned["rules"])
    return planned


# --------------------------------------------------------------------------------------
# ConfigMap data from the published documents
# --------------------------------------------------------------------------------------

#: Kubernetes keeps at most 1 MiB of data in one ConfigMap.
CONFIGMAP_MAX_BYTES = 1048576


def configmap_data(published, sharded, server_config, server_config_key, max_bytes=CONFIGMAP_MAX_BYTES):
    """The served files of the JWKS server, from ``jwks_publish``'s results (one per issuer).

    Returns ``documents`` (every issuer's JWKS and discovery document by file name, the bytes
    the ConfigMaps and the render mode's files carry), ``data`` (the main ConfigMap: the server
    configuration, and without shards the documents), ``sizes`` (the fact
    ``kyma_publish_jwks_sizes``) and ``problems``: one message per ConfigMap over ``max_bytes``
    (lengths in characters, as Kubernetes counts the text it stores).
    """
    documents, sizes, problems = {}, {}, []
    for result in published:
        item = result["item"]
        discovery = json.dumps(result["discovery"], indent=2, sort_keys=True) + "\n"
        documents[item["jwks_key"]] = result["document"]
        documents[item["discovery_key"]] = discovery
        sizes[item["name"]] = {"issuer": item["issuer"], "jwks_uri": item["jwks_uri"], "keys": len(result["kids"]),
                               "bytes": result["size"]}
        shard_bytes = len(result["document"]) + len(discovery)
        if sharded and shard_bytes > max_bytes:
            problems.append(
                "The ConfigMap %s of shard %s would hold %d bytes, more than the %d bytes Kubernetes allows in one "
                "ConfigMap; nothing was applied. Lower kyma_publish_max_bytes, use smaller keys (EC P-256 or Ed25519 "
                "instead of RSA), publish keys without x5c, or use more shards."
                % (item["configmap"], item["name"], shard_bytes, max_bytes))
    data = {} if sharded else dict(documents)
    data[server_config_key] = server_config.rstrip() + "\n"
    total = sum(len(text) for text in data.values())
    if total > max_bytes:
        problems.append(
            "The JWKS ConfigMap would hold %d bytes, more than the %d bytes Kubernetes allows in one ConfigMap; "
            "nothing was applied. Use smaller keys (EC P-256 or Ed25519 instead of RSA), publish keys without x5c, "
            "or split the fleet into several issuers." % (total, max_bytes))
    return {"documents": documents, "data": data, "sizes": sizes, "problems": problems}
