"""Reading /proc and /sys defensively, and the arithmetic of their counters.

Every reader takes the path it reads (tests hand in a fake tree) and returns None
rather than raising or inventing a value when the file is missing or unreadable.
"""

from __future__ import annotations

import os
from typing import Optional

#: The kernel's units: clock ticks of /proc/<pid>/stat and /proc/stat, and the page size.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: Test-only: a directory whose files stand in for the machine's (a simulated Jetson).
SYSTEM_ROOT_ENV = "BENCH_SYSTEM_ROOT"


def system_path(path: str) -> str:
    """``path`` (absolute), or its stand-in under ``$BENCH_SYSTEM_ROOT`` where that exists.

    An overlay rather than a chroot: the simulated board supplies the files that make
    it a Jetson (device tree, L4T release, hwmon, cpufreq, thermal), while /proc's
    process and memory files stay this machine's own. Unset, it is the identity.
    """
    root = os.environ.get(SYSTEM_ROOT_ENV)
    if root:
        candidate = os.path.join(root, path.lstrip("/"))
        if os.path.lexists(candidate):
            return candidate
    return path


def rooted(root: str, path: str) -> str:
    """``path`` under a fake ``root`` (tests), or the machine's own path (through the overlay) when root is /."""
    if root == "/":
        return system_path(path)
    return os.path.join(root, path.lstrip("/"))


def read_text(path: str) -> Optional[str]:
    """A sysfs/procfs file's text, stripped, NULs removed (device-tree strings end in one); None if absent or empty."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().replace(b"\0", b"").decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


def counter_delta(old: float, new: float, max_range: Optional[float] = None) -> float:
    """Increase of a monotonic counter between two reads, across at most one wrap.

    ``max_range``: where the counter wraps, when the kernel says (RAPL's
    ``max_energy_range_uj``). Without it the counter is an ``unsigned long`` (the
    /proc/diskstats fields): 32 bits on a 32-bit kernel (a Raspberry Pi OS armhf image),
    64 bits otherwise, so one that went down wrapped at the smallest width that can hold
    the old value.
    """
    if new >= old:
        return new - old
    if max_range:
        return new - old + max_range
    width = 32 if old < (1 << 32) else 64
    return new + (1 << width) - old
