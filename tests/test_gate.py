"""The regression gate: a Mann-Whitney U test that returns at any size, zero baselines, usage errors,
contended results and the run history band for time statistics."""

import importlib
import json
import random
from itertools import combinations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bench_support.report import main
from bench_support.report.baseline import run_baseline
from bench_support.report.gate import Rule, check_rule, gate, mann_whitney_p
from bench_support.report.runs import Run, metric
from bench_support.report.tables import compare_history

gate_module = importlib.import_module("bench_support.ranks")  # where the exact count lives

MACHINE = "Linux-CPython-3.9-64bit"


def _bench(name, rounds, extra=None, group="training"):
    data = sorted(rounds)
    n = len(data)
    stats = {
        "min": data[0],
        "max": data[-1],
        "mean": sum(data) / n,
        "median": data[n // 2],
        "iqr": data[(3 * n) // 4] - data[n // 4] if n > 1 else 0.0,
        "stddev": 0.0,
        "rounds": n,
        "data": list(rounds),
    }
    return {"name": name, "fullname": name, "group": group, "params": {}, "stats": stats, "extra_info": extra or {}}


def _run(number, benches, device="dev", profile="quick"):
    data = {
        "benchmarks": benches,
        "datetime": f"2026-11-22T00:00:{number:02d}",
        "machine_info": {"device": {"cpu": {"model": "X"}}},
        "edge_bench": {"profile": profile},
    }
    return Run(device, f"/r/{device}/m/{number:04d}_{profile}.json", number, data)


def _noisy(center, n=8, rel=0.02, seed=0):
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-rel, rel)) for _ in range(n)]


def _save(root, run):
    folder = root / run.device / MACHINE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run.number:04d}_quick.json").write_text(json.dumps(run.data))


def _saved_pair(root, new_extra=None, old_extra=None):
    extra = {"samples_per_s": 50.0, "energy_j": 100.0}
    _save(root, _run(1, [_bench("test_a[x]", _noisy(2.0, seed=1), {**extra, **(old_extra or {})})]))
    _save(root, _run(2, [_bench("test_a[x]", _noisy(2.0, seed=2), {**extra, **(new_extra or {})})]))


def _enumerated_p(worse, better):
    """The textbook definition, for small samples: the share of the pooled sample's splits whose U is at
    least the observed one (ties count half)."""

    def u_stat(xs, ys):
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)

    pooled = list(worse) + list(better)
    observed = u_stat(worse, better)
    splits = list(combinations(range(len(pooled)), len(worse)))
    extreme = 0
    for chosen in splits:
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        extreme += u_stat(xs, ys) >= observed - 1e-9
    return extreme / len(splits)


# --- the Mann-Whitney U test ------------------------------------------------------------------


