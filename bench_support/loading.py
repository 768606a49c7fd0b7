"""DataLoader configurations: CPU use of the process tree, worker threads, thread policy.

Thread policy (``--thread-policy``), an explicit choice because workers and the
training process compete for the same cores:

- ``default``: torch's own rules. The training process uses ``torch.get_num_threads()``
  (all cores); each DataLoader worker runs with one thread (PyTorch sets that in every
  worker). With 2 workers on 2 cores the CPU is oversubscribed, as in most real code.
- ``reserve``: the training process keeps ``max(1, cores - num_workers)`` threads while
  the benchmark runs, leaving one core per worker.

Both the main process's and a worker's thread counts are measured and recorded.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import psutil

THREAD_POLICIES = ("default", "reserve")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def thread_policy(policy: str, num_workers: int) -> Iterator[int]:
    """Apply ``policy`` to this process's torch threads for the block; yields the count."""
    import torch

    before = torch.get_num_threads()
    if policy == "reserve":
        torch.set_num_threads(max(1, usable_cores() - num_workers))
    elif policy != "default":
        raise ValueError(f"unknown thread policy {policy!r}; expected one of {', '.join(THREAD_POLICIES)}")
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


class WorkerThreads:
    """A worker_init_fn that records how many torch threads a DataLoader worker runs with."""

    def __init__(self) -> None:
        # fork is what the DataLoader uses on Linux; the shared value survives into workers.
        self.value = multiprocessing.get_context().Value("i", -1)

    def __call__(self, worker_id: int) -> None:
        import torch

        with self.value.get_lock():
            self.value.value = torch.get_num_threads()

    def read(self) -> Optional[int]:
        return None if self.value.value < 0 else self.value.value


class TreeCpu:
    """CPU seconds used by this process and all its descendants between start() and stop().

    Workers that exited and were reaped count through the parent's children times;
    live workers through their own times (minus what they had used at start).
    """

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._start_own = 0.0
        self._start_children: Dict[int, float] = {}
        self.cpu_s: Optional[float] = None

    def _own(self) -> float:
        t = self._proc.cpu_times()
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
        self.cpu_s = used
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
