# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwt_keypair module's side: from its options to ``_keypair``'s backend, and what surrounds it.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``) and does what needs
the module: the key's directory (``parent_mode``, ``parent_update``), the warning when the
key's owner cannot enter that directory, the stored passphrase file, Ansible's file
attributes of the key and the certificate, and the adoption of ``private_key_content`` (also
in check mode). :func:`run` is the module's whole run. This file imports ``_common`` and so
Ansible: the token refresher does not copy it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    grp = pwd = None

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwk, _keypair, _keys
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import check_mode_option, write_file
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import FileError
from ansible_collections.selfjwt.kyma.plugins.module_utils._files import resolve_gid, resolve_uid


def _parent_group(module):
    """Group of directories that parent_mode creates: O(group), else O(owner)'s primary group, else None."""
    gid = resolve_gid(module.params["group"])
    if gid is None and module.params["owner"] is not None:
        uid = resolve_uid(module.params["owner"])
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            raise FileError("owner %s has no entry in the user database, so the group of the key directory is "
                            "unknown: set group as well" % (module.params["owner"],))
    return gid


def _set_directory(module, directory, mode, gid, changed):
    """Mode, and owner (the running account) and group ``gid`` of ``directory``; returns changed."""
    args = dict(module.load_file_common_arguments(module.params), path=directory, mode=mode,
                owner=str(os.geteuid()), group=None if gid is None else str(gid), attributes=None)
    return module.set_fs_attributes_if_different(args, changed)


def _ensure_parent(module, path):
    """O(parent_mode) and O(parent_update): the key's directory; returns changed.

    Missing directories are created by and for the running account, with O(parent_mode) and
    the group of _parent_group(). An existing directory is changed only with O(parent_update):
    a directory this module did not make may be shared (/etc/ssl), and handing it to another
    account or changing its mode would break other software or open it to others.
    """
    _files.check_path(path, "private key")
    mode = module.params["parent_mode"]
    if mode is None:
        if module.params["parent_update"]:
            raise FileError("parent_update needs parent_mode: set the mode the key directory should have")
        return False
    check_mode_option(mode)
    directory = os.path.dirname(os.path.abspath(path))
    missing = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise FileError("%s is not a directory, so the private key %s cannot be below it: give a path in a "
                        "directory" % (current, path))
    gid = _parent_group(module)
    changed = bool(missing)
    for created in reversed(missing):
        if module.check_mode:
            break
        try:
            os.mkdir(created, 0o700)
        except OSError as exc:
            raise FileError("cannot create the directory %s for the private key %s: %s"
                            % (created, path, exc.strerror or exc))
        _set_directory(module, created, mode, gid, True)
    if not missing and module.params["parent_update"]:
        changed = _set_directory(module, directory, mode, gid, False)
    return changed


def _owner_can_enter(uid, status):
    """True when the account ``uid`` may enter a directory with ``status`` (search permission)."""
    if uid == 0:
        return True
    if status.st_uid == uid:
        return bool(status.st_mode & stat.S_IXUSR)
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return bool(status.st_mode & stat.S_IXOTH)
    in_group = user.pw_gid == status.st_gid
    if not in_group and grp is not None:
        try:
            in_group = user.pw_name in grp.getgrgid(status.st_gid).gr_mem
        except KeyError:
            in_group = False
    return bool(status.st_mode & (stat.S_IXGRP if in_group else stat.S_IXOTH))


def _warn_if_owner_cannot_enter(module, path):
    """A key for an owner who cannot reach it (an existing directory that parent_mode left alone)."""
    uid = resolve_uid(module.params["owner"])
    directory = os.path.dirname(os.path.abspath(path))
    if uid is None or module.check_mode or not os.path.isdir(directory):
        return
    if not _owner_can_enter(uid, os.stat(directory)):
        module.warn("the owner %s cannot enter the key directory %s, so it cannot read its key: give the directory "
                    "the owner's group with mode 0750 (parent_mode=0750 and parent_update=true; edge_keys: "
                    "edge_keys_key_dir_update=true)" % (module.params["owner"], directory))


def _check_passphrase_file(path, key_path, store):
    """Refuse an unusable O(passphrase_file) before anything is written."""
    if path is None:
        return
    _files.check_path(path, "passphrase file")
    if os.path.isdir(path):
        raise FileError("passphrase file %s is a directory, not a file: give the path of a file" % path)
    directory = os.path.dirname(os.path.abspath(path))
    if store and directory != os.path.dirname(os.path.abspath(key_path)):
        _files.check_parent_dir(path, "passphrase file")


