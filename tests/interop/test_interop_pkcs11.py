# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Interoperability of tokens signed inside a PKCS#11 token (SoftHSM2): Node.js `jose` and
`jsonwebtoken` + `jwks-rsa` verify them against a JWKS served over HTTP.

The key pairs (EC P-256 for ES256, RSA-2048 for RS256 and for PS256, Ed25519 for EdDSA) are
generated in a SoftHSM2 token as non-extractable objects; an ansible-playbook run mints one
token per key with selfjwt.kyma.jwt_token (pkcs11_uri, pkcs11_pin_file) and publishes their
public JWKs with selfjwt.kyma.jwks_publish. The JWS signatures come from the token (ECDSA as
raw r||s, RSASSA-PKCS1-v1_5, RSASSA-PSS, Ed25519).

Both libraries must accept every token, and must reject the same token with one flipped
signature bit, and against a JWKS that names the same kids with other public keys of the same
type (so a token is accepted only for the key that signed it). jsonwebtoken 9.0.3 has no EdDSA
at all: those cases are strict xfails, as in test_interop.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import http.server
import json
import os
import re
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _pkcs11
from helpers import require_ansible_playbook  # pylint: disable=import-error
from test_interop import (  # pylint: disable=import-error
    HERE, JSONWEBTOKEN_NO_EDDSA, LibraryLacksEdDSA, _QuietHandler, _tamper_signature, interop_env, node_executable)
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error

ISSUER = "https://edge-hsm.example.com"
AUDIENCE = "orders-api"
PIN = "pin-a6f03e5d-interop"

#: host -> (key generation arguments, algorithm)
HSM_HOSTS = {
    "hsm-es256": ({"key_type": "ec", "curve": "P-256"}, "ES256"),
    "hsm-rs256": ({"key_type": "rsa", "size": 2048}, "RS256"),
    "hsm-ps256": ({"key_type": "rsa", "size": 2048}, "PS256"),
    "hsm-eddsa": ({"key_type": "ed25519"}, "EdDSA"),
}
ALGORITHMS = sorted(set(algorithm for _generate, algorithm in HSM_HOSTS.values()))
VERIFIERS = {"jose": "verify_jose.mjs", "jsonwebtoken": "verify_jsonwebtoken.js"}

PLAYBOOK = """\
---
- name: Mint a token with each key in the SoftHSM2 token
  hosts: hsm
  gather_facts: false
  tasks:
    - name: Mint the token through PKCS#11
      selfjwt.kyma.jwt_token:
        pkcs11_uri: "{{ key_uri }}"
        pkcs11_pin_file: "{{ pin_file }}"
        algorithm: "{{ key_alg }}"
        issuer: "{{ issuer }}"
        subject: "{{ inventory_hostname }}"
        audience: "{{ audience }}"
        jku: "{{ jwks_url }}"
        expires_in: 3600
      register: minted
      no_log: true

- name: Publish the public keys
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the JWKS
      selfjwt.kyma.jwks_publish:
        keys: "{{ public_jwks }}"
        dest: "{{ publish_dir }}/jwks.json"

    - name: Hand the tokens to the test
      ansible.builtin.copy:
        content: "{{ dict(groups['hsm'] | zip(groups['hsm'] | map('extract', hostvars, 'minted'))) | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      no_log: true
"""


