"""The speed probe: a fixed workload timed around each benchmark, and what the report makes of it."""

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gate import _noisy, _one

from bench_support.measure import speed
from bench_support.report.runs import MACHINE_BAND, machine_moved
from bench_support.report.tables import compare_history


@given(st.lists(st.floats(min_value=1e-4, max_value=1.0), min_size=2, max_size=40))
def test_the_summary_is_the_median_in_ms_and_the_relative_iqr(times):
    figures = speed.summarise(times)
    median = statistics.median(times)
    low, _, high = statistics.quantiles(times, n=4, method="inclusive")
    assert figures["speed_probe_ms"] == pytest.approx(median * 1000, abs=1e-3)
    assert figures["speed_probe_iqr"] == pytest.approx((high - low) / median, abs=1e-4)
    assert figures["speed_probe_iqr"] >= 0


def test_the_probe_times_the_same_work_every_time_and_skips_the_first_repetition():
    ticks = iter(range(100))
    times = speed.probe_times(reps=4, clock=lambda: next(ticks))
    assert times == [1, 1, 1, 1]  # one clock pair per repetition, five pairs, the first dropped


@pytest.mark.parametrize(
    "old, new, says",
    [
        (5.0, 6.0, "the machine ran 20% slower (speed probe 5 → 6 ms)"),
        (5.0, 4.0, "the machine ran 20% faster (speed probe 5 → 4 ms)"),
        (5.0, 5.0 * (1 + MACHINE_BAND) * 0.999, ""),
        (None, 6.0, ""),
        (5.0, None, ""),
    ],
)
def test_the_machine_moved_only_beyond_the_band(old, new, says):
    before = {"extra_info": {"speed_probe_ms": old}}
    assert machine_moved(before, {"extra_info": {"speed_probe_ms": new}}) == says


def test_the_comparison_table_names_a_slower_machine():
    first = _one(1, {"samples_per_s": 100.0, "speed_probe_ms": 5.0}, _noisy(2.0))
    second = _one(2, {"samples_per_s": 70.0, "speed_probe_ms": 7.0}, _noisy(2.8))
    text = "\n".join(compare_history([first, second]))
    assert "the machine ran 40% slower (speed probe 5 → 7 ms): the time changes above may be the machine's" in text


def test_the_comparison_names_the_run_wide_speed_change():
    first = _one(1, {"speed_probe_ms": 4.0}, _noisy(2.0))
    second = _one(2, {"speed_probe_ms": 5.0}, _noisy(2.0))
    text = "\n".join(compare_history([first, second]))
    assert "machine speed against 0001_quick: the speed probe took 25% longer (median of 1 benchmarks" in text
