# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Key rings for zero-downtime rotation of edge signing keys: the logic behind jwt_keyring.

PRIVATE to the collection: do not import it from other collections.

Like ``_jose``, ``_files`` and ``_keypair``, this file does not import Ansible.

istiod refetches a ``jwksUri`` only every ~20 minutes and never on an unknown ``kid``, so a
key is rotated publish-before-use and retire-after-expiry. Each key of a ring goes through

    next --(published >= propagation_window ago)--> active --(successor activated)--> retiring
         --(token_max_lifetime + clock_skew + propagation_window later)--> retired

and any key may become ``revoked`` (compromise). The keys published for a host are those in
``next``, ``active`` and ``retiring``.

Files, all beside the signing key ``<path>`` (the path jwt_token and the token refresher
read, which never changes):

* ``<path>``: the active key;
* ``<path>.<kid>``: the private key of a ``next`` or ``retiring`` key (of a ``retired`` key
  only when retired keys are kept);
* ``<path>.ring.json``: the ring state (mode 0600): per key its kid, state, public JWK and
  the UTC times (ISO 8601) it was staged, published, activated, deactivated, retired,
  withdrawn from the published JWKS, revoked.

Every change is written with ``_files.write_atomic`` under ``_files.locked(<path>)`` (the
lock jwt_keypair takes too), in an order chosen so that a run killed between any two writes
leaves a state that the next run completes (:meth:`Ring.reconcile`): the key at ``<path>``
is always either the active key or a ``next`` key that was published long enough ago, and
the state never loses a key before it may be retired.

A signing key in a PKCS#11 token has no files: ``_keyring_pkcs11.TokenRing`` keeps the ring's
keys as key pairs in the token (the label moves from key to key) and the state at a path of
its own, with the same states, timing rules and results.

The key directory, the state and the kid-named files may be writable by the key's owner, a
less privileged account than the root that rotates: everything read from them is untrusted.
Every kid in the state must be an RFC 7638 thumbprint (:func:`check_kid`), so a kid never
names a file outside the key directory; files of accounts other than root, the running
account and the key's owner are refused; no link is followed, and files are removed by name
relative to the directory (``_files``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import math
import os
import re
import time

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files
from ansible_collections.selfjwt.kyma.plugins.module_utils import _jose, _jwk, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair
from ansible_collections.selfjwt.kyma.plugins.module_utils._keypair import ring_state_path as state_path

STATE_VERSION = 1
#: The state is ``<path>`` + STATE_SUFFIX (:func:`state_path`), named by ``_keypair``: jwt_keypair looks
#: for it without loading this file.
STATE_SUFFIX = _keypair.RING_STATE_SUFFIX
STATE_MODE = 0o600

NEXT, ACTIVE, RETIRING, RETIRED, REVOKED = "next", "active", "retiring", "retired", "revoked"
KEY_STATES = (NEXT, ACTIVE, RETIRING, RETIRED, REVOKED)
#: Keys in these states are published (they may verify tokens now or soon).
PUBLISHED_STATES = (NEXT, ACTIVE, RETIRING)

ACTIONS = ("status", "auto", "rotate", "stage", "mark_published", "activate", "retire", "revoke")

#: istiod's JWKS refresh interval (20 min) plus margin for the push to the proxies.
DEFAULT_PROPAGATION_WINDOW = 1800
DEFAULT_TOKEN_MAX_LIFETIME = 3600
DEFAULT_CLOCK_SKEW = 60

TIME_FIELDS = ("staged_at", "published_at", "activated_at", "deactivated_at", "retired_at", "withdrawn_at",
               "revoked_at")

#: kid-named key files: an RFC 7638 SHA-256 thumbprint is 43 base64url characters.
_THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}\Z")


class KeyringError(_jose.JoseError):
    """A key ring problem, with a message that says what to do next."""


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------

#: Times of a ring lie between 1970 and 9000: a later time plus a rotation window has no ISO 8601 text.
_EARLIEST, _LATEST = datetime.datetime(1970, 1, 1), datetime.datetime(9000, 1, 1)


def parse_iso(text, what="time"):
    if text is None:
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        moment = None
    if moment is None or not _EARLIEST <= moment < _LATEST:
        raise KeyringError("%s %r is not a UTC time like 2026-01-31T12:00:00Z (between 1970 and 9000)" % (what, text))
    return int((moment - _EARLIEST).total_seconds())


def _ceil(now):
    """Times recorded for events that happened before now are rounded up: never too early."""
    return int(math.ceil(now))


# --------------------------------------------------------------------------------------
# Timing rules
# --------------------------------------------------------------------------------------

