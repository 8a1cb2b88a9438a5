# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real tokens of tests/tokens.py, used through python-pkcs11: SoftHSM2 and TPM 2.0 (swtpm).

Every token test runs on both tokens (``token`` is parametrised); the TPM ones are skipped with
TokenUnavailable's message if and only if the TPM stack cannot start here.

``signing_templates`` is the C_GenerateKeyPair template pair that both tokens accept for a
non-extractable signing key. What libtpm2_pkcs11 (1.9) needs, and why python-pkcs11's own
defaults fail there with CKR_GENERAL_ERROR: the TPM key has one bit for sign/encrypt and one for
decrypt, and the module maps CKA_SIGN and CKA_ENCRYPT to the first, CKA_DECRYPT and CKA_VERIFY
to the second (both templates, the private one applied last). After generation, every one of
those four attributes that a template gives must equal the key's bits. python-pkcs11 puts
CKA_VERIFY=true and CKA_ENCRYPT=false into the public template, which contradicts CKA_SIGN=true
and CKA_DECRYPT=false. So the public template leaves CKA_VERIFY and CKA_ENCRYPT out (the module
then sets CKA_VERIFY=false on the public object; SoftHSM2 sets it true), and the private one
says CKA_DECRYPT=false, CKA_UNWRAP=false and CKA_DERIVE=false, which SoftHSM2 would otherwise
turn on. libtpm2_pkcs11 only makes token objects (CKA_TOKEN=true).
"""

import hashlib
import os
import shutil
import socket
import stat
from urllib.parse import unquote

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass  # pylint: disable=import-error
from pkcs11.constants import DEFAULT  # pylint: disable=import-error
from pkcs11.exceptions import AttributeSensitive, AttributeTypeInvalid, PKCS11Error  # pylint: disable=import-error
from pkcs11.util.ec import encode_named_curve_parameters  # pylint: disable=import-error

import tokens  # pylint: disable=import-error
from tokens import SoftHSMToken, TPMToken, TokenUnavailable, pkcs11_lib  # pylint: disable=import-error

CURVES = {
    "P-256": ("secp256r1", ec.SECP256R1(), hashes.SHA256(), hashlib.sha256),
    "P-384": ("secp384r1", ec.SECP384R1(), hashes.SHA384(), hashlib.sha384),
}

# What reading CKA_VALUE of the private key raises: SoftHSM2 holds the value and refuses it,
# libtpm2_pkcs11 has no such attribute (the key lives in the TPM, wrapped by it).
VALUE_REFUSED = (AttributeSensitive, AttributeTypeInvalid)


def signing_templates(key_type, key_id, label, curve=None, bits=None):
    """(public, private) templates of a non-extractable signing key pair, for Session.generate_keypair.

    DEFAULT removes what python-pkcs11 would add on its own (see the module docstring).
    """
    public = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: key_type, Attribute.TOKEN: True,
              Attribute.PRIVATE: False, Attribute.ID: key_id, Attribute.LABEL: label, Attribute.WRAP: False,
              Attribute.VERIFY: DEFAULT, Attribute.ENCRYPT: DEFAULT}
    private = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: key_type, Attribute.TOKEN: True,
               Attribute.PRIVATE: True, Attribute.ID: key_id, Attribute.LABEL: label,
               Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
               Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False}
    if key_type == KeyType.EC:
        public[Attribute.EC_PARAMS] = encode_named_curve_parameters(CURVES[curve][0])
    else:
        public[Attribute.MODULUS_BITS] = bits
        public[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
    return public, private


def generate(session, key_type, key_id, label, curve=None, bits=None):
    public, private = signing_templates(key_type, key_id, label, curve, bits)
    return session.generate_keypair(key_type, bits, public_template=public, private_template=private)


@pytest.fixture(params=["softhsm", "tpm"])
def token(request, monkeypatch):
    """Each token in turn, with its environment set for this test."""
    chosen = request.getfixturevalue(request.param + "_token")
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen


def open_session(token_):
    return pkcs11_lib(token_).get_token(token_label=token_.label).open(rw=True, user_pin=token_.pin)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_ec_key_is_non_extractable_and_signs_es(token, curve):
    point_curve, digest, hash_function = CURVES[curve][1:]
    with open_session(token) as session:
        public, private = generate(session, KeyType.EC, b"\x01\x02", "es-" + curve, curve=curve)

        assert private[Attribute.ID] == b"\x01\x02" and private[Attribute.LABEL] == "es-" + curve
        assert public[Attribute.ID] == b"\x01\x02" and public[Attribute.LABEL] == "es-" + curve
        assert private[Attribute.TOKEN] and private[Attribute.PRIVATE] and private[Attribute.SIGN]
        assert private[Attribute.SENSITIVE] and private[Attribute.ALWAYS_SENSITIVE]
        assert not private[Attribute.EXTRACTABLE] and private[Attribute.NEVER_EXTRACTABLE]
        assert not private[Attribute.DECRYPT] and not private[Attribute.DERIVE]
        with pytest.raises(VALUE_REFUSED):
            private[Attribute.VALUE]  # pylint: disable=pointless-statement
        if isinstance(token, SoftHSMToken):
            # libtpm2_pkcs11 has no C_GenerateKey (CKR_FUNCTION_NOT_SUPPORTED): no key to wrap with.
            wrapping_key = session.generate_key(KeyType.AES, 256, template={Attribute.TOKEN: False})
            with pytest.raises(PKCS11Error):
                wrapping_key.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)

        # CKA_EC_POINT is the DER OCTET STRING around the uncompressed point, on both tokens.
        encoded = public[Attribute.EC_POINT]
        assert encoded[0] == 0x04 and encoded[1] == len(encoded) - 2
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(point_curve, encoded[2:])

        # ES256/ES384: hash here, sign with CKM_ECDSA (SoftHSM2 has no CKM_ECDSA_SHA256); raw r||s.
        message = b"header.payload"
        signature = private.sign(hash_function(message).digest(), mechanism=Mechanism.ECDSA)
    half = point_curve.key_size // 8 + (1 if point_curve.key_size % 8 else 0)
    assert len(signature) == 2 * half
    der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
    public_key.verify(der, message, ec.ECDSA(digest))
    with pytest.raises(InvalidSignature):
        public_key.verify(der, message + b".", ec.ECDSA(digest))


def test_rsa_key_signs_rs256_and_ps256(token):
    message = b"header.payload"
    with open_session(token) as session:
        public, private = generate(session, KeyType.RSA, b"\x03", "rs", bits=2048)
        assert not private[Attribute.EXTRACTABLE] and private[Attribute.SENSITIVE]
        assert not private[Attribute.DECRYPT]
        public_key = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                          int.from_bytes(public[Attribute.MODULUS], "big")).public_key()
        pkcs1 = private.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS)
        pss = private.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                           mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32))
    assert public_key.key_size == 2048 and public_key.public_numbers().e == 65537
    public_key.verify(pkcs1, message, padding.PKCS1v15(), hashes.SHA256())
    public_key.verify(pss, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public_key.verify(pkcs1, message + b".", padding.PKCS1v15(), hashes.SHA256())


def test_relabelled_key_is_found_by_its_new_label_and_destroyed(token):
    """What rotation needs: activation relabels the objects, retirement destroys them."""
    with open_session(token) as session:
        public, private = generate(session, KeyType.EC, b"\x04", "next", curve="P-256")
        private[Attribute.LABEL] = "active"
        public[Attribute.LABEL] = "active"
    with open_session(token) as session:
        assert not list(session.get_objects({Attribute.LABEL: "next"}))
        found = {obj[Attribute.CLASS]: obj for obj in session.get_objects({Attribute.LABEL: "active"})}
        assert sorted(found) == [ObjectClass.PUBLIC_KEY, ObjectClass.PRIVATE_KEY]
        assert found[ObjectClass.PRIVATE_KEY][Attribute.ID] == b"\x04"
        for obj in found.values():
            obj.destroy()
    with open_session(token) as session:
        assert not list(session.get_objects({Attribute.ID: b"\x04"}))


def test_pin_file_is_0600_and_holds_the_pin(softhsm_token, tmp_path):
    path = softhsm_token.pin_file(tmp_path / "pin")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == softhsm_token.pin
    assert len(softhsm_token.pin) >= 16 and softhsm_token.pin != softhsm_token.so_pin


def test_uri_is_rfc7512_with_percent_encoding(tmp_path):
    token_ = SoftHSMToken(tmp_path, label="edge keys;1")
    uri = token_.uri("jwt/key?=%", id=b"\x00\xab", pin_source="file:/etc/pin file")
    assert uri == ("pkcs11:token=edge%20keys%3B1;object=jwt%2Fkey%3F%3D%25;type=private;id=%00%AB"
                   "?module-path=" + token_.module_path + "&pin-source=file%3A/etc/pin%20file")
    path, query = uri[len("pkcs11:"):].split("?")
    attributes = dict(part.split("=", 1) for part in path.split(";"))
    assert unquote(attributes["token"]) == "edge keys;1" and unquote(attributes["object"]) == "jwt/key?=%"
    assert dict(part.split("=", 1) for part in query.split("&"))["module-path"] == token_.module_path
    assert token_.uri() == "pkcs11:token=edge%20keys%3B1?module-path=" + token_.module_path
    assert token_.uri("k", type="public", module_path=None) == "pkcs11:token=edge%20keys%3B1;object=k;type=public"
    with pytest.raises(ValueError):
        token_.uri("k", colour="blue")


def test_module_path_is_found(softhsm_token, tpm_token):
    assert softhsm_token.module_path in tokens.softhsm2_module_candidates()
    assert tpm_token.module_path in tokens.tpm2_pkcs11_module_candidates()
    for path in (softhsm_token.module_path, tpm_token.module_path):
        assert os.path.isfile(path)


def test_softhsm_failure_names_the_step_and_masks_the_pins(tmp_path):
    with pytest.raises(TokenUnavailable) as failed:
        SoftHSMToken(tmp_path, pin="x9q", so_pin="so-pin-secret")  # SoftHSM2 wants 4-255 characters
    message = str(failed.value)
    assert message.startswith("SoftHSM2 token unavailable: step 'initialise the token' failed: `softhsm2-util --init-token")
    assert "--pin *** --so-pin ***" in message and "Could not get user PIN" in message
    assert "x9q" not in message and "so-pin-secret" not in message


def _processes_mentioning(text):
    """PIDs of live (not zombie) processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


