"""pytest-benchmark's own comparison during a --save-results run: with the last run that ran alike (the rule the
report and the gate use too, bench_support/report/baseline.py), and it says so."""

import json
import os
from types import SimpleNamespace

import pytest

from bench_support import results
from bench_support.errors import UserError
from bench_support.plugin.storage import DEFAULT_STORAGE, configure_storage
from bench_support.report.baseline import run_baseline


def _option(**given):
    values = dict(
        benchmark_save=None, benchmark_autosave=False, benchmark_compare=None, benchmark_storage=DEFAULT_STORAGE
    )
    return SimpleNamespace(**{**values, **given})


def _block(profile, partial=False, interrupted=False, thread_policy="default"):
    return {"profile": profile, "interrupted": interrupted, "settings": {"thread_policy": thread_policy},
            "selection": {"partial": partial}}  # fmt: skip


@pytest.fixture
def device(tmp_path):
    folder = results.storage_dir(str(tmp_path))
    os.makedirs(folder)
    # A run saved under its own name (--benchmark-save mine) is a quick run all the same: its record says so.
    runs = [("0001_quick", _block("quick")), ("0002_mine", _block("quick")), ("0003_quick", _block("quick", True)),
            ("0004_smoke", _block("smoke"))]  # fmt: skip
    for label, block in runs:
        with open(os.path.join(folder, label + ".json"), "w") as fh:
            json.dump({"benchmarks": [], "edge_bench": block}, fh)
    with open(os.path.join(folder, "0005_torn.json"), "w") as fh:
        fh.write("{")  # unreadable: never the baseline, named by the report
    return str(tmp_path)


@pytest.mark.parametrize(
    "block, compare, says",
    [
        (
            _block("quick"),
            "0002",
            "compared with 0002_mine, the last run of this device that ran alike; 0004_smoke, newer, did not",
        ),
        (_block("quick", partial=True), "0003", "compared with 0003_quick, the last run of this device that ran"),
        (_block("smoke"), "0004", "compared with 0004_smoke, the last run of this device that ran alike"),
        (_block("full"), None, "not compared: no earlier run here ran alike (the last, 0004_smoke: profile"),
        (_block("quick", thread_policy="reserve"), None, "not compared: no earlier run here ran alike"),
    ],
)
def test_a_run_is_compared_with_the_last_run_that_ran_alike(device, block, compare, says):
    option = _option()
    line = configure_storage(option, device, block["profile"], block)
    assert option.benchmark_compare == compare and line.startswith(says), line
    assert option.benchmark_save == block["profile"] and option.benchmark_save_data is True
    assert option.benchmark_storage == "file://" + device


def test_the_terminal_and_the_report_pick_the_same_run(device):
    folder = results.storage_dir(device)
    saved = []
    for name in sorted(os.listdir(folder)):
        try:
            with open(os.path.join(folder, name)) as fh:
                saved.append((name[:-5], json.load(fh)))
        except ValueError:
            pass
    for block in (_block("quick"), _block("quick", partial=True), _block("smoke")):
        option = _option()
        configure_storage(option, device, block["profile"], block)
        picked = run_baseline(saved, {"edge_bench": block}, lambda run: run[1])
        assert picked[0].split("_")[0] == option.benchmark_compare


def test_an_explicit_compare_and_a_run_name_are_kept(device):
    option = _option(benchmark_compare="0001", benchmark_save="mine")
    line = configure_storage(option, device, "smoke", _block("smoke"))
    assert line == "compared with run 0001 as asked (--benchmark-compare)"
    assert option.benchmark_compare == "0001" and option.benchmark_save == "mine"


def test_another_storage_contradicts_save_results(device, tmp_path):
    with pytest.raises(UserError, match="--save-results .* --benchmark-storage"):
        configure_storage(_option(benchmark_storage=f"file://{tmp_path}/x"), device, "quick", _block("quick"))


def test_a_first_run_compares_with_nothing_and_says_nothing(tmp_path):
    option = _option()
    assert configure_storage(option, str(tmp_path), "quick", _block("quick")) == ""
    assert option.benchmark_compare is None


