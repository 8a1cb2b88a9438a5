# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared helpers of the kyma_publish system tests: fake edge inventories, running
ansible-playbook, and validating the rendered objects the way the API server would
(APIRule: the vendored CRD's v2 openAPIV3Schema plus its CEL rules; built-in kinds:
kubernetes-validate, strict)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from helpers import ansible_env, find_ansible_playbook  # pylint: disable=import-error

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("SELFJWT_SHARED_DIR") or REPO.parent / "shared")
#: The vendored CRD: <shared>/schemas/kyma/..., or <dir>/kyma/... when the variable names schemas/ itself.
APIRULE_CRD = next((p for p in (SHARED_DIR / "schemas" / "kyma" / "apirules.gateway.kyma-project.io.yaml",
                                SHARED_DIR / "kyma" / "apirules.gateway.kyma-project.io.yaml") if p.is_file()),
                   SHARED_DIR / "schemas" / "kyma" / "apirules.gateway.kyma-project.io.yaml")

#: Kubernetes version whose schemas the built-in objects are checked against (kubernetes-validate
#: ships 1.25 to 1.37; SAP BTP Kyma runs current minor releases).
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")

#: Upper bound of one ansible-playbook run: a guard against a hang, not a time limit. The render
#: test runs every case and refusal in one playbook, which takes over ten minutes on a shared
#: 2-CPU machine under load.
PLAYBOOK_TIMEOUT = 1800

#: JWK members that carry private or secret key material (RFC 7517/7518/8037).
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

#: The rendered manifests with the role's defaults, in apply order.
MANIFESTS = ("namespace.yaml", "jwks-networkpolicy.yaml", "jwks-configmap.yaml", "jwks-service.yaml", "jwks-pdb.yaml",
             "jwks-deployment.yaml", "apirule.yaml")
#: The ones that can be switched off (kyma_publish_jwks_namespace_create, kyma_publish_network_policy).
OPTIONAL_MANIFESTS = ("namespace.yaml", "jwks-networkpolicy.yaml")

ISTIO_INJECT = "sidecar.istio.io/inject"


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

def ansible_playbook():
    """ansible-playbook of the Python that runs the tests (the pinned virtualenv), or skip."""
    found = find_ansible_playbook()
    if not found:
        pytest.skip("ansible-playbook is not installed beside %s or on PATH" % sys.executable)
    return found


def collections_path():
    """ANSIBLE_COLLECTIONS_PATH with selfjwt.kyma and kubernetes.core, or skip."""
    value = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    roots = [Path(p) for p in value.split(os.pathsep) if p]
    found = {}
    for name in ("selfjwt/kyma", "kubernetes/core"):
        for root in roots:
            if (root / "ansible_collections" / name).is_dir():
                found[name] = root
                break
    missing = [n.replace("/", ".") for n in ("selfjwt/kyma", "kubernetes/core") if n not in found]
    if missing:
        pytest.skip("collections %s not found in ANSIBLE_COLLECTIONS_PATH=%r: run the tests with "
                    "`make system` (it sets up .cache/collections)" % (", ".join(missing), value))
    return value


def require_crd():
    if not APIRULE_CRD.is_file():
        pytest.skip("the vendored APIRule CRD %s is absent (set SELFJWT_SHARED_DIR to the shared/ directory "
                    "that holds schemas/kyma/)" % APIRULE_CRD)
    return APIRULE_CRD


def run_playbook(playbook, inventory, workdir, *args, env=None, expect_rc=0):
    """Run ansible-playbook; returns the CompletedProcess (stdout and stderr merged)."""
    # kubernetes.core keeps a discovery cache in the temporary directory (TMPDIR): keep it here.
    environment = ansible_env(collections_path(), str(Path(workdir) / "ansible-local"), ANSIBLE_HOST_KEY_CHECKING="0",
                              TMPDIR=str(Path(workdir)), PYTHONDONTWRITEBYTECODE="1")
    environment.pop("ANSIBLE_CONFIG", None)
    environment.update(env or {})
    command = [ansible_playbook(), "-i", str(inventory), str(playbook)] + list(args)
    result = subprocess.run(command, cwd=str(workdir), env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
    if expect_rc is not None and result.returncode != expect_rc:
        raise AssertionError("ansible-playbook exited with %d, expected %d:\n%s"
                             % (result.returncode, expect_rc, result.stdout[-12000:]))
    return result


_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)"
                    r"\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


