# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/pkcs11_bench.py: its candidates sign real tokens with a real SoftHSM2 token; its ratios (no timing)."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.selfjwt.kyma.plugins.module_utils import _jws
from tokens import use_token  # pylint: disable=import-error

BENCH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "bench"))


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, BENCH)
    try:
        import keys  # pylint: disable=import-outside-toplevel
        import pkcs11_bench  # pylint: disable=import-outside-toplevel
        import report  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(BENCH)
    return keys, pkcs11_bench, report


def test_every_candidate_signs_a_token_that_verifies_with_its_own_key(bench, tmp_path, monkeypatch):
    pytest.importorskip("pkcs11")
    keys, pkcs11_bench, _report = bench
    monkeypatch.setattr(keys, "KEY_DIR", str(tmp_path / "keys"))
    setup = pkcs11_bench.Setup(str(tmp_path / "work"), activate=lambda token: use_token(monkeypatch, token))
    try:
        for label, file_key, _spec, algorithm in pkcs11_bench.ALGORITHMS:
            candidates = setup.candidates(label, file_key)
            assert sorted(candidates) == sorted(pkcs11_bench.CANDIDATES)
            kids = set()
            for _round in range(2):
                # Every candidate again after all the others: no session of one may keep the token
                # logged in while the next one logs in.
                for name, (opened, public_key) in sorted(candidates.items()):
                    with opened() as function:
                        for _index in range(2):
                            header, _claims = _jws.verify(function().token, public_key, algorithm)
                            kids.add((name.split()[0], header["kid"]))
            # The file candidates share the key file's key, the token ones the token's key pair.
            assert len(kids) == 2 and len(set(kid for _name, kid in kids)) == 2, kids
    finally:
        setup.close()


def _samples(cpu_by_name, rounds=3):
    return dict((name, [{"cpu": cpu, "wall": cpu * 1.5}] * rounds) for name, cpu in cpu_by_name.items())


def test_ratios_are_softhsm2_over_file_for_both_rows(bench):
    _keys, pkcs11_bench, report = bench
    per_name = {"file": 0.0001, "softhsm2": 0.0003, "file first token": 0.0004, "softhsm2 first token": 0.002}
    samples = dict((("ES256", name), values) for name, values in _samples(per_name).items())
    row = pkcs11_bench.summarize(samples, ["ES256"])[0]
    assert row["ratio_softhsm2_to_file"]["cpu"] == 3.0 and row["ratio_softhsm2_to_file"]["wall"] == 3.0
    assert row["ratio_softhsm2_to_file"]["paired_cpu"]["median"] == 3.0
    assert row["ratio_first_token_softhsm2_to_file"]["cpu"] == 5.0
    assert row["tokens_per_cpu_second"] == {"file": 10000, "softhsm2": 3333, "file first token": 2500,
                                            "softhsm2 first token": 500}
    measured = {"ms": {"cpu": {"ES256": {"file": {"median": 200.0}, "softhsm2": {"median": 250.0}}}},
                "ratios": {"ES256": {"cpu": {"ratio": 1.25, "paired": {"p10": 1.1, "p90": 1.4}}, "wall": {"ratio": 1.5}}}}
    lines = list(report._pkcs11_rows({"algorithms": [row], "refresher": measured}))  # pylint: disable=protected-access
    assert "3,333 / 10,000 tokens per CPU second" in lines[0] and "| 3.00x |" in lines[0]
    assert "(2.00 / 0.40 ms CPU" in lines[1] and "| 5.00x |" in lines[1]
    assert "ES256 SoftHSM2 key / file key (250.0 / 200.0 ms; wall 1.50x) | 1.25x | 1.10-1.40 |" in lines[2]
