"""Power modes as a parameter: the option, the measured settling, and a sweep on the simulated Jetson."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench_support.board import power_modes
from bench_support.board.setup import SetupError
from bench_support.errors import UserError
from conftest import REPO, stop_signals_at_default

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakes import jetson_board  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the simulated board is a Linux tree")


@pytest.mark.parametrize("text, modes", [("0,2", [0, 2]), ("MAXN, 15W", ["MAXN", "15W"]), ("3", [3])])
def test_modes_are_ids_or_names(text, modes):
    assert power_modes.power_modes_option(text) == modes


@pytest.mark.parametrize("text", ["0,,2", "", "MAXN,MAXN"])
def test_a_malformed_mode_list_is_refused_in_one_line(text):
    with pytest.raises(UserError, match="--jetson-power-modes"):
        power_modes.power_modes_option(text)


@pytest.fixture
def board(tmp_path, monkeypatch):
    root = tmp_path / "board"
    jetson_board.build_root(root, power_mode_id=3)  # 25W
    monkeypatch.setenv("BENCH_SYSTEM_ROOT", str(root))
    module = jetson_board.install_jtop(monkeypatch)
    return str(root), module


def test_the_sweep_switches_waits_for_the_caps_and_restores_the_start(board):
    root, module = board
    with jetson_board.RailMover(root):
        sweep = power_modes.PowerModeSweep(["10W", 0], factory=module.jtop)
        assert sweep.names == ["10W", "MAXN"] and sweep.original == (3, "25W")
        facts = sweep.enter("10W")
        assert jetson_board.current_power_mode(root) == (1, "10W")
        assert facts["power_mode"] == "10W" and facts["power_mode_id"] == 1 and facts["power_mode_settle_s"] >= 0
        # Settled means within the new caps: 10W caps the CPU at 1190.4 MHz and takes four cores offline.
        assert all(mhz <= 1190 for key, mhz in facts["clocks_mhz"].items() if key.startswith("policy"))
        sweep.enter("MAXN")
        assert jetson_board.current_power_mode(root) == (0, "MAXN")
        sweep.close()
        sweep.close()  # twice is harmless
    assert jetson_board.current_power_mode(root) == (3, "25W")


def test_an_unknown_mode_names_the_boards_modes(board):
    _, module = board
    with pytest.raises(SetupError, match=r"no mode '5W' on this board \(modes: 0 MAXN, 1 10W, 2 15W, 3 25W\)"):
        power_modes.PowerModeSweep(["5W"], factory=module.jtop)


def test_clocks_that_never_settle_are_a_clear_reason(board):
    root, _ = board
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(SetupError, match="did not settle within 2 s"):
        power_modes.wait_until_settled(root, 0, timeout_s=2, clock=lambda: now[0], sleep=sleep)  # the board is in 25W


def _sweep_env(root):
    board_env = jetson_board.environment(str(root))
    env = {key: value for key, value in board_env.items() if os.environ.get(key) != value}
    env.update(BENCH_PLATFORM="jetson", BENCH_REQUIRE_GPU="0", FAKE_JTOP_SERVICE_INTERVAL="0.5")
    return dict(os.environ, **env)


def _sweep_command(data_dir, results):
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "benchmarks/test_training.py", "--profile", "smoke",
        "--data-dir", data_dir, "--save-results", str(results), "--device-name", "sim-orin-nx",
        "--power-idle-s", "0", "--power-interval", "0.05", "--power-backend", "jtop",
        "--jetson-power-modes", "MAXN,15W",
    ]  # fmt: skip


def test_a_two_mode_sweep_on_the_simulated_jetson_tags_each_result_and_restores_the_mode(tmp_path, shared_data_dir):
    root = tmp_path / "board"
    jetson_board.build_root(root, power_mode_id=3)
    results = tmp_path / "results"
    with jetson_board.RailMover(str(root)):
        run = subprocess.run(
            _sweep_command(shared_data_dir, results), cwd=REPO, env=_sweep_env(root), capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (saved,) = glob.glob(str(results / "sim-orin-nx" / "*" / "0001_smoke.json"))
    with open(saved) as fh:
        benches = json.load(fh)["benchmarks"]
    modes = [b["extra_info"]["power_mode"] for b in benches]
    assert modes == ["MAXN", "15W"]  # grouped by mode, in the order given
    assert [b["name"].endswith(f"pm-{m}]") for b, m in zip(benches, modes)] == [True, True]
    for bench in benches:
        info = bench["extra_info"]
        assert info["power_mode_settle_s"] >= 0 and info["clocks_mhz"] and info["energy_j"] > 0
    assert jetson_board.current_power_mode(str(root)) == (3, "25W")  # the board as the run found it


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_restores_the_starting_mode_and_keeps_the_finished_mode(tmp_path, shared_data_dir, signum):
    root = tmp_path / "board"
    results = tmp_path / "results"
    jetson_board.build_root(root, power_mode_id=3)
    with jetson_board.RailMover(str(root)):
        proc = subprocess.Popen(
            _sweep_command(shared_data_dir, results), cwd=REPO, env=_sweep_env(root),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=stop_signals_at_default,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while jetson_board.current_power_mode(str(root))[1] != "15W" and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signum)  # the MAXN benchmark has finished, the 15W one is under way
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == (2 if signum == signal.SIGINT else 128 + signum), out[-3000:]
    assert jetson_board.current_power_mode(str(root)) == (3, "25W"), out[-3000:]
    (saved,) = glob.glob(str(results / "sim-orin-nx" / "*" / "0001_smoke.json"))
    with open(saved) as fh:
        run = json.load(fh)
    assert [b["extra_info"]["power_mode"] for b in run["benchmarks"]] == ["MAXN"], out[-3000:]
    assert run["edge_bench"]["interrupted"] is True
