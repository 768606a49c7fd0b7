"""Power sources fed by something running beside the benchmark: a ``tegrastats`` process, the jtop client.

Fresh or fail. Their readings arrive on another thread; ``read()`` never waits for one.
It returns the latest reading while it is fresh (younger than ``stale_after_s``: three
reading intervals, at least 2 s) and raises :class:`SourceUnavailable` once the
process has exited, the client has stopped, or nothing fresh has arrived within that
time; the power window then reports no energy, with that reason. Selection is bounded
the same way: a ``tegrastats`` that prints no power rail within the timeout is
unavailable, and ``--power-backend auto`` moves on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from bench_support.measure.power.errors import SourceUnavailable, stale_after_s

#: Rails that measure a Jetson module's whole input (Nano, Xavier NX, Orin NX/Nano, Thor).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")


def _readings(n: int) -> str:
    return f"{n} reading" if n == 1 else f"{n} readings"


class Feed:
    """The latest reading of a stream that another thread fills, and whether the stream still lives."""

    def __init__(self, name: str, stale_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.stale_s, self._clock = name, stale_s, clock
        self.value: Optional[float] = None
        self.stamp: Optional[float] = None
        self.count = 0
        self.ended: Optional[str] = None
        self.first = threading.Event()  # set by the first reading, or by the end of the stream

    def put(self, value: Optional[float] = None) -> None:
        self.value, self.stamp, self.count = value, self._clock(), self.count + 1
        self.first.set()

    def end(self, reason: str) -> None:
        self.ended = reason
        self.first.set()

    def check(self) -> None:
        """Raises SourceUnavailable unless the stream is alive and its latest reading fresh."""
        if self.ended is not None:
            raise SourceUnavailable(self.ended)
        if self.stamp is None or self._clock() - self.stamp > self.stale_s:
            raise SourceUnavailable(f"no fresh {self.name} reading for {self.stale_s:.1f} s")

    def latest(self) -> float:
        self.check()
        assert self.value is not None
        return self.value


# --- tegrastats ---------------------------------------------------------------------------

# NAME instant/average[/third] in mW, the unit optional (JetPack 4 prints none). The
# look-ahead refuses "RAM 534/3964MB" and "IRAM 0/252kB(": a rail value ends at a space.
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_NOT_RAILS = ("RAM", "SWAP", "IRAM", "LFB")


def parse_tegrastats(line: str) -> Dict[str, Tuple[float, float]]:
    """{rail: (instant mW, average mW)} from one tegrastats line, any JetPack's format."""
    rails = {}
    for match in _RAIL.finditer(line):
        name = match.group(1)
        if name not in _NOT_RAILS:
            rails[name] = (float(match.group(2)), float(match.group(3)))
    return rails


def tegrastats_total(rails: Dict[str, Tuple[float, float]]) -> Tuple[float, str, bool]:
    """(instant total in W, what it is, measured?) — the input rail if the board has one."""
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name][0] / 1000.0, name, True
    return sum(v[0] for v in rails.values()) / 1000.0, "+".join(sorted(rails)) + " (sum of rails)", False


