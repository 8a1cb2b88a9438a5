# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input matrix: every option of the three modules, fed what users get wrong.

Each case runs a module's ``main()`` in-process (as Ansible runs it) inside a populated
directory tree: keys of every kind (good, encrypted, weak, unsupported, damaged), a JWKS, a
token file and files that are not what a module expects. Every case must

* fail (``failed: true``, non-zero exit),
* say what to fix (each case names a substring of the message it needs),
* show no traceback (neither in stdout nor in stderr, and no ``exception`` member),
* leave the tree as it was: every existing file byte-identical with the same mode and
  owner, and nothing new except an empty ``.<name>.lock`` file (the lock of ``_files``),
* never echo a passphrase, private key material or a planted private JWK member.

The tables complement the per-module tables in test_jwt_keypair.py, test_jwt_token.py and
test_jwks_publish.py (those check the common refusals; this file covers every option, the
file system cases and the key zoo). ``test_every_option_has_a_case`` keeps the matrix
complete when an option is added.

The tests run as root here, and root reads files with mode 000; unreadable paths are
therefore simulated with what root cannot read either: a directory where a file is
expected, a path below a regular file, a path with a NUL byte and a name that is too long.
tests/system/test_fault_processes.py covers real permission errors with a process
that drops its privileges.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import sys
import traceback

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x25519

from ansible_collections.selfjwt.kyma.plugins.module_utils import _certificates, _jose, _jwk, _jwks, _keyring, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _token
from ansible_collections.selfjwt.kyma.plugins.modules import (jwks_publish, jwt_keypair, jwt_keyring, jwt_token,
                                                              token_refresher)
from helpers import tree_state  # pylint: disable=import-error

ISSUER = "https://edge.example.com"
JWKS_URI = "http://edge-jwks.default.svc.cluster.local/jwks.json"
PASSPHRASE = "matrix passphrase 0b7d41e2c9"
#: The passphrase as a percent-encoded PIN in a URI (pin-value).
PASSPHRASE_PCT = PASSPHRASE.replace(" ", "%20")
#: A planted private JWK member value: it must never be echoed.
SECRET = "c2VjcmV0LXByaXZhdGUtbWVtYmVyLXZhbHVlLTRkOWE"
TRACEBACK = "Traceback (most recent call last)"
PEM_PRIVATE = re.compile(r"PRIVATE KEY-----")

MODULES = {"jwt_keypair": jwt_keypair, "jwt_token": jwt_token, "jwks_publish": jwks_publish,
           "jwt_keyring": jwt_keyring, "token_refresher": token_refresher}
BASE_ARGS = {
    "jwt_keypair": {"path": "{t}/keys/new.pem"},
    "jwt_token": {"private_key_path": "{t}/keys/ec.pem", "issuer": ISSUER, "subject": "edge-01"},
    "jwks_publish": {"keys": ["@jwk:ec"]},
    # A settled ring (one active key, nothing due): the default action=auto has nothing to do.
    "jwt_keyring": {"path": "{t}/ring/signing.pem"},
    # Every path below the tree; cron, so that no systemd is needed.
    "token_refresher": {"key_path": "{t}/keys/ec.pem", "issuer": ISSUER, "subject": "edge-01",
                        "token_dir": "{t}/refresher/state", "lib_dir": "{t}/refresher/lib",
                        "bin_dir": "{t}/refresher/bin", "scheduler": "cron", "cron_file": "{t}/adir/cron",
                        "systemd_unit_dir": "{t}/refresher/systemd", "python": "/usr/bin/python3"},
}
#: Options that every module gets from add_file_common_args; the matrix covers the ones that matter.
FILE_OPTIONS = ("mode", "owner", "group")
#: Modules without add_file_common_args (their files have fixed modes).
NO_FILE_OPTIONS = ("jwt_keyring", "token_refresher")
IGNORED_FILE_OPTIONS = ("seuser", "serole", "setype", "selevel", "unsafe_writes", "attributes")

DROP = object()


# --------------------------------------------------------------------------------------
# Material: keys of every kind and the files of the tree
# --------------------------------------------------------------------------------------

def _pem(key, passphrase=None, fmt=serialization.PrivateFormat.PKCS8):
    encryption = (serialization.BestAvailableEncryption(passphrase.encode("utf-8")) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def _public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _damage(pem):
    """Change characters in the middle of the base64 body: still PEM, no longer a key."""
    lines = pem.split(b"\n")
    middle = len(lines) // 2
    lines[middle] = lines[middle][:10] + b"AAAAAAAAAA" + lines[middle][20:]
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def material():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = _keys.generate_private_key("ed25519")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    dsa_key = dsa.generate_private_key(key_size=1024)
    other_ec = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificates.self_signed_certificate(ec_key, "edge-01")
    other_certificate = _certificates.self_signed_certificate(other_ec, "other")
    token = _token.mint(ec_key, issuer=ISSUER, subject="edge-01").token
    ec_jwk = _jwk.public_jwk(ec_key)
    files = {
        "keys/ec.pem": _pem(ec_key),
        "keys/ed25519.pem": _pem(ed_key),
        "keys/enc.pem": _pem(ec_key, PASSPHRASE),
        "keys/rsa.pem": _pem(rsa_key),
        "keys/rsa1024.pem": _pem(weak_rsa, fmt=serialization.PrivateFormat.TraditionalOpenSSL),
        "keys/dsa.pem": _pem(dsa_key),
        "keys/ed448.pem": _pem(ed448.Ed448PrivateKey.generate()),
        "keys/x25519.pem": _pem(x25519.X25519PrivateKey.generate()),
        "keys/secp256k1.pem": _pem(ec.generate_private_key(ec.SECP256K1())),
        "keys/public.pem": _public_pem(ec_key),
        "keys/cert.pem": _certificates.certificate_pem(certificate).encode("ascii"),
        "keys/corrupt.pem": _damage(_pem(ec_key)),
        "keys/garbage.pem": bytes(bytearray(range(256))) * 2,
        "keys/empty.pem": b"",
        "plain.txt": b"a regular file, not a directory\n",
        "jwks/jwks.json": _jwks.jwks_document({"keys": [ec_jwk]}).encode("ascii"),
        "jwks/private.json": json.dumps({"keys": [dict(ec_jwk, d=SECRET)]}).encode("ascii"),
        "jwks/notjwks.json": b'{"hello": "world"}\n',
        "jwks/array.json": b"[1, 2, 3]\n",
        "jwks/keys-not-objects.json": b'{"keys": [1, "two"]}\n',
        "jwks/openid-configuration": b'{"issuer": "https://edge.example.com"}\n',
        "token/token": token.encode("ascii"),
        "token/foreign.txt": b"do not lose me\n",
        "token/binary": b"\xff\xfe\x00\x01" * 16,
    }
    files.update(_ring_files(ec_key, other_ec, _pem(ec_key, PASSPHRASE)))
    return {
        "files": files,
        "jwk:ec": ec_jwk,
        "jwk:ed": _jwk.public_jwk(ed_key),
        "jwk:rsa": _jwk.public_jwk(rsa_key),
        "jwk:other_ec": _jwk.public_jwk(other_ec),
        "jwk:weak_rsa": _weak_rsa_jwk(weak_rsa),
        "x5c:other": _jwk.certificate_members([other_certificate])["x5c"],
        "pem:ec_public": _public_pem(ec_key).decode("ascii"),
        "pem:dsa_public": _public_pem(dsa_key).decode("ascii"),
        "pem:ec_private": _pem(ec_key).decode("ascii"),
        "pem:rsa_traditional": _pem(rsa_key, fmt=serialization.PrivateFormat.TraditionalOpenSSL).decode("ascii"),
        "pem:enc_private": _pem(ec_key, PASSPHRASE).decode("ascii"),
        "pem:dsa_private": _pem(dsa_key).decode("ascii"),
        "pem:rsa1024_private": _pem(weak_rsa).decode("ascii"),
        "pem:ed448_private": files["keys/ed448.pem"].decode("ascii"),
        "pem:corrupt_private": files["keys/corrupt.pem"].decode("ascii"),
        "pem:cert": files["keys/cert.pem"].decode("ascii"),
        "pem:corrupt_cert": _damage(files["keys/cert.pem"]).decode("ascii"),
        "private_lines": _private_lines(files),
    }


RING_TIME = "2026-01-31T12:00:00Z"


def _ring_state(*entries):
    return (json.dumps({"version": _keyring.STATE_VERSION, "keys": list(entries)}, indent=2) + "\n").encode("ascii")


def _ring_entry(key, state, **times):
    kid = _jwk.key_thumbprint(key)
    entry = {"kid": kid, "state": state, "jwk": _jwk.public_jwk(key, kid=kid)}
    entry.update(times)
    return entry


def _ring_files(key, other, encrypted_pem):
    """ring/<name>.pem with the ring state <name>.pem.ring.json: a settled ring and damaged ones."""
    pem = _pem(key)
    active = _ring_entry(key, "active", activated_at=RING_TIME)
    nxt = _ring_entry(other, "next", staged_at=RING_TIME)
    damaged = {
        "not-json": b'{"version": 1, "keys": [\n',
        "binary": b"\xff\xfe\x00\x01" * 16,
        "array": b"[1, 2, 3]\n",
        "empty": b"",
        "version-2": b'{"version": 2, "keys": []}\n',
        "keys-not-list": b'{"version": 1, "keys": {"kid": "a"}}\n',
        "entry-not-object": _ring_state("a key"),
        "entry-odd-state": _ring_state(dict(active, state="odd")),
        "entry-jwk-missing": _ring_state(dict(active, jwk=None)),
        "duplicate-kid": _ring_state(active, dict(active, state="retiring")),
        "bad-time": _ring_state(dict(active, activated_at="yesterday")),
        "two-active": _ring_state(active, dict(nxt, state="active")),
        # A kid that names a file outside the key directory (with "kid-path.pem." a directory).
        "kid-path": _ring_state(active, {"kid": "/../../../victim/target", "state": "retiring", "jwk": {"kty": "EC"},
                                         "deactivated_at": "2000-01-01T00:00:00Z"}),
        "kid-short": _ring_state(active, dict(nxt, kid="edge-01", state="retiring",
                                              deactivated_at="2000-01-01T00:00:00Z")),
    }
    files = {"ring/signing.pem": pem, "ring/signing.pem.ring.json": _ring_state(active)}
    for name, state in damaged.items():
        files["ring/%s.pem" % name] = pem
        files["ring/%s.pem.ring.json" % name] = state
    # A ring whose signing key is gone, one whose signing key was retired, a staged next key, an encrypted ring.
    files["ring/keyless.pem.ring.json"] = _ring_state(active)
    files["ring/retired.pem"] = pem
    files["ring/retired.pem.ring.json"] = _ring_state(dict(active, state="retired", retired_at=RING_TIME),
                                                      _ring_entry(other, "active", activated_at=RING_TIME))
    files["ring/staged.pem"] = pem
    files["ring/staged.pem.ring.json"] = _ring_state(active, nxt)
    files["ring/staged.pem.%s" % nxt["kid"]] = _pem(other)
    files["ring/enc.pem"] = encrypted_pem
    files["ring/enc.pem.ring.json"] = _ring_state(active)
    return files


def _weak_rsa_jwk(key):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "n": _jose.uint_to_b64url(numbers.n), "e": _jose.uint_to_b64url(numbers.e), "kid": "weak"}


