"""Randomized interleaved trials: their order, their interval, the effects between them, and the merge."""

import json
import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_support import trials
from bench_support.intervals import effect, split_trials, trial_interval, trials_apart
from bench_support.report.summary import fastest_loader
from conftest import run_pytest


def _trials(rng, n_trials, rounds, centre=1.0, sigma=0.03, between=0.0):
    """Rounds of ``n_trials`` trials; ``between``: the spread of each trial's own level (what a re-run sees)."""
    out = []
    for _ in range(n_trials):
        level = centre * (1 + rng.gauss(0, between))
        out.append([level * (1 + rng.gauss(0, sigma)) for _ in range(rounds)])
    return out


# --- the interval across trials -------------------------------------------------------------------------------


def test_the_interval_covers_the_true_median_when_trials_agree():
    """Rounds of one distribution in 3 trials of 2 (the quick profile): covered at least 95 % of the time."""
    rng, covered, runs = random.Random(5), 0, 400
    for _ in range(runs):
        found = trial_interval(_trials(rng, 3, 2), resamples=400)
        covered += found.low <= 1.0 <= found.high
    assert covered / runs >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / runs)


def test_when_trials_drift_a_rerun_lands_inside_the_interval_or_the_result_is_flagged():
    """The variance lives between trials (each its own level, as between processes): a second run's median lies in
    the first run's interval, or that interval is wider than the quick profile's target and the result is flagged
    imprecise. An interval from one process's tight rounds would have claimed a precision the re-run refutes."""
    rng, explained, overlap, claimed_and_refuted, runs = random.Random(9), 0, 0, 0, 300
    for _ in range(runs):
        first, second = _trials(rng, 3, 2, between=0.08), _trials(rng, 3, 2, between=0.08)
        found, again = trial_interval(first, resamples=400), trial_interval(second, resamples=400)
        explained += found.low <= again.median <= found.high or found.half_width_rel > 0.05
        overlap += found.low <= again.high and again.low <= found.high
        one_trial = trial_interval([first[0] * 3], resamples=400)  # the same rounds, as if from one trial
        claimed_and_refuted += one_trial.half_width_rel <= 0.05 and not one_trial.low <= again.median <= one_trial.high
    assert explained / runs >= 0.9 and overlap / runs >= 0.93
    assert claimed_and_refuted / runs > 0.3


def test_from_six_trials_the_interval_narrows_as_trials_are_added_and_keeps_its_coverage():
    """Processes at levels 8 % apart (this VM's evening): with 6 or more trials the interval is that of the trials'
    medians, so raising --trials pins the median down instead of spanning an ever wider range of trials."""
    rng, covered, runs, narrower = random.Random(11), 0, 300, 0
    for _ in range(runs):
        trials = _trials(rng, 12, 3, between=0.08, sigma=0.02)
        found = trial_interval(trials, resamples=200)
        covered += found.low <= 1.0 <= found.high
        medians = [statistics.median(t) for t in trials]
        narrower += found.high - found.low < max(medians) - min(medians)
    assert covered / runs >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / runs)
    assert narrower / runs > 0.9
    # And it narrows with the trials taken: 40 trials give a tighter interval than 8, on average.
    widths = {k: statistics.mean(trial_interval(_trials(rng, k, 3, between=0.08), resamples=200).half_width_rel
                                 for _ in range(60)) for k in (8, 40)}  # fmt: skip
    assert widths[40] < 0.6 * widths[8]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=6), min_size=2, max_size=5))
def test_the_interval_holds_the_pooled_median_and_spans_trials_that_disagree(rounds):
    found = trial_interval(rounds, resamples=200)
    pooled = [v for t in rounds for v in t]
    if len(pooled) < 6:  # too few rounds in all for a 95 % interval of the median, trials or not
        assert found is None
        return
    assert found.low <= statistics.median(pooled) <= found.high
    if trials_apart(rounds):  # trials that disagree: the interval is as wide as their disagreement
        for trial in rounds:
            assert found.low <= statistics.median(trial) <= found.high
    assert min(pooled) <= found.low and found.high <= max(pooled)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(0, 2**31))
