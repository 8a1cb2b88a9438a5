# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_fleet: the issuer shard of a host, shard URLs, keys per shard; and the filters around it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.selfjwt.kyma.plugins.filter import shard_of, shard_plan, shard_url
from ansible_collections.selfjwt.kyma.plugins.module_utils import _fleet


def test_not_sharded_gives_the_empty_shard_and_unchanged_urls():
    assert _fleet.shard_of("edge-01") == ""
    assert not _fleet.is_sharded()
    assert _fleet.shard_url("http://edge-jwks.default.svc.cluster.local", "") == "http://edge-jwks.default.svc.cluster.local"
    assert _fleet.shard_url("", "s001") == ""


def test_hashed_shard_is_a_pure_function_of_name_and_count():
    names = ["edge-%03d" % index for index in range(300)]
    first = [_fleet.shard_of(name, 7) for name in names]
    assert first == [_fleet.shard_of(name, 7) for name in reversed(names)][::-1]
    assert set(first) == set("s%03d" % index for index in range(7))
    assert [_fleet.hashed_shard("edge-%03d" % i, 1) for i in range(5)] == ["s000"] * 5
    # Pinned: a change of the hash would move hosts of every sharded fleet on upgrade.
    assert [_fleet.hashed_shard("edge-%03d" % i, 16) for i in range(4)] == ["s009", "s005", "s004", "s003"]


def test_jump_hash_moves_keys_only_into_the_new_bucket():
    # The defining property of the jump consistent hash: with one bucket more, a key either
    # stays or moves into the new bucket, never between old buckets.
    for key in range(0, 2 ** 64, 2 ** 64 // 997):
        previous = _fleet._jump(key, 1)  # pylint: disable=protected-access
        assert previous == 0
        for buckets in range(2, 40):
            now = _fleet._jump(key, buckets)  # pylint: disable=protected-access
            assert now in (previous, buckets - 1)
            previous = now


def test_override_beats_group_beats_hash():
    groups = {"plant_a": "plant-a"}
    assert _fleet.shard_of("h1", 4, groups, ["plant_a"], {"h1": "pinned"}) == "pinned"
    assert _fleet.shard_of("h1", 4, groups, ["plant_a", "other"]) == "plant-a"
    assert _fleet.shard_of("h1", 4, groups, ["other"]) == _fleet.hashed_shard("h1", 4)


def test_two_groups_with_different_shards_are_refused():
    with pytest.raises(_fleet.ShardError, match="maps to different shards"):
        _fleet.shard_of("h1", 0, {"a": "x", "b": "y"}, ["a", "b"])
    assert _fleet.shard_of("h1", 0, {"a": "x", "b": "x"}, ["a", "b"]) == "x"


def test_unmapped_host_without_hash_is_refused_with_the_ways_out():
    with pytest.raises(_fleet.ShardError, match="selfjwt_shard_count"):
        _fleet.shard_of("h9", 0, {"a": "x"}, ["b"])


@pytest.mark.parametrize("count", [-1, 1001, "many", True])
def test_bad_counts_are_refused(count):
    with pytest.raises(_fleet.ShardError, match="selfjwt_shard_count"):
        _fleet.shard_of("h1", count)


@pytest.mark.parametrize("name", ["", "UPPER", "a_b", "-a", "a" * 33, 7])
def test_bad_shard_names_are_refused(name):
    with pytest.raises(_fleet.ShardError, match="not valid"):
        _fleet.shard_of("h1", 0, None, None, {"h1": name})


def test_shard_url_inserts_after_the_origin():
    assert _fleet.shard_url("http://svc.ns.svc.cluster.local", "s003") == "http://svc.ns.svc.cluster.local/shards/s003"
    assert _fleet.shard_url("http://svc:8080/.well-known/jwks.json", "s003") \
        == "http://svc:8080/shards/s003/.well-known/jwks.json"
    assert _fleet.shard_url("https://edge.example.com/", "x") == "https://edge.example.com/shards/x"
    with pytest.raises(_fleet.ShardError):
        _fleet.shard_url("edge fleet", "x")


def test_shard_keys_groups_keys_and_adds_extra_keys_everywhere():
    keys = {"a": [{"kid": "1"}], "b": [{"kid": "2"}], "c": None, "d": {"kid": "4"}}
    shards = {"a": "x", "b": "y", "c": "y", "d": "x"}
    assert _fleet.shard_keys(keys, shards, [{"kid": "e"}]) == {
        "x": [{"kid": "1"}, {"kid": "4"}, {"kid": "e"}], "y": [{"kid": "2"}, {"kid": "e"}]}
    with pytest.raises(_fleet.ShardError, match="no shard"):
        _fleet.shard_keys({"z": [{"kid": "9"}]}, {})


def test_filters_wrap_the_errors_for_ansible():
    assert shard_of.FilterModule().filters()["shard_of"]("h1", count=3) == _fleet.hashed_shard("h1", 3)
    assert shard_url.FilterModule().filters()["shard_url"]("http://a", "s1") == "http://a/shards/s1"
    plan = shard_plan.FilterModule().filters()["shard_plan"]({"h1": [{"kid": "1"}]}, count=2)
    assert plan == {"hosts": {"h1": _fleet.hashed_shard("h1", 2)}, "keys": {_fleet.hashed_shard("h1", 2): [{"kid": "1"}]}}
    with pytest.raises(AnsibleFilterError):
        shard_of.shard_of("h1", count=-1)
    with pytest.raises(AnsibleFilterError):
        shard_url.shard_url("nope", "s1")
    with pytest.raises(AnsibleFilterError):
        shard_plan.shard_plan(["h1"])


def test_site_key_source_prefers_the_first_host_with_a_key_then_the_first_host():
    members = [("edge-c", "berlin", "aa"), ("edge-b", "berlin", ""), ("edge-a", "berlin", None),
               ("edge-0", "paris", "ff")]
    assert _fleet.site_key_source(members, "berlin") == {"source": "edge-c", "divergent": False}
    members.append(("edge-b2", "berlin", "aa"))
    assert _fleet.site_key_source(members, "berlin") == {"source": "edge-b2", "divergent": False}
    assert _fleet.site_key_source([(host, site, "") for host, site, _sum in members], "berlin")["source"] == "edge-a"
    assert _fleet.site_key_source(members, "rome") == {"source": None, "divergent": False}


def test_site_key_source_sees_two_keys_in_one_site():
    members = [("edge-a", "berlin", "aa"), ("edge-b", "berlin", "bb"), ("edge-c", "paris", "cc")]
    assert _fleet.site_key_source(members, "berlin") == {"source": "edge-a", "divergent": True}
    assert _fleet.site_key_source(members, "paris")["divergent"] is False


def test_site_key_source_filter_reads_the_named_fact_of_each_host():
    from ansible_collections.selfjwt.kyma.plugins.filter import site_key_source  # pylint: disable=import-outside-toplevel

    hostvars = {"edge-a": {"state": {"site": "berlin", "checksum": ""}},
                "edge-b": {"state": {"site": "berlin", "checksum": "bb"}},
                "edge-c": {"state": "not a mapping"},
                "edge-d": {}}
    choose = site_key_source.FilterModule().filters()["site_key_source"]
    assert choose(sorted(hostvars), hostvars, site="berlin", fact="state") == {"source": "edge-b", "divergent": False}
    assert choose(["edge-a", "edge-c", "edge-d"], hostvars, site="berlin", fact="state")["source"] == "edge-a"
