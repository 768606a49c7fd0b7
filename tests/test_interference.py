"""Interference: what other processes did during the rounds, and whether the CPUs ran at full speed."""

import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.measure import interference as itf
from bench_support.report.validity import flag, validity


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_proc_stat_pressure_and_sysfs_are_parsed(tmp_path):
    tick = itf._TICK
    _write(tmp_path, "stat", f"cpu  {100 * tick} {10 * tick} {20 * tick} 999 5 {2 * tick} {3 * tick} {7 * tick} 0 0\n")
    assert itf.cpu_times(str(tmp_path)) == pytest.approx((135.0, 7.0))
    _write(tmp_path, "pressure/cpu", "some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\nfull avg10=0 total=0\n")
    assert itf.pressure_total_s("cpu", str(tmp_path)) == 2.5
    assert itf.pressure_total_s("memory", str(tmp_path)) is None  # no PSI for memory here: left out
    for cpu, (cur, top) in enumerate([(1200000, 2000000), (1900000, 2000000)]):
        _write(tmp_path, f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", f"{cur}\n")
        _write(tmp_path, f"devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq", f"{top}\n")
        _write(tmp_path, f"devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count", f"{cpu + 1}\n")
    _write(tmp_path, "class/thermal/thermal_zone0/temp", "61500\n")
    assert itf.cpu_freqs_mhz(str(tmp_path)) == [(1200, 2000), (1900, 2000)]
    assert itf.throttle_count(str(tmp_path)) == 3 and itf.temperatures_c(str(tmp_path)) == [61.5]


@given(
    busy=st.floats(0, 1000),
    own=st.floats(0, 1000),
    steal=st.floats(0, 100),
    wall=st.floats(0.01, 100),
    cores=st.integers(1, 16),
)
def test_the_foreign_share_is_the_busy_time_nobody_in_our_tree_used(busy, own, steal, wall, cores):
    start = {"t": 10.0, "cpu": (50.0, 1.0), "cpu_pressure": 3.0, "memory_pressure": None, "throttles": None}
    end = {"t": 10.0 + wall, "cpu": (50.0 + busy, 1.0 + steal), "cpu_pressure": 3.0 + wall / 2,
           "memory_pressure": 1.0, "throttles": None}  # fmt: skip
    f = itf.interference_figures(start, end, own, cores)
    # The counters are differences of larger numbers: rounding of ~1e-13 s is expected, not a difference.
    assert f["foreign_cpu_s"] == pytest.approx(max(0.0, busy - own), abs=1e-9)
    assert f["foreign_cpu_share"] == pytest.approx(min(1.0, max(0.0, busy - own) / (wall * cores)), abs=1e-6)
    assert 0.0 <= f["steal_share"] <= 1.0 and f["cpu_pressure_share"] == pytest.approx(0.5)
    assert "memory_pressure_share" not in f and "thermal_throttle_events" not in f  # unknown: left out


@given(process=st.floats(0.6, 100), counted=st.floats(0, 0.49))
def test_a_tree_that_proc_does_not_count_leaves_the_foreign_share_unknown(process, counted):
    # qemu-user answers /proc/self/stat with zero CPU times: all CPU would read as foreign ("contended 100%").
    start = {"t": 0.0, "cpu": (0.0, 0.0), "cpu_pressure": None, "memory_pressure": None, "throttles": None}
    end = {"t": process, "cpu": (process, 0.0), "cpu_pressure": None, "memory_pressure": None, "throttles": None}
    f = itf.interference_figures(start, end, counted * process, 1, process_s=process)
    assert "foreign_cpu_share" not in f and "zero CPU times" in f["foreign_cpu_unavailable"]
    counted_well = itf.interference_figures(start, end, process, 1, process_s=process)  # a kernel that counts
    assert counted_well["foreign_cpu_share"] == pytest.approx(0.0, abs=1e-9)
    assert "foreign_cpu_unavailable" not in counted_well


def test_throttling_is_measured_or_said_to_be_unknown():
    assert itf.throttle_verdict({}, None) == {
        "throttled": None,
        "throttled_unavailable": "no cpufreq or thermal throttle counters on this machine",
    }
    assert itf.throttle_verdict({"thermal_throttle_events": 2}, None) == {"throttled": True}
    assert itf.throttle_verdict({"cpu_freq_min_mhz": 1700}, 2000) == {"throttled": True}
    assert itf.throttle_verdict({"cpu_freq_min_mhz": 1950, "thermal_throttle_events": 0}, 2000) == {"throttled": False}


def _bench(**info):
    """A precise result (its recorded 95 % interval ±1 %) unless told otherwise."""
    return {"stats": {"rounds": 5, "iqr": 0.01, "median": 1.0}, "extra_info": {"median_ci_rel": 0.01, **info}}


def test_validity_says_why_a_result_is_contended_or_throttled():
    quiet = validity(_bench(foreign_cpu_share=0.02, throttled=False), "quick")
    assert quiet["contended"] is False and quiet["throttled"] is False and quiet["conditions"] == []
    busy = validity(_bench(foreign_cpu_share=0.63, throttled=True, cpu_freq_min_mhz=900, cpu_freq_limit_mhz=2000), None)
    assert busy["contended"] is True and busy["foreign_cpu_share"] == 0.63
    assert busy["conditions"] == [
        "contended: other processes used 63% of the CPU during the rounds",
        "throttled: the fastest CPU ran at 900 MHz of 2000 MHz",
    ]
    assert flag(busy) == " [contended 63%] [throttled]"
    old = validity(_bench(), "quick")  # saved by an older suite: not judged, and says so
    assert old["contended"] is None and old["throttled"] is None and old["throttled_unavailable"]


def test_validity_says_when_a_noisy_result_ran_on_a_machine_that_was_itself_noisy():
    def noisy(**info):
        bench = _bench(median_ci_rel=0.3, **info)
        bench["stats"].update(rounds=8, median=1.0, iqr=0.3)
        return bench

    assert validity(noisy(speed_probe_iqr=0.04), "quick")["conditions"] == []
    shaky = validity(noisy(speed_probe_iqr=0.29), "quick")
    assert shaky["conditions"] == ["the machine's own speed varied: the speed probe's IQR/median was 0.29"]
    assert validity(_bench(speed_probe_iqr=0.29), "quick")["conditions"] == []  # a steady result needs no excuse


BUSY = "import os, time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def test_a_busy_process_outside_the_tree_shows_as_foreign_cpu(tmp_path):
    """A CPU-bound process that is not our child (double-forked) runs while the window sleeps."""
    if itf.cpu_times() is None:
        pytest.skip("no /proc/stat here")
    pidfile = tmp_path / "pid"
    launcher = f"import os, subprocess, sys\np = subprocess.Popen([sys.executable, '-c', {BUSY!r}])\n"
    launcher += f"open({str(pidfile)!r}, 'w').write(str(p.pid))\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", launcher], check=True, timeout=60)
    pid = int(pidfile.read_text())
    try:
        time.sleep(0.3)
        with itf.InterferenceWindow() as window:
            time.sleep(1.5)
    finally:
        os.kill(pid, signal.SIGKILL)
    f = window.figures
    # The busy loop gets at least a fair share of one core even on a loaded machine: over 1/4 of two.
    assert f["foreign_cpu_share"] > 0.2 and f["own_cpu_s"] < 0.5, f
    assert f["foreign_cpu_s"] == pytest.approx(f["foreign_cpu_share"] * 1.5 * itf.usable_cores(), rel=0.1)
