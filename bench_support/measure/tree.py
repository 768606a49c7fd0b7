"""The process tree's memory: this process's RSS plus its descendants' private pages (MB = 2**20 bytes).

Pages a forked DataLoader worker still shares with the parent are counted once, in the
parent; each descendant adds only its private pages (USS, from ``smaps_rollup``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import psutil

from bench_support.measure.sysfs import PAGE_SIZE as _PAGE_SIZE
from bench_support.metrics import MB

#: A known child's private memory is read again at once when its RSS rises this much above its readings'.
USS_REREAD_GROWTH_MB = 4.0


def private_mb(pid: int, proc_root: str = "/proc") -> Optional[float]:
    """Private (unshared) resident memory of a process: its USS, from smaps_rollup."""
    total_kb = 0
    found = False
    try:
        with open(os.path.join(proc_root, str(pid), "smaps_rollup")) as fh:
            for line in fh:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total_kb += int(line.split()[1])
                    found = True
    except (OSError, ValueError, IndexError):
        pass
    if found:
        return total_kb / 1024.0
    try:  # kernels without smaps_rollup, or macOS
        return psutil.Process(pid).memory_full_info().uss / MB
    except (psutil.Error, AttributeError):
        return None


def descendant_pids(pid: int, proc_root: str = "/proc", all_threads: bool = True) -> Optional[List[int]]:
    """Every descendant of ``pid``, from the kernel's per-thread ``children`` lists.

    ``all_threads=False`` reads only each process's main thread's list: one read per
    process, at the price of missing children that another thread forked.

    Reading only our own subtree costs a few small reads; psutil's ``children()``
    reads the ``stat`` of every process on the machine (about 1 ms with 65 processes
    here, more on a busy board) at each 10 Hz tick. None where the kernel lacks the
    lists (``CONFIG_PROC_CHILDREN`` off), so the caller can fall back.
    """
    found: List[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(os.path.join(proc_root, str(parent), "task")) if all_threads else [str(parent)]
        except OSError:
            continue  # exited between the parent's listing and now
        for task in tasks:
            try:
                with open(os.path.join(proc_root, str(parent), "task", task, "children")) as fh:
                    kids = [int(k) for k in fh.read().split()]
            except FileNotFoundError:
                if parent == pid and task == str(pid):
                    return None  # no children lists in this kernel
                continue
            except (OSError, ValueError):
                continue
            found.extend(kids)
            pending.extend(kids)
    return found


def own_and_tree_mb(proc: Optional[psutil.Process] = None, proc_root: str = "/proc") -> Tuple[float, float]:
    """(RSS of ``proc``, that RSS plus the private memory of all its descendants), now."""
    proc = proc or psutil.Process()
    own = proc.memory_info().rss / MB
    total = own
    pids = descendant_pids(proc.pid, proc_root)
    if pids is None:
        try:
            pids = [child.pid for child in proc.children(recursive=True)]
        except psutil.Error:
            pids = []
    for pid in pids:
        extra = private_mb(pid, proc_root)
        if extra is not None:
            total += extra
    return own, total


def statm_rss_mb(pid: int, proc_root: str = "/proc") -> Optional[float]:
    """RSS from /proc/<pid>/statm (resident pages): one small read, no process object."""
    try:
        with open(os.path.join(proc_root, str(pid), "statm")) as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE / MB
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Reading:
    """A child's latest private-memory reading: the value, its highest RSS at a reading, when, what it cost."""

    private_mb: float
    rss_high_mb: float
    at: float
    cost_s: float


class TreeProbe:
    """:func:`own_and_tree_mb` made cheap enough for a 10 Hz thread beside the work.

    Measured under a busy torch loop: creating a psutil process object costs ~0.2 ms and
    reading every thread's children list ~0.13 ms per tick, against ~0.02 ms for the
    statm read and one children list. So the main thread's list (DataLoader workers and
    subprocesses are forked there) is read at every tick and every thread's only at every
    ``full_scan_every``-th tick (once a second at 10 Hz).

    A child's private memory costs most: the kernel walks its page tables for
    ``smaps_rollup``, 3-10 ms for a forked torch worker (DataLoader benchmarks with two
    workers spent 15 % of their wall time sampling when every tick read it). So each
    child's reading is timed (``thread_time``) and repeated only when ``uss_budget`` times
    that cost has passed since (0.25 % of the wall time per child: every ~1-3 s for a
    torch worker), except at first sight (a respawned worker is read at once) and when
    its RSS (``statm``, every tick) has risen ``USS_REREAD_GROWTH_MB`` above its highest
    RSS at an earlier reading: a new high is what a peak is made of. In between, the
    latest reading stands.
    """

    def __init__(
        self,
        pid: Optional[int] = None,
        proc_root: str = "/proc",
        full_scan_every: int = 10,
        uss_budget: float = 400.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.proc_root = proc_root
        self.full_scan_every = max(1, full_scan_every)
        self.uss_budget = uss_budget
        self._clock, self._cpu_clock = clock, cpu_clock
        self.ticks = 0
        self.uss_reads = 0
        self._has_lists = True  # the kernel's children lists; once absent, psutil every tick
        self._uss: Dict[int, _Reading] = {}
        self.last_pids: List[int] = []  # the tree of the latest tick, for the timeline's counters

    def _private_mb(self, pid: int) -> Optional[float]:
        rss = statm_rss_mb(pid, self.proc_root)
        known = self._uss.get(pid)
        now = self._clock()
        if known is not None and rss is not None:
            new_high = rss >= known.rss_high_mb + USS_REREAD_GROWTH_MB
            if not new_high and now - known.at < self.uss_budget * known.cost_s:
                return known.private_mb
        started = self._cpu_clock()
        private = private_mb(pid, self.proc_root)
        self.uss_reads += 1
        if private is not None:
            high = max(rss or 0.0, known.rss_high_mb if known else 0.0)
            self._uss[pid] = _Reading(private, high, now, self._cpu_clock() - started)
        return private

    def __call__(self) -> Tuple[float, float]:
        own = statm_rss_mb(self.pid, self.proc_root)
        pids = None
        if own is not None and self._has_lists:
            full = self.ticks % self.full_scan_every == 0
            pids = descendant_pids(self.pid, self.proc_root, all_threads=full)
            self._has_lists = pids is not None
        if pids is None:  # no statm or no children lists (not Linux, CONFIG_PROC_CHILDREN off): psutil
            return own_and_tree_mb(psutil.Process(self.pid), self.proc_root)
        self.last_pids = pids
        extras = [self._private_mb(pid) for pid in pids]
        self._uss = {pid: self._uss[pid] for pid in pids if pid in self._uss}  # forget the exited
        self.ticks += 1
        return own, own + sum(extra for extra in extras if extra is not None)
