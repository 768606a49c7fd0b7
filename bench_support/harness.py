"""Runs a benchmark's rounds and attaches the figures every result carries.

Warm-up rounds run first, untimed and outside the measurement window; then the peak
RSS is reset, the memory sampler (and, later, the power sampler) starts, and
pytest-benchmark times the measured rounds with ``pedantic``. Preparation (``setup``)
runs before every round and is never timed.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Optional

from .memory import MemoryWindow
from .power import PowerWindow

Setup = Optional[Callable[[], Any]]


def _warmup_round(target: Callable, setup: Setup, teardown: Optional[Callable[..., Any]]) -> None:
    """One untimed round, called the way pytest-benchmark calls a measured one."""
    prepared = setup() if setup else None
    args, kwargs = prepared if prepared is not None else ((), {})
    target(*args, **(kwargs or {}))
    if teardown is not None:
        teardown(*args, **(kwargs or {}))


class Harness:
    """Wraps pytest-benchmark's fixture for one benchmark."""

    def __init__(self, benchmark, power_window: Callable[[], PowerWindow] = PowerWindow) -> None:
        self.benchmark = benchmark
        self.power_window = power_window
        self.measured_rounds = 0

    @property
    def extra_info(self) -> Dict[str, Any]:
        return self.benchmark.extra_info

    def run(
        self,
        target: Callable,
        rounds: int,
        warmup_rounds: int = 0,
        setup: Setup = None,
        teardown: Optional[Callable[..., Any]] = None,
        memory: bool = True,
    ) -> None:
        """Warm-up rounds, then ``rounds`` measured ones; setup/teardown run untimed around each.

        ``memory=False`` when the work runs in another process that measures its own
        memory: this process's RSS would describe the wrong process.
        """
        for _ in range(warmup_rounds):
            _warmup_round(target, setup, teardown)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.measured_rounds += 1
            result = target(*args, **kwargs)
            if teardown is not None and not self.benchmark.enabled:
                # --benchmark-disable runs one round and never calls teardown: do it here,
                # so a smoke run exercises the same per-round bookkeeping.
                teardown(*args, **kwargs)
            return result

        with MemoryWindow() if memory else contextlib.nullcontext() as window, self.power_window() as power:
            self.benchmark.pedantic(
                counted, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=0, iterations=1
            )
        if window is not None:
            self.extra_info.update(window.figures)
        self.extra_info.update(power.figures)
        self.extra_info["rounds_measured"] = self.measured_rounds
        self.extra_info["rounds_warmup"] = warmup_rounds
