"""CPU use of this process and its descendants (DataLoader workers), per round.

Workers that exited and were reaped count through the parent's children times; live
workers through their own times minus what they had used at the start.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional

import psutil


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class TreeCpu:
    """CPU seconds used by this process and all its descendants between start() and stop().

    Workers that exited and were reaped count through the parent's children times;
    live workers through their own times (minus what they had used at start).
    """

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._start_own = 0.0
        self._start_children: Dict[int, float] = {}

    def _own(self) -> float:
        # times(2), not /proc/self/stat: the same kernel counts in the same ticks, and an emulator (qemu-user)
        # answers a process's reads of its own stat file with made-up zeros but passes the system call through.
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def _live(self) -> Dict[int, float]:
        times = {}
        for child in self._proc.children(recursive=True):
            try:
                t = child.cpu_times()
                times[child.pid] = t.user + t.system
            except psutil.Error:
                pass
        return times

    def start(self) -> None:
        self._start_own = self._own()
        self._start_children = self._live()

    def stop(self) -> float:
        live = self._live()
        used = self._own() - self._start_own
        used += sum(t - self._start_children.get(pid, 0.0) for pid, t in live.items())
        return used


class RoundCpu:
    """Process-tree CPU use per round, started in a round's setup and read in its teardown,
    so the accounting (a scan of the children) stays out of the timed region."""

    def __init__(self) -> None:
        self.util_pct: List[Optional[float]] = []
        self._cpu = TreeCpu()
        self._start = 0.0

    def start(self, *args: object, **kwargs: object) -> None:
        self._cpu = TreeCpu()
        self._cpu.start()
        self._start = time.perf_counter()

    def stop(self, *args: object, **kwargs: object) -> None:
        wall = time.perf_counter() - self._start
        self.util_pct.append(cpu_util_pct(self._cpu.stop(), wall))


def cpu_util_pct(cpu_s: float, wall_s: float) -> Optional[float]:
    """CPU use as top shows it: 100 per fully busy core (up to 100 x cores)."""
    return 100.0 * cpu_s / wall_s if wall_s > 0 else None
