# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""No private key material, passphrase or no_log token leaks out of the three modules.

A playbook uses jwt_keypair, jwt_token and jwks_publish the way users do (an encrypted RSA
key with a certificate, plain EC and Ed25519 keys, a key replaced with a backup, tokens from a
key file, from private_key_content and from a key in a SoftHSM2 token with its PIN given as
pkcs11_pin, wrong passphrases, a wrong PIN, a PIN written into the URI, a JWKS with a
discovery document).
It runs three times with -vvv --diff: a first run, a check-mode run over its results, and a
check-mode run of the key tasks on an empty directory. Everything is scanned: stdout and stderr of every run,
every registered return value (dumped to JSON files), the JWKS, the discovery document,
the token file and the certificate. Findings are:

- PEM private key blocks (``PRIVATE KEY-----``),
- JWK private members as JSON keys (``"d":``, ``"p":``, ``"q":``, ``"dp":``, ``"dq":``,
  ``"qi":``, ``"oth":``, ``"k":``),
- the passphrase, the token's PIN, the wrong PIN and the PIN written into a URI,
- the private keys themselves: every line of each key file's PEM body, the same keys in other
  PEM forms, and their private numbers (base64url, base64, hex, decimal),
- in the playbook output: any token that a task with ``no_log: true`` produced.

The scanner is checked against planted material first, and a control task without no_log
shows that its token does reach the output, so a clean result means something.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.selfjwt.kyma.plugins.module_utils import _pkcs11
from helpers import ansible_env, collections_path_with_repo, require_ansible_playbook  # pylint: disable=import-error
from tokens import SoftHSMToken, use_token  # pylint: disable=import-error


