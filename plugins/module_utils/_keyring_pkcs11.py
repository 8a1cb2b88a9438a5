# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Key rings of signing keys in a PKCS#11 token: jwt_keyring with ``pkcs11_uri``.

PRIVATE to the collection: do not import it from other collections.

Like ``_keyring``, this file does not import Ansible. The state machine, the timing rules,
the results and the state file are those of ``_keyring.Ring``; :class:`TokenRing` replaces
only where the private keys live.

The signing key is named by a PKCS#11 URI whose ``object=<label>`` (CKA_LABEL) jwt_token
and the token refresher sign with; the URI names no ``id``, so it names whichever key pair
carries the label. The ring's keys are key pairs in that token. Each has a CKA_ID of its own
(16 random bytes for the keys the ring generates), recorded in the ring state as
``object_id`` (hex): the ring tells its keys apart by that id, verifies that the key pair
with the id holds the entry's key (its RFC 7638 thumbprint is the kid) before it relabels or
destroys it, and the label says the role:

* ``<label>``: the active key, the only one that signs;
* ``<label>.next``: the next key, generated in the token (sensitive, never extractable);
* ``<label>.<kid>``: a retiring key, and a retired key kept with ``keep_retired``.

There is no file to swap: activation moves the label, in this order:

1. the next key pair gets ``<label>``: for a moment two keys carry it, and a signer that looks
   then refuses the ambiguity (``_pkcs11.TokenSession.find``); either key would be published;
2. the active key pair gets ``<label>.<kid>``: only the next key carries ``<label>``;
3. the state records the activation (written atomically, as for files).

A run killed between 1 and 2 leaves the ring's active and next key both labelled
``<label>``: the next run finishes step 2 (the next key was due, and it may have signed
already). Killed between 2 and 3, the key labelled ``<label>`` is the next key, and the next
run records the activation, as it does for a key file. ``<label>`` is never absent, so no
tool creates a fresh, unpublished key under it. A relabel cut short between the private
and the public object of a pair is repaired too (``TokenSession.pair_labels``).

Staging generates the key pair first (``<label>.next``), then writes the state: a run killed
in between leaves an object that the next run adopts. Retirement writes the state first,
then destroys the key pair: the next run destroys what a killed run left.

The state has no file beside the key, so it lives at ``state_file`` (jwt_keyring's
``state_path``) with the trust rules of a key file's ring (no link followed, files of other
accounts and directories that others can write refused, every kid an RFC 7638 thumbprint);
every ``object_id`` must be the hex text of a CKA_ID, each key its own, and the state names
the token (serial) and label it belongs to. Labels are built only from the URI's label and
checked kids. The token itself is untrusted too (every account that has the PIN can change
it): labels read from it are only compared, never used to build a path or another label.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwk, _keyring, _pkcs11
from ansible_collections.selfjwt.kyma.plugins.module_utils._keyring import ACTIVE, NEXT, RETIRED, REVOKED, KeyringError

NEXT_SUFFIX = ".next"

#: A CKA_ID in the ring state: lower-case hex, 1 to 64 bytes.
_OBJECT_ID = re.compile(r"(?:[0-9a-f]{2}){1,64}")


def next_label(label):
    """The label of the next key of the ring whose signing key carries ``label``."""
    return label + NEXT_SUFFIX


def kid_label(label, kid):
    """``<label>.<kid>``, the label of a retiring or kept key; KeyringError unless ``kid`` is a thumbprint."""
    return "%s.%s" % (label, _keyring.check_kid(kid))


def _shown(value):
    """``value`` for a message: untrusted content, so at most 64 characters of it."""
    text = repr(value)
    return text if len(text) <= 64 else text[:64] + "..."


def _object_id(entry):
    return bytes(bytearray.fromhex(entry["object_id"]))


class RingTokenIO(_keyring.RingFiles):
    """The token writes of a ring, besides its file writes; tests replace it to stop a run between any two."""

    def generate(self, session, spec, label):
        return session.generate(spec.type, spec.size, spec.curve, label=label)

    def relabel(self, session, key_id, label):
        session.relabel(key_id, label)

    def destroy(self, session, key_id):
        return session.destroy(key_id=key_id)