def _passphrase_file(module, result):
    """O(passphrase_file) and O(store_passphrase): keep the passphrase in its file, or remove the file."""
    path = module.params["passphrase_file"]
    if path is None:
        return
    store = module.params["store_passphrase"] and module.params["state"] == "present"
    existing = _files.read_bytes(path, "passphrase file", limit=64 * 1024,
                                 owners=_files.trusted_owners(resolve_uid(module.params["owner"])))
    changed = False
    if store:
        wanted = module.params["passphrase"].encode("utf-8")
        uid, gid = (None, None)
        if existing != wanted and not module.check_mode:
            uid, gid = resolve_uid(module.params["owner"]), resolve_gid(module.params["group"])
        file_args = dict(module.load_file_common_arguments(module.params), mode="0600")
        changed = write_file(module, path, wanted, existing, "passphrase file", 0o600, uid=uid, gid=gid,
                             attributes=file_args)
    elif existing is not None:
        changed = True
        if not module.check_mode:
            _files.remove(path, "passphrase file")
    result["changed"] = result["changed"] or changed
    diff = result.get("diff")
    if diff is not None:
        diff["before"]["passphrase_file"] = "absent" if existing is None else "present"
        diff["after"]["passphrase_file"] = "present" if store else "absent"


def _apply_file_attributes(module, result):
    """Owner, group, mode and SELinux context of the key and the certificate."""
    file_args = module.load_file_common_arguments(module.params)
    changed = result["changed"]
    if os.path.exists(file_args["path"]):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    certificate_path = module.params["certificate_path"]
    if certificate_path and os.path.exists(certificate_path):
        certificate_args = dict(file_args, path=certificate_path, mode="0644")
        changed = module.set_fs_attributes_if_different(certificate_args, changed)
    result["changed"] = changed


def _creation_mode(mode):
    """Mode a new key file gets before its first byte: O(mode) when numeric, else 0600.

    Symbolic modes (u=rw,g=r) are applied after the write, by set_fs_attributes_if_different().
    """
    return _files.creation_mode(mode, _keypair.KEY_MODE)


def _check_adoption_options(module, spec):
    """O(private_key_content) goes with O(state=present) and a O(regenerate) that never makes a key."""
    if module.params["private_key_content"] is None:
        return
    if spec.state != "present":
        raise FileError("private_key_content needs state=present: remove it to remove the key")
    if spec.regenerate not in ("fail", "never"):
        raise FileError("private_key_content adopts the given key and never makes a new one: leave regenerate at "
                        "fail (or set never), not %s" % spec.regenerate)


def _adoption_pending(module, spec, key_mode, directory_pending=False):
    """O(private_key_content): check the given key; write it when O(path) holds no key yet.

    Returns None when there is nothing to adopt (no O(private_key_content), or O(path) already
    holds that key), else the key's bytes: written (changed), or, in check mode, to be written.
    Everything is checked before the first byte is written; another key at O(path) is never
    replaced. ``directory_pending``: check mode, and the key's directory does not exist yet
    because O(parent_mode) would create it, so there is no key to compare with.
    """
    content = module.params["private_key_content"]
    if content is None:
        return None
    data = content.encode("utf-8")
    given = _keys.load_private_key(data, spec.passphrase, source="the key in private_key_content")
    if not _keys.key_matches(given, spec.type, spec.size, spec.curve):
        raise FileError("private_key_content holds %s, but type=%s was requested: set type, size and curve to match "
                        "the key" % (_keypair.describe_facts(_keys.key_description(given)), spec.type))

    owners = _files.trusted_owners(resolve_uid(module.params["owner"]))

    def adopt():
        if directory_pending:
            return data
        _files.check_private_dir(spec.path, owners, "private key")
        existing = _files.read_bytes(spec.path, "private key", owners=owners)
        if existing is None:
            if not module.check_mode:
                _files.write_atomic(spec.path, data, key_mode, "private key", uid=resolve_uid(module.params["owner"]),
                                    gid=resolve_gid(module.params["group"]))
            return data
        if existing == data or _same_key(existing, given, spec):
            return None
        raise FileError("the private key %s holds another key than private_key_content (kid %s), or one that cannot "
                        "be read. Nothing was changed. Move the file away to adopt the given key, or keep the key "
                        "the file holds" % (spec.path, _jwk.key_thumbprint(given)))

    if module.check_mode:
        return adopt()
    with _files.locked(spec.path):
        return adopt()


def _same_key(existing, given, spec):
    """True when the PEM ``existing`` holds the key ``given`` (with either passphrase, if encrypted)."""
    for passphrase in (spec.passphrase, spec.old_passphrase) if _keys.pem_is_encrypted(existing) else (None,):
        try:
            key = _keys.load_private_key(existing, passphrase, check=False)
        except _jose.JoseError:
            continue
        try:
            return _jwk.jwk_key_members(key) == _jwk.jwk_key_members(given)
        except _jose.JoseError:
            return False
    return False


def _adopted_in_check_mode(spec, data):
    """The result of a check mode run that would write O(private_key_content): facts of the given key."""
    backend = _keypair.KeypairBackend(spec, check_mode=True)
    certificate = (_files.read_bytes(spec.certificate_path, "certificate", owners=backend.owners)
                   if spec.certificate_path else None)
    backend.set_existing(data, certificate)
    backend.plan()
    result = backend.result()
    result["changed"] = True
    _key_was_absent(result)
    return result


