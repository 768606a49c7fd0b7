"""The report's findings recomputed from the saved figures, and report.html self-contained."""

import glob
import json
import os
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_report import _bench, _run

from bench_support.report import main
from bench_support.report.findings import findings
from bench_support.report.plot_data import curve_bend


def _device_runs():
    loader = {"measure": "loader", "prefetch_factor": 2, "pin_memory": False, "persistent_workers": False}
    benches = [
        _bench("test_loader[w0]", "dataloader", [0.6, 0.61, 0.59], {**loader, "num_workers": 0, "samples_per_s": 2e3}),
        _bench(
            "test_loader[w2]", "dataloader", [1.0, 1.01, 0.99], {**loader, "num_workers": 2, "samples_per_s": 1.2e3}
        ),
        _bench("test_training_epoch[a]", "training", [2.0] * 3, {"stall_frac": 0.10, "power_unavailable": "none here"}),
        _bench("test_training_epoch[b]", "training", [2.0] * 3, {"stall_frac": 0.62, "power_unavailable": "none here"}),
    ]
    for reader, state, seconds in (("raw", "cold", 0.30), ("raw", "warm", 0.05), ("decoded", "cold", 0.90),
                                   ("decoded", "warm", 0.70)):  # fmt: skip
        info = {"reader": reader, "cache_state": state, "data_root": "data-dir", "fs_type": "ext4"}
        benches.append(_bench(f"test_read[{state}-{reader}]", "pagecache", [seconds] * 5, info))
    for target, fs, seconds in (("project", "ext4", 0.040), ("shm", "tmpfs", 0.008)):
        info = {"target": target, "fs_type": fs, "write_mode": "durable", "existing": "overwrite", "ckpt_mb": 9.5}
        benches.append(_bench(f"test_checkpoint_write[{target}]", "checkpoint", [seconds] * 8, info))
    run = _run("box", 1, benches)
    return {"box": [run]}


def test_every_finding_is_the_saved_figures_recomputed():
    found = {f.title: f for f in findings(_device_runs(), "box")}
    loader = found["Fastest DataLoader configuration"]
    assert loader.values["samples_per_s"] == 2000.0 and loader.values["config"]["num_workers"] == 0
    assert abs(loader.values["gain_over_runner_up"] - (1.0 / 0.6 - 1)) < 1e-12  # from the rounds: pass times
    low, high = loader.values["gain_over_runner_up_interval"]
    assert 0.6 < low <= 1.0 / 0.6 - 1 <= high < 0.75
    assert "+67% (95 % interval" in loader.text and "over the runner-up (test_loader[w2])" in loader.text
    cold = found["Cold page cache: what storage costs"].values["data-dir"]
    assert cold["storage_s"] == 0.30 - 0.05 and cold["decoding_s"] == 0.70 - 0.05
    ckpt = found["A durable checkpoint on each target"]
    assert ckpt.values["project (ext4)"]["ms"] == 40.0 and ckpt.values["shm (tmpfs)"]["ms"] == 8.0
    expected = "project (ext4): 40.0 ms for 9.5 MB (5.00x tmpfs, 95 % interval 5.00-5.00x, a re-run 5.00-5.00x)"
    assert expected in ckpt.text
    over = ckpt.values["project (ext4)"]["over_tmpfs"]
    assert over["clear"] is True and over["rerun_low"] <= over["ratio_low"] <= over["ratio_high"] <= over["rerun_high"]
    stall = found["Is training compute- or stall-bound?"]
    assert stall.text.startswith("stall-bound: at most 62% of an epoch waits for data (test_training_epoch[b])")
    assert found["Energy per sample"].text == "not measured on this device: none here"
    # 3-8 rounds in one trial: none reaches an interval within ±5 %, and one trial measures no spread between them
    run_precision = found["Precision of this run"]
    assert run_precision.values["judged"] == 10 and run_precision.values["between_trials"] == {}
    assert run_precision.text.startswith(f"{run_precision.values['imprecise']} of 10 judged results are wider")


def test_a_finding_whose_benchmarks_did_not_run_is_left_out():
    history = _device_runs()
    run = history["box"][0]
    run.data["benchmarks"] = [b for b in run.data["benchmarks"] if b["group"] == "training"]
    titles = [f.title for f in findings(history, "box")]
    assert titles == ["Is training compute- or stall-bound?", "Energy per sample", "Precision of this run"]


