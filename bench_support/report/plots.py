"""PNG plots of the devices' latest runs.

Benchmarks are chosen by their group and their extra_info facts (``measure``,
``reader``, ``write_mode``, ``existing``), never by test name, so a renamed benchmark
keeps its plot. The figures drawn, their axis labels and units are looked up in the
vocabulary (``bench_support.metrics``) when a plot is drawn: a plot names the entry it
draws by what it is (the key figure of a group in a unit), so a figure renamed there is
read and labelled by its new name here.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from bench_support import metrics
from bench_support.metrics import Metric
from bench_support.report.runs import Run, metric

Bench = Dict[str, Any]
Bars = Dict[str, Dict[str, float]]


@dataclass(frozen=True)
class Figure:
    """A vocabulary entry chosen by what it is: the key figure of ``group`` in ``unit``,
    or, with ``family`` instead of ``group``, the figure of that family in ``unit``."""

    unit: str
    group: Optional[str] = None
    family: Optional[str] = None

    def resolve(self) -> Metric:
        if self.group is not None:
            entries = [metrics.get(name) for name in metrics.key_figures(self.group)]
        else:
            entries = [m for m in metrics.METRICS.values() if m.family == self.family]
        found = [m for m in entries if m is not None and m.unit == self.unit]
        if len(found) != 1:
            raise LookupError(f"the plots need one vocabulary entry for {self}, found {[m.name for m in found]}")
        return found[0]


#: What the plots draw, resolved in the vocabulary each time a plot is drawn.
LOADER_RATE = Figure("samples/s", group="dataloader")
TRAINING_ENERGY = Figure("J", group="training")
ENERGY_PER_SAMPLE = Figure("mJ", family="training")
TRAINING_RSS = Figure("MB", group="training")
#: The phases of a checkpoint write, in the order they happen; the vocabulary has no
#: attribute telling a phase from the total, so they are named (and checked) here.
CHECKPOINT_PHASES = ("write_ms", "fsync_ms", "rename_ms", "dirsync_ms")


def checkpoint_phases() -> List[Metric]:
    entries = []
    for name in CHECKPOINT_PHASES:
        entry = metrics.METRICS.get(name)  # not metrics.get: any *_ms name matches a pattern there
        if entry is None:
            raise LookupError(f"the plots draw the checkpoint phase {name}, which the vocabulary does not have")
        entries.append(entry)
    return entries


def axis_label(entry: Metric, what: str = "") -> str:
    return f"{entry.name}{what} ({entry.unit})"


def short_name(entry: Metric) -> str:
    """The name without its unit suffix (``write_ms`` -> ``write``)."""
    suffix = f"_{entry.unit}"
    return entry.name[: -len(suffix)] if entry.name.endswith(suffix) else entry.name


def benches(latest: Dict[str, Run], group: str, **facts: Any) -> Iterator[Tuple[str, Bench]]:
    """(device, benchmark) of the latest runs in ``group`` whose extra_info has ``facts``."""
    for device, run in sorted(latest.items()):
        for bench in run.benchmarks():
            info = bench.get("extra_info") or {}
            if bench.get("group") == group and all(info.get(k) == v for k, v in facts.items()):
                yield device, bench


# --- what each plot draws -----------------------------------------------------------------


def loader_series(latest: Dict[str, Run]) -> Tuple[Metric, Dict[str, List[Tuple[int, float]]]]:
    """Loader-only throughput against num_workers, per device (prefetch 2, no pinning, respawned workers)."""
    rate = LOADER_RATE.resolve()
    series: Dict[str, List[Tuple[int, float]]] = {}
    for device, bench in benches(latest, "dataloader", measure="loader"):
        info = bench.get("extra_info") or {}
        if info.get(rate.name) and not info.get("persistent_workers") and not info.get("pin_memory"):
            if info.get("prefetch_factor") in (None, 2):
                series.setdefault(device, []).append((info["num_workers"], info[rate.name]))
    for points in series.values():
        points.sort()
    return rate, series


def read_bars(latest: Dict[str, Run]) -> Bars:
    """Median time (ms) of the raw reads, cold and warm, per device and data root."""
    bars: Bars = {}
    for device, bench in benches(latest, "pagecache", reader="raw"):
        info = bench.get("extra_info") or {}
        median = metric(bench, "median")
        if median is not None:
            key = f"{device}\n{info.get('data_root')} ({info.get('fs_type')})"
            bars.setdefault(key, {})[info.get("cache_state")] = median * 1000
    return bars


def checkpoint_stacks(latest: Dict[str, Run]) -> Tuple[List[Metric], Bars]:
    """Phases of the durable overwrite of the largest payload, per device and target."""
    phases = checkpoint_phases()
    chosen: Dict[str, Tuple[float, Dict[str, Any]]] = {}
    for device, bench in benches(latest, "checkpoint", write_mode="durable", existing="overwrite"):
        info = bench.get("extra_info") or {}
        key = f"{device}\n{info.get('target')} ({info.get('fs_type')})"
        if info.get("ckpt_mb", 0) >= chosen.get(key, (0, None))[0]:
            chosen[key] = (info.get("ckpt_mb", 0), info)
    stacks = {key: {p.name: info.get(p.name) or 0.0 for p in phases} for key, (_, info) in chosen.items()}
    return phases, stacks


def energy_per_epoch(latest: Dict[str, Run]) -> Tuple[Metric, Bars, Set[str]]:
    """Energy per measured epoch per device and training benchmark, and why it is missing where it is."""
    energy = TRAINING_ENERGY.resolve()
    unavailable = f"{energy.family}_unavailable"
    bars: Bars = {}
    reasons: Set[str] = set()
    for device, bench in benches(latest, "training"):
        info = bench.get("extra_info") or {}
        if info.get(energy.name) is not None and info.get("rounds_measured"):
            bars.setdefault(device, {})[bench["name"]] = info[energy.name] / info["rounds_measured"]
        elif info.get(unavailable):
            reasons.add(info[unavailable])
    return energy, bars, reasons


def samples_per_joule(latest: Dict[str, Run]) -> Tuple[Metric, Bars]:
    """Training samples per joule per device and benchmark, from the energy per sample (mJ)."""
    per_sample = ENERGY_PER_SAMPLE.resolve()
    bars: Bars = {}
    for device, bench in benches(latest, "training"):
        info = bench.get("extra_info") or {}
        if info.get(per_sample.name):
            bars.setdefault(device, {})[bench["name"]] = 1000.0 / info[per_sample.name]
    return per_sample, bars


def rss_bars(latest: Dict[str, Run]) -> Tuple[Metric, List[str], List[float]]:
    """Peak RSS per device and training configuration (the benchmark's parameter id)."""
    rss = TRAINING_RSS.resolve()
    labels, values = [], []
    for device, bench in benches(latest, "training"):
        value = metric(bench, rss.name)
        if value is not None:
            labels.append(f"{device}: {bench['name'].split('[', 1)[-1].rstrip(']')}")
            values.append(value)
    return rss, labels, values


# --- drawing ------------------------------------------------------------------------------


def draw_loader_throughput(latest: Dict[str, Run], ax) -> None:
    rate, series = loader_series(latest)
    for device, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=device)
    ax.set_xticks(sorted({p[0] for points in series.values() for p in points}))
    _finish(ax, "DataLoader throughput (loader only, prefetch 2)", "num_workers", axis_label(rate), series)