def recap(output):
    """{host: {"ok": n, "changed": n, ...}} from the PLAY RECAP of ansible-playbook's output."""
    counts = {}
    for match in _RECAP.finditer(output):
        names = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
        counts[match.group(1)] = dict(zip(names, (int(g) for g in match.groups()[1:])))
    if not counts:
        raise AssertionError("no PLAY RECAP in the output:\n%s" % output[-4000:])
    return counts


# --------------------------------------------------------------------------------------
# Fake edge hosts (public JWKs built with PyJWT, independently of the collection's code)
# --------------------------------------------------------------------------------------

def make_public_jwk(key_type, kid):
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    elif key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "EdDSA"
    else:
        raise ValueError(key_type)
    jwk = dict((k, v) for k, v in jwk.items() if k not in ("key_ops",))
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return key, jwk


def write_inventory(path, hosts, group="edge", group_vars=None):
    """hosts: {name: {"edge_keys_public_jwks": [...], ...}} -> YAML inventory; returns path."""
    inventory = {"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "vars": dict(group_vars or {}),
        "children": {group: {"hosts": {name: dict(values, ansible_connection="local")
                                       for name, values in hosts.items()}}},
    }}
    Path(path).write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def fleet(types=("ec", "rsa", "ed25519")):
    """Three fake edge hosts with one key each: ({host: hostvars}, {kid: private key})."""
    hosts, keys = {}, {}
    for index, key_type in enumerate(types, 1):
        kid = "edge-%02d-%s" % (index, key_type)
        private, jwk = make_public_jwk(key_type, kid)
        hosts["edge-%02d" % index] = {"edge_keys_public_jwks": [jwk]}
        keys[kid] = private
    return hosts, keys


# --------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------

def load_manifest(path):
    documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    assert len(documents) == 1, "%s holds %d documents, expected one" % (path, len(documents))
    return documents[0]


def load_rendered(directory):
    return {name: load_manifest(Path(directory) / name) for name in MANIFESTS
            if name not in OPTIONAL_MANIFESTS or (Path(directory) / name).exists()}


#: The yamllint configuration that the rendered manifests meet (its comments say why).
YAMLLINT_CONFIG = Path(__file__).resolve().parent / "yamllint-manifests.yml"