PLAYBOOK = """\
---
- name: Use every module the way users do, with secrets around
  hosts: edge
  gather_facts: false
  tasks:
    - name: Encrypted RSA key with a self-signed certificate
      selfjwt.kyma.jwt_keypair:
        path: "{{ work }}/rsa.pem"
        type: rsa
        size: 2048
        passphrase: "{{ passphrase }}"
        certificate_path: "{{ work }}/rsa.crt"
      register: rsa_key
      tags: [keys]

    - name: Plain EC key
      selfjwt.kyma.jwt_keypair:
        path: "{{ work }}/ec.pem"
      register: ec_key
      tags: [keys]

    - name: Ed25519 key
      selfjwt.kyma.jwt_keypair:
        path: "{{ work }}/ed.pem"
        type: ed25519
      register: ed_key
      tags: [keys]

    - name: A key that is replaced on every run, with a backup of the old one (the test puts the first one there)
      selfjwt.kyma.jwt_keypair:
        path: "{{ work }}/rotate.pem"
        regenerate: always
        backup: true
      register: rotate_key
      tags: [keys]

    - name: Wrong passphrase for an existing key (must fail and change nothing)
      selfjwt.kyma.jwt_keypair:
        path: "{{ work }}/rsa.pem"
        type: rsa
        size: 2048
        passphrase: "{{ passphrase }}-wrong"
      register: keypair_wrong_passphrase
      ignore_errors: true

    - name: Token from the encrypted key file into a token file
      selfjwt.kyma.jwt_token:
        private_key_path: "{{ work }}/rsa.pem"
        passphrase: "{{ passphrase }}"
        issuer: https://edge.example.com
        subject: edge-01
        audience: orders-api
        jku: http://jwks.example.svc.cluster.local/jwks.json
        expires_in: 3600
        dest: "{{ work }}/token"
      register: token_from_file
      no_log: true

    - name: Token from private_key_content
      selfjwt.kyma.jwt_token:
        private_key_content: "{{ lookup('ansible.builtin.file', work ~ '/ec.pem') }}"
        issuer: https://edge.example.com
        subject: edge-01
        claims:
          scope: orders.read
      register: token_from_content
      no_log: true

    - name: Encrypted key content with a wrong passphrase, without no_log (must fail, and hide both)
      selfjwt.kyma.jwt_token:
        private_key_content: "{{ lookup('ansible.builtin.file', work ~ '/rsa.pem') }}"
        passphrase: "{{ passphrase }}-wrong"
        issuer: https://edge.example.com
        subject: edge-01
      register: token_wrong_passphrase
      ignore_errors: true

    - name: Plain key content without no_log (the token shows up, as a control; the key must not)
      selfjwt.kyma.jwt_token:
        private_key_content: "{{ lookup('ansible.builtin.file', work ~ '/ed.pem') }}"
        issuer: https://edge.example.com
        subject: edge-01
      register: token_control

    - name: Token from a key in a PKCS#11 token, the PIN as an option, without no_log, into a token file
      selfjwt.kyma.jwt_token:
        pkcs11_uri: "{{ hsm_uri }}"
        pkcs11_pin: "{{ hsm_pin }}"
        issuer: https://edge.example.com
        subject: edge-01
        dest: "{{ work }}/hsm-token"
      register: token_from_hsm

    - name: A wrong PIN for the token, without no_log (must fail, and hide the PIN)
      selfjwt.kyma.jwt_token:
        pkcs11_uri: "{{ hsm_uri }}"
        pkcs11_pin: "{{ hsm_wrong_pin }}"
        issuer: https://edge.example.com
        subject: edge-01
      register: token_hsm_wrong_pin
      ignore_errors: true

    - name: A PIN written into the URI, without no_log (must fail, and hide the PIN)
      selfjwt.kyma.jwt_token:
        pkcs11_uri: "{{ hsm_uri }}&pin-value={{ hsm_uri_pin }}"
        issuer: https://edge.example.com
        subject: edge-01
      register: token_hsm_pin_in_uri
      ignore_errors: true

    - name: Publish the JWKS and a discovery document
      selfjwt.kyma.jwks_publish:
        keys:
          - "{{ rsa_key.jwk }}"
          - "{{ ec_key.jwk }}"
          - "{{ ed_key.jwk }}"
          # a PEM public key; in check mode the replacement key does not exist yet
          - "{{ rotate_key.public_key or ec_key.public_key }}"
        dest: "{{ work }}/jwks.json"
        issuer: https://edge.example.com
        jwks_uri: http://jwks.example.svc.cluster.local/jwks.json
        discovery_dest: "{{ work }}/openid-configuration"
      register: published

    - name: Dump every registered return value
      ansible.builtin.copy:
        content: "{{ dump | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      vars:
        dump:
          rsa_key: "{{ rsa_key }}"
          ec_key: "{{ ec_key }}"
          ed_key: "{{ ed_key }}"
          rotate_key: "{{ rotate_key }}"
          keypair_wrong_passphrase: "{{ keypair_wrong_passphrase | default(None) }}"
          token_from_file: "{{ token_from_file | default(None) }}"
          token_from_content: "{{ token_from_content | default(None) }}"
          token_wrong_passphrase: "{{ token_wrong_passphrase | default(None) }}"
          token_control: "{{ token_control | default(None) }}"
          token_from_hsm: "{{ token_from_hsm | default(None) }}"
          token_hsm_wrong_pin: "{{ token_hsm_wrong_pin | default(None) }}"
          token_hsm_pin_in_uri: "{{ token_hsm_pin_in_uri | default(None) }}"
          published: "{{ published | default(None) }}"
      check_mode: false
      diff: false
      no_log: true
      tags: [keys]
"""

#: Registered results whose token must not reach the output (their tasks have no_log: true).
NO_LOG_TOKENS = ("token_from_file", "token_from_content")

PEM_PRIVATE = re.compile(r"PRIVATE KEY-----")
JWK_PRIVATE_MEMBER = re.compile(r'\\*"(d|p|q|dp|dq|qi|oth|k)\\*"\s*:')


# --------------------------------------------------------------------------------------
# The scanner
# --------------------------------------------------------------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value, length=None):
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def _pem_body_lines(pem):
    lines = []
    for line in pem.decode("ascii", "replace").splitlines():
        line = line.strip()
        if len(line) >= 40 and not line.startswith("-----") and ":" not in line:
            lines.append(line)
    return lines