def draw_read_times(latest: Dict[str, Run], ax) -> None:
    bars = read_bars(latest)
    _grouped_bars(ax, bars, ("cold", "warm"))
    _finish(ax, "Reading the training files: cold vs warm page cache", "device / data root", "read time (ms)", bars)


def draw_checkpoint_phases(latest: Dict[str, Run], ax) -> None:
    phases, stacks = checkpoint_stacks(latest)
    bottom = [0.0] * len(stacks)
    for phase in phases:
        values = [stacks[k][phase.name] for k in stacks]
        ax.bar(list(stacks), values, bottom=bottom, label=short_name(phase))
        bottom = [b + v for b, v in zip(bottom, values)]
    unit = "/".join(sorted({p.unit for p in phases}))
    title = "Durable checkpoint write, phase by phase (largest payload)"
    _finish(ax, title, "device / target", f"time ({unit})", stacks)


def draw_energy(latest: Dict[str, Run], ax1, ax2) -> None:
    energy, per_epoch, reasons = energy_per_epoch(latest)
    per_sample, per_joule = samples_per_joule(latest)
    for device, values in per_epoch.items():
        ax1.bar([f"{device}\n{n}" for n in values], list(values.values()))
    for device, values in per_joule.items():
        ax2.bar([f"{device}\n{n}" for n in values], list(values.values()))
    ylabel1, ylabel2 = axis_label(energy, " per epoch"), f"samples per J (from {per_sample.name})"
    _finish(ax1, "Energy per training epoch", "device / benchmark", ylabel1, per_epoch, reasons)
    _finish(ax2, "Training samples per joule", "device / benchmark", ylabel2, per_epoch, reasons)


