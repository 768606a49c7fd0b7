"""Stall accounting: properties of the fetch/compute split of an epoch."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.measure.stall import seed_stall_s, split_epoch

durations = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)


def _timeline(start, gaps):
    """Cumulative timestamps: start, then each gap added in turn."""
    marks, t = [], start
    for gap in gaps:
        t += gap
        marks.append(t)
    return marks


@given(
    start=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    steps=st.lists(st.tuples(durations, durations), max_size=50),
    tail=durations,
)
def test_fetch_plus_compute_is_the_epoch(start, steps, tail):
    gaps = [g for pair in steps for g in pair] + [tail]
    marks = _timeline(start, gaps)
    ready, done, end = marks[0:-1:2], marks[1:-1:2], marks[-1]
    split = split_epoch(start, ready, done, end)
    assert split.steps == len(steps)
    assert split.fetch_stall_s >= 0 and split.compute_s >= 0
    assert math.isclose(split.fetch_stall_s + split.compute_s, split.epoch_s, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(split.fetch_stall_s, sum(f for f, _ in steps) + tail, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(split.compute_s, sum(c for _, c in steps), rel_tol=1e-9, abs_tol=1e-6)
    assert 0.0 <= split.stall_frac <= 1.0 + 1e-12
    if steps:
        assert math.isclose(split.first_batch_s, steps[0][0], rel_tol=1e-9, abs_tol=1e-6)


@given(st.lists(st.tuples(durations, durations), min_size=1, max_size=20), st.data())
def test_out_of_order_timestamps_are_rejected(steps, data):
    gaps = [g for pair in steps for g in pair] + [0.0]
    marks = _timeline(0.0, gaps)
    ready, done = marks[0:-1:2], marks[1:-1:2]
    i = data.draw(st.integers(0, len(ready) - 1))
    ready[i] = done[i] + 1.0  # batch "arrives" after its own step finished
    with pytest.raises(ValueError):
        split_epoch(0.0, ready, done, marks[-1] + 10.0)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError):
        split_epoch(0.0, [1.0, 2.0], [1.5], 3.0)


def test_empty_epoch_is_all_fetch():
    split = split_epoch(5.0, [], [], 5.5)
    assert split.steps == 0 and split.fetch_stall_s == pytest.approx(0.5) and split.compute_s == 0


@given(
    load=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40),
    compute=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=40, max_size=40),
)
def test_agrees_with_the_seed_definition_when_loading_overlaps_compute(load, compute):
    """A loader that prepares batch i+1 while step i computes (prefetch depth 1).

    The training loop waits max(load_{i+1} - compute_i, 0) for each batch after the first
    and load_1 for the first: the seed's sum of max(fetch - compute, 0), with compute
    shifted by one step. split_epoch must measure the same stall from the timestamps.
    """
    compute = compute[: len(load)]
    t, ready, done = 0.0, [], []
    load_started = 0.0
    for l_i, c_i in zip(load, compute):
        t = max(t, load_started + l_i)  # batch i in hand
        ready.append(t)
        load_started = t  # the loader starts on the next batch now
        t += c_i
        done.append(t)
    split = split_epoch(0.0, ready, done, done[-1])
    expected = load[0] + seed_stall_s(load[1:], compute[:-1])
    assert math.isclose(split.fetch_stall_s, expected, rel_tol=1e-9, abs_tol=1e-9)


@given(
    synthetic=st.floats(min_value=1e-3, max_value=100.0),
    warm=st.floats(min_value=1e-3, max_value=100.0),
    cold=st.floats(min_value=1e-3, max_value=100.0),
)
def test_differential_stall_attribution(synthetic, warm, cold):
    from bench_support.workloads.breakdown import stall_figures

    f = stall_figures({"synthetic": synthetic, "warm": warm, "cold": cold})
    assert f["prep_stall_raw_s"] == warm - synthetic and f["fetch_stall_raw_s"] == cold - warm
    assert f["prep_stall_s"] == max(0.0, warm - synthetic) and f["fetch_stall_s"] == max(0.0, cold - warm)
    assert f["stall_frac"] == pytest.approx((f["prep_stall_s"] + f["fetch_stall_s"]) / cold)
    if synthetic <= warm <= cold:  # ordered epochs: the two stalls add up to cold minus synthetic
        assert f["prep_stall_s"] + f["fetch_stall_s"] == pytest.approx(cold - synthetic)
        assert 0.0 <= f["stall_frac"] <= 1.0
