"""Compare saved runs and devices on every metric: tables, CSV, plots, a regression gate.

    python -m bench_support.report [RESULTS_DIR] [--device ID] [--no-plots]
                                   [--fail-on METRIC:THRESHOLD ...] [--baseline FILE]

Reads every saved run of every device under RESULTS_DIR (default ``results``) and
prints, per benchmark group, (a) each device's latest run against its previous one
and (b) the devices side by side on their latest runs — timing *and* the extra_info
figures — naming the machine facts that differ between compared runs. Writes
``report.csv`` (one row per benchmark per run) and PNG plots under ``plots/``.

The gate (``--fail-on``) compares the latest run of a device with a baseline (its
previous run, or ``--baseline FILE``) and exits 1 when a metric got worse beyond its
threshold *and* beyond noise:
- time statistics (``min``, ``median``, ``mean``): a one-sided Mann-Whitney U test on
  the saved rounds (``--benchmark-save-data``, which ``./run.sh`` always passes),
  significant at p <= 0.05;
- extra_info figures (one value per run): the change must also exceed the noise band:
  for figures derived from time (``*_s``, ``*_ms``, ``*_per_s``, energy, power, stall
  and utilisation figures) two standard errors of the difference of two runs' means,
  from the rounds' spread (sigma ~ IQR/1.349); for every figure, twice its standard
  deviation over this device's earlier runs when there are at least two — rounds in
  one process underestimate the drift between processes (measured here: 27 % between
  two honest runs whose rounds agreed within 5 %);
- with fewer than 3 rounds on either side the gate cannot tell change from noise and
  says so instead of failing.
A positive threshold means "higher is worse" (``energy_j:5%``), a negative one
"lower is worse" (``samples_per_s:-5%``).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .machine import stable_differences

TIME_METRICS = ("min", "median", "mean", "max")
KEY_METRICS = {
    "training": ("samples_per_s", "stall_frac", "rss_peak_mb", "energy_j", "accuracy"),
    "dataloader": ("samples_per_s", "first_batch_s", "cpu_util_pct", "rss_tree_peak_mb"),
    "pagecache": ("read_mb_per_s", "resident_frac_before", "disk_read_mb", "cold_penalty_s"),
    "checkpoint": ("total_ms", "fsync_ms", "rename_ms", "mb_per_s"),
    "continual": ("final_acc", "finetune_s", "mem_peak_abs_mb", "mem_delta_mb"),
}
NOISY, INVALID = 0.10, 0.25
MIN_ROUNDS = {"smoke": 1, "quick": 3, "full": 5}
MIN_GATE_ROUNDS = 3


# --- loading ------------------------------------------------------------------------------


@dataclass
class Run:
    device: str
    path: str
    number: int
    data: Dict[str, Any]

    @property
    def label(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def profile(self) -> Optional[str]:
        return (self.data.get("edge_bench") or {}).get("profile")

    @property
    def facts(self) -> Dict[str, Any]:
        return (self.data.get("machine_info") or {}).get("device") or {}

    def benchmarks(self) -> List[Dict[str, Any]]:
        return [b for b in self.data.get("benchmarks") or [] if isinstance(b, dict) and b.get("name")]


def load_runs(results_dir: str) -> Tuple[List[Run], List[str]]:
    """Every readable run under ``results_dir``, oldest first per device, and the problems met."""
    runs: List[Run] = []
    problems: List[str] = []
    if not os.path.isdir(results_dir):
        return runs, [f"{results_dir}: no such directory"]
    for path in sorted(glob.glob(os.path.join(results_dir, "*", "*", "*.json"))):
        device = os.path.basename(os.path.dirname(os.path.dirname(path)))
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: skipped, not readable JSON ({str(exc).splitlines()[0]})")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            problems.append(f"{path}: skipped, not a pytest-benchmark run (no 'benchmarks' list)")
            continue
        if "edge_bench" not in data:
            problems.append(f"{path}: saved by an older suite (no edge_bench block); shown with what it has")
        match = re.match(r"(\d+)_", os.path.basename(path))
        runs.append(Run(device, path, int(match.group(1)) if match else 0, data))
    runs.sort(key=lambda r: (r.device, r.data.get("datetime") or "", r.number))
    if not runs and not problems:
        problems.append(f"{results_dir}: no saved runs yet (run ./run.sh first)")
    return runs, problems


def by_device(runs: Sequence[Run]) -> Dict[str, List[Run]]:
    devices: Dict[str, List[Run]] = {}
    for run in runs:
        devices.setdefault(run.device, []).append(run)
    return devices


# --- figures of one benchmark -------------------------------------------------------------


def rounds_of(bench: Dict[str, Any]) -> List[float]:
    return [float(x) for x in (bench.get("stats") or {}).get("data") or []]


def spread(bench: Dict[str, Any]) -> Optional[float]:
    stats = bench.get("stats") or {}
    try:
        return float(stats["iqr"]) / float(stats["median"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def metric(bench: Dict[str, Any], name: str) -> Optional[float]:
    """A time statistic (s) or an extra_info figure; None where absent or not a number."""
    source = bench.get("stats") or {} if name in TIME_METRICS else bench.get("extra_info") or {}
    value = source.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def validity(bench: Dict[str, Any], profile: Optional[str]) -> Dict[str, Any]:
    """noisy / invalid flags from the rounds; throttling cannot be judged from a saved run."""
    rounds = int((bench.get("stats") or {}).get("rounds") or 0)
    rel = spread(bench)
    minimum = MIN_ROUNDS.get(profile or "", 1)
    reasons = []
    if rel is not None and rel > INVALID:
        reasons.append(f"IQR/median {rel:.2f} > {INVALID}")
    if rounds < minimum:
        reasons.append(f"{rounds} round(s), the {profile} profile's minimum is {minimum}")
    return {
        "iqr_over_median": rel,
        "noisy": rel is not None and rel > NOISY,
        "invalid": bool(reasons),
        "invalid_reasons": reasons,
        "throttled": None,
        "throttled_unavailable": "no frequency or temperature samples are recorded during a run",
    }


def _flag(v: Dict[str, Any]) -> str:
    return " [INVALID]" if v["invalid"] else (" [noisy]" if v["noisy"] else "")


# --- tables -------------------------------------------------------------------------------


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _change(old: Optional[float], new: Optional[float]) -> str:
    if old is None or new is None or old == 0:
        return ""
    return f" ({100 * (new - old) / abs(old):+.1f}%)"


def _groups(run: Run) -> Dict[str, List[Dict[str, Any]]]:
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for bench in run.benchmarks():
        groups.setdefault(bench.get("group") or "(no group)", []).append(bench)
    return groups


def compare_runs(old: Run, new: Run) -> List[str]:
    """Lines comparing two runs of one device, benchmark by benchmark."""
    lines = [f"== {new.device}: {new.label} against {old.label}"]
    for change in stable_differences(new.facts, old.facts):
        lines.append(f"   differs: {change}")
    previous = {b["name"]: b for b in old.benchmarks()}
    for group, benches in sorted(_groups(new).items()):
        lines.append(f"-- {group}")
        for bench in benches:
            before = previous.get(bench["name"])
            old_t = metric(before, "median") if before else None
            new_t = metric(bench, "median")
            parts = [f"median {_fmt(old_t)} → {_fmt(new_t)} s{_change(old_t, new_t)}"]
            for key in KEY_METRICS.get(group, ("rss_peak_mb",)):
                old_v = metric(before, key) if before else None
                new_v = metric(bench, key)
                if old_v is not None or new_v is not None:
                    parts.append(f"{key} {_fmt(old_v)} → {_fmt(new_v)}{_change(old_v, new_v)}")
            lines.append(f"   {bench['name']}{_flag(validity(bench, new.profile))}")
            lines.append("      " + "; ".join(parts))
    return lines


def compare_devices(latest: Dict[str, Run]) -> List[str]:
    """Lines putting each device's latest run side by side, matched by benchmark name."""
    devices = sorted(latest)
    lines = ["== devices side by side (latest run of each): " + ", ".join(devices)]
    for a, b in combinations(devices, 2):
        for change in stable_differences(latest[b].facts, latest[a].facts):
            lines.append(f"   {a} vs {b} differ: {change}")
    names: Dict[str, Dict[str, Dict[str, Any]]] = {}
    groups: Dict[str, str] = {}
    for device in devices:
        for bench in latest[device].benchmarks():
            names.setdefault(bench["name"], {})[device] = bench
            groups[bench["name"]] = bench.get("group") or "(no group)"
    for group in sorted(set(groups.values())):
        lines.append(f"-- {group}")
        for name in sorted(n for n in names if groups[n] == group):
            lines.append(f"   {name}")
            for key in ("median",) + KEY_METRICS.get(group, ("rss_peak_mb",)):
                values = [
                    f"{d}={_fmt(metric(names[name][d], key)) if d in names[name] else 'not run'}" for d in devices
                ]
                lines.append(f"      {key}: " + "  ".join(values))
    return lines