def test_rounds_cut_back_into_their_trials(counts, seed):
    rng = random.Random(seed)
    rounds = [rng.random() for _ in range(sum(counts))]
    cut = split_trials(rounds, counts)
    assert [v for t in cut for v in t] == rounds
    assert [len(t) for t in cut] == (counts if len(counts) > 1 else [sum(counts)])
    assert split_trials(rounds, [sum(counts) + 1, 1]) == [rounds]  # counts that do not fit: one trial


def test_a_trial_of_many_rounds_is_thinned_not_dropped():
    """A plain fixture's 10^5 rounds per trial: still an interval, in reasonable time, around the median."""
    rng = random.Random(2)
    found = trial_interval([[rng.gauss(1, 0.1) for _ in range(100_000)] for _ in range(3)], resamples=300)
    assert found.rounds == 300_000 and found.low < 1.0 < found.high and found.half_width_rel < 0.05


# --- effects ------------------------------------------------------------------------------------------------------


def test_two_samples_of_one_distribution_show_no_clear_difference():
    rng, clear, pairs = random.Random(11), 0, 200
    for _ in range(pairs):
        a, b = _trials(rng, 3, 2, between=0.03), _trials(rng, 3, 2, between=0.03)
        clear += effect(a, b, resamples=400).clear
    assert clear / pairs <= 0.08  # "a difference" where there is none: at most about the 5 % the level allows


@given(
    ratio=st.floats(0.05, 20),
    below=st.floats(0.0, 3.0),
    above=st.floats(0.0, 3.0),
)
def test_a_reruns_range_is_the_interval_root_two_wider_on_each_side_of_the_log_scale(ratio, below, above):
    from bench_support.intervals import RERUN_WIDER, Effect

    found = Effect(ratio, ratio * math.exp(-below), ratio * math.exp(above), 0.95)
    low, high = found.rerun
    assert low <= found.low <= found.ratio <= found.high <= high
    assert math.isclose(math.log(ratio / low), RERUN_WIDER * below, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(math.log(high / ratio), RERUN_WIDER * above, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(RERUN_WIDER, math.sqrt(2))  # two runs' errors of one size: the re-run's and this run's


def test_a_real_difference_is_found_with_its_size():
    rng = random.Random(12)
    slow, fast = _trials(rng, 3, 2, centre=1.3), _trials(rng, 3, 2, centre=1.0)
    found = effect(slow, fast)
    assert found.clear and found.low > 1.1 and abs(found.ratio - 1.3) < 0.1 and found.low <= found.ratio <= found.high


def _loader(name, workers, rounds, trial_rounds):
    info = {"measure": "loader", "num_workers": workers, "prefetch_factor": 2, "pin_memory": False,
            "persistent_workers": False, "samples_per_s": 512 / statistics.median(rounds),
            "trial_rounds": trial_rounds}  # fmt: skip
    return {"name": name, "group": "dataloader", "extra_info": info, "stats": {"data": rounds}}


def test_fastest_means_beyond_a_tie_else_the_tie_is_named():
    rng = random.Random(4)
    same = [_loader(f"w{w}", w, [v for t in _trials(rng, 3, 2) for v in t], [2, 2, 2]) for w in (0, 1)]
    result = fastest_loader(same)
    assert [t["benchmark"] for t in result["tied"]] == [result["runner_up"]["benchmark"]]
    apart = [_loader("w0", 0, [v for t in _trials(rng, 3, 2, centre=2.0) for v in t], [2, 2, 2]),
             _loader("w2", 2, [v for t in _trials(rng, 3, 2, centre=1.0) for v in t], [2, 2, 2])]  # fmt: skip
    result = fastest_loader(apart)
    assert result["benchmark"] == "w2" and result["tied"] == []
    assert result["runner_up"]["clear"] and result["runner_up"]["gain_low"] > 0.5


# --- the order ----------------------------------------------------------------------------------------------------


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=12, unique=True), st.integers(0, 2**32))
def test_a_trials_order_is_a_pure_function_of_its_seed(keys, seed):
    first = trials.shuffled(keys, seed, "benchmarks/test_x.py", 2)
    assert first == trials.shuffled(keys, seed, "benchmarks/test_x.py", 2) and sorted(first) == sorted(keys)


