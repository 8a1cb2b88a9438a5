# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issuer sharding of an edge fleet: which shard a host belongs to, and the shard's URLs.

PRIVATE to the collection: do not import it from other collections.

Standard library only (no Ansible, no cryptography), so the filter plugin
``selfjwt.kyma.shard_of``, both roles (through that filter), tests and benchmarks give the
same answer for the same host.

A host's shard is, in this order:

1. an explicit override (``overrides[host]``, from ``selfjwt_shard_overrides``);
2. the shard of the first inventory group of the host that ``groups`` maps
   (``selfjwt_shard_groups``: group -> shard); two mapped groups with different shards are
   refused, because the answer would depend on group order;
3. a stable hash of the host name when ``count`` > 0 (``selfjwt_shard_count``): SHA-256 of
   the name, then Lamping and Veach's jump consistent hash into ``count`` buckets, named
   ``s000``, ``s001``, ...;
4. otherwise ``""``: the fleet is not sharded.

Stability: the answer depends only on the host's name, its groups, ``count`` and the two
mappings, never on the other hosts, so adding hosts never moves an existing one. Changing
``count`` does move hosts; with the jump hash, going from N to M > N shards moves only the
hosts that land in the new shards (about 1 - N/M of them), and no host moves between two
old shards.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

#: Largest shard count: the names have three digits, and every shard is one
#: jwt.authentications entry of the APIRule and one ConfigMap.
MAX_SHARD_COUNT = 1000

#: Shard names become part of URLs, ConfigMap names and keys: a short DNS label.
SHARD_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

_ORIGIN = re.compile(r"^(https?://[^/?#\s]+)([^?#\s]*)$")
_MASK64 = 0xFFFFFFFFFFFFFFFF


class ShardError(ValueError):
    """A sharding setting is wrong; the message says which and what to do."""


def _jump(key, buckets):
    """Jump consistent hash (Lamping, Veach 2014): bucket of a 64-bit ``key`` in ``buckets``."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & _MASK64
        candidate = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def hashed_shard(host, count):
    """The shard name of ``host`` among ``count`` hashed shards (``s000`` ...)."""
    digest = hashlib.sha256(host.encode("utf-8")).digest()
    return "s%03d" % _jump(int.from_bytes(digest[:8], "big"), count)


def check_count(count):
    """``count`` as an int from 0 (no hashed shards) to MAX_SHARD_COUNT; ShardError otherwise."""
    if isinstance(count, bool):
        raise ShardError("selfjwt_shard_count must be a whole number, got %r" % (count,))
    try:
        value = int(count or 0)
    except (TypeError, ValueError):
        raise ShardError("selfjwt_shard_count must be a whole number, got %r" % (count,))
    if value < 0 or value > MAX_SHARD_COUNT:
        raise ShardError("selfjwt_shard_count must be 0 (no hashed shards) to %d, got %d"
                         % (MAX_SHARD_COUNT, value))
    return value


def check_name(name, where):
    if not isinstance(name, str) or not SHARD_NAME.match(name):
        raise ShardError("%s: shard name %r is not valid: use 1 to 32 lowercase letters, digits and '-' "
                         "(it becomes part of URLs and ConfigMap names)" % (where, name))
    return name


def _mapping(value, what):
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ShardError("%s must be a mapping, got %s" % (what, type(value).__name__))
    for key, shard in value.items():
        check_name(shard, "%s[%s]" % (what, key))
    return value


def is_sharded(count=0, groups=None, overrides=None):
    """True when any of the three settings asks for shards."""
    return check_count(count) > 0 or bool(_mapping(groups, "selfjwt_shard_groups")) \
        or bool(_mapping(overrides, "selfjwt_shard_overrides"))


def shard_of(host, count=0, groups=None, host_groups=None, overrides=None):
    """The shard of ``host`` ("" when the fleet is not sharded); see the module docstring."""
    if not isinstance(host, str) or not host:
        raise ShardError("the host name must be a non-empty string, got %r" % (host,))
    count = check_count(count)
    groups = _mapping(groups, "selfjwt_shard_groups")
    overrides = _mapping(overrides, "selfjwt_shard_overrides")
    if host in overrides:
        return overrides[host]
    mapped = sorted(set(groups[group] for group in (host_groups or []) if group in groups))
    if len(mapped) > 1:
        raise ShardError(
            "host %s is in groups that selfjwt_shard_groups maps to different shards (%s): map each host to one "
            "shard, or set selfjwt_shard_overrides[%s]" % (host, ", ".join(mapped), host))
    if mapped:
        return mapped[0]
    if count:
        return hashed_shard(host, count)
    if groups or overrides:
        raise ShardError(
            "host %s is in none of the groups of selfjwt_shard_groups (%s) and has no selfjwt_shard_overrides "
            "entry: add it to one of these groups, give it an override, or set selfjwt_shard_count to place "
            "the remaining hosts by a hash of their names" % (host, ", ".join(sorted(groups))))
    return ""


def shard_map(hosts, count=0, groups=None, inventory_groups=None, overrides=None):
    """{host: shard} for ``hosts``; ``inventory_groups`` is Ansible's ``groups`` (group -> hosts)."""
    groups = _mapping(groups, "selfjwt_shard_groups")
    member_of = {}
    for group in groups:
        for host in (inventory_groups or {}).get(group) or []:
            member_of.setdefault(host, []).append(group)
    return dict((host, shard_of(host, count, groups, member_of.get(host), overrides)) for host in hosts)