# --- CSV ----------------------------------------------------------------------------------


def write_csv(runs: Sequence[Run], path: str) -> int:
    rows = []
    for run in runs:
        for bench in run.benchmarks():
            row: Dict[str, Any] = {
                "device": run.device,
                "run": run.label,
                "datetime": run.data.get("datetime"),
                "profile": run.profile,
                "group": bench.get("group"),
                "name": bench["name"],
            }
            for key, value in (bench.get("params") or {}).items():
                row[f"param:{key}"] = value
            for key in ("min", "median", "mean", "max", "stddev", "iqr", "rounds"):
                row[f"time_{key}"] = (bench.get("stats") or {}).get(key)
            v = validity(bench, run.profile)
            row.update(noisy=v["noisy"], invalid=v["invalid"])
            for key, value in (bench.get("extra_info") or {}).items():
                if value is None or isinstance(value, (int, float, str, bool)):
                    row[key] = value
            rows.append(row)
    columns: List[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


# --- the gate -----------------------------------------------------------------------------


@dataclass
class Rule:
    metric: str
    threshold: float  # fraction; positive: higher is worse, negative: lower is worse

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*):([+-]?\d+(?:\.\d+)?)%", text.strip())
        if not match:
            raise ValueError(f"--fail-on {text}: expected METRIC:THRESHOLD%, e.g. energy_j:5% or samples_per_s:-5%")
        return cls(match.group(1), float(match.group(2)) / 100.0)


