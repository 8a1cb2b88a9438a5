# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A key ring of a signing key in a real token, on SoftHSM2 and on the software TPM 2.0 (libtpm2_pkcs11).

The unit tests (tests/unit/plugins/module_utils/test_keyring_pkcs11.py) run every step and
every interruption on SoftHSM2. This runs a whole rotation, and an activation cut short
between its two relabels, on both tokens of tests/tokens.py: what a ring needs from a token is
C_GenerateKeyPair of a non-extractable pair, C_SetAttributeValue of CKA_LABEL on both objects,
C_DestroyObject, and signing. The TPM runs are skipped with TokenUnavailable's message if and
only if the TPM stack cannot start here.
"""

import os

import pytest
from pkcs11 import Attribute  # pylint: disable=import-error

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _jws, _keypair, _keyring_pkcs11, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils import _token
from ansible_collections.selfjwt.kyma.plugins.module_utils._keyring import Timing
from tokens import use_token  # pylint: disable=import-error

T0 = 1_800_000_000


@pytest.fixture(params=["softhsm", "tpm"])
def token(request, monkeypatch):
    """Each token in turn, this process's PKCS#11 module initialised again under its environment."""
    return use_token(monkeypatch, request.getfixturevalue(request.param + "_token"))


class Crash(Exception):
    """The process was killed."""


class CrashAfterOneRelabel(_keyring_pkcs11.RingTokenIO):
    def __init__(self):
        self.relabels = 0

    def relabel(self, session, key_id, label):
        if self.relabels:
            raise Crash()
        self.relabels += 1
        super(CrashAfterOneRelabel, self).relabel(session, key_id, label)


def session_of(token):
    return _pkcs11.open_session(_pkcs11.parse_uri(token.uri("any")), token.pin, write=True)


def labels(token, label):
    """{private key label: id hex} of the ring of ``label`` (the label and its dotted labels)."""
    with session_of(token) as session:
        return dict((text, _pkcs11.hex_id(key_id)) for text, key_id in session.private_keys()
                    if text == label or text.startswith(label + "."))


def mint_kid(token, label):
    session, key = _pkcs11.open_key(token.uri(label), pin=token.pin)
    try:
        result = _token.mint(key, "https://edge.example", "edge-01")
        _jws.verify(result.token, key.public_key(), result.header["alg"])
        return result.kid
    finally:
        session.close()


class Ring(object):
    def __init__(self, token, directory, label):
        self.token, self.label = token, label
        self.state_file = os.path.join(str(directory), label + ".ring.json")
        with session_of(token) as session:
            key = session.generate("ec", label=label)
            self.first_kid, self.first_id = _jwk.key_thumbprint(key), _pkcs11.hex_id(key.key_id)

    def run(self, action, now, **kwargs):
        return _keyring_pkcs11.run(_keypair.KeypairSpec(path=self.token.uri(self.label)), self.state_file, action,
                                   Timing(0, 0, 0), now=now, pin=self.token.pin, **kwargs)


def test_rotation_on_the_token(token, tmp_path):
    ring = Ring(token, tmp_path, "ring-rotation")
    staged = ring.run("rotate", T0)
    second = [k for k in staged["keys"] if k["state"] == "next"][0]
    assert labels(token, ring.label) == {ring.label: ring.first_id, ring.label + ".next": second["object_id"]}
    with session_of(token) as session:
        handle = session.find(key_id=bytes.fromhex(second["object_id"]))
        assert not handle[Attribute.EXTRACTABLE] and handle[Attribute.NEVER_EXTRACTABLE]
    ring.run("mark_published", T0 + 1, published_kids=staged["kids"])
    activated = ring.run("auto", T0 + 2)
    assert activated["performed"][0]["step"] == "activate" and activated["signing_kid"] == second["kid"]
    assert labels(token, ring.label) == {ring.label: second["object_id"],
                                         ring.label + "." + ring.first_kid: ring.first_id}
    assert mint_kid(token, ring.label) == second["kid"]
    retired = ring.run("auto", T0 + 3)
    assert retired["performed"] == [{"step": "retire", "kid": ring.first_kid}]
    assert labels(token, ring.label) == {ring.label: second["object_id"]}
    with session_of(token) as session:
        assert session.pair_labels(bytes.fromhex(ring.first_id)) == ([], [])
    removed = ring.run("revoke", T0 + 4, remove_private_keys=True)
    assert [i["kid"] for i in removed["performed"] if i["step"] == "remove_key"] == [second["kid"]]
    assert labels(token, ring.label) == {}


def test_activation_cut_between_its_relabels_is_finished_on_the_token(token, tmp_path):
    ring = Ring(token, tmp_path, "ring-cut")
    staged = ring.run("rotate", T0)
    second = [k for k in staged["keys"] if k["state"] == "next"][0]
    ring.run("mark_published", T0 + 1, published_kids=staged["kids"])
    with pytest.raises(Crash):
        ring.run("auto", T0 + 2, io=CrashAfterOneRelabel())
    with session_of(token) as session:
        both = sorted(_pkcs11.hex_id(key_id) for text, key_id in session.private_keys() if text == ring.label)
    assert both == sorted([ring.first_id, second["object_id"]])
    repaired = ring.run("auto", T0 + 3)
    assert repaired["performed"][0] == {"step": "activate", "kid": second["kid"], "previous": ring.first_kid,
                                        "recovered": True}
    assert mint_kid(token, ring.label) == second["kid"]
    ring.run("revoke", T0 + 4, remove_private_keys=True)
    assert labels(token, ring.label) == {}
