"""The report: loading whatever lies in results/, tables, CSV, plots, validity, the gate."""

import copy
import csv
import glob
import json
import os
import random

import pytest

from bench_support import report
from bench_support.report import main
from bench_support.report.gate import Rule, gate, history_band, mann_whitney_p, noise_band
from bench_support.report.runs import Run, load_runs
from bench_support.report.tables import compare_devices, compare_runs
from bench_support.report.validity import validity
from conftest import run_pytest


def _bench(name, group, rounds, extra=None):
    data = sorted(rounds)
    n = len(data)
    q1, q3 = data[n // 4], data[(3 * n) // 4] if n > 1 else data[0]
    stats = {
        "min": data[0],
        "max": data[-1],
        "mean": sum(data) / n,
        "median": data[n // 2],
        "iqr": q3 - q1,
        "stddev": 0.0,
        "rounds": n,
        "data": list(rounds),
    }
    return {
        "name": name,
        "fullname": name,
        "group": group,
        "params": {"x": 1},
        "stats": stats,
        "extra_info": dict(extra or {}),
    }


def _run(device, number, benches, facts=None, profile="quick"):
    data = {
        "benchmarks": benches,
        "datetime": f"2026-11-22T00:00:{number:02d}",
        "machine_info": {"device": facts or {"cpu": {"model": "X"}, "torch": {"version": "2.14"}}},
        "edge_bench": {"profile": profile},
    }
    return Run(device, f"/r/{device}/m/{number:04d}_quick.json", number, data)


def _noisy(center, n=8, rel=0.02, seed=0):
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-rel, rel)) for _ in range(n)]


def _pair(seed_old=1, seed_new=2):
    old = _run(
        "dev",
        1,
        [_bench("test_a[x]", "training", _noisy(2.0, seed=seed_old), {"energy_j": 100.0, "samples_per_s": 50.0})],
    )
    new = _run(
        "dev",
        2,
        [_bench("test_a[x]", "training", _noisy(2.0, seed=seed_new), {"energy_j": 101.0, "samples_per_s": 49.5})],
    )
    return old, new


RULES = [Rule.parse(r) for r in ("median:10%", "energy_j:5%", "samples_per_s:-5%")]


def test_honest_runs_pass_the_gate():
    old, new = _pair()
    verdicts = gate(old, new, RULES)
    assert len(verdicts) == 3 and not any(v.failed for v in verdicts)


@pytest.mark.parametrize(
    "metric, change",
    [("energy_j", 1.2), ("samples_per_s", 0.8), ("median", 1.2)],
)
def test_a_metric_20_percent_worse_fails_naming_benchmark_and_metric(metric, change):
    old, new = _pair()
    bench = new.data["benchmarks"][0]
    if metric == "median":
        bench["stats"]["data"] = [x * change for x in bench["stats"]["data"]]
        bench["stats"]["median"] *= change
    else:
        bench["extra_info"][metric] *= change
    failed = [v for v in gate(old, new, RULES) if v.failed]
    assert [(v.benchmark, v.metric) for v in failed] == [("test_a[x]", metric)]
    assert failed[0].test  # says which test decided


def test_noise_band():
    assert noise_band(0.0, 8) == 0.0
    assert noise_band(0.1349, 8) == pytest.approx(2 * 2**0.5 * 0.1 / 8**0.5)
    assert noise_band(0.1, 3) > noise_band(0.1, 12)


def test_run_to_run_drift_in_the_history_keeps_the_gate_quiet():
    """Rounds agree within a run, but runs drift: the history widens the band."""
    runs = [
        _run("dev", i, [_bench("b", "g", _noisy(2.0, seed=i), {"samples_per_s": v})])
        for i, v in enumerate((2000.0, 1500.0, 1900.0, 1450.0), 1)
    ]
    rule = [Rule.parse("samples_per_s:-10%")]
    assert gate(runs[-2], runs[-1], rule)[0].failed  # rounds alone: the drift looks like a regression
    verdict = gate(runs[-2], runs[-1], rule, history=runs[:-1])[0]
    assert not verdict.failed and "noise band" in verdict.note
    assert history_band([1.0]) == 0.0 and history_band([1.0, 1.0]) == 0.0


