"""The run's precision as a whole: the trials a target takes at a measured spread (bench_support/intervals.py,
trials_for) and the paragraph the terminal and the report give (bench_support/report/precision.py)."""

import argparse
import json
import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_support.intervals import MOST_TRIALS, median_interval, trials_for
from bench_support.plugin.parsers import percent
from bench_support.plugin.terminal import flagged_lines
from bench_support.profiles import PROFILES
from bench_support.report.precision import precision_text, precision_values, run_precision
from bench_support.report.validity import validity
from conftest import run_pytest


@settings(max_examples=6, deadline=None)
@given(sd=st.floats(0.03, 0.2), target=st.sampled_from([0.05, 0.1]), seed=st.integers(0, 2**31))
def test_the_projected_trials_give_an_interval_about_the_target_and_fewer_do_not(sd, target, seed):
    """Simulated trial medians, lognormal with the spread measured: with the projected count the interval the
    suite builds from them (order statistics of the medians) is about the target in the median run; with half
    that count it is wider. A projection off by the 1.25 of the median's efficiency, or one that used
    the normal quantile of a mean, fails one side."""
    n = trials_for(sd, target)
    rng = random.Random(seed)

    def typical_width(count):
        widths = [
            median_interval([math.exp(rng.gauss(0.0, sd)) for _ in range(count)]).half_width_rel for _ in range(400)
        ]
        return statistics.median(widths)

    assert n is not None and n >= 6
    width = typical_width(n)
    assert width <= 1.25 * target
    if n > 6:  # 6 trials is the floor, whatever the spread: below it no interval is 95 %
        # not far tighter than asked: a little, where the count waits for the sawtooth's teeth to stay within
        assert width >= 0.6 * target
    if n // 2 >= 6:  # and half as many do not meet it: the count is not padded
        assert typical_width(n // 2) > target


@settings(deadline=None)  # a wide spread scans hundreds of counts: no wall-clock limit a busy neighbour can break
@given(st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.sampled_from([0.02, 0.05, 0.1]))
def test_more_spread_never_takes_fewer_trials(a, b, target):
    low, high = sorted((a, b))
    n_low, n_high = trials_for(low, target), trials_for(high, target)
    assert n_high is None or (n_low is not None and n_low <= n_high)


def test_no_spread_takes_the_fewest_an_interval_needs_and_a_huge_one_is_beyond_reach():
    assert trials_for(0.0, 0.05) == 6
    assert MOST_TRIALS == 1000 and trials_for(1.0, 0.02) is None
    assert trials_for(0.3, 0.05) is not None and trials_for(0.3, 0.05, most=50) is None


@settings(deadline=None)  # a projection near the limit scans a thousand counts; a busy neighbour slows it
@given(sd=st.floats(1e-9, 3.0), target=st.floats(1e-300, 0.99))
def test_any_spread_and_target_give_a_count_or_beyond_reach_never_an_error(sd, target):
    """A saved target of 1e-200 (``--precision-target 1e-200``) overflowed the projection, after the tests and in
    every later report."""
    found = trials_for(sd, target)
    assert found is None or 6 <= found <= MOST_TRIALS
    assert trials_for(0.1, 1e-200) is None and trials_for(0.1, 0.0) is None


def _bench(name, group, trial_medians, rounds_per_trial=3, extra=None, rng=None):
    """A saved result whose trials sit at the given medians, each trial's rounds within ±0.1 % of it."""
    rng = rng or random.Random(0)
    data = [m * (1 + rng.uniform(-0.001, 0.001)) for m in trial_medians for _ in range(rounds_per_trial)]
    info = {"trials": len(trial_medians), "trial_rounds": [rounds_per_trial] * len(trial_medians), **(extra or {})}
    stats = {"data": data, "rounds": len(data), "median": statistics.median(data), "iqr": 0.0}
    return {"name": name, "group": group, "stats": stats, "extra_info": info}


def test_a_run_says_how_many_missed_the_target_the_spread_per_module_and_the_trials_it_would_take():
    rng = random.Random(2)
    # Loader passes whose two trials sit 20 % apart (log 0.182: sd of the pair 0.129); reads whose trials agree.
    loaders = [_bench(f"loader{i}", "dataloader", [1.0, 1.2], rng=rng) for i in range(4)]
    reads = [_bench(f"read{i}", "pagecache", [0.5, 0.5], rounds_per_trial=8, rng=rng) for i in range(3)]
    fixed = _bench("finetune", "continual", [3.0], extra={"rounds_stopped": "fixed"}, rng=rng)
    found = run_precision([*loaders, *reads, fixed], "quick")
    assert found.judged == 7 and found.imprecise == 4 and found.trials == [2] and found.targets == [0.05]
    spread = {m.group: m for m in found.modules}
    assert set(spread) == {"dataloader", "pagecache"}  # the fine-tune's one trial is not judged at all
    assert spread["dataloader"].sd_log == pytest.approx(math.log(1.2) / math.sqrt(2), rel=0.02)
    assert spread["dataloader"].df == 4 and spread["dataloader"].benchmarks == 4
    assert spread["dataloader"].imprecise == 4 and spread["pagecache"].imprecise == 0
    assert spread["dataloader"].trials_needed == trials_for(spread["dataloader"].sd_log, 0.05)
    text = precision_text(found)
    assert text.startswith("4 of 7 judged results are wider than the target ±5% (2 trials each)")
    assert "dataloader 12.9%" in text and "pagecache 0.0%" in text
    # trials are projected only where results missed: the reads met ±5 % with 2, and are not told they need 6
    assert text.endswith(f"this run's spread): dataloader {spread['dataloader'].trials_needed}")
    values = precision_values(found)
    assert values["between_trials"]["pagecache"]["trials_needed"] is None and values["imprecise"] == 4


def test_mixed_targets_and_trial_counts_are_said_as_they_are():
    """Each result is judged by the target it records; the paragraph names them all, and the range of trials."""
    wide = [_bench(f"w{i}", "dataloader", [1.0, 1.3], extra={"precision_target_rel": 0.10}) for i in range(2)]
    tight = [_bench(f"t{i}", "training", [1.0, 1.2]) for i in range(3)]
    single = [_bench("s", "pagecache", [1.0], rounds_per_trial=4)]
    found = run_precision([*wide, *tight, *single], "quick")
    assert found.targets == [0.05, 0.10] and found.trials == [1, 2] and found.unmeasured == ["pagecache"]
    text = precision_text(found)
    assert text.startswith("6 of 6 judged results are wider than their targets (±5%, ±10%) (1-2 trials each)")
    assert "would take about this many trials where results missed it" in text and "its target" in text
    assert text.endswith("; not measured for pagecache (one trial)")
    module = {m.group: m for m in found.modules}
    assert module["dataloader"].target == 0.10 and module["training"].target == 0.05
    assert module["dataloader"].trials_needed == trials_for(module["dataloader"].sd_log, 0.10)


def test_one_trial_measures_no_spread_and_a_profile_without_a_target_judges_nothing():
    one = [_bench(f"b{i}", "training", [1.0], rounds_per_trial=3) for i in range(3)]
    found = run_precision(one, "quick")
    assert found.modules == [] and found.imprecise == 3 and found.unmeasured == ["training"]
    assert "no result ran in two trials or more" in precision_text(found)
    assert run_precision(one, "smoke") is None


class _Live:
    """What pytest-benchmark hands the terminal summary: attributes, not a saved dict."""

    def __init__(self, saved):
        self.name, self.group, self.extra_info = saved["name"], saved["group"], saved["extra_info"]
        self.stats = type("S", (), dict(saved["stats"]))()


def test_the_terminal_ends_the_flags_with_the_runs_precision_only_when_something_missed():
    apart = [_Live(_bench(f"loader{i}", "dataloader", [1.0, 1.3])) for i in range(3)]
    lines = list(flagged_lines(apart, "quick"))
    assert len(lines) == 4 and lines[-1].startswith("precision: 3 of 3 judged results are wider")
    agree = [_Live(_bench(f"read{i}", "pagecache", [0.5, 0.5], rounds_per_trial=8)) for i in range(3)]
    assert list(flagged_lines(agree, "quick")) == []


def test_a_target_the_user_sets_is_the_one_the_flag_judges_by():
    """--precision-target: the rounds record the target they were taken for, and the verdict uses it, not the
    profile's. Rounds within ±7 %: imprecise against quick's ±5 %, precise against ±10 %."""
    rng = random.Random(4)
    rounds = [1.0 + rng.uniform(-0.1, 0.1) for _ in range(20)]
    width = median_interval(rounds).half_width_rel
    assert 0.05 < width < 0.10
    stats = {"data": rounds, "rounds": 20, "median": statistics.median(rounds), "iqr": 0.1}
    bench = {"name": "b", "group": "g", "stats": stats, "extra_info": {"precision_target_rel": 0.05}}
    assert (
        validity(bench, "quick")["noisy"] is True
        and "> the target ±5% (20 round(s)" in validity(bench, "quick")["precision_reason"]
    )
    bench["extra_info"]["precision_target_rel"] = 0.10
    v = validity(bench, "quick")
    assert v["noisy"] is False and v["precision_target"] == 0.10
    bench["extra_info"]["precision_target_rel"] = 0.025  # a target that is not a whole percent is said as it is
    assert "> the target ±2.5%" in validity(bench, "quick")["precision_reason"]


def test_a_profile_takes_another_target_and_budget_and_smoke_gets_a_round_cap_with_one():
    quick = PROFILES["quick"]
    assert quick.with_precision() is quick
    tighter = quick.with_precision(0.02, 10.0)
    assert (tighter.precision_target, tighter.round_budget_s, tighter.max_rounds) == (0.02, 10.0, quick.max_rounds)
    assert quick.with_precision(budget_s=0.0).precision_target == quick.precision_target
    smoke = PROFILES["smoke"].with_precision(0.1)
    assert smoke.precision_target == 0.1 and smoke.max_rounds > 0


@pytest.mark.parametrize(
    "text, expected", [("10%", 0.10), ("2.5", 0.025), (" 5% ", 0.05), ("0", None), ("100%", None), ("abc", None)]
)
def test_the_target_is_read_as_a_percentage(text, expected):
    parse = percent("--precision-target")
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError, match=r"^--precision-target "):
            parse(text)
    else:
        assert parse(text) == pytest.approx(expected)


