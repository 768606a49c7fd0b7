"""The timeline: counters read per tick, bounded without losing the rates, drawn once per saved run."""

import json
import os
import time

from hypothesis import given
from hypothesis import strategies as st

from bench_support.measure import timeline as tl
from bench_support.measure.harness import Harness
from bench_support.measure.power import PowerWindow
from bench_support.report.runs import load_run_file
from bench_support.report.timelines import draw, file_name, write_timelines


def test_counters_come_from_stat_and_io(tmp_path):
    proc = tmp_path / "42"
    proc.mkdir()
    # comm with a space and a parenthesis, as a thread name can have; utime..cstime = 300 + 100 + 50 + 50 ticks.
    fields = ["S"] + ["0"] * 10 + ["300", "100", "50", "50"] + ["0"] * 30
    (proc / "stat").write_text("42 (py (worker) 1) " + " ".join(fields) + "\n")
    (proc / "io").write_text("rchar: 99\nwchar: 1\nread_bytes: 8192\nwrite_bytes: 0\n")
    cpu, read = tl.proc_counters(42, str(tmp_path))
    assert cpu == 500 / tl._TICK and read == 8192
    assert tl.proc_counters(43, str(tmp_path)) == (None, None)


ticks = st.lists(
    st.tuples(
        st.floats(0.01, 1.0),  # time step
        st.floats(0, 5000),  # RSS
        st.floats(0, 2.0),  # CPU seconds added
        st.integers(0, 10**8),  # bytes read added
        st.one_of(st.none(), st.integers(100, 3000)),
    ),
    min_size=1,
    max_size=300,
)


def _cumulate(steps):
    t = cpu = read = 0
    out = []
    for dt, rss, dcpu, dread, freq in steps:
        t, cpu, read = t + dt, cpu + dcpu, read + dread
        out.append((t, rss, cpu, read, freq))
    return out


@given(ticks, st.integers(2, 50))
def test_downsampling_keeps_the_peak_the_span_and_the_total_rate(steps, limit):
    series = _cumulate(steps)
    kept = tl.downsample(series, limit)
    assert len(kept) <= limit
    assert kept[-1][:1] + kept[-1][2:4] == series[-1][:1] + series[-1][2:4]  # the end is exact
    assert max(k[1] for k in kept) == max(s[1] for s in series)  # no peak is lost
    # A rate over kept points is the exact mean of the ticks between them.
    if len(kept) >= 2:
        (t0, _, c0, _, _), (t1, _, c1, _, _) = kept[0], kept[-1]
        first = [s[0] for s in series].index(t0)
        assert (c1 - c0) / (t1 - t0) == (series[-1][2] - series[first][2]) / (series[-1][0] - series[first][0])
    freqs = [s[4] for s in series if s[4] is not None]
    assert min((k[4] for k in kept if k[4] is not None), default=None) == (min(freqs) if freqs else None)


def test_rates_are_per_interval_and_never_negative():
    assert tl.rates([0.0, 0.5, 1.0], [1.0, 1.5, 1.25], 100.0) == [None, 100.0, 0.0]
    assert tl.rates([0.0, 1.0], [None, 3.0], 1.0) == [None, None]


class _Benchmark:
    enabled = True

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, target, setup=None, teardown=None, rounds=1, warmup_rounds=0, iterations=1):
        for _ in range(rounds):
            target()


def test_the_harness_saves_a_timeline_whose_rounds_and_ticks_fall_inside_the_window():
    rounds = []

    def work():
        started = time.monotonic()
        deadline = started + 0.35
        while time.monotonic() < deadline:  # busy, so the tree's CPU moves
            pass
        rounds.append((started, time.monotonic()))

    harness = Harness(_Benchmark(), lambda: PowerWindow(None, "no sensor in this test"))
    harness.run(work, 3)
    record = harness.extra_info["timeline"]
    spans = record["rounds_s"]
    assert len(spans) == 3
    for (start, end), (a, b) in zip(spans, rounds):
        assert 0 <= start <= end and abs((end - start) - (b - a)) < 0.01  # the round as the workload saw it
    assert spans == sorted(spans) and all(p[1] <= q[0] for p, q in zip(spans, spans[1:]))
    n = len(record["t_s"])
    assert n >= 1 and all(len(record[k]) == n for k in ("rss_tree_mb", "cpu_pct", "read_mb_s"))
    assert record["t_s"] == sorted(record["t_s"]) and record["t_s"][-1] <= spans[-1][1] + 1.0
    assert all(v > 0 for v in record["rss_tree_mb"])
    assert len(record["t_s"]) <= tl.MAX_POINTS


def _saved_run(tmp_path, device="dev", label="0001_quick", timeline=None, group="training"):
    timeline = timeline or {
        "t_s": [0.1, 0.2, 0.3],
        "rss_tree_mb": [900.0, 950.0, 940.0],
        "cpu_pct": [None, 180.0, 150.0],
        "read_mb_s": [None, 0.0, 12.5],
        "rounds_s": [[0.0, 0.15], [0.15, 0.3]],
    }
    bench = {"name": "test_training_epoch[m-b16]", "group": group, "extra_info": {"timeline": timeline}}
    folder = tmp_path / "results" / device / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.json"
    path.write_text(json.dumps({"benchmarks": [bench], "edge_bench": {"profile": "quick"}}))
    return path


def test_a_runs_timelines_are_drawn_once_into_its_own_folder(tmp_path):
    run, problem = load_run_file(str(_saved_run(tmp_path)))
    assert run is not None, problem
    out = tmp_path / "drawings"
    (path,) = write_timelines(run, str(out))
    assert os.path.basename(path) == file_name("test_training_epoch[m-b16]") and os.path.getsize(path) > 1000
    before = os.stat(path).st_mtime_ns
    assert write_timelines(run, str(out)) == [path]  # kept, not drawn again
    assert os.stat(path).st_mtime_ns == before
    assert not [p for p in os.listdir(out) if p.endswith(".part.png")]


def test_a_result_without_series_draws_nothing(tmp_path):
    empty = {"t_s": [0.1], "cpu_pct": [None], "rss_tree_mb": [], "rounds_s": []}
    assert draw({"extra_info": {"timeline": empty}}, "t", str(tmp_path / "x.png")) is False
    assert not (tmp_path / "x.png").exists()