def _private_lines(files):
    """Base64 body lines of the private key files that hold private bytes: none may show up anywhere.

    A private key PEM also carries the public key; lines made of public bytes only show up in
    public keys and certificates as well, so they are left out.
    """
    lines = set()
    for name, data in files.items():
        if not (name.startswith("keys/") and b"PRIVATE KEY-----" in data and b"ENCRYPTED" not in data):
            continue
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError:
            continue  # the damaged key: its lines are those of keys/ec.pem
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        for line in data.decode("ascii").splitlines():
            if len(line) >= 40 and not line.startswith("-----"):
                if base64.b64decode(line) not in public:
                    lines.add(line)
    return sorted(lines)


# --------------------------------------------------------------------------------------
# Values in the tables that are resolved against the material and the tree
# --------------------------------------------------------------------------------------

class Jwk(object):
    """A JWK of the material with members changed (``None`` removes a member)."""

    def __init__(self, name, **changes):
        self.name = name
        self.changes = changes

    def resolve(self, material, root):
        jwk = dict(material["jwk:" + self.name])
        for member, value in self.changes.items():
            member = member.replace("_S256", "#S256")
            if value is None:
                jwk.pop(member, None)
            else:
                jwk[member] = resolve(value, material, root)
        return jwk


class Call(object):
    """A value computed from the material: ``function(material)``."""

    def __init__(self, function):
        self.function = function

    def resolve(self, material, root):
        return self.function(material)


def resolve(value, material, root):
    if isinstance(value, (Jwk, Call)):
        return value.resolve(material, root)
    if isinstance(value, str):
        if value.startswith("@"):
            return material[value[1:]]
        return value.replace("{t}", root)
    if isinstance(value, list):
        return [resolve(item, material, root) for item in value]
    if isinstance(value, dict):
        return dict((key, resolve(item, material, root)) for key, item in value.items())
    return value


def _point_off_curve(material):
    jwk = dict(material["jwk:ec"])
    raw = bytearray(_jose.b64url_decode(jwk["y"]))
    raw[-1] ^= 1
    jwk["y"] = _jose.b64url_encode(bytes(raw))
    return jwk


def _short_coordinate(material):
    return dict(material["jwk:ec"], x=_jose.b64url_encode(b"\x01" * 31))


def _even_exponent(material):
    return dict(material["jwk:rsa"], e=_jose.uint_to_b64url(65536))


def _duplicate_kid(material):
    return [material["jwk:ec"], dict(material["jwk:other_ec"], kid=material["jwk:ec"]["kid"])]


def _same_key_two_kids(material):
    return [dict(material["jwk:ec"], kid="first"), dict(material["jwk:ec"], kid="second")]


def _same_kid_other_alg(material):
    rsa_jwk = material["jwk:rsa"]
    return [rsa_jwk, dict(rsa_jwk, alg="PS256")]


def _jwks_text_with_private(material):
    return json.dumps({"keys": [material["jwk:ed"], dict(material["jwk:ec"], d=SECRET)]})


def _rsa_private_members(material):
    return dict(material["jwk:rsa"], p=SECRET, q=SECRET, dp=SECRET, dq=SECRET, qi=SECRET)


def _x5t_mismatch(material):
    certificate = _certificates.load_certificate_pem(material["pem:cert"])
    members = _jwk.certificate_members([certificate])
    return dict(material["jwk:ec"], x5c=members["x5c"], x5t="AAAA" + members["x5t"][4:])


def _oversize_pem(material):
    return "-----BEGIN PUBLIC KEY-----\n" + ("QUFB" * 16 + "\n") * 20000 + "-----END PUBLIC KEY-----\n"


# Preparations of files that are too big to keep in every tree (sparse where possible).

def _big_key(root):
    with open(os.path.join(root, "keys", "big.pem"), "wb") as handle:
        handle.write(b"-----BEGIN PRIVATE KEY-----\n")
        handle.truncate(1024 * 1024 + 1)


def _big_token(root):
    with open(os.path.join(root, "token", "big"), "wb") as handle:
        handle.write(b"e" * (4 * 8192 + 1))


def _state_directory(root):
    os.makedirs(os.path.join(root, "keys", "ec.pem" + _keyring.STATE_SUFFIX))


def _nobody():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("giving a file to another account needs root")
    return pwd.getpwnam("nobody").pw_uid


def _link(name, target):
    """A prepare step: a symbolic link ``name`` (relative to the tree) to ``target`` ({t}: the tree)."""
    def prepare(root):
        os.symlink(target.replace("{t}", root), os.path.join(root, name))
    return prepare


def _foreign_copy(source, name, *extra):
    """A prepare step: a copy of ``source`` (and of ``source + suffix`` for each of ``extra``) owned by nobody."""
    def prepare(root):
        uid = _nobody()
        for suffix in ("",) + extra:
            target = os.path.join(root, name + suffix)
            shutil.copyfile(os.path.join(root, source + suffix), target)
            os.chmod(target, 0o600)
        os.chown(os.path.join(root, name + (extra[-1] if extra else "")), uid, -1)
    return prepare


def _shared_directory(root):
    os.makedirs(os.path.join(root, "shared"))
    os.chmod(os.path.join(root, "shared"), 0o1777)


def _directory_of_nobody(root):
    uid = _nobody()
    os.makedirs(os.path.join(root, "nobodys"))
    os.chown(os.path.join(root, "nobodys"), uid, -1)


def _big_jwks(root):
    with open(os.path.join(root, "jwks", "big.json"), "wb") as handle:
        handle.write(b'{"keys": []}')
        handle.truncate(64 * 1024 * 1024 + 1)


# --------------------------------------------------------------------------------------
# The matrix: (id, module, arguments over BASE_ARGS, substrings of the message, preparation)
# --------------------------------------------------------------------------------------

LONG_NAME = "n" * 300

TOKEN_URI = "pkcs11:token=edge;object=jwt-signing;type=private?module-path=/nonexistent/libpkcs11.so"
#: The ring state of a key in a PKCS#11 token (jwt_keyring's state_path).
RING_STATE = "{t}/ring/hsm.ring.json"