def test_trial_ids_come_out_of_every_name():
    assert trials.without_trial("f[a-b-t2of3]") == "f[a-b]"
    assert trials.without_trial("f[t1of3]") == "f"
    assert trials.without_trial("f[t1of3-pm-MAXN]") == "f[pm-MAXN]"
    assert trials.without_trial("a-t10of12-b") == "a-b" and trials.without_trial("t3of3") == ""
    assert trials.without_trial("f[at1of3]") == "f[at1of3]"  # only a whole id


def test_merged_figures_are_the_median_trials_with_peaks_and_counts_over_all():
    trio = ((100, 800, "trial 1 of 3"), (300, 820, "trial 2 of 3"), (200, 810, "precise"))
    infos = [{"samples_per_s": s, "rss_peak_mb": p, "rounds_measured": 2, "mode": "x", "rounds_stopped": r}
             for s, p, r in trio]  # fmt: skip
    rounds = [[5.0, 5.2], [1.0, 1.1], [2.0, 2.1]]
    out = trials.merge_infos(infos, rounds)
    assert out["samples_per_s"] == 200 and out["figures_from_trial"] == 3  # the trial whose median is the middle
    assert out["rss_peak_mb"] == 820 and out["rounds_measured"] == 6 and out["rounds_stopped"] == "precise"
    assert out["trial_rounds"] == [2, 2, 2] and out["trial_medians_s"] == [5.1, 1.05, 2.05]
    assert out["median_ci_low_s"] <= 1.05 and out["median_ci_high_s"] >= 5.1


PLAIN_MODULE = """
import pytest

pytestmark = pytest.mark.benchmark(group="zz")
GRID = {p: {"n": [10, 20, 30]} for p in ("smoke", "quick", "full")}


def test_sum(benchmark, n):
    benchmark(sum, range(n))


def test_harnessed(harness, profile):
    harness.run(lambda: sum(range(20000)), profile.checkpoint)
"""