def shard_url(url, shard):
    """``url`` with ``/shards/<shard>`` after its origin; ``url`` itself when it or ``shard`` is empty.

    ``http://edge-jwks.default.svc.cluster.local`` -> ``.../shards/s003`` (the issuer), and
    ``.../.well-known/jwks.json`` -> ``.../shards/s003/.well-known/jwks.json`` (its JWKS): the
    same rule for the issuer and the JWKS URL, in both roles.
    """
    if not shard or not url:
        return url
    check_name(shard, "shard_url")
    match = _ORIGIN.match(url or "")
    if not match:
        raise ShardError("%r is not an http(s) URL without query or fragment, so it has no shard URL" % (url,))
    path = "" if match.group(2) == "/" else match.group(2)
    return "%s/shards/%s%s" % (match.group(1), shard, path)


def shard_keys(host_keys, host_shards, extra_keys=None):
    """{shard: [public JWKs]} from {host: [JWKs]} and {host: shard}; shards sorted, hosts in order.

    Hosts without keys are left out (the role reports them earlier). ``extra_keys`` are
    published in every shard. A key offered by several hosts (a site key) stays in the list
    of each of their shards; jwks_publish publishes it once per JWKS.
    """
    grouped = {}
    for host in sorted(host_keys):
        keys = host_keys[host] or []
        if isinstance(keys, dict):
            keys = [keys]
        if not keys:
            continue
        shard = host_shards.get(host)
        if shard is None:
            raise ShardError("host %s has keys but no shard" % host)
        grouped.setdefault(shard, []).extend(keys)
    extra = list(extra_keys or [])
    return dict((shard, grouped[shard] + extra) for shard in sorted(grouped))


def site_key_source(members, site):
    """Which host of ``site`` provides its site key, and whether the site's hosts hold different keys.

    ``members`` holds ``(host, site, checksum)`` for the hosts of the play; ``checksum`` is the
    SHA-256 of the host's key file, empty when it has none. Among the hosts of ``site`` in name
    order, the first that has a key provides it, else the first host (which makes it), so a new
    or rebuilt host gets the key its site already uses. Returns ``{"source": host or None,
    "divergent": bool}``; divergent means two hosts hold different keys (no one site key to keep).
    """
    hosts = sorted((host, checksum or "") for host, member_site, checksum in members if member_site == site)
    holders = [host for host, checksum in hosts if checksum]
    source = (holders or [host for host, _checksum in hosts] or [None])[0]
    return {"source": source, "divergent": len(set(checksum for _host, checksum in hosts if checksum)) > 1}
