"""The harness: warm-up outside the windows, untimed setup/teardown, the figures it attaches."""

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


def _adaptive(times, target=0.05, budget_s=60.0, max_rounds=40, rounds=THREE, trial=(1, 1), earlier=()):
    """A harness whose rounds take the given times, in turn (the profile's first, then any extra ones)."""
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
                          lambda b: [list(t) for t in earlier])  # fmt: skip
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
    spent = _adaptive(scatter, budget_s=0.0)
    assert spent.extra_info["rounds_stopped"] == "budget" and spent.extra_info["rounds_measured"] == 3
    assert spent.extra_info["median_ci_rel"] is None and "needs 6" in spent.extra_info["median_ci_unavailable"]


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