def test_the_gate_does_not_fire_on_noise_or_without_rounds():
    wide_old = _run("dev", 1, [_bench("b", "g", _noisy(2.0, rel=0.3, seed=3), {"energy_j": 100.0})])
    wide_new = _run("dev", 2, [_bench("b", "g", _noisy(2.0, rel=0.3, seed=4), {"energy_j": 112.0})])
    assert not any(v.failed for v in gate(wide_old, wide_new, [Rule.parse("energy_j:5%")]))
    one_old = _run("dev", 1, [_bench("b", "g", [1.0], {"energy_j": 100.0})])
    one_new = _run("dev", 2, [_bench("b", "g", [1.5], {"energy_j": 150.0})])
    verdicts = gate(one_old, one_new, [Rule.parse("energy_j:5%"), Rule.parse("median:5%")])
    assert not any(v.failed for v in verdicts) and all("cannot judge" in v.note for v in verdicts)


def test_mann_whitney_exact_p_values():
    assert mann_whitney_p([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20)
    assert mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(1.0)
    assert mann_whitney_p([2, 2], [2, 2]) == pytest.approx(1.0)


def test_rules_parse_and_reject_nonsense():
    assert Rule.parse("energy_j:5%") == Rule("energy_j", 0.05)
    assert Rule.parse("samples_per_s:-5%") == Rule("samples_per_s", -0.05)
    with pytest.raises(ValueError, match="expected METRIC:THRESHOLD%"):
        Rule.parse("energy_j>5")


def test_validity_flags():
    steady = _bench("b", "g", _noisy(1.0, rel=0.01))
    assert validity(steady, "quick")["noisy"] is False and validity(steady, "quick")["invalid"] is False
    noisy = _bench("b", "g", [1.0, 1.3, 0.9, 1.0, 1.15, 0.95, 1.1, 1.05])
    assert validity(noisy, "quick")["noisy"] is True
    short = _bench("b", "g", [1.0, 1.0])
    assert validity(short, "full")["invalid"] is True
    assert validity(short, "full")["throttled"] is None  # not judged, and the reason is given


def test_the_report_survives_empty_corrupt_and_old_files(tmp_path, capsys):
    assert main([str(tmp_path), "--no-plots"]) == 0
    assert "no saved runs yet" in capsys.readouterr().out
    device = tmp_path / "old-box" / "Linux-CPython-3.9-64bit"
    device.mkdir(parents=True)
    (device / "0001_old.json").write_text(json.dumps({"benchmarks": [{"name": "test_x", "stats": {"median": 1.0}}]}))
    (device / "0002_torn.json").write_text('{"benchmarks": [')
    (device / "0003_other.json").write_text('{"hello": 1}')
    (device / "0004_new.json").write_text(
        json.dumps(_run("old-box", 4, [_bench("test_x", "training", [0.9, 1.0, 1.1], {"rss_peak_mb": 500.0})]).data)
    )
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0002_torn.json: skipped, not readable JSON" in out
    assert "0003_other.json: skipped, not a pytest-benchmark run" in out
    assert "0001_old.json: saved by an older suite or without its plugin" in out
    assert "(against 0001_old)" in out and "rss_peak_mb – → 500" in out
    with open(tmp_path / "report.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    # Only what the runs measured is drawn: one training result with its rounds, no memory parts, no power.
    assert [os.path.basename(p) for p in glob.glob(str(tmp_path / "plots" / "*.png"))] == ["training_epoch_times.png"]


def test_runs_saved_by_an_older_suite_are_loaded_and_compared(tmp_path):
    """A run without the edge_bench block (no profile) next to one with it: both load and compare."""
    folder = tmp_path / "box" / "Linux-CPython-3.9-64bit"
    folder.mkdir(parents=True)
    old = _run("box", 1, [_bench("test_a[x]", "training", [1.0, 1.01, 1.02], {"samples_per_s": 40.0})]).data
    del old["edge_bench"]
    new = _run("box", 2, [_bench("test_a[x]", "training", [0.9, 0.91, 0.92], {"samples_per_s": 50.0})]).data
    (folder / "0001_quick.json").write_text(json.dumps(old))
    (folder / "0002_quick.json").write_text(json.dumps(new))

    runs, problems = load_runs(str(tmp_path))
    assert [(r.label, r.number, r.profile) for r in runs] == [("0001_quick", 1, None), ("0002_quick", 2, "quick")]
    assert problems == [
        f"{folder / '0001_quick.json'}: saved by an older suite or without its plugin (no edge_bench block); "
        "shown with what it has"
    ]
    lines = compare_runs(runs[0], runs[1])
    assert lines[0] == "== box: 0002_quick against 0001_quick"
    assert "      median 1.01 → 0.91 s (-9.9%); samples_per_s 40 → 50 (+25.0%)" in lines
    # the older run as the newer side: no profile, so no minimum rounds to miss and no [INVALID] flag
    assert "   test_a[x]" in compare_runs(runs[1], runs[0])
    assert "samples_per_s: box=40  other=50" in "\n".join(
        compare_devices({"box": runs[0], "other": Run("other", runs[1].path, 2, runs[1].data)})
    )
    verdicts = gate(runs[0], runs[1], [Rule.parse("samples_per_s:-5%")])
    assert [(v.metric, v.failed) for v in verdicts] == [("samples_per_s", False)]


def test_the_package_re_exports_what_the_plugin_and_scripts_use():
    assert report.validity is validity and report.gate is gate and report.Rule is Rule
    assert report.load_runs is load_runs and report.compare_runs is compare_runs
    assert report.compare_devices is compare_devices and report.mann_whitney_p is mann_whitney_p
    assert callable(report.main) and callable(report.write_csv) and callable(report.write_plots)


def test_devices_side_by_side_name_their_differing_facts():
    a = _run("board-a", 1, [_bench("test_a[x]", "training", [1.0, 1.1, 1.2], {"samples_per_s": 50.0})])
    b = _run(
        "board-b",
        1,
        [_bench("test_a[x]", "training", [2.0, 2.1, 2.2], {"samples_per_s": 25.0})],
        facts={"cpu": {"model": "Y"}, "torch": {"version": "2.14"}, "jetson": {"power_mode": "15W"}},
    )
    text = "\n".join(compare_devices({"board-a": a, "board-b": b}))
    assert "board-a vs board-b differ: cpu.model: 'X' -> 'Y'" in text
    assert "jetson.power_mode: None -> '15W'" in text
    assert "samples_per_s: board-a=50  board-b=25" in text


def test_saved_runs_pass_honestly_and_fail_when_made_worse(tmp_path, shared_data_dir):
    """Two real saved runs of the same device; then a copy with one metric 20 % worse."""
    results = tmp_path / "results"
    args = [
        "benchmarks/test_dataloader.py",
        "-k",
        "test_loader_pass and w0 and 32px",  # one benchmark (in two trials) is all the gate needs
        "--profile",
        "quick",
        "--data-dir",
        shared_data_dir,
        "--save-results",
        str(results),
        "--device-name",
        "gate-box",
    ]
    for _ in range(2):
        result = run_pytest(*args)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    saved = sorted(glob.glob(str(results / "gate-box" / "*" / "*.json")))
    assert len(saved) == 2
    flags = json.load(open(saved[-1]))["benchmarks"][0]["extra_info"]["validity"]
    assert set(flags) >= {"noisy", "invalid", "throttled"}

    rules = ["--fail-on", "rss_peak_mb:10%", "--fail-on", "rss_tree_peak_mb:10%", "--no-plots"]
    # nothing fails (on a busy machine the results are contended and nothing is judged: allowed here)
    assert main([str(results), *rules, "--allow-unjudged"]) == 0

    # the copy as if measured on a quiet machine (this one may be shared: a contended run is not judged)
    latest = json.load(open(saved[-1]))
    latest["benchmarks"][0]["extra_info"]["validity"].update(contended=False, throttled=False)
    with open(saved[-1], "w") as fh:
        json.dump(latest, fh)
    worse = copy.deepcopy(latest)
    worse["benchmarks"][0]["extra_info"]["rss_peak_mb"] *= 1.2
    worse_path = os.path.join(os.path.dirname(saved[-1]), "0003_worse.json")
    with open(worse_path, "w") as fh:
        json.dump(worse, fh)
    assert main([str(results), *rules]) == 1
    worse["benchmarks"][0]["extra_info"]["validity"]["contended"] = True
    with open(worse_path, "w") as fh:
        json.dump(worse, fh)
    # contended: not judged, so not failed (0 when another result was judged ok, 3 when nothing could be)
    assert main([str(results), *rules]) in (0, 3)


def test_a_later_partial_run_does_not_empty_the_plots_of_what_it_did_not_run():
    from bench_support.report.plots import latest_with
    from bench_support.report.runs import Run

    def run(number, groups):
        benches = [{"name": f"test_{g}[x]", "group": g, "extra_info": {}} for g in groups]
        return Run("dev", f"/r/dev/m/{number:04d}_quick.json", number, {"benchmarks": benches})

    full, partial = run(1, ["training", "checkpoint", "dataloader"]), run(2, ["dataloader"])
    history = {"dev": [full, partial]}
    assert latest_with(history, "dataloader") == {"dev": partial}
    assert latest_with(history, "checkpoint") == {"dev": full}
    assert latest_with(history, "pagecache") == {}


def test_each_benchmark_is_compared_with_the_last_run_that_ran_it_alike():
    from bench_support.report.tables import compare_history

    def run(number, profile, benches, partial=False, policy="default"):
        block = {"profile": profile, "settings": {"thread_policy": policy}, "selection": {"partial": partial}}
        data = {"benchmarks": benches, "edge_bench": block}
        return Run("dev", f"/r/dev/m/{number:04d}_{profile}.json", number, data)

    # Six equal rounds: a precise median (no flag in the lines below).
    a1, b1 = _bench("test_a[x]", "training", [1.0] * 6), _bench("test_b[x]", "training", [2.0] * 6)
    smoke = _bench("test_a[x]", "training", [0.1])
    a3 = _bench("test_a[x]", "training", [1.5] * 6)
    history = [run(1, "quick", [a1, b1]), run(2, "smoke", [smoke]), run(3, "quick", [a3], partial=True)]
    lines = compare_history(history)
    assert lines[0] == (
        "== dev: 0003_quick (quick profile, partial run), each benchmark against the last run that ran it alike"
    )
    assert lines[1] == "   not compared with the previous run 0002_smoke: profile: 'smoke' -> 'quick'"
    assert "   test_a[x] (against 0001_quick)" in lines
    assert any("median 1 → 1.5 s (+50.0%)" in line for line in lines)  # 0001's 1.0 s, not the smoke run's 0.1 s
    other_policy = history + [run(4, "quick", [a3], policy="reserve")]
    lines = compare_history(other_policy)
    assert "thread_policy: 'default' -> 'reserve'" in lines[1]
    assert "   test_a[x] (no earlier run alike)" in lines


def test_a_peak_is_drawn_in_its_parts_and_a_plot_with_nothing_to_draw_is_removed(tmp_path):
    from bench_support.report.plots import rss_parts, write_plots

    info = {"rss_baseline_mb": 700.0, "rss_delta_mb": 50.0, "rss_peak_mb": 750.0, "rss_tree_peak_mb": 900.0}
    latest = {"box": _run("box", 1, [_bench("test_t[m]", "training", [1.0, 1.1, 0.9], dict(info, energy_j=9.0))])}
    parts = {"rss_at_start_mb": 0.0, "rss_baseline_mb": 700.0, "rss_delta_mb": 50.0, "rss_tree_peak_mb": 150.0}
    assert rss_parts(latest) == {"m": parts}  # saved without the run's start figure: no start part
    latest["box"].data["edge_bench"]["rss_at_start_mb"] = 600.0
    assert rss_parts(latest)["m"] == dict(parts, rss_at_start_mb=600.0, rss_baseline_mb=100.0)
    latest["box"].benchmarks()[0]["extra_info"]["rounds_measured"] = 3
    drawn = {os.path.basename(p) for p in write_plots(latest, str(tmp_path))}
    assert {"energy_per_epoch.png", "rss_peak_per_config.png", "training_epoch_times.png"} <= drawn
    unpowered = {"box": _run("box", 2, [_bench("test_t[m]", "training", [1.0, 1.1, 0.9], info)])}
    drawn = {os.path.basename(p) for p in write_plots(unpowered, str(tmp_path))}
    assert "energy_per_epoch.png" not in drawn and not (tmp_path / "energy_per_epoch.png").exists()


# --- bad files and folders (issue 29) ------------------------------------------------------------------------


def _save_run(folder, number, data):
    path = folder / "dev" / "Linux-CPython-3.11-64bit"
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{number:04d}_quick.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "spoil, says",
    [
        (lambda d: d.update(edge_bench="str"), "edge_bench is not an object"),
        (lambda d: d["benchmarks"][0].update(params="n=1"), "benchmarks[0].params is not an object"),
        (lambda d: d.update(machine_info=[]), "machine_info is not an object"),
        (lambda d: d["edge_bench"].update(settings=[1]), "edge_bench.settings is not an object"),
        (
            lambda d: d["benchmarks"][0]["extra_info"].update(validity="ok"),
            "benchmarks[0].extra_info.validity is not an object",
        ),
        (lambda d: d["benchmarks"][0].update(name=7), "benchmarks[0].name is not a string"),
    ],
)
def test_one_malformed_run_file_is_one_line_and_the_rest_is_reported(tmp_path, capsys, spoil, says):
    good = _run("dev", 1, [_bench("test_a[x]", "training", _noisy(2.0), {"samples_per_s": 10.0})]).data
    bad = json.loads(json.dumps(good))
    spoil(bad)
    _save_run(tmp_path, 1, good)
    _save_run(tmp_path, 2, bad)
    assert main([str(tmp_path), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"0002_quick.json: skipped, not a pytest-benchmark run ({says}" in out
    assert (tmp_path / "report.html").exists() and "test_a[x]" in (tmp_path / "report.csv").read_text()


def test_a_report_that_cannot_be_written_is_one_line_and_a_failure(tmp_path, capsys):
    _save_run(tmp_path, 1, _run("dev", 1, [_bench("test_a[x]", "training", _noisy(2.0))]).data)
    (tmp_path / "report.csv").mkdir()  # where the table goes, a folder
    assert main([str(tmp_path), "--no-plots"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"report: the report was NOT written into {tmp_path}: ")
    assert err[0].endswith(f"({tmp_path / 'report.csv'})")  # the file in the way, not the temp file that is gone
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # no half-written file left behind


def test_a_results_path_of_undecodable_bytes_still_gets_its_report(tmp_path, capsys):
    folder = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"r\xe9sultats"))
    os.makedirs(folder)
    from pathlib import Path

    _save_run(Path(folder), 1, _run("dev", 1, [_bench("test_a[x]", "training", _noisy(2.0))]).data)
    assert main([folder, "--no-plots"]) == 0
    assert os.path.exists(os.path.join(folder, "report.html"))


@pytest.mark.parametrize("argv", [[""], ["results", "--baseline", ""], ["results", "--baseline="], ["--device="]])
def test_an_empty_value_is_refused_not_taken_as_the_default(argv, capsys, monkeypatch, tmp_path):
    """An unset shell variable in ``--baseline "$BASE"`` used to mean "the device's last alike run" without a word."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("report: ") and err.endswith("is empty; give a value or leave it out") and "\n" not in err
    assert not os.listdir(tmp_path)  # refused before anything was written


# --- the order of a device's runs ----------------------------------------------------------------------------


def _dated(number, when, rounds):
    data = _run("dev", number, [_bench("test_a[x]", "training", rounds)]).data
    data["datetime"] = when
    return data


def test_a_later_run_with_an_earlier_clock_is_still_the_later_one(tmp_path, capsys):
    """A board without a real-time clock saved its second run as 1970: the gate still compares 0002 against 0001."""
    _save_run(tmp_path, 1, _dated(1, "2026-12-07T05:00:00+00:00", _noisy(0.18, n=12, seed=1)))
    _save_run(tmp_path, 2, _dated(2, "1970-01-01T00:05:00+00:00", _noisy(0.38, n=12, seed=2)))
    runs, _ = load_runs(str(tmp_path))
    assert [r.label for r in runs] == ["0001_quick", "0002_quick"]
    assert main([str(tmp_path), "--no-plots", "--fail-on", "median:10%"]) == 1
    assert "gate FAIL: dev test_a[x] median" in capsys.readouterr().out


def test_runs_in_several_folders_keep_each_folders_numbers_and_a_wrong_typed_datetime_is_no_crash(tmp_path):
    """One device, two interpreters (two storage folders): each folder in its number order whatever its clock said,
    the folders interleaved by their dates; a datetime that is not a string counts as none."""
    for folder, number, when in (("Linux-CPython-3.9-64bit", 1, "2026-01-01T00:00:00"),
                                 ("Linux-CPython-3.9-64bit", 2, "1970-01-01T00:05:00"),  # the clock was lost
                                 ("Linux-CPython-3.11-64bit", 1, "2026-02-01T00:00:00"),
                                 ("Linux-CPython-3.11-64bit", 2, -1)):  # fmt: skip
        path = tmp_path / "dev" / folder
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{number:04d}_quick.json").write_text(json.dumps(_dated(number, when, [1.0, 1.1, 0.9])))
    runs, problems = load_runs(str(tmp_path))
    assert problems == []
    order = [(os.path.basename(os.path.dirname(r.path)), r.number) for r in runs]
    assert order == [("Linux-CPython-3.9-64bit", 1), ("Linux-CPython-3.9-64bit", 2),
                     ("Linux-CPython-3.11-64bit", 1), ("Linux-CPython-3.11-64bit", 2)]  # fmt: skip
    (tmp_path / "dev" / "Linux-CPython-3.9-64bit" / "0003_quick.json").write_text(
        json.dumps(_dated(3, ["2026"], [1.0, 1.1, 0.9]))
    )
    assert main([str(tmp_path), "--no-plots"]) == 0


# --- damaged figures inside a saved run ------------------------------------------------------------------------


def _continual_run(number):
    """A run of the continual scenario as the suite saves it: one result per fine-tune configuration and the
    summary of each in edge_bench.continual (the figures of scenario.SUMMARY_KEYS)."""
    summary = {"final_acc_known": 0.9, "final_acc_new": 0.6, "final_acc_ncm": 0.7, "pretrained_acc": 0.4,
               "final_synth_acc": 0.8, "finetune_s": 12.5, "mem_import_mb": 310.0, "mem_delta_mb": 60.0,
               "mem_now_mb": 400.0, "mem_baseline_mb": 350.0, "rss_budget_mb": 420,
               "trainable_params": 1290}  # fmt: skip
    configs = [
        dict(summary, config="whole-adam", final_acc=0.8, lift=0.4, forgetting=0.1, mem_peak_abs_mb=430.0),
        dict(summary, config="head-sgd", final_acc=0.55, lift=0.15, forgetting=-0.02, mem_peak_abs_mb=390.0),
    ]
    benches = []
    for c in configs:
        c["within_budget"] = c["mem_peak_abs_mb"] <= c["rss_budget_mb"]
        info = {k: v for k, v in c.items() if k != "config"}
        info.update(config=c["config"], rounds_stopped="fixed", trial_rounds=[3])
        benches.append(_bench(f"test_continual_finetune[{c['config']}]", "continual", _noisy(4.0, n=3), info))
    data = _run("dev", number, benches).data
    photos = {"source": "stand-in", "fine_tune_photos": 48, "held_out_photos": 24, "skipped": [], "note": None}
    data["edge_bench"]["continual"] = {"configs": configs, "photos": photos, "pretraining": {}, "notes": []}
    return data


def _config(data):
    return data["edge_bench"]["continual"]["configs"][0]


@pytest.mark.parametrize(
    "spoil, field",
    [
        (lambda d: _config(d).update(final_acc=float("nan")), "edge_bench.continual.configs[0].final_acc"),
        (lambda d: _config(d).update(final_acc=-1), "edge_bench.continual.configs[0].final_acc"),
        (lambda d: _config(d).update(final_acc=1e308), "edge_bench.continual.configs[0].final_acc"),
        (lambda d: _config(d).pop("config"), "edge_bench.continual.configs[0].config"),
        (lambda d: _config(d).update(config=["whole", "adam"]), "edge_bench.continual.configs[0].config"),
        (lambda d: _config(d).update(within_budget="x"), "edge_bench.continual.configs[0].within_budget"),
        (lambda d: _config(d).update(mem_peak_abs_mb="x"), "edge_bench.continual.configs[0].mem_peak_abs_mb"),
        (lambda d: _config(d).update(rss_budget_mb="x"), "edge_bench.continual.configs[0].rss_budget_mb"),
        (lambda d: _config(d).update(rss_budget_mb=[420]), "edge_bench.continual.configs[0].rss_budget_mb"),
        (lambda d: d["edge_bench"]["continual"].update(configs=3), "edge_bench.continual.configs"),
        (lambda d: d["benchmarks"][0]["stats"].update(rounds=float("nan")), "benchmarks[0].stats.rounds"),
        (lambda d: d["benchmarks"][0]["stats"].update(median="x"), "benchmarks[0].stats.median"),
    ],
)
def test_a_damaged_figure_in_a_run_is_one_line_and_the_report_is_written(tmp_path, capsys, spoil, field):
    """One field of a saved run changed to NaN, a string, an array or a value out of range: the report names the
    file and the field in one line, shows the figure as unavailable and writes its CSV, plots and page."""
    damaged = _continual_run(2)
    spoil(damaged)
    _save_run(tmp_path, 1, _continual_run(1))
    _save_run(tmp_path, 2, damaged)
    assert main([str(tmp_path)]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if ".json: " in line]
    assert len(said) == 1 and said[0].startswith("report: ") and "0002_quick.json: " in said[0], said
    assert f"{field} is " in said[0] and said[0].endswith(
        ("shown as unavailable", "left out", "no configuration shown")
    )
    with open(tmp_path / "report.csv") as fh:
        assert [row["run"] for row in csv.DictReader(fh)].count("0002_quick") == 2
    page = (tmp_path / "report.html").read_text()
    if field != "edge_bench.continual.configs":  # the configuration left undamaged still speaks, and is drawn
        assert "Learning on the device" in page and "head-sgd: held-out accuracy 0.550" in page
        assert (tmp_path / "plots" / "continual_accuracy_and_memory.png").exists()


def test_a_damaged_figure_is_unavailable_never_a_number_made_up(tmp_path):
    damaged = _continual_run(1)
    _config(damaged).update(final_acc=float("nan"), within_budget=1, rss_budget_mb=-420)
    damaged["benchmarks"][0]["stats"]["rounds"] = "3"
    _save_run(tmp_path, 1, damaged)
    (run,), problems = load_runs(str(tmp_path))
    config = run.data["edge_bench"]["continual"]["configs"][0]
    assert (config["final_acc"], config["within_budget"], config["rss_budget_mb"]) == (None, None, None)
    assert run.benchmarks()[0]["stats"]["rounds"] is None and len(problems) == 4
    assert validity(run.benchmarks()[0], "quick")["invalid_reasons"] == ["0 round(s), the quick profile's minimum is 3"]


@pytest.mark.parametrize("trial_rounds", [3, float("nan"), True])
def test_trial_counts_that_are_not_a_list_are_taken_as_unknown(tmp_path, trial_rounds):
    """extra_info.trial_rounds (rounds per trial) of 3 instead of [3] made every reader of the rounds a TypeError."""
    data = _run("dev", 1, [_bench("test_a[x]", "training", _noisy(2.0), {"trial_rounds": trial_rounds})]).data
    _save_run(tmp_path, 1, data)
    assert main([str(tmp_path), "--no-plots"]) == 0 and (tmp_path / "report.html").exists()


def test_a_storage_folder_given_itself_is_read(tmp_path, capsys):
    """The folder that holds the NNNN_*.json (a device's machine-id folder, a --benchmark-storage one) said "no
    saved runs yet" with the runs right there."""
    _save_run(tmp_path, 1, _run("dev", 1, [_bench("test_a[x]", "training", _noisy(2.0))]).data)
    _save_run(tmp_path, 2, _run("dev", 2, [_bench("test_a[x]", "training", _noisy(2.0))]).data)
    assert main([str(tmp_path / "dev" / "Linux-CPython-3.11-64bit"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "no saved runs" not in out and "0002_quick" in out and "(against 0001_quick)" in out, out
