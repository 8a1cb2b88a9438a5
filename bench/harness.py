# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small helpers shared by the benchmark sections: statistics, interleaving, paths, processes.

Absolute times on a shared machine are noise; every section therefore runs its candidates
interleaved (each round visits every candidate once, in a shuffled order) and reports medians,
the 10th-90th percentile range and ratios between candidates measured side by side.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
CACHE_DIR = os.path.join(ROOT, ".cache", "bench")
WORK_DIR = os.path.join(CACHE_DIR, "work")
CALLBACK_DIR = os.path.join(BENCH_DIR, "callback_plugins")


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------

def percentile(values, fraction):
    """Linear-interpolated percentile (``fraction`` between 0 and 1) of a non-empty list."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = fraction * (len(ordered) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def median(values):
    return percentile(values, 0.5)


def summary(values, scale=1.0, digits=4):
    """Median, p10, p90, min, max and count of ``values`` (multiplied by ``scale``)."""
    scaled = [value * scale for value in values]
    return {
        "median": round(median(scaled), digits),
        "p10": round(percentile(scaled, 0.1), digits),
        "p90": round(percentile(scaled, 0.9), digits),
        "min": round(min(scaled), digits),
        "max": round(max(scaled), digits),
        "n": len(scaled),
    }


def ratio(numerator, denominator, digits=3):
    """numerator / denominator, rounded; None when the denominator is zero."""
    if not denominator:
        return None
    return round(float(numerator) / float(denominator), digits)


def paired_ratios(numerators, denominators):
    """Ratios of samples taken in the same round (lists of equal length)."""
    if len(numerators) != len(denominators):
        raise ValueError("paired ratios need samples of the same rounds")
    return [a / b for a, b in zip(numerators, denominators) if b]


def verdict(value, target, lower_is_better=True):
    """'met' / 'not met' of a ratio against its target; 'n/a' without a value."""
    if value is None or target is None:
        return "n/a"
    return "met" if (value <= target if lower_is_better else value >= target) else "not met"


# --------------------------------------------------------------------------------------
# Interleaving
# --------------------------------------------------------------------------------------

def interleave(candidates, rounds, rng, before_round=None):
    """Run every candidate once per round, in a new shuffled order each round.

    ``candidates`` maps a name to a callable that returns one sample (a number or a dict).
    Returns name -> list of samples, index i being round i for every candidate.
    """
    names = sorted(candidates)
    samples = dict((name, []) for name in names)
    for index in range(rounds):
        if before_round is not None:
            before_round(index)
        order = list(names)
        rng.shuffle(order)
        for name in order:
            samples[name].append(candidates[name]())
    return samples


def per_op_window(function, count, clock=time.process_time):
    """Seconds per call of ``function`` over ``count`` back-to-back calls.

    The default clock is the CPU time of this process: on a shared machine, time spent
    waiting for a CPU would otherwise count as the candidate's cost.
    """
    start = clock()
    for _index in range(count):
        function()
    return (clock() - start) / count


def calibrate(function, window_seconds):
    """Number of calls that takes about ``window_seconds`` (at least 1)."""
    function()
    count = 1
    while True:
        start = time.perf_counter()
        for _index in range(count):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= window_seconds / 4 or count >= 1 << 20:
            return max(1, int(count * window_seconds / max(elapsed, 1e-9)))
        count *= 4


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------

class CommandFailed(RuntimeError):
    pass


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(argv, env=None, cwd=None, stdin=None):
    """Run a command; return (wall seconds, CPU seconds, stdout).

    The CPU time is user + system time of the command and every process it waited for (for
    ansible-playbook: its workers and the module processes), from getrusage(RUSAGE_CHILDREN);
    commands run one at a time, so the difference belongs to this command alone. Raises
    CommandFailed with the command's output on failure.
    """
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if proc.returncode != 0:
        raise CommandFailed("%s failed with exit code %d:\n%s\n%s" % (
            " ".join(argv), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return elapsed, cpu, proc.stdout


def run_timed(argv, env=None, cwd=None, stdin=None):
    """Run a command; return (wall seconds, stdout)."""
    elapsed, _cpu, stdout = run_measured(argv, env=env, cwd=cwd, stdin=stdin)
    return elapsed, stdout


def wall_and_cpu(argv, env=None, cwd=None):
    """A sample of one command run: {"wall": seconds, "cpu": seconds}."""
    elapsed, cpu, _stdout = run_measured(argv, env=env, cwd=cwd)
    return {"wall": elapsed, "cpu": cpu}


SNAPSHOT_DIR = os.path.join(CACHE_DIR, "snapshot")
#: What the benchmarks use of the collection (copied unchanged into the snapshot).
SNAPSHOT_PARTS = ("galaxy.yml", "meta", "plugins", "roles")


def snapshot_collection():
    """Copy the collection's plugins, roles and metadata to .cache/bench/snapshot; returns the collection root.

    Every section then measures the same code, even when the work tree changes during the run.
    """
    root = os.path.join(SNAPSHOT_DIR, "ansible_collections", "selfjwt", "kyma")
    shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)
    os.makedirs(root)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in SNAPSHOT_PARTS:
        source = os.path.join(ROOT, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(root, part), ignore=ignore)
        elif os.path.exists(source):
            shutil.copy2(source, os.path.join(root, part))
    return SNAPSHOT_DIR


def git_state():
    """HEAD commit of the work tree, with '+changes' when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--"]
                               + list(SNAPSHOT_PARTS), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def collections_paths():
    """The collection roots from ANSIBLE_COLLECTIONS_PATH (set by the Makefile)."""
    value = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(ROOT, ".cache", "collections")
    return [path for path in value.split(os.pathsep) if path]


