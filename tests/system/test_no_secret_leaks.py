# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""No private key material, passphrase or no_log token leaks out of the three modules.

A playbook uses jwt_keypair, jwt_token and jwks_publish the way users do (an encrypted RSA
key with a certificate, plain EC and Ed25519 keys, a key replaced with a backup, tokens from a
key file and from private_key_content, wrong passphrases, a JWKS with a discovery document).
It runs three times with -vvv --diff: a first run, a check-mode run over its results, and a
check-mode run of the key tasks on an empty directory. Everything is scanned: stdout and stderr of every run,
every registered return value (dumped to JSON files), the JWKS, the discovery document,
the token file and the certificate. Findings are:

- PEM private key blocks (``PRIVATE KEY-----``),
- JWK private members as JSON keys (``"d":``, ``"p":``, ``"q":``, ``"dp":``, ``"dq":``,
  ``"qi":``, ``"oth":``, ``"k":``),
- the passphrase,
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
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from helpers import collections_path_with_repo, require_ansible_playbook  # pylint: disable=import-error


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
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path_with_repo(os.path.join(root, "collections")),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCAL_TEMP": os.path.join(root, "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(root, "ansible-remote"),
    })
    playbook = require_ansible_playbook()

    def run(name, directory, *extra):
        variables = {"work": directory, "passphrase": passphrase,
                     "result_file": os.path.join(results, "%s.json" % name)}
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
            "old_key": old_key, "hashes": {"first": after_first, "check": after_check}}


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
    result = [("passphrase", runs["passphrase"])]
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
