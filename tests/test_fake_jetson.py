"""The simulated Jetson (tests/fakes) talks to the suite's real code: sysfs readers, tegrastats, jtop, set-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from fakes import jetson_board  # noqa: E402

from bench_support.board import setup as jetson_setup  # noqa: E402
from bench_support.measure import interference, machine  # noqa: E402
from bench_support.measure.power import live as power_live  # noqa: E402
from bench_support.measure.power.sources import (  # noqa: E402
    Ina3221Source,
    JtopSource,
    SourceUnavailable,
    TegrastatsSource,
    parse_tegrastats,
)

FAKE_THREADS = ("fake-jtop", "rail-mover", "jtop-start", "tegrastats")


@pytest.fixture(autouse=True)
def no_fake_left_running():
    """Every test ends its RailMover, jtop clients and tegrastats readers."""
    yield
    deadline = time.monotonic() + 30.0  # returns as soon as they are gone; the margin is for busy CI cores
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name in FAKE_THREADS]
        if not left:
            return
        time.sleep(0.02)
    pytest.fail(f"threads left running: {left}")


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A fresh Orin NX root in MAXN, with BENCH_SYSTEM_ROOT pointing at it and knobs cleared."""
    for knob in ("FAKE_JTOP", "FAKE_JTOP_SERVICE_INTERVAL", "FAKE_TEGRASTATS", "FAKE_TEGRASTATS_STOP_AFTER"):
        monkeypatch.delenv(knob, raising=False)
    info = jetson_board.build_root(tmp_path / "jetson")
    monkeypatch.setenv("BENCH_SYSTEM_ROOT", info["root"])
    return info


@pytest.fixture
def fake_jtop(monkeypatch):
    """``from jtop import jtop`` gives the stand-in for this test; hung clients are released afterwards."""
    module = jetson_board.install_jtop(monkeypatch)
    yield module
    module.release_hung_clients()


