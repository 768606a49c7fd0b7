"""What each plot draws, collected from saved runs (the drawing is :mod:`bench_support.report.plots`).

Benchmarks are chosen by their group and their extra_info facts (``measure``,
``reader``, ``write_mode``, ``existing``), never by test name, so a renamed benchmark
keeps its plot. The figures drawn, their axis labels and units are looked up in the
vocabulary (``bench_support.metrics``) when a plot is drawn: a plot names the entry it
draws by what it is (the key figure of a group in a unit), so a figure renamed there is
read and labelled by its new name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from bench_support import metrics
from bench_support.metrics import Metric
from bench_support.report.runs import Run, metric, rounds_of

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
#: The parts of a peak, as the memory family names them (checked against the vocabulary by the tests).
RSS_BASELINE, RSS_DELTA, RSS_TREE = "rss_baseline_mb", "rss_delta_mb", "rss_tree_peak_mb"
#: The run's RSS when the suite started (saved in the run's ``edge_bench`` block, not per result).
RSS_AT_START = "rss_at_start_mb"
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


def flagged(bench: Bench) -> bool:
    """The result is flagged (imprecise or invalid) by the validity saved with it."""
    v = (bench.get("extra_info") or {}).get("validity")
    return isinstance(v, dict) and bool(v.get("noisy") or v.get("invalid"))


def _marked(series: Dict[str, Any], flagged_count: Dict[str, int]) -> Dict[str, Any]:
    """Labels that carry how many of their points are flagged results: a plot marks what the tables flag."""
    return {(f"{k} ({flagged_count[k]} flagged)" if flagged_count.get(k) else k): v for k, v in series.items()}


def loader_series(latest: Dict[str, Run]) -> Tuple[Metric, Dict[str, List[Tuple[int, float]]]]:
    """Loader-only throughput against num_workers, per device and image size (prefetch 2, no pinning, respawned)."""
    rate = LOADER_RATE.resolve()
    series: Dict[str, List[Tuple[int, float]]] = {}
    marks: Dict[str, int] = {}
    for device, bench in benches(latest, "dataloader", measure="loader"):
        info = bench.get("extra_info") or {}
        if info.get(rate.name) and not info.get("persistent_workers") and not info.get("pin_memory"):
            if info.get("prefetch_factor") in (None, 2):
                key = " ".join(
                    [device]
                    + ([f"{info['image_size']} px"] if "image_size" in info else [])
                    + ([info["power_mode"]] if info.get("power_mode") else [])
                )
                series.setdefault(key, []).append((info["num_workers"], info[rate.name]))
                marks[key] = marks.get(key, 0) + flagged(bench)
    for points in series.values():
        points.sort()
    return rate, _marked(series, marks)


def read_bars(latest: Dict[str, Run]) -> Bars:
    """Median time (ms) of the raw reads, cold and warm, per device and data root."""
    bars: Bars = {}
    marks: Dict[str, int] = {}
    for device, bench in benches(latest, "pagecache", reader="raw"):
        info = bench.get("extra_info") or {}
        median = metric(bench, "median")
        if median is not None:
            key = f"{device}\n{info.get('data_root')} ({info.get('fs_type')})"
            bars.setdefault(key, {})[info.get("cache_state")] = median * 1000
            marks[key] = marks.get(key, 0) + (flagged(bench) and info.get("cache_state") in ("cold", "warm"))
    return _marked(bars, marks)


def residency_curves(latest: Dict[str, Run]) -> Dict[str, List[Tuple[float, float]]]:
    """(measured resident fraction before the rounds, median read ms) of the raw reads, per device and data root.

    The x value is the measured residency (``resident_frac_before``), never the target.
    """
    curves: Dict[str, List[Tuple[float, float]]] = {}
    for device, bench in benches(latest, "pagecache", reader="raw"):
        info = bench.get("extra_info") or {}
        median = metric(bench, "median")
        if median is not None and info.get("resident_frac_before") is not None:
            size = f" {info['image_size']} px" if "image_size" in info else ""
            key = f"{device} {info.get('data_root')} ({info.get('fs_type')}){size}"
            curves.setdefault(key, []).append((info["resident_frac_before"], median * 1000))
    for points in curves.values():
        points.sort()
    return {key: points for key, points in curves.items() if len(points) >= 3}


def curve_bend(points: List[Tuple[float, float]]) -> Optional[Tuple[float, float, float]]:
    """Where a curve bends: the interior point whose slope changes most, with the slopes before and after.

    ``points`` sorted by x; slopes in y per unit x. None with fewer than 3 distinct x.
    """
    distinct = [p for i, p in enumerate(points) if i == 0 or p[0] > points[i - 1][0]]
    if len(distinct) < 3:
        return None
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(distinct, distinct[1:])]
    i = max(range(len(slopes) - 1), key=lambda k: abs(slopes[k + 1] - slopes[k]))
    return distinct[i + 1][0], slopes[i], slopes[i + 1]


def mode_tradeoff(latest: Dict[str, Run]) -> Dict[str, List[Tuple[float, float, str]]]:
    """(median epoch s, energy per epoch J, power mode) of each training configuration run under several modes."""
    points: Dict[str, List[Tuple[float, float, str]]] = {}
    for device, bench in benches(latest, "training"):
        info = bench.get("extra_info") or {}
        median, energy, rounds = metric(bench, "median"), info.get("energy_j"), info.get("rounds_measured")
        if info.get("power_mode") and median is not None and energy is not None and rounds:
            config = bench["name"].replace(f"-pm-{info['power_mode']}", "")
            points.setdefault(f"{device} {config}", []).append((median, energy / rounds, info["power_mode"]))
    return {key: sorted(found) for key, found in points.items() if len(found) >= 2}


def checkpoint_stacks(latest: Dict[str, Run]) -> Tuple[List[Metric], Bars]:
    """Phases of the durable overwrite of the largest payload, per device and target."""
    phases = checkpoint_phases()
    chosen: Dict[str, Tuple[float, Dict[str, Any]]] = {}
    marks: Dict[str, int] = {}
    for device, bench in benches(latest, "checkpoint", write_mode="durable", existing="overwrite"):
        info = bench.get("extra_info") or {}
        key = f"{device}\n{info.get('target')} ({info.get('fs_type')})"
        if info.get("ckpt_mb", 0) >= chosen.get(key, (0, None))[0]:
            chosen[key] = (info.get("ckpt_mb", 0), info)
            marks[key] = int(flagged(bench))
    stacks = {key: {p.name: info.get(p.name) or 0.0 for p in phases} for key, (_, info) in chosen.items()}
    return phases, _marked(stacks, marks)


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


def _config(device: str, bench: Bench, devices: int) -> str:
    """A training configuration's label: its parameter id, after the device when there are several."""
    config = bench["name"].split("[", 1)[-1].rstrip("]")
    return f"{device}: {config}" if devices > 1 else config


