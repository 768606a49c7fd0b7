"""Resident memory of the benchmark process and of its children (MB = 2**20 bytes).

Linux keeps a per-process high-water mark (VmHWM, which is also what ``ru_maxrss``
reports) that only ever grows; writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0)
resets it to the current RSS. Resetting it before each measurement is what lets a
benchmark that runs after a memory-hungry one report its own peak.

DataLoader workers are child processes: their memory never shows in the parent's
VmHWM, so a sampler adds each child's *private* pages (USS) to the parent's RSS
(:mod:`bench_support.measure.tree`). Pages a forked worker still shares with the
parent are counted once, in the parent.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import psutil

from bench_support.measure.tree import TreeProbe
from bench_support.metrics import MB

#: How often the process-tree sampler looks at the children, in seconds.
TREE_SAMPLE_INTERVAL_S = 0.1


def _status_kb(field_name: str, pid: str = "self", proc_root: str = "/proc") -> Optional[int]:
    """A ``kB`` field of /proc/<pid>/status (VmHWM, VmRSS), or None if unreadable."""
    try:
        with open(os.path.join(proc_root, pid, "status")) as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def ru_maxrss_mb() -> float:
    """The kernel's lifetime peak RSS of this process, unit-normalised.

    ``ru_maxrss`` is KiB on Linux and bytes on macOS.
    """
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return raw / MB if sys.platform == "darwin" else raw * 1024 / MB


def rss_now_mb() -> float:
    """Current resident set size of this process."""
    return psutil.Process().memory_info().rss / MB


def rss_hwm_mb(proc_root: str = "/proc") -> Optional[float]:
    """Peak RSS since start or since the last reset (VmHWM), None where /proc lacks it."""
    kb = _status_kb("VmHWM", proc_root=proc_root)
    return None if kb is None else kb / 1024.0


def rss_split_mb(proc_root: str = "/proc") -> Dict[str, float]:
    """This process's RSS now in its two parts: ``rss_anon_mb`` (heap, stacks: what the work allocated) and
    ``rss_file_mb`` (pages of mapped files, mostly the libraries); a key is left out where /proc lacks it.

    The file part depends on the page cache as much as on the work: a library page counts once the process
    touches it, and the kernel also maps the cached pages around each one it faults in, so the same import
    leaves more resident when the libraries are wholly cached (figures in docs/methods.md, Fresh processes).
    """
    out: Dict[str, float] = {}
    for field_name, key in (("RssAnon", "rss_anon_mb"), ("RssFile", "rss_file_mb")):
        kb = _status_kb(field_name, proc_root=proc_root)
        if kb is not None:
            out[key] = round(kb / 1024.0, 2)
    return out


def release_freed() -> None:
    """Give freed memory back before a benchmark: collect cycles, and ask glibc to return free heap pages.

    What an earlier benchmark freed but the allocator kept would otherwise count in the next one's RSS,
    so its absolute peak would depend on what ran before (``-k`` vs a whole run).
    """
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to trim


def added_mb(peak: Optional[float], before: Optional[float]) -> Optional[float]:
    """What a piece of work added to the RSS: its peak minus the RSS before it; None where either is unknown."""
    return None if peak is None or before is None else round(peak - before, 2)


#: madvise(2) advice that maps a range's pages into the page tables without writing them (Linux 5.14).
MADV_POPULATE_READ = 22
_PRESENT_BIT = 63  # of a /proc/PID/pagemap entry


def resident_file_ranges(proc_root: str = "/proc") -> List[Tuple[int, int]]:
    """(address, length) of every run of pages of this process's readable file mappings (libraries, mapped files)
    that are in its page tables now; [] where /proc/self/pagemap cannot be read.

    A forked child does not inherit these entries (Linux refaults file pages rather than copy their entries at
    fork), so its RSS starts below its parent's by every library page the parent touched. Handing these ranges to
    :func:`map_in` in the child restores them.
    """
    import numpy as np

    page = os.sysconf("SC_PAGE_SIZE")
    out: List[Tuple[int, int]] = []
    try:
        with open(f"{proc_root}/self/maps") as maps, open(f"{proc_root}/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split()
                path = fields[5] if len(fields) >= 6 else ""
                if not path.startswith("/") or path.startswith("/dev/") or "r" not in fields[1]:
                    continue  # anonymous (fork copies those), a device, or unreadable
                start, end = (int(x, 16) for x in fields[0].split("-"))
                pagemap.seek(start // page * 8)
                entries = np.frombuffer(pagemap.read((end - start) // page * 8), dtype=np.uint64)
                present = ((entries >> np.uint64(_PRESENT_BIT)) & np.uint64(1)).astype(np.int8)
                if not present.any():
                    continue
                edges = np.diff(np.concatenate(([0], present, [0])))
                for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                    out.append((int(start + first * page), int((stop - first) * page)))
    except (OSError, ValueError, IndexError):
        return []
    return out


def map_in(ranges: List[Tuple[int, int]]) -> int:
    """Map ``ranges`` (from :func:`resident_file_ranges` in the parent) into this process's page tables, reading
    nothing; returns the bytes mapped. Falls back to reading one byte per page where the kernel lacks
    ``MADV_POPULATE_READ``."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    mapped = 0
    for address, length in ranges:
        if libc.madvise(address, length, MADV_POPULATE_READ) != 0:
            for offset in range(0, length, page):  # an older kernel: a read per page maps it
                ctypes.string_at(address + offset, 1)
        mapped += length
    return mapped


