# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jwks_publish module's side: its option checks, the JWKS and discovery files, the result.

PRIVATE to the collection: do not import it from other collections.

It takes the AnsibleModule (like community.crypto's ``module_backends``); :func:`run` is the
module's whole run around ``_jwks.plan``. This file imports ``_common`` and so Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jwks
from ansible_collections.selfjwt.kyma.plugins.module_utils._common import check_mode_option, write_file

DEFAULT_MODE = 0o644


def _creation_mode(mode):
    """Numeric mode for a new file; symbolic modes are applied afterwards by Ansible."""
    return _files.creation_mode(mode, DEFAULT_MODE)


def _requested_ids(module):
    """(uid, gid) of O(owner) and O(group) (None when unset); FileError for unknown names."""
    return _files.resolve_uid(module.params.get("owner")), _files.resolve_gid(module.params.get("group"))


def _owner_ids(module, path):
    """(uid, gid) for a new file: the requested owner/group, or those of the file it replaces."""
    try:
        current = os.stat(path)
    except OSError:
        current = None
    uid, gid = _files.replacement_owner(*_requested_ids(module), current=current)
    if uid == os.geteuid():
        uid = None
    return uid, gid


def _write(module, path, text, old, what):
    """Write ``text`` to ``path`` if it differs from ``old`` and apply file attributes; True if changed."""
    data = text.encode("utf-8")
    uid, gid = _owner_ids(module, path) if old != data and not module.check_mode else (None, None)
    file_args = module.load_file_common_arguments(module.params, path=path)
    if file_args.get("mode") is None:
        file_args["mode"] = "0%o" % DEFAULT_MODE
    return write_file(module, path, data, old, what, _creation_mode(module.params["mode"]), uid=uid, gid=gid,
                      attributes=file_args)


def run(module):
    params = module.params
    dest, discovery_dest = params["dest"], params["discovery_dest"]
    if dest and discovery_dest and os.path.abspath(dest) == os.path.abspath(discovery_dest):
        module.fail_json(msg="dest and discovery_dest are the same file %s: give the discovery document its own path"
                         % dest)
    if params["merge"] and not dest and params["current"] is None:
        module.fail_json(msg="merge=true needs the JWKS published so far: set dest, or current (an empty string "
                         "when nothing is published yet)")
    for name in ("max_keys", "max_bytes", "budget_warn_percent"):
        if params[name] < 0:
            module.fail_json(msg="%s must be 0 (no limit) or more, got %d" % (name, params[name]))
    # Refuse a bad mode, owner or group before anything is written.
    check_mode_option(params["mode"])
    _requested_ids(module)

    lock = _files.locked_unless(not (dest and params["merge"]) or module.check_mode, dest)
    with lock:
        if dest:
            _files.check_parent_dir(dest, "JWKS file")
            existing = _files.read_bytes(dest, "JWKS file", limit=_jwks.READ_LIMIT)
            existing_what = "JWKS file %s" % dest
        else:
            existing = params["current"] if params["current"] not in (None, "", {}) else None
            existing_what = "the current JWKS"
        plan = _jwks.plan(_jwks.key_list(params["keys"]), existing, params["revoke"], params["merge"],
                          params["allow_empty"], max_keys=params["max_keys"], max_bytes=params["max_bytes"],
                          existing_what=existing_what, budget_warn_percent=params["budget_warn_percent"])

        discovery, discovery_text, discovery_old = None, None, None
        if params["issuer"]:
            discovery, discovery_text = _jwks.discovery(params["issuer"], params["jwks_uri"], plan["jwks"])
        if discovery_dest:
            _files.check_parent_dir(discovery_dest, "discovery document")
            discovery_old = _files.read_bytes(discovery_dest, "discovery document")
            _jwks.check_discovery_existing(discovery_old, "discovery_dest %s" % discovery_dest)

        changed = False
        if dest:
            changed = _write(module, dest, plan["document"], existing, "JWKS file") or changed
        if discovery_dest:
            changed = _write(module, discovery_dest, discovery_text, discovery_old, "discovery document") or changed

    for warning in plan["warnings"]:
        module.warn(warning)
    result = dict(
        changed=changed,
        jwks=plan["jwks"],
        document=plan["document"],
        kids=plan["kids"],
        added=plan["added"],
        removed=plan["removed"],
        updated=plan["updated"],
        revoked=plan["revoked"],
        revoke_not_found=plan["revoke_not_found"],
        size=plan["size"],
        dest=dest,
        discovery=discovery,
        discovery_document=discovery_text,
        discovery_dest=discovery_dest,
    )
    if module._diff and (dest or discovery_dest):
        diff = _jwks.diff_entries(dest, plan) if dest else []
        if discovery_dest:
            diff.append(_jwks.text_diff(discovery_dest, discovery_old, discovery_text))
        result["diff"] = diff
    return result
