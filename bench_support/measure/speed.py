"""How fast this machine computes right now: one fixed workload, timed before each benchmark.

Two ``./run.sh`` a few minutes apart on a quiet virtual machine gave training rates 10-28 %
apart with no other process on the cores, so a change between runs can be the machine (its
host's load, its clock) rather than the code or the settings. The probe does the same work
every time (a seeded convolution forward and backward pass, on torch's threads as this run
set them), so the change of its time between two runs is the machine's change; the report
names it beside the benchmark's own change and the gate does not judge a result whose probe
moved. It runs outside the measured windows: preparation, never timed with the benchmark.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

from bench_support.intervals import median_interval

#: Timed repetitions (after one untimed one), before and after each benchmark: 12 in all, enough for the 95 %
#: interval of their median (6 at least). One call took 0.45 s with 15 repetitions on a 2-core x86 VM, twice per
#: benchmark and trial: 2 of the quick profile's 6 minutes, hence 6.
PROBE_REPS = 6


def _quartiles(values: List[float]) -> tuple:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summarise(times_s: List[float]) -> Dict[str, float]:
    """The probe's figures from its repetition times: median (ms) and spread (IQR / median)."""
    median = statistics.median(times_s)
    low, high = _quartiles(times_s) if len(times_s) >= 2 else (median, median)
    out = {
        "speed_probe_ms": round(median * 1000, 3),
        "speed_probe_iqr": round((high - low) / median, 4) if median > 0 else 0.0,
    }
    found = median_interval(times_s)
    if found is not None:  # how precisely the probe knows the machine's speed: what it may explain is beyond this
        out["speed_probe_ci_rel"] = round(found.half_width_rel, 4)
    return out


def probe_times(reps: int = PROBE_REPS, clock: Callable[[], float] = time.perf_counter) -> List[float]:
    """Seconds per repetition of the fixed workload (torch imported here: only the caller pays)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 32, 32, 32, generator=generator)
    kernel = torch.randn(32, 32, 3, 3, generator=generator, requires_grad=True)
    times: List[float] = []
    for rep in range(reps + 1):
        started = clock()
        out = torch.nn.functional.conv2d(images, kernel, padding=1)
        out.square().mean().backward()
        elapsed = clock() - started
        kernel.grad = None
        if rep:  # the first fills caches and the allocator: not the machine's steady speed
            times.append(elapsed)
    return times