def _other_key(public):
    """A software key of the same type as ``public`` (never published with the token keys' own kids)."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public.curve).public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return rsa.generate_private_key(public_exponent=65537, key_size=public.key_size).public_key()
    return ed25519.Ed25519PrivateKey.generate().public_key()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("interop-hsm"))
    for name in ("publish", "publish/wrong", "results"):
        os.makedirs(os.path.join(root, name))
    return root


@pytest.fixture(scope="module")
def jwks_server(workdir):
    """Serve the publish directory (the JWKS and the wrong one) on 127.0.0.1, a free port."""
    requests = []
    handler_class = type("Handler", (_QuietHandler,), {"requests": requests})
    handler = functools.partial(handler_class, directory=os.path.join(workdir, "publish"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="jwks-server-hsm", daemon=True)
    thread.start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        yield {"url": base + "/jwks.json", "wrong_url": base + "/wrong/jwks.json", "requests": requests}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def hsm_fleet(workdir, jwks_server):
    """Keys in a SoftHSM2 token, tokens minted by ansible-playbook, the JWKS and a JWKS with the wrong keys."""
    token = SoftHSMToken(os.path.join(workdir, "hsm"), pin=PIN)
    pin_file = token.pin_file(os.path.join(workdir, "pin"))
    hosts, public_jwks, wrong_jwks = {}, [], []
    with pytest.MonkeyPatch.context() as patch:
        use_token(patch, token)
        for host, (generate, algorithm) in sorted(HSM_HOSTS.items()):
            with _pkcs11.open_session(_pkcs11.parse_uri(token.uri(host)), PIN, write=True) as session:
                key = session.generate(**generate)
                public = key.public_key()
                assert key.facts()["extractable"] is False
            jwk = _jwk.public_jwk(public, algorithm=algorithm)
            public_jwks.append(jwk)
            wrong_jwks.append(_jwk.public_jwk(_other_key(public), kid=jwk["kid"], algorithm=algorithm))
            hosts[host] = {"key_uri": token.uri(host), "key_alg": algorithm, "pin_file": pin_file,
                           "ansible_connection": "local",
                           "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    with open(os.path.join(workdir, "publish", "wrong", "jwks.json"), "w") as handle:
        json.dump({"keys": wrong_jwks}, handle)
    inventory = {"all": {"children": {"hsm": {"hosts": hosts}},
                         "hosts": {"localhost": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
    with open(os.path.join(workdir, "inventory.yml"), "w") as handle:
        json.dump(inventory, handle)
    with open(os.path.join(workdir, "playbook.yml"), "w") as handle:
        handle.write(PLAYBOOK)
    result_file = os.path.join(workdir, "results", "tokens.json")
    with open(os.path.join(workdir, "vars.json"), "w") as handle:
        json.dump({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_server["url"], "public_jwks": public_jwks,
                   "publish_dir": os.path.join(workdir, "publish"), "result_file": result_file}, handle)
    env = dict(interop_env(workdir), **token.env)
    proc = subprocess.run([require_ansible_playbook(), "-i", "inventory.yml", "playbook.yml", "-e", "@vars.json"],
                          cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, "ansible-playbook failed (rc=%d):\n%s" % (proc.returncode, proc.stdout[-6000:])
    assert PIN not in proc.stdout
    with open(result_file) as handle:
        minted = json.load(handle)
    with open(os.path.join(workdir, "publish", "jwks.json")) as handle:
        jwks = json.load(handle)
    return {"minted": minted, "jwks": jwks, "public_jwks": public_jwks}


@pytest.fixture(scope="module")
def cases(hsm_fleet):
    result = {}
    for host, (_generate, algorithm) in HSM_HOSTS.items():
        good = hsm_fleet["minted"][host]["token"]
        result["valid-%s" % host] = {"token": good, "host": host, "alg": algorithm}
        result["tampered_signature-%s" % host] = {"token": _tamper_signature(good), "host": host, "alg": algorithm}
    return result


def _run_verifier(script, jwks_url, cases):
    batch = {"jwks_url": jwks_url, "cases": [
        {"id": case_id, "token": case["token"], "issuer": ISSUER, "audience": AUDIENCE, "algorithms": ALGORITHMS}
        for case_id, case in sorted(cases.items())]}
    proc = subprocess.run([node_executable(), os.path.join(HERE, script), "--batch"], cwd=HERE,
                          input=json.dumps(batch), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, check=False)
    assert proc.returncode == 0, "%s failed (rc=%d): %s" % (script, proc.returncode, proc.stderr)
    return json.loads(proc.stdout)["results"]


@pytest.fixture(scope="module")
def verdicts(cases, jwks_server):
    """library -> {"right": {case id: verdict}, "wrong": {...}}: against the JWKS and against the wrong one."""
    valid = dict((case_id, case) for case_id, case in cases.items() if case_id.startswith("valid-"))
    return dict((library, {"right": _run_verifier(script, jwks_server["url"], cases),
                           "wrong": _run_verifier(script, jwks_server["wrong_url"], valid)})
                for library, script in VERIFIERS.items())


_NO_EDDSA = pytest.mark.xfail(
    strict=True, raises=LibraryLacksEdDSA,
    reason='jsonwebtoken 9.0.3 does not support EdDSA (it refuses Ed25519 keys with \'Unknown key type "ed25519".\')')


def _params():
    params = []
    for library in VERIFIERS:
        for host in sorted(HSM_HOSTS):
            marks = [_NO_EDDSA] if library == "jsonwebtoken" and HSM_HOSTS[host][1] == "EdDSA" else []
            params.append(pytest.param(library, host, marks=marks, id="%s-%s" % (library, host)))
    return params


def _verdict(verdicts, library, which, case_id, algorithm):
    verdict = verdicts[library][which][case_id]
    if library == "jsonwebtoken" and algorithm == "EdDSA" and not verdict["valid"] \
            and JSONWEBTOKEN_NO_EDDSA.search(verdict["message"]):
        raise LibraryLacksEdDSA(verdict["message"])
    return verdict


def test_the_jwks_holds_the_public_keys_of_the_token(hsm_fleet):
    def by_kid(jwks):
        return sorted(jwks, key=lambda jwk: jwk["kid"])
    assert by_kid(hsm_fleet["jwks"]["keys"]) == by_kid(hsm_fleet["public_jwks"])
    for host, (_generate, algorithm) in HSM_HOSTS.items():
        minted = hsm_fleet["minted"][host]
        assert minted["header"]["alg"] == algorithm
        assert minted["kid"] in [jwk["kid"] for jwk in hsm_fleet["public_jwks"]]


@pytest.mark.parametrize("library, host", _params())
def test_a_token_signed_in_the_token_verifies(hsm_fleet, cases, verdicts, library, host):
    case_id = "valid-%s" % host
    verdict = _verdict(verdicts, library, "right", case_id, HSM_HOSTS[host][1])
    assert verdict["valid"], verdict
    minted = hsm_fleet["minted"][host]
    assert verdict["claims"] == minted["claims"] and verdict["header"] == minted["header"]
    assert verdict["header"]["alg"] == HSM_HOSTS[host][1]


@pytest.mark.parametrize("library, host", _params())
def test_a_flipped_signature_bit_is_rejected(cases, verdicts, library, host):
    verdict = _verdict(verdicts, library, "right", "tampered_signature-%s" % host, HSM_HOSTS[host][1])
    assert not verdict["valid"], verdict
    if library == "jose":
        assert verdict["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", verdict
    else:
        assert re.search(r"^invalid signature$", verdict["message"]), verdict


@pytest.mark.parametrize("library, host", _params())
def test_another_public_key_under_the_same_kid_is_rejected(cases, verdicts, library, host):
    verdict = _verdict(verdicts, library, "wrong", "valid-%s" % host, HSM_HOSTS[host][1])
    assert not verdict["valid"], verdict
    if library == "jose":
        assert verdict["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", verdict
    else:
        assert re.search(r"^invalid signature$", verdict["message"]), verdict
