# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""selfjwt.kyma benchmarks: ``make bench`` runs ``python bench/run.py``.

Sections (each interleaves its candidates and reports medians, p10-p90 and ratios):

  mint       jwt_token's signing path in-process vs the bare cryptography signature
  tasks      one jwt_token task vs one ping task; module imports; RSA key loading
  fleet      edge_keys vs community.crypto on N local hosts, first run and re-run
  jwks       JWKS assembly with 100 / 1,000 / 10,000 keys; JWKS bytes per key
  refresher  selfjwt-token vs node jsonwebtoken, fresh processes
  fleet_scale  kyma_publish's cluster side for 1k / 10k hosts: per-host, sharded, site keys
  publish_role the whole kyma_publish role in ansible-playbook over 1k / 10k hosts (render mode)
  pkcs11     tokens signed by a SoftHSM2 key vs a key file: in-process, first token, refresher

Results: bench/results/latest.{json,md,png} (``--quick``: quick.{json,md,png}). Benchmarks
are not tests: nothing here fails on a slow result, only on a wrong one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402  pylint: disable=wrong-import-position
import report  # noqa: E402  pylint: disable=wrong-import-position

SECTIONS = ("mint", "tasks", "jwks", "refresher", "fleet", "fleet_scale", "publish_role", "pkcs11")


def ensure_plotting():
    """Install bench/requirements.txt (matplotlib, pinned) into this Python's environment on first use."""
    try:
        import matplotlib  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
        return True
    except ImportError:
        pass
    if sys.prefix == sys.base_prefix:
        harness.log("matplotlib is missing and this Python is not a virtualenv: no plot (pip install -r "
                    "bench/requirements.txt)")
        return False
    harness.log("installing bench/requirements.txt (matplotlib) into %s" % sys.prefix)
    status = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", os.path.join(HERE, "requirements.txt")])
    if status != 0:
        harness.log("could not install matplotlib: the results are written without the plot")
        return False
    return True


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, tiny fleets")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections to run (default: all: %(default)s)")
    parser.add_argument("--fleet-sizes", default=None,
                        help="comma-separated fleet sizes (default: 10,25,50; --quick: 2,4)")
    parser.add_argument("--fleet-sides", default=None,
                        help="comma-separated fleet sides (default: all: edge_keys, edge_keys_keys_only, "
                             "community.crypto)")
    parser.add_argument("--fleet-keys", default="EC P-256",
                        help="comma-separated key types for the fleet section: 'EC P-256', 'RSA-4096'")
    parser.add_argument("--no-pipelining", action="store_true",
                        help="run the fleet playbooks without ANSIBLE_PIPELINING (both sides)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the shuffled orders (default: random)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    parser.add_argument("--update", action="store_true",
                        help="keep the sections of the existing results file that this run does not measure "
                             "(each section records the run it comes from)")
    parser.add_argument("--render", metavar="JSON", default=None,
                        help="measure nothing: write the Markdown table and the plot again from a results JSON")
    args = parser.parse_args(argv)
    args.sections = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error("unknown section(s) %s: choose from %s" % (", ".join(unknown), ", ".join(SECTIONS)))
    return args