class TegrastatsSource:
    """Follows a running ``tegrastats`` on a reader thread; ``read()`` is its latest fresh instant total.

    ``lines`` replaces the process (tests); ``timeout_s`` (default: ``stale_after_s``) bounds
    both the wait for the first power line and the age of a reading ``read()`` accepts.
    """

    kind = "instant"

    def __init__(
        self, interval_s: float = 0.5, lines: Optional[Iterable[str]] = None, timeout_s: Optional[float] = None
    ) -> None:
        timeout = stale_after_s(interval_s) if timeout_s is None else timeout_s
        self._proc: Optional[subprocess.Popen] = None
        self._closing = False
        self._how_ended = ""
        if lines is None:
            exe = shutil.which("tegrastats")
            if exe is None:
                raise SourceUnavailable("tegrastats not found on PATH")
            try:
                self._proc = subprocess.Popen(
                    [exe, "--interval", str(max(1, int(interval_s * 1000)))],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    errors="replace",
                )
            except OSError as exc:
                raise SourceUnavailable(f"tegrastats does not start: {exc.strerror or exc}") from None
            lines = self._proc.stdout
        self._feed = Feed("tegrastats", timeout)
        self._first: Optional[Tuple[str, bool]] = None
        self._thread = threading.Thread(target=self._follow, args=(lines,), name="tegrastats", daemon=True)
        self._thread.start()
        self._feed.first.wait(timeout)
        if self._first is None:
            ended = self._feed.ended is not None
            self.close()
            if ended:
                raise SourceUnavailable(f"{self._how_ended} before printing a power rail line")
            raise SourceUnavailable(f"tegrastats printed no power rail line within {timeout:.1f} s")
        what, self.measured_total = self._first
        self.label = f"tegrastats: {what}"

    def _follow(self, lines: Iterable[str]) -> None:
        try:
            for line in lines:
                rails = parse_tegrastats(line)
                if rails:
                    watts, what, measured = tegrastats_total(rails)
                    if self._first is None:
                        self._first = (what, measured)
                    self._feed.put(watts)
        except (OSError, ValueError):  # the pipe closed under us by close()
            pass
        self._how_ended = self._why_ended()
        self._feed.end(f"{self._how_ended} after {_readings(self._feed.count)}")

    def _why_ended(self) -> str:
        if self._closing:
            return "tegrastats was closed"
        if self._proc is None:
            return "tegrastats output ended"
        try:
            return f"tegrastats exited (code {self._proc.wait(timeout=2.0)})"
        except subprocess.TimeoutExpired:
            return "tegrastats closed its output"

    def read(self) -> float:
        return self._feed.latest()

    def close(self) -> None:
        self._closing = self._feed.ended is None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None:
            self._thread.join(timeout=2.0)
            if self._proc.stdout is not None and not self._thread.is_alive():
                self._proc.stdout.close()


# --- jtop (jetson-stats) ------------------------------------------------------------------

JTOP_START_S = 10.0  # connecting and the first sample: a few of the service's intervals


def _started(make: Callable[[], Any], timeout_s: float) -> Any:
    """``make()``'d client, started on a helper thread: a service that never answers cannot hang selection."""
    box: Dict[str, Any] = {}

    def start() -> None:
        try:
            client = make()
            client.start()
            box["client"] = client
        except Exception as exc:  # noqa: BLE001 - JtopException, socket errors
            box["error"] = exc

    thread = threading.Thread(target=start, name="jtop-start", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "client" in box:
        return box["client"]
    if "error" in box:
        raise SourceUnavailable(f"jtop service not reachable: {box['error']}".splitlines()[0])
    raise SourceUnavailable(f"jtop service did not answer within {timeout_s:g} s")


class JtopSource:
    """jetson-stats' client: ``power['tot']`` in mW, a measured input rail or a sum.

    Fresh or fail where the client allows it cheaply: ``ok(spin=True)`` (never blocking)
    must be True and not raise, and when the client takes an observer (``attach``), its
    latest update must be younger than ``stale_after_s`` of the service's real interval.
    """

    kind = "instant"

    def __init__(self, interval_s: float = 0.5, factory: Optional[Callable[..., Any]] = None) -> None:
        if factory is None:
            try:
                from jtop import jtop as factory  # noqa: N813 - the library's own name
            except ImportError:
                raise SourceUnavailable("jetson-stats (jtop) is not installed") from None
        asked = max(0.5, interval_s)  # the maintainer calls < 0.5 s unstable
        self._client = _started(lambda: factory(interval=asked), JTOP_START_S)
        total = self._client.power.get("tot", {})
        self.measured_total = "name" in total
        what = total.get("name") or "sum of module rails"
        self.label = f"jtop: {what}"
        real = getattr(self._client, "interval", None)  # the service samples at its first client's interval
        self._feed = Feed("jtop", stale_after_s(real if isinstance(real, (int, float)) and real > 0 else asked))
        self._tracked = callable(getattr(self._client, "attach", None))
        if self._tracked:
            self._feed.put()  # start() returned with a first sample
            self._client.attach(lambda _client: self._feed.put())

    def read(self) -> float:
        ok = getattr(self._client, "ok", None)
        if ok is not None:
            try:
                alive = ok(spin=True)
            except Exception as exc:  # noqa: BLE001 - the reader thread's error, re-raised by jtop
                raise SourceUnavailable(f"jtop client failed: {exc}".splitlines()[0]) from None
            if not alive:
                raise SourceUnavailable("jtop client stopped (the jtop service went away)")
        if self._tracked:
            self._feed.check()
        # 'power' is the instant value; 'avg' is a running average and is never integrated.
        return float(self._client.power["tot"]["power"]) / 1000.0

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001
            pass