class TokenRing(_keyring.Ring):
    """The key ring of a signing key in a PKCS#11 token (``spec.path`` is the key's PKCS#11 URI).

    ``state_file`` is the ring state's path; ``pin``/``pin_file`` as for ``_pkcs11.resolve_pin``.
    """

    SUMMARY_FIELDS = _keyring.Ring.SUMMARY_FIELDS + ("object_id",)

    def __init__(self, spec, state_file, timing, pin=None, pin_file=None, io=None, **kwargs):
        uri = _pkcs11.parse_uri(spec.path)
        if uri.id is not None:
            raise KeyringError("the PKCS#11 URI %s of a key ring names an id: a key ring moves the label (object=%s) "
                               "from key to key, and an id would keep naming one key. Remove id= from the URI"
                               % (uri.text, uri.object))
        if not uri.object:
            raise KeyringError("the PKCS#11 URI %s of a key ring names no label: add object=<label>, the label "
                               "jwt_token and the token refresher sign with" % uri.text)
        if spec.passphrase:
            raise KeyringError("passphrase is for key files: a key in a PKCS#11 token is protected by the token's "
                               "PIN (pkcs11_pin_file)")
        if not isinstance(state_file, str) or not os.path.isabs(state_file):
            raise KeyringError("a key ring of a key in a PKCS#11 token keeps its state in a file: set state_path to "
                               "an absolute path in a directory of root's, such as /etc/selfjwt/signing.ring.json "
                               "(got %r)" % (state_file,))
        super(TokenRing, self).__init__(spec, timing, io=io or RingTokenIO(), **kwargs)
        self.uri = uri
        self.label = uri.object
        self.state_file = state_file
        self.lock_path = state_file
        self.pin, self.pin_file = pin, pin_file
        self.session = None
        self._facts = {}
        #: ids of the private keys that carry the label (the signing key; two after an interrupted activation).
        self._labelled = []

    # -- where, and the token session ------------------------------------------------------

    def check_location(self):
        _files.check_parent_dir(self.state_file, "key ring state")
        _files.check_private_dir(self.state_file, self.owners, "key ring state")

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None

    def _token_name(self):
        return repr(self._facts.get("label") or self.uri.token or self.uri.serial)

    # -- reading ---------------------------------------------------------------------------

    def _load_signing_key(self):
        pin = _pkcs11.resolve_pin(self.uri, self.pin, self.pin_file, owners=self.owners)
        self.session = _pkcs11.open_session(self.uri, pin, write=not self.check_mode)
        self._facts = self.session.token_facts()
        self._labelled = self._ids(self.label)
        if len(self._labelled) == 1:
            self._use_signing_key(self._labelled[0])
        if hasattr(os, "geteuid") and os.geteuid() == 0 and self.owner is not None:
            self._owner = (self.owner, None)

    def _ids(self, label=None):
        """The CKA_IDs of the token's private keys (those that carry ``label``, when given)."""
        return [key_id for key_label, key_id in self.session.private_keys() if label is None or key_label == label]

    def _count(self, key_id):
        return len([other for other in self._ids() if other == key_id])

    def _use_signing_key(self, key_id):
        if not key_id:
            raise KeyringError("the key %s has no CKA_ID, and a key ring tells its keys apart by their ids: give it "
                               "one with the token's tools, or make the key with selfjwt.kyma.jwt_keypair "
                               "(pkcs11_uri)" % self.uri.describe())
        if self._count(key_id) > 1:
            raise KeyringError("%d private keys in token %s have the id %s of the key %s, so a key ring cannot tell "
                               "them apart: nothing was changed. Give the other keys ids of their own"
                               % (self._count(key_id), self._token_name(), _pkcs11.hex_id(key_id),
                                  self.uri.describe()))
        self._signing_key = self.session.key(key_id=key_id)
        self.signing_kid = _jwk.key_thumbprint(self._signing_key)

    def _read_state(self):
        state = _keyring.read_state_file(self.state_file, self.owners, "the key %s" % self.uri.describe())
        if state is not None:
            self._check_state(state)
        return state

    def _check_state(self, state):
        """What a token ring's state must hold besides what every ring state holds (untrusted input)."""
        where = "the key ring state %s" % self.state_file
        restore = ("nothing was changed. Restore the state from a backup, or move it away to start a new ring from "
                   "the key %s" % self.uri.describe())
        binding = state.get("pkcs11")
        if not isinstance(binding, dict):
            raise KeyringError("%s is not the state of a ring of keys in a PKCS#11 token (it has no pkcs11 member; "
                               "the ring of a key file keeps its state beside the key): give each key ring a "
                               "state_path of its own; %s" % (where, restore))
        if binding.get("label") != self.label or binding.get("token_serial") != self._facts.get("serial"):
            raise KeyringError("%s belongs to the key labelled %s in the token with serial %s, not to the key %s "
                               "(serial %r): give each key its own state_path; %s"
                               % (where, _shown(binding.get("label")), _shown(binding.get("token_serial")),
                                  self.uri.describe(), self._facts.get("serial"), restore))
        seen = set()
        for entry in state["keys"]:
            object_id = entry.get("object_id")
            if not isinstance(object_id, str) or not _OBJECT_ID.fullmatch(object_id) or object_id in seen:
                raise KeyringError("%s gives the key %s the object id %s, which is not the CKA_ID of a key pair of "
                                   "its own (2 to 128 lower-case hex digits, each key its own id); %s"
                                   % (where, entry["kid"], _shown(object_id), restore))
            seen.add(object_id)
            backup = entry.get("backup_object")
            if backup is not None and (entry["state"] != RETIRED or backup != kid_label(self.label, entry["kid"])):
                raise KeyringError("%s names %s as the kept key pair of the %s key %s; a ring keeps only retired keys, "
                                   "as %r; %s" % (where, _shown(backup), entry["state"], entry["kid"],
                                                  kid_label(self.label, entry["kid"]), restore))

    def _entry(self, key, kid, **fields):
        entry = super(TokenRing, self)._entry(key, kid, **fields)
        entry["object_id"] = _pkcs11.hex_id(key.key_id)
        return entry

    def _entry_by_id(self, key_id):
        for entry in self.state["keys"] if self.state is not None else []:
            if _object_id(entry) == key_id:
                return entry
        return None

    def _label_for(self, entry):
        if entry["state"] == ACTIVE:
            return self.label
        if entry["state"] == NEXT:
            return next_label(self.label)
        return kid_label(self.label, entry["kid"])

    def _is_ring_label(self, label):
        if not isinstance(label, str):
            return False
        if label in (self.label, next_label(self.label)):
            return True
        prefix = self.label + "."
        if not label.startswith(prefix):
            return False
        try:
            _keyring.check_kid(label[len(prefix):])
        except KeyringError:
            return False
        return True

    def _verified_key(self, entry, required=False):
        """The key object of ``entry`` (None when the token has none), after checking that it holds the entry's key.

        A key pair that holds another key (or cannot be read, or whose id other keys share too) is
        reported, and left alone: KeyringError when ``required``, else a warning and None.
        """
        key_id = _object_id(entry)
        count = self._count(key_id)
        if count == 0:
            return None
        if count > 1:
            problem = "%d private keys in token %s have the id %s of the key %s" % (
                count, self._token_name(), entry["object_id"], entry["kid"])
        else:
            try:
                key = self.session.key(key_id=key_id)
            except _pkcs11.Pkcs11Error as exc:
                problem = str(exc)
            else:
                if _jwk.key_thumbprint(key) == entry["kid"]:
                    return key
                problem = "the key pair with id %s in token %s does not hold the key %s" % (
                    entry["object_id"], self._token_name(), entry["kid"])
        if required:
            raise KeyringError("%s: nothing was changed. Restore the key pair, or destroy it and remove the key from "
                               "the ring state" % problem)
        self.warnings.append("%s; left alone" % problem)
        return None

    # -- writing ---------------------------------------------------------------------------

    def _relabel(self, key_id, label):
        self.changed = True
        if not self.check_mode:
            self.io.relabel(self.session, key_id, label)

    def _destroy_object(self, key_id):
        """Destroy the key pair with ``key_id``; True when there was one."""
        if self.check_mode:
            return self._count(key_id) > 0
        private, public = self.session.pair_labels(key_id)
        if not private:
            return False
        if len(set(private + public)) > 1:
            # A relabel cut short: give the pair one label, so that the public object goes too.
            self.io.relabel(self.session, key_id, private[0])
        self.changed = True
        return self.io.destroy(self.session, key_id)

    def _destroy(self, entry):
        """Destroy the key pair of ``entry`` once it is shown to hold the entry's key; True when it was destroyed."""
        if self._verified_key(entry) is None:
            return False
        return self._destroy_object(_object_id(entry))

    def _ensure_label(self, entry):
        """Give the key pair of ``entry`` (private and public object) the label of the entry's state."""
        label = self._label_for(entry)
        key_id = _object_id(entry)
        private, public = self.session.pair_labels(key_id)
        if set(private + public) == set([label]):
            return
        if not all(self._is_ring_label(item) for item in private):
            self.warnings.append("the key pair with id %s in token %s (kid %s) carries the label %s, which is none of "
                                 "the labels of the key ring of %r; left alone: give it the label %r"
                                 % (entry["object_id"], self._token_name(), entry["kid"],
                                    ", ".join(_shown(item) for item in private), self.label, label))
            return
        if self._verified_key(entry) is not None:
            self._relabel(key_id, label)

    # -- messages --------------------------------------------------------------------------

    def _new_state(self):
        return {"version": _keyring.STATE_VERSION, "keys": [],
                "pkcs11": {"label": self.label, "token_label": self._facts.get("label"),
                           "token_serial": self._facts.get("serial")}}

    def _no_signing_key_message(self):
        return ("there is no private key %s to start a key ring from: create it first (selfjwt.kyma.jwt_keypair with "
                "pkcs11_uri, or the selfjwt.kyma.edge_keys role)" % self.uri.describe())

    def _missing_signing_key_message(self):
        active = self.key_in(ACTIVE)
        return ("no private key in token %s carries the label %r, the signing key of the key ring %s: restore the "
                "key (give the ring's active key%s the label %r again), or move the ring state away and create a "
                "new key (publish it before it signs)"
                % (self._token_name(), self.label, self.state_file,
                   " %s, id %s," % (active["kid"], active["object_id"]) if active else "", self.label))

    def _withdrawn_signing_key_message(self, kid, known, active):
        return ("the key %s (kid %s) is %s in its key ring, so it is no longer published and its tokens are "
                "rejected: give the label %r back to the active key %s, or destroy the key and run "
                "selfjwt.kyma.edge_keys to make a new one"
                % (self.uri.describe(), kid, known["state"], self.label,
                   "%s (id %s)" % (active["kid"], active["object_id"]) if active else "(none)"))

    def _replaced_warning(self, kid):
        return ("the key %s (kid %s) was replaced outside its key ring: it signs already, but it is not published "
                "yet, so its tokens are rejected until the JWKS with it has been served for the propagation window; "
                "publish now (playbooks/rotate.yml) and use rotation, not regenerate, next time"
                % (self.uri.describe(), kid))

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self):
        self._finish_relabel()
        super(TokenRing, self).reconcile()

    def _finish_relabel(self):
        """Two keys labelled ``<label>``: an activation killed between its two relabels is finished."""
        if len(self._labelled) < 2:
            return
        active = self.key_in(ACTIVE) if self.state is not None else None
        nxt = self.key_in(NEXT) if self.state is not None else None
        if not (active and nxt) or sorted(self._labelled) != sorted([_object_id(active), _object_id(nxt)]):
            raise KeyringError(
                "%d private keys in token %s carry the label %r (ids %s), but that label names the one key that "
                "signs: nothing was changed. Relabel or destroy the keys that are not the ring's active key%s, with "
                "the token's tools" % (len(self._labelled), self._token_name(), self.label,
                                       ", ".join(_pkcs11.hex_id(key_id) or "none" for key_id in self._labelled),
                                       " (id %s)" % active["object_id"] if active else ""))
        # The next key was due when the activation began, and it may have signed since.
        self._verified_key(nxt, required=True)
        self._verified_key(active, required=True)
        self._relabel(_object_id(active), kid_label(self.label, active["kid"]))
        self._use_signing_key(_object_id(nxt))
        self._labelled = [_object_id(nxt)]

    def _reconcile_store(self):
        """Bring the token's objects in line with the state: adopt, label or destroy what a killed run left."""
        if not self.check_mode:
            _files.remove_stale_temp_files(self.state_file)
        active = self.key_in(ACTIVE)
        if active is not None and self._labelled and _object_id(active) != self._labelled[0]:
            raise KeyringError("the key ring state %s gives the active key %s the id %s, but the key %s has the id %s: "
                               "nothing was changed. Restore the state from a backup, or move it away to start a new "
                               "ring" % (self.state_file, active["kid"], active["object_id"], self.uri.describe(),
                                         _pkcs11.hex_id(self._labelled[0])))
        known = set(_object_id(entry) for entry in self.state["keys"])
        for key_id in self._ids(next_label(self.label)):
            if key_id not in known:
                self._adopt_orphan_object(key_id)
        present = set(self._ids())
        for entry in list(self.state["keys"]):
            key_id = _object_id(entry)
            if entry["state"] == NEXT and key_id not in present:
                if not self.check_mode:
                    # A next key never signed; without its private key it never can.
                    self.state["keys"].remove(entry)
                    self.warnings.append("the private key of the next key %s is missing (no key pair with id %s in "
                                         "token %s); the rotation starts again"
                                         % (entry["kid"], entry["object_id"], self._token_name()))
                    self._record("drop", entry["kid"])
                    self._write_state()
            elif key_id not in present:
                continue
            elif entry["state"] in (RETIRED, REVOKED) and not entry.get("backup_object"):
                self._destroy(entry)
            else:
                self._ensure_label(entry)

    def _adopt_orphan_object(self, key_id):
        """A key pair labelled ``<label>.next`` that the state does not know: a stage killed before it recorded it."""
        what = "the key pair labelled %r with id %s in token %s" % (next_label(self.label), _pkcs11.hex_id(key_id),
                                                                    self._token_name())
        if not key_id or self._count(key_id) > 1:
            self.warnings.append("%s has an id that %s; left alone" % (
                what, "other keys have too" if key_id else "is empty"))
            return
        try:
            key = self.session.key(key_id=key_id)
        except _pkcs11.Pkcs11Error as exc:
            self.warnings.append("%s cannot be used (%s); left alone" % (what, exc))
            return
        kid = _jwk.key_thumbprint(key)
        if self.entry(kid) is not None:
            self.warnings.append("%s holds the key %s, which the ring knows by another id; left alone" % (what, kid))
            return
        if self.key_in(NEXT) is None:
            self.state["keys"].append(self._entry(key, kid, state=NEXT, staged_at=_jose.iso_utc(self.now)))
            self._record("stage", kid, recovered=True)
            self._write_state()
        else:
            # Never published (it was in no state), so nothing can verify with it.
            self._destroy_object(key_id)
            self._record("drop", kid)

    # -- steps -----------------------------------------------------------------------------

    def _store_next_key(self):
        # The key pair first: a run killed now leaves a key labelled <label>.next that the next run adopts.
        key = self.io.generate(self.session, self.spec, next_label(self.label))
        kid = _jwk.key_thumbprint(key)
        return self._entry(key, kid, state=NEXT, staged_at=_jose.iso_utc(self.now))

    def _switch_signing_key(self, nxt, active):
        if self._verified_key(nxt, required=True) is None:
            raise KeyringError("the private key of the next key %s is missing (no key pair with id %s in token %s): "
                               "run again to stage a new one" % (nxt["kid"], nxt["object_id"], self._token_name()))
        # The next key gets the label first: the label always names a published key, and never none.
        self._relabel(_object_id(nxt), self.label)
        if active is not None:
            self._relabel(_object_id(active), kid_label(self.label, active["kid"]))

    def _activated(self, nxt):
        """Nothing to clean up: the key pair was relabelled, not copied."""

    def _keep_retired_key(self, entry):
        if self._count(_object_id(entry)):
            entry["backup_object"] = kid_label(self.label, entry["kid"])

    def _remove_retired_key(self, entry):
        self._destroy(entry)

    def _remove_private_keys(self):
        removed = False
        for entry in self.state["keys"]:
            if entry["state"] in (REVOKED, RETIRED) and entry.get("backup_object"):
                entry.pop("backup_object")
                removed = True
        if removed:
            self._write_state()
        signing = self._ids(self.label)
        for entry in self.state["keys"]:
            if entry["state"] in (REVOKED, RETIRED) and _object_id(entry) not in signing:
                if self._destroy(entry):
                    self._record("remove_key", entry["kid"])
        for key_id in signing:
            entry = self._entry_by_id(key_id)
            if self._destroy_object(key_id):
                self._record("remove_key", entry["kid"] if entry else self.signing_kid)


def run(spec, state_file, action="auto", timing=None, published_kids=None, remove_private_keys=False,
        keep_retired=False, now=None, check_mode=False, io=None, owner=None, pin=None, pin_file=None):
    """``_keyring.run`` for the signing key whose PKCS#11 URI is ``spec.path``; the state is at ``state_file``.

    ``pin``/``pin_file``: the token's user PIN, or a file holding it (or the URI's pin-source).
    """
    _keyring.check_arguments(action, published_kids)
    ring = TokenRing(spec, state_file, timing or _keyring.Timing(), pin=pin, pin_file=pin_file, now=now,
                     check_mode=check_mode or action == "status", keep_retired=keep_retired, io=io, owner=owner)
    return _keyring.run_ring(ring, action, published_kids, remove_private_keys)
