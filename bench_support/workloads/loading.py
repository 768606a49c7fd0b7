"""DataLoader configurations: worker threads, thread policy, loader-only passes.

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
import statistics
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from bench_support.errors import Unavailable
from bench_support.measure.cpu import RoundCpu, usable_cores
from bench_support.workloads.data import make_loader

THREAD_POLICIES = ("default", "reserve")
LOADER_KEYS = ("num_workers", "prefetch_factor", "pin_memory", "persistent_workers")


def meaningful(config: Dict[str, Any]) -> bool:
    """Without workers there is nothing to prefetch and nothing to keep alive (other grid points: kept)."""
    if "num_workers" not in config:
        return True
    return config["num_workers"] > 0 or (config.get("prefetch_factor") == 2 and not config.get("persistent_workers"))


def loader_config(
    num_workers: int, prefetch_factor: int, pin_memory: bool, persistent_workers: bool, cuda_visible: bool
) -> Dict[str, Any]:
    """The DataLoader keyword arguments of one grid point; Unavailable where it means nothing here."""
    if pin_memory and not cuda_visible:
        raise Unavailable("pin_memory only matters when batches go to a CUDA device, and none is visible")
    return {
        "num_workers": num_workers,
        "prefetch_factor": prefetch_factor if num_workers else None,
        "pin_memory": pin_memory,
        "persistent_workers": persistent_workers,
    }


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


class LoaderUnderTest:
    """One DataLoader configuration over a dataset, its workers' thread count and per-round CPU use.

    ``cpu.start``/``cpu.stop`` go in a round's untimed setup/teardown; ``one_pass`` is a
    loader-only round (decode + transforms + collate, nothing else).
    """

    def __init__(self, dataset, batch: int, config: Dict[str, Any], policy: str) -> None:
        self.config, self.policy = config, policy
        self.workers = WorkerThreads()
        self.loader = make_loader(dataset, batch, **config)
        self.loader.worker_init_fn = self.workers
        self.cpu = RoundCpu()
        self.passes: List[Dict[str, Any]] = []

    def one_pass(self) -> None:
        start = time.perf_counter()
        first = None
        samples = 0
        for _, targets in self.loader:
            if first is None:
                first = time.perf_counter() - start
            samples += targets.shape[0]
        self.passes.append({"wall": time.perf_counter() - start, "first": first, "samples": samples})

    def config_info(self, main_threads: int, measured: int) -> Dict[str, Any]:
        return dict(
            self.config,
            thread_policy=self.policy,
            torch_threads_main=main_threads,
            torch_threads_worker=self.workers.read(),
            cpu_util_pct=statistics.median(self.cpu.util_pct[-measured:]),
        )

    def pass_figures(self, measured: int, data_mb: Optional[float]) -> Dict[str, Any]:
        """Rate, bandwidth and first-batch latency of the last ``measured`` passes (medians)."""
        passes = self.passes[-measured:]
        wall = statistics.median(p["wall"] for p in passes)
        return {
            "measure": "loader",
            "samples_per_s": passes[-1]["samples"] / wall,
            "mb_per_s": data_mb / wall if data_mb else None,
            "first_batch_s": statistics.median(p["first"] for p in passes),
        }
