# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The statistics and interleaving helpers of bench/harness.py (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import os
import random

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "harness.py")


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles_interpolate(harness):
    values = [5, 1, 4, 2, 3]
    assert harness.median(values) == 3
    assert harness.percentile(values, 0.0) == 1
    assert harness.percentile(values, 1.0) == 5
    assert harness.percentile([0, 10], 0.1) == pytest.approx(1.0)
    assert harness.median([1, 2, 3, 4]) == pytest.approx(2.5)


def test_percentile_of_nothing_is_an_error(harness):
    with pytest.raises(ValueError):
        harness.percentile([], 0.5)


def test_summary_scales_and_counts(harness):
    result = harness.summary([0.001, 0.002, 0.003], scale=1000.0)
    assert result == {"median": 2.0, "p10": 1.2, "p90": 2.8, "min": 1.0, "max": 3.0, "n": 3}


def test_ratios_and_verdicts(harness):
    assert harness.ratio(3, 2) == 1.5
    assert harness.ratio(1, 0) is None
    assert harness.paired_ratios([2, 6], [1, 3]) == [2.0, 2.0]
    with pytest.raises(ValueError):
        harness.paired_ratios([1], [1, 2])
    assert harness.verdict(1.19, 1.2) == "met"
    assert harness.verdict(1.21, 1.2) == "not met"
    assert harness.verdict(None, 1.2) == "n/a"


def test_interleave_visits_every_candidate_once_per_round_in_changing_orders(harness):
    calls = []
    candidates = dict((name, (lambda name=name: calls.append(name) or len(calls))) for name in "abcd")
    samples = harness.interleave(candidates, 6, random.Random(7))
    assert sorted(samples) == ["a", "b", "c", "d"]
    assert all(len(values) == 6 for values in samples.values())
    rounds = [calls[index:index + 4] for index in range(0, len(calls), 4)]
    assert all(sorted(order) == ["a", "b", "c", "d"] for order in rounds)
    assert len(set(tuple(order) for order in rounds)) > 1