def _public_ders(key):
    public = key.public_key()
    ders = [public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)]
    if isinstance(public, rsa.RSAPublicKey):
        ders.append(public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    return ders


def _secret_lines(pem, public_ders):
    """PEM body lines that hold private bytes. A private key PEM also holds the public key (an RSA
    key's modulus, an EC key's point); lines made of public bytes only are public: they show up in
    public keys and certificates too."""
    lines = []
    for line in _pem_body_lines(pem):
        try:
            raw = base64.b64decode(line, validate=True)
        except ValueError:
            lines.append(line)
            continue
        if not any(raw in der for der in public_ders):
            lines.append(line)
    return lines


def private_needles(pem, passphrase=None):
    """(label, text) pairs that must never show up: the key file's body and the key in other forms."""
    password = passphrase.encode("utf-8") if passphrase and b"ENCRYPTED" in pem else None
    key = serialization.load_pem_private_key(pem, password=password)
    public_ders = _public_ders(key)
    needles = [("PEM body line", line) for line in _secret_lines(pem, public_ders)]
    formats = [("PKCS8", serialization.PrivateFormat.PKCS8)]
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        formats.append(("TraditionalOpenSSL", serialization.PrivateFormat.TraditionalOpenSSL))
    for label, fmt in formats:
        other = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        needles += [("%s PEM body line" % label, line) for line in _secret_lines(other, public_ders)]
    numbers = {}
    if isinstance(key, rsa.RSAPrivateKey):
        private = key.private_numbers()
        numbers = {"d": private.d, "p": private.p, "q": private.q, "dp": private.dmp1, "dq": private.dmq1,
                   "qi": private.iqmp}
        raw = dict((name, _int_bytes(value)) for name, value in numbers.items())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        numbers = {"d": value}
        raw = {"d": _int_bytes(value, (key.curve.key_size + 7) // 8)}
    else:
        raw = {"d": key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())}
        numbers = {"d": int.from_bytes(raw["d"], "big")}
    for name, data in raw.items():
        needles += [
            ("private number %s (base64url)" % name, _b64url(data)),
            ("private number %s (base64)" % name, base64.b64encode(data).decode("ascii").rstrip("=")),
            ("private number %s (hex)" % name, data.hex()),
        ]
        if numbers[name].bit_length() > 128:
            needles.append(("private number %s (decimal)" % name, str(numbers[name])))
    return needles


def scan(text, needles, where):
    """Findings (where, what, excerpt) of private material in ``text``."""
    findings = []
    for pattern, what in ((PEM_PRIVATE, "PEM private key block"), (JWK_PRIVATE_MEMBER, "JWK private member")):
        for match in pattern.finditer(text):
            findings.append((where, what, text[max(0, match.start() - 60):match.end() + 20]))
    lowered = text.lower()
    for label, needle in needles:
        haystack = lowered if label.endswith("(hex)") else text
        index = haystack.find(needle.lower() if label.endswith("(hex)") else needle)
        if index >= 0:
            findings.append((where, label, text[max(0, index - 40):index + 40]))
    return findings


# --------------------------------------------------------------------------------------
# The scanner finds what it must (self-check)
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return {"key": key, "pem": pem, "needles": private_needles(pem) + [("passphrase", "pp-planted-123")]}


@pytest.mark.parametrize("text, expected", [
    ("-----BEGIN PRIVATE KEY-----", "PEM private key block"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "PEM private key block"),
    ("-----BEGIN RSA PRIVATE KEY-----", "PEM private key block"),
    ('{"kty": "EC", "d": "abc"}', "JWK private member"),
    ('"msg": "{\\"qi\\": \\"abc\\"}"', "JWK private member"),
    ('{"dp":"x"}', "JWK private member"),
    ('{"k": "c2VjcmV0"}', "JWK private member"),
    ("the passphrase is pp-planted-123, oops", "passphrase"),
])
def test_scanner_detects_planted_material(planted, text, expected):
    findings = scan("log line\n%s\nmore log" % text, planted["needles"], "planted")
    assert expected in [what for _where, what, _excerpt in findings]


def test_scanner_detects_the_key_body_and_numbers(planted):
    body_lines = _pem_body_lines(planted["pem"])
    assert any(scan("x %s y" % line, planted["needles"], "planted") for line in body_lines)
    # The private key file itself is full of findings.
    assert len(scan(planted["pem"].decode("ascii"), planted["needles"], "planted")) >= 2
    # A key file's content escaped into JSON (as -vvv would print it) is found.
    escaped = json.dumps({"content": planted["pem"].decode("ascii").replace("-----", "")})
    assert any(what == "PEM body line" for _w, what, _e in scan(escaped, planted["needles"], "planted"))
    # The private scalar as a JWK would carry it, but under an innocent name.
    d = planted["key"].private_numbers().private_value
    assert scan('{"secret": "%s"}' % _b64url(_int_bytes(d, 32)), planted["needles"], "planted")
    assert scan("%x" % d, planted["needles"], "planted") or len("%x" % d) < 64
    assert scan(str(d), planted["needles"], "planted")


def test_rsa_modulus_lines_are_not_needles():
    """An RSA private key PEM carries the modulus; lines of it alone are public and not findings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    needles = private_needles(pem)
    all_lines = _pem_body_lines(pem)
    secret = _secret_lines(pem, _public_ders(key))
    assert 0 < len(secret) < len(all_lines)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # Public forms at every base64 alignment produce no finding ...
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + spki).decode("ascii")
        assert scan(text, needles, "public") == []
    # ... while every secret line is one.
    for line in secret:
        assert scan(line, needles, "private")


def test_scanner_is_quiet_on_public_material(planted):
    public = planted["key"].public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    text = public.decode("ascii") + json.dumps({"kty": "EC", "crv": "P-256", "x": "abc", "y": "def", "kid": "k1",
                                                "dst": 1, "key": "value"})
    assert scan(text, planted["needles"], "public") == []


# --------------------------------------------------------------------------------------
# The playbook runs
# --------------------------------------------------------------------------------------

def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("leaks"))
    work = os.path.join(root, "work")
    fresh = os.path.join(root, "fresh")
    results = os.path.join(root, "results")
    for path in (work, fresh, results):
        os.makedirs(path)
    passphrase = "pp-%s" % secrets.token_hex(12)
    with open(os.path.join(root, "inventory.ini"), "w") as handle:
        handle.write("[edge]\nedge-01 ansible_connection=local "
                     "ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n")
    with open(os.path.join(root, "playbook.yml"), "w") as handle:
        handle.write(PLAYBOOK)
    # A SoftHSM2 token (outside the scanned directories) with an EC key, and the PINs of the playbook.
    pins = {"hsm_pin": "pin-%s" % secrets.token_hex(10), "hsm_wrong_pin": "wrong-pin-%s" % secrets.token_hex(10),
            "hsm_uri_pin": "uri-pin-%s" % secrets.token_hex(10)}
    hsm = SoftHSMToken(os.path.join(root, "hsm"), pin=pins["hsm_pin"])
    with pytest.MonkeyPatch.context() as patch:
        use_token(patch, hsm)
        with _pkcs11.open_session(_pkcs11.parse_uri(hsm.uri("jwt-signing")), hsm.pin, write=True) as session:
            session.generate("ec", curve="P-256")
    env = ansible_env(collections_path_with_repo(os.path.join(root, "collections")), os.path.join(root, "ansible-local"),
                      os.path.join(root, "ansible-remote"), ANSIBLE_PIPELINING="1")
    env.update(hsm.env)
    playbook = require_ansible_playbook()

    def run(name, directory, *extra):
        variables = dict(pins, work=directory, passphrase=passphrase, hsm_uri=hsm.uri("jwt-signing"),
                         result_file=os.path.join(results, "%s.json" % name))
        vars_file = os.path.join(root, "vars-%s.json" % name)
        with open(vars_file, "w") as handle:
            json.dump(variables, handle)
        start = time.monotonic()
        proc = subprocess.run([playbook, "-i", "inventory.ini", "playbook.yml", "-e", "@" + vars_file,
                               "-vvv", "--diff"] + list(extra),
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=600, check=False)
        print("%s: %.1f s" % (name, time.monotonic() - start))
        assert proc.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (
            name, proc.returncode, proc.stdout[-5000:], proc.stderr[-3000:])
        with open(variables["result_file"]) as handle:
            returned = json.load(handle)
        os.unlink(vars_file)
        return {"name": name, "stdout": proc.stdout, "stderr": proc.stderr, "returned": returned,
                "result_text": json.dumps(returned, indent=1)}

    # The key that the first run replaces (and backs up).
    old_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(os.path.join(work, "rotate.pem"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(old_key)

    def hashes():
        return dict((name, _sha256(os.path.join(work, name))) for name in ("rsa.pem", "ec.pem", "ed.pem", "rotate.pem"))

    done = {}
    done["first"] = run("first", work)
    after_first = hashes()
    done["check"] = run("check", work, "--check")
    after_check = hashes()
    done["check-fresh"] = run("check-fresh", fresh, "--check", "--tags", "keys")
    return {"root": root, "work": work, "fresh": fresh, "passphrase": passphrase, "runs": done,
            "old_key": old_key, "hashes": {"first": after_first, "check": after_check}, "pins": pins}


def _private_files(directory):
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                if PEM_PRIVATE.search(handle.read().decode("latin-1")):
                    found.append(path)
    return found


@pytest.fixture(scope="module")
def needles(runs):
    result = [("passphrase", runs["passphrase"])] + sorted(runs["pins"].items())
    key_files = _private_files(runs["work"])
    # rsa, ec, ed, rotate and the backup of the key that rotate replaced
    assert len(key_files) == 5, key_files
    for path in key_files:
        with open(path, "rb") as handle:
            result += [("%s: %s" % (os.path.basename(path), label), text)
                       for label, text in private_needles(handle.read(), runs["passphrase"])]
    return result


def _all_texts(runs):
    """(where, text) of everything that is not a private key file."""
    texts = []
    for name, run in runs["runs"].items():
        texts += [("%s run stdout" % name, run["stdout"]), ("%s run stderr" % name, run["stderr"]),
                  ("%s run return values" % name, run["result_text"])]
    private = set(_private_files(runs["work"]) + _private_files(runs["fresh"]))
    for directory in (runs["work"], runs["fresh"]):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if os.path.isfile(path) and path not in private:
                with open(path, "rb") as handle:
                    texts.append((path, handle.read().decode("utf-8", "replace")))
    return texts


# --------------------------------------------------------------------------------------
# The findings
# --------------------------------------------------------------------------------------

def test_the_playbook_did_what_the_scan_relies_on(runs):
    first = runs["runs"]["first"]["returned"]
    assert first["rsa_key"]["changed"] and first["rsa_key"]["certificate"]
    assert first["token_from_file"]["token"] and first["token_from_content"]["token"]
    assert first["token_control"]["token"]
    assert first["keypair_wrong_passphrase"]["failed"]
    assert "passphrase" in first["keypair_wrong_passphrase"]["msg"]
    assert first["token_wrong_passphrase"]["failed"]
    assert "passphrase" in first["token_wrong_passphrase"]["msg"]
    assert len(first["published"]["kids"]) == 4
    assert first["token_from_hsm"]["changed"] and first["token_from_hsm"]["token"]
    assert first["token_hsm_wrong_pin"]["failed"] and "refused the PIN" in first["token_hsm_wrong_pin"]["msg"]
    assert first["token_hsm_pin_in_uri"]["failed"]
    assert "carries the PIN (pin-value)" in first["token_hsm_pin_in_uri"]["msg"]
    check = runs["runs"]["check"]["returned"]
    assert check["token_from_hsm"]["changed"] is False and check["token_hsm_wrong_pin"]["failed"]
    for name in ("jwks.json", "openid-configuration", "token", "rsa.crt"):
        assert os.path.isfile(os.path.join(runs["work"], name)), name
    # -vvv really was on: module invocations are printed.
    assert '"invocation"' in runs["runs"]["first"]["stdout"]


@pytest.mark.parametrize("run_name", ["first", "check", "check-fresh"])
def test_no_private_material_in_run_output(runs, needles, run_name):
    run = runs["runs"][run_name]
    findings = []
    for where, text in (("stdout", run["stdout"]), ("stderr", run["stderr"]), ("return values", run["result_text"])):
        findings += scan(text, needles, "%s %s" % (run_name, where))
    assert findings == []


def test_no_private_material_in_written_files(runs, needles):
    findings = []
    texts = [(where, text) for where, text in _all_texts(runs) if where.startswith("/")]
    assert len(texts) >= 5, [where for where, _text in texts]
    for where, text in texts:
        findings += scan(text, needles, where)
    assert findings == []


@pytest.mark.parametrize("run_name", ["first", "check"])
def test_no_log_tokens_stay_out_of_the_output(runs, run_name):
    run = runs["runs"][run_name]
    output = run["stdout"] + run["stderr"]
    for name in NO_LOG_TOKENS:
        token = run["returned"][name]["token"]
        signature = token.rsplit(".", 1)[1]
        assert token not in output, "%s's token is in the %s run output" % (name, run_name)
        assert signature not in output, "%s's token signature is in the %s run output" % (name, run_name)


def test_control_token_does_reach_the_output(runs):
    """Without no_log the module's token is printed: the output the test scans is the real one."""
    run = runs["runs"]["first"]
    assert run["returned"]["token_control"]["token"] in run["stdout"]


def test_passphrase_is_masked_in_invocations(runs):
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in runs["runs"]["first"]["stdout"]


def test_private_files_are_0600(runs):
    files = _private_files(runs["work"]) + [os.path.join(runs["work"], "token")]
    assert len(files) == 6
    for path in files:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600", path


def test_fresh_check_mode_writes_no_key(runs):
    assert _private_files(runs["fresh"]) == []


def test_keys_unchanged_by_check_mode_and_wrong_passphrases(runs):
    assert runs["hashes"]["first"] == runs["hashes"]["check"]


def test_replaced_key_was_backed_up(runs):
    """The backup holds the old key (so the scan above covered a backup file too)."""
    backups = [path for path in _private_files(runs["work"]) if os.path.basename(path).startswith("rotate.pem.")]
    assert len(backups) == 1, backups
    with open(backups[0], "rb") as handle:
        assert handle.read() == runs["old_key"]
    assert runs["runs"]["first"]["returned"]["rotate_key"]["backup_file"] == backups[0]


# --------------------------------------------------------------------------------------
# What the target's syslog receives: private keys given where they do not belong
# --------------------------------------------------------------------------------------
#
# AnsibleModule logs its arguments ("Invoked with ...") to syslog through /dev/log (the
# journal when the systemd bindings are installed; the test's interpreter has none). The
# playbook below gives the modules private keys in every form an argument can take; it runs
# in a private mount namespace (unshare --mount) whose /dev is the real /dev entries bound
# into a directory that also holds the test's own /dev/log, a Unix datagram socket. The
# host's /dev and its syslog stay untouched, and the test hears everything the modules log.

SYSLOG_PLAYBOOK = """\
---
- name: Private keys where public keys or paths belong, in every form
  hosts: edge
  gather_facts: false
  tasks:
    - name: jwks_publish, keys as a list with a private JWK
      selfjwt.kyma.jwks_publish:
        keys: [{public_jwk}, {private_jwk}]
      register: form_list
      ignore_errors: true

    - name: jwks_publish, keys as one private JWK (a dict)
      selfjwt.kyma.jwks_publish:
        keys: {private_jwk}
      register: form_dict
      ignore_errors: true

    - name: jwks_publish, keys as the JSON text of a private JWK
      selfjwt.kyma.jwks_publish:
        keys: '{private_jwk_json}'
      register: form_json
      ignore_errors: true

    - name: jwks_publish, keys as the JSON text of a list with a private RSA JWK
      selfjwt.kyma.jwks_publish:
        keys: '{private_list_json}'
      register: form_json_list
      ignore_errors: true

    - name: jwks_publish, keys as a PEM private key text
      selfjwt.kyma.jwks_publish:
        keys: |
{private_pem_block}
      register: form_pem
      ignore_errors: true

    - name: jwks_publish, current holds a private JWKS
      selfjwt.kyma.jwks_publish:
        keys: [{public_jwk}]
        current: '{private_jwks_json}'
        merge: true
      register: form_current
      ignore_errors: true

    - name: jwt_token, a PEM private key text where its path belongs
      selfjwt.kyma.jwt_token:
        private_key_path: |
{private_pem_block}
        issuer: https://edge.example.com
        subject: edge-01
      register: token_pem_as_path
      ignore_errors: true

    - name: jwt_keypair, the passphrase in a list (with the newline a passphrase file leaves)
      selfjwt.kyma.jwt_keypair:
        path: "{{{{ work }}}}/encrypted.pem"
        passphrase: ["{{{{ passphrase }}}}\\n"]
      register: keypair_passphrase_list
      ignore_errors: true

    - name: Dump the registered results
      ansible.builtin.copy:
        content: "{{{{ dump | to_nice_json }}}}"
        dest: "{{{{ result_file }}}}"
        mode: "0600"
      vars:
        dump:
          form_list: "{{{{ form_list }}}}"
          form_dict: "{{{{ form_dict }}}}"
          form_json: "{{{{ form_json }}}}"
          form_json_list: "{{{{ form_json_list }}}}"
          form_pem: "{{{{ form_pem }}}}"
          form_current: "{{{{ form_current }}}}"
          token_pem_as_path: "{{{{ token_pem_as_path }}}}"
          keypair_passphrase_list: "{{{{ keypair_passphrase_list }}}}"
      no_log: true
"""

#: Run in the private mount namespace: bind every /dev entry into the prepared directory
#: (which already holds the listening socket "log"), put that directory over /dev, run argv.
NAMESPACE_INIT = r"""
import os, subprocess, sys
dev, argv = sys.argv[1], sys.argv[2:]
for name in sorted(os.listdir("/dev")):
    source, target = os.path.join("/dev", name), os.path.join(dev, name)
    if name == "log" or os.path.lexists(target):
        continue
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
        continue
    if os.path.isdir(source):
        os.mkdir(target)
    else:
        open(target, "a").close()
    subprocess.check_call(["mount", "--rbind", source, target])
subprocess.check_call(["mount", "--rbind", dev, "/dev"])
os.execvp(argv[0], argv)
"""


def _b64url_int(value, length=None):
    return _b64url(_int_bytes(value, length))


def _private_jwks():
    """(EC private JWK, RSA private JWK, their private values) for the syslog test."""
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk  # pylint: disable=import-outside-toplevel

    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = dict(_jwk.public_jwk(ec_key), d=_b64url_int(ec_key.private_numbers().private_value, 32))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = rsa_key.private_numbers()
    rsa_jwk = dict(_jwk.public_jwk(rsa_key), d=_b64url_int(numbers.d), p=_b64url_int(numbers.p),
                   q=_b64url_int(numbers.q), dp=_b64url_int(numbers.dmp1), dq=_b64url_int(numbers.dmq1),
                   qi=_b64url_int(numbers.iqmp))
    values = [("EC JWK d", ec_jwk["d"])]
    values += [("RSA JWK %s" % name, rsa_jwk[name]) for name in ("d", "p", "q", "dp", "dq", "qi")]
    return ec_jwk, rsa_jwk, values


def _mount_namespace_problem():
    """Why a private mount namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "a private mount namespace with its own /dev/log needs root (CAP_SYS_ADMIN)"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "unshare(1) or mount(8) is not installed"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode != 0:
        return "unshare --mount failed: %s" % proc.stderr.strip()
    return None


class SyslogListener(object):
    """A Unix datagram socket that collects what syslog(3) sends to it, in a thread."""

    def __init__(self, path):
        self.messages = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._receive)
        self.thread.daemon = True
        self.thread.start()

    def _receive(self):
        while True:
            try:
                self.messages.append(self.sock.recv(1 << 20).decode("utf-8", "replace"))
            except socket.timeout:
                if self.stopping.is_set():
                    return

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.sock.close()
        return self.messages


@pytest.fixture(scope="module")
def syslog_run(tmp_path_factory):
    problem = _mount_namespace_problem()
    if problem:
        pytest.skip("cannot listen on the target's /dev/log: %s" % problem)
    root = str(tmp_path_factory.mktemp("syslog"))
    work = os.path.join(root, "work")
    dev = os.path.join(root, "dev")
    os.makedirs(work)
    os.makedirs(dev)
    passphrase = "pp-%s" % secrets.token_hex(12)
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"another passphrase"))
    fd = os.open(os.path.join(work, "encrypted.pem"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(encrypted)
    ec_jwk, rsa_jwk, private_values = _private_jwks()
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    public_jwk = dict((name, value) for name, value in rsa_jwk.items() if name in ("kty", "kid", "n", "e"))
    public_jwk["kid"] = "public-one"
    playbook = SYSLOG_PLAYBOOK.format(
        public_jwk=json.dumps(dict((name, value) for name, value in ec_jwk.items() if name != "d")),
        private_jwk=json.dumps(ec_jwk), private_jwk_json=json.dumps(ec_jwk),
        private_list_json=json.dumps([public_jwk, rsa_jwk]), private_jwks_json=json.dumps({"keys": [rsa_jwk]}),
        private_pem_block="".join("          %s\n" % line for line in pem.decode("ascii").splitlines()).rstrip("\n"))
    with open(os.path.join(root, "playbook.yml"), "w") as handle:
        handle.write(playbook)
    with open(os.path.join(root, "inventory.ini"), "w") as handle:
        handle.write("[edge]\nedge-01 ansible_connection=local "
                     "ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n")
    result_file = os.path.join(root, "results.json")
    with open(os.path.join(root, "vars.json"), "w") as handle:
        json.dump({"work": work, "passphrase": passphrase, "result_file": result_file}, handle)
    env = ansible_env(collections_path_with_repo(os.path.join(root, "collections")), os.path.join(root, "ansible-local"),
                      os.path.join(root, "ansible-remote"))
    listener = SyslogListener(os.path.join(dev, "log"))
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", NAMESPACE_INIT, dev,
             require_ansible_playbook(), "-i", "inventory.ini", "playbook.yml", "-e", "@vars.json", "-vvv"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
            timeout=600, check=False)
    finally:
        messages = listener.close()
    assert proc.returncode == 0, "the playbook failed (rc=%d):\n%s\n%s" % (
        proc.returncode, proc.stdout[-5000:], proc.stderr[-3000:])
    with open(result_file) as handle:
        returned = json.load(handle)
    needles = list(private_values) + [("passphrase", passphrase)]
    needles += [("PEM key: %s" % label, text) for label, text in private_needles(pem)]
    return {"messages": messages, "stdout": proc.stdout, "stderr": proc.stderr, "returned": returned,
            "needles": needles}


def _invoked(messages, module):
    """The "Invoked with" messages of ``module``, in the order of the tasks."""
    marker = "ansible-selfjwt.kyma.%s: Invoked with " % module
    return [message.split(marker, 1)[1] for message in messages if marker in message]


def test_syslog_listener_hears_every_module_invocation(syslog_run):
    """The test's /dev/log is where the modules log: each task's invocation arrived there."""
    messages = syslog_run["messages"]
    assert len(_invoked(messages, "jwks_publish")) == 6, messages
    assert len(_invoked(messages, "jwt_token")) == 1 and len(_invoked(messages, "jwt_keypair")) == 1


def test_each_form_reached_the_module_as_given_and_was_refused(syslog_run):
    """Each task gave the option in its own form (the log shows its Python form) and was refused."""
    returned = syslog_run["returned"]
    expected = [
        ("form_list", "keys=[{'", "keys[1] contains private or secret key material (d)"),
        ("form_dict", "keys={'", "keys[0] contains private or secret key material (d)"),
        ("form_json", 'keys={"', "keys[0] contains private or secret key material (d)"),
        ("form_json_list", 'keys=[{"', "keys[1] contains private or secret key material (d, dp, dq, p, q, qi)"),
        ("form_pem", "keys=", "keys[0] is a private key"),
        ("form_current", "keys=[{'", "holds private key material (members d, dp, dq, p, q, qi), so it cannot be"),
    ]
    logged = _invoked(syslog_run["messages"], "jwks_publish")
    for (name, form, message), invocation in zip(expected, logged):
        keys = re.search(r"(?:^| )(keys=.*)", invocation).group(1)
        assert keys.startswith(form), (name, keys[:80])
        result = returned[name]
        assert result["failed"] is True and message in result["msg"], (name, result["msg"])
    assert 'current={"keys": [{' in logged[5]
    assert returned["token_pem_as_path"]["failed"] and "holds a PEM private key, not a path" in returned["token_pem_as_path"]["msg"]
    assert returned["keypair_passphrase_list"]["failed"]
    assert "could not be decrypted" in returned["keypair_passphrase_list"]["msg"]


def test_no_private_value_reaches_syslog(syslog_run):
    findings = []
    for message in syslog_run["messages"]:
        findings += [finding for finding in scan(message, syslog_run["needles"], "syslog")
                     if finding[1] != "JWK private member"]
    assert findings == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_no_private_value_in_the_vvv_output(syslog_run, stream):
    """-vvv prints every result with its invocation; the member names may show, never their values."""
    assert '"invocation"' in syslog_run["stdout"]
    findings = [finding for finding in scan(syslog_run[stream], syslog_run["needles"], stream)
                if finding[1] != "JWK private member"]
    assert findings == []


def test_no_private_value_in_the_returned_invocations(syslog_run):
    text = json.dumps(syslog_run["returned"])
    assert [finding for finding in scan(text, syslog_run["needles"], "results")
            if finding[1] != "JWK private member"] == []