KEYPAIR_CASES = [
    # path
    ("path-missing", {"path": DROP}, ["one of the following is required: path, pkcs11_uri"]),
    ("path-empty", {"path": ""}, ["path must be the path of the private key file"]),
    # a key in a PKCS#11 token (refused before any library is loaded)
    ("pkcs11-uri-and-path", {"pkcs11_uri": TOKEN_URI}, ["mutually exclusive: path|pkcs11_uri"]),
    ("pkcs11-uri-not-a-uri", {"path": DROP, "pkcs11_uri": "token=edge"}, ["must start with 'pkcs11:'"]),
    ("pkcs11-uri-pin-value", {"path": DROP, "pkcs11_uri": TOKEN_URI + "&pin-value=1234"}, ["carries the PIN"]),
    ("pkcs11-uri-no-library", {"path": DROP, "pkcs11_uri": TOKEN_URI}, ["/nonexistent/libpkcs11.so does not exist"]),
    ("pkcs11-pin-empty", {"path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin": ""}, ["pkcs11_pin is empty"]),
    ("pkcs11-pin-file-missing", {"path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "{t}/nope.pin"},
     ["PIN file {t}/nope.pin does not exist"]),
    ("state-path-without-token", {"state_path": "{t}/ring.json"}, ["missing parameter(s) required by 'state_path'"]),
    ("path-is-directory", {"path": "{t}/adir"}, ["is a directory, not a file", "give the path of a file"]),
    ("path-below-a-file", {"path": "{t}/plain.txt/key.pem"}, ["{t}/plain.txt is not a directory"]),
    ("path-nul-byte", {"path": "{t}/keys/a\x00b.pem"}, ["NUL"]),
    ("path-name-too-long", {"path": "{t}/keys/" + LONG_NAME}, ["File name too long"]),
    ("path-corrupt-pem", {"path": "{t}/keys/corrupt.pem"}, ["is damaged", "regenerate=full_idempotence"]),
    ("path-not-pem", {"path": "{t}/keys/garbage.pem"}, ["is not a PEM private key", "restore the file"]),
    ("path-empty-file", {"path": "{t}/keys/empty.pem"}, ["is empty", "regenerate=full_idempotence"]),
    ("path-public-key", {"path": "{t}/keys/public.pem"}, ["is a public key or certificate, not a private key"]),
    ("path-certificate", {"path": "{t}/keys/cert.pem"}, ["is a public key or certificate, not a private key"]),
    ("path-encrypted-no-passphrase", {"path": "{t}/keys/enc.pem"}, ["is encrypted: set the passphrase"]),
    ("path-wrong-passphrase-and-old", {"path": "{t}/keys/enc.pem", "passphrase": "wrong-1",
                                       "old_passphrase": "wrong-2"},
     ["passphrase is wrong", "old_passphrase did not decrypt it either"]),
    ("path-dsa-key", {"path": "{t}/keys/dsa.pem"}, ["cannot sign JWTs", "DSA", "regenerate=partial_idempotence"]),
    ("path-rsa-1024", {"path": "{t}/keys/rsa1024.pem", "type": "rsa", "size": 2048},
     ["1024 bits; at least 2048", "regenerate=partial_idempotence"]),
    ("path-ed448-key", {"path": "{t}/keys/ed448.pem", "type": "ed25519"}, ["unsupported key type", "Ed25519"]),
    ("path-x25519-key", {"path": "{t}/keys/x25519.pem", "type": "ed25519"}, ["unsupported key type"]),
    ("path-secp256k1-key", {"path": "{t}/keys/secp256k1.pem"}, ["unsupported EC curve secp256k1", "P-256"]),
    ("path-oversize-file", {"path": "{t}/keys/big.pem"}, ["larger than 1048576 bytes"], _big_key),
    ("path-other-key-type", {"path": "{t}/keys/ec.pem", "type": "rsa", "size": 2048},
     ["is a key of type=ec curve=P-256, but a key of type=rsa size=2048 was requested",
      "regenerate=partial_idempotence"]),
    # state, type, size, curve
    ("state-wrong-enum", {"state": "gone"}, ["value of state must be one of: present, absent, got: gone"]),
    ("state-absent-directory", {"state": "absent", "path": "{t}/adir"}, ["is a directory, not a file"]),
    ("type-dsa", {"type": "dsa"}, ["value of type must be one of: rsa, ec, ed25519, got: dsa"]),
    ("type-wrong-type", {"type": ["ec"]}, ["value of type must be one of"]),
    ("size-1024", {"type": "rsa", "size": 1024}, ["size must be between 2048 and 16384", "use 2048, 3072 or 4096"]),
    ("size-too-big", {"type": "rsa", "size": 32768}, ["size must be between 2048 and 16384"]),
    ("size-negative", {"type": "rsa", "size": -2048}, ["size must be between 2048 and 16384"]),
    ("size-not-a-number", {"type": "rsa", "size": "big"}, ["size", "cannot be converted to an int"]),
    ("curve-p192", {"curve": "P-192"}, ["value of curve must be one of: P-256, P-384, P-521, got: P-192"]),
    ("curve-secp256k1", {"curve": "secp256k1"}, ["value of curve must be one of"]),
    # passphrase, old_passphrase
    ("passphrase-wrong", {"path": "{t}/keys/enc.pem", "passphrase": PASSPHRASE + "-not"},
     ["could not be decrypted", "Give the right passphrase"]),
    ("old-passphrase-wrong", {"path": "{t}/keys/enc.pem", "passphrase": "new-passphrase-123",
                              "old_passphrase": "not-the-old-one"},
     ["could not be decrypted", "old_passphrase did not decrypt it either"]),
    # a secret of an unexpected type: str() shows dict keys and escapes leaves, so Ansible's masking misses it
    ("passphrase-dict", {"path": "{t}/keys/enc.pem", "passphrase": {PASSPHRASE: True}}, ["could not be decrypted"]),
    ("passphrase-list-with-newline", {"path": "{t}/keys/enc.pem", "passphrase": [PASSPHRASE + "\n"]},
     ["could not be decrypted"]),
    # a private key where a path belongs
    ("path-private-key-text", {"path": "@pem:ec_private"}, ["holds a PEM private key, not a path"]),
    # kid
    ("kid-empty", {"kid": ""}, ["kid '' is not allowed"]),
    ("kid-space", {"kid": "edge 01"}, ["kid 'edge 01' is not allowed", "A-Z a-z 0-9 . _ ~ -"]),
    ("kid-oversize", {"kid": "k" * 129}, ["is not allowed: use 1 to 128 characters"]),
    ("kid-slash", {"kid": "../../etc"}, ["is not allowed"]),
    # algorithm
    ("algorithm-none", {"algorithm": "none"}, ["value of algorithm must be one of", "got: none"]),
    ("algorithm-hs256", {"algorithm": "HS256"}, ["value of algorithm must be one of", "got: HS256"]),
    ("algorithm-family", {"algorithm": "RS256"}, ["algorithm RS256 needs a key of type rsa, but type is ec"]),
    ("algorithm-curve", {"algorithm": "ES384"}, ["algorithm ES384 needs curve P-384, but curve is P-256"]),
    ("algorithm-eddsa-on-rsa", {"type": "rsa", "size": 2048, "algorithm": "EdDSA"},
     ["algorithm EdDSA needs a key of type ed25519, but type is rsa"]),
    ("algorithm-kept-key", {"path": "{t}/keys/ec.pem", "regenerate": "never", "type": "ed25519",
                            "algorithm": "EdDSA"},
     ["needs a key of type OKP, but the key is of type EC"]),
    # certificate_path, certificate_subject, certificate_valid_days
    ("certificate-path-is-key-path", {"certificate_path": "{t}/keys/new.pem"},
     ["certificate_path must differ from path"]),
    ("certificate-path-directory", {"path": "{t}/keys/ec.pem", "certificate_path": "{t}/adir"},
     ["certificate {t}/adir is a directory"]),
    ("certificate-path-below-a-file", {"certificate_path": "{t}/plain.txt/cert.pem"},
     ["{t}/plain.txt is not a directory"]),
    ("certificate-subject-without-path", {"certificate_subject": "edge"},
     ["missing parameter(s) required by 'certificate_subject': certificate_path"]),
    ("certificate-subject-empty", {"certificate_path": "{t}/keys/new.crt", "certificate_subject": ""},
     ["cannot be a certificate common name"]),
    ("certificate-subject-oversize", {"certificate_path": "{t}/keys/new.crt", "certificate_subject": "s" * 65},
     ["cannot be a certificate common name: it must have 1 to 64 characters"]),
    ("certificate-days-zero", {"certificate_path": "{t}/keys/new.crt", "certificate_valid_days": 0},
     ["certificate_valid_days must be between 1 and 36500"]),
    ("certificate-days-huge", {"certificate_path": "{t}/keys/new.crt", "certificate_valid_days": 36501},
     ["certificate_valid_days must be between 1 and 36500"]),
    ("certificate-days-text", {"certificate_path": "{t}/keys/new.crt", "certificate_valid_days": "ten"},
     ["certificate_valid_days", "cannot be converted to an int"]),
    # regenerate, backup
    ("regenerate-wrong-enum", {"regenerate": "sometimes"}, ["value of regenerate must be one of"]),
    ("backup-not-bool", {"backup": "maybe"}, ["backup", "not a valid boolean"]),
    # parent_mode, passphrase_file, store_passphrase
    ("parent-mode-invalid", {"path": "{t}/newdir/new.pem", "parent_mode": "0999"}, ["mode '0999' is neither octal"]),
    ("parent-mode-below-a-file", {"path": "{t}/plain.txt/keys/new.pem", "parent_mode": "0700"},
     ["{t}/plain.txt is not a directory"]),
    ("parent-update-without-parent-mode", {"parent_update": True}, ["parent_update needs parent_mode"]),
    ("parent-update-not-bool", {"parent_update": "always"}, ["parent_update", "not a valid boolean"]),
    # files and directories that another account controls: no link followed, nothing of theirs used
    ("path-symlink", {"path": "{t}/keys/link.pem"}, ["{t}/keys/link.pem is a symbolic link", "replace the link"],
     _link("keys/link.pem", "{t}/keys/ec.pem")),
    ("path-dangling-symlink", {"path": "{t}/keys/link.pem"}, ["is a symbolic link"],
     _link("keys/link.pem", "{t}/made-through-the-link.pem")),
    ("path-lock-symlink", {"path": "{t}/keys/new.pem"}, ["lock file {t}/keys/.new.pem.lock is a symbolic link"],
     _link("keys/.new.pem.lock", "{t}/made-through-the-lock")),
    ("path-foreign-owner", {"path": "{t}/keys/foreign.pem"},
     ["{t}/keys/foreign.pem belongs to nobody", "another account may have put it there", "set owner"],
     _foreign_copy("keys/ec.pem", "keys/foreign.pem")),
    ("path-in-world-writable-directory", {"path": "{t}/shared/new.pem"},
     ["can be written by its group or by others (mode 1777)", "chmod go-w"], _shared_directory),
    ("path-in-directory-of-another-account", {"path": "{t}/nobodys/new.pem"},
     ["belongs to nobody", "a directory of its own"], _directory_of_nobody),
    ("certificate-path-symlink", {"path": "{t}/keys/ec.pem", "certificate_path": "{t}/keys/link.crt"},
     ["certificate {t}/keys/link.crt is a symbolic link"], _link("keys/link.crt", "{t}/keys/cert.pem")),
    ("passphrase-file-directory", {"passphrase": "pw-1", "passphrase_file": "{t}/adir", "store_passphrase": True},
     ["passphrase file {t}/adir is a directory"]),
    ("store-passphrase-without-file", {"passphrase": "pw-1", "store_passphrase": True},
     ["store_passphrase needs passphrase_file and passphrase"]),
    ("store-passphrase-not-bool", {"store_passphrase": "perhaps"}, ["store_passphrase", "not a valid boolean"]),
    # private_key_content (adopt a given key; never replaces another one)
    ("content-not-pem", {"private_key_content": "not a key"}, ["private_key_content", "is not a PEM private key"]),
    ("content-public-key", {"private_key_content": "@pem:ec_public"},
     ["private_key_content", "is a public key or certificate, not a private key"]),
    ("content-corrupt", {"private_key_content": "@pem:corrupt_private"}, ["private_key_content", "is damaged"]),
    ("content-encrypted-no-passphrase", {"private_key_content": "@pem:enc_private"},
     ["private_key_content", "is encrypted: set the passphrase"]),
    ("content-dsa", {"private_key_content": "@pem:dsa_private"}, ["private_key_content", "DSA"]),
    ("content-rsa-1024", {"private_key_content": "@pem:rsa1024_private", "type": "rsa", "size": 2048},
     ["private_key_content", "1024 bits; at least 2048"]),
    ("content-other-type", {"private_key_content": "@pem:rsa_traditional"},
     ["private_key_content holds a key of type=rsa size=2048, but type=ec was requested"]),
    ("content-other-key-on-disk", {"path": "{t}/keys/ec.pem",
                                   "private_key_content": Call(lambda m: m["files"]["keys/ed25519.pem"].decode()),
                                   "type": "ed25519"},
     ["holds another key than private_key_content", "Nothing was changed", "Move the file away"]),
    ("content-regenerate-always", {"private_key_content": "@pem:ec_private", "regenerate": "always"},
     ["private_key_content adopts the given key and never makes a new one", "not always"]),
    ("content-state-absent", {"path": "{t}/keys/ec.pem", "private_key_content": "@pem:ec_private",
                              "state": "absent"},
     ["private_key_content needs state=present"]),
    # file attributes
    ("mode-invalid-symbolic", {"mode": "u=rwz"}, ["mode 'u=rwz' is neither octal", "u=rw,g=r"]),
    ("mode-invalid-octal", {"mode": "0999"}, ["mode '0999' is neither octal"]),
    ("mode-invalid-existing-key", {"path": "{t}/keys/ec.pem", "mode": "a+q"}, ["mode 'a+q' is neither octal"]),
    ("owner-unknown", {"owner": "no-such-user-matrix"}, ["user no-such-user-matrix does not exist"]),
    ("group-unknown", {"group": "no-such-group-matrix"}, ["group no-such-group-matrix does not exist"]),
]

TOKEN_CASES = [
    # private_key_path / private_key_content
    ("key-path-and-content-missing", {"private_key_path": DROP},
     ["one of the following is required: private_key_path, private_key_content"]),
    ("key-path-directory", {"private_key_path": "{t}/adir"}, ["is a directory, not a file"]),
    ("key-path-below-a-file", {"private_key_path": "{t}/plain.txt/key.pem"}, ["Not a directory"]),
    ("key-path-nul-byte", {"private_key_path": "{t}/keys/a\x00b.pem"}, ["NUL"]),
    ("key-path-name-too-long", {"private_key_path": "{t}/keys/" + LONG_NAME}, ["File name too long"]),
    ("key-path-corrupt", {"private_key_path": "{t}/keys/corrupt.pem"}, ["is damaged"]),
    ("key-path-not-pem", {"private_key_path": "{t}/keys/garbage.pem"}, ["is not a PEM private key"]),
    ("key-path-empty-file", {"private_key_path": "{t}/keys/empty.pem"}, ["is empty"]),
    ("key-path-public-key", {"private_key_path": "{t}/keys/public.pem"}, ["is a public key or certificate"]),
    ("key-path-certificate", {"private_key_path": "{t}/keys/cert.pem"}, ["is a public key or certificate"]),
    ("key-path-dsa", {"private_key_path": "{t}/keys/dsa.pem"}, ["unsupported key type", "use an RSA"]),
    ("key-path-rsa-1024", {"private_key_path": "{t}/keys/rsa1024.pem"}, ["RSA key has 1024 bits; at least 2048"]),
    ("key-path-ed448", {"private_key_path": "{t}/keys/ed448.pem"}, ["unsupported key type"]),
    ("key-path-x25519", {"private_key_path": "{t}/keys/x25519.pem"}, ["unsupported key type"]),
    ("key-path-secp256k1", {"private_key_path": "{t}/keys/secp256k1.pem"}, ["unsupported EC curve secp256k1"]),
    ("key-path-oversize", {"private_key_path": "{t}/keys/big.pem"}, ["larger than 1048576 bytes"], _big_key),
    ("key-content-empty", {"private_key_path": DROP, "private_key_content": ""}, ["the private key content is empty"]),
    ("key-content-dsa", {"private_key_path": DROP, "private_key_content": "@pem:dsa_private"},
     ["unsupported key type"]),
    ("key-content-rsa-1024", {"private_key_path": DROP, "private_key_content": "@pem:rsa1024_private"},
     ["at least 2048"]),
    ("key-content-ed448", {"private_key_path": DROP, "private_key_content": "@pem:ed448_private"},
     ["unsupported key type"]),
    ("key-content-corrupt", {"private_key_path": DROP, "private_key_content": "@pem:corrupt_private"},
     ["is damaged"]),
    ("key-content-certificate", {"private_key_path": DROP, "private_key_content": "@pem:cert"},
     ["is a public key or certificate"]),
    ("key-content-oversize", {"private_key_path": DROP, "private_key_content": Call(_oversize_pem)},
     ["is a public key or certificate, not a private key"]),
    ("key-content-encrypted-no-passphrase", {"private_key_path": DROP, "private_key_content": "@pem:enc_private"},
     ["is encrypted: set the passphrase"]),
    # passphrase
    ("passphrase-wrong-content", {"private_key_path": DROP, "private_key_content": "@pem:enc_private",
                                  "passphrase": "not it"}, ["passphrase is wrong"]),
    ("passphrase-wrong-file", {"private_key_path": "{t}/keys/enc.pem", "passphrase": "not it"},
     ["passphrase is wrong"]),
    ("passphrase-list-with-newline", {"private_key_path": "{t}/keys/enc.pem", "passphrase": [PASSPHRASE + "\n"]},
     ["passphrase is wrong"]),
    ("passphrase-dict", {"private_key_path": "{t}/keys/enc.pem", "passphrase": {PASSPHRASE: None}},
     ["passphrase is wrong"]),
    # a private key where a path belongs, and key content of an unexpected type
    ("key-path-private-key-text", {"private_key_path": "@pem:ec_private"}, ["holds a PEM private key, not a path"]),
    ("key-content-in-a-list", {"private_key_path": DROP, "private_key_content": ["@pem:ec_private"]},
     ["the private key content"]),
    # algorithm
    ("algorithm-none-upper", {"algorithm": "NONE"}, ["algorithm 'none' is refused"]),
    ("algorithm-hs512-lower", {"algorithm": "hs512"}, ["shared-secret (HMAC) algorithms"]),
    ("algorithm-ps256-on-ec", {"algorithm": "PS256"}, ["algorithm PS256 needs a key of type RSA", "use ES256"]),
    ("algorithm-eddsa-on-ec", {"algorithm": "EdDSA"}, ["algorithm EdDSA needs a key of type OKP"]),
    ("algorithm-es256-on-rsa", {"private_key_path": "{t}/keys/rsa.pem", "algorithm": "ES256"},
     ["needs a key of type EC, but the key is of type RSA", "use RS256"]),
    ("algorithm-rs256-on-ed25519", {"private_key_path": "{t}/keys/ed25519.pem", "algorithm": "RS256"},
     ["needs a key of type RSA, but the key is of type OKP", "use EdDSA"]),
    ("algorithm-es512-on-p256", {"algorithm": "ES512"}, ["needs curve P-521"]),
    ("algorithm-unknown", {"algorithm": "RSA-OAEP"}, ["is not supported: use one of"]),
    ("algorithm-list", {"algorithm": ["RS256", "ES256"]}, ["is not supported: use one of"]),
    # kid, issuer, subject, audience
    ("kid-space", {"kid": "edge 01"}, ["kid 'edge 01' is not allowed"]),
    ("kid-oversize", {"kid": "k" * 200}, ["is not allowed: use 1 to 128 characters"]),
    ("issuer-missing", {"issuer": DROP}, ["missing required arguments: issuer"]),
    ("issuer-blank", {"issuer": "   "}, ["issuer must be a non-empty string"]),
    ("subject-blank", {"subject": " \t"}, ["Istio rejects tokens without 'sub'"]),
    ("audience-empty-list", {"audience": []}, ["audience must be a non-empty string or a list of non-empty strings"]),
    ("audience-empty-member", {"audience": ["api", ""]}, ["audience must be a non-empty string or a list"]),
    ("audience-number", {"audience": 5}, ["audience must be a non-empty string or a list"]),
    ("audience-empty-string", {"audience": ""}, ["audience must not be empty"]),
    # expires_in, max_lifetime, not_before, issued_at
    ("expires-in-negative", {"expires_in": -60}, ["expires_in must be a positive number of seconds"]),
    ("expires-in-text", {"expires_in": "soon"}, ["expires_in", "cannot be converted to an int"]),
    ("expires-in-above-cap", {"expires_in": 3601}, ["expires_in 3601 exceeds max_lifetime 3600",
                                                    "use a shorter lifetime"]),
    ("expires-in-years", {"expires_in": 10 ** 9, "max_lifetime": 10 ** 8}, ["exceeds max_lifetime"]),
    ("max-lifetime-zero", {"max_lifetime": 0}, ["expires_in 600 exceeds max_lifetime 0"]),
    ("max-lifetime-text", {"max_lifetime": "1h"}, ["max_lifetime", "cannot be converted to an int"]),
    ("not-before-too-early", {"not_before": -301}, ["not_before must be whole seconds from now between -300"]),
    ("not-before-at-expiry", {"not_before": 600}, ["not_before must be whole seconds from now"]),
    ("not-before-text", {"not_before": "later"}, ["not_before", "cannot be converted to an int"]),
    ("issued-at-text", {"issued_at": "yesterday"}, ["issued_at", "cannot be converted to an int"]),
    ("issued-at-with-dest", {"issued_at": 1, "dest": "{t}/token/token"},
     ["parameters are mutually exclusive: issued_at|dest"]),
    # claims, headers
    ("claims-not-a-dict", {"claims": "scope"}, ["claims", "dictionary requested"]),
    ("claims-nan", {"claims": {"ratio": float("nan")}}, ["claims must be JSON-serializable"]),
    ("claims-infinity", {"claims": {"nested": {"big": float("inf")}}}, ["claims must be JSON-serializable"]),
    ("claims-empty-name", {"claims": {"": "x"}}, ["claim names must be non-empty strings"]),
    ("claims-registered-sub", {"claims": {"sub": "someone-else"}}, ["claim 'sub' cannot be set through claims"]),
    ("claims-registered-jti", {"claims": {"jti": "fixed"}}, ["claim 'jti' cannot be set through claims"]),
    ("claims-oversize", {"claims": {"blob": "x" * 9000}}, ["bytes long", "send fewer or shorter claims"]),
    ("headers-not-a-dict", {"headers": "x-a"}, ["headers", "dictionary requested"]),
    ("headers-alg-upper", {"headers": {"ALG": "none"}}, ["header 'ALG' cannot be set through headers"]),
    ("headers-kid", {"headers": {"Kid": "other"}}, ["header 'Kid' cannot be set through headers"]),
    ("headers-x5t-s256", {"headers": {"X5T#s256": "x"}}, ["cannot be set through headers"]),
    ("headers-crit", {"headers": {"crit": ["exp"]}}, ["header 'crit' cannot be set through headers"]),
    ("headers-jwk", {"headers": {"jwk": {"kty": "oct", "k": "c2hvcnQ"}}}, ["header 'jwk' cannot be set"]),
    ("headers-typ", {"headers": {"typ": "JWT"}}, ["header 'typ' cannot be set through headers"]),
    ("headers-nan", {"headers": {"x-ratio": float("nan")}}, ["headers must be JSON-serializable"]),
    ("headers-empty-name", {"headers": {"": 1}}, ["header names must be non-empty strings"]),
    # jku, jti, typ
    ("jku-ftp", {"jku": "ftp://jwks.example.com/jwks.json"}, ["jku must be an http(s) URL"]),
    ("jku-javascript", {"jku": "javascript:alert(1)"}, ["jku must be an http(s) URL"]),
    ("jti-oversize", {"jti": "j" * 9000}, ["bytes long"]),
    ("typ-space", {"typ": "J W T"}, ["typ must be a media type name"]),
    ("typ-oversize", {"typ": "t" * 100}, ["typ must be a media type name"]),
    # dest, refresh_margin
    ("dest-is-the-key", {"dest": "{t}/keys/ec.pem"}, ["does not hold a JWT: it is left alone"]),
    ("dest-below-a-file", {"dest": "{t}/plain.txt/token"}, ["{t}/plain.txt is not a directory"]),
    ("dest-nul-byte", {"dest": "{t}/token/a\x00b"}, ["NUL"]),
    ("dest-binary-file", {"dest": "{t}/token/binary"}, ["does not hold a JWT"]),
    ("dest-oversize-file", {"dest": "{t}/token/big"}, ["larger than 32768 bytes"], _big_token),
    ("dest-with-not-before-positive", {"dest": "{t}/token/new", "not_before": 5},
     ["not_before must be 0 or negative with a token file"]),
    ("refresh-margin-text", {"dest": "{t}/token/token", "refresh_margin": "a bit"},
     ["refresh_margin", "cannot be converted to an int"]),
    ("refresh-margin-negative", {"dest": "{t}/token/token", "refresh_margin": -5},
     ["refresh_margin must be a number of seconds >= 0"]),
    # file attributes
    ("mode-invalid-octal", {"dest": "{t}/token/new", "mode": "0999"}, ["neither octal"]),
    ("mode-invalid-on-kept-token", {"dest": "{t}/token/token", "mode": "go=z"}, ["neither octal"]),
    ("owner-unknown", {"dest": "{t}/token/token", "owner": "no-such-user-matrix"},
     ["user no-such-user-matrix does not exist"]),
    ("group-unknown", {"dest": "{t}/token/new", "group": "no-such-group-matrix"},
     ["group no-such-group-matrix does not exist"]),
    # pkcs11_uri, pkcs11_pin, pkcs11_pin_file (cases that load no PKCS#11 library; tokens: test_jwt_token_pkcs11.py)
    ("pkcs11-uri-and-key-path", {"pkcs11_uri": TOKEN_URI},
     ["parameters are mutually exclusive: private_key_path|private_key_content|pkcs11_uri"]),
    ("pkcs11-uri-and-passphrase", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI, "passphrase": PASSPHRASE},
     ["parameters are mutually exclusive: pkcs11_uri|passphrase"]),
    ("pkcs11-uri-a-path", {"private_key_path": DROP, "pkcs11_uri": "{t}/keys/ec.pem"},
     ["is not a PKCS#11 URI: it must start with 'pkcs11:'"]),
    ("pkcs11-uri-pin-value", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI + "&pin-value=" + PASSPHRASE_PCT},
     ["carries the PIN (pin-value)", "pkcs11_pin_file"]),
    ("pkcs11-uri-pin-value-with-spaces", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI + "&pin-value=" + PASSPHRASE},
     ["contains white space"]),
    ("pkcs11-uri-no-module-path", {"private_key_path": DROP, "pkcs11_uri": "pkcs11:token=edge;object=jwt-signing"},
     ["names no PKCS#11 library: add ?module-path="]),
    ("pkcs11-uri-no-library", {"private_key_path": DROP,
                               "pkcs11_uri": "pkcs11:token=edge;object=jwt-signing?module-path={t}/no-such.so"},
     ["the PKCS#11 library {t}/no-such.so does not exist"]),
    ("pkcs11-uri-no-key", {"private_key_path": DROP, "pkcs11_uri": "pkcs11:token=edge?module-path=/usr/lib/x.so"},
     ["names no key: add object=<label>"]),
    ("pkcs11-pin-without-uri", {"pkcs11_pin": PASSPHRASE},
     ["missing parameter(s) required by 'pkcs11_pin': pkcs11_uri"]),
    ("pkcs11-pin-empty", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin": ""}, ["pkcs11_pin is empty"]),
    ("pkcs11-pin-and-pin-file", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin": PASSPHRASE,
                                 "pkcs11_pin_file": "{t}/keys/pin"},
     ["parameters are mutually exclusive: pkcs11_pin|pkcs11_pin_file"]),
    ("pkcs11-pin-file-missing", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "{t}/keys/pin"},
     ["the PIN file {t}/keys/pin does not exist"]),
    ("pkcs11-pin-file-directory", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "{t}/adir"},
     ["{t}/adir is a directory, not a file"]),
    ("pkcs11-pin-file-readable-by-others", {"private_key_path": DROP, "pkcs11_uri": TOKEN_URI,
                                            "pkcs11_pin_file": "{t}/plain.txt"},
     ["the PIN file {t}/plain.txt has mode 0644, so others may read it"]),
]

