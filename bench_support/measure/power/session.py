"""Power and energy of the measured rounds, measured honestly.

1. A cumulative counter (RAPL, NVML's energy counter) beats sampled power: energy is
   end minus start, across counter wraps.
2. Every sample is timestamped when it is read (``time.monotonic()``) and integrated
   over the real, irregular intervals — never ``power x 1 s`` per sample.
3. Instantaneous samples (INA3221, jtop's ``power``, tegrastats' instant value): the
   trapezoid rule, interpolated at the window's edges. Samples that are already
   averages over the interval before them (NVML power on Ampere and newer): the
   rectangle rule over that interval.
4. A window with fewer than ``MIN_SAMPLES`` samples has no meaningful energy: it is
   reported as unavailable, with the sample count.
5. Every figure names its source, rail or zone, and whether the total is a measured
   input rail or a sum of rails. Unavailable is ``None`` plus a reason, never 0.
6. Fail closed: a source that stops measuring inside a window (its ``read()`` raises
   :class:`SourceUnavailable`: a process that exited, no fresh reading within its
   timeout), or whose reads have failed for longer than that timeout, ends that
   window's sampling, and the window has no energy, with the reason; nothing read
   after that point is integrated. A read error now and then is counted, not fatal.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_support.measure.power.errors import SourceUnavailable, stale_after_s

POWER_KEYS = ("energy_j", "energy_net_j", "power_avg_w", "power_idle_w", "power_source", "power_samples")
MIN_SAMPLES = 3
DEFAULT_INTERVAL_S = 0.1

Sample = Tuple[float, float]  # (monotonic time in s, value)


def unavailable(reason: str) -> Dict[str, Optional[object]]:
    figures: Dict[str, Optional[object]] = {key: None for key in POWER_KEYS}
    figures["power_unavailable"] = reason
    return figures


# --- maths ------------------------------------------------------------------------------


def _value_at(samples: Sequence[Sample], t: float) -> float:
    """Power at ``t``: linear between the samples around it, held beyond the ends."""
    times = [s[0] for s in samples]
    i = bisect_left(times, t)
    if i == 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, p0), (t1, p1) = samples[i - 1], samples[i]
    if t1 == t0:
        return p1
    # The fraction first: it lies in [0, 1]. (p1 - p0) * (t - t0) first underflowed with subnormal times (hypothesis
    # found t = 5e-324): the interpolated power came out 2.0 between samples of 0 and 1.5.
    return p0 + (p1 - p0) * ((t - t0) / (t1 - t0))


def integrate_trapezoid(samples: Sequence[Sample], start: float, end: float) -> float:
    """Energy (J) of instantaneous power samples (W) over [start, end]."""
    if end <= start or not samples:
        return 0.0
    points = [(start, _value_at(samples, start))]
    points += [s for s in samples if start < s[0] < end]
    points.append((end, _value_at(samples, end)))
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(points, points[1:]))


def integrate_rectangle(samples: Sequence[Sample], start: float, end: float, first_interval: float) -> float:
    """Energy (J) of samples that are each the average power over the interval before them.

    Sample i covers (t_{i-1}, t_i]; the first covers ``first_interval`` seconds. Only
    the part of each interval inside [start, end] counts; beyond the last sample the
    last average is held.
    """
    if end <= start or not samples:
        return 0.0
    energy = 0.0
    previous = samples[0][0] - first_interval
    for t, p in samples:
        lo, hi = max(previous, start), min(t, end)
        if hi > lo:
            energy += p * (hi - lo)
        previous = t
    if end > previous:
        energy += samples[-1][1] * (end - max(previous, start))
    return energy


# --- sampling ---------------------------------------------------------------------------


class Sampler:
    """Reads a source in a background thread, timestamping each reading."""

    def __init__(self, source: Any, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.source = source
        self.interval_s = interval_s
        self.samples: List[Sample] = []
        self.errors: List[str] = []
        self.failure: Optional[str] = None  # why the source stopped measuring; no sample is taken after it
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self._stop.set()

    def _read(self) -> None:
        if self.failure is not None:
            return
        try:
            value = self.source.read()
        except SourceUnavailable as exc:
            self._fail(str(exc) or "the power source stopped measuring")
            return
        except Exception as exc:  # noqa: BLE001 - a failing sensor must not kill the benchmark
            self.errors.append((str(exc).strip().splitlines() or [type(exc).__name__])[0])
            limit = stale_after_s(self.interval_s)
            if time.monotonic() - self._last_ok > limit:
                self._fail(f"no reading from {self.source.label} for {limit:.1f} s (last error: {self.errors[-1]})")
            return
        self._last_ok = now = time.monotonic()
        self.samples.append((now, value))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

    def start(self) -> float:
        self._read()
        started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()
        return started

    def stop(self) -> float:
        ended = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._read()
        return ended


def energy_of(
    source: Any, samples: Sequence[Sample], start: float, end: float, interval_s: float
) -> Tuple[Optional[float], Optional[str]]:
    """(joules, None) or (None, reason) for one window of one source's samples."""
    if source.kind == "counter":
        if len(samples) < 2:
            return None, f"{len(samples)} counter reading(s) in the window"
        return samples[-1][1] - samples[0][1], None  # the source accumulates across wraps
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < MIN_SAMPLES:
        return None, (
            f"window of {end - start:.2f} s holds {len(inside)} sample(s) at {interval_s:.2f} s; "
            f"at least {MIN_SAMPLES} are needed"
        )
    if source.kind == "average":
        return integrate_rectangle(samples, start, end, interval_s), None
    return integrate_trapezoid(samples, start, end), None


