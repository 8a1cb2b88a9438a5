# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""JSON Web Key Sets (RFC 7517 section 5): assembling, merging and budgeting them; JWKS and discovery documents.

PRIVATE to the collection: do not import it from other collections.

This file imports nothing from Ansible (only the JOSE modules and the standard library): the
module ``jwks_publish``, ``_publish`` (the kyma_publish plan), tests and benchmarks share it. It
also renders JWKS and discovery documents (:func:`jwks_document`, :func:`discovery_document`).

The central function is :func:`plan`: it takes the keys to publish, the JWKS published so far
(optional), the kids to revoke and the merge flag, and returns everything a caller needs to
publish: the deterministic JSON text, the kids added, removed and updated, and warnings. It
writes nothing. Every refusal is a ``_jose.JoseError`` whose message never contains private
key material.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import operator
import re

from ansible_collections.selfjwt.kyma.plugins.module_utils import _algorithms, _jose, _jwk

#: Largest JWKS file read back (bytes). A JWKS budget (max keys, max bytes) is far smaller;
#: this only protects against reading a wrong, huge file.
READ_LIMIT = 64 * 1024 * 1024

_KID = operator.itemgetter("kid")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s?#]*$")


# --------------------------------------------------------------------------------------
# Reading and normalizing keys
# --------------------------------------------------------------------------------------

def private_members(keys):
    """Names of private or secret members present in any of ``keys`` (raw JWK dicts)."""
    names = set()
    for key in keys or []:
        if isinstance(key, dict):
            names.update(name for name in _jwk.PRIVATE_JWK_MEMBERS if name in key)
    return sorted(names)


def _is_jwks(value):
    return isinstance(value, dict) and "kty" not in value and isinstance(value.get("keys"), list)


def _expand(item, label):
    """(label, key input) pairs of one element of ``keys``; a whole JWKS yields all its keys."""
    value = item
    if isinstance(item, (str, bytes)):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        if text.strip().startswith("{"):
            try:
                value = _jose.parse_json(text)
            except ValueError as exc:
                raise _jose.JoseError("%s is not valid JSON: %s" % (label, exc))
    if _is_jwks(value):
        return [("%s.keys[%d]" % (label, index), key) for index, key in enumerate(value["keys"])]
    return [(label, value)]


def _unique(entries):
    """Normalized JWKs by kid from (label, jwk) pairs; the same key given twice is kept once."""
    by_kid = {}
    for label, jwk in entries:
        kid = jwk["kid"]
        if kid not in by_kid:
            by_kid[kid] = (label, jwk)
            continue
        first_label, first = by_kid[kid]
        if first == jwk:
            continue
        if _jwk.thumbprint(first) == _jwk.thumbprint(jwk):
            differ = sorted(name for name in set(first) | set(jwk) if first.get(name) != jwk.get(name))
            raise _jose.JoseError(
                "kid %s is given twice (%s and %s) for the same key with different members (%s): "
                "give each key once" % (kid, first_label, label, ", ".join(differ)))
        raise _jose.JoseError(
            "kid %s is given twice (%s and %s) for two different keys: a kid must name exactly one key; "
            "give the keys distinct kids (the default kid, the key's RFC 7638 thumbprint, is unique)"
            % (kid, first_label, label))
    return dict((kid, jwk) for kid, (label, jwk) in by_kid.items())


