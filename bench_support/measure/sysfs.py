"""Reading /proc and /sys defensively, and the arithmetic of their counters.

Every reader takes the path it reads (tests hand in a fake tree) and returns None
rather than raising or inventing a value when the file is missing or unreadable.
"""

from __future__ import annotations

from typing import Optional


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