def test_trials_run_in_the_recorded_order_and_merge_into_one_result_per_benchmark(tmp_path):
    (tmp_path / "test_zz.py").write_text(PLAIN_MODULE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")

    def collected(seed):
        result = run_pytest("test_zz.py", "--collect-only", "-q", "--trials", "3", "--trial-seed", seed,
                            cwd=str(tmp_path))  # fmt: skip
        return [line for line in result.stdout.splitlines() if "::test_sum" in line]

    refused = run_pytest("test_zz.py", "--collect-only", "--trials", "0", cwd=str(tmp_path))
    assert refused.returncode == 4 and "--trials 0: need at least 1" in refused.stderr, refused.stderr[-2000:]
    order = collected("5")
    assert len(order) == 9 and order == collected("5") and order != collected("6")
    assert [line.rsplit("-", 1)[1] for line in order] == ["t1of3]"] * 3 + ["t2of3]"] * 3 + ["t3of3]"] * 3
    out = tmp_path / "run.json"
    result = run_pytest("test_zz.py", "-q", "--trials", "3", "--trial-seed", "5", "--benchmark-max-time", "0.002",
                        f"--benchmark-json={out}", cwd=str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    saved = json.loads(out.read_text())
    names = sorted(b["name"] for b in saved["benchmarks"])
    assert names == ["test_harnessed", "test_sum[10]", "test_sum[20]", "test_sum[30]"]
    harnessed = next(b for b in saved["benchmarks"] if b["name"] == "test_harnessed")["extra_info"]
    # quick: 3 rounds per trial; only the last trial may add rounds, judged over all three
    assert harnessed["trial_rounds"][:2] == [3, 3] and harnessed["trial_rounds"][2] >= 3
    assert harnessed["rounds_stopped"] in (
        "precise",
        "budget",
        "out of reach",
        "max rounds",
        "trials disagree",
        "spread between trials",
    )
    # every merged result's interval widened by the spread of the module's (test_zz.py's) 4 results of 3 trials
    assert harnessed["between_trials_df"] == 8 and harnessed["between_trials_sd_log"] >= 0
    assert "spread between trials of the module" in harnessed["median_ci_method"]
    for bench in saved["benchmarks"]:
        if bench["name"] == "test_harnessed":
            continue
        info = bench["extra_info"]
        stats = bench["stats"]
        assert info["trials"] == 3 and sum(info["trial_rounds"]) == stats["rounds"] == len(stats["data"])
        assert bench["params"] == {"n": int(bench["name"][9:-1])} and "t1of3" not in bench["fullname"]
    block = saved["edge_bench"]["trials"]
    assert block["count"] == 3 and block["seed"] == 5
    assert [f"test_zz.py::{name}" for name in block["order"] if name.startswith("test_sum")] == order


def test_a_drift_that_slows_a_whole_trial_cancels_in_the_effect():
    """Interleaved trials: both configurations of trial 3 ran in the host's slow minutes. Paired by trial, the
    ratio keeps its 20 %, with an interval far narrower than the 35 % drift."""
    rng = random.Random(3)
    levels = [1.0, 1.0, 1.35]
    slow = [[level * 1.2 * (1 + rng.gauss(0, 0.02)) for _ in range(2)] for level in levels]
    fast = [[level * (1 + rng.gauss(0, 0.02)) for _ in range(2)] for level in levels]
    found = effect(slow, fast)
    assert found.clear and 1.15 < found.low <= found.ratio <= found.high < 1.25


def test_trials_are_told_apart_by_their_rounds_not_by_their_medians_alone():
    """Two trials of three heavy-tailed checkpoint writes whose medians differ by chance are not a drift; two trials
    whose every round differs are."""
    assert not trials_apart([[0.010, 0.030, 0.011], [0.011, 0.012, 0.029, 0.010, 0.011, 0.031]])
    assert trials_apart([[1.50, 1.52, 1.49, 1.51], [2.10, 2.12, 2.15, 2.11]])
    found = trial_interval([[1.50, 1.52, 1.49, 1.51], [2.10, 2.12, 2.15, 2.11]], resamples=200)
    assert found.low <= 1.505 and found.high >= 2.115


def test_a_module_declaring_run_first_runs_before_the_others_which_keep_their_order():
    from types import SimpleNamespace

    from bench_support.plugin import trials as plugin_trials

    def item(path, name, module, trial=None):
        callspec = SimpleNamespace(params={plugin_trials.TRIAL_PARAM: trial}) if trial else None
        return SimpleNamespace(nodeid=f"{path}::{name}", name=name, module=module, callspec=callspec)

    plain, first, other = SimpleNamespace(), SimpleNamespace(RUN_FIRST=True), SimpleNamespace(RUN_FIRST="yes")
    items = [
        item("b/test_a.py", "a[t1of2]", plain, (1, 2)),
        item("b/test_a.py", "a[t2of2]", plain, (2, 2)),
        item("b/test_c.py", "c", first),
        item("b/test_d.py", "d", other),  # only True counts
    ]
    names = plugin_trials.order(items, seed=1)
    assert names == ["c", "a[t1of2]", "a[t2of2]", "d"]
    assert [i.name for i in items] == names
    once = [item("b/test_a.py", "a", plain), item("b/test_c.py", "c", first), item("b/test_d.py", "d", plain)]
    assert plugin_trials.order(once, seed=1) == ["c", "a", "d"]  # one trial (smoke, --trials 1): the same


def test_the_continual_module_runs_first_in_a_one_trial_profile_too(tmp_path):
    result = run_pytest("benchmarks", "--collect-only", "-q", "--profile", "smoke", "--data-dir", str(tmp_path))
    first = next(line for line in result.stdout.splitlines() if "::" in line)
    assert first.startswith("benchmarks/test_continual.py::"), result.stdout[-2000:]


# --- effects at the level where the variance is -----------------------------------------------------------------


def test_t_quantiles_match_the_tables():
    from bench_support.intervals import t_quantile

    table = {1: 12.706, 2: 4.303, 3: 3.182, 5: 2.571, 10: 2.228, 30: 2.042, 1000: 1.962}  # two-sided 95 %
    for df, expected in table.items():
        assert abs(t_quantile(0.975, df) - expected) < 0.001, df


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=4), min_size=1, max_size=4), st.integers(1, 50))
def test_the_pooled_spread_is_that_of_the_log_trial_medians(trial_sets, scale):
    from bench_support.intervals import between_trials

    sets = [[[v * scale for v in t] for t in trials] for trials in [trial_sets, trial_sets]]
    found = between_trials(sets)
    logs = [math.log(statistics.median(t)) for t in trial_sets]
    if len(logs) < 2:
        assert found is None
        return
    # Two copies of one set: the pooled variance is that set's, with twice its degrees of freedom; a common scale
    # (a slower machine) does not change it.
    assert found.df == 2 * (len(logs) - 1)
    assert math.isclose(found.sd_log, statistics.stdev(logs), rel_tol=1e-9, abs_tol=1e-12)


