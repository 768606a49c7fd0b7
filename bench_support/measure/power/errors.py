"""What every power source promises, and how it says it cannot keep the promise.

A source's ``read()`` never blocks: it returns a reading, or raises :class:`SourceUnavailable`
when it cannot measure here (or no longer can). A reading stays fresh for ``stale_after_s`` of
the reading interval; the live feeds refuse older readings, and a power session gives up on a
source whose reads have failed for that long.
"""

from __future__ import annotations

STALE_INTERVALS = 3
MIN_STALE_S = 2.0


class SourceUnavailable(Exception):
    """This source cannot measure here (or no longer can); the message says why."""


def stale_after_s(interval_s: float) -> float:
    """How long a reading stays fresh: a few reading intervals, never under ``MIN_STALE_S``."""
    return max(STALE_INTERVALS * interval_s, MIN_STALE_S)
