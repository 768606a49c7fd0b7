"""The suite as an installed pytest plugin: a user's own project outside the checkout gets its figures,
pytest-benchmark's storage options keep their meaning, the report reads that storage, and a run that
benchmarks nothing is left alone."""

import json
import os
import subprocess
import sys

import pytest

from bench_support.profiles import PROFILES
from tests.conftest import REPO

OWN_TESTS = """
def test_plain_fixture(benchmark):
    benchmark(sum, range(20000))


def test_with_harness(harness):
    harness.run(lambda: sum(range(20000)), rounds=3)
"""


def _pytest(cwd, *args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_PROFILE", "BENCH_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.fixture
def own_project(tmp_path):
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "test_mine.py").write_text(OWN_TESTS)
    return project


def test_own_project_gets_the_suites_figures_and_the_report_reads_its_storage(own_project, tmp_path):
    store = tmp_path / "store"
    common = ("--power-idle-s", "0", "--benchmark-autosave", f"--benchmark-storage=file://{store}")
    first = _pytest(own_project, *common, "--benchmark-json", str(tmp_path / "one.json"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    run = json.loads((tmp_path / "one.json").read_text())
    by_name = {b["name"]: b["extra_info"] for b in run["benchmarks"]}
    assert set(by_name) == {"test_plain_fixture", "test_with_harness"}
    for name, info in by_name.items():
        assert info["rss_peak_mb"] > 1, name  # the memory family
        assert "power_source" in info and (info["power_source"] or info["power_unavailable"]), name  # power family
    assert run["edge_bench"]["device_id"]
    assert not (own_project / "data").exists(), "no benchmark here reads data: no data folder"

    # pytest-benchmark's options as documented: the second run compares with the first it autosaved.
    second = _pytest(own_project, *common, "--benchmark-compare")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    saved = sorted(p.name for p in store.glob("*/*.json"))
    assert len(saved) == 2 and saved[0].startswith("0001_") and saved[1].startswith("0002_"), saved
    assert "Comparing against benchmarks from: " in second.stdout + second.stderr
    assert saved[0].rsplit(".", 1)[0] in second.stdout + second.stderr

    report = subprocess.run(
        [sys.executable, "-m", "bench_support.report", str(store), "--no-plots"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    for label in saved:
        assert label.rsplit(".", 1)[0] in report.stdout, (label, report.stdout[-2000:])
    assert (store / "report.csv").is_file() and (store / "report.html").is_file()


def test_a_run_without_benchmarks_is_left_alone(own_project):
    """Installed, the plugin loads everywhere; a session that collects no benchmark gets no network guard, no
    reaping and no folders (the network guard would refuse this loopback connection)."""
    (own_project / "test_mine.py").write_text(
        "import socket\n\n\n"
        "def test_ordinary():\n"
        "    server = socket.socket()\n"
        "    server.bind(('127.0.0.1', 0))\n"
        "    server.listen(1)\n"
        "    client = socket.create_connection(server.getsockname(), timeout=5)\n"
        "    client.close()\n"
        "    server.close()\n"
    )
    result = _pytest(own_project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # .benchmarks/ is pytest-benchmark's own doing (its storage, made at every start), __pycache__/ pytest's and
    # Python's (the test module's bytecode), not the suite's.
    assert set(os.listdir(own_project)) - {".benchmarks", "__pycache__"} == {"test_mine.py"}
    assert "edge-bench" not in result.stderr


def test_save_results_and_another_storage_are_refused_in_one_line(own_project, tmp_path):
    result = _pytest(own_project, "--save-results", str(tmp_path / "r"), f"--benchmark-storage=file://{tmp_path / 's'}")
    assert result.returncode == 4
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--save-results" in lines[0] and "--benchmark-storage" in lines[0], result.stderr


def test_the_plugin_imports_no_torch():
    code = "import sys, bench_support.plugin; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_rounds_added_for_precision_are_pytest_benchmarks_own(own_project, tmp_path):
    """Against the installed pytest-benchmark: extra rounds land in its statistics and its saved round data."""
    (own_project / "test_mine.py").write_text(
        "def test_adaptive(harness, profile):\n    harness.run(lambda: sum(range(20000)), profile.loader_pass)\n"
    )
    out = tmp_path / "run.json"
    result = _pytest(
        own_project, "--profile", "quick", "--power-idle-s", "0", "--benchmark-save-data", "--benchmark-json", str(out)
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    bench = json.loads(out.read_text())["benchmarks"][0]
    info, stats = bench["extra_info"], bench["stats"]
    assert info["rounds_stopped"] in ("precise", "budget", "out of reach", "max rounds", "trials disagree")
    assert stats["rounds"] == len(stats["data"]) == info["rounds_measured"] >= 6
    assert info["median_ci_low_s"] <= stats["median"] <= info["median_ci_high_s"]
    quick = PROFILES["quick"]
    assert info["precision_target_rel"] == quick.precision_target and info["round_budget_s"] == quick.round_budget_s
    assert info["trials"] == quick.trials and len(info["trial_rounds"]) == quick.trials


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--benchmark-compare=9999", "--benchmark-compare-fail=mean:5%"],
            "--benchmark-compare=9999: no readable saved run",
        ),
        (["--benchmark-compare=9999"], "--benchmark-compare=9999: no readable saved run matches it"),
        (["--benchmark-compare-fail=mean:5%"], "--benchmark-compare-fail: no run to compare with"),
        (["--benchmark-histogram=/proc/nope/h"], "--benchmark-histogram /proc/nope/h"),
    ],
)
def test_a_comparison_or_histogram_that_cannot_happen_is_refused_before_any_benchmark(
    own_project, tmp_path, args, says
):
    """Each is one line and exit 4 at the start, not a traceback after every benchmark has run (pytest-benchmark's
    own "Can't compare" warning, issued while it configures, may come before it)."""
    result = _pytest(own_project, f"--benchmark-storage=file://{tmp_path / 'store'}", *args)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and "PytestBenchmarkWarning" not in ln]
    lines = [ln for ln in lines if not ln.strip().startswith("warner(")]
    assert result.returncode == 4 and len(lines) == 1 and says in lines[0], result.stdout[-2000:] + result.stderr
    assert "passed" not in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))


def test_a_checkpoint_folder_that_cannot_be_made_is_a_skip_with_its_reason(own_project):
    (own_project / ".bench-ckpt").write_text("a file where the folder should go")  # as a read-only project folder
    (own_project / "test_mine.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef target():\n    return 'project'\n\n\n"
        "def test_write(benchmark, ckpt_target_dir):\n    benchmark(sum, range(10))\n"
    )
    run = _pytest(own_project, "--power-idle-s", "0", "-rs")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "checkpoint target project: cannot create" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