def test_the_pooled_spread_weighs_each_benchmark_by_its_degrees_of_freedom():
    from bench_support.intervals import between_trials

    # log medians [0, 0.2] (variance 0.02, 1 df) and [0, 0, 0, 0.6] (variance 0.09, 3 df): pooled (0.02 + 0.27) / 4.
    # A mean of the two SDs would give 0.221, an unweighted mean of the variances 0.235.
    found = between_trials([[[1.0], [math.exp(0.2)]], [[1.0], [1.0], [1.0], [math.exp(0.6)]]])
    assert found.df == 4 and math.isclose(found.sd_log, math.sqrt(0.0725), rel_tol=1e-9)


def test_an_effect_widened_by_the_pooled_spread_covers_the_true_ratio_and_a_rerun():
    """Two trials a side whose levels move 10 % from process to process (this VM's evening): the bootstrap alone sees
    the process-to-process spread through two draws and misses the true ratio often; widened by the spread pooled
    over a module of 8 benchmarks, the interval covers it at least 93 % of the time, and a re-run's effect too in
    most runs; the re-run's range (two runs' errors) holds a re-run's effect as the interval holds the true ratio."""
    from bench_support.intervals import between_trials

    rng, runs = random.Random(21), 200
    covered = covered_alone = rerun_inside = rerun_in_range = 0

    def module():
        benches = [_trials(rng, 2, 3, centre=1.0 + i, sigma=0.02, between=0.10) for i in range(6)]
        a, b = _trials(rng, 2, 3, centre=1.5, sigma=0.02, between=0.10), _trials(rng, 2, 3, sigma=0.02, between=0.10)
        return a, b, between_trials([*benches, a, b])

    for _ in range(runs):
        a, b, spread = module()
        widened, alone = effect(a, b, resamples=300, between=spread), effect(a, b, resamples=300)
        covered += widened.low <= 1.5 <= widened.high
        covered_alone += alone.low <= 1.5 <= alone.high
        a2, b2, _ = module()
        again = effect(a2, b2, resamples=100).ratio
        rerun_inside += widened.low <= again <= widened.high
        rerun_in_range += widened.rerun[0] <= again <= widened.rerun[1]
        assert widened.rerun[0] <= widened.low and widened.high <= widened.rerun[1]
    assert covered / runs >= 0.93
    assert covered_alone / runs < 0.85  # what the bootstrap over two trials alone claimed
    assert rerun_inside / runs >= 0.8
    assert rerun_in_range / runs >= 0.93 and rerun_in_range > rerun_inside


def test_an_effect_weighs_every_trial_alike_however_many_rounds_the_last_one_added():
    """Only the last trial adds rounds (up to its budget), so a median of all rounds is mostly that one process's,
    while the widening assumes a mean over both. Last trials of 20 rounds against first ones of 3, levels 10 % apart
    from process to process: with the ratio of the typical trials the widened interval covered the true ratio in
    96 % of 400 runs and a re-run's effect in 87 %; with a centre from all rounds pooled, 94 % and 76 %."""
    from bench_support.intervals import between_trials

    rng, runs = random.Random(8), 200
    covered = rerun_inside = 0

    def side(centre):
        first, last = _trials(rng, 1, 3, centre, 0.02, 0.10), _trials(rng, 1, 20, centre, 0.02, 0.10)
        return first + last

    def module():
        benches = [side(1.0 + i) for i in range(6)]
        a, b = side(1.5), side(1.0)
        return a, b, between_trials([*benches, a, b])

    for _ in range(runs):
        a, b, spread = module()
        found = effect(a, b, resamples=300, between=spread)
        covered += found.low <= 1.5 <= found.high
        a2, b2, _ = module()
        rerun_inside += found.low <= effect(a2, b2, resamples=100).ratio <= found.high
    assert covered / runs >= 0.93
    assert rerun_inside / runs >= 0.8
    # and the ratio itself weighs the trials alike: 1.0 and 1.3 against a steady 1.0 is their geometric mean, the
    # mean of logs the widening assumes (with three trials a median of them would vary 1.35 times as much), not 1.3
    lopsided = effect([[1.0] * 3, [1.3] * 30], [[1.0] * 3, [1.0] * 30], resamples=100)
    assert math.isclose(lopsided.ratio, math.sqrt(1.3)) and lopsided.low <= lopsided.ratio <= lopsided.high
    three = effect([[1.0] * 3, [1.1] * 3, [1.6] * 20], [[1.0] * 3] * 3, resamples=100)
    assert math.isclose(three.ratio, (1.1 * 1.6) ** (1 / 3))