def test_a_saved_run_pytest_benchmark_cannot_compare_with_is_skipped_and_named(device):
    """The report reads a benchmark without stats (its figures are "–"), but pytest-benchmark cannot load it: as
    the baseline it stopped every later run with "no saved run matches"."""
    folder = results.storage_dir(device)
    with open(os.path.join(folder, "0006_quick.json"), "w") as fh:
        json.dump({"benchmarks": [{"name": "t", "fullname": "b.py::t"}], "edge_bench": _block("quick")}, fh)
    option = _option()
    line = configure_storage(option, device, "quick", _block("quick"))
    assert option.benchmark_compare == "0002", line
    assert line.endswith("; skipped 0006_quick: benchmarks[0] has no stats, pytest-benchmark cannot compare with it")


@pytest.mark.parametrize("median", ["x", None, float("nan")])
def test_a_saved_run_with_a_damaged_statistic_is_not_the_baseline(device, median):
    """The report shows such a figure as unavailable; pytest-benchmark's comparison table would format it."""
    folder = results.storage_dir(device)
    stats = {"mean": 1.0, "median": median, "min": 0.5, "max": 2.0}
    with open(os.path.join(folder, "0006_quick.json"), "w") as fh:
        json.dump({"benchmarks": [{"name": "t", "fullname": "b.py::t", "stats": stats}], "edge_bench": _block("quick")},
                  fh)  # fmt: skip
    option = _option()
    line = configure_storage(option, device, "quick", _block("quick"))
    assert option.benchmark_compare == "0002", line
    assert line.endswith("; skipped 0006_quick: benchmarks[0].stats.median is not a number, pytest-benchmark cannot "
                         "compare with it")  # fmt: skip


@pytest.mark.parametrize("damage", [{"machine_info": None}, {"machine_info": {"device": "x"}}, {"edge_bench": "x"}])
def test_comparing_with_a_run_whose_blocks_are_not_objects_does_not_crash(damage):
    from bench_support.plugin.storage import pytest_benchmark_compare_machine_info

    warned = []
    session = SimpleNamespace(logger=SimpleNamespace(warning=warned.append))
    config = SimpleNamespace(stash={})
    mine = {"device": {"cpu_model": "a"}}
    pytest_benchmark_compare_machine_info(config, session, mine, {"benchmarks": [], **damage})
    assert all(isinstance(w, str) for w in warned)


@pytest.mark.parametrize("foreign", [{}, {"edge_bench": {"profile": "quick"}}, {"edge_bench": {"suite_version": "9"}}])
def test_a_run_that_does_not_say_what_it_measured_is_never_alike(device, foreign):
    """pytest-benchmark's own JSON (or another tool's) in the folder records no profile or suite version: unknown
    settings count as alike, but these two are what says the figures mean the same thing."""
    folder = results.storage_dir(device)
    with open(os.path.join(folder, "0006_other.json"), "w") as fh:
        json.dump({"benchmarks": [], **foreign}, fh)
    mine = {**_block("quick"), "suite_version": "9"}
    option = _option()
    line = configure_storage(option, device, "quick", mine)
    assert option.benchmark_compare is None, line
    assert line.startswith("not compared: no earlier run here ran alike (the last, 0006_other: "), line
    assert "not recorded" in line
    assert run_baseline([("0006_other", {"benchmarks": [], **foreign})], {"edge_bench": mine}, lambda r: r[1]) is None


def test_other_photos_do_not_end_the_runs_comparison_and_are_named(device):
    """The photos count for the continual results only: the terminal still compares the run, and says so."""
    folder = results.storage_dir(device)
    before = {**_block("quick"), "settings": {"thread_policy": "default", "photo_files": "8 files 0a"}}
    with open(os.path.join(folder, "0006_quick.json"), "w") as fh:
        json.dump({"benchmarks": [], "edge_bench": before}, fh)
    now = {**_block("quick"), "settings": {"thread_policy": "default", "photo_files": "38 files 9c"}}
    option = _option()
    line = configure_storage(option, device, "quick", now)
    assert option.benchmark_compare == "0006", line
    assert "; its continual results ran on other photos (photo_files: '8 files 0a' -> '38 files 9c')" in line