def main(argv=None):
    if argv is None:
        # make bench runs "python bench/run.py": options come through BENCH_ARGS="--quick ...".
        argv = shlex.split(os.environ.get("BENCH_ARGS", "")) + sys.argv[1:]
    args = parse_args(argv)
    if args.render:
        with open(args.render, encoding="utf-8") as handle:
            results = json.load(handle)
        ensure_plotting()
        paths = report.write(results, os.path.dirname(os.path.abspath(args.render)), results["meta"]["stem"])
        harness.log("wrote %s" % ", ".join(sorted(paths.values())))
        return 0
    # ansible-playbook and the Python modules must come from the same environment as this Python.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    os.makedirs(harness.WORK_DIR, exist_ok=True)
    # Measure one consistent copy of the collection, even while its files are being edited.
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([harness.snapshot_collection()]
                                                             + harness.collections_paths())
    harness.import_collection()
    plotting = ensure_plotting()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    stem = "quick" if args.quick else "latest"
    import cryptography  # pylint: disable=import-outside-toplevel
    import jwt  # pylint: disable=import-outside-toplevel
    from ansible import __version__ as ansible_version  # pylint: disable=import-outside-toplevel

    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "stem": stem,
            "command": " ".join(["python bench/run.py"] + [shlex.quote(arg) for arg in argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": "Python %s" % platform.python_version(),
            "ansible_core": ansible_version,
            "cryptography": cryptography.__version__,
            "pyjwt": jwt.__version__,
            "cpus": os.cpu_count() or 0,
            "load_average": "%.1f" % os.getloadavg()[0],
            "seed": seed,
            "sections": args.sections,
            "plotting": plotting,
            "commit": harness.git_state(),
        },
        "sections": {},
    }
    run_info = dict((name, results["meta"][name]) for name in ("date", "commit", "load_average", "command"))
    if args.update:
        previous_path = os.path.join(args.out, "%s.json" % stem)
        if os.path.exists(previous_path):
            with open(previous_path, encoding="utf-8") as handle:
                previous = json.load(handle)
            origins = previous["meta"].get("section_runs") or dict(
                (name, dict((key, previous["meta"].get(key)) for key in run_info)) for name in previous["sections"])
            args.previous_sections = previous["sections"]
            if "fleet" in args.sections and "fleet" in previous["sections"] and origins.get("fleet"):
                # The fleet runs this run does not repeat are kept (see run_section): say where from.
                results["meta"].setdefault("section_runs", {})["fleet (runs kept)"] = origins["fleet"]
            for name, section in previous["sections"].items():
                if name not in args.sections:
                    results["sections"][name] = section
                    results["meta"].setdefault("section_runs", {})[name] = origins.get(name)
    for name in args.sections:
        results["meta"].setdefault("section_runs", {})[name] = run_info
    started = time.perf_counter()
    failed = []
    for name in SECTIONS:
        if name not in args.sections:
            continue
        section_start = time.perf_counter()
        harness.log("section %s" % name)
        try:
            results["sections"][name] = run_section(name, args, rng, results, stem)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A broken section must not cost the results of the others; the run still fails.
            harness.log("section %s failed: %s" % (name, exc))
            results["sections"].pop(name, None)
            results.setdefault("errors", {})[name] = str(exc)[-4000:]
            failed.append(name)
            continue
        results["sections"][name]["section_seconds"] = round(time.perf_counter() - section_start, 1)
        # Written after every section, so an interrupted run keeps what it measured.
        report.write(results, args.out, stem)
    results["meta"]["load_average_end"] = "%.1f" % os.getloadavg()[0]
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    paths = report.write(results, args.out, stem)
    harness.log("wrote %s" % ", ".join(sorted(paths.values())))
    with open(paths["md"], encoding="utf-8") as handle:
        sys.stdout.write(handle.read())
    if failed:
        harness.log("failed sections: %s" % ", ".join(failed))
        return 1
    return 0


def run_section(name, args, rng, results, stem):
    # pylint: disable=import-outside-toplevel
    if name == "mint":
        import mint
        return mint.run(args.quick, rng)
    if name == "tasks":
        import tasks
        return tasks.run(args.quick, rng)
    if name == "jwks":
        import jwks_bench
        return jwks_bench.run(args.quick, rng)
    if name == "refresher":
        import refresher
        return refresher.run(args.quick, rng)
    if name == "fleet_scale":
        import fleet_scale
        return fleet_scale.run(args.quick, rng)
    if name == "publish_role":
        import publish_role
        return publish_role.run(args.quick, rng)
    if name == "pkcs11":
        import pkcs11_bench
        return pkcs11_bench.run(args.quick, rng)
    import fleet

    sizes = tuple(int(size) for size in args.fleet_sizes.split(",")) if args.fleet_sizes else None
    sides = tuple(side.strip() for side in args.fleet_sides.split(",") if side.strip()) if args.fleet_sides else None
    key_labels = tuple(label.strip() for label in args.fleet_keys.split(",") if label.strip())
    # With --update, the runs of the previous fleet section that this run does not repeat are kept.
    kept = getattr(args, "previous_sections", {}).get("fleet") if args.update else None
    kept_runs = kept.get("runs", []) if kept else []

    def merged(section):
        again = set((run["key"], run["hosts"], run["side"], run["phase"]) for run in section["runs"])
        runs = [run for run in kept_runs if (run["key"], run["hosts"], run["side"], run["phase"]) not in again]
        runs = sorted(runs + section["runs"], key=lambda run: (run["key"], run["hosts"], run["side"], run["phase"]))
        return dict(section, runs=runs, comparisons=fleet.compare(runs))

    def progress(partial):
        results["sections"]["fleet"] = merged(partial)
        report.write(results, args.out, stem)

    return merged(fleet.run(args.quick, rng, sizes=sizes, sides=sides, key_labels=key_labels,
                            pipelining=not args.no_pipelining, progress=progress))


if __name__ == "__main__":
    sys.exit(main())