def import_collection():
    """Make ``ansible_collections.selfjwt.kyma`` importable in this process."""
    for path in collections_paths():
        if os.path.isdir(os.path.join(path, "ansible_collections", "selfjwt", "kyma")):
            if path not in sys.path:
                sys.path.insert(0, path)
            return path
    raise SystemExit("selfjwt.kyma is not in ANSIBLE_COLLECTIONS_PATH (%s): run 'make bench', which sets it up"
                     % os.pathsep.join(collections_paths()))


def ansible_env(extra_collections=(), timing_file=None, **extra):
    """Environment for ansible-playbook runs of the benchmarks."""
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(list(extra_collections) + collections_paths())
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "false"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "false"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "false"
    env["ANSIBLE_CALLBACK_PLUGINS"] = CALLBACK_DIR
    env["ANSIBLE_CALLBACKS_ENABLED"] = "bench_timing"
    env["ANSIBLE_LOCAL_TEMP"] = os.path.join(WORK_DIR, "ansible-local")
    env["ANSIBLE_REMOTE_TEMP"] = os.path.join(WORK_DIR, "ansible-remote")
    if timing_file:
        env["BENCH_TIMING_FILE"] = timing_file
    else:
        env.pop("BENCH_TIMING_FILE", None)
    env.update(extra)
    return env


def write_inventory(path, hosts, python, host_vars=None):
    """An INI inventory of local hosts (group ``bench``) that all run ``python``."""
    lines = ["[bench]"]
    for host in hosts:
        extra = ""
        if host_vars:
            extra = " " + " ".join("%s=%s" % (name, value) for name, value in sorted(host_vars(host).items()))
        lines.append(host + extra)
    lines += ["", "[bench:vars]", "ansible_connection=local", "ansible_python_interpreter=%s" % python, ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def host_names(count):
    return ["edge%03d" % index for index in range(1, count + 1)]


def log(message):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


def split_samples(samples, field):
    """name -> list of ``field`` of dict samples."""
    return dict((name, [value[field] for value in values]) for name, values in samples.items())