def _sync_gpu() -> None:
    """Let queued GPU work finish, so a window does not take energy from its neighbour."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - no torch, no GPU: nothing to wait for
        pass


class PowerWindow:
    """Brackets the measured rounds; ``figures`` holds the power family afterwards.

    ``source`` is None when the session has no power source; ``reason`` then says why.
    """

    def __init__(
        self,
        source: Any = None,
        reason: str = "no power source selected",
        interval_s: float = DEFAULT_INTERVAL_S,
        idle_w: Optional[float] = None,
    ) -> None:
        self.source = source
        self.reason = reason
        self.interval_s = interval_s
        self.idle_w = idle_w
        self.figures: Dict[str, Optional[object]] = {}
        self._sampler: Optional[Sampler] = None
        self._start = 0.0

    def __enter__(self) -> PowerWindow:
        if self.source is not None:
            _sync_gpu()
            self._sampler = Sampler(self.source, self.interval_s)
            self._start = self._sampler.start()
        return self

    def watts(self) -> List[Tuple[float, float]]:
        """(monotonic time, W) of the window's readings, for the timeline: counters differentiated."""
        samples = self._sampler.samples if self._sampler is not None else []
        if getattr(self.source, "kind", None) != "counter":
            return [(t, float(v)) for t, v in samples]
        pairs = zip(samples, samples[1:])
        return [(t1, max(0.0, j1 - j0) / (t1 - t0)) for (t0, j0), (t1, j1) in pairs if t1 > t0]

    def __exit__(self, *exc: object) -> None:
        if self.source is None or self._sampler is None:
            self.figures = unavailable(self.reason)
            return
        _sync_gpu()
        end = self._sampler.stop()
        samples = self._sampler.samples
        if self._sampler.failure is not None:
            energy, why = None, self._sampler.failure
        else:
            energy, why = energy_of(self.source, samples, self._start, end, self.interval_s)
        duration = end - self._start
        if energy is None:
            self.figures = unavailable(why or "no energy")
            self.figures.update(power_source=self.source.label, power_samples=len(samples))
            return
        gaps = [b[0] - a[0] for a, b in zip(samples, samples[1:])]
        self.figures = {
            "energy_j": energy,
            "energy_net_j": energy - self.idle_w * duration if self.idle_w is not None else None,
            "power_avg_w": energy / duration if duration > 0 else None,
            "power_idle_w": self.idle_w,
            "power_source": self.source.label,
            "power_measured_total": self.source.measured_total,
            "power_samples": len(samples),
            "power_interval_mean_s": sum(gaps) / len(gaps) if gaps else None,
            "power_window_s": duration,
            "power_unavailable": None,
        }
        if self.idle_w is None:
            self.figures["power_idle_unavailable"] = "idle power was not measured in this session"
        if self._sampler.errors:
            self.figures["power_read_errors"] = len(self._sampler.errors)


def measure_idle_w(source: Any, seconds: float, interval_s: float) -> Tuple[Optional[float], Optional[str]]:
    """Mean power of the idle machine over ``seconds``, from the same source."""
    with PowerWindow(source, interval_s=interval_s) as window:
        time.sleep(seconds)
    figures = window.figures
    if figures.get("power_avg_w") is None:
        return None, f"idle power not measured: {figures.get('power_unavailable')}"
    return float(figures["power_avg_w"]), None


def energy_per_sample_mj(energy_j: Optional[float], samples: int) -> Optional[float]:
    """mJ per training sample, or None when energy was not measured."""
    if energy_j is None or samples <= 0:
        return None
    return energy_j * 1000.0 / samples


class PowerSession:
    """The session's one power source, the idle power measured with it, and its windows."""

    def __init__(self, source: Any, reason: Optional[str], interval_s: float) -> None:
        self.source, self.reason, self.interval_s = source, reason, interval_s
        self.idle_w: Optional[float] = None
        self.idle_reason: Optional[str] = None

    def measure_idle(self, seconds: float) -> None:
        if self.source is not None and seconds > 0:
            self.idle_w, self.idle_reason = measure_idle_w(self.source, seconds, self.interval_s)

    def window(self) -> PowerWindow:
        return PowerWindow(self.source, self.reason or "", self.interval_s, self.idle_w)

    def facts(self) -> Dict[str, Any]:
        """What the run's machine facts say about power."""
        return {
            "source": getattr(self.source, "label", None),
            "unavailable": self.reason,
            "interval_s": self.interval_s,
            "idle_w": self.idle_w,
            "idle_unavailable": self.idle_reason,
        }

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()
