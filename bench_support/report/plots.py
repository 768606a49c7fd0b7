"""PNG plots of the devices' latest runs: one file per question, drawn from :mod:`bench_support.report.plot_data`."""

from __future__ import annotations

import os
import statistics
import textwrap
from typing import Dict, List, Optional, Sequence

from bench_support.report.plot_data import (  # noqa: F401 - the data functions are part of the plots' API
    RSS_AT_START,
    RSS_BASELINE,
    RSS_DELTA,
    RSS_TREE,
    Bars,
    Figure,
    axis_label,
    checkpoint_stacks,
    continual_configs,
    curve_bend,
    energy_per_epoch,
    epoch_times,
    latest_with,
    loader_series,
    mode_tradeoff,
    read_bars,
    residency_curves,
    rss_bars,
    rss_parts,
    samples_per_joule,
    short_name,
)
from bench_support.report.runs import Run

# --- drawing ------------------------------------------------------------------------------


def draw_loader_throughput(latest: Dict[str, Run], ax) -> bool:
    rate, series = loader_series(latest)
    if not series:
        return False
    for device, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=device)
    ax.set_xticks(sorted({p[0] for points in series.values() for p in points}))
    _finish(ax, "DataLoader throughput (loader only, prefetch 2)", "num_workers", axis_label(rate), series)
    return True


def draw_read_times(latest: Dict[str, Run], ax) -> bool:
    bars = read_bars(latest)
    if not bars:
        return False
    _grouped_bars(ax, bars, ("cold", "warm"))
    _finish(ax, "Reading the training files: cold vs warm page cache", "device / data root", "read time (ms)", bars)
    return True