@pytest.fixture
def tegrastats_on_path(board, monkeypatch):
    monkeypatch.setenv("PATH", jetson_board.BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
    return os.path.join(jetson_board.BIN_DIR, "tegrastats")


def _until(predicate, timeout_s=30.0, step_s=0.02):  # returns at once when true; the margin is for busy cores
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


# --- identity and sysfs ---------------------------------------------------------------------------


def test_the_suite_recognises_the_board_from_its_files(board):
    root = board["root"]
    assert machine.detect_platform(root) == "jetson"
    assert machine.board_model(root) == "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
    cpu = machine.cpu_facts(root)
    assert cpu["governor"] == "schedutil" and cpu["freq_max_mhz"] == 1984
    assert jetson_board.current_power_mode(root) == (0, "MAXN")


def test_jetson_facts_combine_the_release_file_and_the_jtop_stand_in(board, fake_jtop):
    facts = machine.jetson_facts(board["root"])
    assert facts["l4t"] == "36.4.0"
    assert facts["jetpack"] == "6.1"
    assert facts["module"] == "NVIDIA Jetson Orin NX (16GB ram)"
    assert facts["soc"] == "tegra234"
    assert facts["power_mode"] == "MAXN" and facts["jetson_clocks"] is False
    assert "jtop_unavailable" not in facts


def test_jetson_facts_give_the_services_own_words_when_it_is_down(board, fake_jtop, monkeypatch):
    monkeypatch.setenv("FAKE_JTOP", "dead")
    facts = machine.jetson_facts(board["root"])
    assert facts["l4t"] == "36.4.0"
    assert facts["jtop_unavailable"] == "jtop service not reachable: The jtop.service is not active. Please run:"


def test_power_modes_change_the_cpus_the_suite_sees(board):
    root, sys_root = board["root"], board["sys"]
    assert [top for _, top in interference.cpu_freqs_mhz(sys_root)] == [1984] * 8
    with jetson_board.RailMover(root, interval_s=0.02):
        assert _until(lambda: max(cur for cur, _ in interference.cpu_freqs_mhz(sys_root)) == 1984)
        jetson_board.set_power_mode(root, "15W")
        assert jetson_board.current_power_mode(root) == (2, "15W")
        assert open(os.path.join(sys_root, "devices/system/cpu/online")).read().strip() == "0-3"
        # The 15 W cap keeps every core under 90 % of cpuinfo_max_freq: the suite calls that throttled.
        assert _until(lambda: max(cur for cur, _ in interference.cpu_freqs_mhz(sys_root)) == 1497)
    temps = interference.temperatures_c(sys_root)
    assert len(temps) == 9 and sorted(temps)[:3] == [-256.0] * 3  # the NX's offline cv zones
    assert all(40 < t < 52 for t in temps if t > -256)


# --- INA3221 --------------------------------------------------------------------------------------


def test_ina3221_source_reads_vdd_in_as_the_measured_total_and_follows_the_rails(board):
    with jetson_board.RailMover(board["root"], interval_s=0.02, period_ticks=10) as mover:
        source = Ina3221Source(root=board["ina3221"])
        assert source.label == "ina3221: VDD_IN" and source.measured_total is True
        seen = set()
        for _ in range(40):
            watts = source.read()
            assert 4.9 < watts < 9.1
            seen.add(round(watts, 3))
            time.sleep(0.01)
        assert len(seen) >= 3
        assert 4.9 < mover.last["VDD_IN"] / 1000 < 9.1 and mover.ticks > 5


def test_a_constant_rail_reads_as_written(board):
    with jetson_board.RailMover(board["root"], low_mw=6000, high_mw=6000):
        assert Ina3221Source(root=board["ina3221"]).read() == pytest.approx(6.0, abs=0.01)


# --- tegrastats -----------------------------------------------------------------------------------


def test_fake_tegrastats_prints_jetpack6_lines_the_parser_reads(tegrastats_on_path, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_STOP_AFTER", "2")
    out = subprocess.run(
        [tegrastats_on_path, "--interval", "20", "--logfile", "ignored"], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert re.match(r"^\d\d-\d\d-\d{4} \d\d:\d\d:\d\d RAM \d+/15656MB \(lfb 7x4MB\) SWAP 0/7828MB", lines[0])
    assert re.search(r"CPU \[(\d+%@729,){7}\d+%@729\] GR3D_FREQ 0% cpu@46.5C soc2@44.75C soc0@", lines[0])  # idle
    assert set(parse_tegrastats(lines[1])) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}


def test_fake_tegrastats_ends_quietly_on_sigterm(tegrastats_on_path):
    proc = subprocess.Popen(
        [tegrastats_on_path, "--interval", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert "VDD_IN" in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0 and err == ""


def test_tegrastats_source_follows_the_fake_tegrastats(tegrastats_on_path, board):
    with jetson_board.RailMover(board["root"], interval_s=0.02):
        source = TegrastatsSource(0.1)
        try:
            assert source.label == "tegrastats: VDD_IN" and source.measured_total is True
            assert 4.9 < source.read() < 9.1
        finally:
            source.close()
    with pytest.raises(SourceUnavailable, match="^tegrastats was closed after"):
        source.read()


@pytest.mark.parametrize(
    "knob, timeout_s, reason",
    [
        # A long timeout for the dead one: it is the exit, not the timeout, that must end the wait.
        ("dead", 60.0, r"^tegrastats exited \(code 1\) before printing a power rail line$"),
        ("silent", 0.5, r"^tegrastats printed no power rail line within 0\.5 s$"),
        ("norails", 0.5, r"^tegrastats printed no power rail line within 0\.5 s$"),
    ],
)
def test_a_useless_tegrastats_is_unavailable_in_bounded_time(tegrastats_on_path, monkeypatch, knob, timeout_s, reason):
    monkeypatch.setenv("FAKE_TEGRASTATS", knob)
    with pytest.raises(SourceUnavailable, match=reason):
        TegrastatsSource(0.1, timeout_s=timeout_s)


def test_a_tegrastats_that_stops_ends_the_readings(tegrastats_on_path, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_STOP_AFTER", "3")
    source = TegrastatsSource(0.05)
    try:
        assert _until(lambda: source._feed.ended is not None)
        with pytest.raises(SourceUnavailable, match=r"^tegrastats exited \(code 0\) after 3 readings$"):
            source.read()
    finally:
        source.close()


# --- jtop -----------------------------------------------------------------------------------------


def test_jtop_source_reads_the_total_in_watts(board, fake_jtop):
    with jetson_board.RailMover(board["root"], low_mw=7000, high_mw=7000):
        source = JtopSource(0.5, factory=fake_jtop.jtop)
        try:
            assert source.label == "jtop: VDD_IN" and source.measured_total is True
            assert source.read() == pytest.approx(7.0, abs=0.02)
        finally:
            source.close()


def test_the_stand_in_has_jetson_stats_power_shape_and_moving_values(board, fake_jtop):
    with jetson_board.RailMover(board["root"], interval_s=0.02, period_ticks=6):
        with fake_jtop.jtop(interval=0.05) as jetson:
            seen = []
            jetson.attach(lambda client: seen.append(client.power["tot"]["power"]))
            assert _until(lambda: len(set(seen)) >= 3)
            power = jetson.power
    assert set(power["rail"]) == {"VDD_CPU_GPU_CV", "VDD_SOC"}  # the input rail moves to 'tot'
    for values in (*power["rail"].values(), power["tot"]):
        assert {"volt", "curr", "warn", "crit", "power", "online", "avg"} <= set(values)
        assert values["power"] == int(values["volt"] * values["curr"] / 1000)
    assert power["tot"]["name"] == "VDD_IN" and 4900 < power["tot"]["power"] < 9100
    assert jetson.interval == 0.05 and jetson.ok(spin=True) is False  # closed


@pytest.mark.parametrize(
    "knob, message",
    [
        ("dead", "The jtop.service is not active. Please run:\nsudo systemctl restart jtop.service"),
        ("denied", "I can't access jtop.service.\nPlease logout or reboot this board."),
    ],
)
def test_the_stand_in_fails_to_start_as_jetson_stats_does(board, fake_jtop, monkeypatch, knob, message):
    monkeypatch.setenv("FAKE_JTOP", knob)
    with pytest.raises(fake_jtop.JtopException) as caught:
        fake_jtop.jtop().start()
    assert str(caught.value) == message and caught.value.message == message
    with pytest.raises(SourceUnavailable, match="^jtop service not reachable: " + re.escape(message.splitlines()[0])):
        JtopSource(0.5, factory=fake_jtop.jtop)


def test_a_hung_jtop_service_is_given_up_in_bounded_time(board, fake_jtop, monkeypatch):
    monkeypatch.setenv("FAKE_JTOP", "hang")
    monkeypatch.setattr(power_live, "JTOP_START_S", 0.3)
    with pytest.raises(SourceUnavailable, match=r"^jtop service did not answer within 0\.3 s$"):
        JtopSource(0.5, factory=fake_jtop.jtop)


@pytest.mark.parametrize(
    "knob, reason",
    [
        ("stop_after:2", r"^jtop client stopped \(the jtop service went away\)$"),
        ("lost_after:1", r"^jtop client failed: Lost connection with jtop server$"),
    ],
)
def test_a_jtop_client_that_ends_stops_the_readings(board, fake_jtop, monkeypatch, knob, reason):
    monkeypatch.setenv("FAKE_JTOP", knob)
    source = JtopSource(0.5, factory=fake_jtop.jtop)
    try:
        assert source.read() > 0

        def ended():
            try:
                source.read()
            except SourceUnavailable:
                return True
            return False

        assert _until(ended)
        with pytest.raises(SourceUnavailable, match=reason):
            source.read()
    finally:
        source.close()


def test_a_stalled_service_keeps_the_client_alive_but_sends_nothing(board, fake_jtop, monkeypatch):
    monkeypatch.setenv("FAKE_JTOP", "stall_after:1")
    with fake_jtop.jtop(interval=0.05) as jetson:
        time.sleep(0.25)
        assert jetson.updates == 1 and jetson.ok(spin=True) is True


def test_a_request_changes_the_board_at_once_and_the_clients_view_at_its_next_update(board, fake_jtop, monkeypatch):
    # The service samples once an hour here: no sample is taken but the one the test asks for, however slow the
    # machine (an emulated one, a busy CI runner), so "not yet seen" cannot race a sample.
    monkeypatch.setenv("FAKE_JTOP_SERVICE_INTERVAL", "3600")
    root = board["root"]
    with fake_jtop.jtop(interval=0.05) as jetson:
        mode = jetson.nvpmodel
        assert (mode.name, mode.id, str(mode), mode == "MAXN", mode == 0) == ("MAXN", 0, "MAXN", True, True)
        assert mode.models == ["MAXN", "10W", "15W", "25W"] and mode.get_default() == {"name": "15W", "id": 2}
        jetson.nvpmodel = 2
        jetson.jetson_clocks = True
        assert jetson_board.current_power_mode(root) == (2, "15W") and jetson_board.jetson_clocks_on(root)
        assert jetson.nvpmodel.name == "MAXN" and not jetson.jetson_clocks  # as jetson-stats: not yet seen
        jetson._get_data()  # the service's next sample, taken now
        assert jetson.nvpmodel.name == "15W" and jetson.jetson_clocks and jetson.jetson_clocks.status == "running"
        with pytest.raises(fake_jtop.JtopException, match="does not exists"):
            jetson.nvpmodel = "MAXQ"


def test_clocks_pinned_before_the_service_started_cannot_be_released(tmp_path, fake_jtop, monkeypatch):
    info = jetson_board.build_root(tmp_path / "pinned", power_mode_id=3, jetson_clocks=True)
    monkeypatch.setenv("BENCH_SYSTEM_ROOT", info["root"])
    with fake_jtop.jtop(interval=0.05) as jetson:
        assert jetson.nvpmodel.name == "25W" and jetson.jetson_clocks
        with pytest.raises(fake_jtop.JtopException, match="^I cannot set jetson_clocks.\nPlease shutdown manually"):
            jetson.jetson_clocks = False


def test_jetson_setup_applies_through_jtop_and_restores(board, fake_jtop):
    root, clients = board["root"], []
    min_freq = os.path.join(board["sys"], "devices/system/cpu/cpu0/cpufreq/scaling_min_freq")

    def factory():
        clients.append(fake_jtop.jtop(interval=0.05))
        return clients[-1]

    restore = jetson_setup.apply("15W", clocks=True, factory=factory)
    assert jetson_board.current_power_mode(root) == (2, "15W") and jetson_board.jetson_clocks_on(root)
    assert open(min_freq).read().strip() == "1497600"  # pinned at the mode's cap
    # A run lasts longer than the client's interval: it has seen the new state before the restore.
    assert _until(lambda: clients[0].nvpmodel.name == "15W" and bool(clients[0].jetson_clocks))
    restore()
    assert jetson_board.current_power_mode(root) == (0, "MAXN") and not jetson_board.jetson_clocks_on(root)
    assert open(min_freq).read().strip() == "729600"
    assert not clients[0].is_alive()