def yamllint_problems(paths):
    """["<file>:<line>:<column> <rule>: <message>"] for every problem yamllint finds in paths."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    return ["%s:%d:%d %s: %s" % (Path(path).name, problem.line, problem.column, problem.rule, problem.desc)
            for path in paths for problem in linter.run(Path(path).read_text(), config, str(path))]


def private_members_of(jwks):
    return sorted(set(m for key in jwks.get("keys", []) for m in PRIVATE_JWK_MEMBERS if m in key))


# --------------------------------------------------------------------------------------
# APIRule validation: the CRD's v2 openAPIV3Schema plus its CEL rules, mirrored here
# --------------------------------------------------------------------------------------

#: The CEL rules of the APIRule v2 schema, as they read in the CRD. The test mirrors each in
#: Python below; if the CRD gains, loses or changes a rule, crd_cel_rules() fails so that the
#: mirror is updated.
CEL_GATEWAY = "self.matches('^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$')"
CEL_ONE_OF = "((has(self.extAuth)?1:0)+(has(self.jwt)?1:0)+((has(self.noAuth)&&self.noAuth==true)?1:0))==1"
CEL_HOST_PREFIX = "self.matches('"


def _v2_schema(crd):
    for version in crd["spec"]["versions"]:
        if version["name"] == "v2":
            return version["schema"]["openAPIV3Schema"]
    raise AssertionError("the APIRule CRD has no v2 version")


def _walk_validations(node, path, found):
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            found.append((path, rule["rule"]))
        for key, value in node.items():
            _walk_validations(value, path + (key,), found)
    elif isinstance(node, list):
        for value in node:
            _walk_validations(value, path, found)


def _cel_string(literal):
    """Unescape a single-quoted CEL string literal body (only backslash escapes occur)."""
    return re.sub(r"\\(.)", r"\1", literal)


def crd_cel_rules(crd):
    """{"gateway": regex, "host": regex} from the CRD, after checking it holds exactly the rules mirrored."""
    found = []
    _walk_validations(_v2_schema(crd), (), found)
    by_path = dict((".".join(p for p in path if p not in ("properties",)), rule) for path, rule in found)
    expected_paths = {"spec.gateway", "spec.externalGateway", "spec.hosts.items", "spec.rules.items"}
    assert set(by_path) == expected_paths, "APIRule v2 CEL rules changed: %s" % sorted(by_path)
    assert by_path["spec.gateway"] == CEL_GATEWAY and by_path["spec.externalGateway"] == CEL_GATEWAY
    assert by_path["spec.rules.items"] == CEL_ONE_OF
    host_rule = by_path["spec.hosts.items"]
    assert host_rule.startswith(CEL_HOST_PREFIX) and host_rule.endswith("')")
    return {"gateway": _cel_string(CEL_GATEWAY[len(CEL_HOST_PREFIX):-2]),
            "host": _cel_string(host_rule[len(CEL_HOST_PREFIX):-2])}


def _structural(schema):
    """The schema as a JSON Schema: x-kubernetes-* dropped, unknown fields refused like the API
    server's strict field validation (objects with properties and no additionalProperties)."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key.startswith("x-kubernetes-"):
                continue
            if key == "properties":
                out[key] = dict((name, _structural(sub)) for name, sub in value.items())
            else:
                out[key] = _structural(value)
        if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_structural(item) for item in schema]
    return schema


class ApiRuleValidator:
    """Validates an APIRule v2 object like the API server with the vendored CRD would."""

    def __init__(self, crd_path=None):
        import jsonschema

        crd = yaml.safe_load(Path(crd_path or require_crd()).read_text())
        self.cel = crd_cel_rules(crd)
        schema = _structural(copy.deepcopy(_v2_schema(crd)))
        self.validator = jsonschema.Draft7Validator(schema)

    def errors(self, obj):
        problems = ["%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
                    for error in sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path))]
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        for field in ("gateway", "externalGateway"):
            value = spec.get(field)
            if isinstance(value, str) and not re.search(self.cel["gateway"], value):
                problems.append("spec.%s: %s must be in the namespace/name format (CEL)" % (field, value))
        for index, host in enumerate(spec.get("hosts") or []):
            if isinstance(host, str) and not re.search(self.cel["host"], host):
                problems.append("spec.hosts[%d]: %r is not a valid host (CEL)" % (index, host))
        for index, rule in enumerate(spec.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            count = int("extAuth" in rule) + int("jwt" in rule) + int(rule.get("noAuth") is True)
            if count != 1:
                problems.append("spec.rules[%d]: one of noAuth, jwt, extAuth must be set (CEL)" % index)
        # Since API Gateway 3.6 the CRD no longer requires spec.gateway; the controller needs
        # gateway or externalGateway, and the role must always set gateway.
        if not spec.get("gateway"):
            problems.append("spec.gateway: not set")
        return problems

    def __call__(self, obj):
        problems = self.errors(obj)
        if problems:
            raise ValueError("; ".join(problems))


def kubernetes_errors(obj, version):
    """Strict kubernetes-validate errors of a built-in object ([] when valid)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return ["%s: %s" % (".".join(str(p) for p in exc.path), exc.message)]
    return []


def kubernetes_validator(version=KUBERNETES_VERSIONS[-1]):
    def validate(obj):
        problems = kubernetes_errors(obj, version)
        if problems:
            raise ValueError("; ".join(problems))
    return validate


def dump_json(value):
    return json.dumps(value, indent=2, sort_keys=True)
