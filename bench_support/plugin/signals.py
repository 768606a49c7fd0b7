"""SIGTERM and SIGHUP stop a benchmark run the way Ctrl-C does: what finished is kept.

``timeout``, CI runners and systemd stop a job with SIGTERM, and a closed terminal sends SIGHUP. Python's default
for both is to die on the spot, so pytest-benchmark never saves and a power-mode sweep never restores the board's
start mode. Turned into a KeyboardInterrupt, they take pytest's Ctrl-C path instead: the running benchmark is
dropped, the finished ones are saved, every cleanup runs.

Once the session is finishing (saving, restoring), a further signal, SIGINT included, is only reported, so it
cannot tear a save in half: tox itself sends its child a second SIGINT a moment after the first, and an impatient
user presses Ctrl-C twice. SIGKILL (or Ctrl-\\) remains for a run that must die now.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Dict, Optional

#: The signals that end a run politely. SIGINT already raises KeyboardInterrupt.
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class StopSignals:
    """Installs the handlers; remembers the first stop signal so the run can exit with 128 + its number."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.finishing = False
        self._previous: Dict[int, object] = {}

    def install(self) -> bool:
        """Replace the default action of each stop signal; a signal someone ignores or handles stays theirs."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return bool(self._previous)

    def shield(self) -> None:
        """From now on the session is finishing: every stop signal, Ctrl-C too, is reported and the save goes on."""
        self.finishing = True
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None or self.finishing:
            if signum != signal.SIGINT:
                self.received = self.received or signum
            sys.stderr.write(f"\nedge-bench: {name} received while saving what finished; the save goes on\n")
            return
        self.received = signum
        sys.stderr.write(f"\nedge-bench: {name} received: stopping as on Ctrl-C, finished benchmarks are kept\n")
        raise KeyboardInterrupt

    def exit_status(self) -> Optional[int]:
        """The shell's status for a process ended by the signal (143 for SIGTERM), or None if none came."""
        return None if self.received is None else 128 + self.received