def mann_whitney_p(worse: Sequence[float], better: Sequence[float]) -> float:
    """One-sided exact p-value that ``worse`` tends to be larger than ``better``.

    Exact enumeration of the rank-sum distribution (the rounds of a run are few);
    ties count half.
    """

    def u_stat(xs: Sequence[float], ys: Sequence[float]) -> float:
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)

    pooled = list(worse) + list(better)
    n = len(worse)
    observed = u_stat(worse, better)
    total = extreme = 0
    for chosen in combinations(range(len(pooled)), n):
        picked = set(chosen)
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in picked]
        total += 1
        if u_stat(xs, ys) >= observed - 1e-12:
            extreme += 1
    return extreme / total


def noise_band(relative_iqr: float, rounds: int) -> float:
    """Two standard errors of the difference between two runs' means, relative.

    sigma of one round ~ IQR/1.349 (normal); of a run's mean sigma/sqrt(n); of the
    difference of two such means sqrt(2) times that.
    """
    return 2.0 * math.sqrt(2.0) * (relative_iqr / 1.349) / math.sqrt(max(rounds, 1))


@dataclass
class Verdict:
    benchmark: str
    metric: str
    old: Optional[float]
    new: Optional[float]
    failed: bool
    test: str
    note: str = ""


_TIME_DERIVED = re.compile(r"(_s|_ms|_per_s|_w|_j|_mj|_frac|_pct|_iops)$")