def draw_rss(latest: Dict[str, Run], ax) -> None:
    rss, labels, values = rss_bars(latest)
    ax.barh(labels, values)
    ax.set_title("Peak RSS of each training configuration")
    ax.set_xlabel(f"{rss.name} ({rss.unit}; MB = 2^20 bytes)")
    ax.set_ylabel("device: model-batch-optimizer-device-size")
    if not values:
        ax.text(0.5, 0.5, "no training results", ha="center", va="center", transform=ax.transAxes)


#: (file, figure size, columns of axes, drawing function, the benchmark group it draws), in the order written.
PLOTS = (
    ("loader_throughput_vs_workers.png", (7, 4.5), 1, draw_loader_throughput, "dataloader"),
    ("pagecache_cold_vs_warm.png", (7, 4.5), 1, draw_read_times, "pagecache"),
    ("checkpoint_phases.png", (7, 4.5), 1, draw_checkpoint_phases, "checkpoint"),
    ("energy_per_epoch.png", (10, 4.5), 2, draw_energy, "training"),
    ("rss_peak_per_config.png", (8, 5), 1, draw_rss, "training"),
)


def latest_with(history: Dict[str, List[Run]], group: str) -> Dict[str, Run]:
    """Per device, the newest run that has results of ``group``: a later partial run (``-k dataloader``)
    does not empty the other plots, which keep drawing the run that measured them."""
    chosen = {}
    for device, runs in history.items():
        for run in reversed(runs):
            if any(bench.get("group") == group for bench in run.benchmarks()):
                chosen[device] = run
                break
    return chosen


def write_plots(latest: Dict[str, Run], directory: str, history: Optional[Dict[str, List[Run]]] = None) -> List[str]:
    """PNG plots of the devices' runs; returns the files written.

    With ``history`` (every run per device, oldest first) each plot draws, per device, the newest run
    that measured its group, and says which run that is; without it, the runs in ``latest``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    for name, size, columns, draw, group in PLOTS:
        runs = latest_with(history, group) if history is not None else latest
        fig, axes = plt.subplots(1, columns, figsize=size)
        draw(runs, *(axes if columns > 1 else [axes]))
        sources = ", ".join(f"{dev} {run.label} ({run.profile or '?'} profile)" for dev, run in sorted(runs.items()))
        fig.text(0.01, 0.005, "from " + (sources or "no run"), fontsize=6, color="dimgray", va="bottom")
        path = os.path.join(directory, name)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _grouped_bars(ax, bars: Bars, kinds: Sequence[str]) -> None:
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