JWKS_CASES = [
    # keys: types and private material
    ("keys-text", {"keys": "not-a-key"}, ["keys[0] is neither a JWK nor a PEM public key or certificate"]),
    ("keys-number", {"keys": [5]}, ["keys[0] must be a JWK (dict) or a PEM string, got int"]),
    ("keys-nested-list", {"keys": [["@jwk:ec"]]}, ["keys[0] must be a JWK (dict) or a PEM string, got list"]),
    ("keys-null", {"keys": [None]}, ["keys[0] must be a JWK (dict) or a PEM string"]),
    ("keys-ec-private", {"keys": [Jwk("ec", d=SECRET)]},
     ["contains private or secret key material (d)", "publish public keys only"]),
    ("keys-rsa-private", {"keys": [Call(_rsa_private_members)]},
     ["contains private or secret key material (dp, dq, p, q, qi)"]),
    ("keys-oth", {"keys": [Jwk("rsa", oth=[{"r": SECRET}])]}, ["private or secret key material (oth)"]),
    ("keys-oct", {"keys": [{"kty": "oct", "k": SECRET, "kid": "hmac"}]}, ["private or secret key material (k)"]),
    ("keys-private-pem", {"keys": ["@pem:ec_private"]}, ["keys[0] is a private key: publish public keys only"]),
    ("keys-rsa-private-pem", {"keys": ["@pem:rsa_traditional"]}, ["is a private key"]),
    ("keys-encrypted-private-pem", {"keys": ["@pem:enc_private"]}, ["is a private key"]),
    ("keys-jwks-text-with-private", {"keys": [Call(_jwks_text_with_private)]},
     ["keys[0].keys[1] contains private or secret key material (d)"]),
    # keys: a private key in every form the option takes (masked before Ansible logs or converts it)
    ("keys-one-private-dict", {"keys": Jwk("ec", d=SECRET)}, ["keys[0] contains private or secret key material (d)"]),
    ("keys-private-json-text", {"keys": Call(lambda m: json.dumps(dict(m["jwk:ec"], d=SECRET)))},
     ["keys[0] contains private or secret key material (d)"]),
    ("keys-private-json-list-text", {"keys": Call(lambda m: json.dumps([m["jwk:ed"], dict(m["jwk:ec"], d=SECRET)]))},
     ["keys[1] contains private or secret key material (d)"]),
    ("keys-private-python-text", {"keys": Call(lambda m: str(dict(m["jwk:ec"], d=SECRET)))},
     ["keys[0] is not valid JSON"]),
    ("keys-private-broken-json-list", {"keys": '[{"kty": "EC", "crv": "P-256", "d": "%s", ' % SECRET},
     ["keys is a text that starts like a JSON list but is not valid JSON"]),
    ("keys-one-private-pem-text", {"keys": "@pem:ec_private"}, ["keys[0] is a private key: publish public keys only"]),
    ("keys-one-rsa-pem-text", {"keys": "@pem:rsa_traditional"}, ["keys[0] is a private key"]),
    ("keys-private-jwks-dict", {"keys": Call(lambda m: {"keys": [dict(m["jwk:ec"], d=SECRET)]})},
     ["keys[0].keys[0] contains private or secret key material (d)"]),
    ("keys-bool", {"keys": True}, ["keys must be a list of keys (JWK dicts, JSON or PEM texts), got bool"]),
    # keys: kty, curves, numbers
    ("keys-unknown-kty", {"keys": [Jwk("ec", kty="XYZ")]}, ["keys[0] has unknown kty 'XYZ': use RSA, EC or OKP"]),
    ("keys-missing-kty", {"keys": [Jwk("ec", kty=None)]}, ["has unknown kty None"]),
    ("keys-kty-list", {"keys": [Jwk("ec", kty=["EC"])]}, ["has unknown kty"]),
    ("keys-ec-missing-y", {"keys": [Jwk("ec", y=None)]}, ["keys[0] of kty EC lacks member(s) y"]),
    ("keys-ec-crv-p192", {"keys": [Jwk("ec", crv="P-192")]}, ["unsupported curve 'P-192': use P-256"]),
    ("keys-okp-x25519", {"keys": [Jwk("ed", crv="X25519")]}, ["unsupported OKP curve 'X25519': use Ed25519"]),
    ("keys-ec-off-curve", {"keys": [Call(_point_off_curve)]}, ["is not a valid EC key"]),
    ("keys-ec-short-coordinate", {"keys": [Call(_short_coordinate)]}, ["coordinates must be 32 bytes long"]),
    ("keys-rsa-1024", {"keys": ["@jwk:weak_rsa"]}, ["RSA key has 1024 bits; at least 2048"]),
    ("keys-rsa-even-exponent", {"keys": [Call(_even_exponent)]}, ["invalid RSA exponent"]),
    ("keys-rsa-n-not-base64url", {"keys": [Jwk("rsa", n="a+b/c==")]}, ["member n is not base64url text"]),
    ("keys-use-enc", {"keys": [Jwk("ec", use="enc")]}, ["keys that verify JWTs need use 'sig'"]),
    ("keys-alg-hs256", {"keys": [Jwk("ec", alg="HS256")]}, ["shared-secret (HMAC) algorithms"]),
    ("keys-alg-none", {"keys": [Jwk("ec", alg="none")]}, ["algorithm 'none' is refused"]),
    ("keys-alg-mismatch", {"keys": [Jwk("ec", alg="RS256")]}, ["algorithm RS256 needs a key of type RSA"]),
    ("keys-alg-list", {"keys": [Jwk("ec", alg=["ES256"])]}, ["algorithm must be a string"]),
    ("keys-kid-invalid", {"keys": [Jwk("ec", kid="a/b")]}, ["kid 'a/b' is not allowed"]),
    ("keys-kid-number", {"keys": [Jwk("ec", kid=5)]}, ["kid 5 is not allowed"]),
    ("keys-x5c-garbage", {"keys": [Jwk("ec", x5c=["not base64!"])]}, ["x5c[0] is not a base64 DER certificate"]),
    ("keys-x5c-not-list", {"keys": [Jwk("ec", x5c="abc")]}, ["member x5c must be a non-empty list"]),
    ("keys-x5c-other-key", {"keys": [Jwk("ec", x5c="@x5c:other")]}, ["x5c[0] certifies another key"]),
    ("keys-x5t-mismatch", {"keys": [Call(_x5t_mismatch)]}, ["member x5t does not match x5c[0]"]),
    ("keys-dsa-public-pem", {"keys": ["@pem:dsa_public"]}, ["unsupported key type"]),
    ("keys-corrupt-certificate", {"keys": ["@pem:corrupt_cert"]}, ["holds a public key that cannot be read"]),
    ("keys-invalid-json-text", {"keys": ['{"kty": "EC", ']}, ["keys[0] is not valid JSON"]),
    ("keys-oversize-pem", {"keys": [Call(_oversize_pem)]}, ["is not a valid PEM public key"]),
    # keys: duplicates
    ("keys-duplicate-kid", {"keys": Call(_duplicate_kid)}, ["is given twice", "for two different keys"]),
    ("keys-same-key-two-kids", {"keys": Call(_same_key_two_kids)},
     ["the same key is published under kids first and second"]),
    ("keys-same-kid-other-members", {"keys": Call(_same_kid_other_alg)},
     ["for the same key with different members (alg)"]),
    ("keys-empty", {"keys": []}, ["the JWKS would hold no key", "allow_empty=true"]),
    # dest
    ("dest-directory", {"dest": "{t}/adir"}, ["is a directory, not a file"]),
    ("dest-below-a-file", {"dest": "{t}/plain.txt/jwks.json"}, ["{t}/plain.txt is not a directory"]),
    ("dest-nul-byte", {"dest": "{t}/jwks/a\x00b.json"}, ["NUL"]),
    ("dest-not-a-jwks", {"dest": "{t}/jwks/notjwks.json"}, ["is not a JWKS", "it was left unchanged"]),
    ("dest-array", {"dest": "{t}/jwks/array.json"}, ["is not a JWKS"]),
    ("dest-keys-not-objects", {"dest": "{t}/jwks/keys-not-objects.json"}, ["keys[0] is not a JSON object"]),
    ("dest-a-private-key", {"dest": "{t}/keys/ec.pem"}, ["is not a JWKS: it is not valid JSON"]),
    ("dest-oversize", {"dest": "{t}/jwks/big.json"}, ["larger than 67108864 bytes"], _big_jwks),
    ("dest-private-merge", {"dest": "{t}/jwks/private.json", "merge": True},
     ["holds private key material (members d), so it cannot be merged"]),
    ("dest-and-current", {"dest": "{t}/jwks/jwks.json", "current": "{}"},
     ["parameters are mutually exclusive: dest|current"]),
    # current
    ("current-not-json", {"current": "{broken"}, ["the current JWKS is not a JWKS: it is not valid JSON"]),
    ("current-keys-not-list", {"current": {"keys": "all"}}, ["is not a JSON object with a 'keys' list"]),
    ("current-list", {"current": [1, 2]}, ["is not a JSON object with a 'keys' list"]),
    ("current-private-merge", {"current": Call(_jwks_text_with_private), "merge": True},
     ["holds private key material (members d), so it cannot be merged"]),
    # revoke, merge, allow_empty
    ("revoke-empty-kid", {"revoke": [""]}, ["revoke must hold non-empty kid strings"]),
    ("revoke-not-list", {"revoke": {"kid": "x"}}, ["revoke", "list"]),
    ("merge-not-bool", {"merge": "maybe"}, ["merge", "not a valid boolean"]),
    ("merge-without-dest", {"merge": True}, ["merge=true needs the JWKS published so far"]),
    ("allow-empty-not-bool", {"allow_empty": "perhaps"}, ["allow_empty", "not a valid boolean"]),
    # budget: max_keys, max_bytes, budget_warn_percent
    ("max-keys-negative", {"max_keys": -1}, ["max_keys must be 0 (no limit) or more, got -1"]),
    ("max-keys-not-int", {"max_keys": "many"}, ["max_keys", "unable to convert to int"]),
    ("max-keys-exceeded", {"dest": "{t}/jwks/jwks.json", "keys": ["@jwk:ec", "@jwk:ed"], "max_keys": 1},
     ["2 keys, more than the budget of 1 keys", "nothing was published", "Fix:"]),
    ("max-bytes-negative", {"max_bytes": -100}, ["max_bytes must be 0 (no limit) or more, got -100"]),
    ("max-bytes-exceeded", {"dest": "{t}/jwks/jwks.json", "keys": ["@jwk:ec"], "max_bytes": 64},
     ["more than the budget of 64 bytes", "nothing was published"]),
    ("budget-warn-percent-negative", {"budget_warn_percent": -5}, ["budget_warn_percent must be 0 (no limit) or more"]),
    ("budget-warn-percent-not-int", {"budget_warn_percent": "half"}, ["budget_warn_percent", "unable to convert"]),
    # issuer, jwks_uri, discovery_dest
    ("issuer-without-jwks-uri", {"issuer": ISSUER}, ["parameters are required together: issuer, jwks_uri"]),
    ("issuer-not-url", {"issuer": "edge", "jwks_uri": JWKS_URI}, ["issuer 'edge' must be an http(s) URL"]),
    ("issuer-with-query", {"issuer": ISSUER + "/?tenant=1", "jwks_uri": JWKS_URI},
     ["must be an http(s) URL without query or fragment"]),
    ("jwks-uri-ftp", {"issuer": ISSUER, "jwks_uri": "ftp://x/jwks.json"}, ["jwks_uri 'ftp://x/jwks.json' must be"]),
    ("discovery-dest-without-issuer", {"discovery_dest": "{t}/jwks/openid-configuration"},
     ["missing parameter(s) required by 'discovery_dest'"]),
    ("discovery-dest-is-dest", {"dest": "{t}/jwks/jwks.json", "discovery_dest": "{t}/jwks/jwks.json",
                                "issuer": ISSUER, "jwks_uri": JWKS_URI}, ["give the discovery document its own path"]),
    ("discovery-dest-directory", {"discovery_dest": "{t}/adir", "issuer": ISSUER, "jwks_uri": JWKS_URI},
     ["is a directory, not a file"]),
    ("discovery-dest-array", {"discovery_dest": "{t}/jwks/array.json", "issuer": ISSUER, "jwks_uri": JWKS_URI},
     ["is not a JSON object", "it was left unchanged"]),
    ("discovery-dest-a-key", {"dest": "{t}/jwks/jwks.json", "discovery_dest": "{t}/keys/ec.pem",
                              "issuer": ISSUER, "jwks_uri": JWKS_URI}, ["is not a JSON document"]),
    # file attributes
    ("mode-invalid", {"dest": "{t}/jwks/jwks.json", "keys": ["@jwk:ed"], "mode": "u=rwz"}, ["neither octal"]),
    ("mode-invalid-new-file", {"dest": "{t}/jwks/new.json", "mode": "0999"}, ["neither octal"]),
    ("owner-unknown", {"dest": "{t}/jwks/jwks.json", "keys": ["@jwk:ed"], "owner": "no-such-user-matrix"},
     ["user no-such-user-matrix does not exist"]),
    ("group-unknown", {"dest": "{t}/jwks/jwks.json", "keys": ["@jwk:ed"], "group": "no-such-group-matrix"},
     ["group no-such-group-matrix does not exist"]),
]