def rss_bars(latest: Dict[str, Run]) -> Tuple[Metric, List[str], List[float]]:
    """Peak RSS per device and training configuration (the benchmark's parameter id)."""
    rss = TRAINING_RSS.resolve()
    labels, values = [], []
    for device, bench in benches(latest, "training"):
        value = metric(bench, rss.name)
        if value is not None:
            labels.append(_config(device, bench, len(latest)))
            values.append(value)
    return rss, labels, values


def rss_parts(latest: Dict[str, Run]) -> Dict[str, Dict[str, float]]:
    """Per training configuration, its peak in parts: the run's start (Python and the libraries
    imported, ``RSS_AT_START``), what was resident beyond that before the rounds (model, optimiser,
    data, what earlier benchmarks left to the allocator), what the rounds added, and the DataLoader
    workers' private pages on top. Runs saved without the start figure draw no start part."""
    parts: Dict[str, Dict[str, float]] = {}
    rss = TRAINING_RSS.resolve().name
    for device, bench in benches(latest, "training"):
        base, delta = metric(bench, RSS_BASELINE), metric(bench, RSS_DELTA)
        peak, tree = metric(bench, rss), metric(bench, RSS_TREE)
        if base is None or delta is None:
            continue
        start = (latest[device].data.get("edge_bench") or {}).get(RSS_AT_START)
        start = min(start, base) if isinstance(start, (int, float)) else 0.0
        workers = max(0.0, tree - peak) if tree is not None and peak is not None else 0.0
        parts[_config(device, bench, len(latest))] = {
            RSS_AT_START: start, RSS_BASELINE: base - start, RSS_DELTA: delta, RSS_TREE: workers
        }  # fmt: skip
    return parts


def epoch_times(latest: Dict[str, Run]) -> Dict[str, List[float]]:
    """Per training configuration, the measured rounds (one epoch each), in seconds, as saved."""
    return {
        _config(device, bench, len(latest)) + (" (flagged)" if flagged(bench) else ""): rounds_of(bench)
        for device, bench in benches(latest, "training")
        if rounds_of(bench)
    }


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


def continual_configs(latest: Dict[str, Run]) -> Dict[str, Dict[str, Any]]:
    """Per device and fine-tune configuration, the continual scenario's figures (``edge_bench.continual``), with
    the held-out photo count the accuracy is over."""
    out: Dict[str, Dict[str, Any]] = {}
    for device, run in latest.items():
        block = (run.data.get("edge_bench") or {}).get("continual") or {}
        photos = block.get("photos") if isinstance(block.get("photos"), dict) else {}
        for config in block.get("configs") or []:
            if isinstance(config, dict) and isinstance(config.get("final_acc"), (int, float)):
                label = f"{device}: {config.get('config')}" if len(latest) > 1 else str(config.get("config"))
                out[label] = {**config, "held_out_photos": photos.get("held_out_photos")}
    return out