def test_the_page_is_self_contained(tmp_path):
    run = _device_runs()["box"][0]
    folder = tmp_path / "box" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    (folder / "0001_quick.json").write_text(json.dumps(run.data))
    assert main([str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))
    drawn = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "plots" / "*.png")))
    assert drawn == [
        "checkpoint_phases.png",
        "loader_throughput_vs_workers.png",
        "pagecache_cold_vs_warm.png",
        "training_epoch_times.png",
    ]  # fmt: skip  (no power measured: no energy plot; no RSS parts)
    assert page.count("<img ") >= len(drawn)  # the plots, inline
    assert "Fastest DataLoader configuration" in page and "5.00x tmpfs" in page


def test_the_page_renders_in_headless_chromium_with_no_console_error(tmp_path):
    import report_screenshot

    if report_screenshot.browser() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): the page is checked as text above")
    run = _device_runs()["box"][0]
    folder = tmp_path / "box" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    (folder / "0001_quick.json").write_text(json.dumps(run.data))
    assert main([str(tmp_path)]) == 0
    png, errors = report_screenshot.render(str(tmp_path / "report.html"))
    assert errors == []
    assert os.path.getsize(png) > 20_000  # a rendered page, not a blank one


@given(
    st.sampled_from([0.25, 0.5, 0.75]),
    st.floats(-200, -1),
    st.floats(-200, -1),
)
def test_the_bend_is_where_a_piecewise_linear_curve_changes_slope(bend_at, before, after):
    assume(abs(before - after) > 1)
    xs = [0.0, 0.25, 0.5, 0.75, 1.0]
    points = [(x, 100 + before * min(x, bend_at) + after * max(0.0, x - bend_at)) for x in xs]
    found = curve_bend(points)
    assert found[0] == bend_at
    assert found[1] == pytest.approx(before) and found[2] == pytest.approx(after)
    assert curve_bend(points[:2]) is None


def test_the_residency_finding_reads_the_measured_fractions_not_the_targets():
    benches = []
    for state, measured, seconds in (("cold", 0.0, 0.030), ("r25", 0.26, 0.027), ("r50", 0.49, 0.022),
                                     ("r75", 0.74, 0.014), ("warm", 1.0, 0.005)):  # fmt: skip
        info = {"reader": "raw", "cache_state": state, "data_root": "data-dir", "fs_type": "ext4",
                "resident_frac_before": measured}  # fmt: skip
        benches.append(_bench(f"test_read[{state}-raw]", "pagecache", [seconds] * 5, info))
    found = {f.title: f for f in findings({"box": [_run("box", 1, benches)]}, "box")}
    curve = found["Page-cache residency: the curve between cold and warm"]
    values = curve.values["data-dir (ext4)"]
    assert [p[0] for p in values["points"]] == [0.0, 0.26, 0.49, 0.74, 1.0]
    assert values["monotonic"] is True and len(curve.evidence) == 5
    assert "30.0 ms at 0% resident to 5.0 ms at 100%, falling at every step" in curve.text
    assert values["bend"][0] == 0.49  # slope -21.7 ms/unit before it, -32 after: the largest change


def test_a_finding_says_which_flagged_results_it_rests_on():
    """The page's finding carries its caveats; a finding on precise results carries none."""
    history = _device_runs()
    run = history["box"][0]
    profile = run.data["edge_bench"]["profile"] = "quick"  # a profile with a precision target
    assert profile
    for bench in run.data["benchmarks"]:
        if bench["name"] == "test_checkpoint_write[project]":
            bench["stats"]["data"] = [0.040, 0.060, 0.030, 0.050, 0.045, 0.070, 0.035, 0.055]  # ±50 %
    found = {f.title: f for f in findings(history, "box")}
    caveats = found["A durable checkpoint on each target"].caveats
    assert len(caveats) == 1 and caveats[0].startswith("test_checkpoint_write[project] [imprecise]: 95% interval")
    # Three rounds of the loaders give no 95 % interval: the fastest-loader finding says so too.
    assert any("no 95% interval" in c for c in found["Fastest DataLoader configuration"].caveats)


def test_a_small_gain_is_said_in_tenths_of_a_percent_not_as_plus_zero():
    from bench_support.report.summary import gain_text

    small = {"gain": 0.004, "gain_low": -0.012, "gain_high": 0.021, "clear": False,
             "gain_rerun_low": -0.018, "gain_rerun_high": 0.027}  # fmt: skip
    assert gain_text(small) == "no clear difference (-1.2% … +2.1%, a re-run -1.8% … +2.7%)"
    large = {"gain": 0.67, "gain_low": 0.0996, "gain_high": 0.9, "clear": True}  # saved before the re-run's range
    assert gain_text(large) == "+67% (95 % interval +10% … +90%)"
