"""The measured rounds as time series: process-tree RSS, CPU and disk reads, the CPU clock, power.

Recorded at the memory sampler's ticks (the thread that already runs, on the monotonic
clock the round boundaries use), so the timeline costs a few counter reads per tick.
Saved bounded: beyond ``MAX_POINTS`` ticks, neighbouring ticks are merged into buckets
that keep the maximum RSS and the *cumulative* CPU and read counters at the bucket's
end, so a rate drawn from the saved points is the exact mean over its bucket.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_support.measure.sysfs import CLOCK_TICKS as _TICK

#: Points kept per benchmark: enough to see every epoch of a quick run, small in the JSON.
MAX_POINTS = 400


def proc_counters(pid: int, proc_root: str = "/proc") -> Tuple[Optional[float], Optional[int]]:
    """(CPU seconds incl. reaped children, bytes read from storage) of one process; None where unreadable."""
    cpu = read = None
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        # After the command name: state is field 3, so utime..cstime (14..17) sit at 11..14.
        cpu = sum(int(v) for v in fields[11:15]) / _TICK
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(os.path.join(proc_root, str(pid), "io")) as fh:
            for line in fh:
                if line.startswith("read_bytes:"):
                    read = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return cpu, read


class Timeline:
    """Ticks of one benchmark's measured rounds; ``figures()`` is the saved, bounded record.

    ``sample()`` runs on the sampling thread with the tree the memory probe just read
    (its RSS and its processes); ``round(start, end)`` marks a measured round.
    """

    def __init__(self, pid: Optional[int] = None, proc_root: str = "/proc") -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.proc_root = proc_root
        self.ticks: List[Tuple[float, float, Optional[float], Optional[int], Optional[int]]] = []
        self.rounds: List[Tuple[float, float]] = []
        self.origin: Optional[float] = None

    def start(self) -> None:
        self.origin = time.monotonic()

    def sample(self, tree_mb: float, pids: Sequence[int], freq_mhz: Optional[int] = None) -> None:
        cpu_total: Optional[float] = 0.0
        read_total: Optional[int] = 0
        for pid in (self.pid, *pids):
            cpu, read = proc_counters(pid, self.proc_root)
            if pid == self.pid and cpu is None:
                cpu_total = None
            if pid == self.pid and read is None:
                read_total = None
            if cpu_total is not None and cpu is not None:
                cpu_total += cpu
            if read_total is not None and read is not None:
                read_total += read
        self.ticks.append((time.monotonic(), tree_mb, cpu_total, read_total, freq_mhz))

    def round(self, start: float, end: float) -> None:
        self.rounds.append((start, end))

    def figures(self, power: Sequence[Tuple[float, float]] = ()) -> Dict[str, Any]:
        """The record saved with the result: times in seconds from the window's start."""
        origin = self.origin if self.origin is not None else (self.ticks[0][0] if self.ticks else 0.0)
        ticks = downsample(self.ticks, MAX_POINTS)
        out: Dict[str, Any] = {
            "t_s": [round(t - origin, 3) for t, *_ in ticks],
            "rss_tree_mb": [round(mb, 1) for _, mb, *_ in ticks],
            "cpu_pct": rates([t for t, *_ in ticks], [c for _, _, c, _, _ in ticks], 100.0),
            "read_mb_s": rates([t for t, *_ in ticks], [r for _, _, _, r, _ in ticks], 1 / 2**20),
            "rounds_s": [[round(s - origin, 3), round(e - origin, 3)] for s, e in self.rounds],
        }
        if any(f is not None for *_, f in ticks):
            out["cpu_freq_mhz"] = [f for *_, f in ticks]
        if power:
            kept = power[:: max(1, -(-len(power) // MAX_POINTS))]
            out["power_t_s"] = [round(t - origin, 3) for t, _ in kept]
            out["power_w"] = [round(w, 3) for _, w in kept]
        return out


def downsample(ticks: Sequence[tuple], limit: int) -> List[tuple]:
    """At most ``limit`` ticks: each bucket ends at its last tick, with the maximum RSS of the bucket.

    The cumulative counters and the clock are those of the bucket's last tick, so rates over
    the kept ticks stay exact means; the frequency is the bucket's lowest (a slow-down shows).
    """
    if len(ticks) <= limit:
        return list(ticks)
    size = -(-len(ticks) // limit)
    kept = []
    for begin in range(0, len(ticks), size):
        bucket = ticks[begin : begin + size]
        t, _, cpu, read, _ = bucket[-1]
        freqs = [b[4] for b in bucket if b[4] is not None]
        kept.append((t, max(b[1] for b in bucket), cpu, read, min(freqs) if freqs else None))
    return kept


def rates(times: Sequence[float], totals: Sequence[Optional[float]], scale: float) -> List[Optional[float]]:
    """Per-interval rate of a cumulative counter (first point None: no interval ends there)."""
    out: List[Optional[float]] = [None]
    for i in range(1, len(times)):
        a, b, dt = totals[i - 1], totals[i], times[i] - times[i - 1]
        out.append(round(max(0.0, b - a) * scale / dt, 2) if a is not None and b is not None and dt > 0 else None)
    return out