class Timing(object):
    """The windows of a rotation, in seconds.

    * a ``next`` key may sign once it has been published for ``propagation_window``;
    * a ``retiring`` key leaves the JWKS ``token_max_lifetime + clock_skew +
      propagation_window`` after it stopped signing;
    * with ``max_key_age``, a successor is staged ``propagation_window`` before the active
      key reaches that age (0 or None: no routine rotation).
    """

    def __init__(self, propagation_window=DEFAULT_PROPAGATION_WINDOW, token_max_lifetime=DEFAULT_TOKEN_MAX_LIFETIME,
                 clock_skew=DEFAULT_CLOCK_SKEW, max_key_age=None):
        for name, value in (("propagation_window", propagation_window), ("token_max_lifetime", token_max_lifetime),
                            ("clock_skew", clock_skew)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise KeyringError("%s must be a whole number of seconds >= 0, got %r" % (name, value))
        if max_key_age is not None and (not isinstance(max_key_age, int) or isinstance(max_key_age, bool)
                                        or max_key_age < 0):
            raise KeyringError("max_key_age must be a whole number of seconds >= 0 (0: no routine rotation), got %r"
                               % (max_key_age,))
        if max_key_age and max_key_age <= propagation_window:
            raise KeyringError("max_key_age (%d s) must be longer than propagation_window (%d s): a successor is "
                               "staged one propagation window before the active key reaches max_key_age"
                               % (max_key_age, propagation_window))
        self.propagation_window = propagation_window
        self.token_max_lifetime = token_max_lifetime
        self.clock_skew = clock_skew
        self.max_key_age = max_key_age or None

    @property
    def retire_delay(self):
        return self.token_max_lifetime + self.clock_skew + self.propagation_window

    def activation_due(self, entry):
        published = parse_iso(entry.get("published_at"))
        return None if published is None else published + self.propagation_window

    def retire_due(self, entry):
        deactivated = parse_iso(entry.get("deactivated_at"))
        return None if deactivated is None else deactivated + self.retire_delay

    def stage_due(self, entry):
        activated = parse_iso(entry.get("activated_at"))
        if self.max_key_age is None or activated is None:
            return None
        return activated + self.max_key_age - self.propagation_window


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

def check_kid(kid, where="the key ring"):
    """Refuse a kid that is not an RFC 7638 SHA-256 thumbprint (43 base64url characters).

    The ring names key files ``<path>.<kid>``: only such a kid is a safe part of a file name.
    """
    if not isinstance(kid, str) or not _THUMBPRINT.match(kid):
        shown = repr(kid) if not isinstance(kid, str) or len(kid) <= 64 else repr(kid[:64]) + "..."
        raise KeyringError("%s holds the kid %s, which is not an RFC 7638 thumbprint (43 characters A-Z, a-z, 0-9, "
                           "- and _), the only kid a key ring uses: nothing was changed. Restore the state from a "
                           "backup, or move it away to start a new ring from the key at the signing path"
                           % (where, shown))
    return kid


def key_file(key_path, kid):
    """``<key_path>.<kid>``; KeyringError unless ``kid`` is a thumbprint (never a path)."""
    return "%s.%s" % (key_path, check_kid(kid))


class RingFiles(object):
    """The file writes and removals of a ring; tests replace it to stop a run between any two of them."""

    def write(self, path, data, mode, what, uid=None, gid=None):
        _files.write_atomic(path, data, mode, what, uid=uid, gid=gid)

    def remove(self, path, what):
        return _files.remove(path, what)


def read_state(key_path, owners=None):
    """The ring state beside ``key_path`` (dict), or None when the key has no ring.

    The state is untrusted input (the key's owner can write it): it is read without following
    a link, refused when it belongs to none of ``owners`` (uids, see ``_files.trusted_owners``;
    None: no check), and every entry is checked, its kid with :func:`check_kid`.
    """
    return read_state_file(state_path(key_path), owners, "the key at %s" % key_path)


def read_state_file(path, owners=None, key="the signing key"):
    """The ring state at ``path`` (dict), or None when there is none: :func:`read_state` for any state file.

    ``key`` names the ring's signing key in messages ("the key at /etc/selfjwt/signing.pem").
    """
    data = _files.read_bytes(path, "key ring state", owners=owners)
    if data is None:
        return None
    try:
        state = _jose.parse_json(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyringError("the key ring state %s is not valid JSON (%s): restore it from a backup, or move it away "
                           "to start a new ring from %s (keys of an unfinished rotation are then no longer "
                           "published)" % (path, exc, key))
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("keys"), list):
        raise KeyringError("the key ring state %s is not a version %d key ring state: restore it, or move it away to "
                           "start a new ring" % (path, STATE_VERSION))
    seen = set()
    for entry in state["keys"]:
        if (not isinstance(entry, dict) or entry.get("state") not in KEY_STATES
                or not isinstance(entry.get("kid"), str) or not isinstance(entry.get("jwk"), dict)
                or entry["kid"] in seen):
            raise KeyringError("the key ring state %s holds an invalid key entry: restore it, or move it away to "
                               "start a new ring" % path)
        check_kid(entry["kid"], "the key ring state %s" % path)
        seen.add(entry["kid"])
        for name in TIME_FIELDS:
            parse_iso(entry.get(name), "%s of kid %s in %s" % (name, entry["kid"], path))
    if len([entry for entry in state["keys"] if entry["state"] == ACTIVE]) > 1 or \
            len([entry for entry in state["keys"] if entry["state"] == NEXT]) > 1:
        raise KeyringError("the key ring state %s has more than one active or next key: restore it" % path)
    for entry in state["keys"]:
        _check_public_jwk(entry, path)
    return state


def _check_public_jwk(entry, path):
    """An entry's ``jwk`` is published as it is: it must be a valid public JWK named by the entry's kid."""
    try:
        normalized = _jwk.jwk_to_public_key(entry["jwk"], "the public key of kid %r" % (entry["kid"],))[0]
    except _jose.JoseError as exc:
        raise KeyringError("the key ring state %s is invalid: %s. Restore it, or move it away to start a new ring"
                           % (path, exc))
    if entry["jwk"].get("kid") != entry["kid"]:
        raise KeyringError("the key ring state %s is invalid: the public key of kid %r is named %r. Restore it, or "
                           "move it away to start a new ring" % (path, entry["kid"], entry["jwk"].get("kid")))
    if entry["jwk"] != normalized:
        # The ring writes normalized JWKs (_jwk.public_jwk); anything else would be published as it is.
        raise KeyringError("the key ring state %s is invalid: the public key of kid %r is not a normalized public "
                           "JWK (members %s). Restore it, or move it away to start a new ring"
                           % (path, entry["kid"], ", ".join(sorted(repr(name) for name in entry["jwk"]))))


def jwks_for_key(key_path, jwk, owners=None):
    """The public JWKs to publish for the key at ``key_path`` whose JWK is ``jwk``.

    Without a ring that is ``[jwk]``. With a ring: ``jwk`` (unless the ring revoked or
    retired it) plus the ring's next, active and retiring keys, each kid once (``jwk``
    wins: it may carry a certificate). Reads only the state file; jwt_keypair calls it so
    that edge_keys publishes every generation, also when no rotation runs.
    """
    return jwks_with_state(read_state(key_path, owners), jwk)


def jwks_for_state_file(path, jwk, owners=None):
    """:func:`jwks_for_key` for a ring whose state is at ``path`` (a key in a PKCS#11 token)."""
    return jwks_with_state(read_state_file(path, owners), jwk)


def jwks_with_state(state, jwk):
    """``jwk`` and the published keys of the ring ``state`` (None: no ring); see :func:`jwks_for_key`."""
    if state is None:
        return [jwk] if jwk else []
    result, kids = [], set()
    excluded = set(entry["kid"] for entry in state["keys"] if entry["state"] in (RETIRED, REVOKED))
    if jwk and jwk.get("kid") not in excluded:
        result.append(jwk)
        kids.add(jwk.get("kid"))
    for entry in state["keys"]:
        if entry["state"] in PUBLISHED_STATES and entry["kid"] not in kids:
            result.append(entry["jwk"])
            kids.add(entry["kid"])
    return result


# --------------------------------------------------------------------------------------
# The ring
# --------------------------------------------------------------------------------------

class Ring(object):
    """One host's key ring: load, reconcile, step, write.

    ``spec`` is a :class:`_keypair.KeypairSpec` for new keys (type, size, curve,
    passphrase, algorithm; ``path`` is the signing key path). Use :func:`run`.

    This class keeps the keys in files. Where the private keys live is behind a few methods
    (loading the signing key, storing a new key, switching the signing key, removing a key,
    reconciling the store, and the messages that name them); ``_keyring_pkcs11.TokenRing``
    overrides them for keys in a PKCS#11 token. The state machine, the timing rules and the
    state file are the same for both.
    """

    #: The members of a state entry that the result's ``keys`` shows (besides ``alg``).
    SUMMARY_FIELDS = ("kid", "state") + TIME_FIELDS

    def __init__(self, spec, timing, now=None, check_mode=False, keep_retired=False, io=None, owner=None):
        if spec.kid is not None:
            raise KeyringError("a key ring names every key by its RFC 7638 thumbprint: leave kid unset (each "
                               "generation needs its own kid)")
        self.spec = spec.validate()
        self.path = spec.path
        self.timing = timing
        self.now = time.time() if now is None else now
        self.check_mode = check_mode
        self.keep_retired = keep_retired
        self.io = io or RingFiles()
        self.state_file = state_path(self.path)
        #: Runs against the same signing key are serialized with a lock tied to this path.
        self.lock_path = self.path
        self.state = None
        self.before = None
        self.performed = []
        self.warnings = []
        self.changed = False
        self.signing_kid = None
        self._signing_key = None
        self._signing_bytes = None
        self._owner = (None, None)
        self._key_mode = _keypair.KEY_MODE
        #: The key's owner (uid or None); files of accounts other than it, root and the running one are refused.
        self.owner = owner
        self.owners = _files.trusted_owners(owner)

    # -- reading ---------------------------------------------------------------------------

    def _load_key(self, data, source):
        return _keys.load_private_key(data, self.spec.passphrase, source=source)

    def check_location(self):
        """Refuse a signing key path whose directory is missing or writable by other accounts."""
        _files.check_parent_dir(self.path, "private key")
        _files.check_private_dir(self.path, self.owners, "private key")

    def close(self):
        """Release what :meth:`load` opened (nothing for key files)."""

    def load(self):
        self._load_signing_key()
        self.state = self._read_state()
        self.before = self.summary() if self.state is not None else []

    def _read_state(self):
        return read_state(self.path, self.owners)

    def _load_signing_key(self):
        data, status = _files.read_file(self.path, "private key", owners=self.owners)
        if data is not None:
            self._signing_bytes = data
            try:
                self._signing_key = self._load_key(data, "the signing key %s" % self.path)
            except KeyringError:
                raise
            except _jose.JoseError as exc:
                raise KeyringError(
                    "%s. Nothing was changed. Give the right passphrase or restore the key from a backup; to "
                    "replace it, make a new key with selfjwt.kyma.jwt_keypair (regenerate=full_idempotence) and "
                    "publish it before it signs (playbooks/rotate.yml)" % exc)
            self.signing_kid = _jwk.key_thumbprint(self._signing_key)
            self._key_mode = status.st_mode & 0o7777
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                self._owner = (status.st_uid if self.owner is None else self.owner, status.st_gid)

    def entry(self, kid):
        for entry in self.state["keys"]:
            if entry["kid"] == kid:
                return entry
        return None

    def by_state(self, state):
        found = [entry for entry in self.state["keys"] if entry["state"] == state]
        return found

    def key_in(self, state):
        """The (first) key entry in ``state``, or None: a ring holds at most one active and one next key."""
        found = self.by_state(state)
        return found[0] if found else None

    def _jwk(self, key, kid):
        return _jwk.public_jwk(key, kid=kid, algorithm=self.spec.algorithm)

    def _entry(self, key, kid, **fields):
        """A new state entry for ``key`` (its kid, public JWK and ``fields``)."""
        entry = {"kid": kid, "jwk": self._jwk(key, kid)}
        entry.update(fields)
        return entry

    def _record(self, step, kid, **extra):
        """Record a step of this run in ``performed`` (the result) and mark the run changed."""
        item = {"step": step, "kid": kid}
        item.update(extra)
        self.performed.append(item)
        self.changed = True

    # -- writing ---------------------------------------------------------------------------

    def _write_state(self):
        if self.check_mode:
            return
        self.state["keys"].sort(key=lambda entry: (KEY_STATES.index(entry["state"]), entry.get("staged_at") or "",
                                                   entry["kid"]))
        data = (json.dumps(self.state, indent=2, sort_keys=True) + "\n").encode("utf-8")
        self.io.write(self.state_file, data, STATE_MODE, "key ring state", *self._owner)

    def _write_key(self, path, data, what):
        if self.check_mode:
            return
        self.io.write(path, data, self._key_mode, what, *self._owner)

    def _remove(self, path, what):
        if self.check_mode:
            return os.path.lexists(path)
        return self.io.remove(path, what)

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self):
        """Bring the state in line with the files after an interrupted or foreign change."""
        if self.state is None:
            if self._signing_key is None:
                raise KeyringError(self._no_signing_key_message())
            now = _jose.iso_utc(self.now)
            self.state = self._new_state()
            self.state["keys"].append(self._entry(self._signing_key, self.signing_kid, state=ACTIVE, adopted=True,
                                                  activated_at=now))
            self._record("adopt", self.signing_kid)
            self._write_state()
        if self._signing_key is None:
            raise KeyringError(self._missing_signing_key_message())
        self._reconcile_signing_key()
        self._reconcile_store()

    def _new_state(self):
        return {"version": STATE_VERSION, "key_path": self.path, "keys": []}

    def _no_signing_key_message(self):
        return ("there is no signing key at %s to start a key ring from: create it first "
                "(selfjwt.kyma.jwt_keypair or the selfjwt.kyma.edge_keys role)" % self.path)

    def _missing_signing_key_message(self):
        return ("the signing key %s is missing, but its key ring %s exists: restore the key, or move the ring state "
                "away and create a new key (publish it before it signs)" % (self.path, self.state_file))

    def _withdrawn_signing_key_message(self, kid, known, active):
        return ("the key at %s (kid %s) is %s in its key ring, so it is no longer published and its tokens are "
                "rejected: restore the active key %s (from %s if it was kept), or remove %s and run "
                "selfjwt.kyma.edge_keys to make a new key" % (
                    self.path, kid, known["state"], active["kid"] if active else "(none)",
                    key_file(self.path, active["kid"]) if active else "a backup", self.path))

    def _replaced_warning(self, kid):
        return ("the signing key %s (kid %s) was replaced outside its key ring: it signs already, but it is not "
                "published yet, so its tokens are rejected until the JWKS with it has been served for the "
                "propagation window; publish now (playbooks/rotate.yml) and use rotation, not regenerate, next time"
                % (self.path, kid))

    def _reconcile_signing_key(self):
        active, nxt = self.key_in(ACTIVE), self.key_in(NEXT)
        kid = self.signing_kid
        if active is not None and active["kid"] == kid:
            return
        if nxt is not None and nxt["kid"] == kid:
            # Killed after the next key was put at the signing path: it was due, finish.
            self._finish_activation(nxt, active, interrupted=True)
            return
        known = self.entry(kid)
        if known is not None and known["state"] in (RETIRED, REVOKED):
            raise KeyringError(self._withdrawn_signing_key_message(kid, known, active))
        # Replaced outside the ring (jwt_keypair regenerate, a restore): the key at the path
        # signs now. Keep the previous active key published until its tokens expired.
        now = _jose.iso_utc(_ceil(self.now))
        if active is not None:
            active["state"] = RETIRING
            active["deactivated_at"] = now
        if known is not None:
            known["state"] = ACTIVE
            known["activated_at"] = now
        else:
            self.state["keys"].append(self._entry(self._signing_key, kid, state=ACTIVE, adopted=True,
                                                  activated_at=now))
            self.warnings.append(self._replaced_warning(kid))
        self._record("adopt", kid, replaced=active["kid"] if active else None)
        self._write_state()

    def _key_files(self):
        """kid -> path of the kid-named key files beside the signing key."""
        directory = os.path.dirname(os.path.abspath(self.path))
        prefix = os.path.basename(self.path) + "."
        found = {}
        try:
            names = os.listdir(directory)
        except OSError:
            return found
        for name in sorted(names):
            if name.startswith(prefix) and _THUMBPRINT.match(name[len(prefix):]):
                found[name[len(prefix):]] = os.path.join(directory, name)
        return found

    def _remove_stale_temp_files(self):
        """Temporary files of writers killed mid-write (partial private keys): see _files."""
        if self.check_mode:
            return
        _files.remove_stale_temp_files(state_path(self.path))
        directory = os.path.dirname(os.path.abspath(self.path))
        pattern = re.compile(r"^\.%s\.([A-Za-z0-9_-]{43})\.[A-Za-z0-9_]+\.tmp$" % re.escape(os.path.basename(self.path)))
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for kid in sorted(set(match.group(1) for match in map(pattern.match, names) if match)):
            _files.remove_stale_temp_files(key_file(self.path, kid))

    def _reconcile_store(self):
        """Bring the key files in line with the state: adopt, remove or drop what a killed run left."""
        self._remove_stale_temp_files()
        files = self._key_files()
        for kid, path in sorted(files.items()):
            entry = self.entry(kid)
            if entry is None:
                self._adopt_orphan(kid, path)
            elif entry["state"] == ACTIVE:
                # Left over from an activation: the same key is at the signing path.
                self._remove(path, "copy of the active key")
            elif entry["state"] in (RETIRED, REVOKED) and not entry.get("backup_file"):
                self._remove(path, "retired private key")
        nxt = self.key_in(NEXT)
        if nxt is not None and nxt["kid"] not in files and not self.check_mode:
            # A next key never signed; without its private key it never can.
            self.state["keys"].remove(nxt)
            self.warnings.append("the private key of the next key %s is missing (%s); the rotation starts again"
                                 % (nxt["kid"], key_file(self.path, nxt["kid"])))
            self._record("drop", nxt["kid"])
            self._write_state()

    def _adopt_orphan(self, kid, path):
        """A key file without state entry: a stage killed before it recorded the key."""
        try:
            data = _files.read_bytes(path, "private key", owners=self.owners)
        except _files.FileError as exc:
            self.warnings.append("%s; left alone" % exc)
            return
        try:
            key = self._load_key(data, "the private key %s" % path)
            matches = _jwk.key_thumbprint(key) == kid
        except _jose.JoseError:
            matches = False
        if not matches:
            self.warnings.append("%s is named like a key of the ring but does not hold the key %s; left alone"
                                 % (path, kid))
            return
        if self.key_in(NEXT) is None:
            self.state["keys"].append(self._entry(key, kid, state=NEXT, staged_at=_jose.iso_utc(self.now)))
            self._record("stage", kid, recovered=True)
            self._write_state()
        else:
            # Never published (it was in no state), so nothing can verify with it.
            self._remove(path, "unused private key")
            self._record("drop", kid)

    # -- steps -----------------------------------------------------------------------------

    def in_progress(self):
        """True while a rotation is not finished: a next or retiring key, or a retired key still published."""
        return bool(self.by_state(NEXT) or self.by_state(RETIRING)
                    or [entry for entry in self.by_state(RETIRED) if not entry.get("withdrawn_at")])

    def stage(self):
        if self.key_in(NEXT) is not None:
            return False
        kid = None
        if not self.check_mode:
            entry = self._store_next_key()
            kid = entry["kid"]
            self.state["keys"].append(entry)
        self._record("stage", kid)
        self._write_state()
        return True

    def _store_next_key(self):
        """Generate the next key and keep it where the next run finds it; returns its state entry."""
        key = _keys.generate_private_key(self.spec.type, self.spec.size, self.spec.curve)
        kid = _jwk.key_thumbprint(key)
        # The key file first: a run killed now leaves a file that the next run adopts.
        self._write_key(key_file(self.path, kid), _keys.private_key_pem(key, self.spec.passphrase),
                        "next private key")
        return self._entry(key, kid, state=NEXT, staged_at=_jose.iso_utc(self.now))

    def mark_published(self, published_kids):
        """Record a JWKS publication that completed just now, holding ``published_kids``."""
        published = set(published_kids or [])
        now = _jose.iso_utc(_ceil(self.now))
        touched = False
        for entry in self.state["keys"]:
            kid = entry["kid"]
            if entry["state"] in PUBLISHED_STATES:
                if kid in published and not entry.get("published_at"):
                    entry["published_at"] = now
                    self._record("published", kid)
                    touched = True
                elif kid not in published:
                    if entry["state"] == NEXT and entry.get("published_at"):
                        # Taken out again: its propagation window starts anew.
                        entry["published_at"] = None
                        self._record("unpublished", kid)
                        touched = True
                    if entry["state"] != NEXT:
                        self.warnings.append(
                            "kid %s (%s) is not in the published JWKS, so its tokens are rejected: publish the "
                            "keys of this host (playbooks/rotate.yml or cluster.yml in one run with edge.yml)"
                            % (kid, entry["state"]))
            elif entry["state"] in (RETIRED, REVOKED) and not entry.get("withdrawn_at") and kid not in published:
                entry["withdrawn_at"] = now
                self._record("withdrawn", kid)
                touched = True
        if touched:
            self._write_state()
        return touched

    def activation_problem(self):
        """Why the next key may not sign yet, or None."""
        nxt = self.key_in(NEXT)
        if nxt is None:
            return "there is no next key: stage one first"
        due = self.timing.activation_due(nxt)
        if due is None:
            return ("the next key %s has not been published yet: publish the JWKS with it (playbooks/rotate.yml "
                    "does) and record that with action=mark_published" % nxt["kid"])
        if due > self.now:
            return ("the next key %s was published at %s; istiod may still serve a JWKS without it until %s "
                    "(propagation_window %d s): activate then" % (nxt["kid"], nxt["published_at"], _jose.iso_utc(due),
                                                                  self.timing.propagation_window))
        return None

    def activate(self):
        nxt, active = self.key_in(NEXT), self.key_in(ACTIVE)
        if self.activation_problem() is not None:
            return False
        self._switch_signing_key(nxt, active)
        self._finish_activation(nxt, active)
        return True

    def _switch_signing_key(self, nxt, active):
        """Make the next key the one that signs (the old one stays where the ring finds it)."""
        path = key_file(self.path, nxt["kid"])
        data = _files.read_bytes(path, "next private key", owners=self.owners)
        if data is None:
            raise KeyringError("the private key of the next key %s is missing (%s): run again to stage a new one"
                               % (nxt["kid"], path))
        key = self._load_key(data, "the next private key %s" % path)
        if _jwk.key_thumbprint(key) != nxt["kid"]:
            raise KeyringError("%s does not hold the key %s: restore it or remove it (a new key is then staged)"
                               % (path, nxt["kid"]))
        if active is not None:
            # Keep the outgoing key (for a backup at retirement), then swap the signing key.
            self._write_key(key_file(self.path, active["kid"]), self._signing_bytes, "previous private key")
        self._write_key(self.path, data, "private key")

    def _finish_activation(self, nxt, active, interrupted=False):
        now = _jose.iso_utc(_ceil(self.now))
        if active is not None:
            active["state"] = RETIRING
            active["deactivated_at"] = now
        nxt["state"] = ACTIVE
        nxt["activated_at"] = now
        self.signing_kid = nxt["kid"]
        self._record("activate", nxt["kid"], previous=active["kid"] if active else None, recovered=interrupted)
        self._write_state()
        self._activated(nxt)

    def _activated(self, nxt):
        """After the state recorded an activation."""
        # The copy under the kid name is no longer needed: the key is at the signing path.
        self._remove(key_file(self.path, nxt["kid"]), "copy of the active key")

    def retire(self):
        done = False
        for entry in list(self.by_state(RETIRING)):
            due = self.timing.retire_due(entry)
            if due is None or due > self.now:
                continue
            entry["state"] = RETIRED
            entry["retired_at"] = _jose.iso_utc(self.now)
            if self.keep_retired:
                self._keep_retired_key(entry)
            self._record("retire", entry["kid"])
            # State first: a run killed before the removal leaves a file the next run removes.
            self._write_state()
            if not self.keep_retired:
                self._remove_retired_key(entry)
            done = True
        return done

    def _keep_retired_key(self, entry):
        """Record in ``entry`` that its private key is kept as a backup (when it exists)."""
        path = key_file(self.path, entry["kid"])
        if os.path.lexists(path):
            entry["backup_file"] = path

    def _remove_retired_key(self, entry):
        self._remove(key_file(self.path, entry["kid"]), "retired private key")

    def revoke(self, remove_private_keys=False):
        now = _jose.iso_utc(self.now)
        for entry in self.state["keys"]:
            if entry["state"] in PUBLISHED_STATES:
                entry["state"] = REVOKED
                entry["revoked_at"] = now
                self._record("revoke", entry["kid"])
        if self.changed:
            self._write_state()
        if remove_private_keys:
            self._remove_private_keys()

    def _remove_private_keys(self):
        """Revocation: delete the private keys of the revoked and retired keys and the signing key."""
        removed = False
        for entry in self.state["keys"]:
            if entry["state"] in (REVOKED, RETIRED) and entry.get("backup_file"):
                entry.pop("backup_file")
                removed = True
        if removed:
            self._write_state()
        for entry in self.state["keys"]:
            if entry["state"] in (REVOKED, RETIRED):
                if self._remove(key_file(self.path, entry["kid"]), "revoked private key"):
                    self._record("remove_key", entry["kid"])
        if self._remove(self.path, "revoked signing key"):
            self._record("remove_key", self.signing_kid)

    def auto(self, allow_stage=True, rotate=False):
        self.retire()
        self.activate()
        if rotate and not self.in_progress():
            self.stage()
        elif allow_stage and self.key_in(NEXT) is None and not self.by_state(RETIRING):
            due = self.timing.stage_due(self.key_in(ACTIVE) or {})
            if due is not None and due <= self.now:
                self.stage()

    # -- results ---------------------------------------------------------------------------

    def summary(self):
        keys = []
        for entry in self.state["keys"]:
            item = dict((name, entry.get(name)) for name in self.SUMMARY_FIELDS)
            item["alg"] = entry["jwk"].get("alg")
            keys.append(item)
        return keys

    def publish_needed(self):
        for entry in self.state["keys"]:
            if entry["state"] in PUBLISHED_STATES and not entry.get("published_at"):
                return True
            if entry["state"] in (RETIRED, REVOKED) and not entry.get("withdrawn_at"):
                return True
        return False

    def next_step(self):
        """(step, epoch when it is due or None when it waits for a publication) or (None, None)."""
        nxt = self.key_in(NEXT)
        candidates = []
        if nxt is not None:
            candidates.append(("activate", self.timing.activation_due(nxt)))
        for entry in self.by_state(RETIRING):
            candidates.append(("retire", self.timing.retire_due(entry)))
        if not candidates:
            active = self.key_in(ACTIVE)
            due = self.timing.stage_due(active) if active else None
            if due is not None:
                candidates.append(("stage", due))
        if not candidates:
            return None, None
        waiting = [item for item in candidates if item[1] is None]
        if waiting:
            return waiting[0]
        return min(candidates, key=lambda item: item[1])

    def result(self):
        jwks = [] if self.state is None else ring_jwks(self.state)
        step, due = self.next_step() if self.state is not None else (None, None)
        after = self.summary() if self.state is not None else []
        return {
            "changed": self.changed,
            "performed": self.performed,
            "signing_kid": self.signing_kid,
            "jwks": jwks,
            "kids": [jwk["kid"] for jwk in jwks],
            "keys": after,
            "publish_needed": self.state is not None and self.publish_needed(),
            "in_progress": self.state is not None and self.in_progress(),
            "next_step": step,
            "next_step_at": _jose.iso_utc(due) if due is not None else None,
            "next_step_in": max(0, int(math.ceil(due - self.now))) if due is not None else None,
            "state_file": self.state_file,
            "warnings": self.warnings,
            "diff": {"before": {"keys": self.before or []}, "after": {"keys": after}},
        }