def reset_peak_rss(proc_root: str = "/proc") -> bool:
    """Reset this process's RSS high-water mark; False where the kernel does not allow it."""
    try:
        with open(os.path.join(proc_root, "self", "clear_refs"), "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class TreeSampler:
    """Samples the process tree's memory (:class:`TreeProbe`) in a background thread and keeps the maxima."""

    def __init__(
        self,
        interval_s: float = TREE_SAMPLE_INTERVAL_S,
        probe: Optional[Callable[[], Tuple[float, float]]] = None,
        on_sample: Optional[Callable[[], None]] = None,
    ) -> None:
        self.interval_s = interval_s
        self._probe = probe or TreeProbe()
        self._on_sample = on_sample  # other cheap readings on the same tick (frequency, temperature)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.own_peak_mb = 0.0
        self.tree_peak_mb = 0.0
        self.samples = 0
        self.last_tree_mb = 0.0
        self.cpu_s: Optional[float] = None  # this thread's own CPU time: what sampling cost

    def _sample(self) -> None:
        try:
            own, tree = self._probe()
        except (psutil.Error, OSError):
            return
        self.samples += 1
        self.last_tree_mb = tree
        self.own_peak_mb = max(self.own_peak_mb, own)
        self.tree_peak_mb = max(self.tree_peak_mb, tree)

    def _loop(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval_s):
            self._sample()
            if self._on_sample is not None:
                try:
                    self._on_sample()
                except Exception:  # noqa: BLE001 - one bad reading must not end the sampling of the window
                    pass
        self.cpu_s = time.thread_time() - started

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="tree-rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


class MemoryWindow:
    """Brackets the measured rounds of one benchmark and yields the memory family.

    Use as a context manager around the measured rounds only (never the warm-up);
    afterwards ``figures`` holds the memory family of :mod:`bench_support.metrics`.
    """

    def __init__(
        self,
        interval_s: float = TREE_SAMPLE_INTERVAL_S,
        proc_root: str = "/proc",
        on_sample: Optional[Callable[[], None]] = None,
        probe: Optional[Callable[[], Tuple[float, float]]] = None,
    ) -> None:
        self.interval_s = interval_s
        self.proc_root = proc_root
        self.figures: Dict[str, object] = {}
        self.sampler = TreeSampler(interval_s, probe=probe, on_sample=on_sample)
        self._peak_reset = False
        self._baseline_mb = 0.0
        self._started = 0.0

    def __enter__(self) -> MemoryWindow:
        self._peak_reset = reset_peak_rss(self.proc_root)
        self._baseline_mb = rss_now_mb()
        self.sampler.start()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()
        wall = time.monotonic() - self._started
        now = rss_now_mb()
        hwm = rss_hwm_mb(self.proc_root) if self._peak_reset else None
        if hwm is not None:
            peak, method = hwm, "VmHWM, reset through /proc/self/clear_refs"
        else:
            # No resettable kernel peak (macOS, old kernel, locked-down /proc): the
            # sampled maximum is the honest fallback, and the method says so.
            peak = max(self.sampler.own_peak_mb, now)
            method = f"sampled every {self.interval_s:.2f} s (kernel peak not resettable)"
        self.figures = {
            "rss_peak_mb": round(peak, 2),
            "rss_now_mb": round(now, 2),
            "rss_delta_mb": round(peak - self._baseline_mb, 2),
            # The tree includes this process, whose exact peak is known: never below it.
            "rss_tree_peak_mb": round(max(self.sampler.tree_peak_mb, peak), 2),
            "rss_baseline_mb": round(self._baseline_mb, 2),
            **rss_split_mb(self.proc_root),
            "rss_peak_method": method,
            "rss_tree_samples": self.sampler.samples,
        }
        if self.sampler.cpu_s is not None and wall > 0:
            # The sampler's cost, measured: while it runs it holds the GIL or a core the work
            # wanted. An estimate, not a bound: waits for the GIL and cache effects are not in it.
            self.figures["sampler_cpu_s"] = round(self.sampler.cpu_s, 4)
            self.figures["sampler_cpu_share"] = round(self.sampler.cpu_s / wall, 5)
