"""The vocabulary (bench_support.metrics) is the one source of figure names for the report.

A figure renamed there is printed, read and labelled under its new name by the
report's tables and plots, which therefore must not name figures themselves.
"""

from __future__ import annotations

import dataclasses

import pytest

from bench_support import metrics
from bench_support.report import plot_data, plots, tables
from bench_support.report.runs import Run

#: The benchmark groups of the suite (benchmarks/*.py ``pytest.mark.benchmark(group=...)``).
GROUPS = ("training", "dataloader", "pagecache", "checkpoint", "continual", "distributed")
#: The units the vocabulary may use, and the directions.
UNITS = {
    "s", "ms", "MB", "MB/s", "samples/s", "J", "mJ", "W", "fraction", "%", "IOPS",
    "count", "value", "text", "flag", "list", "record", "param", "MHz", "°C",
}  # fmt: skip
NOT_SCORES = {"text", "flag", "list", "record", "param"}  # units a figure with a direction cannot have
BETTER = {metrics.LOWER, metrics.HIGHER, None}


def _bench(name, group, extra, median=1.0):
    stats = {"min": median, "max": median, "mean": median, "median": median, "iqr": 0.0, "rounds": 3}
    stats["data"] = [median] * 3
    return {"name": name, "group": group, "params": {}, "stats": stats, "extra_info": dict(extra)}


def _run(number, benches, device="dev"):
    data = {"benchmarks": benches, "datetime": f"2026-11-22T00:00:{number:02d}", "edge_bench": {"profile": "quick"}}
    return Run(device, f"/r/{device}/m/{number:04d}_quick.json", number, data)


def _loader_runs(rate_name, scale=1.0, device="dev"):
    """Two runs of loader-only passes (w0, w2) and a training epoch, with the rate under ``rate_name``."""

    def benches(number):
        factor = scale * (1.0 if number == 1 else 1.2)
        out = []
        for workers in (0, 2):
            info = {"measure": "loader", "num_workers": workers, "prefetch_factor": 2 if workers else None}
            info[rate_name] = 100.0 * factor * (1 + workers)
            out.append(_bench(f"test_renamed_loader[w{workers}]", "dataloader", info))
        out.append(_bench("test_renamed_epoch[m]", "training", {rate_name: 10.0 * factor}))
        return out

    return _run(1, benches(1), device), _run(2, benches(2), device)


def _rename(monkeypatch, old, new):
    """The vocabulary with ``old`` renamed ``new`` (same fields, same place)."""
    assert old in metrics.METRICS
    table = {}
    for name, entry in metrics.METRICS.items():
        if name == old:
            name, entry = new, dataclasses.replace(entry, name=new)
        table[name] = entry
    monkeypatch.setattr(metrics, "METRICS", table)
    return table[new]


def test_a_renamed_key_figure_is_printed_read_and_labelled_under_its_new_name(monkeypatch):
    _rename(monkeypatch, "samples_per_s", "samples_per_sec")

    assert "| `samples_per_sec` | samples/s | training | higher |" in metrics.markdown_table()
    assert "`samples_per_s`" not in metrics.markdown_table()

    old, new = _loader_runs("samples_per_sec")
    by_run = tables.compare_runs(old, new)
    assert "      median 1 → 1 s (+0.0%); samples_per_sec 100 → 120 (+20.0%)" in by_run
    assert "      median 1 → 1 s (+0.0%); samples_per_sec 10 → 12 (+20.0%)" in by_run
    other, _ = _loader_runs("samples_per_sec", scale=0.5, device="board")
    by_device = tables.compare_devices({"dev": new, "board": other})
    assert "      samples_per_sec: board=50  dev=120" in by_device
    assert not any("samples_per_s " in line or "samples_per_s:" in line for line in by_run + by_device)

    rate, series = plots.loader_series({"dev": new, "board": other})
    assert rate.name == "samples_per_sec"
    assert series == {"board": [(0, 50.0), (2, 150.0)], "dev": [(0, 120.0), (2, 360.0)]}
    # the old name is no longer a figure the plots know: results still carrying it draw nothing
    assert plots.loader_series({"dev": _loader_runs("samples_per_s")[1]})[1] == {}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        plots.draw_loader_throughput({"dev": new}, ax)
        assert "samples_per_sec" in ax.get_ylabel()
        assert [list(line.get_ydata()) for line in ax.get_lines()] == [[120.0, 360.0]]
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "old, new, extra, collect, expected",
    [
        (
            "energy_j",
            "energy_joules",
            {"rounds_measured": 2},
            lambda latest: plots.energy_per_epoch(latest)[:2],
            {"dev": {"test_t[m]": 21.0}},
        ),
        (
            "energy_per_sample_mj",
            "energy_per_sample_millijoules",
            {},
            plots.samples_per_joule,
            {"dev": {"test_t[m]": 1000.0 / 42.0}},
        ),
        ("rss_peak_mb", "rss_peak_mib", {}, lambda latest: plots.rss_bars(latest)[::2], [42.0]),
    ],
)
def test_every_plotted_figure_follows_a_rename(monkeypatch, old, new, extra, collect, expected):
    entry = _rename(monkeypatch, old, new)
    bench = _bench("test_t[m]", "training", {new: 42.0, **extra})
    drawn, data = collect({"dev": _run(1, [bench])})
    assert drawn == entry and data == expected
    if "training" in entry.key_in:
        line = tables.compare_runs(_run(1, [bench]), _run(2, [bench]))[-1]
        assert f"; {new} 42 → 42 (+0.0%)" in line and f"{old} " not in line


def test_key_figures_of_every_group_are_in_the_vocabulary():
    groups = set(GROUPS) | {g for m in metrics.METRICS.values() for g in m.key_in}
    for group in sorted(groups):
        figures = metrics.key_figures(group)
        assert figures, f"group {group} has no key figures"
        for name in figures:
            assert name in metrics.METRICS, f"{group}: key figure {name} is not in METRICS"
    assert tables.key_figures("(no group)")[0] in metrics.METRICS


def test_what_the_plots_draw_is_in_the_vocabulary():
    data = plot_data
    for figure in (data.LOADER_RATE, data.TRAINING_ENERGY, data.ENERGY_PER_SAMPLE, data.TRAINING_RSS):
        assert figure.resolve().name in metrics.METRICS
    assert [p.name for p in data.checkpoint_phases()] == list(data.CHECKPOINT_PHASES)
    for name in (data.RSS_BASELINE, data.RSS_DELTA, data.RSS_TREE):
        assert metrics.METRICS[name].family == "memory" and metrics.METRICS[name].unit == "MB"


def test_a_plotted_checkpoint_phase_missing_from_the_vocabulary_is_an_error_not_an_empty_plot(monkeypatch):
    _rename(monkeypatch, "fsync_ms", "fsync_time_ms")
    with pytest.raises(LookupError, match="fsync_ms"):
        plots.checkpoint_stacks({})


def test_units_and_directions_are_from_the_allowed_sets():
    entries = list(metrics.METRICS.values()) + [entry for _, entry in metrics.PATTERNS]
    for entry in entries:
        assert entry.unit in UNITS, f"{entry.name}: unit {entry.unit!r}"
        assert entry.better in BETTER, f"{entry.name}: better {entry.better!r}"
        if entry.better is not None:
            assert entry.unit not in NOT_SCORES, f"{entry.name}: a {entry.unit} cannot be better or worse"
    for name, entry in metrics.METRICS.items():
        assert entry.name == name
