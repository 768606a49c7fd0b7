"""Each benchmark in a fresh process (plugin/isolation.py): what a benchmark reports does not depend on what ran
before it, what finished is kept when a worker dies or the run is stopped, and the chunks follow the modules'
declarations."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from bench_support.plugin import isolation

# A project of the user's: test_a leaves 120 MB resident behind it, test_b reads the RSS it starts from.
MODULE = """
import os, signal, time

HELD = []


def _rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_leaves_memory_behind(benchmark):
    block = bytearray(120 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touched: resident
    HELD.append(block)
    benchmark.extra_info["pid"] = os.getpid()
    benchmark(sum, range(1000))


def test_b_starts_from(benchmark):
    benchmark.extra_info["pid"] = os.getpid()
    benchmark.extra_info["rss_start_mb"] = _rss_mb()
    benchmark(sum, range(1000))


def test_c_maybe_dies(benchmark):
    benchmark.extra_info["pid"] = os.getpid()
    if os.environ.get("EDGE_TEST_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("EDGE_TEST_HANG"):
        release = os.environ.get("EDGE_TEST_STUBBORN")
        if release:  # a benchmark that ignores Ctrl-C until the test lets it finish
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        with open(os.environ["EDGE_TEST_HANG"], "w") as fh:
            fh.write(str(os.getpid()))
        end = time.monotonic() + (120 if release else 600)
        while time.monotonic() < end and not (release and os.path.exists(release)):
            time.sleep(0.05)
    benchmark(sum, range(1000))
"""


def _pytest(cwd, *args, env=None, timeout=300):
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_PROFILE", "BENCH_DATA_DIR")}
    full.update(env or {})
    # A short calibrated loop (pytest-benchmark's default spends up to a second on each sum): these tests look at
    # processes and memory, not at the times.
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--power-idle-s", "0", "--trials", "1",
           "--benchmark-max-time", "0.05", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "test_mine.py").write_text(MODULE)
    return folder


def _results(path):
    run = json.loads(path.read_text())
    return {b["name"]: b for b in run["benchmarks"]}


def test_memory_does_not_depend_on_what_ran_before_and_every_benchmark_gets_its_own_process(project, tmp_path):
    runs = {}
    for isolate in ("benchmark", "none"):
        for selection in ("all", "alone"):
            out = tmp_path / f"{isolate}-{selection}.json"
            keyword = ("-k", "test_b") if selection == "alone" else ()
            done = _pytest(project, "--isolate", isolate, "--benchmark-json", str(out), *keyword)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
            runs[isolate, selection] = _results(out)
    whole, alone = runs["benchmark", "all"], runs["benchmark", "alone"]
    assert set(whole) == {"test_a_leaves_memory_behind", "test_b_starts_from", "test_c_maybe_dies"}
    assert all(b["stats"]["data"] for b in whole.values())  # the rounds came back with each result
    pids = {b["extra_info"]["pid"] for b in whole.values()}
    assert len(pids) == 3, pids  # a process per benchmark
    after_a = whole["test_b_starts_from"]["extra_info"]["rss_start_mb"]
    by_itself = alone["test_b_starts_from"]["extra_info"]["rss_start_mb"]
    assert abs(after_a - by_itself) < 15, (after_a, by_itself)
    # In one process the same benchmark starts 120 MB higher after test_a: what the isolation removes.
    shared_after_a = runs["none", "all"]["test_b_starts_from"]["extra_info"]["rss_start_mb"]
    shared_alone = runs["none", "alone"]["test_b_starts_from"]["extra_info"]["rss_start_mb"]
    assert shared_after_a - shared_alone > 100, (shared_after_a, shared_alone)


@pytest.mark.parametrize("declared", ["benchmark", "trial"])
def test_a_worker_that_dies_fails_its_benchmark_in_one_line_and_the_others_are_kept(project, tmp_path, declared):
    if declared == "trial":  # all three in one worker: the two that finished were handed over before it died
        (project / "test_mine.py").write_text(MODULE + '\nISOLATE = "trial"\n')
    out = tmp_path / "run.json"
    done = _pytest(project, "--isolate", "benchmark", "--benchmark-json", str(out), env={"EDGE_TEST_KILL": "1"})
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "test_c_maybe_dies its fresh process was killed by SIGKILL before it finished" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert set(_results(out)) == {"test_a_leaves_memory_behind", "test_b_starts_from"}


@pytest.mark.parametrize("stubborn", [False, True], ids=["hangs", "ignores-ctrl-c"])
def test_sigterm_during_a_worker_keeps_what_finished_and_leaves_no_process(project, tmp_path, stubborn):
    out, marker, release = tmp_path / "run.json", tmp_path / "hanging.pid", tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_PROFILE", "BENCH_DATA_DIR")}
    env["EDGE_TEST_HANG"] = str(marker)
    if stubborn:
        env["EDGE_TEST_STUBBORN"] = str(release)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--power-idle-s", "0", "--trials", "1",
           "--isolate", "benchmark", "--benchmark-json", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[0][-3000:]
    worker = int(marker.read_text())
    proc.send_signal(signal.SIGTERM)
    said = ""
    if stubborn:  # the wait is said after a few seconds; then the worker is let go, and what it finished is kept
        for line in proc.stdout:
            said += line
            if "stopping: waiting" in line:
                release.touch()
                break
    output = said + proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output[-3000:]
    finished = {"test_a_leaves_memory_behind", "test_b_starts_from"}
    if stubborn:
        assert "stopping: waiting up to 55 s more for the fresh process running" in said, output[-3000:]
        assert "test_c_maybe_dies" in said.split("stopping: waiting")[1].splitlines()[0]
        finished.add("test_c_maybe_dies")
    assert set(_results(out)) == finished, output[-3000:]
    assert json.loads(out.read_text())["edge_bench"]["interrupted"] is True
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the worker is gone with the run


WARNS = """
import warnings


class MineWarning(UserWarning):
    pass


def test_warns(benchmark):
    warnings.warn("a warning of the user's own", MineWarning)
    benchmark(sum, range(10))
"""


def test_a_workers_warnings_reach_the_sessions_summary(tmp_path):
    """A warning raised in a fresh process is in the warnings summary, with its own category, as in one process."""
    (tmp_path / "test_warns.py").write_text(WARNS)
    done = _pytest(tmp_path, "--isolate", "benchmark")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.split("warnings summary", 1)[-1]
    assert "test_warns.py::test_warns" in summary and "MineWarning: a warning of the user's own" in summary, summary
    assert "1 passed, 1 warning" in done.stdout


def _item(nodeid, module=None, trial=None, benchmark=True):
    params = {}
    if trial is not None:
        params["edge_bench_trial"] = trial
    return SimpleNamespace(
        nodeid=nodeid,
        fixturenames=("benchmark",) if benchmark else (),
        module=module or SimpleNamespace(),
        callspec=SimpleNamespace(params=params) if params else None,
    )


def test_a_value_json_cannot_hold_crosses_as_pytest_benchmark_saves_it():
    from pytest_benchmark.utils import safe_dumps

    from bench_support.plugin.server import Sink

    read, write = os.pipe()
    info = {"device": SimpleNamespace(name="a board"), "n": 1}  # JSON holds no SimpleNamespace
    Sink(write)({"kind": "results", "extra_info": info})
    with os.fdopen(read) as fh:
        crossed = json.loads(fh.readline())["extra_info"]
    assert crossed == json.loads(safe_dumps(info)) and crossed["device"].startswith("UNSERIALIZABLE[")


def test_chunks_follow_the_modules_declarations():
    per_trial = SimpleNamespace(ISOLATE="trial")
    shared = SimpleNamespace(ISOLATE=False)
    items = [
        _item("a.py::x[t1of2]", trial=(1, 2)),
        _item("a.py::y[t1of2]", trial=(1, 2)),
        _item("c.py::w[t1of2]", per_trial, (1, 2)),
        _item("c.py::v[t1of2]", per_trial, (1, 2)),
        _item("c.py::w[t2of2]", per_trial, (2, 2)),
        _item("c.py::v[t2of2]", per_trial, (2, 2)),
        _item("d.py::scenario", shared),
        _item("e.py::not_a_benchmark", benchmark=False),
        _item("c.py::u[t2of2]", per_trial, (2, 2)),
    ]
    assert isolation.chunks(items) == [
        ["a.py::x[t1of2]"],
        ["a.py::y[t1of2]"],
        ["c.py::w[t1of2]", "c.py::v[t1of2]"],  # one trial pass of a module declaring "trial"
        ["c.py::w[t2of2]", "c.py::v[t2of2]"],
        ["c.py::u[t2of2]"],  # not consecutive with its pass: the session's process ran something between
    ]


@pytest.mark.parametrize(
    "code, words", [(-9, "was killed by SIGKILL"), (-15, "was killed by SIGTERM"), (3, "exited with status 3")]
)
def test_a_processes_end_is_said_in_words(code, words):
    assert isolation.describe_status(code) == words


def test_a_power_mode_sweep_is_refused_with_isolation_in_one_line(project):
    done = _pytest(project, "--isolate", "benchmark", "--jetson-power-modes", "0,2")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--isolate benchmark and --jetson-power-modes: give one" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
