# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing the benchmark results: JSON (everything), Markdown (the short table), PNG (scaling)."""

from __future__ import annotations

import json
import os

import harness


def _fmt(value, digits=2):
    if value is None:
        return "n/a"
    return ("%%.%df" % digits) % value


def _fit(points):
    """Least-squares line seconds = a + b * hosts; returns (a, b) or None with fewer than two sizes."""
    if len(set(x for x, _y in points)) < 2:
        return None
    n = float(len(points))
    mean_x = sum(x for x, _y in points) / n
    mean_y = sum(y for _x, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _y in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return mean_y - slope * mean_x, slope


def fleet_slopes(fleet):
    """Per-host CPU cost (slope of the linear fit over N) per side and phase, and its ratio to community.crypto."""
    series = {}
    for run in fleet["runs"]:
        series.setdefault((run["key"], run["side"], run["phase"]), []).append((run["hosts"], run["cpu_seconds"]))
    slopes = {}
    for (key, side, phase), points in series.items():
        fit = _fit(points)
        if fit:
            slopes[(key, side, phase)] = {"intercept": round(fit[0], 2), "per_host": round(fit[1], 3)}
    rows = []
    for (key, side, phase), fit in sorted(slopes.items()):
        if side == "community.crypto":
            continue
        base = slopes.get((key, "community.crypto", phase))
        rows.append({"key": key, "side": side, "phase": phase, "cpu_seconds_per_host": fit["per_host"],
                     "cpu_seconds_fixed": fit["intercept"],
                     "community_crypto_cpu_seconds_per_host": base["per_host"] if base else None,
                     "ratio": harness.ratio(fit["per_host"], base["per_host"]) if base else None})
    return rows


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _paired(summary):
    return "%s-%s" % (_fmt(summary["p10"]), _fmt(summary["p90"]))


def _target(value):
    return "<= %sx" % value if value else "report"


def _mint_rows(mint):
    for row in mint["algorithms"]:
        cpu = row["us_per_token"]
        yield _row(["Mint %s in-process: `_token.mint` / bare `cryptography` sign (%s / %s us CPU)"
                    % (row["algorithm"], _fmt(cpu["collection"]["median"], 0), _fmt(cpu["bare"]["median"], 0)),
                    "%sx" % _fmt(row["ratio_collection_to_bare"]), _paired(row["paired_ratio_collection_to_bare"]),
                    _target(row["target"]), row["verdict"]])


def _task_rows(tasks):
    playbooks = tasks["playbooks"]
    for name in ("jwt_token_es256", "jwt_token_rs256"):
        entry = playbooks["candidates"][name]
        yield _row(["One `%s` task / one `ping` task, %d local hosts, forks %d: CPU added to the run"
                    % (name, playbooks["hosts"], playbooks["forks"]),
                    "%sx" % _fmt(entry["ratio_task_cpu_to_ping"]), _paired(entry["paired_ratio_task_cpu_to_ping"]),
                    _target(entry["target"]), entry["verdict"]])
        yield _row(["... the same, task wall time", "%sx" % _fmt(entry["ratio_task_wall_to_ping"]),
                    _paired(entry["paired_ratio_task_wall_to_ping"]), "-", "-"])
    processes = tasks["module_processes"]["ms"]
    for name in ("jwt_token_es256", "jwt_token_rs256"):
        yield _row(["Module process alone (AnsiballZ payload, CPU): `%s` / `ping` (%s / %s ms)"
                    % (name, _fmt(processes[name]["median"], 0), _fmt(processes["ping"]["median"], 0)),
                    "%sx" % _fmt(processes[name]["ratio_to_ping"]), _paired(processes[name]["paired_ratio_to_ping"]),
                    "-", "-"])


def _fleet_rows(fleet):
    for row in fleet["comparisons"]:
        note = ""
        if row.get("changed_on_rerun"):
            note = " (re-run changed %d)" % row["changed_on_rerun"]
        yield _row(["Fleet %s, %d hosts, %s run: `%s` / community.crypto, CPU (%s / %s s; wall %sx)%s"
                    % (row["key"], row["hosts"], row["phase"], row["side"], _fmt(row["cpu_seconds"], 1),
                       _fmt(row["community_crypto_cpu_seconds"], 1), _fmt(row["wall_ratio"]), note),
                    "%sx" % _fmt(row["ratio"]), "-", _target(row["target"]), row["verdict"]])
    for row in fleet.get("per_host", []):
        yield _row(["Fleet %s, %s run, CPU per added host (slope over N): `%s` / community.crypto (%s / %s s)"
                    % (row["key"], row["phase"], row["side"], _fmt(row["cpu_seconds_per_host"]),
                       _fmt(row["community_crypto_cpu_seconds_per_host"])),
                    "%sx" % _fmt(row["ratio"]), "-", "-", "-"])


def _jwks_rows(jwks):
    for case, entry in jwks["scaling"]["cases"].items():
        value = entry["ratio_10k_to_1k"]
        yield _row(["JWKS %s (`_jwks.plan`), 10,000 / 1,000 EC keys; 10,000 keys: %s s CPU"
                    % (case, _fmt(entry["seconds"]["10000"]["median"], 3)),
                    _fmt(value), "-", "~10 (linear)", "linear" if value and value < 12.5 else "not linear"])


def _publish_role_rows(section):
    ratio = section["ratio"]
    sizes = section["sizes"]
    yield _row(["`kyma_publish` role in ansible-playbook, render, %s / %s hosts (%s shards of ~%d hosts), CPU of the "
                "whole run (%s / %s s)"
                % ("{:,}".format(ratio["large"]), "{:,}".format(ratio["small"]),
                   " / ".join(str(sizes[str(size)]["shards"]) for size in (ratio["large"], ratio["small"])),
                   section["hosts_per_shard"], _fmt(sizes[str(ratio["large"])]["cpu_seconds"]["median"], 1),
                   _fmt(sizes[str(ratio["small"])]["cpu_seconds"]["median"], 1)),
                _fmt(ratio["cpu"]), _paired(ratio["paired"]), "<= %s (linear ~10)" % _fmt(section["target"], 0),
                ratio["verdict"]])


def _refresher_rows(refresher):
    for name, entry in sorted(refresher["ratios"].items()):
        yield _row(["Token refresher, fresh process, CPU: %s (wall %sx)" % (name, _fmt(entry["wall"]["ratio"])),
                    "%sx" % _fmt(entry["cpu"]["ratio"]), _paired(entry["cpu"]["paired"]), "report", "-"])


def _pkcs11_rows(section):
    for row in section["algorithms"]:
        cpu, rate = row["us_per_token"], row["tokens_per_cpu_second"]
        steady, first = row["ratio_softhsm2_to_file"], row["ratio_first_token_softhsm2_to_file"]
        yield _row(["PKCS#11 %s in-process, `_token.mint` per token: SoftHSM2 key / file key (%s / %s tokens per CPU "
                    "second; wall %sx)"
                    % (row["algorithm"], "{:,}".format(rate["softhsm2"]), "{:,}".format(rate["file"]),
                       _fmt(steady["wall"])),
                    "%sx" % _fmt(steady["cpu"]), _paired(steady["paired_cpu"]), "report", "-"])
        yield _row(["PKCS#11 %s first token in-process: open session + login + find key + first token (SoftHSM2) / "
                    "load key file + first token (%s / %s ms CPU; wall %sx)"
                    % (row["algorithm"], _fmt(cpu["softhsm2 first token"]["median"] / 1000.0),
                       _fmt(cpu["file first token"]["median"] / 1000.0), _fmt(first["wall"])),
                    "%sx" % _fmt(first["cpu"]), _paired(first["paired_cpu"]), "report", "-"])
    refresher = section["refresher"]
    for label, entry in sorted(refresher["ratios"].items()):
        ms = refresher["ms"]["cpu"][label]
        yield _row(["Token refresher, fresh process, CPU per token (`selfjwt-token --force`): %s SoftHSM2 key / "
                    "file key (%s / %s ms; wall %sx)"
                    % (label, _fmt(ms["softhsm2"]["median"], 1), _fmt(ms["file"]["median"], 1),
                       _fmt(entry["wall"]["ratio"])),
                    "%sx" % _fmt(entry["cpu"]["ratio"]), _paired(entry["cpu"]["paired"]), "report", "-"])


def markdown(results):
    meta = results["meta"]
    intro = ("Generated by `make bench` (%s) on %s at commit %s: %s, %d CPUs, load average %s at the start. "
             "Absolute times on a shared machine are noise: the ratios compare candidates measured side by side, "
             "interleaved in shuffled rounds, by CPU time (in-process: the process's CPU time; commands: user + "
             "system time of the command and all its children), which waiting for a busy CPU does not inflate."
             % (meta["mode"], meta["date"], meta.get("commit"), meta["python"], meta["cpus"], meta["load_average"]))
    runs = meta.get("section_runs") or {}
    if len(set(json.dumps(run, sort_keys=True) for run in runs.values())) > 1:
        intro += " Sections come from separate runs (`--update`): " + "; ".join(
            "%s: %s at commit %s, load average %s" % (name, run["date"], run["commit"], run["load_average"])
            for name, run in sorted(runs.items()) if run) + "."
    lines = ["# selfjwt.kyma benchmarks", "", intro, "",
             "| Measurement | Ratio (median) | p10-p90 of paired ratios | Target | Verdict |",
             "|---|---|---|---|---|"]
    sections = results["sections"]
    for name, rows in (("mint", _mint_rows), ("tasks", _task_rows), ("fleet", _fleet_rows), ("jwks", _jwks_rows),
                       ("refresher", _refresher_rows), ("publish_role", _publish_role_rows), ("pkcs11", _pkcs11_rows)):
        if name in sections:
            lines.extend(rows(sections[name]))
    jwks = sections.get("jwks")
    if jwks:
        lines += ["", "JWKS bytes per key (the document `jwks_publish` writes, indent 2; minified in brackets):", "",
                  "| Key type | without x5c | with x5c | 1,000 keys without x5c |", "|---|---|---|---|"]
        for row in jwks["bytes_per_key"]:
            lines.append(_row([row["key_type"],
                               "%s (%s)" % (_fmt(row["without_x5c"]["bytes_per_key"], 0),
                                            _fmt(row["without_x5c"]["bytes_per_key_minified"], 0)),
                               "%s (%s)" % (_fmt(row["with_x5c"]["bytes_per_key"], 0),
                                            _fmt(row["with_x5c"]["bytes_per_key_minified"], 0)),
                               "%s KiB" % _fmt(row["kib_for_1000_keys_without_x5c"], 0)]))
    scale = sections.get("fleet_scale")
    if scale:
        lines += ["", "Cluster side of `kyma_publish` for large fleets (%s keys, in-process with cold key caches as in "
                  "one playbook run: shard plan, `_jwks.plan` and discovery document per JWKS; sharded: %d hosts "
                  "per shard; site keys: %d hosts per site):"
                  % (scale["key_type"], scale["hosts_per_shard"], scale["site_size"]), "",
                  "| Topology, hosts | Render CPU (median) | JWKS documents | Largest JWKS | All JWKS together |",
                  "|---|---|---|---|---|"]
        for case, entry in sorted(scale["cases"].items(), key=lambda item: (item[0].split()[0],
                                                                            int(item[0].split()[1]))):
            lines.append(_row([case, "%s s" % _fmt(entry["render_cpu_seconds"]["median"], 3), str(entry["jwks_count"]),
                               "%d keys, %d bytes" % (entry["largest_jwks_keys"], entry["largest_jwks_bytes"]),
                               "%d bytes" % entry["total_bytes"]]))
    for name, error in sorted(results.get("errors", {}).items()):
        lines += ["", "Section %s failed: %s" % (name, error.splitlines()[0] if error else "")]
    lines += ["", "Reproduce: `make bench` (full run, writes `bench/results/latest.*`); smoke run: "
              "`BENCH_ARGS=--quick make bench` (writes `bench/results/quick.*`). "
              "Command line of this run: `%s`. Details: `bench/results/%s.json`." % (meta["command"], meta["stem"]), ""]
    return "\n".join(lines)


def plot(results, path):
    """PNG with the fleet scaling (seconds over N) and the JWKS scaling; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sections = results["sections"]
    panels = [name for name in ("fleet", "jwks") if name in sections]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    for axis, name in zip(axes[0], panels):
        if name == "fleet":
            series = {}
            for run in sections["fleet"]["runs"]:
                series.setdefault((run["side"], run["phase"], run["key"]), []).append(
                    (run["hosts"], run["cpu_seconds"]))
            for (side, phase, key), points in sorted(series.items()):
                points.sort()
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                          linestyle="-" if phase == "first" else "--", label="%s, %s (%s)" % (side, phase, key))
            axis.set_xlabel("edge hosts (N, forks = N)")
            axis.set_ylabel("ansible-playbook CPU time, all processes [s]")
            axis.set_title("Fleet provisioning")
            axis.legend(fontsize=7)
        else:
            for case, entry in sections["jwks"]["scaling"]["cases"].items():
                sizes = sorted(int(size) for size in entry["seconds"])
                axis.plot(sizes, [entry["seconds"][str(size)]["median"] for size in sizes], marker="o", label=case)
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("keys in the JWKS")
            axis.set_ylabel("_jwks.plan() CPU time [s], median")
            axis.set_title("JWKS assembly (in-process)")
            axis.legend(fontsize=8)
        axis.grid(True, alpha=0.3)
    figure.suptitle("selfjwt.kyma benchmarks (%s, %s)" % (results["meta"]["mode"], results["meta"]["date"]))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(results, directory, stem):
    os.makedirs(directory, exist_ok=True)
    if "fleet" in results["sections"]:
        results["sections"]["fleet"]["per_host"] = fleet_slopes(results["sections"]["fleet"])
    paths = {}
    png = os.path.join(directory, "%s.png" % stem)
    if plot(results, png):
        paths["png"] = png
        results["meta"]["plot"] = os.path.basename(png)
    paths["json"] = os.path.join(directory, "%s.json" % stem)
    with open(paths["json"], "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
        handle.write("\n")
    paths["md"] = os.path.join(directory, "%s.md" % stem)
    with open(paths["md"], "w", encoding="utf-8") as handle:
        handle.write(markdown(results))
    return paths