# --- each result's interval, widened by its module's spread between trials -------------------------------------


def _module(rng, between, n=8, trials=2, rounds=4):
    """(group, rounds in trial order, extra_info) of a module's results, process levels spread by ``between``."""
    out = []
    for i in range(n):
        cut = _trials(rng, trials, rounds, centre=1.0 + i, sigma=0.01, between=between)
        out.append(("m", [v for t in cut for v in t], {"trial_rounds": [len(t) for t in cut]}))
    return out


def test_a_results_interval_widened_by_its_modules_spread_covers_what_the_process_level_is():
    """Two trials that happen to agree say little about a re-run: with process levels 10 % apart, the interval over
    two trials' rounds covers the true level in under 85 % of results; widened by the spread pooled over a module of
    8, in at least 93 %. A quiet module (1 %) stays within quick's ±5 % almost always."""
    from bench_support.intervals import median_interval, trial_interval
    from bench_support.trials import widen_by_module

    rng = random.Random(30)
    covered = covered_alone = 0
    runs = 150
    for _ in range(runs):
        module = _module(rng, 0.10)
        group, rounds, info = module[0]
        alone = trial_interval(split_trials(rounds, info["trial_rounds"]))
        widen_by_module(module)
        covered += info["median_ci_low_s"] <= 1.0 <= info["median_ci_high_s"]
        covered_alone += alone.low <= 1.0 <= alone.high
        assert "spread between trials of the module" in info["median_ci_method"] and info["between_trials_df"] == 8
    assert covered / runs >= 0.93 and covered_alone / runs < 0.85
    quiet = within = 0
    for _ in range(100):
        module = _module(rng, 0.01)
        widen_by_module(module)
        quiet += 1
        within += all(info["median_ci_rel"] <= 0.05 for _, _, info in module)
    assert within / quiet >= 0.95
    assert median_interval([1.0] * 6).half_width_rel == 0  # (the rounds' own interval is untouched by a module)


def test_only_results_of_two_trials_or_more_are_widened_and_each_by_its_own_module():
    from bench_support.trials import widen_by_module

    rng = random.Random(31)
    noisy, quiet = _module(rng, 0.15, n=4), _module(rng, 0.005, n=4)
    quiet = [("q", rounds, info) for _, rounds, info in quiet]
    single = ("m", [1.0, 1.01, 0.99, 1.0, 1.02, 0.98], {"trial_rounds": [6]})
    spreads = widen_by_module([*noisy, *quiet, single])
    assert set(spreads) == {"m", "q"} and spreads["m"].sd_log > 10 * spreads["q"].sd_log
    assert "between_trials_sd_log" not in single[2] and "median_ci_rel" not in single[2]
    assert all(info["between_trials_sd_log"] == round(spreads["q"].sd_log, 6) for _, _, info in quiet)
    assert min(i["median_ci_rel"] for _, _, i in noisy) > max(i["median_ci_rel"] for _, _, i in quiet)


def test_the_verdict_judges_the_widened_interval_the_run_recorded():
    """Trials that agree within 1 %, in a module whose trials moved by σ 14.5 % (the 2-core VM's training epochs):
    imprecise, saying why; the same rounds without a recorded spread (an older run): precise."""
    from bench_support.report.validity import validity

    rng = random.Random(32)
    rounds = [1.0 + rng.uniform(-0.005, 0.005) for _ in range(8)] + [
        1.01 + rng.uniform(-0.005, 0.005) for _ in range(8)
    ]
    bench = {"name": "b", "stats": {"data": rounds, "rounds": 16}, "extra_info": {"trial_rounds": [8, 8], "trials": 2}}
    assert validity(bench, "quick")["noisy"] is False
    bench["extra_info"].update(between_trials_sd_log=0.145, between_trials_df=12)
    v = validity(bench, "quick")
    assert v["noisy"] is True and v["median_ci_rel"] > 0.15
    assert "the module's trials moved by σ 14.5%" in v["precision_reason"]