def ring_jwks(state):
    """JWKs of the published states, the active (signing) key first, then next, then retiring."""
    order = {ACTIVE: 0, NEXT: 1, RETIRING: 2}
    entries = sorted((entry for entry in state["keys"] if entry["state"] in PUBLISHED_STATES),
                     key=lambda entry: (order[entry["state"]], entry["kid"]))
    return [entry["jwk"] for entry in entries]


def run(spec, action="auto", timing=None, published_kids=None, remove_private_keys=False, keep_retired=False,
        now=None, check_mode=False, io=None, owner=None):
    """Run one action on the ring of ``spec.path``; returns the result dict.

    ``action``: ``status`` (read only), ``auto`` (every due step: retire, activate, and stage
    when max_key_age says so), ``rotate`` (auto, and stage a successor unless a rotation is
    in progress), ``stage``, ``mark_published`` (record that a JWKS holding
    ``published_kids`` was published just now), ``activate`` (refuses unless due),
    ``retire`` (due keys only) or ``revoke`` (every key of the ring; with
    ``remove_private_keys`` the private keys are deleted too).

    ``owner`` (uid or None) is the account that owns the key files (edge_keys_owner): the
    files of the ring and their directory must belong to it, root or the running account,
    and the directory must not be writable by others (``_files.check_private_dir``).
    """
    check_arguments(action, published_kids)
    timing = timing or Timing()
    ring = Ring(spec, timing, now=now, check_mode=check_mode or action == "status", keep_retired=keep_retired,
                io=io, owner=owner)
    return run_ring(ring, action, published_kids, remove_private_keys)