def _key_was_absent(result):
    """The diff of an adopted key: there was no key before (the certificate's facts stay)."""
    before = {"state": "absent"}
    if "certificate" in result["diff"]["before"]:
        before["certificate"] = result["diff"]["before"]["certificate"]
    result["diff"]["before"] = before


def _published_jwks(path, jwk, owners):
    """The JWKs to publish for the key file at ``path`` whose JWK is ``jwk``: ``_keyring.jwks_for_key``.

    Most keys have no ring: without a ring state beside the key the answer is ``[jwk]``, and
    the ring code is not loaded (every module_util the module imports is compiled on each host).
    """
    if not jwk:
        return []
    if _files.absent(_keypair.ring_state_path(path)):
        return [jwk]
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _keyring  # pylint: disable=import-outside-toplevel

    return _keyring.jwks_for_key(path, jwk, owners)


def run_token_key(module, spec):
    """O(pkcs11_uri): the key pair in the token, the certificate file and its attributes."""
    # Imported here: runs with key files do not load the token code.
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _keypair_pkcs11, _keyring, _pkcs11  # pylint: disable=import-outside-toplevel

    params = module.params
    if params["store_passphrase"] or params["parent_update"] or params["backup"]:
        raise FileError("store_passphrase, parent_update and backup are about a key file; a key in a token "
                        "(pkcs11_uri) has none: remove them")
    uid = resolve_uid(params["owner"])
    pin = _pkcs11.resolve_pin(_pkcs11.parse_uri(spec.pkcs11_uri), params["pkcs11_pin"], params["pkcs11_pin_file"],
                              owners=_files.trusted_owners(uid))
    if spec.state == "absent":
        return _keypair_pkcs11.ensure_absent(spec, pin, check_mode=module.check_mode, uid=uid)
    result = _keypair_pkcs11.ensure_present(spec, pin, check_mode=module.check_mode, uid=uid,
                                            gid=resolve_gid(params["group"]))
    if params["state_path"]:
        result["jwks"] = _keyring.jwks_for_state_file(params["state_path"], result["jwk"],
                                                      _files.trusted_owners(uid))
    facts = result.get("pkcs11")
    if facts and (facts["extractable"] or not facts["never_extractable"] or not facts["always_sensitive"]):
        module.warn("the key %s can be or could once be exported from its token (CKA_EXTRACTABLE=%s, "
                    "CKA_NEVER_EXTRACTABLE=%s, CKA_ALWAYS_SENSITIVE=%s): a copy of it may exist outside the "
                    "token. Generate a new key in the token (regenerate=always) and publish its JWK."
                    % (spec.pkcs11_uri, facts["extractable"], facts["never_extractable"],
                       facts["always_sensitive"]))
    certificate_path = params["certificate_path"]
    if certificate_path and os.path.exists(certificate_path):
        certificate_args = dict(module.load_file_common_arguments(params, path=certificate_path), mode="0644")
        result["changed"] = module.set_fs_attributes_if_different(certificate_args, result["changed"])
    return result


def run(module):
    check_mode_option(module.params["mode"])
    spec = _keypair.KeypairSpec.from_params(module.params)
    if spec.pkcs11_uri is not None:
        return run_token_key(module, spec)
    if module.params["store_passphrase"] and not (module.params["passphrase_file"] and module.params["passphrase"]):
        raise FileError("store_passphrase needs passphrase_file and passphrase: set both, or set store_passphrase=false")
    _check_passphrase_file(module.params["passphrase_file"], spec.path, module.params["store_passphrase"])
    _check_adoption_options(module, spec)
    key_mode = _creation_mode(module.params["mode"])
    if spec.state == "absent":
        result = dict(_keypair.ensure_absent(spec, check_mode=module.check_mode,
                                             uid=resolve_uid(module.params["owner"])), jwks=[])
        _passphrase_file(module, result)
        return result
    parent_changed = _ensure_parent(module, spec.path)
    # In check mode a directory that parent_mode would create does not exist yet.
    directory_pending = module.check_mode and parent_changed and not os.path.isdir(
        os.path.dirname(os.path.abspath(spec.path)))
    adopted = _adoption_pending(module, spec, key_mode, directory_pending)
    if adopted is not None and module.check_mode:
        result = _adopted_in_check_mode(spec, adopted)
        _apply_file_attributes(module, result)
        result["jwks"] = [result["jwk"]]
        return result
    result = _keypair.ensure_present(
        spec, check_mode=module.check_mode, key_mode=key_mode,
        uid=resolve_uid(module.params["owner"]), gid=resolve_gid(module.params["group"]),
        check_parent=not directory_pending)
    result["changed"] = result["changed"] or parent_changed or adopted is not None
    if adopted is not None:
        _key_was_absent(result)
    _warn_if_owner_cannot_enter(module, spec.path)
    _apply_file_attributes(module, result)
    _passphrase_file(module, result)
    owners = _files.trusted_owners(resolve_uid(module.params["owner"]))
    result["jwks"] = _published_jwks(spec.path, result["jwk"], owners)
    return result
