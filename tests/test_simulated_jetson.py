"""End to end on a simulated Jetson (tests/fakes): the facts, the power family and the opt-in set-up.

The suite runs as a user would (pytest in a fresh process), pointed at the simulated
Orin NX through BENCH_SYSTEM_ROOT, with the fake tegrastats on PATH and the jtop stand-in
on PYTHONPATH. Training runs on the CPU: the simulation has no GPU.
"""

import glob
import json
import os
import sys

import pytest

from conftest import run_pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes import jetson_board  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the simulated board is a Linux tree")


def _smoke_run(tmp_path, shared_data_dir, *extra):
    root = tmp_path / "board"
    facts = jetson_board.build_root(root)
    results = tmp_path / "results"
    board_env = jetson_board.environment(str(root))
    env = {key: value for key, value in board_env.items() if os.environ.get(key) != value}
    # The simulation has no GPU: the jetson platform runs on the CPU here, whatever torch build this machine has.
    env.update(BENCH_PLATFORM="jetson", BENCH_REQUIRE_GPU="0", FAKE_JTOP_SERVICE_INTERVAL="0.5")
    with jetson_board.RailMover(str(root)):
        result = run_pytest(
            "benchmarks/test_training.py", "--profile", "smoke", "--data-dir", shared_data_dir,
            "--save-results", str(results), "--device-name", "sim-orin-nx", "--power-idle-s", "0",
            "--power-interval", "0.05", *extra, env=env,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (saved,) = glob.glob(str(results / "sim-orin-nx" / "*" / "0001_smoke.json"))
    with open(saved) as fh:
        return root, facts, json.load(fh), result


def test_a_run_on_the_simulated_jetson_records_its_release_mode_and_jtop_power(tmp_path, shared_data_dir):
    root, facts, run, result = _smoke_run(
        tmp_path, shared_data_dir, "--power-backend", "auto", "--jetson-power-mode", "15W", "--jetson-clocks"
    )
    device = run["machine_info"]["device"]
    assert device["platform"] == "jetson"
    assert device["board"] == facts["model"]
    assert device["system_root_overlay"] == str(root)  # a simulated board never passes for a real one
    jetson = device["jetson"]
    assert jetson["l4t"] == "36.4.0" and jetson["jetpack"] == "6.1"
    assert jetson["power_mode"] == "15W"  # the session's set-up, in force while the results were taken
    assert jetson["jetson_clocks"] is True
    assert jetson["devfreq_mhz"]["17000000.gpu"] > 0 and jetson["emc_mhz"] > 0
    (bench,) = run["benchmarks"]
    info = bench["extra_info"]
    assert info["power_source"] == "jtop: VDD_IN"  # auto prefers the service
    assert info["power_measured_total"] is True
    assert info["energy_j"] > 0 and 4.0 < info["power_avg_w"] < 10.0  # the rails move between ~5 and ~9 W
    assert info["cpu_freq_limit_mhz"] == 1984  # the interference family read the board's cpufreq
    # Restored at the end of the session: the board is as the run found it.
    assert jetson_board.current_power_mode(str(root)) == (0, "MAXN")
    assert jetson_board.jetson_clocks_on(str(root)) is False


def test_tegrastats_feeds_the_power_family_when_it_is_chosen(tmp_path, shared_data_dir):
    # An idle measurement (1 s; the last --power-idle-s wins) is said before it starts: a silent wait reads as a hang.
    _, _, run, result = _smoke_run(tmp_path, shared_data_dir, "--power-backend", "tegrastats", "--power-idle-s", "1")
    (bench,) = run["benchmarks"]
    info = bench["extra_info"]
    assert info["power_source"] == "tegrastats: VDD_IN" and info["power_measured_total"] is True
    assert info["energy_j"] > 0
    assert "edge-bench: measuring idle power for 1 s before the first benchmark" in result.stdout + result.stderr
    assert info["power_idle_w"] > 0
    assert run["machine_info"]["device"]["jetson"]["power_mode"] == "MAXN"  # nothing was changed this time
