"""What else the machine was doing during the measured rounds, and whether it ran at full speed.

Counters read at the window's edges (no sampling thread of its own, nothing in the timed
path):
- ``/proc/stat``: busy time of all CPUs; minus this process tree's own CPU time, the
  CPU *other* processes used (``foreign_cpu_share``: of the machine's capacity over the
  window); ``steal`` (a hypervisor running other guests on our cores);
- ``/proc/pressure/{cpu,memory}`` (PSI, Linux >= 4.20): the share of the window in which
  some runnable task of ours or theirs waited for a CPU / stalled on memory;
- thermal throttle counters (x86 ``thermal_throttle``) where the kernel has them.
Sampled by the memory sampler's thread (same clock, every tick): the clock of the fastest
CPU (``cpufreq``; its lowest value over the window says whether the work ran slowed down)
and the highest temperature (``thermal_zone*``). A figure the
machine cannot give is left out, with ``throttled_unavailable`` saying why when there is
nothing to judge throttling by.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from bench_support.measure.cpu import TreeCpu, usable_cores
from bench_support.measure.sysfs import CLOCK_TICKS as _TICK
from bench_support.measure.sysfs import read_text, system_path

#: A window in which other processes used more than this share of the machine is "contended".
CONTENDED_SHARE = 0.25
#: Below this share of the maximum frequency a CPU counts as slowed down (governor or thermal).
THROTTLED_FREQ_FRAC = 0.9


def cpu_times(proc_root: str = "/proc") -> Optional[Tuple[float, float]]:
    """(busy seconds, steal seconds) of all CPUs since boot, from the aggregate line of /proc/stat."""
    text = read_text(os.path.join(proc_root, "stat")) or ""
    first = text.splitlines()[0].split() if text else []
    if len(first) < 8 or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    steal = values[7] if len(values) > 7 else 0
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


def pressure_total_s(kind: str, proc_root: str = "/proc") -> Optional[float]:
    """PSI ``some`` total (seconds in which some task stalled on ``kind``), None without PSI."""
    text = read_text(os.path.join(proc_root, "pressure", kind)) or ""
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                if field.startswith("total="):
                    return int(field[6:]) / 1e6
    return None


def throttle_count(sys_root: str = "/sys") -> Optional[int]:
    paths = glob.glob(os.path.join(sys_root, "devices/system/cpu/cpu*/thermal_throttle/*_throttle_count"))
    values = [read_text(p) for p in paths]
    counts = [int(v) for v in values if v and v.isdigit()]
    return sum(counts) if counts else None


def cpufreq_dirs(sys_root: str = "/sys") -> List[str]:
    return sorted(glob.glob(os.path.join(sys_root, "devices/system/cpu/cpu[0-9]*/cpufreq")))


def thermal_files(sys_root: str = "/sys") -> List[str]:
    return sorted(glob.glob(os.path.join(sys_root, "class/thermal/thermal_zone*/temp")))


def cpu_freqs_mhz(sys_root: str = "/sys", dirs: Optional[List[str]] = None) -> List[Tuple[int, Optional[int]]]:
    """(current, maximum) MHz of every CPU with cpufreq (``dirs``: those folders, found once)."""
    out = []
    for folder in cpufreq_dirs(sys_root) if dirs is None else dirs:
        cur = read_text(os.path.join(folder, "scaling_cur_freq"))
        top = read_text(os.path.join(folder, "cpuinfo_max_freq"))
        if cur and cur.isdigit():
            out.append((int(cur) // 1000, int(top) // 1000 if top and top.isdigit() else None))
    return out


def temperatures_c(sys_root: str = "/sys", files: Optional[List[str]] = None) -> List[float]:
    out = []
    for path in thermal_files(sys_root) if files is None else files:
        value = read_text(path)
        if value and value.lstrip("-").isdigit():
            out.append(int(value) / 1000.0)
    return out


class InterferenceWindow:
    """Brackets the measured rounds; ``figures`` holds the interference family afterwards.

    ``sample()`` is called by the memory sampler's thread at each of its ticks.
    """

    def __init__(self, proc_root: str = "/proc", sys_root: Optional[str] = None) -> None:
        self.proc_root, self.sys_root = proc_root, sys_root or system_path("/sys")
        self.figures: Dict[str, Any] = {}
        self._tree = TreeCpu()
        self._freq_min: Optional[int] = None
        self._freq_max_seen: Optional[int] = None
        self._freq_top: Optional[int] = None
        self._temp_max: Optional[float] = None
        self.last_freq_mhz: Optional[int] = None  # the fastest CPU's clock at the latest tick
        self._start: Dict[str, Any] = {}
        # Found once: each tick then reads a few known files instead of listing /sys again.
        self._freq_dirs = cpufreq_dirs(self.sys_root)
        self._temp_files = thermal_files(self.sys_root)

    def sample(self) -> None:
        freqs = cpu_freqs_mhz(dirs=self._freq_dirs)
        if freqs:  # the fastest core at this tick: an idle core's low clock says nothing about the work
            high = max(f for f, _ in freqs)
            self.last_freq_mhz = high
            self._freq_min = high if self._freq_min is None else min(self._freq_min, high)
            self._freq_max_seen = high if self._freq_max_seen is None else max(self._freq_max_seen, high)
            tops = [t for _, t in freqs if t]
            self._freq_top = max(tops) if tops else self._freq_top
        temps = temperatures_c(files=self._temp_files)
        if temps:
            self._temp_max = max(temps) if self._temp_max is None else max(self._temp_max, max(temps))

    def _counters(self) -> Dict[str, Any]:
        return {
            "t": time.monotonic(),
            "cpu": cpu_times(self.proc_root),
            "cpu_pressure": pressure_total_s("cpu", self.proc_root),
            "memory_pressure": pressure_total_s("memory", self.proc_root),
            "throttles": throttle_count(self.sys_root),
        }

    def __enter__(self) -> InterferenceWindow:
        self.sample()
        self._tree.start()
        self._start = self._counters()
        self._process_start = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._counters()
        own_s = self._tree.stop()
        process_s = time.process_time() - self._process_start
        self.sample()
        self.figures = interference_figures(self._start, end, own_s, usable_cores(), process_s)
        if self._freq_min is not None:
            self.figures.update(cpu_freq_min_mhz=self._freq_min, cpu_freq_max_mhz=self._freq_max_seen)
            if self._freq_top:
                self.figures["cpu_freq_limit_mhz"] = self._freq_top
        if self._temp_max is not None:
            self.figures["temp_max_c"] = self._temp_max
        self.figures.update(throttle_verdict(self.figures, self._freq_top))


#: Below this share of the CPU time the process itself counted, /proc's count of the tree is not believed.
OWN_CPU_FLOOR = 0.5


def interference_figures(
    start: Dict[str, Any], end: Dict[str, Any], own_s: float, cores: int, process_s: Optional[float] = None
) -> Dict[str, Any]:
    """The family from two counter readings and this tree's CPU seconds between them.

    ``process_s``: this process's own CPU time over the window from its clock (``time.process_time``). Where /proc
    counted the tree at far less than that (qemu-user answers ``/proc/self/stat`` with zero CPU times), all CPU would
    read as foreign: the foreign share is then left out, with the reason.
    """
    wall = end["t"] - start["t"]
    figures: Dict[str, Any] = {"own_cpu_s": own_s}
    capacity = wall * max(cores, 1)
    if process_s is not None and process_s > 0.5 and own_s < OWN_CPU_FLOOR * process_s:  # 50 ticks: not rounding
        figures["foreign_cpu_unavailable"] = (
            f"/proc counted {own_s:.2f} s of this process tree's CPU where the process's own clock counted "
            f"{process_s:.2f} s (an emulator such as qemu-user answers /proc/self/stat with zero CPU times)"
        )
        return _pressure_and_throttles(figures, start, end, wall)
    if start["cpu"] and end["cpu"] and capacity > 0:
        busy = end["cpu"][0] - start["cpu"][0]
        steal = end["cpu"][1] - start["cpu"][1]
        foreign = max(0.0, busy - own_s)  # counters tick at 1/USER_HZ: a small negative is rounding
        figures.update(
            foreign_cpu_s=foreign,
            foreign_cpu_share=min(1.0, foreign / capacity),
            steal_share=min(1.0, max(0.0, steal) / capacity),
        )
    return _pressure_and_throttles(figures, start, end, wall)


def _pressure_and_throttles(figures: Dict[str, Any], start: Dict[str, Any], end: Dict[str, Any], wall: float):
    for kind in ("cpu_pressure", "memory_pressure"):
        if start[kind] is not None and end[kind] is not None and wall > 0:
            figures[f"{kind}_share"] = min(1.0, max(0.0, end[kind] - start[kind]) / wall)
    if start["throttles"] is not None and end["throttles"] is not None:
        figures["thermal_throttle_events"] = end["throttles"] - start["throttles"]
    return figures


def throttle_verdict(figures: Dict[str, Any], freq_limit_mhz: Optional[int]) -> Dict[str, Any]:
    """``throttled`` measured: a throttle event, or a CPU below 90 % of its maximum; else why it is unknown."""
    events = figures.get("thermal_throttle_events")
    low = figures.get("cpu_freq_min_mhz")
    if events is None and (low is None or not freq_limit_mhz):
        return {"throttled": None, "throttled_unavailable": "no cpufreq or thermal throttle counters on this machine"}
    slow = low is not None and bool(freq_limit_mhz) and low < THROTTLED_FREQ_FRAC * freq_limit_mhz
    return {"throttled": bool(events) or slow}
