"""One PNG per training result: its measured rounds as time series (the ``timeline`` record).

Stacked panels on one time axis — process-tree CPU, RSS, storage reads, and power and
the CPU clock where the run measured them — with each measured round shaded, so a stall,
a swap storm or a throttled clock shows where it happened. Drawn once per saved run into
that run's own folder (``results.run_drawings_dir``): a later run never replaces them.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_support.report.runs import Run

#: (timeline key, axis label) of the panels, top to bottom; a panel with no value is left out.
PANELS: Tuple[Tuple[str, str], ...] = (
    ("cpu_pct", "CPU (%)"),
    ("rss_tree_mb", "RSS (MB)"),
    ("read_mb_s", "reads (MB/s)"),
    ("power_w", "power (W)"),
    ("cpu_freq_mhz", "clock (MHz)"),
)
GROUPS = ("training",)


def file_name(benchmark_name: str) -> str:
    return "timeline_" + re.sub(r"[^A-Za-z0-9._-]+", "_", benchmark_name).strip("_") + ".png"


def panels(timeline: Dict[str, Any]) -> List[Tuple[str, str, Sequence[float], Sequence[Optional[float]]]]:
    """(key, label, times, values) of each panel that has at least one value."""
    out = []
    for key, label in PANELS:
        values = timeline.get(key) or []
        times = timeline.get("power_t_s" if key == "power_w" else "t_s") or []
        if len(values) == len(times) and any(v is not None for v in values):
            out.append((key, label, times, values))
    return out


def draw(bench: Dict[str, Any], title: str, path: str) -> bool:
    """The timeline of one result into ``path``; False when it has none worth drawing."""
    timeline = (bench.get("extra_info") or {}).get("timeline") or {}
    rows = panels(timeline)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.7 * len(rows) + 0.8), sharex=True, squeeze=False)
    for ax, (_, label, times, values) in zip(axes[:, 0], rows):
        points = [(t, v) for t, v in zip(times, values) if v is not None]
        ax.plot([t for t, _ in points], [v for _, v in points], linewidth=1.2)
        for i, (start, end) in enumerate(timeline.get("rounds_s") or []):
            ax.axvspan(start, end, color="tab:green" if i % 2 else "tab:olive", alpha=0.12, linewidth=0)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("time since the measured rounds began (s); shaded: one measured round each")
    fig.suptitle(f"{title}\nprocess and workers: CPU (100 % = one core), RSS and storage reads", fontsize=9)
    fig.tight_layout()
    tmp = path + ".part.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)  # whole or not at all: a crash never leaves half a PNG under the final name
    return True


def write_timelines(run: Run, directory: str) -> List[str]:
    """The timelines of a run's training results, drawn once: files already there are kept."""
    written = []
    for bench in run.benchmarks():
        if bench.get("group") not in GROUPS:
            continue
        path = os.path.join(directory, file_name(bench["name"]))
        if os.path.exists(path):
            written.append(path)
            continue
        os.makedirs(directory, exist_ok=True)
        if draw(bench, f"{run.device} {run.label}: {bench['name']}", path):
            written.append(path)
    return written
