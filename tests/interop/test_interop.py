# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Interoperability: tokens from selfjwt.kyma.jwt_token verify against the JWKS from
selfjwt.kyma.jwks_publish, served over HTTP, in Node.js `jose` and in `jsonwebtoken` +
`jwks-rsa`; negative tokens are rejected, for the right reason.

A real playbook runs with ansible-playbook: three edge hosts (RSA-4096/RS256, P-256/ES256,
Ed25519/EdDSA) and one stranger whose key is not published create keys with jwt_keypair
and mint tokens with jwt_token; localhost publishes the edge hosts' JWKS with jwks_publish.
Only the publish directory is served over HTTP (never the key directory). The Node.js
verifiers (verify_jose.mjs, verify_jsonwebtoken.js) get every case in one batch each.

Tokens that no module option can produce (expired, tampered, forged headers) are made here
from the module-made ones or signed with PyJWT and the module-made key file: test fixtures.
So is the wrong-audience token, to keep the playbook short (the module's audience option is
already what the valid tokens carry).

jsonwebtoken 9.0.3 cannot verify EdDSA at all (its jwa 2 algorithm table has no EdDSA and it
refuses Ed25519 keys with 'Unknown key type "ed25519".'); those cases are strict xfails that
only count when the library fails for exactly that reason.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from helpers import ansible_env, collections_path_with_repo, require_ansible_playbook  # pylint: disable=import-error

HERE = os.path.dirname(os.path.abspath(__file__))

ISSUER = "https://edge-fleet.example.com"
AUDIENCE = "orders-api"
ALGORITHMS = ["RS256", "ES256", "EdDSA"]

#: The fleet: host -> (key options, algorithm). The stranger's key is never published.
EDGE_HOSTS = {
    "edge-rsa": ({"key_type": "rsa", "key_size": 4096}, "RS256"),
    "edge-ec": ({"key_type": "ec", "key_curve": "P-256"}, "ES256"),
    "edge-ed": ({"key_type": "ed25519"}, "EdDSA"),
}
STRANGER = "stranger-ec"

TOKEN_VARIANTS = [
    {"name": "good"},
    {"name": "wrong_issuer", "issuer": "https://attacker.example.com"},
    {"name": "unknown_kid", "kid": "not-in-the-jwks"},
]

PLAYBOOK = """\
---
- name: Edge hosts ensure their signing keys and mint tokens
  hosts: edge:strangers
  gather_facts: false
  tasks:
    - name: Ensure the signing key
      selfjwt.kyma.jwt_keypair:
        path: "{{ key_dir }}/{{ inventory_hostname }}.pem"
        type: "{{ key_type }}"
        size: "{{ key_size | default(omit) }}"
        curve: "{{ key_curve | default(omit) }}"
      register: edge_key

    - name: Mint the tokens for the verifiers
      selfjwt.kyma.jwt_token:
        private_key_path: "{{ key_dir }}/{{ inventory_hostname }}.pem"
        algorithm: "{{ key_alg }}"
        issuer: "{{ item.issuer | default(issuer) }}"
        subject: "{{ inventory_hostname }}"
        audience: "{{ item.audience | default(audience) }}"
        kid: "{{ item.kid | default(omit) }}"
        jku: "{{ jwks_url }}"
        expires_in: 3600
      loop: "{{ token_variants if inventory_hostname in groups['edge'] else token_variants[:1] }}"
      loop_control:
        label: "{{ item.name }}"
      register: minted
      no_log: true

- name: Publish the JWKS of the edge hosts
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Assemble and write the JWKS
      selfjwt.kyma.jwks_publish:
        keys: "{{ groups['edge'] | map('extract', hostvars, ['edge_key', 'jwk']) | list }}"
        dest: "{{ publish_dir }}/jwks.json"
      register: published

    - name: Hand everything the modules returned to the test (one file, tokens included)
      ansible.builtin.copy:
        content: "{{ {'published': published, 'keys': dict(fleet | zip(fleet | map('extract', hostvars, 'edge_key'))),
                     'tokens': dict(fleet | zip(fleet | map('extract', hostvars, ['minted', 'results'])))}
                     | to_nice_json }}"
        dest: "{{ result_dir }}/results.json"
        mode: "0600"
      vars:
        fleet: "{{ groups['edge'] + groups['strangers'] }}"
      no_log: true
"""