def history_band(values: Sequence[float]) -> float:
    """Twice the relative standard deviation of a figure over earlier runs (0 with < 2)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return 2.0 * math.sqrt(var) / abs(mean) if mean else 0.0


def gate(
    baseline: Run, latest: Run, rules: Sequence[Rule], alpha: float = 0.05, history: Sequence[Run] = ()
) -> List[Verdict]:
    """Verdicts of ``rules`` on ``latest`` against ``baseline``; ``history``: earlier runs of the device."""
    verdicts = []
    old_benches = {b["name"]: b for b in baseline.benchmarks()}
    earlier = [{b["name"]: b for b in run.benchmarks()} for run in history]
    for bench in latest.benchmarks():
        old_bench = old_benches.get(bench["name"])
        if old_bench is None:
            continue
        for rule in rules:
            old, new = metric(old_bench, rule.metric), metric(bench, rule.metric)
            if old is None or new is None:
                continue
            change = (new - old) / abs(old) if old else 0.0
            worse = change > rule.threshold if rule.threshold >= 0 else change < rule.threshold
            rounds = min(int((b.get("stats") or {}).get("rounds") or 0) for b in (old_bench, bench))
            if rule.metric in TIME_METRICS:
                test = "one-sided Mann-Whitney U on the saved rounds, p <= 0.05"
                rounds = min(len(rounds_of(old_bench)), len(rounds_of(bench)))
            else:
                test = "threshold and a noise band from the rounds (time-derived figures) and the run history"
            if rounds < MIN_GATE_ROUNDS:
                note = f"cannot judge: fewer than {MIN_GATE_ROUNDS} saved rounds"
                verdicts.append(Verdict(bench["name"], rule.metric, old, new, False, test, note))
                continue
            if rule.metric in TIME_METRICS:
                p = mann_whitney_p(rounds_of(bench), rounds_of(old_bench))
                failed, note = worse and p <= alpha, f"change {change:+.1%}, p={p:.3f}"
            else:
                band = 0.0
                if _TIME_DERIVED.search(rule.metric):
                    band = noise_band(max(spread(old_bench) or 0.0, spread(bench) or 0.0), rounds)
                past = [metric(runs[bench["name"]], rule.metric) for runs in earlier if bench["name"] in runs]
                band = max(band, history_band([v for v in past if v is not None]))
                failed, note = worse and abs(change) > band, f"change {change:+.1%}, noise band ±{band:.1%}"
            verdicts.append(Verdict(bench["name"], rule.metric, old, new, failed, test, note))
    return verdicts


# --- plots --------------------------------------------------------------------------------


def write_plots(latest: Dict[str, Run], directory: str) -> List[str]:
    """PNG plots of the devices' latest runs; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(directory, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def benches(group, test_prefix):
        for device, run in sorted(latest.items()):
            for bench in run.benchmarks():
                if bench.get("group") == group and bench["name"].startswith(test_prefix):
                    yield device, bench

    # 1. loader throughput against num_workers, one line per device
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: Dict[str, List[Tuple[int, float]]] = {}
    for device, bench in benches("dataloader", "test_loader_pass"):
        info = bench.get("extra_info") or {}
        if info.get("samples_per_s") and not info.get("persistent_workers") and not info.get("pin_memory"):
            if info.get("prefetch_factor") in (None, 2):
                series.setdefault(device, []).append((info["num_workers"], info["samples_per_s"]))
    for device, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=device)
    ax.set_xticks(sorted({p[0] for points in series.values() for p in points}))
    _finish(ax, "DataLoader throughput (loader only, prefetch 2)", "num_workers", "samples per second", series)
    save(fig, "loader_throughput_vs_workers.png")

    # 2. cold against warm read time per data root (raw reads)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bars: Dict[str, Dict[str, float]] = {}
    for device, bench in benches("pagecache", "test_read"):
        info = bench.get("extra_info") or {}
        if info.get("reader") == "raw" and metric(bench, "median") is not None:
            key = f"{device}\n{info.get('data_root')} ({info.get('fs_type')})"
            bars.setdefault(key, {})[info.get("cache_state")] = metric(bench, "median") * 1000
    _grouped_bars(ax, bars, ("cold", "warm"))
    _finish(ax, "Reading the training files: cold vs warm page cache", "device / data root", "read time (ms)", bars)
    save(fig, "pagecache_cold_vs_warm.png")

    # 3. checkpoint phases per target filesystem (durable mode, largest payload, overwrite)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    phases = ("write_ms", "fsync_ms", "rename_ms", "dirsync_ms")
    stacks: Dict[str, Dict[str, float]] = {}
    chosen = {}
    for device, bench in benches("checkpoint", "test_checkpoint_write"):
        info = bench.get("extra_info") or {}
        if info.get("write_mode") == "durable" and info.get("existing") == "overwrite":
            key = f"{device}\n{info.get('target')} ({info.get('fs_type')})"
            if info.get("ckpt_mb", 0) >= chosen.get(key, (0, None))[0]:
                chosen[key] = (info.get("ckpt_mb", 0), info)
    for key, (_, info) in chosen.items():
        stacks[key] = {p: info.get(p) or 0.0 for p in phases}
    bottom = [0.0] * len(stacks)
    for phase in phases:
        values = [stacks[k][phase] for k in stacks]
        ax.bar(list(stacks), values, bottom=bottom, label=phase.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, values)]
    _finish(ax, "Durable checkpoint write, phase by phase (largest payload)", "device / target", "time (ms)", stacks)
    save(fig, "checkpoint_phases.png")

    # 4. energy per epoch and samples per joule per device (training)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    energy: Dict[str, Dict[str, float]] = {}
    reasons = set()
    for device, bench in benches("training", "test_training_epoch"):
        info = bench.get("extra_info") or {}
        if info.get("energy_j") is not None and info.get("rounds_measured"):
            per_epoch = info["energy_j"] / info["rounds_measured"]
            energy.setdefault(device, {})[bench["name"]] = per_epoch
        elif info.get("power_unavailable"):
            reasons.add(info["power_unavailable"])
    for device, values in energy.items():
        ax1.bar([f"{device}\n{n}" for n in values], list(values.values()))
    for device, run in latest.items():
        per_joule = {}
        for bench in run.benchmarks():
            info = bench.get("extra_info") or {}
            if bench.get("group") == "training" and info.get("energy_per_sample_mj"):
                per_joule[bench["name"]] = 1000.0 / info["energy_per_sample_mj"]
        if per_joule:
            ax2.bar([f"{device}\n{n}" for n in per_joule], list(per_joule.values()))
    _finish(ax1, "Energy per training epoch", "device / benchmark", "energy (J)", energy, reasons)
    _finish(ax2, "Training samples per joule", "device / benchmark", "samples per J", energy, reasons)
    save(fig, "energy_per_epoch.png")

    # 5. peak RSS per model and configuration (training)
    fig, ax = plt.subplots(figsize=(8, 5))
    labels, values = [], []
    for device, bench in benches("training", "test_training_epoch"):
        value = metric(bench, "rss_peak_mb")
        if value is not None:
            labels.append(f"{device}: {bench['name'].split('[', 1)[-1].rstrip(']')}")
            values.append(value)
    ax.barh(labels, values)
    ax.set_title("Peak RSS of each training configuration")
    ax.set_xlabel("peak resident set (MB = 2^20 bytes)")
    ax.set_ylabel("device: model-batch-optimizer-device-size")
    if not values:
        ax.text(0.5, 0.5, "no training results", ha="center", va="center", transform=ax.transAxes)
    save(fig, "rss_peak_per_config.png")
    return written