def test_exact_p_values_computed_by_hand():
    # n = m = 3: the 20 splits have U = 0..9 with counts 1 1 2 3 3 3 3 2 1 1
    assert mann_whitney_p([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20)
    assert mann_whitney_p([1, 3, 5], [2, 4, 6]) == pytest.approx(16 / 20)  # U = 3
    assert mann_whitney_p([2, 4, 6], [1, 3, 5]) == pytest.approx(7 / 20)  # U = 6
    # n = m = 2: U over the 6 splits is 0 1 2 2 3 4
    assert mann_whitney_p([3, 4], [1, 2]) == pytest.approx(1 / 6)
    assert mann_whitney_p([2, 4], [1, 3]) == pytest.approx(2 / 6)
    # ties: every split of [2, 2, 2, 2] has U = 2
    assert mann_whitney_p([2, 2], [2, 2]) == pytest.approx(1.0)
    # [1, 2] against [2, 3]: U = 0.5; splits of {1, 2, 2, 3} give U 0 .5 .5 1.5 1.5 2 ... (enumerated)
    assert mann_whitney_p([1, 2], [2, 3]) == pytest.approx(_enumerated_p([1, 2], [2, 3]))
    assert mann_whitney_p([], [1.0]) == 1.0


def test_symmetric_samples_give_about_one_half():
    same = [1.0, 2.0, 3.0, 4.0, 5.0]
    p = mann_whitney_p(same, same)
    assert 0.5 <= p < 0.7  # P(U >= n*m/2) = (1 + P(U = n*m/2)) / 2 for a symmetric distribution
    assert p == pytest.approx(_enumerated_p(same, same))
    evens = [2.0 * i for i in range(30)]
    odds = [2.0 * i + 1 for i in range(30)]
    assert mann_whitney_p(evens, odds) == pytest.approx(0.5, abs=0.1)
    assert mann_whitney_p(odds, evens) == pytest.approx(0.5, abs=0.1)


def _forbid_exact(monkeypatch):
    calls = []
    exact = getattr(gate_module, "_exact_p", None)

    def counted(*args, **kwargs):
        calls.append(args)
        return exact(*args, **kwargs)

    monkeypatch.setattr(gate_module, "_exact_p", counted, raising=False)
    return calls


@pytest.mark.parametrize("n", [30, 100])
def test_large_samples_take_the_normal_approximation(monkeypatch, n):
    calls = _forbid_exact(monkeypatch)
    base = _noisy(1.0, n=n, rel=0.05, seed=n)
    same = _noisy(1.0, n=n, rel=0.05, seed=n + 1)
    slower = [x * 1.2 for x in same]
    assert 0.0 <= mann_whitney_p(same, base) <= 1.0
    assert mann_whitney_p(slower, base) < 1e-6
    assert mann_whitney_p(base, slower) > 0.999
    assert calls == []
    assert gate_module.EXACT_MAX_N < 2 * 30  # the full profile's 30 checkpoint rounds are judged asymptotically


def test_small_samples_take_the_exact_count(monkeypatch):
    calls = _forbid_exact(monkeypatch)
    mann_whitney_p(_noisy(1.0, n=8, seed=1), _noisy(1.0, n=8, seed=2))
    assert len(calls) == 1


samples = st.lists(st.integers(0, 5), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_the_exact_count_is_the_enumeration_with_ties(worse, better):
    assert mann_whitney_p(worse, better) == pytest.approx(_enumerated_p(worse, better), abs=1e-12)


small = st.lists(st.integers(0, 6), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(small, small, st.sampled_from([0.5, 1, 2, 4]))
def test_exact_p_is_a_probability_and_falls_when_worse_shifts_up(worse, better, shift):
    """Up to 40 rounds in all, with ties made and broken by the shift."""
    p = mann_whitney_p(worse, better)
    assert 0.0 <= p <= 1.0
    assert mann_whitney_p([x + shift for x in worse], better) <= p + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 100), st.integers(1, 100), st.floats(0.001, 50.0))
def test_asymptotic_p_is_a_probability_and_falls_when_worse_shifts_up(seed, n, m, shift):
    """Past the crossover, on distinct rounds (ties change the normal approximation's variance)."""
    assume(n + m > gate_module.EXACT_MAX_N)
    pooled = [x / 1000.0 for x in random.Random(seed).sample(range(100_000), n + m)]
    worse, better = pooled[:n], pooled[n:]
    moved = [x + shift for x in worse]
    assume(len(set(moved + better)) == n + m)
    p = mann_whitney_p(worse, better)
    assert 0.0 <= p <= 1.0
    assert mann_whitney_p(moved, better) <= p + 1e-12
    with_ties = [round(x) for x in pooled]
    assert 0.0 <= mann_whitney_p(with_ties[:n], with_ties[n:]) <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(10, 30), st.floats(0.0, 0.1), st.sampled_from([None, 0.01]))
def test_exact_and_asymptotic_agree_at_the_crossover(seed, n, shift, grid):
    """At the crossover size (n + m = EXACT_MAX_N) the two paths differ by less than 0.02 in p."""
    total = gate_module.EXACT_MAX_N
    rng = random.Random(seed)
    draw = [rng.gauss(1.0, 0.05) for _ in range(total)]
    if grid:  # rounds on a coarse clock: many ties
        draw = [round(x / grid) * grid for x in draw]
    worse, better = [x + shift for x in draw[:n]], draw[n:]
    exact = mann_whitney_p(worse, better, method="exact")
    normal = mann_whitney_p(worse, better, method="asymptotic")
    assert abs(exact - normal) < 0.02


