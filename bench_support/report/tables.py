"""The report's tables: a device's latest run against its previous one, and devices side by side.

Each benchmark shows its median time and its group's key figures, named by the
vocabulary (``bench_support.metrics.key_figures``) when the table is made.
"""

from __future__ import annotations

import statistics
from itertools import combinations
from typing import Any, Dict, List, Optional, Tuple

from bench_support import metrics
from bench_support.measure.machine import stable_differences
from bench_support.report.baseline import benchmark_baseline, differences, run_baseline
from bench_support.report.runs import RSS_ABSOLUTE, Run, file_pages_moved, machine_moved, metric
from bench_support.report.validity import flag, validity

#: The family whose first figure a group without key figures shows: the process's memory peak.
FALLBACK_FAMILY = "memory"


def fmt_number(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def fmt_change(old: Optional[float], new: Optional[float]) -> str:
    if old is None or new is None or old == 0:
        return ""
    return f" ({100 * (new - old) / abs(old):+.1f}%)"


def key_figures(group: str) -> Tuple[str, ...]:
    """The figures a group's rows show, from the vocabulary as it is now."""
    figures = metrics.key_figures(group)
    if figures:
        return figures
    return tuple(m.name for m in metrics.METRICS.values() if m.family == FALLBACK_FAMILY)[:1]


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
            lines.append(f"   {bench['name']}{flag(validity(bench, new.profile))}")
            lines.append("      " + "; ".join(_changes(group, previous.get(bench["name"]), bench)))
    return lines


def settings_differences(old: Run, new: Run) -> List[str]:
    """'name: old -> new' for each setting (profile, thread policy, data roots...) that differs (:mod:`.baseline`)."""
    return differences(old.settings, new.settings)


def compare_history(runs: List[Run]) -> List[str]:
    """The device's latest run, each benchmark against the last earlier run that ran it with the same settings.

    A run of another profile or other settings is never the baseline; when the previous run is one, the
    table says so and names the differences.
    """
    new, earlier = runs[-1], runs[:-1]
    what = f"{new.profile or '?'} profile" + (", partial run" if new.partial else "")
    if not earlier:
        return [f"== {new.device}: {new.label} ({what}), the first run of this device"]
    run_base = run_baseline(earlier, new.data)
    lines = [f"== {new.device}: {new.label} ({what}), each benchmark against the last run that ran it alike"]
    previous = earlier[-1]
    changes = settings_differences(previous, new)
    if changes:
        lines.append(f"   not compared with the previous run {previous.label}: " + "; ".join(changes))
    if run_base is not None:
        lines.extend(_speed_line(run_base, new))
    for group, benches in sorted(_groups(new).items()):
        lines.append(f"-- {group}")
        for bench in benches:
            base = benchmark_baseline(earlier, new.data, bench["name"], group=bench.get("group"))
            before = next((b for b in base.benchmarks() if b["name"] == bench["name"]), None) if base else None
            against = f"against {base.label}" if base else "no earlier run alike"
            lines.append(f"   {bench['name']}{flag(validity(bench, new.profile))} ({against})")
            lines.append("      " + "; ".join(_changes(group, before, bench)))
    return lines


def _speed_line(old: Run, new: Run) -> List[str]:
    """The run-wide change of the speed probe: the median over the benchmarks both runs probed."""
    before = {b["name"]: metric(b, "speed_probe_ms") for b in old.benchmarks()}
    ratios = sorted(
        now / before[b["name"]]
        for b in new.benchmarks()
        for now in [metric(b, "speed_probe_ms")]
        if now and before.get(b["name"])
    )
    if not ratios:
        return []
    middle = statistics.median(ratios)
    pace = "slower" if middle > 1 else "faster"
    return [
        f"   machine speed against {old.label}: the speed probe took {abs(middle - 1):.0%} "
        f"{'longer' if middle > 1 else 'less'} (median of {len(ratios)} benchmarks; {pace} machine, "
        f"per benchmark {ratios[0] - 1:+.0%} … {ratios[-1] - 1:+.0%})"
    ]


def _changes(group: str, before: Optional[Dict[str, Any]], bench: Dict[str, Any]) -> List[str]:
    old_t = metric(before, "median") if before else None
    new_t = metric(bench, "median")
    parts = [f"median {fmt_number(old_t)} → {fmt_number(new_t)} s{fmt_change(old_t, new_t)}"]
    for key in key_figures(group):
        old_v = metric(before, key) if before else None
        new_v = metric(bench, key)
        if old_v is not None or new_v is not None:
            parts.append(f"{key} {fmt_number(old_v)} → {fmt_number(new_v)}{fmt_change(old_v, new_v)}")
    moved = machine_moved(before, bench)
    if moved:
        parts.append(f"{moved}: the time changes above may be the machine's")
    paged = file_pages_moved(before, bench)
    if paged and any(key in RSS_ABSOLUTE for key in key_figures(group)):
        parts.append(f"{paged}: the RSS changes above include it")
    return parts


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
            for key in ("median",) + key_figures(group):
                values = [
                    f"{d}={fmt_number(metric(names[name][d], key)) if d in names[name] else 'not run'}" for d in devices
                ]
                lines.append(f"      {key}: " + "  ".join(values))
    return lines