def _grouped_bars(ax, bars: Dict[str, Dict[str, float]], kinds: Sequence[str]) -> None:
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        xs = [j + i * width for j in range(len(bars))]
        ax.bar(xs, [bars[k].get(kind, 0.0) for k in bars], width=width, label=kind)
    ax.set_xticks([j + width * (len(kinds) - 1) / 2 for j in range(len(bars))])
    ax.set_xticklabels(list(bars), fontsize=8)


def _finish(ax, title: str, xlabel: str, ylabel: str, data, reasons=()) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if data:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    else:
        note = "no data in the latest runs"
        if reasons:
            note = "not measured:\n" + "\n".join(textwrap.fill(r, 48) for r in sorted(reasons))
        ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=7, transform=ax.transAxes)
        ax.set_xticks([])


# --- command line -------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench_support.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", nargs="?", default="results")
    parser.add_argument("--device", help="the device whose latest run the gate checks (default: every device)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC:THRESHOLD")
    parser.add_argument("--baseline", metavar="FILE", help="saved run to compare against (default: the previous)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        rules = [Rule.parse(text) for text in args.fail_on]
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2

    runs, problems = load_runs(args.results_dir)
    for problem in problems:
        print(f"report: {problem}")
    devices = by_device(runs)
    for device_runs in devices.values():
        if len(device_runs) >= 2:
            print("\n".join(compare_runs(device_runs[-2], device_runs[-1])))
    latest = {device: device_runs[-1] for device, device_runs in devices.items()}
    if len(latest) >= 2:
        print("\n".join(compare_devices(latest)))
    if runs:
        count = write_csv(runs, os.path.join(args.results_dir, "report.csv"))
        print(f"report: {count} rows in {os.path.join(args.results_dir, 'report.csv')}")
        if not args.no_plots:
            for path in write_plots(latest, os.path.join(args.results_dir, "plots")):
                print(f"report: plot {path}")

    if not rules:
        return 0
    failed = False
    for device, device_runs in sorted(devices.items()):
        if args.device and device != args.device:
            continue
        if args.baseline:
            baseline_runs, baseline_problems = _single(args.baseline)
            if not baseline_runs:
                print(f"report: --baseline {args.baseline}: {'; '.join(baseline_problems)}", file=sys.stderr)
                return 2
            baseline = baseline_runs[0]
        elif len(device_runs) >= 2:
            baseline = device_runs[-2]
        else:
            print(f"gate: {device}: only one saved run, nothing to compare with")
            continue
        for verdict in gate(baseline, device_runs[-1], rules, history=device_runs[:-1]):
            status = "FAIL" if verdict.failed else "ok"
            print(
                f"gate {status}: {device} {verdict.benchmark} {verdict.metric} {_fmt(verdict.old)} → "
                f"{_fmt(verdict.new)} ({verdict.note}; {verdict.test})"
            )
            failed = failed or verdict.failed
    return 1 if failed else 0


def _single(path: str) -> Tuple[List[Run], List[str]]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        return [], [str(exc).splitlines()[0]]
    return [Run("baseline", path, 0, data)], []


if __name__ == "__main__":
    sys.exit(main())
