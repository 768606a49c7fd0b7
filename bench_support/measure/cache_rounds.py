"""Rounds over a set of files, each started in a verified page-cache state (:mod:`bench_support.measure.pagecache`)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

from bench_support.measure.diskio import diskstats_name, io_figures, io_snapshot, storage_of
from bench_support.measure.pagecache import PAGE_SIZE, EvictionUnavailable, choose_method, prepare, target_fraction

IO_KEYS = ("disk_read_mb", "disk_reads", "read_iops", "disk_read_mb_per_s", "r_await_ms", "util_pct", "proc_read_mb")


class CacheRounds:
    """Rounds over a set of files, each started in a verified cache state and bracketed
    by the files' block-device counters and this process's read bytes.

    ``prepare`` goes in a round's untimed setup, ``finish`` in its untimed teardown.
    Raises :class:`EvictionUnavailable` / :class:`ResidencyUnknown` (the benchmark is
    skipped with the reason) when the state cannot be reached or verified.
    """

    def __init__(self, directory: str, paths: Sequence[str], cache_state: str, requested_method: str) -> None:
        self.paths = list(paths)
        self.cache_state = cache_state
        self.storage = storage_of(directory)
        self.method: Optional[str] = None
        try:
            self.method = choose_method(requested_method, self.storage["fs_type"])
        except EvictionUnavailable:
            if cache_state != "warm":  # cold and partial states start by evicting
                raise
        self.rounds: List[Dict[str, Any]] = []  # figures of every round, warm-up included
        self._before: Any = None

    def prepare(self) -> None:
        found = prepare(self.paths, self.cache_state, self.method)
        self._before = (found, io_snapshot(diskstats_name(self.storage)), time.perf_counter())

    def finish(self) -> None:
        found, snapshot, start = self._before
        seconds = time.perf_counter() - start
        figures = io_figures(snapshot, io_snapshot(diskstats_name(self.storage)))
        figures.update(resident_frac_before=found.frac, seconds=seconds)
        self.rounds.append(figures)

    def summary(self, measured: int) -> Dict[str, Any]:
        """The residency claim (worst round), storage facts and median I/O of the last ``measured`` rounds."""
        rounds = self.rounds[-measured:]
        fracs = [r["resident_frac_before"] for r in rounds]
        target = target_fraction(self.cache_state)
        # The round furthest from its target: the most resident for cold, the least for warm.
        claim = max(fracs, key=lambda f: abs(f - target))
        info: Dict[str, Any] = {
            "resident_frac_before": claim,
            "resident_frac_target": target,
            "resident_frac_before_rounds": fracs,
            "eviction_method": self.method if self.cache_state != "warm" else None,
            "page_size": PAGE_SIZE,
        }
        info.update(self.storage)
        if self.storage.get("block_device") is None:
            info["io_unavailable"] = self.storage.get("block_device_unavailable")
        for key in IO_KEYS:
            values = [r[key] for r in rounds if r.get(key) is not None]
            info[key] = statistics.median(values) if values else None
        if info.get("disk_reads") == 0:
            info["r_await_note"] = "no reads reached the device"
        return info

    def median_seconds(self, measured: int) -> float:
        return statistics.median(r["seconds"] for r in self.rounds[-measured:])