def key_list(value, what="keys"):
    """The list of key inputs in ``value``, the ``keys`` option in any form it is given.

    A list is taken as it is; one dict (a JWK or a JWKS), one JSON text of a JWK or JWKS,
    and one PEM text are one element; a JSON text of a list is that list. A text is never
    split at commas (Ansible's list conversion would cut a JSON text into pieces).
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not text.strip():
            return []
        if text.lstrip().startswith("["):
            try:
                parsed = _jose.parse_json(text)
            except ValueError as exc:
                raise _jose.JoseError("%s is a text that starts like a JSON list but is not valid JSON (%s): give a "
                                      "list of keys, or the JSON text of one" % (what, exc))
            if not isinstance(parsed, list):
                raise _jose.JoseError("%s must be a list of keys" % what)
            return parsed
        return [text]
    raise _jose.JoseError("%s must be a list of keys (JWK dicts, JSON or PEM texts), got %s"
                          % (what, type(value).__name__))


def collect_keys(items, what="keys"):
    """Validate and normalize public keys; returns a dict kid -> normalized JWK.

    Each element of ``items`` is a public JWK dict (for example jwt_keypair's ``jwk``), its
    JSON text, a PEM public key, a PEM certificate, or a whole JWKS (dict or JSON text with a
    ``keys`` list) whose keys are all taken. The same key given twice under the same kid is
    kept once; the same kid for two different keys, or for the same key with different
    members (``alg``, ``x5c``, ...), is refused. Private members, unknown ``kty`` and
    malformed keys are refused by ``_jwk.key_input_to_jwk``.
    """
    if items is None:
        items = []
    if not isinstance(items, (list, tuple)):
        raise _jose.JoseError("%s must be a list of keys, got %s" % (what, type(items).__name__))
    entries = []
    to_jwk = _jwk.jwk_to_public_key
    for index, item in enumerate(items):
        label = "%s[%d]" % (what, index)
        if isinstance(item, dict) and not _is_jwks(item):
            # A JWK dict (the common case): key_input_to_jwk would hand it to jwk_to_public_key.
            entries.append((label, to_jwk(item, label)[0]))
            continue
        for label, value in _expand(item, label):
            entries.append((label, _jwk.key_input_to_jwk(value, label)))
    return _unique(entries)


def parse_jwks(data, what="the JWKS"):
    """The raw key list of a published JWKS (bytes, text or dict).

    None (nothing published yet) gives None; an empty or blank file gives an empty list.
    Anything that is not a JSON object with a ``keys`` list is refused, so a file that is not
    a JWKS is never overwritten by mistake.
    """
    return _load_jwks(data, what)[1]


def _load_jwks(data, what):
    """(the parsed JWKS dict or None, its raw key list or None); see :func:`parse_jwks`."""
    if data is None:
        return None, None
    value = data
    if isinstance(data, (bytes, str)):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if not text.strip():
            return None, []
        try:
            value = _jose.parse_json(text)
        except ValueError as exc:
            raise _jose.JoseError("%s is not a JWKS: it is not valid JSON (%s); fix it or move it away, "
                                  "it was left unchanged" % (what, exc))
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise _jose.JoseError("%s is not a JWKS: it is not a JSON object with a 'keys' list; fix it or move "
                              "it away, it was left unchanged" % what)
    keys = value["keys"]
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise _jose.JoseError("%s is not a JWKS: keys[%d] is not a JSON object; fix it or move it away, "
                                  "it was left unchanged" % (what, index))
    return value, keys


def _holds_private_text(value, depth=0):
    """True if a string in ``value`` (at any depth) holds a PEM private key."""
    if depth > 64:
        return True
    if isinstance(value, dict):
        return any(_holds_private_text(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_holds_private_text(item, depth + 1) for item in value)
    return isinstance(value, str) and "PRIVATE KEY" in value


def undisclosed_members(value):
    """Why an existing JWKS (parsed dict) may not be shown in a diff; [] when it holds public keys only.

    Shown is only a JSON object whose one member is ``keys``, a list of JWKs with public
    members only (``_jwk.PUBLIC_JWK_MEMBERS``) holding text or lists of text, and no PEM
    private key anywhere. Anything else may be a private file at the wrong path, so its
    content is never printed; the result names what is unexpected (member names, never values).
    """
    if value is None:
        return []
    found = set("member %s" % name for name in value if name != "keys")
    for key in value.get("keys") or []:
        for name, member in key.items():
            if name not in _jwk.PUBLIC_JWK_MEMBERS:
                found.add("key member %s" % name)
            elif not (isinstance(member, str) or
                      (isinstance(member, list) and all(isinstance(item, str) for item in member))):
                found.add("key member %s that is not text" % name)
    if _holds_private_text(value):
        found.add("a PEM private key")
    return sorted(found)


def _kids(raw_keys):
    return sorted(set(key["kid"] for key in raw_keys or [] if isinstance(key.get("kid"), str)))


def _check_one_kid_per_key(keys):
    """Refuse one key published under two kids: revoking one kid would leave it trusted."""
    seen = {}
    for kid in sorted(keys):
        digest = _jwk.thumbprint(keys[kid])
        if digest in seen:
            raise _jose.JoseError(
                "the same key is published under kids %s and %s: revoking one of them would leave the key "
                "trusted under the other; publish each key once (revoke one of the two kids)" % (seen[digest], kid))
        seen[digest] = kid


# --------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------

def jwks_document(jwks, normalized=False):
    """Deterministic JSON text of a JWKS: keys sorted by kid, members in a fixed order.

    ``normalized=True`` says the keys already have their members in the published order (as
    ``_jwk.jwk_to_public_key`` and ``_jwk.public_jwk`` return them), so they are not copied again.
    """
    keys = jwks.get("keys", [])
    if not normalized:
        keys = [_jwk.ordered_jwk(key) for key in keys]
    keys = sorted(keys, key=_KID)
    rendered = [_indented_jwk(key) for key in keys]
    if not keys or None in rendered:
        return json.dumps({"keys": keys}, indent=2, sort_keys=False, ensure_ascii=True) + "\n"
    # The same text as json.dumps(indent=2) above, which runs in pure Python (its C encoder
    # does not indent) and so took most of the time of a 10,000-key JWKS.
    return '{\n  "keys": [\n%s\n  ]\n}\n' % ",\n".join(rendered)


def _indented_jwk(jwk):
    """One JWK as json.dumps(indent=2) writes it at depth 2, or None when it holds other than strings."""
    try:
        # The common case: only known member names with string values (a list or number
        # raises TypeError, another name KeyError, and the general way below handles them).
        names = tuple(jwk)
        template = _JWK_TEMPLATES.get(names)
        if template is None:
            if not names or len(_JWK_TEMPLATES) >= 64:
                raise KeyError(names)
            template = _JWK_TEMPLATES[names] = "    {\n%s\n    }" % ",\n".join(
                _MEMBER_PREFIXES[name].replace("%", "%%") + "%s" for name in names)
        return template % tuple(map(_json_string, jwk.values()))
    except (KeyError, TypeError):
        pass
    lines = []
    for name, value in jwk.items():
        if isinstance(value, str):
            prefix = _MEMBER_PREFIXES.get(name)
            if prefix is None:
                prefix = "      %s: " % _json_string(name)
            lines.append(prefix + json.encoder.encode_basestring_ascii(value))
        elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            lines.append("      %s: [\n%s\n      ]" % (
                _json_string(name), ",\n".join("        " + _json_string(item) for item in value)))
        else:
            return None
    if not lines:
        return None
    return "    {\n%s\n    }" % ",\n".join(lines)


_json_string = json.encoder.encode_basestring_ascii


_MEMBER_PREFIXES = dict((name, '      "%s": ' % name) for name in _jwk.PUBLIC_JWK_MEMBERS)
#: Text of a JWK of string members by its member names (a JWKS has few shapes).
_JWK_TEMPLATES = {}


def discovery_document(issuer, jwks_uri, algorithms):
    """A minimal OpenID Connect discovery document that points at the JWKS."""
    doc = {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": sorted(set(algorithms)),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


#: What to do about a JWKS over budget (named in every budget message).
BUDGET_FIXES = ("use a smaller key type (EC P-256 or Ed25519 instead of RSA), publish without x5c (no certificates), "
                "split the fleet into issuer shards (selfjwt_shard_count or selfjwt_shard_groups), or share one key "
                "per site (edge_keys_key_scope=site)")


def _key_label(jwk):
    """Short type of a public JWK for budget messages: RSA-2048, EC P-256, Ed25519, ... (+ x5c)."""
    kty = jwk.get("kty")
    if kty == "RSA":
        try:
            label = "RSA-%d" % _jose.b64url_to_uint(jwk["n"], "n").bit_length()
        except Exception:  # pylint: disable=broad-exception-caught
            label = "RSA"
    elif kty == "EC":
        label = "EC %s" % jwk.get("crv")
    else:
        label = str(jwk.get("crv") or kty)
    return label + (" with x5c" if jwk.get("x5c") else "")


def composition(keys):
    """[(key type, count, about bytes)] of ``keys`` (public JWK dicts), largest share first."""
    shares = {}
    for jwk in keys:
        label = _key_label(jwk)
        count, size = shares.get(label, (0, 0))
        text = json.dumps(jwk, indent=2)
        # In the document each member line is indented two levels deeper, and keys are comma-separated.
        shares[label] = (count + 1, size + len(text) + 4 * (text.count("\n") + 1) + 2)
    return sorted(((label, count, size) for label, (count, size) in shares.items()), key=lambda item: -item[2])


def _by_key_type(keys):
    """``; by key type: ...`` for budget messages (:func:`composition` of ``keys``), or "" without keys."""
    if keys is None:
        return ""
    parts = ["%d %s (about %d bytes, %d per key)" % (count, label, size, size // count)
             for label, count, size in composition(keys)]
    return "; by key type: %s" % ", ".join(parts) if parts else ""


def check_budget(document, key_count, max_keys=None, max_bytes=None, keys=None):
    """Refuse a JWKS with more than ``max_keys`` keys or ``max_bytes`` bytes (None or 0: no limit).

    ``keys`` (the JWK dicts of the document, optional) lets the message say which key types
    take the room. Returns the size of ``document`` in bytes.
    """
    size = len(document.encode("utf-8"))
    over = []
    if max_keys and key_count > max_keys:
        over.append("%d keys, more than the budget of %d keys" % (key_count, max_keys))
    if max_bytes and size > max_bytes:
        over.append("%d bytes, more than the budget of %d bytes" % (size, max_bytes))
    if over:
        needed = max(-(-key_count // max_keys) if max_keys else 1, -(-size // max_bytes) if max_bytes else 1)
        raise _jose.JoseError(
            "the JWKS would hold %s (%d keys, %d bytes%s); nothing was published. Fix: %s; at this size the keys "
            "need at least %d JWKS of this budget, and twice that to leave room for a rotation (two key "
            "generations per host)" % (" and ".join(over), key_count, size, _by_key_type(keys), BUDGET_FIXES, needed))
    return size


def budget_warnings(size, key_count, max_keys=None, max_bytes=None, warn_percent=None, keys=None):
    """Warnings when the JWKS uses more than ``warn_percent`` % of a budget (no room for a rotation)."""
    if not warn_percent:
        return []
    warnings = []
    for used, limit, unit in ((key_count, max_keys, "keys"), (size, max_bytes, "bytes")):
        if limit and used * 100 > limit * warn_percent:
            warnings.append(
                "the JWKS holds %d %s, %d%% of its budget of %d %s (warning above %d%%): a rotation publishes a "
                "second key per host and may then exceed the budget%s. Plan ahead: %s"
                % (used, unit, used * 100 // limit, limit, unit, warn_percent, _by_key_type(keys), BUDGET_FIXES))
    return warnings


def plan(keys=None, existing=None, revoke=None, merge=False, allow_empty=False, max_keys=None,
         max_bytes=None, what="keys", existing_what="the published JWKS", budget_warn_percent=None):
    """Work out the JWKS to publish; nothing is written.

    :param keys: key inputs, see :func:`collect_keys`.
    :param existing: the JWKS published so far (bytes or text of the file, or a dict), or
        None when nothing is published yet.
    :param revoke: kids to drop. Revoke wins over ``keys`` (a warning says so); a kid that
        is nowhere is fine and reported in ``revoke_not_found``.
    :param merge: keep the keys of ``existing`` that are not revoked. A key in ``keys``
        replaces the existing key of the same kid when both are the same key (new ``x5c``,
        for example); a kid reused for another key is refused.
    :param allow_empty: allow a JWKS without keys (every token is then rejected).
    :param max_keys: budget, see :func:`check_budget` (``max_bytes`` too); checked against what is
        published, so during a rotation both key generations count.
    :param budget_warn_percent: warn when more than this share of a budget is used, see
        :func:`budget_warnings`.
    :returns: dict with ``document`` (text), ``jwks`` (dict), ``kids``, ``added``, ``removed``,
        ``updated``, ``revoked``, ``revoke_not_found`` (sorted kid lists compared with
        ``existing``), ``changed`` (``document`` differs from ``existing`` byte for byte),
        ``size`` (bytes), ``warnings`` (list of text), ``before_kids`` (kids of ``existing``),
        ``before_document`` (the text of ``existing`` for a diff; None when absent or hidden)
        and ``before_hidden`` (True when ``existing`` held private members and is not shown).
    """
    given = collect_keys(keys, what)
    revoke_set = set(_revoke_list(revoke))
    old_value, old_raw = _load_jwks(existing, existing_what)
    old_kids = _kids(old_raw)
    old_private = private_members(old_raw)
    unexpected = [] if old_private else undisclosed_members(old_value)
    warnings = []

    final = {}
    if merge and old_raw:
        if old_private:
            raise _jose.JoseError(
                "%s holds private key material (members %s), so it cannot be merged; it was left unchanged: "
                "publish without merge to replace it, and treat the keys it held as compromised"
                % (existing_what, ", ".join(old_private)))
        labels = ["%s keys[%d]" % (existing_what, index) for index in range(len(old_raw))]
        final.update(_unique((label, _jwk.key_input_to_jwk(key, label)) for label, key in zip(labels, old_raw)))
    elif old_private:
        warnings.append("%s held private key material (members %s); it is replaced by public keys only now: "
                        "treat the keys it held as compromised" % (existing_what, ", ".join(old_private)))
    if unexpected:
        warnings.append("%s was not a JWKS of public keys only (it held %s); it is %s, and its previous content is "
                        "not shown in the diff: if it held private key material, treat those keys as compromised"
                        % (existing_what, ", ".join(unexpected[:10]),
                           "merged as public keys only" if merge else "replaced by public keys only"))

    for kid in sorted(given):
        jwk = given[kid]
        if kid in final and kid not in revoke_set and _jwk.thumbprint(final[kid]) != _jwk.thumbprint(jwk):
            raise _jose.JoseError(
                "kid %s already names another key in %s: a kid must never be reused for a different key, "
                "because validators cache keys by kid; give the new key another kid (the default thumbprint kid "
                "is unique), or revoke %s first and publish the new key in a later run, or publish without merge"
                % (kid, existing_what, kid))
        final[kid] = jwk

    overlap = sorted(set(given) & revoke_set)
    if overlap:
        warnings.append("kid(s) %s are both in %s and in revoke: revoke wins, they are not published"
                        % (", ".join(overlap), what))
    present = set(final) | set(old_kids)
    revoked = sorted(revoke_set & present)
    revoke_not_found = sorted(revoke_set - present)
    for kid in revoke_set:
        final.pop(kid, None)

    _check_one_kid_per_key(final)
    if not final and not allow_empty:
        raise _jose.JoseError(
            "the JWKS would hold no key, so every token would be rejected (401); nothing was published: give the "
            "public keys to publish in %s, or set allow_empty=true to publish an empty key set on purpose" % what)

    # Every key in final comes from key_input_to_jwk: normalized, with its members in order.
    published = sorted(final.values(), key=_KID)
    document = jwks_document({"keys": published}, normalized=True)
    size = check_budget(document, len(final), max_keys, max_bytes, keys=final.values())
    warnings.extend(budget_warnings(size, len(final), max_keys, max_bytes, budget_warn_percent, keys=final.values()))
    old_by_kid = dict((key["kid"], key) for key in old_raw or [] if isinstance(key.get("kid"), str))
    return {
        "document": document,
        # What json.loads(document) gives: the keys hold only strings and lists of strings.
        "jwks": {"keys": [dict(key, x5c=list(key["x5c"])) if "x5c" in key else dict(key) for key in published]},
        "kids": sorted(final),
        "added": sorted(set(final) - set(old_kids)),
        "removed": sorted(set(old_kids) - set(final)),
        "updated": sorted(kid for kid in final if kid in old_by_kid and old_by_kid[kid] != final[kid]),
        "revoked": revoked,
        "revoke_not_found": revoke_not_found,
        "changed": _as_bytes(existing) != document.encode("utf-8"),
        "size": size,
        "warnings": warnings,
        "before_kids": old_kids,
        "before_document": None if existing is None or old_private or unexpected else _as_text(existing),
        "before_hidden": bool(old_private or unexpected),
    }


def _revoke_list(revoke):
    if revoke is None:
        return []
    if isinstance(revoke, str) or not isinstance(revoke, (list, tuple, set)):
        raise _jose.JoseError("revoke must be a list of kids")
    for kid in revoke:
        if not isinstance(kid, str) or not kid:
            raise _jose.JoseError("revoke must hold non-empty kid strings, got %r" % (kid,))
    return list(revoke)


def _as_bytes(value):
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True).encode("utf-8")


def _as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------
# OpenID Connect discovery
# --------------------------------------------------------------------------------------

def _private_member_names(value, depth=0):
    """Names of private JWK members in ``value`` (dicts at any depth)."""
    names = set()
    if depth > 64:
        return names
    if isinstance(value, dict):
        names.update(name for name in _jwk.PRIVATE_JWK_MEMBERS if name in value)
        for item in value.values():
            names.update(_private_member_names(item, depth + 1))
    elif isinstance(value, list):
        for item in value:
            names.update(_private_member_names(item, depth + 1))
    return names


def check_discovery_existing(data, what="the existing file"):
    """Refuse to diff or replace a file that is not an OpenID Connect discovery document.

    An existing file must be empty, or a JSON object with ``issuer`` and ``jwks_uri`` texts
    and nothing private (no JWK private members, no ``keys`` list, no PEM private key);
    anything else may be another file at a wrong path (a private key, a JWK), so it is left
    unchanged and its content is never shown. Returns the text of the file.
    """
    if data is None:
        return None
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not text.strip():
        return text
    advice = ("it was left unchanged and is not shown: check discovery_dest (it names the discovery document, "
              "for example .well-known/openid-configuration below the JWKS server's directory), or move the file "
              "away if it may be replaced")
    try:
        value = _jose.parse_json(text)
    except ValueError as exc:
        raise _jose.JoseError("%s is not a discovery document: it is not a JSON document (%s); %s"
                              % (what, exc, advice))
    if not isinstance(value, dict):
        raise _jose.JoseError("%s is not a discovery document: it is not a JSON object; %s" % (what, advice))
    private = sorted(_private_member_names(value))
    if private or _holds_private_text(value):
        raise _jose.JoseError("%s is not a discovery document: it holds private key material (%s); %s. If it is "
                              "a key that was exposed, treat it as compromised"
                              % (what, ", ".join("member %s" % name for name in private) or "a PEM private key",
                                 advice))
    if "keys" in value:
        raise _jose.JoseError("%s is not a discovery document: it has a 'keys' member (a JWKS?); %s" % (what, advice))
    missing = [name for name in ("issuer", "jwks_uri") if not isinstance(value.get(name), str)]
    if missing:
        raise _jose.JoseError("%s is not a discovery document: it lacks the text member(s) %s; %s"
                              % (what, " and ".join(missing), advice))
    return text


def discovery(issuer, jwks_uri, jwks):
    """(dict, text) of an OpenID Connect discovery document for ``jwks`` (a JWKS dict).

    ``issuer`` must be the tokens' ``iss`` (and the APIRule's issuer) as an http(s) URL
    without query or fragment; ``jwks_uri`` is the URL that serves the JWKS.
    """
    if not isinstance(issuer, str) or not _URL.match(issuer):
        raise _jose.JoseError("issuer %r must be an http(s) URL without query or fragment for a discovery "
                              "document (clients fetch <issuer>/.well-known/openid-configuration)" % (issuer,))
    if not isinstance(jwks_uri, str) or not re.match(r"^https?://[^\s/?#]+\S*$", jwks_uri):
        raise _jose.JoseError("jwks_uri %r must be an http(s) URL: the URL that serves the JWKS, the same as "
                              "the APIRule's jwksUri" % (jwks_uri,))
    algorithms = [_algorithms.jwk_algorithm(key) for key in jwks.get("keys", [])]
    text = discovery_document(issuer, jwks_uri, algorithms)
    return json.loads(text), text


# --------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------

def _lines(items):
    return "".join("%s\n" % item for item in items)


def text_diff(path, before, after):
    """One Ansible diff entry for a text file (``before``/``after``: bytes, text or None)."""
    if isinstance(before, bytes):
        before = before.decode("utf-8", "replace")
    return {"before_header": path, "after_header": path, "before": before or "", "after": after or ""}


def diff_entries(dest, result):
    """Ansible diff entries for a published JWKS: its kids, then its JSON text.

    ``result`` is the return value of :func:`plan`. The JWKS is public data; an earlier file
    that held private members is not shown.
    """
    before = result["before_document"]
    if result["before_hidden"]:
        before = "(previous content not shown: it was not a JWKS of public keys only)\n"
    return [{
        "before_header": "%s (kids)" % dest,
        "after_header": "%s (kids)" % dest,
        "before": _lines(result["before_kids"]),
        "after": _lines(result["kids"]),
    }, text_diff(dest, before, result["document"])]