KEYRING_CASES = [
    # path
    ("path-missing", {"path": DROP}, ["missing required arguments: path"]),
    ("path-empty", {"path": ""}, ["path must be the path of the private key file"]),
    ("path-is-directory", {"path": "{t}/adir"}, ["is a directory, not a file", "give the path of a file"]),
    ("path-below-a-file", {"path": "{t}/plain.txt/key.pem"}, ["{t}/plain.txt is not a directory"]),
    ("path-dir-missing", {"path": "{t}/nowhere/key.pem"}, ["does not exist: create it first"]),
    ("path-nul-byte", {"path": "{t}/keys/a\x00b.pem"}, ["contains a NUL byte: give a valid path"]),
    ("path-name-too-long", {"path": "{t}/keys/" + LONG_NAME}, ["File name too long"]),
    ("path-no-key", {"path": "{t}/keys/new.pem"}, ["there is no signing key at {t}/keys/new.pem",
                                                   "create it first"]),
    ("path-corrupt-pem", {"path": "{t}/keys/corrupt.pem"},
     ["is damaged", "Nothing was changed", "restore the key from a backup", "regenerate=full_idempotence"]),
    ("path-not-pem", {"path": "{t}/keys/garbage.pem"}, ["is not a PEM private key", "restore the key"]),
    ("path-empty-file", {"path": "{t}/keys/empty.pem"}, ["is empty", "restore the key"]),
    ("path-public-key", {"path": "{t}/keys/public.pem"}, ["is a public key or certificate, not a private key"]),
    ("path-certificate", {"path": "{t}/keys/cert.pem"}, ["is a public key or certificate, not a private key"]),
    ("path-encrypted-no-passphrase", {"path": "{t}/ring/enc.pem"}, ["is encrypted: set the passphrase"]),
    ("path-dsa-key", {"path": "{t}/keys/dsa.pem"}, ["unsupported key type DSAPrivateKey", "use an RSA"]),
    ("path-rsa-1024", {"path": "{t}/keys/rsa1024.pem", "type": "rsa", "size": 2048}, ["1024 bits; at least 2048"]),
    ("path-ed448-key", {"path": "{t}/keys/ed448.pem"}, ["unsupported key type Ed448PrivateKey", "Ed25519"]),
    ("path-secp256k1-key", {"path": "{t}/keys/secp256k1.pem"}, ["unsupported EC curve secp256k1"]),
    ("path-oversize-file", {"path": "{t}/keys/big.pem"}, ["larger than 1048576 bytes"], _big_key),
    # path: the ring state <path>.ring.json
    ("state-not-json", {"path": "{t}/ring/not-json.pem"},
     ["the key ring state {t}/ring/not-json.pem.ring.json is not valid JSON", "restore it from a backup"]),
    ("state-not-utf8", {"path": "{t}/ring/binary.pem"}, ["ring.json is not valid JSON", "move it away"]),
    ("state-array", {"path": "{t}/ring/array.pem"}, ["is not a version 1 key ring state", "restore it"]),
    ("state-empty-file", {"path": "{t}/ring/empty.pem"}, ["ring.json is not valid JSON"]),
    ("state-other-version", {"path": "{t}/ring/version-2.pem"}, ["is not a version 1 key ring state"]),
    ("state-keys-not-list", {"path": "{t}/ring/keys-not-list.pem"}, ["is not a version 1 key ring state"]),
    ("state-entry-not-object", {"path": "{t}/ring/entry-not-object.pem"}, ["holds an invalid key entry"]),
    ("state-entry-odd-state", {"path": "{t}/ring/entry-odd-state.pem"}, ["holds an invalid key entry"]),
    ("state-entry-without-jwk", {"path": "{t}/ring/entry-jwk-missing.pem"}, ["holds an invalid key entry"]),
    ("state-duplicate-kid", {"path": "{t}/ring/duplicate-kid.pem"}, ["holds an invalid key entry"]),
    ("state-bad-time", {"path": "{t}/ring/bad-time.pem"},
     ["activated_at of kid", "'yesterday' is not a UTC time like 2026-01-31T12:00:00Z"]),
    ("state-two-active", {"path": "{t}/ring/two-active.pem"}, ["has more than one active or next key"]),
    ("state-kid-is-a-path", {"path": "{t}/ring/kid-path.pem"},
     ["holds the kid '/../../../victim/target', which is not an RFC 7638 thumbprint", "nothing was changed"],
     lambda root: os.makedirs(os.path.join(root, "ring", "kid-path.pem."))),
    ("state-kid-not-a-thumbprint", {"path": "{t}/ring/kid-short.pem", "action": "revoke",
                                    "remove_private_keys": True},
     ["holds the kid 'edge-01', which is not an RFC 7638 thumbprint"]),
    ("state-symlink", {"path": "{t}/ring/linked.pem"}, ["ring.json is a symbolic link", "replace the link"],
     _link("ring/linked.pem.ring.json", "{t}/ring/signing.pem.ring.json")),
    ("state-foreign-owner", {"path": "{t}/ring/foreign.pem"},
     ["key ring state {t}/ring/foreign.pem.ring.json belongs to nobody", "set owner"],
     _foreign_copy("ring/signing.pem", "ring/foreign.pem", _keyring.STATE_SUFFIX)),
    ("key-foreign-owner", {"path": "{t}/ring/foreign.pem"}, ["{t}/ring/foreign.pem belongs to nobody"],
     _foreign_copy("ring/signing.pem", "ring/foreign.pem")),
    ("path-lock-symlink", {"path": "{t}/ring/signing.pem"},
     ["lock file {t}/ring/.signing.pem.lock is a symbolic link"],
     _link("ring/.signing.pem.lock", "{t}/made-through-the-lock")),
    ("path-in-world-writable-directory", {"path": "{t}/shared/signing.pem"},
     ["can be written by its group or by others (mode 1777)"], _shared_directory),
    ("owner-unknown", {"owner": "no-such-user-matrix"}, ["user no-such-user-matrix does not exist"]),
    ("state-is-directory", {"path": "{t}/keys/ec.pem"},
     ["key ring state {t}/keys/ec.pem.ring.json is a directory, not a file"], _state_directory),
    ("state-without-key", {"path": "{t}/ring/keyless.pem"},
     ["the signing key {t}/ring/keyless.pem is missing, but its key ring", "restore the key"]),
    ("state-key-retired", {"path": "{t}/ring/retired.pem"}, ["is retired in its key ring", "restore the active key"]),
    # pkcs11_uri, pkcs11_pin, pkcs11_pin_file, state_path: a signing key in a PKCS#11 token (refused before any
    # library is loaded); its ring state is at state_path
    ("pkcs11-uri-and-path", {"pkcs11_uri": TOKEN_URI}, ["mutually exclusive: path|pkcs11_uri"]),
    ("pkcs11-uri-not-a-uri", {"path": DROP, "pkcs11_uri": "token=edge", "state_path": RING_STATE},
     ["must start with 'pkcs11:'"]),
    ("pkcs11-uri-pin-value", {"path": DROP, "pkcs11_uri": TOKEN_URI + "&pin-value=1234", "state_path": RING_STATE},
     ["carries the PIN"]),
    ("pkcs11-uri-no-library", {"path": DROP, "pkcs11_uri": TOKEN_URI, "state_path": RING_STATE},
     ["/nonexistent/libpkcs11.so does not exist"]),
    ("pkcs11-pin-empty", {"path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin": "", "state_path": RING_STATE},
     ["pkcs11_pin is empty"]),
    ("pkcs11-pin-file-missing", {"path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "{t}/nope.pin",
                                 "state_path": RING_STATE}, ["PIN file {t}/nope.pin does not exist"]),
    ("pkcs11-uri-without-state-path", {"path": DROP, "pkcs11_uri": TOKEN_URI},
     ["missing parameter(s) required by 'pkcs11_uri': state_path"]),
    ("pkcs11-uri-with-id", {"path": DROP, "pkcs11_uri": TOKEN_URI.replace(";object", ";id=%01;object"),
                            "state_path": RING_STATE}, ["names an id", "Remove id= from the URI"]),
    ("pkcs11-uri-and-passphrase", {"path": DROP, "pkcs11_uri": TOKEN_URI, "state_path": RING_STATE,
                                   "passphrase": PASSPHRASE}, ["mutually exclusive: passphrase|pkcs11_uri"]),
    ("pkcs11-pin-without-uri", {"pkcs11_pin": PASSPHRASE}, ["missing parameter(s) required by 'pkcs11_pin': pkcs11_uri"]),
    ("pkcs11-pin-file-without-uri", {"pkcs11_pin_file": "{t}/plain.txt"},
     ["missing parameter(s) required by 'pkcs11_pin_file': pkcs11_uri"]),
    ("pkcs11-pin-and-pin-file", {"path": DROP, "pkcs11_uri": TOKEN_URI, "state_path": RING_STATE,
                                 "pkcs11_pin": PASSPHRASE, "pkcs11_pin_file": "{t}/plain.txt"},
     ["mutually exclusive: pkcs11_pin|pkcs11_pin_file"]),
    ("state-path-without-uri", {"state_path": RING_STATE}, ["missing parameter(s) required by 'state_path': pkcs11_uri"]),
    ("state-path-relative", {"path": DROP, "pkcs11_uri": TOKEN_URI, "state_path": "hsm.ring.json"},
     ["set state_path to an absolute path"]),
    ("state-path-dir-missing", {"path": DROP, "pkcs11_uri": TOKEN_URI, "state_path": "{t}/nowhere/hsm.ring.json"},
     ["the directory {t}/nowhere for key ring state {t}/nowhere/hsm.ring.json does not exist"]),
    # action, published_kids
    ("action-wrong-enum", {"action": "rotate-now"},
     ["value of action must be one of: status, auto, rotate, stage, mark_published, activate, retire, revoke"]),
    ("action-not-a-string", {"action": ["auto"]}, ["value of action must be one of"]),
    ("action-activate-without-next", {"action": "activate"},
     ["cannot activate: there is no next key: stage one first", "Nothing was changed"]),
    ("action-activate-unpublished", {"path": "{t}/ring/staged.pem", "action": "activate"},
     ["has not been published yet", "action=mark_published", "Nothing was changed"]),
    ("action-mark-published-without-kids", {"action": "mark_published"},
     ["action is mark_published but all of the following are missing: published_kids"]),
    ("published-kids-without-mark-published", {"published_kids": ["abc"]},
     ["published_kids is only used with action=mark_published"]),
    ("published-kids-not-list", {"action": "mark_published", "published_kids": {"kid": "abc"}},
     ["published_kids", "cannot be converted to a list"]),
    # timing
    ("propagation-window-negative", {"propagation_window": -1},
     ["propagation_window must be a whole number of seconds >= 0, got -1"]),
    ("propagation-window-not-int", {"propagation_window": "soon"}, ["propagation_window", "int"]),
    ("token-max-lifetime-negative", {"token_max_lifetime": -60},
     ["token_max_lifetime must be a whole number of seconds"]),
    ("token-max-lifetime-not-int", {"token_max_lifetime": "1h"}, ["token_max_lifetime", "int"]),
    ("clock-skew-negative", {"clock_skew": -5}, ["clock_skew must be a whole number of seconds >= 0, got -5"]),
    ("clock-skew-not-int", {"clock_skew": "a minute"}, ["clock_skew", "int"]),
    ("max-key-age-negative", {"max_key_age": -1}, ["max_key_age must be a whole number of seconds >= 0"]),
    ("max-key-age-not-above-window", {"max_key_age": 1800},
     ["max_key_age (1800 s) must be longer than propagation_window (1800 s)"]),
    ("max-key-age-not-int", {"max_key_age": "90d"}, ["max_key_age", "int"]),
    # new keys: type, size, curve, algorithm
    ("type-dsa", {"type": "dsa"}, ["value of type must be one of: rsa, ec, ed25519, got: dsa"]),
    ("size-1024", {"type": "rsa", "size": 1024}, ["size must be between 2048 and 16384"]),
    ("size-not-a-number", {"type": "rsa", "size": "big"}, ["size", "int"]),
    ("curve-p192", {"curve": "P-192"}, ["value of curve must be one of: P-256, P-384, P-521, got: P-192"]),
    ("algorithm-hs256", {"algorithm": "HS256"}, ["value of algorithm must be one of"]),
    ("algorithm-none", {"algorithm": "none"}, ["value of algorithm must be one of"]),
    ("algorithm-other-key-type", {"algorithm": "RS256"},
     ["algorithm RS256 needs a key of type rsa, but type is ec: change type or algorithm"]),
    # passphrase
    ("passphrase-wrong", {"path": "{t}/ring/enc.pem", "passphrase": PASSPHRASE + "-not"},
     ["could not be decrypted", "Give the right passphrase"]),
    ("passphrase-for-plain-key", {"passphrase": PASSPHRASE}, ["is not encrypted, but a passphrase was given"]),
    ("passphrase-dict", {"path": "{t}/ring/enc.pem", "passphrase": {PASSPHRASE: True}}, ["could not be decrypted"]),
    ("path-private-key-text", {"path": "@pem:ec_private"}, ["holds a PEM private key, not a path"]),
    # keep_retired_keys, remove_private_keys
    ("keep-retired-keys-not-bool", {"keep_retired_keys": "maybe"}, ["keep_retired_keys", "not a valid boolean"]),
    ("remove-private-keys-not-bool", {"action": "revoke", "remove_private_keys": "perhaps"},
     ["remove_private_keys", "not a valid boolean"]),
    # no file options: modes are fixed (keys keep the mode of the key file, the state is 0600)
    ("mode-unsupported", {"mode": "0644"}, ["Unsupported parameters", "mode"]),
]


