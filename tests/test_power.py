"""Power: integration maths, counter wraps, and every source against fakes with known traces."""

import math
import os
import pathlib
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bench_support.board import setup as jetson_setup
from bench_support.measure.power.session import (
    PowerWindow,
    integrate_rectangle,
    integrate_trapezoid,
    measure_idle_w,
)
from bench_support.measure.power.sources import (
    Ina3221Source,
    JtopSource,
    NvmlSource,
    RaplSource,
    SourceUnavailable,
    TegrastatsSource,
    open_source,
    parse_tegrastats,
    tegrastats_total,
)
from bench_support.measure.sysfs import counter_delta

# --- maths ------------------------------------------------------------------------------

times = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30, unique=True).map(sorted)


@given(ts=times, power=st.floats(0, 500), a=st.floats(-10, 110), length=st.floats(0, 50))
def test_constant_power_integrates_to_power_times_time(ts, power, a, length):
    samples = [(t, power) for t in ts]
    assert math.isclose(integrate_trapezoid(samples, a, a + length), power * length, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(
        integrate_rectangle(samples, a, a + length, first_interval=1e9), power * length, rel_tol=1e-9, abs_tol=1e-9
    )


@given(
    samples=st.lists(st.tuples(st.floats(0, 100), st.floats(0, 300)), min_size=1, max_size=30),
    cuts=st.lists(st.floats(-5, 105), min_size=3, max_size=3).map(sorted),
)
def test_integration_is_additive_over_adjacent_windows(samples, cuts):
    samples = sorted(dict(samples).items())
    a, b, c = cuts
    for integrate in (integrate_trapezoid, lambda s, x, y: integrate_rectangle(s, x, y, 1.0)):
        whole = integrate(samples, a, c)
        assert math.isclose(integrate(samples, a, b) + integrate(samples, b, c), whole, rel_tol=1e-9, abs_tol=1e-6)


def test_additivity_holds_with_subnormal_times():
    """The example hypothesis found: interpolating at t = 5e-324 gave 2.0 between samples of 0 and 1.5."""
    samples, (a, b, c) = [(0.0, 0.0), (5e-324, 1.5)], (0.0, 5e-324, 1.0)
    for integrate in (integrate_trapezoid, lambda s, x, y: integrate_rectangle(s, x, y, 1.0)):
        whole = integrate(samples, a, c)
        assert math.isclose(integrate(samples, a, b) + integrate(samples, b, c), whole, rel_tol=1e-9, abs_tol=1e-6)


@given(max_range=st.integers(1, 2**40), old=st.integers(0, 2**40), step=st.integers(0, 2**40))
def test_counter_deltas_are_never_negative_across_a_wrap(max_range, old, step):
    assume(old < max_range and step < max_range)
    new = (old + step) % max_range
    delta = counter_delta(old, new, max_range)
    assert delta >= 0 and delta == step


def test_trapezoid_of_a_ramp_is_exact():
    samples = [(t, 10.0 * t) for t in (0.0, 1.0, 2.5, 4.0)]  # P = 10 t
    assert integrate_trapezoid(samples, 0.5, 3.0) == pytest.approx(5 * (3.0**2 - 0.5**2))


# --- RAPL ---------------------------------------------------------------------------------


def _zone(root, name, label, energy, max_range):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def test_rapl_energy_is_exact_across_a_wraparound(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900_000, 1_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5, 1_000_000)  # a sub-zone: never added to the total
    source = RaplSource(str(tmp_path))
    assert source.label == "rapl: package-0 (summed zones)" and source.measured_total is False
    start = source.read()
    for value in (950_000, 50_000, 400_000):  # +50 000, +100 000 across the wrap, +350 000 µJ
        (pkg / "energy_uj").write_text(f"{value}\n")
        end = source.read()
    assert end - start == pytest.approx(0.5)


def test_rapl_prefers_psys_and_sums_packages_otherwise(tmp_path):
    _zone(tmp_path / "a", "intel-rapl:0", "package-0", 0, 10**9)
    _zone(tmp_path / "a", "intel-rapl:1", "package-1", 0, 10**9)
    assert RaplSource(str(tmp_path / "a")).label == "rapl: package-0+package-1 (summed zones)"
    _zone(tmp_path / "b", "intel-rapl:0", "package-0", 0, 10**9)
    _zone(tmp_path / "b", "intel-rapl:1", "psys", 0, 10**9)
    psys = RaplSource(str(tmp_path / "b"))
    assert psys.label == "rapl: psys" and psys.measured_total is True
    with pytest.raises(SourceUnavailable, match="no RAPL zones"):
        RaplSource(str(tmp_path / "empty"))


def test_rapl_readable_by_root_only_is_a_reason(tmp_path, monkeypatch):
    _zone(tmp_path, "intel-rapl:0", "package-0", 0, 10**9)
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(SourceUnavailable, match="readable by root only"):
        RaplSource(str(tmp_path))


# --- a replayed power trace ---------------------------------------------------------------


def trace_w(t):
    return 5.0 + 2.0 * math.sin(2 * math.pi * t / 0.8)


def trace_j(a, b):
    k = 2 * math.pi / 0.8
    return 5.0 * (b - a) - 2.0 / k * (math.cos(k * b) - math.cos(k * a))


class Replayer:
    """Rewrites a value every 2 ms following trace_w(time.monotonic())."""

    def __init__(self, write):
        self._write, self._stop = write, threading.Event()
        self._write(trace_w(time.monotonic()))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.002):
            self._write(trace_w(time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _ina_tree(tmp_path, rails):
    hwmon = tmp_path / "1-0040" / "hwmon" / "hwmon3"
    hwmon.mkdir(parents=True)
    for channel, (label, mv) in enumerate(rails, 1):
        (hwmon / f"in{channel}_label").write_text(label + "\n")
        (hwmon / f"in{channel}_input").write_text(f"{mv}\n")
        (hwmon / f"curr{channel}_input").write_text("0\n")
    return hwmon


def _atomic_write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@pytest.fixture
def memory_dir(tmp_path):
    """A directory on tmpfs when there is one: the replayer's 2 ms renames must not wait
    for disk writeback (a fresh clone has just written GBs of environment), or the file
    lags the trace it is compared with."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
            yield directory
    else:
        yield str(tmp_path)


def test_ina3221_energy_matches_the_trace_integral(memory_dir):
    hwmon = _ina_tree(pathlib.Path(memory_dir), [("VDD_IN", 5000), ("VDD_CPU_GPU_CV", 5000), ("VDD_SOC", 5000)])
    source = Ina3221Source(memory_dir)
    assert source.label == "ina3221: VDD_IN" and source.measured_total is True

    def write(watts):  # I = P / V at 5 V, in mA
        _atomic_write(hwmon / "curr1_input", f"{watts / 5.0 * 1000:.3f}\n")

    with Replayer(write), PowerWindow(source, interval_s=0.01) as window:
        time.sleep(1.6)
    f = window.figures
    expected = trace_j(window._start, window._start + f["power_window_s"])
    assert f["energy_j"] == pytest.approx(expected, rel=0.01)
    assert f["power_samples"] > 50 and f["power_unavailable"] is None and f["power_measured_total"] is True


def test_ina3221_without_an_input_rail_sums_and_says_so(tmp_path):
    _ina_tree(tmp_path, [("VDD_GPU_SOC", 5000), ("VDD_CPU_CV", 5000)])
    source = Ina3221Source(str(tmp_path))
    assert source.label == "ina3221: VDD_GPU_SOC+VDD_CPU_CV (sum of rails)" and source.measured_total is False


def test_tegrastats_energy_matches_the_trace_integral():
    def lines():
        while True:
            mw = trace_w(time.monotonic()) * 1000
            yield f"RAM 2448/7772MB (lfb 2x4MB) CPU [2%@1190] VDD_IN {mw:.0f}mW/{mw:.0f}mW VDD_SOC 1353mW/1353mW"
            time.sleep(0.003)

    source = TegrastatsSource(lines=lines())
    assert source.label == "tegrastats: VDD_IN" and source.measured_total is True
    with PowerWindow(source, interval_s=0.01) as window:
        time.sleep(1.6)
    f = window.figures
    assert f["energy_j"] == pytest.approx(trace_j(window._start, window._start + f["power_window_s"]), rel=0.01)


REAL_LINES = {
    "nano": (
        "RAM 534/3964MB (lfb 98x4MB) SWAP 5/1982MB (cached 1MB) IRAM 0/252kB(lfb 252kB) CPU [16%@204,off,off,off] "
        "EMC_FREQ 0%@204 GR3D_FREQ 0%@76 APE 25 PLL@27C CPU@29.5C PMIC@100C GPU@27C AO@35.5C thermal@28.25C "
        "POM_5V_IN 1022/1022 POM_5V_GPU 0/0 POM_5V_CPU 204/204",
        {"POM_5V_IN": (1022, 1022), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (204, 204)},
        (1.022, "POM_5V_IN", True),
    ),
    "xavier-nx": (
        "RAM 2448/7772MB (lfb 2x4MB) SWAP 0/3886MB (cached 0MB) CPU [2%@1190,1%@1190,0%@1190,0%@1190,0%@1190,0%@1190] "
        "EMC_FREQ 0% GR3D_FREQ 0% AUX@33C CPU@34.5C thermal@33.9C AO@32.5C GPU@33C PMIC@100C VDD_IN 4067/4067 "
        "VDD_CPU_GPU_CV 738/738 VDD_SOC 1353/1353",
        {"VDD_IN": (4067, 4067), "VDD_CPU_GPU_CV": (738, 738), "VDD_SOC": (1353, 1353)},
        (4.067, "VDD_IN", True),
    ),
    "orin-nano": (
        "04-27-2026 14:59:41 RAM 775/7620MB (lfb 3x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@729,0%@729,0%@729,0%@729,"
        "0%@729,0%@729] GR3D_FREQ 0% cpu@48.468C soc2@47.25C soc0@47.437C gpu@48.156C tj@49.156C soc1@49.156C "
        "VDD_IN 4761mW/4778mW VDD_CPU_GPU_CV 515mW/501mW VDD_SOC 1428mW/1428mW",
        {"VDD_IN": (4761, 4778), "VDD_CPU_GPU_CV": (515, 501), "VDD_SOC": (1428, 1428)},
        (4.761, "VDD_IN", True),
    ),
    # Not a captured line: AGX Orin's rails as power.md describes them (no VDD_IN; three values each).
    "agx-orin": (
        "RAM 3000/30000MB VDD_GPU_SOC 3000mW/3000mW/3100mW VDD_CPU_CV 800mW/790mW/800mW "
        "VIN_SYS_5V0 2000mW/2000mW/2000mW",
        {"VDD_GPU_SOC": (3000, 3000), "VDD_CPU_CV": (800, 790), "VIN_SYS_5V0": (2000, 2000)},
        (5.8, "VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0 (sum of rails)", False),
    ),
}


@pytest.mark.parametrize("board", sorted(REAL_LINES))
def test_real_tegrastats_lines_parse_to_their_rails_and_total(board):
    line, rails, total = REAL_LINES[board]
    parsed = parse_tegrastats(line)
    assert parsed == {k: (float(a), float(b)) for k, (a, b) in rails.items()}
    watts, what, measured = tegrastats_total(parsed)
    assert (round(watts, 6), what, measured) == total


# --- jtop ---------------------------------------------------------------------------------


class FakeJtop:
    """jetson-stats' data shapes: rails in mW, 'tot' with 'name' when it is a measured rail."""

    def __init__(self, total_name=None, power_mw=6000, interval=1.0):
        self.interval = interval
        tot = {"power": power_mw, "avg": power_mw // 2, "volt": 5000, "curr": power_mw // 5}
        if total_name:
            tot["name"] = total_name
        self.power = {
            "rail": {"VDD_CPU_GPU_CV": {"volt": 5000, "curr": 200, "power": 1000, "avg": 980, "online": True}},
            "tot": tot,
        }
        self.closed = False
        self.nvpmodel = SimpleNamespace(name="15W", id=2)
        self.jetson_clocks = False

    def start(self):
        pass

    def close(self):
        self.closed = True


def test_jtop_reads_the_instant_total_never_the_average():
    client = FakeJtop("VDD_IN", power_mw=6000)
    asked = []

    def factory(interval):
        asked.append(interval)
        return client

    source = JtopSource(0.1, factory=factory)
    assert asked == [0.5]  # never below the 0.5 s the maintainer calls stable
    assert source.label == "jtop: VDD_IN" and source.measured_total is True
    assert source.read() == 6.0  # 'power', not 'avg' (3.0)


def test_jtop_sum_of_rails_is_labelled_as_such():
    source = JtopSource(0.5, factory=lambda interval: FakeJtop(None))
    assert source.label == "jtop: sum of module rails" and source.measured_total is False


def test_a_missing_jtop_service_is_a_reason_not_a_crash():
    def factory(interval):
        raise RuntimeError("The jtop.service is not active. Please run:\nsudo systemctl restart jtop.service")

    with pytest.raises(SourceUnavailable) as info:
        JtopSource(0.5, factory=factory)
    assert str(info.value) == "jtop service not reachable: The jtop.service is not active. Please run:"


def test_jetson_setup_is_applied_and_restored():
    client = FakeJtop()
    restore = jetson_setup.apply("MAXN", True, factory=lambda: client)
    assert client.nvpmodel == "MAXN" and client.jetson_clocks is True
    restore()
    assert client.nvpmodel == "15W" and client.jetson_clocks is False and client.closed


# --- NVML ---------------------------------------------------------------------------------


class FakeNvml:
    def __init__(self, energy=True):
        self.energy_mj, self.power_mw, self.energy = 1_000_000, 250_000, energy

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA A2"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw


def test_nvml_uses_the_energy_counter_when_the_gpu_has_one():
    nvml = FakeNvml()
    source = NvmlSource(nvml=nvml)
    assert source.kind == "counter" and "energy counter" in source.label
    start = source.read()
    nvml.energy_mj += 12_345
    assert source.read() - start == pytest.approx(12.345)
    older = NvmlSource(nvml=FakeNvml(energy=False))
    assert older.kind == "average" and older.read() == 250.0


# --- the window and the session -----------------------------------------------------------


class ConstantSource:
    kind, label, measured_total = "instant", "test: constant", True

    def read(self):
        return 10.0


def test_window_figures_and_idle_subtraction():
    with PowerWindow(ConstantSource(), interval_s=0.02, idle_w=4.0) as window:
        time.sleep(0.3)
    f = window.figures
    assert f["energy_j"] == pytest.approx(10.0 * f["power_window_s"])
    assert f["power_avg_w"] == pytest.approx(10.0)
    assert f["energy_net_j"] == pytest.approx(6.0 * f["power_window_s"])
    assert f["power_idle_w"] == 4.0 and f["power_source"] == "test: constant"


def test_a_window_with_too_few_samples_says_so():
    with PowerWindow(ConstantSource(), interval_s=5.0) as window:
        pass
    f = window.figures
    assert f["energy_j"] is None and "at least 3 are needed" in f["power_unavailable"]
    assert f["power_samples"] == 2 and f["power_source"] == "test: constant"


def test_idle_power_is_measured_with_the_same_source():
    idle, reason = measure_idle_w(ConstantSource(), 0.2, 0.02)
    assert idle == pytest.approx(10.0) and reason is None


def test_no_source_gives_nulls_and_the_reason():
    source, reason = open_source("none", 0.1)
    assert source is None and "--power-backend none" in reason
    with PowerWindow(None, reason) as window:
        pass
    assert window.figures["energy_j"] is None and window.figures["power_unavailable"] == reason


# --- fail closed: a dead or silent source gives no energy, and never blocks ----------------

RAIL_LINE = (
    "04-27-2026 14:59:41 RAM 775/7620MB (lfb 3x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@729,0%@729] GR3D_FREQ 0% "
    "cpu@48.468C VDD_IN {mw}mW/4778mW VDD_CPU_GPU_CV 515mW/501mW VDD_SOC 1428mW/1428mW"
)
NO_RAIL_LINE = "RAM 2448/7772MB (lfb 2x4MB) SWAP 0/3886MB (cached 0MB) CPU [2%@1190,1%@1190] EMC_FREQ 0% GR3D_FREQ 0%"


def _bounded(fn, limit_s=30.0):
    """fn()'s result, failing (not hanging) the test if it has not returned within limit_s."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"still blocked after {limit_s} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _wait_until(predicate, limit_s=10.0):
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _raises(read):
    try:
        read()
    except SourceUnavailable:
        return True
    return False


@pytest.fixture
def fake_tegrastats(tmp_path, monkeypatch):
    """Puts an executable ``tegrastats`` (a shell script, the body given) first on PATH; it records its pid."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    pidfile = tmp_path / "tegrastats.pid"

    def install(body):
        script = bindir / "tegrastats"
        script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\n{body}\n")
        script.chmod(0o755)
        return pidfile

    return install


def _gone(pidfile):
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_tegrastats_that_exits_gives_no_energy_but_the_reason(fake_tegrastats):
    lines = "".join(f"echo '{RAIL_LINE.format(mw=mw)}'; sleep 0.1\n" for mw in (4761, 4800, 4700))
    fake_tegrastats(lines + "exit 0")
    source, reason = _bounded(lambda: open_source("tegrastats", 0.1))
    assert reason is None and source.label == "tegrastats: VDD_IN"

    def window():
        with PowerWindow(source, interval_s=0.02) as window:
            _wait_until(lambda: _raises(source.read))  # the process has exited: nothing fresh any more
            time.sleep(0.1)
        return window.figures

    f = _bounded(window)
    assert f["energy_j"] is None and f["power_avg_w"] is None and f["energy_net_j"] is None
    assert f["power_unavailable"] == "tegrastats exited (code 0) after 3 readings"
    again = _bounded(window)  # every later window says so too
    assert again["energy_j"] is None and again["power_unavailable"] == f["power_unavailable"]
    source.close()


def test_a_tegrastats_that_falls_silent_goes_stale(fake_tegrastats):
    fake_tegrastats(f"echo '{RAIL_LINE.format(mw=5000)}'\necho '{RAIL_LINE.format(mw=5000)}'\nexec sleep 30")
    source, reason = _bounded(lambda: open_source("tegrastats", 0.1))
    assert reason is None and source.read() == 5.0

    def window():
        with PowerWindow(source, interval_s=0.05) as window:
            _wait_until(lambda: _raises(source.read))  # max(3 x 0.1 s, 2 s) without a line
        return window.figures

    f = _bounded(window)
    assert f["energy_j"] is None and f["power_unavailable"] == "no fresh tegrastats reading for 2.0 s"
    source.close()


@pytest.mark.parametrize(
    "body",
    [f"while echo '{NO_RAIL_LINE}'; do sleep 0.05; done", "exec sleep 30"],
    ids=["only-non-rail-lines", "nothing"],
)
def test_a_tegrastats_without_power_lines_is_unavailable_in_bounded_time(fake_tegrastats, body):
    pidfile = fake_tegrastats(body)
    source, reason = _bounded(lambda: open_source("tegrastats", 0.1))
    assert source is None
    assert reason == "no power sensor readable here (tegrastats: tegrastats printed no power rail line within 2.0 s)"
    assert _gone(pidfile)  # stopped, not left running


def test_auto_moves_on_past_a_useless_tegrastats(fake_tegrastats, monkeypatch):
    from bench_support.measure.power import sources as power_sources

    fake_tegrastats("exit 3")
    monkeypatch.setattr(power_sources, "AUTO_ORDER", ("tegrastats", "rapl"))
    monkeypatch.setattr(power_sources, "RaplSource", ConstantSource)
    source, reason = _bounded(lambda: open_source("auto", 0.1))
    assert isinstance(source, ConstantSource) and reason is None
    monkeypatch.setattr(power_sources, "AUTO_ORDER", ("tegrastats",))
    _, reason = _bounded(lambda: open_source("auto", 0.1))
    assert reason.startswith("no power sensor readable here (")
    assert reason.endswith("(tegrastats: tegrastats exited (code 3) before printing a power rail line)")


def test_replayed_lines_that_end_say_so():
    source = TegrastatsSource(lines=iter([RAIL_LINE.format(mw=4000)] * 2))
    _wait_until(lambda: _raises(source.read))
    with pytest.raises(SourceUnavailable, match=r"^tegrastats output ended after 2 readings$"):
        source.read()


class FailingSource:
    """10 W for ``good`` reads, then gone for good; counts the reads asked of it."""

    kind, label, measured_total = "instant", "test: failing", True

    def __init__(self, good):
        self.good, self.calls = good, 0

    def read(self):
        self.calls += 1
        if self.calls > self.good:
            raise SourceUnavailable("sensor gone")
        return 10.0


def test_no_sample_is_taken_or_integrated_after_a_source_fails():
    source = FailingSource(good=5)
    with PowerWindow(source, interval_s=0.01) as window:
        _wait_until(lambda: source.calls > source.good)
        time.sleep(0.1)
    f = window.figures
    assert f["energy_j"] is None and f["power_unavailable"] == "sensor gone" and f["power_source"] == "test: failing"
    assert f["power_samples"] == 5 and source.calls == 6  # sampling stopped at the failure
    idle, reason = measure_idle_w(FailingSource(good=0), 0.05, 0.01)
    assert idle is None and reason == "idle power not measured: sensor gone"


@given(stale=st.floats(0.01, 100), age=st.floats(0, 200))
def test_a_reading_is_fresh_exactly_as_long_as_the_timeout(stale, age):
    from bench_support.measure.power.live import Feed

    now = [0.0]
    feed = Feed("test", stale, clock=lambda: now[0])
    with pytest.raises(SourceUnavailable, match="no fresh test reading"):
        feed.latest()  # nothing yet
    feed.put(7.0)
    now[0] = age
    if age <= stale:
        assert feed.latest() == 7.0
    else:
        with pytest.raises(SourceUnavailable, match=f"no fresh test reading for {stale:.1f} s"):
            feed.latest()
    feed.end("ended")
    with pytest.raises(SourceUnavailable, match="^ended$"):
        feed.latest()


@given(interval=st.floats(0.001, 60))
def test_the_timeout_is_a_few_intervals_and_never_under_two_seconds(interval):
    from bench_support.measure.power.errors import stale_after_s

    assert stale_after_s(interval) >= 2.0 and stale_after_s(interval) >= 3 * interval
    assert stale_after_s(interval) == pytest.approx(max(3 * interval, 2.0))


class LiveJtop(FakeJtop):
    """FakeJtop with the client's liveness: ok(spin) and observers called on each update."""

    def __init__(self, **kwargs):
        super().__init__("VDD_IN", **kwargs)
        self.alive, self.error, self.observers, self.spins = True, None, [], []

    def ok(self, spin=False):
        self.spins.append(spin)
        if self.error:
            raise self.error
        return self.alive

    def attach(self, observer):
        self.observers.append(observer)

    def update(self):
        for observer in self.observers:
            observer(self)


def test_jtop_fails_closed_when_its_client_stops_or_fails():
    client = LiveJtop()
    source = JtopSource(0.5, factory=lambda interval: client)
    client.update()
    assert source.read() == 6.0 and client.spins == [True]  # never the blocking ok()
    client.alive = False
    with pytest.raises(SourceUnavailable, match="jtop client stopped"):
        source.read()
    client.alive, client.error = True, RuntimeError("Lost connection with jtop server\nmore")
    with PowerWindow(source, interval_s=0.01) as window:
        pass
    assert window.figures["energy_j"] is None
    assert window.figures["power_unavailable"] == "jtop client failed: Lost connection with jtop server"


def test_jtop_without_updates_goes_stale():
    client = LiveJtop(interval=1.0)
    source = JtopSource(0.5, factory=lambda interval: client)
    now = [0.0]
    source._feed._clock = lambda: now[0]
    source._feed.put()
    now[0] = 2.9
    assert source.read() == 6.0
    now[0] = 3.1  # three of the service's 1 s intervals without an update
    with pytest.raises(SourceUnavailable, match=r"no fresh jtop reading for 3\.0 s"):
        source.read()
    client.update()
    assert source.read() == 6.0


class FlakySource:
    """10 W, except that the reads numbered in ``bad`` (or every read from ``dead_from`` on) fail with OSError."""

    kind, label, measured_total = "instant", "test: flaky", True

    def __init__(self, bad=(), dead_from=None):
        self.bad, self.dead_from, self.calls = set(bad), dead_from, 0

    def read(self):
        self.calls += 1
        if self.calls in self.bad or (self.dead_from is not None and self.calls >= self.dead_from):
            raise OSError("hwmon1 channel 1 has no voltage/current readings")
        return 10.0


def test_a_read_error_now_and_then_is_counted_not_fatal():
    source = FlakySource(bad={3, 4, 5})
    with PowerWindow(source, interval_s=0.01) as window:
        _wait_until(lambda: source.calls > 10)
    f = window.figures
    assert f["energy_j"] == pytest.approx(10.0 * f["power_window_s"]) and f["power_read_errors"] == 3


def test_reads_that_keep_failing_end_the_window_without_energy():
    source = FlakySource(dead_from=4)

    def window():
        with PowerWindow(source, interval_s=0.05) as window:
            _wait_until(lambda: window._sampler.failure is not None)  # 2 s (the minimum timeout) of errors
        return window.figures

    f = _bounded(window)
    assert f["energy_j"] is None and f["power_samples"] == 3
    assert f["power_unavailable"] == (
        "no reading from test: flaky for 2.0 s (last error: hwmon1 channel 1 has no voltage/current readings)"
    )


def test_an_ina3221_channel_that_vanishes_after_selection_fails_closed(tmp_path):
    hwmon = _ina_tree(tmp_path, [("VDD_IN", 5000)])
    (hwmon / "curr1_input").write_text("1000\n")
    source = Ina3221Source(str(tmp_path))
    assert source.read() == 5.0
    (hwmon / "curr1_input").unlink()  # the driver unbound
    with pytest.raises(OSError, match="no voltage/current readings"):
        source.read()
    with pytest.raises(SourceUnavailable, match="no voltage/current readings"):
        Ina3221Source(str(tmp_path))  # at selection it is a reason


def test_a_jtop_service_that_never_answers_cannot_hang_selection(monkeypatch):
    from bench_support.measure.power import live as power_live

    monkeypatch.setattr(power_live, "JTOP_START_S", 0.2)
    hung = threading.Event()

    class Hanging(FakeJtop):
        def start(self):
            hung.wait(30)

    with pytest.raises(SourceUnavailable, match=r"^jtop service did not answer within 0\.2 s$"):
        _bounded(lambda: JtopSource(0.5, factory=lambda interval: Hanging()))
    hung.set()


def test_a_power_source_asked_for_by_name_that_gave_nothing_is_said_once_at_the_end():
    from types import SimpleNamespace

    from bench_support.plugin.terminal import asked_power_line

    none = [SimpleNamespace(extra_info={"power_source": None, "power_unavailable": "nvml: pynvml is not installed"})]
    line = asked_power_line("nvml", none * 3)
    assert line == "power: --power-backend nvml gave no power to any result (nvml: pynvml is not installed)"
    assert asked_power_line("auto", none) == ""  # finding nothing is the common case, said in every result
    measured = [SimpleNamespace(extra_info={"power_source": "rapl"}), *none]
    assert asked_power_line("rapl", measured) == "" and asked_power_line("rapl", []) == ""