def test_a_fresh_process_judges_its_modules_spread_from_its_own_trials_and_the_medians_the_session_sent():
    """The session's EARLIER holds every benchmark's finished trials; a worker's only its chunk's, so the session
    sends the trial medians of the rest of the chunk's modules, and the worker's spread is the session's."""
    import types

    from bench_support.intervals import between_trials
    from bench_support.plugin import trials as plugin_trials

    mod, other = "benchmarks/test_a.py", "benchmarks/test_b.py"
    earlier = {
        f"{mod}::test_x[p1]": [[1.0, 1.1, 1.0], [1.2, 1.3]],
        f"{mod}::test_x[p2]": [[2.0, 2.2], [1.7, 1.8, 1.9]],
        f"{mod}::test_x[p3]": [[3.0, 3.1]],  # one trial so far: no spread yet
        f"{other}::test_y[q]": [[1.0], [5.0]],  # another module's: never pooled with these
    }
    session = types.SimpleNamespace(stash=pytest.Stash())
    session.stash[plugin_trials.EARLIER] = earlier
    bench = types.SimpleNamespace(fullname=f"{mod}::test_x[p3-t2of2]")
    expected = between_trials([earlier[f"{mod}::test_x[p1]"], earlier[f"{mod}::test_x[p2]"]])
    assert plugin_trials.between_so_far(session, bench) == expected
    # the chunk runs p2 and p3: the session sends p1's medians only, the worker has p2's and p3's rounds
    sent = plugin_trials.module_medians(session, {mod}, {f"{mod}::test_x[p2]", f"{mod}::test_x[p3]"})
    assert sent == {f"{mod}::test_x[p1]": [1.0, 1.25]}
    worker = types.SimpleNamespace(stash=pytest.Stash())
    worker.stash[plugin_trials.EARLIER] = {k: earlier[k] for k in (f"{mod}::test_x[p2]", f"{mod}::test_x[p3]")}
    worker.stash[plugin_trials.MODULE_MEDIANS] = json.loads(json.dumps(sent))  # as it travels
    found = plugin_trials.between_so_far(worker, bench)
    assert found.df == expected.df and math.isclose(found.sd_log, expected.sd_log)
    # nothing finished twice yet: no spread to judge by
    assert plugin_trials.between_so_far(types.SimpleNamespace(stash=pytest.Stash()), bench) is None


SPREAD_MODULE = """
import time

import pytest

pytestmark = pytest.mark.benchmark(group="spread")
GRID = {p: {"k": [1, 2, 3, 4, 5]} for p in ("smoke", "quick", "full")}


def test_level(harness, profile, edge_bench_trial, k):
    # every benchmark's second process runs at twice the first's time: a spread between trials of σ 49 %
    harness.run(lambda: time.sleep(0.002 * edge_bench_trial[0]), profile.checkpoint)
"""


def test_a_modules_spread_between_trials_stops_the_rounds_of_its_later_benchmarks(tmp_path):
    """Five benchmarks whose second trial runs at twice the first's time: once three have finished both trials, the
    others' last trials take no extra round. In fresh processes (quick's default) that needs the medians the session
    sends, since a worker holds only its own benchmark's trials; in one process (``--isolate none``) the same fixture
    reads them all from its own record (unit-tested above)."""
    (tmp_path / "test_spread.py").write_text(SPREAD_MODULE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "run.json"
    result = run_pytest("test_spread.py", "-q", "--profile", "quick", "--isolate", "benchmark", "--trials", "2",
                        "--trial-seed", "3", f"--benchmark-json={out}", cwd=str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    stopped = [b["extra_info"]["rounds_stopped"] for b in json.loads(out.read_text())["benchmarks"]]
    assert len(stopped) == 5 and stopped.count("spread between trials") == 2, stopped  # the 4th and 5th to finish