#: The unsafe-character refusals are covered option by option in test_token_refresher.py.
REFRESHER_CASES = [
    # key_path, kid, algorithm, passphrase_file: checked by signing once before anything is written
    ("key-path-missing", {"key_path": DROP}, ["set exactly one of key_path (a key file) and pkcs11_uri"]),
    ("key-path-relative", {"key_path": "keys/ec.pem"}, ["key_path must be an absolute path"]),
    ("key-path-no-key", {"key_path": "{t}/keys/new.pem"}, ["{t}/keys/new.pem does not exist",
                                                           "selfjwt.kyma.jwt_keypair"]),
    ("key-path-corrupt", {"key_path": "{t}/keys/corrupt.pem"}, ["is damaged"]),
    ("key-path-directory", {"key_path": "{t}/adir"}, ["is a directory, not a file"]),
    ("key-path-encrypted-without-passphrase", {"key_path": "{t}/keys/enc.pem"}, ["is encrypted"]),
    ("kid-invalid", {"kid": "bad kid!"}, ["kid 'bad kid!' is not allowed"]),
    ("algorithm-hs256", {"algorithm": "HS256"}, ["algorithm HS256 is refused"]),
    ("algorithm-other-key-type", {"algorithm": "RS256"}, ["algorithm RS256 needs a key of type RSA"]),
    ("passphrase-file-missing", {"key_path": "{t}/keys/enc.pem", "passphrase_file": "{t}/keys/enc.passphrase"},
     ["the passphrase file {t}/keys/enc.passphrase does not exist"]),
    ("passphrase-file-relative", {"passphrase_file": "enc.passphrase"}, ["passphrase_file must be an absolute path"]),
    # pkcs11_uri, pkcs11_pin_file, pkcs11_pin (cases that load no PKCS#11 library)
    ("pkcs11-uri-and-key-path", {"pkcs11_uri": TOKEN_URI},
     ["set exactly one of key_path (a key file) and pkcs11_uri (a key in a PKCS#11 token), not both"]),
    ("pkcs11-pin-refused", {"key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin": PASSPHRASE},
     ["pkcs11_pin cannot be used with the token refresher", "set pkcs11_pin_file"]),
    ("pkcs11-uri-pin-value", {"key_path": DROP, "pkcs11_uri": TOKEN_URI + "&pin-value=" + PASSPHRASE_PCT},
     ["pkcs11_uri: PKCS#11 URI", "carries the PIN (pin-value)"]),
    ("pkcs11-uri-no-module-path", {"key_path": DROP, "pkcs11_uri": "pkcs11:token=edge;object=jwt-signing"},
     ["pkcs11_uri: PKCS#11 URI pkcs11:token=edge;object=jwt-signing names no PKCS#11 library"]),
    ("pkcs11-uri-and-passphrase-file", {"key_path": DROP, "pkcs11_uri": TOKEN_URI,
                                        "passphrase_file": "{t}/keys/enc.passphrase"},
     ["passphrase_file is for an encrypted key file", "set pkcs11_pin_file instead"]),
    ("pkcs11-pin-file-without-uri", {"pkcs11_pin_file": "{t}/keys/pin"},
     ["pkcs11_pin_file goes with pkcs11_uri, which is not set"]),
    ("pkcs11-pin-file-relative", {"key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "pin"},
     ["pkcs11_pin_file must be an absolute path"]),
    ("pkcs11-python-without-the-package", {"key_path": DROP, "pkcs11_uri": TOKEN_URI, "python": "/bin/false"},
     ["the refresher's Python /bin/false cannot import python-pkcs11", "edge_keys_key_backend is pkcs11"]),
    ("pkcs11-pin-file-missing", {"key_path": DROP, "pkcs11_uri": TOKEN_URI, "pkcs11_pin_file": "{t}/keys/pin",
                                 "python": sys.executable},
     ["the PIN file {t}/keys/pin does not exist"]),
    ("pkcs11-pin-file-readable-by-others", {"key_path": DROP, "pkcs11_uri": TOKEN_URI, "python": sys.executable,
                                            "pkcs11_pin_file": "{t}/plain.txt"},
     ["the PIN file {t}/plain.txt has mode 0644, so others may read it", "pkcs11_pin_file"]),
    # token claims
    ("issuer-missing", {"issuer": DROP}, ["missing required arguments: issuer"]),
    ("issuer-not-a-url", {"issuer": "edge-jwks", "option_names": {"issuer": "edge_keys_issuer"}},
     ["edge_keys_issuer must be an http(s) URL"]),
    ("subject-empty", {"subject": " "}, ["subject must be a non-empty string"]),
    ("audience-empty-member", {"audience": [""]}, ["audience must be a non-empty string or a list"]),
    ("expires-in-above-max", {"expires_in": 7200, "refresh_margin": 600}, ["expires_in 7200 exceeds max_lifetime"]),
    ("expires-in-not-int", {"expires_in": "ten minutes"}, ["expires_in", "int"]),
    ("max-lifetime-below-lifetime", {"max_lifetime": 300}, ["exceeds max_lifetime 300"]),
    ("not-before-positive", {"not_before": 30}, ["not_before must be 0 or negative"]),
    ("not-before-too-early", {"not_before": -400}, ["not_before must be whole seconds from now between -300"]),
    ("scopes-with-space", {"scopes": ["orders read"]}, ["scopes must be a list of scope names without spaces"]),
    ("claims-registered", {"claims": {"iss": "other"}}, ["claim 'iss' cannot be set through claims"]),
    ("claims-scope-and-scopes", {"claims": {"scope": "a"}, "scopes": ["b"]},
     ["the scope claim is set both by scopes and by claims"]),
    ("jku-not-a-url", {"jku": "edge-jwks/jwks.json"}, ["jku must be an http(s) URL"]),
    # paths and names
    ("token-dir-unsafe", {"token_dir": "{t}/self jwt", "option_names": {"token_dir": "edge_keys_token_dir"}},
     ["edge_keys_token_dir '{t}/self jwt' holds a space"]),
    ("token-dir-is-a-file", {"token_dir": "{t}/plain.txt"}, ["{t}/plain.txt exists but is not a directory"]),
    ("token-dir-relative", {"token_dir": "state"}, ["token_dir 'state' is not an absolute path"]),
    ("token-filename-with-slash", {"token_filename": "a/token"}, ["token_filename 'a/token' holds '/' (give a file name, not a path)"]),
    ("token-group-unknown", {"token_group": "no-such-group-7f3a"}, ["group no-such-group-7f3a does not exist"]),
    ("refresh-margin-not-below-lifetime", {"refresh_margin": 600},
     ["refresh_margin must be at least 0 and less than expires_in"]),
    ("refresh-margin-below-cron-period", {"refresh_margin": 30}, ["The cron scheduler runs the refresher every 60 s"]),
    ("owner-unknown", {"owner": "no-such-user-7f3a"}, ["user no-such-user-7f3a does not exist"]),
    ("owner-unsafe", {"owner": "edge\nagent"}, ["owner 'edge\\nagent' holds a newline"]),
    ("group-unknown", {"group": "no-such-group-7f3a"}, ["group no-such-group-7f3a does not exist"]),
    ("lib-dir-relative", {"lib_dir": "lib"}, ["lib_dir 'lib' is not an absolute path"]),
    ("lib-dir-percent", {"lib_dir": "{t}/lib%i"}, ["holds '%'"]),
    ("lib-dir-below-a-file", {"lib_dir": "{t}/plain.txt/lib"}, ["{t}/plain.txt/lib: Not a directory"]),
    ("bin-dir-semicolon", {"bin_dir": "{t}/bin;x"}, ["holds ';'"]),
    ("command-name-with-slash", {"command_name": "../selfjwt-token"},
     ["command_name '../selfjwt-token' holds '/'"]),
    ("python-relative", {"python": "python3"}, ["python 'python3' is not an absolute path"]),
    ("python-with-argument", {"python": "/usr/bin/python3 -I"}, ["holds a space"]),
    ("scheduler-unknown", {"scheduler": "launchd"}, ["value of scheduler must be one of: auto, systemd, cron, none"]),
    ("interval-zero", {"interval": 0}, ["interval 0 must be a positive number of seconds"]),
    ("interval-not-int", {"interval": "often"}, ["interval", "int"]),
    ("unit-name-unsafe", {"unit_name": "selfjwt token"}, ["unit_name 'selfjwt token' holds a space"]),
    ("systemd-unit-dir-empty", {"scheduler": "systemd", "systemd_unit_dir": ""},
     ["set systemd_unit_dir (default /etc/systemd/system) for the systemd scheduler"]),
    ("cron-file-directory-missing", {"cron_file": "{t}/nowhere/cron"},
     ["the directory {t}/nowhere for {t}/nowhere/cron does not exist"]),
    ("cron-file-is-a-directory", {"cron_file": "{t}/adir"}, ["{t}/adir is a directory, not a file"]),
    ("option-names-not-a-dict", {"option_names": ["edge_keys_issuer"]}, ["option_names", "dict"]),
]


def _cases():
    for module, table in (("jwt_keypair", KEYPAIR_CASES), ("jwt_token", TOKEN_CASES), ("jwks_publish", JWKS_CASES),
                          ("jwt_keyring", KEYRING_CASES), ("token_refresher", REFRESHER_CASES)):
        for case in table:
            name, args, expected = case[:3]
            prepare = case[3] if len(case) > 3 else None
            yield pytest.param(module, args, expected, prepare, id="%s-%s" % (module, name))


# --------------------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------------------

def build_tree(root, material):
    os.makedirs(os.path.join(root, "adir"))
    for name, data in sorted(material["files"].items()):
        path = os.path.join(root, name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600 if name.startswith(("keys/", "token/", "ring/")) else 0o644)


def snapshot(root):
    """{relative path: (file type, mode, uid, gid, sha256 or None)} of everything below ``root``."""
    return tree_state(root)


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
LOCK_NAME = re.compile(r"^\.[^/]+\.lock$")


def tree_changes(before, after):
    """Human-readable differences; new empty lock files are fine (they hold no data)."""
    changes = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append("removed %s" % path)
        elif path not in before:
            kind, _mode, _uid, _gid, digest = after[path]
            if not (LOCK_NAME.match(os.path.basename(path)) and stat.S_ISREG(kind) and digest == EMPTY_SHA256):
                changes.append("created %s" % path)
        elif before[path] != after[path]:
            changes.append("changed %s: %r -> %r" % (path, before[path], after[path]))
    return changes


def run_main(module_name, args, capsys):
    """Run a module's main() like Ansible does; (exit code, stdout, stderr, parsed result or None)."""
    code = None
    crash = ""
    with patch_module_args(args):
        try:
            MODULES[module_name].main()
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # pylint: disable=broad-exception-caught
            crash = traceback.format_exc()
    captured = capsys.readouterr()
    try:
        result = json.loads(captured.out)
    except ValueError:
        result = None
    return code, captured.out, captured.err + crash, result


@pytest.fixture
def tree(tmp_path, material, monkeypatch):
    root = str(tmp_path / "t")
    os.makedirs(root)
    build_tree(root, material)
    # Relative paths (an Ansible type conversion may make one) land in the tree, not in the repository.
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize("module_name, overrides, expected, prepare", list(_cases()))
def test_bad_input_fails_cleanly(tree, material, capsys, module_name, overrides, expected, prepare):
    if prepare is not None:
        prepare(tree)
    args = dict(BASE_ARGS[module_name])
    for name, value in overrides.items():
        if value is DROP:
            args.pop(name, None)
        else:
            args[name] = value
    args = resolve(args, material, tree)
    before = snapshot(tree)

    code, out, err, result = run_main(module_name, args, capsys)

    output = out + err
    assert TRACEBACK not in output, output[-3000:]
    assert result is not None, "no JSON result:\n%s" % output[-3000:]
    assert result.get("failed") is True, "expected a failure, got %s" % json.dumps(result)[:1500]
    assert code not in (0, None)
    assert "exception" not in result, result["exception"]
    for text in expected:
        text = text.replace("{t}", tree)
        assert text in result["msg"], "%r not in %r" % (text, result["msg"])
    assert tree_changes(before, snapshot(tree)) == []
    # Nothing secret in what Ansible would print.
    assert PASSPHRASE not in output and SECRET not in output
    assert not PEM_PRIVATE.search(output)
    for line in material["private_lines"]:
        assert line not in output
    assert "token" not in result


def test_duplicate_kid_message_names_both_places(tree, material, capsys):
    """keys-duplicate-kid in the table checks the clean failure; this checks the wording."""
    kid = material["jwk:ec"]["kid"]
    args = {"keys": [material["jwk:ec"], dict(material["jwk:other_ec"], kid=kid)]}
    _code, _out, _err, result = run_main("jwks_publish", args, capsys)
    assert result["failed"] is True
    assert "kid %s is given twice (keys[0] and keys[1]) for two different keys" % kid in result["msg"]
    assert "give the keys distinct kids" in result["msg"]


# --------------------------------------------------------------------------------------
# The matrix covers every option
# --------------------------------------------------------------------------------------

def _argument_spec(module_name):
    if module_name == "jwks_publish":
        # jwks_publish builds its spec inline in main(); read it from the module's documentation.
        import yaml  # pylint: disable=import-outside-toplevel
        return set(yaml.safe_load(jwks_publish.DOCUMENTATION)["options"])
    return set(MODULES[module_name].argument_spec())


@pytest.mark.parametrize("module_name, table", [("jwt_keypair", KEYPAIR_CASES), ("jwt_token", TOKEN_CASES),
                                                ("jwks_publish", JWKS_CASES), ("jwt_keyring", KEYRING_CASES),
                                                ("token_refresher", REFRESHER_CASES)])
def test_every_option_has_a_case(module_name, table):
    options = _argument_spec(module_name)
    if module_name not in NO_FILE_OPTIONS:
        options |= set(FILE_OPTIONS)
    options -= set(IGNORED_FILE_OPTIONS)
    covered = set()
    for case in table:
        covered.update(case[1])
    missing = sorted(options - covered)
    assert missing == [], "options of %s without a bad-input case: %s" % (module_name, ", ".join(missing))


def test_the_tree_check_sees_changes(tmp_path):
    """The tree comparison catches what the matrix relies on it to catch."""
    root = str(tmp_path)
    with open(os.path.join(root, "key.pem"), "wb") as handle:
        handle.write(b"old")
    os.chmod(os.path.join(root, "key.pem"), 0o600)
    before = snapshot(root)
    open(os.path.join(root, ".key.pem.lock"), "wb").close()
    assert tree_changes(before, snapshot(root)) == []
    with open(os.path.join(root, ".key.pem.x1y2.tmp"), "wb") as handle:
        handle.write(b"partial")
    os.chmod(os.path.join(root, "key.pem"), 0o644)
    changes = tree_changes(before, snapshot(root))
    assert changes[0].startswith("created .key.pem.x1y2.tmp")
    assert changes[1].startswith("changed key.pem")
    os.chmod(os.path.join(root, "key.pem"), 0o600)
    with open(os.path.join(root, "key.pem"), "wb") as handle:
        handle.write(b"new")
    assert any(change.startswith("changed key.pem") for change in tree_changes(before, snapshot(root)))


def test_a_crash_is_reported_as_a_traceback(capsys, monkeypatch):
    """run_main() turns an unexpected exception into traceback text, so the matrix would see it."""
    def explode(module):
        raise ValueError("boom")

    monkeypatch.setattr(jwt_token, "run", explode)
    _code, _out, err, result = run_main("jwt_token", {"private_key_content": "x", "issuer": "i", "subject": "s"},
                                        capsys)
    assert TRACEBACK in err and result is None