def draw_residency_curve(latest: Dict[str, Run], ax) -> bool:
    curves = residency_curves(latest)
    if not curves:
        return False
    for label, points in curves.items():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        (line,) = ax.plot(xs, ys, marker="o", label=label)
        bend = curve_bend(points)
        if bend is not None:
            ax.axvline(bend[0], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(bottom=0)
    _finish(
        ax, "Reading the training files against page-cache residency (dotted: the bend)",
        "measured resident fraction before the round", "read time (ms)", curves,
    )  # fmt: skip
    return True


def draw_mode_tradeoff(latest: Dict[str, Run], ax) -> bool:
    curves = mode_tradeoff(latest)
    if not curves:
        return False
    for label, points in curves.items():
        (line,) = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        for x, y, mode in points:
            ax.annotate(mode, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color=line.get_color())
    ax.set_xlim(0, 1.15 * max(p[0] for points in curves.values() for p in points))  # room for the labels
    ax.set_ylim(bottom=0)
    _finish(ax, "Time against energy per epoch, per power mode", "epoch time (s)", "energy per epoch (J)", curves)
    return True


def draw_checkpoint_phases(latest: Dict[str, Run], ax) -> bool:
    phases, stacks = checkpoint_stacks(latest)
    if not stacks:
        return False
    bottom = [0.0] * len(stacks)
    for phase in phases:
        values = [stacks[k][phase.name] for k in stacks]
        ax.bar(list(stacks), values, bottom=bottom, label=short_name(phase))
        bottom = [b + v for b, v in zip(bottom, values)]
    unit = "/".join(sorted({p.unit for p in phases}))
    title = "Durable checkpoint write, phase by phase (largest payload)"
    _finish(ax, title, "device / target", f"time ({unit})", stacks)
    return True


def draw_energy(latest: Dict[str, Run], ax1, ax2) -> bool:
    energy, per_epoch, reasons = energy_per_epoch(latest)
    per_sample, per_joule = samples_per_joule(latest)
    if not per_epoch and not per_joule:
        return False  # nothing measured: the report's findings say why, an empty plot would say nothing
    for device, values in per_epoch.items():
        ax1.bar([f"{device}\n{n}" for n in values], list(values.values()))
    for device, values in per_joule.items():
        ax2.bar([f"{device}\n{n}" for n in values], list(values.values()))
    ylabel1, ylabel2 = axis_label(energy, " per epoch"), f"samples per J (from {per_sample.name})"
    _finish(ax1, "Energy per training epoch", "device / benchmark", ylabel1, per_epoch, reasons)
    _finish(ax2, "Training samples per joule", "device / benchmark", ylabel2, per_epoch, reasons)
    return True


def draw_rss(latest: Dict[str, Run], ax) -> bool:
    parts = rss_parts(latest)
    if not parts:
        return False
    left = [0.0] * len(parts)
    labels = {
        RSS_AT_START: "at the run's start: Python, torch imported",
        RSS_BASELINE: "before the rounds: model, optimiser, data, allocator",
        RSS_DELTA: "added by the rounds",
        RSS_TREE: "DataLoader workers' private pages",
    }
    colours = {RSS_AT_START: "lightgray", RSS_BASELINE: "C7", RSS_DELTA: "C0", RSS_TREE: "C1"}
    for key, label in labels.items():
        values = [parts[c][key] for c in parts]
        if any(values):
            ax.barh(list(parts), values, left=left, color=colours[key], label=label)
        left = [a + v for a, v in zip(left, values)]
    for y, (config, total) in enumerate(zip(parts, left)):
        ax.text(total, y, f" rounds +{parts[config][RSS_DELTA]:.0f} MB", va="center", fontsize=7)
    ax.set_xlim(0, max(left) * 1.15)
    ax.set_title("Peak memory of each training configuration: what the training adds", fontsize=10)
    ax.set_xlabel("MB (2^20 bytes)")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    return True


def draw_epoch_times(latest: Dict[str, Run], ax) -> bool:
    rounds = epoch_times(latest)
    if not rounds:
        return False
    for y, seconds in enumerate(rounds.values()):
        ax.plot(seconds, [y] * len(seconds), "o", color="C0", alpha=0.6, markersize=5)
        middle = statistics.median(seconds)
        ax.plot([middle, middle], [y - 0.3, y + 0.3], color="black", linewidth=2)
    ax.set_yticks(range(len(rounds)))
    ax.set_yticklabels(list(rounds), fontsize=7)
    ax.set_xlim(left=0)
    ax.set_title("Every measured training epoch (dots), and the median (bar)", fontsize=10)
    ax.set_xlabel("epoch time (s)")
    return True


def draw_continual(latest: Dict[str, Run], ax1, ax2) -> bool:
    """Held-out accuracy after fine-tuning (with its Wilson interval) against the model as it came, and the
    fine-tune worker's peak memory against the budget."""
    from bench_support.intervals import proportion_interval

    configs = continual_configs(latest)
    if not configs:
        return False
    labels = list(configs)
    ys = range(len(labels))
    accs = [configs[k]["final_acc"] for k in labels]
    lows, highs = [], []
    for k, acc in zip(labels, accs):
        n = configs[k].get("held_out_photos")
        found = proportion_interval(round(acc * n), n) if isinstance(n, int) and n > 0 else None
        lows.append(acc - found[0] if found else 0.0)
        highs.append(found[1] - acc if found else 0.0)
    ax1.barh(list(ys), accs, xerr=[lows, highs], color="C2", capsize=3, label="after fine-tuning (95 % interval)")
    before = [configs[k].get("pretrained_acc") for k in labels]
    ax1.plot([b if b is not None else float("nan") for b in before], list(ys), "k|", markersize=14,
             label="the model as it came")  # fmt: skip
    ax1.set_yticks(list(ys))
    ax1.set_yticklabels(labels, fontsize=7)
    ax1.set_xlim(0, 1.05)
    ax1.set_title("Held-out accuracy of the fine-tuned model", fontsize=10)
    ax1.set_xlabel("accuracy on the held-out photos")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    peaks = [configs[k].get("mem_peak_abs_mb") or 0.0 for k in labels]
    imports = [min(configs[k].get("mem_import_mb") or 0.0, p) for k, p in zip(labels, peaks)]
    ax2.barh(list(ys), imports, color="lightgray", label="imports (torch, the model's code)")
    ax2.barh(list(ys), [p - i for p, i in zip(peaks, imports)], left=imports, color="C0", label="the rest, at peak")
    budgets = {configs[k].get("rss_budget_mb") for k in labels} - {None}
    for budget in budgets:
        ax2.axvline(budget, color="C3", linestyle="--", label=f"budget {budget:g} MB")
    ax2.set_yticks(list(ys))
    ax2.set_yticklabels([])
    ax2.set_title("Peak memory of the fine-tune worker", fontsize=10)
    ax2.set_xlabel("MB (2^20 bytes)")
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    return True


#: (file, figure size, columns of axes, drawing function -> drew anything, the group it draws), in order.
PLOTS = (
    ("loader_throughput_vs_workers.png", (7, 4.5), 1, draw_loader_throughput, "dataloader"),
    ("pagecache_cold_vs_warm.png", (7, 4.5), 1, draw_read_times, "pagecache"),
    ("pagecache_residency_curve.png", (7, 4.5), 1, draw_residency_curve, "pagecache"),
    ("checkpoint_phases.png", (7, 4.5), 1, draw_checkpoint_phases, "checkpoint"),
    ("energy_per_epoch.png", (10, 4.5), 2, draw_energy, "training"),
    ("rss_peak_per_config.png", (8, 5), 1, draw_rss, "training"),
    ("training_epoch_times.png", (8, 4.5), 1, draw_epoch_times, "training"),
    ("power_modes_time_vs_energy.png", (8, 5), 1, draw_mode_tradeoff, "training"),
    ("continual_accuracy_and_memory.png", (11, 5), 2, draw_continual, "continual"),
)


def write_plots(latest: Dict[str, Run], directory: str, history: Optional[Dict[str, List[Run]]] = None) -> List[str]:
    """PNG plots of the devices' runs; returns the files written.

    A plot with nothing to draw (no power sensor: no energy plot) is not written, and an older
    copy of it is removed, so the folder never shows an earlier run's picture as this one's.
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
        path = os.path.join(directory, name)
        if not draw(runs, *(axes if columns > 1 else [axes])):
            plt.close(fig)
            if os.path.exists(path):
                os.unlink(path)
            continue
        sources = ", ".join(f"{dev} {run.label} ({run.profile or '?'} profile)" for dev, run in sorted(runs.items()))
        fig.text(0.01, 0.005, "from " + (sources or "no run"), fontsize=6, color="dimgray", va="bottom")
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