# --- zero baselines ---------------------------------------------------------------------------


def _one(number, extra, rounds=None):
    return _run(number, [_bench("b", rounds or _noisy(1.0, seed=number), extra)])


@pytest.mark.parametrize("name, new", [("stall_frac", 0.6), ("disk_read_mb", 120.0)])
def test_leaving_a_zero_baseline_fails_a_relative_rule(name, new):
    [verdict] = gate(_one(1, {name: 0.0}), _one(2, {name: new}), [Rule.parse(f"{name}:10%")])
    assert verdict.failed and "+0.0%" not in verdict.note


@pytest.mark.parametrize(
    "rule, old, new",
    [
        ("stall_frac:10%", 0.0, 0.0),  # nothing changed
        ("stall_frac:10%", 0.6, 0.0),  # better
        ("stall_frac:10%", 0.0, 0.0004),  # both below the unit's floor (0.1 % of an epoch)
        ("disk_read_mb:10%", 0.0, 0.002),  # less than a page read
        ("samples_per_s:-5%", 0.0, 50.0),  # a rate that left zero got better
    ],
)
def test_zero_and_tiny_baselines_that_did_not_get_worse_pass(rule, old, new):
    name = rule.split(":")[0]
    [verdict] = gate(_one(1, {name: old}), _one(2, {name: new}), [Rule.parse(rule)])
    assert not verdict.failed, verdict.note


def test_a_count_that_leaves_zero_fails():
    [verdict] = gate(_one(1, {"crash_torn": 0}), _one(2, {"crash_torn": 1}), [Rule.parse("crash_torn:10%")])
    assert verdict.failed


# --- usage errors: one line, exit 2 -------------------------------------------------------------


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, (captured.out, captured.err)
    assert "Traceback" not in captured.err
    return lines[0]


