# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible glue shared by the collection's modules, and what their secret masking looks for.

PRIVATE to the collection: do not import it from other collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import stat

from urllib.parse import unquote

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _jose, _jwk


# --------------------------------------------------------------------------------------
# Keeping private material out of logs
# --------------------------------------------------------------------------------------

#: Private values shorter than this are not collected by :func:`secret_values`: real key
#: material is longer, and masking very short strings would garble unrelated output.
MIN_SECRET_LENGTH = 8

_PRIVATE_MEMBERS = frozenset(_jwk.PRIVATE_JWK_MEMBERS)

#: A private JWK member and its value in text that is not valid JSON (a broken JSON text, a Python dict
#: printed as text): the value is taken up to its closing quote.
_PRIVATE_MEMBER_TEXT = re.compile(r"""["'](?:%s|r|t)["']\s*:\s*["']([^"']+)["']"""
                                  % "|".join(_jwk.PRIVATE_JWK_MEMBERS))


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _pem_secret_values(text):
    """The whole PEM private key text, its lines (the BEGIN line too), and parts that may show up alone.

    Ansible masks a value only where it occurs whole. A caller may show the text line by
    line, a list conversion splits it at commas (an encrypted PEM's headers hold commas),
    and a path option cuts it at slashes (base64 holds them): each part is masked too.
    """
    found = [text.strip()]
    for line in text.splitlines():
        line = line.strip()
        parts = [line] + line.split(",") + line.split("/")
        parts += [line[:index] for index, char in enumerate(line) if char == "/"]
        parts += [line[index + 1:] for index, char in enumerate(line) if char == "/"]
        found.extend(part.strip() for part in parts if len(part.strip()) >= MIN_SECRET_LENGTH)
    return found


def secret_values(items, any_dict=True):
    """Strings in ``items`` (module arguments in any form) that may be private key material.

    A caller that logs its input (Ansible logs module arguments) masks these values, so a
    private key given by mistake is refused without its private values ever being shown.
    ``items`` is searched at any depth, in every form an argument can take before Ansible
    converts it: lists, dicts (a JWK, a JWKS), JSON text of either, PEM private keys, and
    text that is not valid JSON but names private JWK members. With ``any_dict=False`` only
    dicts with a ``kty`` count as JWKs (for options where a member ``d`` may be innocent).
    """
    found = []

    def collect(value):
        if isinstance(value, dict):
            for member in value.values():
                collect(member)
        elif isinstance(value, (list, tuple)):
            for member in value:
                collect(member)
        elif value is not None and not isinstance(value, bool):
            text = _text(value) if isinstance(value, (str, bytes)) else str(value)
            if len(text) >= MIN_SECRET_LENGTH:
                found.append(text)

    def visit_text(text, depth):
        if "PRIVATE KEY" in text:
            found.extend(_pem_secret_values(text))
        if text.lstrip().startswith(("{", "[")):
            try:
                visit(_jose.parse_json(text), depth + 1)
                return
            except ValueError:
                pass
        if any_dict or "kty" in text:
            found.extend(value for value in _PRIVATE_MEMBER_TEXT.findall(text) if len(value) >= MIN_SECRET_LENGTH)

    def visit(item, depth=0):
        if depth > 64:
            return
        if isinstance(item, dict):
            if (any_dict or "kty" in item) and not _PRIVATE_MEMBERS.isdisjoint(item):
                for name in _jwk.PRIVATE_JWK_MEMBERS:
                    if name in item:
                        collect(item[name])
            values = item.values()
        elif isinstance(item, (list, tuple)):
            values = item
        else:
            values = (item,)
        for value in values:
            if isinstance(value, (str, bytes)):
                text = _text(value)
                # Only a PEM private key, JSON or a text that names members can hold private values;
                # the common case, a key's number in base64url, holds none of them.
                if "PRIVATE KEY" in text or '"' in text or "'" in text:
                    visit_text(text, depth)
            elif isinstance(value, (dict, list, tuple)):
                visit(value, depth + 1)

    visit(list(items or []))
    return sorted(set(found))


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
            text = _text(item)
            found.update(form for form in (text, repr(text)[1:-1], json.dumps(text)[1:-1]) if form)
        elif item is not None and not isinstance(item, bool):
            found.add(str(item))

    visit(value)
    return found


#: A PIN written into a PKCS#11 URI (RFC 7512 pin-value), which _pkcs11 refuses: its value is masked.
_URI_PIN_VALUE = re.compile(r"pin-value=([^;&?#]+)", re.IGNORECASE)


def uri_pin_values(value):
    """The PINs in the ``pin-value`` attributes of text (as written and percent-decoded)."""
    if not isinstance(value, str) or "pin-value=" not in value.lower():
        return set()
    found = set()
    for match in _URI_PIN_VALUE.finditer(value):
        found.update((match.group(1), unquote(match.group(1))))
    return found


def raw_secret_values(params, argument_spec, secret_options=()):
    """Values to mask in module arguments as they were given, before any type conversion.

    Private key material in any option (a PEM private key, a private JWK, in any form:
    see :func:`secret_values`), the forms a no_log option's value of an unexpected type
    takes when it is converted (see :func:`_no_log_forms`), and for
    ``secret_options`` (options that take keys, such as jwks_publish's ``keys``) the private
    members of any dict in them, and a PIN written into a PKCS#11 URI (:func:`uri_pin_values`).
    """
    if not isinstance(params, dict):
        return set()

    def names(name):
        return [name] + list((argument_spec.get(name) or {}).get("aliases") or [])

    keys_given = set(given for name in secret_options for given in names(name))
    found = set(secret_values([value for name, value in params.items() if name not in keys_given], any_dict=False))
    found.update(secret_values([params[name] for name in sorted(keys_given) if name in params]))
    for name, spec in argument_spec.items():
        if spec.get("no_log"):
            for given in names(name):
                if given in params:
                    found.update(_no_log_forms(params[given]))
    for value in params.values():
        found.update(uri_pin_values(value))
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


# --------------------------------------------------------------------------------------
# Running a module
# --------------------------------------------------------------------------------------

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