class LibraryLacksEdDSA(Exception):
    """jsonwebtoken refused an EdDSA token because it does not support EdDSA at all."""


JSONWEBTOKEN_NO_EDDSA = re.compile(r'Unknown key type "ed25519"')


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def interop_env(tmp_dir):
    return ansible_env(collections_path_with_repo(os.path.join(tmp_dir, "collections")),
                       os.path.join(tmp_dir, "ansible-local"), os.path.join(tmp_dir, "ansible-remote"),
                       ANSIBLE_PIPELINING="1", ANSIBLE_FORKS="5")


def node_executable():
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: install Node.js 20+ with npm, then run 'make node'")
    for package in ("jose", "jsonwebtoken", "jwks-rsa"):
        if not os.path.isfile(os.path.join(HERE, "node_modules", package, "package.json")):
            pytest.fail("tests/interop/node_modules/%s is missing: run 'make node' (npm ci in tests/interop)" % package)
    return node


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = None  # set per server

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        self.requests.append(self.path)


# --------------------------------------------------------------------------------------
# Fixtures: HTTP server, playbook run, cases, verdicts
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("interop"))
    for name in ("keys", "publish", "results"):
        os.makedirs(os.path.join(root, name))
    return root


@pytest.fixture(scope="module")
def jwks_server(workdir):
    """Serve the publish directory (only the JWKS, never the keys) on 127.0.0.1, a free port."""
    requests = []
    handler_class = type("Handler", (_QuietHandler,), {"requests": requests})
    handler = functools.partial(handler_class, directory=os.path.join(workdir, "publish"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="jwks-server", daemon=True)
    thread.start()
    try:
        yield {"url": "http://127.0.0.1:%d/jwks.json" % server.server_address[1], "requests": requests}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def fleet(workdir, jwks_server):
    """Run the playbook; return what the modules returned and published."""
    inventory = ["[edge]"]
    for host, (options, algorithm) in EDGE_HOSTS.items():
        host_vars = " ".join("%s=%s" % item for item in sorted(options.items()))
        inventory.append("%s %s key_alg=%s" % (host, host_vars, algorithm))
    inventory += ["[strangers]", "%s key_type=ec key_curve=P-256 key_alg=ES256" % STRANGER,
                  "[all:vars]", "ansible_connection=local",
                  "ansible_python_interpreter=\"{{ ansible_playbook_python }}\""]
    with open(os.path.join(workdir, "inventory.ini"), "w") as handle:
        handle.write("\n".join(inventory) + "\n")
    with open(os.path.join(workdir, "playbook.yml"), "w") as handle:
        handle.write(PLAYBOOK)
    extra = {
        "key_dir": os.path.join(workdir, "keys"),
        "publish_dir": os.path.join(workdir, "publish"),
        "result_dir": os.path.join(workdir, "results"),
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": jwks_server["url"],
        "token_variants": TOKEN_VARIANTS,
    }
    with open(os.path.join(workdir, "vars.json"), "w") as handle:
        json.dump(extra, handle)

    start = time.monotonic()
    proc = subprocess.run(
        [require_ansible_playbook(), "-i", "inventory.ini", "playbook.yml", "-e", "@vars.json"],
        cwd=workdir, env=interop_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=300, check=False)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, "ansible-playbook failed (rc=%d):\n%s" % (proc.returncode, proc.stdout[-6000:])
    print("playbook: %.1f s" % seconds)

    with open(os.path.join(workdir, "results", "results.json")) as handle:
        results = json.load(handle)
    hosts = {}
    for host in list(EDGE_HOSTS) + [STRANGER]:
        tokens = dict((item["item"]["name"], item) for item in results["tokens"][host])
        hosts[host] = {"key": results["keys"][host], "tokens": tokens,
                       "key_file": os.path.join(workdir, "keys", "%s.pem" % host)}
    published = results["published"]
    with open(os.path.join(workdir, "publish", "jwks.json")) as handle:
        jwks = json.load(handle)
    return {"hosts": hosts, "published": published, "jwks": jwks, "seconds": seconds, "output": proc.stdout}


def _load_key(path):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


def _resign(token, key_file, algorithm, header=None, claims=None):
    """Sign (changed) header and claims of a module-made token with the module-made key file."""
    old_header = jwt.get_unverified_header(token)
    old_claims = jwt.decode(token, options={"verify_signature": False})
    new_header = dict(old_header, **(header or {}))
    new_claims = dict(old_claims, **(claims or {}))
    extra = dict((k, v) for k, v in new_header.items() if k != "alg")
    return jwt.encode(new_claims, _load_key(key_file), algorithm=algorithm, headers=extra)


def _tamper_payload(token):
    head, payload, signature = token.split(".")
    claims = json.loads(unb64url(payload))
    claims["sub"] = "admin"
    return ".".join([head, b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8")), signature])


def _tamper_signature(token):
    head, payload, signature = token.split(".")
    raw = bytearray(unb64url(signature))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([head, payload, b64url(bytes(raw))])


def _unsigned(header, claims, algorithm, secret=b""):
    head = b64url(json.dumps(dict(header, alg=algorithm), separators=(",", ":")).encode("utf-8"))
    body = b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    if not secret:
        return "%s.%s." % (head, body)
    mac = hmac.new(secret, ("%s.%s" % (head, body)).encode("ascii"), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(mac))


@pytest.fixture(scope="module")
def cases(fleet):
    """id -> {"token", "host", "kind", "alg"}: every token the verifiers get."""
    now = int(time.time())
    result = {}
    for host, (_options, algorithm) in EDGE_HOSTS.items():
        data = fleet["hosts"][host]
        good = data["tokens"]["good"]["token"]

        def add(kind, token, host=host, algorithm=algorithm):
            result["%s-%s" % (kind, host)] = {"token": token, "host": host, "kind": kind, "alg": algorithm}

        add("valid", good)
        for variant in ("wrong_issuer", "unknown_kid"):
            add(variant, data["tokens"][variant]["token"])
        add("wrong_audience", _resign(good, data["key_file"], algorithm, claims={"aud": "another-api"}))
        add("expired", _resign(good, data["key_file"], algorithm,
                               claims={"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}))
        add("tampered_payload", _tamper_payload(good))
        add("tampered_signature", _tamper_signature(good))

    rsa_good = fleet["hosts"]["edge-rsa"]["tokens"]["good"]["token"]
    rsa_header = jwt.get_unverified_header(rsa_good)
    rsa_claims = jwt.decode(rsa_good, options={"verify_signature": False})
    rsa_jwk = fleet["hosts"]["edge-rsa"]["key"]["jwk"]
    result["foreign_key-%s" % STRANGER] = {"token": fleet["hosts"][STRANGER]["tokens"]["good"]["token"],
                                           "host": STRANGER, "kind": "foreign_key", "alg": "ES256"}
    # An ES256 token signed by edge-ec's key that names edge-rsa's kid.
    result["kid_swap-edge-ec"] = {
        "token": _resign(fleet["hosts"]["edge-ec"]["tokens"]["good"]["token"], fleet["hosts"]["edge-ec"]["key_file"],
                         "ES256", header={"kid": rsa_jwk["kid"]}),
        "host": "edge-ec", "kind": "kid_swap", "alg": "ES256"}
    result["alg_none-edge-rsa"] = {"token": _unsigned(rsa_header, rsa_claims, "none"), "host": "edge-rsa",
                                   "kind": "alg_none", "alg": "none"}
    # Algorithm confusion: HS256 with the RSA public key (as jwks-rsa hands it out) as the HMAC secret.
    public_pem = serialization.load_pem_public_key(
        fleet["hosts"]["edge-rsa"]["key"]["public_key"].encode("ascii")).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    result["hs256_confusion-edge-rsa"] = {"token": _unsigned(rsa_header, rsa_claims, "HS256", public_pem),
                                          "host": "edge-rsa", "kind": "hs256_confusion", "alg": "HS256"}
    return result


VERIFIERS = {"jose": "verify_jose.mjs", "jsonwebtoken": "verify_jsonwebtoken.js"}


@pytest.fixture(scope="module")
def verdicts(cases, jwks_server):
    """library -> {"version", "results": {case id: verdict}}, one Node.js run per library."""
    node = node_executable()
    batch = {"jwks_url": jwks_server["url"], "cases": [
        {"id": case_id, "token": case["token"], "issuer": ISSUER, "audience": AUDIENCE, "algorithms": ALGORITHMS}
        for case_id, case in sorted(cases.items())]}
    output = {}
    for library, script in VERIFIERS.items():
        before = len(jwks_server["requests"])
        start = time.monotonic()
        proc = subprocess.run([node, os.path.join(HERE, script), "--batch"], cwd=HERE, input=json.dumps(batch),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                              check=False)
        print("%s: %d cases in %.1f s" % (library, len(batch["cases"]), time.monotonic() - start))
        assert proc.returncode == 0, "%s failed (rc=%d): %s" % (script, proc.returncode, proc.stderr)
        output[library] = json.loads(proc.stdout)
        output[library]["jwks_requests"] = jwks_server["requests"][before:]
    return output


# --------------------------------------------------------------------------------------
# What the playbook made
# --------------------------------------------------------------------------------------

def test_jwks_holds_exactly_the_edge_keys(fleet):
    kids = sorted(fleet["hosts"][host]["key"]["kid"] for host in EDGE_HOSTS)
    assert sorted(key["kid"] for key in fleet["jwks"]["keys"]) == kids
    assert fleet["hosts"][STRANGER]["key"]["kid"] not in kids
    assert sorted(fleet["published"]["kids"]) == kids
    for key in fleet["jwks"]["keys"]:
        assert not set(key) & {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
        assert key["use"] == "sig"
    by_kid = dict((key["kid"], key) for key in fleet["jwks"]["keys"])
    for host, (_options, algorithm) in EDGE_HOSTS.items():
        assert by_kid[fleet["hosts"][host]["key"]["kid"]] == fleet["hosts"][host]["key"]["jwk"]
        assert by_kid[fleet["hosts"][host]["key"]["kid"]]["alg"] == algorithm


def test_key_files_are_private(fleet):
    for host in list(EDGE_HOSTS) + [STRANGER]:
        assert oct(os.stat(fleet["hosts"][host]["key_file"]).st_mode & 0o777) == "0o600"


def test_article_token_shape(fleet, jwks_server):
    """RS256, 4096-bit key, header kid and jku, claims iss, jti (and sub), one hour."""
    data = fleet["hosts"]["edge-rsa"]
    token = data["tokens"]["good"]["token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256"
    assert header["kid"] == data["key"]["kid"] == data["key"]["jwk"]["kid"]
    assert header["jku"] == jwks_server["url"]
    assert claims["iss"] == ISSUER and claims["sub"] == "edge-rsa"
    assert len(unb64url(claims["jti"])) * 8 >= 128 or len(claims["jti"]) >= 22
    assert claims["exp"] - claims["iat"] == 3600
    assert len(unb64url(data["key"]["jwk"]["n"])) * 8 == 4096
    # The module reports what is in the token.
    assert data["tokens"]["good"]["header"] == header
    assert data["tokens"]["good"]["claims"] == claims
    assert data["tokens"]["good"]["expires_at"] == claims["exp"]


def test_jti_differs_between_tokens(fleet):
    jtis = [jwt.decode(item["token"], options={"verify_signature": False})["jti"]
            for host in EDGE_HOSTS for item in fleet["hosts"][host]["tokens"].values()]
    assert len(jtis) == len(set(jtis)) == len(EDGE_HOSTS) * len(TOKEN_VARIANTS)


# --------------------------------------------------------------------------------------
# What the Node.js verifiers say
# --------------------------------------------------------------------------------------

#: kind -> how each library must reject it: jose error code (and claim), jsonwebtoken message.
REJECTIONS = {
    "expired": ({"code": "ERR_JWT_EXPIRED"}, r"^jwt expired$"),
    "wrong_issuer": ({"code": "ERR_JWT_CLAIM_VALIDATION_FAILED", "claim": "iss"}, r"^jwt issuer invalid"),
    "wrong_audience": ({"code": "ERR_JWT_CLAIM_VALIDATION_FAILED", "claim": "aud"}, r"^jwt audience invalid"),
    "unknown_kid": ({"code": "ERR_JWKS_NO_MATCHING_KEY"}, r"Unable to find a signing key that matches"),
    "foreign_key": ({"code": "ERR_JWKS_NO_MATCHING_KEY"}, r"Unable to find a signing key that matches"),
    "kid_swap": ({"code": "ERR_JWKS_NO_MATCHING_KEY"}, r'"alg" parameter for "rsa" key type must be one of'),
    "tampered_payload": ({"code": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"}, r"^invalid signature$"),
    "tampered_signature": ({"code": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"}, r"^invalid signature$"),
    "alg_none": ({"code": "ERR_JOSE_ALG_NOT_ALLOWED"}, r"^(jwt signature is required|invalid algorithm)$"),
    "hs256_confusion": ({"code": "ERR_JOSE_ALG_NOT_ALLOWED"}, r"^invalid algorithm$"),
}

#: jsonwebtoken checks the key type before the signature and the claims, so with an Ed25519 key
#: every case fails on 'Unknown key type "ed25519"' except those that fail earlier, on the kid.
_NO_EDDSA = pytest.mark.xfail(
    strict=True, raises=LibraryLacksEdDSA,
    reason='jsonwebtoken 9.0.3 does not support EdDSA: jwa 2.0.1 has no EdDSA and verify() refuses '
           'Ed25519 keys with \'Unknown key type "ed25519".\' (jwks-rsa 4.1.0 does serve the OKP key)')


#: Kinds of token made for every edge host; the others are made for one host only.
PER_HOST_KINDS = ("valid", "expired", "wrong_issuer", "wrong_audience", "unknown_kid", "tampered_payload",
                  "tampered_signature")
SINGLE_HOST_KINDS = {"foreign_key": STRANGER, "kid_swap": "edge-ec", "alg_none": "edge-rsa",
                     "hs256_confusion": "edge-rsa"}


def _params(kinds):
    params = []
    for library in VERIFIERS:
        for kind in kinds:
            hosts = list(EDGE_HOSTS) if kind in PER_HOST_KINDS else [SINGLE_HOST_KINDS[kind]]
            for host in hosts:
                marks = []
                if library == "jsonwebtoken" and host == "edge-ed" and kind != "unknown_kid":
                    marks.append(_NO_EDDSA)
                params.append(pytest.param(library, "%s-%s" % (kind, host), marks=marks,
                                           id="%s-%s-%s" % (library, kind, host)))
    return params


def _verdict(verdicts, library, case_id, case):
    verdict = verdicts[library]["results"][case_id]
    if library == "jsonwebtoken" and case["alg"] == "EdDSA" and not verdict["valid"] \
            and JSONWEBTOKEN_NO_EDDSA.search(verdict["message"]):
        raise LibraryLacksEdDSA(verdict["message"])
    return verdict


def test_library_versions(verdicts):
    assert verdicts["jose"]["version"] == "6.2.17"
    assert verdicts["jsonwebtoken"]["version"] == {"jsonwebtoken": "9.0.3", "jwks-rsa": "4.1.0"}


@pytest.mark.parametrize("library", list(VERIFIERS))
def test_jwks_is_fetched_over_http(verdicts, library):
    assert "/jwks.json" in verdicts[library]["jwks_requests"]


@pytest.mark.parametrize("library, case_id", _params(["valid"]))
def test_valid_token_verifies(fleet, cases, verdicts, library, case_id):
    case = cases[case_id]
    verdict = _verdict(verdicts, library, case_id, case)
    assert verdict["valid"], verdict
    minted = fleet["hosts"][case["host"]]["tokens"]["good"]
    assert verdict["claims"] == minted["claims"]
    assert verdict["header"] == minted["header"]
    assert verdict["header"]["kid"] == fleet["hosts"][case["host"]]["key"]["jwk"]["kid"]
    assert verdict["header"]["alg"] == EDGE_HOSTS[case["host"]][1]


@pytest.mark.parametrize("library, case_id", _params(sorted(REJECTIONS)))
def test_bad_token_is_rejected_for_the_right_reason(cases, verdicts, library, case_id):
    case = cases[case_id]
    verdict = _verdict(verdicts, library, case_id, case)
    assert not verdict["valid"], "%s accepted a %s token: %s" % (library, case["kind"], verdict)
    jose_expected, jsonwebtoken_pattern = REJECTIONS[case["kind"]]
    if library == "jose":
        for name, value in jose_expected.items():
            assert verdict[name] == value, verdict
    else:
        assert re.search(jsonwebtoken_pattern, verdict["message"]), verdict