def test_an_unknown_metric_is_named_with_the_close_one(tmp_path, capsys):
    _saved_pair(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--fail-on", "samples_per_sec:-5%"]) == 2
    line = _one_error_line(capsys)
    assert "samples_per_sec" in line and "did you mean samples_per_s?" in line


def test_a_figure_that_is_not_a_number_is_refused(tmp_path, capsys):
    _saved_pair(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--fail-on", "model:5%"]) == 2
    assert "model" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "rule, better, meant", [("samples_per_s:5%", "higher", "samples_per_s:-5%"), ("median:-10%", "lower", "median:10%")]
)
def test_a_rule_against_the_vocabulary_direction_is_refused(tmp_path, capsys, rule, better, meant):
    _saved_pair(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--fail-on", rule]) == 2
    line = _one_error_line(capsys)
    assert f"{better} is better" in line and meant in line


def test_a_figure_without_direction_takes_either_sign():
    for text in ("disk_read_mb:10%", "disk_read_mb:-10%"):
        check_rule(Rule.parse(text))


def test_an_unknown_device_is_an_error(tmp_path, capsys):
    _saved_pair(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--device", "nosuch", "--fail-on", "median:10%"]) == 2
    line = _one_error_line(capsys)
    assert "nosuch" in line and "dev" in line


def test_a_missing_or_empty_results_folder_is_an_error_for_the_gate(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--no-plots", "--fail-on", "median:10%"]) == 2
    assert "nope" in _one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--no-plots", "--fail-on", "median:10%"]) == 2
    assert "no saved runs" in _one_error_line(capsys)
    assert main([str(tmp_path / "nope"), "--no-plots"]) == 2  # a mistyped path, for the report alone too
    assert _one_error_line(capsys).endswith("nope: no such directory")


@pytest.mark.parametrize(
    "content, why",
    [
        ("{not json", "JSON"),
        ("[1, 2]", "object"),
        ("{}", "benchmarks"),
        ('{"benchmarks": {}}', "benchmarks"),
        ('{"benchmarks": []}', "no benchmarks"),
        ('{"benchmarks": [{"name": "test_a[x]", "stats": [1, 2]}]}', "stats"),
        ('{"benchmarks": [{"name": "test_a[x]", "stats": {"data": "abc"}}]}', "data"),
        ('{"benchmarks": [{"name": "test_a[x]", "stats": {"median": "fast"}}]}', "median"),
        ('{"benchmarks": [{"name": "test_a[x]", "extra_info": 3}]}', "extra_info"),
        ('{"benchmarks": [7]}', "benchmarks[0]"),
    ],
)
def test_a_malformed_baseline_is_one_line_and_exit_2(tmp_path, capsys, content, why):
    _saved_pair(tmp_path / "results")
    baseline = tmp_path / "base.json"
    baseline.write_text(content)
    args = [str(tmp_path / "results"), "--no-plots", "--fail-on", "median:10%", "--baseline", str(baseline)]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "--baseline" in line and why in line


def test_the_verdict_names_the_alpha_used():
    old = _one(1, {}, _noisy(2.0, seed=1))
    new = _one(2, {}, _noisy(2.0, seed=2))
    [verdict] = gate(old, new, [Rule.parse("median:10%")], alpha=0.01)
    assert "0.01" in verdict.test and "0.05" not in verdict.test


def test_a_rule_no_benchmark_carries_says_so(tmp_path, capsys):
    _saved_pair(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--fail-on", "rss_peak_mb:10%"]) == 3  # judged nothing: not a pass
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gate")]
    assert any("rss_peak_mb" in line and "not judged" in line for line in lines), lines
    assert lines[-1].startswith("gate: no check could be judged")
    assert main([str(tmp_path), "--no-plots", "--fail-on", "rss_peak_mb:10%", "--allow-unjudged"]) == 0


# --- contended and throttled results -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["contended", "throttled"])
@pytest.mark.parametrize("side", ["latest", "baseline"])
def test_contended_or_throttled_results_are_not_judged(flag, side):
    old_validity = {flag: True} if side == "baseline" else {flag: False}
    new_validity = {flag: True} if side == "latest" else {}
    old = _one(1, {"energy_j": 100.0, "validity": old_validity}, _noisy(2.0, seed=1))
    new = _one(2, {"energy_j": 150.0, "validity": new_validity}, [x * 1.5 for x in _noisy(2.0, seed=2)])
    verdicts = gate(old, new, [Rule.parse("energy_j:5%"), Rule.parse("median:10%")])
    assert len(verdicts) == 2
    for verdict in verdicts:
        assert not verdict.failed and verdict.note.startswith(f"not judged: {flag} (")


def test_missing_or_unknown_validity_keys_are_judged():
    old = _one(1, {"energy_j": 100.0, "validity": {"throttled": None}})
    new = _one(2, {"energy_j": 150.0, "validity": {"noisy": False}})
    [verdict] = gate(old, new, [Rule.parse("energy_j:5%")])
    assert verdict.failed


def test_the_command_says_a_contended_result_was_not_judged(tmp_path, capsys):
    why = "contended: other processes used 49% of the CPU during the rounds"
    _saved_pair(tmp_path, new_extra={"energy_j": 150.0, "validity": {"contended": True, "conditions": [why]}})
    assert main([str(tmp_path), "--no-plots", "--fail-on", "energy_j:5%"]) == 3
    out = capsys.readouterr().out
    assert "gate skip: dev test_a[x] energy_j 100 → 150 (not judged: contended (latest run: other processes" in out
    assert "gate: 0 failed, 0 passed, 1 not judged" in out


# --- time statistics and the run history ----------------------------------------------------------


def test_a_time_change_within_the_run_history_does_not_fail():
    """Rounds agree within each run, but the medians of earlier runs drifted by more than this change."""
    runs = [_one(i, {}, _noisy(center, rel=0.01, seed=i)) for i, center in enumerate((2.0, 1.6, 2.0, 2.3), 1)]
    rule = [Rule.parse("median:10%")]
    assert gate(runs[-2], runs[-1], rule)[0].failed  # rounds alone: +15 %, p tiny
    verdict = gate(runs[-2], runs[-1], rule, history=runs[:-1])[0]
    assert not verdict.failed and "history" in verdict.note
    far = _one(5, {}, _noisy(3.0, rel=0.01, seed=5))
    assert gate(runs[-2], far, rule, history=runs[:-1])[0].failed  # beyond the band it still fails


# --- the whole command on a full profile's worth of rounds ---------------------------------------


def _many(number, n_bench=60, n_rounds=30, slow=()):
    benches = []
    for i in range(n_bench):
        factor = 1.2 if i in slow else 1.0
        rounds = [x * factor for x in _noisy(1.0 + i / 100, n=n_rounds, rel=0.03, seed=1000 * number + i)]
        benches.append(_bench(f"test_ckpt[{i}]", rounds, {"total_ms": 10.0 * factor}, group="checkpoint"))
    return _run(number, benches, profile="full")


def test_the_command_judges_30_rounds_without_the_exact_count(tmp_path, monkeypatch, capsys):
    calls = _forbid_exact(monkeypatch)
    _save(tmp_path, _many(1))
    _save(tmp_path, _many(2))
    assert main([str(tmp_path), "--no-plots", "--fail-on", "median:10%"]) == 0
    out = capsys.readouterr().out
    assert out.count("gate ok: dev test_ckpt[") == 60
    _save(tmp_path, _many(3, slow={7}))
    assert main([str(tmp_path), "--no-plots", "--fail-on", "median:10%"]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gate FAIL")]
    assert len(failed) == 1 and "test_ckpt[7] median" in failed[0]
    assert calls == []


# --- the machine's speed between runs ---------------------------------------------------------------


@pytest.mark.parametrize("probe_new, corrected", [(6.0, True), (4.0, False), (5.4, False), (None, False)])
def test_a_time_change_is_judged_corrected_when_the_speed_probe_moved(probe_new, corrected):
    """The same fixed workload took 20 % longer: the machine changed too, so the time is judged as the baseline's
    machine would have measured it (still 25 % slower here: it fails, and says it was corrected). A probe 20 %
    *faster* beside a benchmark 50 % slower explains nothing, so the change is judged as measured (and fails)."""
    old = _one(1, {"samples_per_s": 100.0, "peak_mb": 1.0, "speed_probe_ms": 5.0}, _noisy(2.0, seed=1))
    new_extra = {"samples_per_s": 70.0, "speed_probe_ms": probe_new}
    new = _one(2, new_extra, [x * 1.5 for x in _noisy(2.0, seed=2)])
    verdicts = gate(old, new, [Rule.parse("median:10%"), Rule.parse("samples_per_s:-5%")])
    assert [v.judged for v in verdicts] == [True, True]
    assert [v.failed for v in verdicts] == [True, True]
    says = [": the machine ran 20% slower (speed probe 5 → 6 ms))", "judged corrected for the machine's speed (x"]
    assert all(all(part in v.note for part in says) == corrected for v in verdicts)
    assert ("(x0.833:" in verdicts[0].note, "(x1.200:" in verdicts[1].note) == (corrected, corrected)  # time, rate
    if corrected:
        assert verdicts[0].new == pytest.approx(metric(new.benchmarks()[0], "median") * 5 / 6)


def test_a_change_the_machine_explains_passes_once_corrected():
    """20 % slower, and the probe 20 % slower: corrected, no change is left to fail on."""
    old = _one(1, {"speed_probe_ms": 5.0, "energy_j": 10.0}, _noisy(2.0, seed=1))
    new = _one(2, {"speed_probe_ms": 6.0, "energy_j": 13.0}, [x * 1.2 for x in _noisy(2.0, seed=1)])
    median, energy = gate(old, new, [Rule.parse("median:10%"), Rule.parse("energy_j:10%")])
    assert median.judged and not median.failed and "corrected" in median.note
    assert not energy.judged and energy.note.startswith("not judged: the machine ran 20% slower")  # no correction


def test_a_figure_not_derived_from_time_is_judged_whatever_the_machine_speed():
    old = _one(1, {"rss_peak_mb": 100.0, "speed_probe_ms": 5.0})
    new = _one(2, {"rss_peak_mb": 150.0, "speed_probe_ms": 9.0})
    [verdict] = gate(old, new, [Rule.parse("rss_peak_mb:10%")])
    assert verdict.judged and verdict.failed


@pytest.mark.parametrize(
    "peak_new, file_new, judged, fails, says",
    [
        (900.0, 620.0, False, False, "not judged: rss_peak_mb 900 as measured, 700 without the change of "
                                     "file-backed pages 420 → 620 MB"),
        (1000.0, 620.0, True, True, "judged without the change of file-backed pages 420 → 620 MB"),
        (720.0, 480.0, True, False, "the same verdict as measured"),
        (900.0, 430.0, True, True, ""),
        (900.0, None, True, True, ""),
    ],
    ids=["only-the-correction-passes", "fails-either-way", "passes-either-way", "same-cache", "not-recorded"],
)  # fmt: skip
def test_an_rss_change_of_the_file_backed_pages_is_judged_both_ways(peak_new, file_new, judged, fails, says):
    """rss_peak_mb 700 -> 900 MB while the file-backed part rose by 200 MB: the page cache's, or a library the change
    itself maps; the gate cannot tell, so it judges both figures and leaves unjudged what only the correction passes."""
    old = _one(1, {"rss_peak_mb": 700.0, "rss_file_mb": 420.0, "rss_train_delta_mb": 50.0})
    new_extra = {"rss_peak_mb": peak_new, "rss_train_delta_mb": 50.0}
    if file_new is not None:
        new_extra["rss_file_mb"] = file_new
    peak, delta = gate(old, _one(2, new_extra), [Rule.parse("rss_peak_mb:10%"), Rule.parse("rss_train_delta_mb:10%")])
    assert (peak.judged, peak.failed) == (judged, fails), peak.note
    assert says in peak.note and ("file-backed" in peak.note) == bool(says)
    assert delta.judged and not delta.failed and "file-backed" not in delta.note  # a delta is not absolute


def test_a_probe_noisier_than_its_change_keeps_quiet():
    from bench_support.report.runs import machine_moved

    before = {"stats": {"median": 1.0}, "extra_info": {"speed_probe_ms": 5.0, "speed_probe_iqr": 0.15}}
    after = {"stats": {"median": 1.3}, "extra_info": {"speed_probe_ms": 6.25, "speed_probe_iqr": 0.15}}
    assert machine_moved(before, after) == ""  # +25 %, but the two probes' own spread adds up to 30 %
    after["extra_info"]["speed_probe_iqr"] = 0.02
    assert machine_moved(before, after).startswith("the machine ran 25% slower")


def test_the_comparison_table_names_a_change_of_the_page_cache():
    from bench_support.report.tables import compare_history

    first = _one(1, {"rss_peak_mb": 700.0, "rss_file_mb": 420.0})
    second = _one(2, {"rss_peak_mb": 900.0, "rss_file_mb": 620.0})
    text = "\n".join(compare_history([first, second]))
    said = (
        "file-backed pages 420 → 620 MB (the page cache's, or libraries and files the work maps): "
        "the RSS changes above include it"
    )
    assert said in text
    third = _one(3, {"rss_peak_mb": 905.0, "rss_file_mb": 625.0})
    assert "file-backed pages" not in "\n".join(compare_history([second, third]))


def test_other_photos_leave_the_continual_results_unjudged_and_the_rest_judged():
    """Photos added to the same folder: the continual results measured another workload (the gate failed them at
    +301 %), while the training results did not change meaning and keep being judged."""
    runs = []
    for number, files, centre in ((1, "8 files 0a", 1.0), (2, "38 files 9c", 3.0)):
        run = _run(number, [_bench("t", _noisy(centre, seed=number)),
                            _bench("c", _noisy(centre, seed=number), group="continual")])  # fmt: skip
        run.data["edge_bench"]["settings"] = {"photos": "/home/me/data_real", "photo_files": files}
        runs.append(run)
    assert run_baseline(runs[:1], runs[1].data) is runs[0]  # the run as a whole ran alike
    verdicts = {v.benchmark: v for v in gate(runs[0], runs[1], [Rule.parse("median:10%")])}
    assert verdicts["t"].failed and verdicts["t"].judged
    assert not verdicts["c"].failed and not verdicts["c"].judged
    assert verdicts["c"].note == "not judged: it ran on other photos (photo_files: '8 files 0a' -> '38 files 9c')"
    table = "\n".join(compare_history(runs))
    assert "   t (against 0001_quick)" in table and "   c (no earlier run alike)" in table
