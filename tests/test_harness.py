"""The harness: warm-up outside the windows, untimed setup/teardown, the figures it attaches."""

import math
from statistics import NormalDist

from bench_support.measure.harness import Harness
from bench_support.measure.power import PowerWindow
from bench_support.profiles import Rounds


class FakeBenchmark:
    """pytest-benchmark's fixture as the harness uses it: pedantic() runs setup, target, teardown per round."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.extra_info = {}
        self.calls = []

    def pedantic(self, target, setup=None, teardown=None, rounds=1, warmup_rounds=0, iterations=1):
        assert warmup_rounds == 0 and iterations == 1  # the harness runs warm-up itself, outside the windows
        for _ in range(rounds if self.enabled else 1):
            args, kwargs = setup() if setup else ((), {})
            target(*args, **kwargs)
            if teardown is not None and self.enabled:  # --benchmark-disable never calls teardown
                teardown(*args, **kwargs)


def _run(benchmark, rounds):
    events = []
    harness = Harness(benchmark, lambda: PowerWindow(None, "no sensor in this test"))
    harness.run(
        lambda x: events.append(("round", x)),
        rounds,
        setup=lambda: events.append(("setup",)) or ((len(events),), {}),
        teardown=lambda x: events.append(("teardown", x)),
    )
    return harness, events


def test_profile_rounds_give_untimed_warmup_then_measured_rounds():
    harness, events = _run(FakeBenchmark(), Rounds(3, 2))
    assert [e[0] for e in events] == ["setup", "round", "teardown"] * 5
    info = harness.extra_info
    assert info["rounds_measured"] == 3 and info["rounds_warmup"] == 2 and harness.measured_rounds == 3
    assert info["rss_peak_mb"] > 0 and info["rss_peak_method"]
    assert info["energy_j"] is None and info["power_unavailable"] == "no sensor in this test"


def test_with_benchmarks_disabled_the_round_still_gets_its_teardown():
    harness, events = _run(FakeBenchmark(enabled=False), 4)
    assert [e[0] for e in events] == ["setup", "round", "teardown"]
    assert harness.extra_info["rounds_measured"] == 1


def test_every_area_of_a_profile_runs_over_its_trials_the_rounds_its_validity_rule_asks_for():
    from dataclasses import fields

    from bench_support.profiles import PROFILES

    for profile in PROFILES.values():
        for field in fields(profile):
            rounds = getattr(profile, field.name)
            if isinstance(rounds, Rounds):  # per trial: the trials' rounds are pooled
                assert rounds.measured * profile.trials >= profile.min_valid_rounds, (profile.name, field.name)


THREE = Rounds(3, 0)


def _adaptive(times, target=0.05, budget_s=60.0, max_rounds=40, rounds=THREE, trial=(1, 1), earlier=(), between=None):
    """A harness whose rounds take the given times, in turn (the profile's first, then any extra ones); ``between``:
    the module's spread between trials so far."""
    from bench_support.measure.harness import Precision

    supply = iter(times)
    benchmark = FakeBenchmark()
    benchmark.data = []

    def pedantic(target, setup=None, teardown=None, rounds=1, warmup_rounds=0, iterations=1):
        for _ in range(rounds):
            target()
            benchmark.data.append(next(supply))

    def extra_round(bench, target, setup, teardown):
        target()
        bench.data.append(next(supply))

    benchmark.pedantic = pedantic
    precision = Precision(target, budget_s, max_rounds, lambda b: list(b.data), extra_round, trial,
                          lambda b: [list(t) for t in earlier], lambda b: between)  # fmt: skip
    harness = Harness(benchmark, lambda: PowerWindow(None, "no sensor in this test"), precision)
    harness.run(lambda: None, rounds)
    return harness


def test_rounds_are_added_until_the_median_is_precise():
    harness = _adaptive([1.0, 1.01, 0.99] + [1.0] * 50)
    info = harness.extra_info
    # 6 rounds are the fewest with a 95 % interval; these are within 1 %, so it stops there.
    assert info["rounds_stopped"] == "precise" and info["rounds_measured"] == 6 == harness.measured_rounds
    assert info["median_ci_rel"] <= 0.05 and info["median_ci_level"] >= 0.95
    assert info["median_ci_low_s"] == 0.99 and info["median_ci_high_s"] == 1.01


def test_an_imprecise_benchmark_stops_at_its_cap_or_budget_and_says_so():
    scatter = [1.0, 2.0] * 100
    capped = _adaptive(scatter, max_rounds=10)
    assert capped.extra_info["rounds_stopped"] == "max rounds" and capped.extra_info["rounds_measured"] == 10
    assert capped.extra_info["median_ci_rel"] > 0.05
    # A spent budget still takes the rounds the first interval needs (6 in all), then stops.
    spent = _adaptive(scatter, budget_s=0.0)
    assert spent.extra_info["rounds_stopped"] == "budget" and spent.extra_info["rounds_measured"] == 6
    assert spent.extra_info["median_ci_rel"] > 0.05
    # The round cap holds even then.
    capped_early = _adaptive(scatter, budget_s=0.0, max_rounds=4)
    assert capped_early.extra_info["rounds_stopped"] == "max rounds" and capped_early.extra_info["rounds_measured"] == 4
    assert "needs 6" in capped_early.extra_info["median_ci_unavailable"]


def test_a_fixed_round_count_is_not_extended():
    harness = _adaptive([1.0, 3.0] * 10, rounds=4)
    assert harness.extra_info["rounds_stopped"] == "fixed" and harness.extra_info["rounds_measured"] == 4


def test_only_the_last_trial_adds_rounds_judged_over_every_trial():
    first = _adaptive([1.0, 1.5, 0.7] + [1.0] * 50, trial=(1, 3))
    assert first.extra_info["rounds_stopped"] == "trial 1 of 3" and first.measured_rounds == 3
    # The last trial: its own rounds agree, but with the earlier trials' the interval spans their medians too.
    agreeing = _adaptive([1.0, 1.0, 1.0] + [1.0] * 50, trial=(3, 3), earlier=([1.0, 1.01], [0.99, 1.0]))
    assert agreeing.extra_info["rounds_stopped"] == "precise" and agreeing.measured_rounds == 3
    assert agreeing.extra_info["median_ci_method"] == "order statistics widened over 3 trials"
    # Earlier trials 30 % apart: no round of the last can bring the interval (which spans them) within 5 %.
    drifting = _adaptive([1.0] * 60, trial=(3, 3), earlier=([1.3, 1.31, 1.3, 1.32], [1.0, 1.01, 1.0, 1.02]),
                         max_rounds=20)  # fmt: skip
    assert drifting.extra_info["rounds_stopped"] == "trials disagree" and drifting.measured_rounds == 3
    assert drifting.extra_info["median_ci_rel"] > 0.05
    # Apart by less than the target: the last trial measures on until precise or capped.
    close = _adaptive([1.0, 1.2, 0.8] * 20, trial=(3, 3), earlier=([1.0, 1.02], [1.01, 1.03]), max_rounds=20)
    assert close.extra_info["rounds_stopped"] in ("precise", "max rounds") and close.measured_rounds > 3


class _Clock:
    """The harness's monotonic clock, advanced by each extra round's cost instead of by waiting."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


def _adaptive_clocked(monkeypatch, times, round_s, **kwargs):
    import types

    import bench_support.measure.harness as harness_module

    clock = _Clock()
    monkeypatch.setattr(harness_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    supply = iter(times)

    def next_time():
        clock.now += round_s
        return next(supply)

    return _adaptive(_Ticking(next_time), **kwargs)


class _Ticking:
    """Round times that advance the fake clock as they are taken."""

    def __init__(self, take):
        self.take = take

    def __iter__(self):
        return self

    def __next__(self):
        return self.take()


def test_a_benchmark_whose_interval_cannot_reach_the_target_in_its_budget_stops_early(monkeypatch):
    # Rounds alternating 1 and 2: the interval of the median spans ±33 %, and 1/sqrt(n) narrowing would need
    # about 40 times the rounds taken; 40 s of budget at 1 s a round cannot supply them.
    stopped = _adaptive_clocked(monkeypatch, [1.0, 2.0] * 100, round_s=1.0, budget_s=40.0, max_rounds=200)
    info = stopped.extra_info
    assert info["rounds_stopped"] == "out of reach"
    assert info["median_ci_rel"] > 0.05
    # It gave most of the budget back: stopped once a quarter of it was spent, not at its end.
    assert 3 + 3 <= stopped.measured_rounds <= 3 + 12


def test_a_benchmark_that_can_reach_the_target_measures_on(monkeypatch):
    # Rounds within ±8 % of 1: a few dozen rounds bring the interval within 5 %, and the budget affords them.
    import random

    rng = random.Random(3)
    times = [1 + rng.uniform(-0.08, 0.08) for _ in range(400)]
    reached = _adaptive_clocked(monkeypatch, times, round_s=0.1, budget_s=40.0, max_rounds=400)
    assert reached.extra_info["rounds_stopped"] == "precise"
    assert reached.extra_info["median_ci_rel"] <= 0.05


def test_out_of_reach_needs_a_rate_and_a_share_of_the_budget_before_it_judges():
    from hypothesis import given
    from hypothesis import strategies as st

    from bench_support.intervals import MedianInterval
    from bench_support.measure.harness import REACH_AFTER_ROUNDS, REACH_AFTER_SHARE, out_of_reach

    @given(
        rel=st.floats(0.0, 2.0),
        n=st.integers(6, 500),
        extra=st.integers(0, 100),
        spent=st.floats(0.0, 10.0),
        budget=st.floats(0.1, 10.0),
    )
    def check(rel, n, extra, spent, budget):
        found = MedianInterval(1.0, 1.0 - rel, 1.0 + rel, 0.95, n)
        verdict = out_of_reach(found, 0.05, extra, spent, budget)
        rel = found.half_width_rel  # as the interval holds it: 1.05 - 1.0 is a hair above 0.05 in floating point
        if rel <= 0.05 or extra < REACH_AFTER_ROUNDS or spent <= 0 or spent < REACH_AFTER_SHARE * budget:
            assert not verdict  # precise already, or no rate yet: never stopped on a guess
        else:
            # Stopped exactly where the projected need exceeds twice what the rest of the budget affords.
            affordable = (budget - spent) * extra / spent
            assert verdict == (n * ((rel / 0.05) ** 2 - 1) > 2 * affordable)

    check()


def test_a_gap_between_trials_is_not_judged_out_of_reach_with_few_rounds_either(monkeypatch):
    # A quick profile's budget and rounds of 0.2 s: while the rounds are few, an interval of every trial's rounds
    # would still reach into the earlier trial's and project the gap; the last trial's own do not.
    times = [1.0, 1.01, 0.99] * 200
    kept = _adaptive_clocked(monkeypatch, times, round_s=0.2, budget_s=3.0, max_rounds=100, trial=(2, 2),
                             earlier=([1.3, 1.31, 1.29],))  # fmt: skip
    assert kept.extra_info["rounds_stopped"] == "budget"


def test_a_gap_between_trials_is_not_judged_out_of_reach(monkeypatch):
    # The earlier trial ran 30 % slower; the last one's own rounds agree. The interval across trials spans the gap,
    # but the rounds' own interval is narrow: the last trial's median may still move, so it measures on.
    times = [1.0, 1.01, 0.99] * 100
    kept = _adaptive_clocked(monkeypatch, times, round_s=1.0, budget_s=40.0, max_rounds=400, trial=(2, 2),
                             earlier=([1.3, 1.31, 1.29],))  # fmt: skip
    assert kept.extra_info["rounds_stopped"] == "budget"
    assert kept.measured_rounds > 3 + 12  # past the point where a projection from the widened interval stopped it


def test_trials_far_apart_stop_the_last_trial_when_the_interval_across_them_must_hold_the_gap():
    from bench_support.measure.harness import trials_disagree

    slow, fast = [1.3, 1.31, 1.3, 1.32], [1.0, 1.01, 1.0, 1.02]
    assert trials_disagree([slow, fast], 0.05)  # 3 trials in all: the interval spans every trial's median
    # 6 in all: the interval of the trials' medians still runs from the lowest to the highest (below 9 trials).
    assert trials_disagree([slow, fast, fast, fast, fast], 0.05)
    # 10 in all: it runs from the 2nd to the 9th, so one slow trial among nine cannot hold it open...
    assert not trials_disagree([slow] + [fast] * 8, 0.05)
    # ...but nine trials spread 1.0 to 1.4 can: their 2nd smallest and 2nd largest are already 1.05 and 1.35.
    assert trials_disagree([[m, m * 1.01, m, m * 1.02] for m in (1.0 + 0.05 * i for i in range(9))], 0.05)


def test_rounds_that_do_not_count_cannot_keep_a_spent_budget_going():
    from bench_support.measure.harness import Precision

    benchmark, calls = FakeBenchmark(), []
    precision = Precision(0.05, 0.0, 100, lambda b: [1.0, 2.0, 1.5], lambda *a: calls.append(1))
    harness = Harness(benchmark, lambda: PowerWindow(None, "no sensor in this test"), precision)
    harness.run(lambda: None, Rounds(3))
    assert harness.extra_info["rounds_stopped"] == "budget" and len(calls) == 6


def test_a_modules_spread_between_trials_beyond_the_target_stops_the_last_trial_at_once():
    """Rounds of one process cannot narrow a spread between processes: the widening after the merge holds the result
    at ±z·σ/√k at least, so where that is twice the target the last trial takes no extra round."""
    from bench_support.intervals import BetweenTrials

    scatter = [1.0, 1.2, 0.8] * 20  # rounds that would otherwise run on to the cap
    noisy = _adaptive(scatter, trial=(2, 2), earlier=([1.0, 1.1, 0.9],), between=BetweenTrials(0.15, 6))
    assert noisy.extra_info["rounds_stopped"] == "spread between trials" and noisy.measured_rounds == 3
    # a quiet module, or a noisy one judged from too few degrees of freedom, or a first trial: rounds as before
    for between, trial in ((BetweenTrials(0.01, 6), (2, 2)), (BetweenTrials(0.15, 2), (2, 2)),
                           (BetweenTrials(0.15, 6), (1, 2))):  # fmt: skip
        kept = _adaptive(scatter, trial=trial, earlier=([1.0, 1.1, 0.9],)[: trial[0] - 1], between=between,
                         max_rounds=12)  # fmt: skip
        assert kept.extra_info["rounds_stopped"] != "spread between trials"
    # but never before the result has the rounds an interval needs (6 in all): two trials of two rounds take two more
    short = _adaptive(scatter, rounds=Rounds(2, 0), trial=(2, 2), earlier=([1.0, 1.1],), between=BetweenTrials(0.15, 6))
    assert short.extra_info["rounds_stopped"] == "spread between trials" and short.measured_rounds == 4
    assert short.extra_info["median_ci_low_s"] is not None
    # just below the line: z·σ/√2 = 2 × 5 % at σ = 7.2 %
    assert not _adaptive(scatter, trial=(2, 2), earlier=([1.0],), between=BetweenTrials(0.071, 6),
                         max_rounds=8).extra_info["rounds_stopped"] == "spread between trials"  # fmt: skip


def test_the_spread_rule_almost_never_stops_a_benchmark_that_could_have_met_its_target():
    """At the largest true σ a result of k trials can meet its target with (z·σ/√k = target), σ estimated from the
    fewest degrees of freedom the rule accepts: it stops under 1.5 % of such benchmarks (chi-squared: 0.74 %, the
    same whatever k and the target, which only scale σ)."""
    import random

    from bench_support.intervals import between_trials
    from bench_support.measure.harness import SPREAD_AFTER_DF, spread_out_of_reach

    def module(rng, sigma, benchmarks):
        return between_trials([[[math.exp(rng.gauss(0, sigma))], [math.exp(rng.gauss(0, sigma))]]
                               for _ in range(benchmarks)])  # fmt: skip

    for k, target, seed in ((2, 0.05, 1), (3, 0.02, 2)):
        rng = random.Random(seed)
        sigma = target * math.sqrt(k) / NormalDist().inv_cdf(0.975)
        draws = 4000
        stopped = sum(spread_out_of_reach(module(rng, sigma, SPREAD_AFTER_DF), k, target) for _ in range(draws))
        assert 0 < stopped / draws < 0.015  # 5 standard errors above the 0.74 %
        # and at three times that σ, measured from forty benchmarks, it stops
        assert spread_out_of_reach(module(random.Random(seed), 3 * sigma, 40), k, target)
