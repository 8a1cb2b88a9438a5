# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible glue shared by the collection's modules.

PRIVATE to the collection: do not import it from other collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import stat

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwks


def _no_log_forms(value):
    """Texts that a no_log option's value of an unexpected type may show up as.

    Ansible masks the leaves of a no_log value (texts and numbers, not dict keys). A text
    option given a list or dict is converted with ``str()``, which shows dict keys and
    escapes backslashes, quotes and newlines in the leaves, so the masked leaves no longer
    match: these forms are masked too.
    """
    if value is None or isinstance(value, (bool, str, bytes)):
        return set()
    found = set([str(value)])

    def visit(item):
        if isinstance(item, dict):
            for key, member in item.items():
                visit(key)
                visit(member)
        elif isinstance(item, (list, tuple)):
            for member in item:
                visit(member)
        elif isinstance(item, (str, bytes)):
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            found.update(form for form in (text, repr(text)[1:-1], json.dumps(text)[1:-1]) if form)
        elif item is not None and not isinstance(item, bool):
            found.add(str(item))

    visit(value)
    return found


def raw_secret_values(params, argument_spec, secret_options=()):
    """Values to mask in module arguments as they were given, before any type conversion.

    Private key material in any option (a PEM private key, a private JWK, in any form:
    see ``_jwks.secret_values``), the forms a no_log option's value of an unexpected type
    takes when it is converted (see :func:`_no_log_forms`), and for
    ``secret_options`` (options that take keys, such as jwks_publish's ``keys``) the private
    members of any dict in them.
    """
    if not isinstance(params, dict):
        return set()

    def names(name):
        return [name] + list((argument_spec.get(name) or {}).get("aliases") or [])

    keys_given = set(given for name in secret_options for given in names(name))
    found = set(_jwks.secret_values([value for name, value in params.items() if name not in keys_given],
                                    any_dict=False))
    found.update(_jwks.secret_values([params[name] for name in sorted(keys_given) if name in params]))
    for name, spec in argument_spec.items():
        if spec.get("no_log"):
            for given in names(name):
                if given in params:
                    found.update(_no_log_forms(params[given]))
    return found


class SecretMaskingModule(AnsibleModule):
    """An AnsibleModule that masks secrets in its arguments from the moment it reads them.

    AnsibleModule collects the values it masks (``no_log_values``) while it validates the
    arguments, and only from no_log options; it then logs the arguments (syslog or the
    journal: ``Invoked with ...``) and returns them as ``invocation`` (shown with -vvv),
    also when a type conversion fails. A module that finds private material later (a
    private JWK given to jwks_publish by mistake) is too late, and a conversion may split a
    secret into pieces that no longer match. This class adds what
    :func:`raw_secret_values` finds in the raw arguments as soon as they are read, so the
    masking holds for every form an argument can take, before validation, its failure
    messages and the invocation log.

    ``secret_options``: options whose dicts count as keys (see :func:`raw_secret_values`).
    """

    def __init__(self, *args, **kwargs):
        self._secret_options = tuple(kwargs.pop("secret_options", ()))
        super(SecretMaskingModule, self).__init__(*args, **kwargs)

    def _load_params(self):
        super(SecretMaskingModule, self)._load_params()
        self._mask_raw_secrets()

    def _log_invocation(self):
        # Again, in case a later ansible-core resets no_log_values after reading the arguments.
        self._mask_raw_secrets()
        super(SecretMaskingModule, self)._log_invocation()

    def _mask_raw_secrets(self):
        if getattr(self, "_raw_secret_values", None) is None:
            self._raw_secret_values = raw_secret_values(self.params, self.argument_spec, self._secret_options)
        self.no_log_values.update(self._raw_secret_values)


def check_dependencies(module):
    """Fail with missing_required_lib() when cryptography or PyJWT (or python-pkcs11 for O(pkcs11_uri)) is missing."""
    missing = _jose.missing_dependencies(pkcs11=bool(module.params.get("pkcs11_uri")))
    if missing:
        requirement, trace = missing[0]
        # missing_libraries tells a playbook (the edge_keys role) this failure from any other.
        module.fail_json(msg=missing_required_lib(requirement), exception=trace,
                         missing_libraries=[name for name, _trace in missing])


def check_mode_option(mode):
    """Refuse a file ``mode`` that is neither octal nor symbolic, before anything is written.

    Ansible checks ``mode`` only when it applies it, after a module wrote its file; a module
    calls this first, so a typo in ``mode`` leaves every file as it was.
    """
    if mode is not None:
        _files.file_mode(mode, stat.S_IFREG | 0o600)
    return mode


def write_file(module, path, data, old, what, mode, uid=None, gid=None, attributes=None):
    """Write ``data`` (bytes) to ``path`` unless it holds them already, then apply ``attributes``.

    ``old`` is what the module read from ``path`` (None when there is no file). The file is
    written by ``_files.write_atomic``, with ``mode``, ``uid`` and ``gid`` from its first byte;
    nothing is written in check mode. ``attributes`` are Ansible's file arguments
    (``load_file_common_arguments``: owner, group, mode, SELinux context), applied to ``path``
    unless check mode did not create it. Returns whether anything changed (or would).
    """
    changed = old != data
    if changed and not module.check_mode:
        _files.write_atomic(path, data, mode, what, uid=uid, gid=gid)
    if attributes is None or (module.check_mode and old is None):
        return changed
    return module.set_fs_attributes_if_different(dict(attributes, path=path), changed)


def run_module(module, function):
    """Run ``function(module)`` and turn expected errors into one clear fail_json().

    An error that carries what the run performed before it failed (``CollectionError.result``)
    is reported with it, so a run that changed something and then failed says what it changed.
    """
    check_dependencies(module)
    try:
        result = function(module)
    except _jose.CollectionError as exc:
        performed = dict(exc.result or {})
        for warning in performed.pop("warnings", None) or []:
            module.warn(warning)
        performed.pop("msg", None)
        module.fail_json(msg=str(exc), **performed)
    module.exit_json(**result)
