"""Progress of a long preparation step (dataset generation, pretraining) on the terminal.

On a terminal one line is rewritten in place: a bar, the count and the time left,
estimated from the rate so far. Elsewhere (a CI log, a pipe) a plain line is written at
each quarter, and at least every ``LINE_EVERY_S`` between them, so a log shows the step
is alive without a hundred lines, also when a busy machine makes a quarter take minutes.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

#: A terminal line is rewritten at most this often.
REDRAW_S = 0.2
#: Off a terminal, a line at least this often (if the step reports that often): silence reads as a hang.
LINE_EVERY_S = 20.0
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_text(label: str, done: int, total: int, elapsed_s: float, unit: str = "", bar: bool = True) -> str:
    """``generating X: [#####.....] 320/640 images, 4 s left`` (``done in 9 s`` at the end)."""
    total = max(total, 1)
    done = min(max(done, 0), total)
    text = f"{label}: "
    if bar:
        filled = BAR_WIDTH * done // total
        text += "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
    text += f"{done}/{total}" + (f" {unit}" if unit else "")
    if done == total:
        return text + f", done in {_duration(elapsed_s)}"
    if done and elapsed_s > 0:
        return text + f", {_duration(elapsed_s / done * (total - done))} left"
    return text


class Bar:
    """A ``(done, total)`` callback drawing :func:`progress_text`.

    ``redraw(text, final)`` rewrites the terminal line in place (``final``: then ends it);
    without one (not a terminal), ``line(text)`` writes a plain line at each quarter.
    """

    def __init__(
        self,
        label: str,
        line: Callable[[str], None],
        redraw: Optional[Callable[[str, bool], None]] = None,
        unit: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.unit = label, unit
        self._line, self._redraw, self._clock = line, redraw, clock
        self._started = clock()
        self._drawn = float("-inf")
        self._lined = self._started
        self._quarter = 0

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        elapsed = now - self._started
        if self._redraw is not None:
            final = done >= total
            if final or now - self._drawn >= REDRAW_S:
                self._drawn = now
                self._redraw(progress_text(self.label, done, total, elapsed, self.unit), final)
            return
        quarter = 4 * min(done, total) // max(total, 1)
        if quarter > self._quarter or (done < total and now - self._lined >= LINE_EVERY_S):
            self._quarter = max(quarter, self._quarter)
            self._lined = now
            self._line(progress_text(self.label, done, total, elapsed, self.unit, bar=False))