def test_tpm_token_retries_a_taken_port_and_stops_every_process(tpm_token, tmp_path, monkeypatch):
    """Two TPM tokens at once (this one and the module's); the first port pair offered is taken."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    offered = [taken.getsockname()[1]]
    real = tokens._free_port_pair  # pylint: disable=protected-access
    monkeypatch.setattr(tokens, "_free_port_pair", lambda: offered.pop() if offered else real())
    second = TPMToken(tmp_path, label="second")
    try:
        with second:
            assert second.port not in (taken.getsockname()[1], tpm_token.port)
            assert second.env["TPM2_PKCS11_STORE"] != tpm_token.env["TPM2_PKCS11_STORE"]
            assert sorted(second.processes) == ["dbus-daemon", "swtpm", "tpm2-abrmd"]
            started = {name: proc.pid for name, proc in second.processes.items()}
            assert _processes_mentioning(second.directory)  # swtpm's state directory
            for name, value in second.env.items():
                monkeypatch.setenv(name, value)
            labels = [slot_token.label for slot_token in pkcs11_lib(second).get_tokens()]
            assert "second" in labels and tpm_token.label not in labels
    finally:
        taken.close()
    assert not offered
    assert all(proc.returncode is not None for proc in second.processes.values())
    for pid in started.values():
        assert not os.path.exists("/proc/%d" % pid)
    assert not _processes_mentioning(second.directory)
    assert not _processes_mentioning("port=%d" % second.port)


def test_tpm_token_failure_names_the_step_and_stops_what_it_started(tpm_token, tmp_path, monkeypatch):
    """tpm2_ptool is missing: swtpm, dbus-daemon and tpm2-abrmd ran, and are stopped again."""
    assert tpm_token.processes  # the stack runs on this machine
    tools = tmp_path / "bin"
    tools.mkdir()
    for command in ("swtpm", "dbus-daemon", "dbus-send", "tpm2-abrmd"):
        os.symlink(shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin"), str(tools / command))
    monkeypatch.setenv("PATH", str(tools))
    failing = TPMToken(tmp_path / "work")
    (tmp_path / "work").mkdir()
    with pytest.raises(TokenUnavailable) as failed:
        failing.start()
    assert str(failed.value) == ("TPM 2.0 token unavailable: step 'tpm2_ptool init' failed: `tpm2_ptool init`: "
                                 "tpm2_ptool is not installed (Debian package libtpm2-pkcs11-tools)")
    assert sorted(failing.processes) == ["dbus-daemon", "swtpm", "tpm2-abrmd"]
    for proc in failing.processes.values():
        assert proc.returncode is not None
        assert not os.path.exists("/proc/%d" % proc.pid)
    assert not _processes_mentioning("port=%d" % failing.port)