HARNESSED = """
def test_harnessed(harness, profile):
    harness.run(lambda: sum(range(20000)), profile.checkpoint)
"""


def test_the_target_and_budget_options_reach_the_rounds_and_the_saved_verdict(tmp_path):
    (tmp_path / "test_zz.py").write_text(HARNESSED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "run.json"
    result = run_pytest("test_zz.py", "--trials", "1", "--precision-target", "40%", "--round-budget",
                        "0.5", "--power-idle-s", "0", f"--benchmark-json={out}", cwd=str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "profile quick, precision target ±40% with 0.5 s of extra rounds" in result.stdout
    info = json.loads(out.read_text())["benchmarks"][0]["extra_info"]
    assert info["precision_target_rel"] == 0.4 and info["round_budget_s"] == 0.5
    assert info["validity"]["precision_target"] == 0.4
    refused = run_pytest("test_zz.py", "--collect-only", "--round-budget", "-1", cwd=str(tmp_path))
    assert refused.returncode == 4 and "--round-budget -1: must be" in refused.stderr, refused.stderr[-2000:]


@settings(deadline=None)
@given(st.floats(0.01, 0.4), st.sampled_from([0.02, 0.05, 0.1]))
def test_from_the_projected_count_on_more_trials_stay_within(sd, target):
    """The width is a sawtooth in n (k grows in whole steps): the count is where more trials stay within, not the
    first tooth that dips below. Checked here with Blom's expected order statistic, computed independently."""
    from statistics import NormalDist

    from bench_support.intervals import WIDER_FROM_SAMPLE_MEDIAN, order_statistic_rank

    n = trials_for(sd, target)
    if n is None or n == 6:
        return
    for m in range(n, min(MOST_TRIALS, n + 15) + 1):  # the scan stops at MOST_TRIALS, and so does the promise
        k = order_statistic_rank(m)
        z = NormalDist().inv_cdf((m - k + 1 - 0.375) / (m + 0.25))
        assert sd * z * WIDER_FROM_SAMPLE_MEDIAN <= math.log1p(target) + 1e-12


def test_the_spread_is_pooled_per_test_file_as_the_run_widened_it_and_named_by_its_group_or_file():
    rng = random.Random(4)

    def bench(file, name, group, medians):
        found = _bench(name, group, medians, rng=rng)
        found["fullname"] = f"benchmarks/{file}::{name}"
        return found

    # a user's benchmarks without a group, in two files: a noisy one and a steady one are not pooled together
    noisy = [bench("test_noisy.py", f"n{i}", None, [1.0, 1.3]) for i in range(3)]
    steady = [bench("test_steady.py", f"s{i}", None, [1.0, 1.0]) for i in range(3)]
    # and one file of the suite's kind, with its one group
    reads = [bench("test_pagecache.py", f"r{i}", "pagecache", [0.5, 0.55]) for i in range(2)]
    spread = {m.group: m for m in run_precision([*noisy, *steady, *reads], "quick").modules}
    assert set(spread) == {"test_noisy.py", "test_steady.py", "pagecache"}
    assert spread["test_noisy.py"].sd_log == pytest.approx(math.log(1.3) / math.sqrt(2), rel=0.02)
    assert spread["test_steady.py"].sd_log < 0.002 and spread["test_noisy.py"].df == 3
