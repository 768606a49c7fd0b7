"""Page-cache residency of files, and putting files into a verified cold or warm state.

Residency comes from ``mincore(2)`` on a read-only mapping of each file (what vmtouch
and util-linux ``fincore`` do), in bytes, so 4 KiB and 16 KiB page kernels compare.
Since Linux 5.2 the kernel reports *every* page resident to a caller that could not
open the file for writing and does not own it: such files get an unknown residency,
never a made-up 1.0.

Eviction: ``fadvise`` (fsync, then POSIX_FADV_DONTNEED per file: no privilege needed,
only these files; dirty pages survive DONTNEED, hence the fsync) or ``drop_caches``
(``sync; echo 3 > /proc/sys/vm/drop_caches``: root only, usually refused in
containers, drops every file's cache and the inode and dentry caches too, as the
Jetson study does). tmpfs and ramfs keep files in memory: they cannot be cold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import random
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from bench_support.errors import Unavailable
from bench_support.measure.sysfs import PAGE_SIZE

METHODS = ("auto", "drop_caches", "fadvise")
MEMORY_FS = ("tmpfs", "ramfs")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
_MAP_FAILED = ctypes.c_void_p(-1).value
_PROT_READ, _MAP_SHARED = 1, 1
# mincore sets bit 0 of a page's byte when it is resident (the other bits are reserved):
# translating every byte to its low bit and counting ones stays in C, with no numpy,
# so this module runs on any Python, also as another user (tests do that).
_LOW_BIT = bytes(b & 1 for b in range(256))


class ResidencyUnknown(Unavailable):
    """Residency of a file cannot be measured truthfully; the message says why."""


class EvictionUnavailable(Unavailable):
    """The requested way of making files cold is not possible here; the message says why."""


def mincore_trustworthy(path: str) -> Optional[str]:
    """None if mincore tells the truth about ``path`` for this process, else the reason."""
    st = os.stat(path)
    if hasattr(os, "geteuid") and (os.geteuid() == 0 or st.st_uid == os.geteuid()):
        return None
    if os.access(path, os.W_OK):
        return None
    return (
        f"{path} is neither owned nor writable by this user: since Linux 5.2 mincore then reports every page resident"
    )


def file_residency(path: str) -> Tuple[int, int, int]:
    """(resident bytes, file size, resident pages) of one file, from mincore.

    Raises ResidencyUnknown where the answer would be false (see module docstring).
    """
    size = os.path.getsize(path)
    if size == 0:
        return 0, 0, 0  # nothing to cache; an empty file cannot even be mapped
    reason = mincore_trustworthy(path)
    if reason:
        raise ResidencyUnknown(reason)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            pages = (size + PAGE_SIZE - 1) // PAGE_SIZE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
            bits = bytes(vec).translate(_LOW_BIT)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    resident_pages = bits.count(1)
    resident = resident_pages * PAGE_SIZE
    if bits[-1]:  # the last page holds only the tail of the file
        resident -= pages * PAGE_SIZE - size
    return resident, size, resident_pages


@dataclass(frozen=True)
class Residency:
    resident_bytes: int
    total_bytes: int
    files: int
    resident_pages: int

    @property
    def frac(self) -> float:
        return self.resident_bytes / self.total_bytes if self.total_bytes else 1.0


def residency(paths: Iterable[str]) -> Residency:
    """Residency of a set of files, summed in bytes. Raises ResidencyUnknown."""
    resident = total = files = pages = 0
    for path in paths:
        r, t, p = file_residency(path)
        resident += r
        total += t
        pages += p
        files += 1
    return Residency(resident, total, files, pages)


# --- making files cold or warm ------------------------------------------------------------


def evict_fadvise(paths: Iterable[str]) -> None:
    """Drop these files' pages from the cache; no privilege needed."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                os.fsync(fd)  # DONTNEED leaves dirty pages: write them back first
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # filesystems that cannot fsync
                    raise
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_caches(proc_root: str = "/proc") -> None:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; EvictionUnavailable where refused."""
    os.sync()
    try:
        with open(os.path.join(proc_root, "sys/vm/drop_caches"), "w") as fh:
            fh.write("3\n")
    except OSError as exc:
        why = "needs root" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
        raise EvictionUnavailable(
            f"cannot write /proc/sys/vm/drop_caches ({why}; read-only in most containers)"
        ) from None


def can_drop_caches(proc_root: str = "/proc") -> bool:
    return os.access(os.path.join(proc_root, "sys/vm/drop_caches"), os.W_OK)


def choose_method(requested: str, fs_type: Optional[str], proc_root: str = "/proc") -> str:
    """The eviction method to use, or EvictionUnavailable with the reason.

    ``auto`` takes fadvise: it evicts exactly the files under test. drop_caches also
    evicts every other unmapped page — torch's library code, Python modules, inodes —
    which the timed round then reads back, many times the dataset's bytes. It stays
    available, explicitly, for the study's protocol.
    """
    if fs_type in MEMORY_FS:
        raise EvictionUnavailable(f"{fs_type} keeps files in memory: a cold read is impossible there")
    if requested not in METHODS:
        raise ValueError(f"unknown eviction method {requested!r}")
    if requested == "drop_caches" and not can_drop_caches(proc_root):
        raise EvictionUnavailable("cannot write /proc/sys/vm/drop_caches (needs root; read-only in most containers)")
    return "fadvise" if requested == "auto" else requested


def evict(paths: Sequence[str], method: str, proc_root: str = "/proc") -> None:
    if method == "drop_caches":
        drop_caches(proc_root)
    elif method == "fadvise":
        evict_fadvise(paths)
    else:
        raise ValueError(f"unknown eviction method {method!r}")


def read_all(paths: Iterable[str], chunk: int = 1 << 20) -> int:
    """Read every byte of every file (into the cache); returns bytes read."""
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while True:
                data = fh.read(chunk)
                if not data:
                    break
                total += len(data)
    return total


COLD_MAX_FRAC = 0.01  # a cold round starts with at most 1 % of the bytes cached
WARM_MIN_FRAC = 0.99  # a warm round with at least 99 %
PARTIAL_TOLERANCE = 0.05  # a partial round starts within 5 points of its target
PARTIAL_SEED = 20  # which files are resident: the same subset in every round and run


def target_fraction(state: str) -> Optional[float]:
    """The resident fraction a cache state asks for: cold 0, warm 1, ``r25`` 0.25; None if unknown."""
    if state in ("cold", "warm"):
        return 0.0 if state == "cold" else 1.0
    if state.startswith("r") and state[1:].isdigit() and 0 < int(state[1:]) < 100:
        return int(state[1:]) / 100
    return None


def resident_subset(paths: Sequence[str], fraction: float, seed: int = PARTIAL_SEED) -> List[str]:
    """Whole files, a seeded random subset, whose bytes come closest to ``fraction`` of the total.

    Bytes as :func:`residency` counts them (a resident file counts its size), so the
    verified fraction lands on the target.

    Whole files rather than a share of each file's pages: a generated image is a page or
    two, which cannot be split, and a page cache that outgrew its memory holds some files
    and not others. Random rather than the first ones: spread over the read order.
    """

    order = list(paths)
    random.Random(seed).shuffle(order)
    sizes = [os.path.getsize(p) for p in order]
    goal = fraction * sum(sizes)
    chosen, total = [], 0
    for path, size in zip(order, sizes):
        if abs(total + size - goal) > abs(total - goal):
            continue  # a file that would overshoot more than it helps
        chosen.append(path)
        total += size
    return chosen


def prepare(paths: Sequence[str], state: str, method: Optional[str], proc_root: str = "/proc") -> Residency:
    """Put ``paths`` into ``state`` (cold, warm, or ``rNN``: NN % resident), verify it, and return the residency.

    ``rNN``: evicted to cold, then a fixed subset of whole files (:func:`resident_subset`)
    read; the measured residency must be within ``PARTIAL_TOLERANCE`` of NN %.

    Raises EvictionUnavailable when the state cannot be reached (and ResidencyUnknown
    when it cannot be verified): a round is never labelled cold or warm unmeasured.
    """
    if state == "cold":
        if method is None:
            raise EvictionUnavailable("no eviction method is available here")
        for _ in range(2):  # a second pass catches pages re-read by someone else meanwhile
            evict(paths, method, proc_root)
            found = residency(paths)
            if found.frac <= COLD_MAX_FRAC:
                return found
        raise EvictionUnavailable(f"{found.frac:.1%} of the data stayed cached after {method}; cannot make it cold")
    if state == "warm":
        read_all(paths)
        found = residency(paths)
        if found.frac < WARM_MIN_FRAC:
            raise EvictionUnavailable(
                f"only {found.frac:.1%} of the data stays cached after reading it: larger than the page cache can hold"
            )
        return found
    target = target_fraction(state)
    if target is None:
        raise ValueError(f"unknown cache state {state!r}")
    prepare(paths, "cold", method, proc_root)
    read_all(resident_subset(paths, target))
    found = residency(paths)
    if abs(found.frac - target) > PARTIAL_TOLERANCE:
        raise EvictionUnavailable(
            f"{found.frac:.1%} of the data is cached after making {target:.0%} resident "
            f"(tolerance {PARTIAL_TOLERANCE:.0%}): the kernel read ahead or evicted meanwhile"
        )
    return found


def page_rounded_bytes(paths: Iterable[str], page_size: int = PAGE_SIZE) -> int:
    """Bytes a cold read of whole files must fetch at page granularity (from their sizes)."""
    return sum(-(-os.path.getsize(p) // page_size) * page_size for p in paths)
