#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kyma_publish_plan
short_description: Check the settings of selfjwt.kyma.kyma_publish and plan its JWKS and APIRule
version_added: 0.1.0
description:
  - The first step of the role C(selfjwt.kyma.kyma_publish), in one run on the controller, before anything is written
    or applied. Each option is the role variable of the same name with the prefix C(kyma_publish_) (O(issuer) is
    C(kyma_publish_issuer)), and every message names that role variable.
  - Checks the settings the way the API server, the APIRule v2 CRD (OpenAPI pattern and CEL rules) and the API Gateway
    would check them (names, ports, the issuer URL, the JWKS URL under the JWKS Service, the rules' paths, methods,
    timeouts, authorizations and services), and reports every problem at once.
  - Reads the facts C(edge_keys_public_jwks) and C(edge_keys_token_claims) of every host in the inventory group
    O(edge_group) (set by C(selfjwt.kyma.edge_keys)), once per host. Refuses a group without hosts and keys, hosts
    without keys (unless O(skip_hosts_without_keys), or in check mode, where they are reported as a warning), JWKs
    with private or secret members (naming the host and kid, never the values), and hosts whose tokens carry an
    C(iss) or C(aud) the APIRule would reject.
  - Splits the keys into issuer shards with the rules of P(selfjwt.kyma.shard_of#filter) and returns, per issuer, the
    URLs, served paths and document names the role's templates render, with the keys apart in RV(issuer_keys).
  - Warns when O(audiences) is empty while rules use it, because such a rule accepts any audience from the issuer.
  - Every pass over the hosts is linear in their number, so a fleet of 10,000 hosts costs about ten times one of
    1,000.
author:
  - selfjwt.kyma maintainers (@selfjwt)
attributes:
  check_mode:
    description: Writes nothing, so it runs the same in check mode; hosts without keys are then only reported.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: Never reports a change.
    support: full
  action:
    description: Runs on the controller and reads C(hostvars) of the edge hosts.
    support: full
options:
  edge_group:
    description: Inventory group of the edge hosts (C(kyma_publish_edge_group)).
    type: str
    required: true
  skip_hosts_without_keys:
    description: Publish without the keys of edge hosts that have none, with a warning, instead of failing.
    type: bool
    default: false
  extra_keys:
    description: Further public JWKs to publish (in every shard).
    type: list
    elements: raw
    default: []
  shard_count:
    description: Number of hashed issuer shards, V(0) for none; at most 1000.
    type: int
    default: 0
  shard_groups:
    description: Inventory group name to shard name.
    type: dict
    default: {}
  shard_overrides:
    description: Host name to shard name.
    type: dict
    default: {}
  jwks_name:
    description: Name of the JWKS Service, Deployment and ConfigMap (a DNS-1035 label).
    type: str
    default: edge-jwks
  jwks_namespace:
    description:
      - Namespace of the JWKS server.
      - With O(jwks_namespace_create) it must not be a reserved namespace (V(default), V(kube-system),
        V(kube-public), V(kube-node-lease), V(kyma-system), V(istio-system)) nor a namespace of the APIRule's
        workloads.
    type: str
    default: selfjwt-system
  jwks_namespace_create:
    description: Whether the role creates the JWKS namespace (without sidecar injection).
    type: bool
    default: true
  jwks_service_port:
    description: Port of the JWKS Service.
    type: int
    default: 80
  cluster_domain:
    description: The cluster's DNS domain, part of the JWKS Service URL.
    type: str
    default: cluster.local
  issuer:
    description: The tokens' C(iss) and the APIRule's issuer, an http(s) URL without query or fragment.
    type: str
    required: true
  jwks_uri:
    description: The APIRule's C(jwksUri), a URL under the JWKS Service.
    type: str
    required: true
  server_image:
    description: Image of the JWKS server, C([registry[:port]/]repository[:tag][@sha256:<digest>]).
    type: str
    default: docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine
  network_policy:
    description: Whether a NetworkPolicy fences the JWKS server in.
    type: bool
    default: true
  network_policy_from:
    description:
      - The NetworkPolicyPeer objects admitted to the JWKS server; at least one with O(network_policy).
      - The default admits istiod, the pods C(app=istiod) in the namespace C(istio-system).
    type: list
    elements: raw
    default:
      - namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: istio-system
        podSelector:
          matchLabels:
            app: istiod
  server_port:
    description: Container port of the JWKS server.
    type: int
    default: 8080
  server_user:
    description: Non-root user id of the JWKS server.
    type: int
    default: 101
  server_replicas:
    description: Number of JWKS server pods.
    type: int
    default: 2
  max_keys:
    description: Most keys one JWKS may hold, V(0) for no limit.
    type: int
    default: 1000
  max_bytes:
    description: Most bytes one JWKS may hold (at most 1040000).
    type: int
    default: 524288
  budget_warn_percent:
    description: Warn above this percentage of the budget, V(0) to 100.
    type: int
    default: 50
  apirule_name:
    description: Name of the APIRule (a DNS subdomain name).
    type: str
    default: edge-api
  apirule_namespace:
    description: Namespace of the APIRule.
    type: str
    default: default
  apirule_host:
    description: The APIRule's host (short name, fully qualified name or wildcard).
    type: str
    required: true
  apirule_gateway:
    description: The APIRule's gateway, as C(namespace/name).
    type: str
    default: kyma-system/kyma-gateway
  apirule_service_name:
    description: The Service the APIRule exposes.
    type: str
    required: true
  apirule_service_namespace:
    description: Namespace of that Service, also of rules' own services without a namespace.
    type: str
    required: true
  apirule_service_port:
    description: Port of that Service.
    type: int
    default: 80
  apirule_timeout:
    description: Request timeout of the APIRule in seconds (1 to 3900), or unset.
    type: int
  apirule_rules:
    description: The APIRule's rules (C(path), C(methods), optional C(authorizations), C(service), C(timeout)).
    type: list
    elements: dict
    required: true
  audiences:
    description: Audiences that rules without authorizations of their own require.
    type: list
    elements: str
    default: []
  required_scopes:
    description: Scopes that rules without authorizations of their own require.
    type: list
    elements: str
    default: []
  api:
    description:
      - What guards the API. V(apirule) returns the parts of an APIRule C(gateway.kyma-project.io/v2) (Kyma's API
        Gateway); V(istio) also checks the Istio settings and returns RV(istio), the parts of a RequestAuthentication
        and an AuthorizationPolicy C(security.istio.io/v1) (plain Istio).
      - With V(istio), rules with a C(service) or C(timeout) of their own are refused (routing is not part of these
        resources), and O(apirule_timeout) is only warned about.
    type: str
    default: apirule
    choices: [apirule, istio]
  istio_target:
    description:
      - With O(api=istio), where the policies take effect. V(workload) for the sidecars of the pods that O(istio_selector)
        selects in O(istio_namespace); V(gateway) for an ingress gateway, whose policy then also matches the Host
        header (O(apirule_host) must be fully qualified or a wildcard).
    type: str
    default: workload
    choices: [workload, gateway]
  istio_namespace:
    description: With O(api=istio), the namespace of the two policies (the workload's, or the gateway's).
    type: str
  istio_selector:
    description:
      - With O(api=istio), the labels of the pods the policies apply to (C(selector.matchLabels)); at least one.
    type: dict
    default: {}
  istio_target_refs:
    description:
      - With O(api=istio), policy target references (C(group), C(kind), C(name)) in O(istio_namespace), for
        example a Kubernetes Gateway API C(Gateway); used instead of O(istio_selector) when not empty.
    type: list
    elements: dict
    default: []
notes:
  - The role C(selfjwt.kyma.kyma_publish) runs this action with its variables; use the role rather than the action.
seealso:
  - module: selfjwt.kyma.jwks_publish
  - plugin: selfjwt.kyma.shard_plan
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check the settings and plan the JWKS of the hosts in the group edge
  selfjwt.kyma.kyma_publish_plan:
    edge_group: edge
    issuer: http://edge-jwks.default.svc.cluster.local
    jwks_uri: http://edge-jwks.default.svc.cluster.local/.well-known/jwks.json
    apirule_host: edge-api
    apirule_service_name: edge-api
    apirule_service_namespace: default
    apirule_rules:
      - path: /{**}
        methods: [GET]
    audiences: [edge-api]
  register: plan
  run_once: true
"""

RETURN = r"""
service_url:
  description: Cluster-local URL of the JWKS Service.
  returned: success
  type: str
  sample: http://edge-jwks.default.svc.cluster.local
sharded:
  description: Whether the keys are split into issuer shards.
  returned: success
  type: bool
  sample: false
issuers:
  description: The issuers the JWKS server serves, in the order of the APIRule's C(jwt.authentications), without keys.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The shard name, or C(default) without shards.
      type: str
    issuer:
      description: The issuer URL.
      type: str
    jwks_uri:
      description: The JWKS URL.
      type: str
    jwks_path:
      description: The path of the JWKS on the server.
      type: str
    discovery_path:
      description: The path of the OpenID discovery document on the server.
      type: str
    jwks_key:
      description: The JWKS's file name and ConfigMap key.
      type: str
    discovery_key:
      description: The discovery document's file name and ConfigMap key.
      type: str
    configmap:
      description: The ConfigMap of the shard (only with shards).
      type: str
  sample:
    - name: default
      issuer: http://edge-jwks.default.svc.cluster.local
      jwks_uri: http://edge-jwks.default.svc.cluster.local/.well-known/jwks.json
      jwks_path: /.well-known/jwks.json
      discovery_path: /.well-known/openid-configuration
      jwks_key: jwks.json
      discovery_key: openid-configuration
issuer_keys:
  description: Issuer name to the public JWKs its JWKS publishes (before revocation and de-duplication).
  returned: success
  type: dict
key_count:
  description: Number of keys offered for publishing (all issuers together).
  returned: success
  type: int
  sample: 3
rules:
  description:
    - The rules as the APIRule lists them, without C(jwt.authentications) (one per issuer); each with its own
      authorizations or the default one built from O(audiences) and O(required_scopes), empty members left out.
  returned: success
  type: list
  elements: dict
  sample:
    - path: /{**}
      methods: [GET]
      authorizations:
        - audiences: [edge-api]
istio:
  description:
    - The parts of the RequestAuthentication and the AuthorizationPolicy; see the role's README for how the APIRule
      rules are translated.
  returned: with O(api=istio)
  type: dict
  contains:
    namespace:
      description: Namespace of both policies.
      type: str
    selector:
      description: Their C(selector.matchLabels), or V(null) with target references.
      type: dict
    target_refs:
      description: Their C(targetRefs), or V(null) with a selector.
      type: list
      elements: dict
    jwt_rules:
      description: The RequestAuthentication's C(jwtRules), one per issuer (C(issuer), C(jwksUri), C(forwardOriginalToken)).
      type: list
      elements: dict
    rules:
      description: The ALLOW rules of the AuthorizationPolicy (C(from), C(to), C(when)).
      type: list
      elements: dict
  sample:
    namespace: default
    selector:
      app: edge-api
    target_refs: null
    jwt_rules:
      - issuer: http://edge-jwks.selfjwt-system.svc.cluster.local
        jwksUri: http://edge-jwks.selfjwt-system.svc.cluster.local/.well-known/jwks.json
        forwardOriginalToken: true
    rules:
      - from:
          - source:
              requestPrincipals: ["http://edge-jwks.selfjwt-system.svc.cluster.local/*"]
        to:
          - operation:
              methods: [GET]
              paths: ["/{**}"]
        when:
          - key: request.auth.claims[aud]
            values: [edge-api]
hosts_without_keys:
  description: Edge hosts published without their keys (they have none).
  returned: success
  type: list
  elements: str
  sample: []
"""