def check_arguments(action, published_kids):
    """Refuse an unknown action, and published_kids missing with or given without action=mark_published."""
    if action not in ACTIONS:
        raise KeyringError("action must be one of %s, got %r" % (", ".join(ACTIONS), action))
    if action == "mark_published" and published_kids is None:
        raise KeyringError("action=mark_published needs published_kids: the kids of the JWKS that was just published")
    if action != "mark_published" and published_kids is not None:
        raise KeyringError("published_kids is only used with action=mark_published")


def run_ring(ring, action, published_kids=None, remove_private_keys=False):
    """Run one action (see :func:`run`) on ``ring``, a :class:`Ring` made for it (``check_mode`` for status)."""
    ring.check_location()
    with _files.locked_unless(ring.check_mode, ring.lock_path):
        try:
            ring.load()
            if action != "revoke" or ring.state is None:
                # Revocation takes every key out whatever state a run left: nothing to complete first.
                if action == "revoke" and ring.signing_kid is None:
                    return dict(ring.result(), changed=False)
                ring.reconcile()
            if action == "stage":
                ring.stage()
            elif action == "mark_published":
                ring.mark_published(published_kids)
            elif action == "activate":
                problem = ring.activation_problem()
                if problem is not None:
                    raise KeyringError("cannot activate: %s. Nothing was changed." % problem)
                ring.activate()
            elif action == "retire":
                ring.retire()
            elif action == "revoke":
                ring.revoke(remove_private_keys)
            elif action in ("auto", "rotate"):
                ring.auto(rotate=action == "rotate")
        except _jose.CollectionError as exc:
            # What the run wrote before it failed is reported with the error (run_module).
            if ring.changed and exc.result is None:
                exc.result = ring.result()
            raise
        finally:
            ring.close()
        result = ring.result()
    if action == "status":
        result["changed"] = False
        result["would_change"] = ring.changed
    return result
