"""Runs a benchmark's rounds and attaches the figures every result carries.

Warm-up rounds run first, untimed and outside the measurement windows; then the peak
RSS is reset, the memory and power samplers start, and pytest-benchmark times the
measured rounds with ``pedantic``. Preparation (``setup``) runs before every round and
is never timed.

A benchmark written with pytest-benchmark's plain ``benchmark`` fixture gets the same families
through :func:`measured_call`, which the plugin puts around each of its calls (pytest-benchmark's
calibration and warm-up included: they run inside the call and cannot be told apart from outside
it; ``measured_around`` says so).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from bench_support.intervals import (
    LEVEL,
    BetweenTrials,
    MedianInterval,
    interval_figures,
    median_interval,
    min_rounds_for,
    order_statistic_rank,
    trial_interval,
    trials_apart,
)
from bench_support.measure.interference import InterferenceWindow
from bench_support.measure.memory import MemoryWindow, release_freed, rss_now_mb
from bench_support.measure.power import PowerWindow
from bench_support.measure.speed import probe_times, summarise
from bench_support.measure.timeline import Timeline
from bench_support.measure.tree import TreeProbe
from bench_support.profiles import Rounds

Setup = Optional[Callable[[], Any]]


def _warmup_round(target: Callable, setup: Setup, teardown: Optional[Callable[..., Any]]) -> None:
    """One untimed round, called the way pytest-benchmark calls a measured one."""
    prepared = setup() if setup else None
    args, kwargs = prepared if prepared is not None else ((), {})
    target(*args, **(kwargs or {}))
    if teardown is not None:
        teardown(*args, **(kwargs or {}))


class Instruments:
    """The windows every result carries (memory, interference, power) and its timeline, opened together.

    One thread samples: the memory sampler's tick also reads the interference counters
    and records a timeline point. ``figures`` holds the families once the block has exited.
    """

    def __init__(self, power_window: Callable[[], PowerWindow] = PowerWindow, memory: bool = True) -> None:
        self._interference = InterferenceWindow()
        self._probe = TreeProbe()
        self.timeline = Timeline()
        self._memory = MemoryWindow(on_sample=self._tick, probe=self._probe) if memory else None
        self._power = power_window()
        self._stack = contextlib.ExitStack()
        self.figures: Dict[str, Any] = {}

    def _tick(self) -> None:
        self._interference.sample()
        self.timeline.sample(self._memory.sampler.last_tree_mb, self._probe.last_pids, self._interference.last_freq_mhz)

    def round(self, start: float, end: float) -> None:
        """A measured round's boundaries (monotonic clock), drawn on the timeline."""
        self.timeline.round(start, end)

    def __enter__(self) -> Instruments:
        self.timeline.start()
        with contextlib.ExitStack() as stack:
            if self._memory is not None:
                stack.enter_context(self._memory)
            stack.enter_context(self._interference)
            stack.enter_context(self._power)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
        if self._memory is not None:
            self.figures.update(self._memory.figures)
        self.figures.update(self._power.figures)
        self.figures.update(self._interference.figures)
        if self.timeline.ticks:
            self.figures["timeline"] = self.timeline.figures(self._power.watts())


@dataclass(frozen=True)
class Precision:
    """When a benchmark has measured enough: its median's 95 % interval within ``target`` (a fraction of the
    median), else when ``budget_s`` of wall time on extra rounds is spent or ``max_rounds`` are reached.

    ``rounds_so_far(benchmark)`` and ``extra_round(benchmark, target, setup, teardown)`` reach into the timing
    fixture (the plugin supplies them); without them, or without a target, the profile's rounds are all.
    Measured in trials (``trial`` = (this one, how many)), a benchmark adds rounds only in its last trial, judged by
    the interval over all its trials (``earlier(benchmark)``: the rounds of those that finished).
    """

    target: Optional[float] = None
    budget_s: float = 0.0
    max_rounds: int = 0
    rounds_so_far: Optional[Callable[[Any], List[float]]] = None
    extra_round: Optional[Callable[..., None]] = None
    trial: Tuple[int, int] = (1, 1)
    earlier: Optional[Callable[[Any], List[List[float]]]] = None
    # the spread between trials of the benchmark's module so far (its benchmarks with two finished trials), or None
    between: Optional[Callable[[Any], Optional[BetweenTrials]]] = None

    @property
    def adaptive(self) -> bool:
        return bool(self.target and self.rounds_so_far and self.extra_round and self.max_rounds)

    @property
    def last_trial(self) -> bool:
        return self.trial[0] >= self.trial[1]

    def trials_so_far(self, benchmark: Any) -> List[List[float]]:
        """Every finished trial's rounds, then this one's."""
        earlier = self.earlier(benchmark) if self.earlier is not None else []
        return [*earlier, self.rounds_so_far(benchmark)]

    def between_so_far(self, benchmark: Any) -> Optional[BetweenTrials]:
        return self.between(benchmark) if self.between is not None else None


#: Bootstrap resamples of the stopping check after each extra round (the saved interval uses the full count): the
#: check only asks "within the target yet?", and 2000 resamples per round cost more than a checkpoint write.
STOPPING_RESAMPLES = 300


def trials_disagree(finished: List[List[float]], target: float) -> bool:
    """The finished trials are told apart by their rounds (:func:`~bench_support.intervals.trials_apart`) and lie
    further apart than the target allows, whatever the last trial measures.

    With n trials in all (the last included) the interval across them holds at least the k-th smallest to the k-th
    largest trial median, k the order-statistic rank for n (1 below 9 trials: every median). One more median can
    move those ranks by one place at most, so the finished medians' k-th smallest and (n-k)-th smallest are inside
    it already: if they alone are further apart than the target allows, no round of the last trial can help.
    """
    medians = sorted(statistics.median(t) for t in finished if t)
    if len(medians) < 2 or medians[-1] <= 0 or not trials_apart(finished):
        return False
    n = len(medians) + 1
    k = order_statistic_rank(n) or 1
    low, high = medians[k - 1], medians[n - k - 1]
    return high > 0 and (high - low) / (2 * high) > target


#: The projection below is trusted only after this share of the budget and this many extra rounds (a rate from one
#: round, or from a first round that paid for a cold cache, is no rate).
REACH_AFTER_SHARE, REACH_AFTER_ROUNDS = 0.25, 3
#: How far beyond the rest of the budget the projected need must lie: a round's interval is a noisy estimate of the
#: scatter, and stopping one that would have made it costs more than a second or two spent on one that would not.
REACH_MARGIN = 2.0


def out_of_reach(found: MedianInterval, target: float, extra: int, spent_s: float, budget_s: float) -> bool:
    """The interval is too wide for the rest of the budget to bring it within the target, by a margin.

    An order-statistic interval narrows about as 1/sqrt(n), so n rounds at half-width h need about n (h/target)^2
    in all; the rounds the rest of the budget can take follow from the rate of the extra rounds so far (setup and
    teardown included). Stopping then keeps the verdict (imprecise either way) and gives the time back: on a noisy
    2-core VM most flagged benchmarks spent their whole budget without coming closer (Kalibera & Jones: spend
    repetitions where they reduce the variance).

    ``found`` is the order-statistic interval of the last trial's rounds alone, not of every trial's: where the
    interval across trials is wider only because the trials disagree, the last trial's median can still move towards
    the others' as its process settles (seen on the VM, docs/methods.md), so such a benchmark measures on until its
    budget. (The rounds of all trials pooled would not do: while few, their interval reaches into the earlier
    trials' rounds and measures the gap.)
    """
    if extra < REACH_AFTER_ROUNDS or spent_s <= 0 or spent_s < REACH_AFTER_SHARE * budget_s:
        return False
    if found.half_width_rel <= target:
        return False
    needed = found.rounds * (found.half_width_rel / target) ** 2 - found.rounds
    affordable = (budget_s - spent_s) * extra / spent_s
    return needed > REACH_MARGIN * affordable


#: The module's spread is judged once its finished benchmarks give this many degrees of freedom (three benchmarks of
#: two trials), and only where it lies this far beyond the target: with 3 degrees of freedom a measured σ is twice
#: the true one less than 1 % of the time (chi-squared), so a benchmark that could have met its target is almost
#: never stopped.
SPREAD_AFTER_DF, SPREAD_MARGIN = 3, 2.0


def spread_out_of_reach(between: Optional[BetweenTrials], trials: int, target: float) -> bool:
    """The spread between trials of the module so far makes the target unreachable by rounds, by a margin.

    After the merge every result of k trials is widened to at least its typical trial × exp(± t·σ/√k)
    (:func:`bench_support.intervals.widened`): σ is a property of processes, and no round of this one narrows it.
    Where z·σ/√k (z < t: the least the widening can be) exceeds the target ``SPREAD_MARGIN`` times over, extra
    rounds cannot change the verdict and their time is given back. On the 2-core VM the module's trials move by
    σ 10-19 % and the last trials' extra rounds cost about a minute of a quick run; on a quiet machine (σ about 1 %)
    nothing changes (Kalibera & Jones: spend repetitions at the level where the variance is). The margin's bound
    (see SPREAD_MARGIN) assumes the module's benchmarks share one σ; its noisiest finishing first reads σ high early.
    """
    if between is None or between.df < SPREAD_AFTER_DF or trials < 2:
        return False
    z = statistics.NormalDist().inv_cdf(0.5 + LEVEL / 2)
    return z * between.sd_log / math.sqrt(trials) > SPREAD_MARGIN * target


class Harness:
    """Wraps pytest-benchmark's fixture for one benchmark."""

    def __init__(
        self, benchmark, power_window: Callable[[], PowerWindow] = PowerWindow, precision: Optional[Precision] = None
    ) -> None:
        self.benchmark = benchmark
        self.power_window = power_window
        self.precision = precision or Precision()
        self.measured_rounds = 0

    @property
    def extra_info(self) -> Dict[str, Any]:
        return self.benchmark.extra_info

    def run(
        self,
        target: Callable,
        rounds: Union[Rounds, int],
        warmup_rounds: int = 0,
        setup: Setup = None,
        teardown: Optional[Callable[..., Any]] = None,
        memory: bool = True,
    ) -> None:
        """Warm-up rounds, then the measured ones; setup/teardown run untimed around each.

        ``rounds`` is a profile's :class:`Rounds` (measured and warm-up), after which the
        :class:`Precision` policy may add rounds, or a fixed count.
        ``memory=False`` when the work runs in another process that measures its own
        memory: this process's RSS would describe the wrong process.
        """
        adaptive = isinstance(rounds, Rounds) and self.precision.adaptive and self.benchmark.enabled
        if isinstance(rounds, Rounds):
            rounds, warmup_rounds = rounds.measured, rounds.warmup
        if memory:
            release_freed()  # untimed: what earlier benchmarks freed is not this one's memory
            self.extra_info["rss_built_mb"] = round(rss_now_mb(), 2)  # the work built, before its first round
        probed = probe_times()  # the machine's speed, before and after the benchmark, never in a window
        for _ in range(warmup_rounds):
            _warmup_round(target, setup, teardown)

        instruments = Instruments(self.power_window, memory)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.measured_rounds += 1
            started = time.monotonic()
            result = target(*args, **kwargs)
            instruments.round(started, time.monotonic())
            if teardown is not None and not self.benchmark.enabled:
                # --benchmark-disable runs one round and never calls teardown: do it here,
                # so a smoke run exercises the same per-round bookkeeping.
                teardown(*args, **kwargs)
            return result

        with instruments:
            self.benchmark.pedantic(
                counted, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=0, iterations=1
            )
            stopped = self._stopped(counted, setup, teardown) if adaptive else "fixed"
        self.extra_info.update(instruments.figures)
        if self.precision.rounds_so_far is not None and self.benchmark.enabled:
            trials = self.precision.trials_so_far(self.benchmark)
            self.extra_info.update(interval_figures([v for t in trials for v in t], trials=trials))
            self.extra_info["rounds_stopped"] = stopped
            self.extra_info["precision_target_rel"] = self.precision.target
            self.extra_info["round_budget_s"] = self.precision.budget_s if adaptive else None
        self.extra_info.update(summarise(probed + probe_times()))
        self.extra_info["rounds_measured"] = self.measured_rounds
        self.extra_info["rounds_warmup"] = warmup_rounds

    def _stopped(self, counted: Callable, setup: Setup, teardown: Optional[Callable[..., Any]]) -> str:
        """Rounds until the median is precise enough or the budget is spent; returns why it stopped."""
        policy = self.precision
        if not policy.last_trial:
            return f"trial {policy.trial[0]} of {policy.trial[1]}"  # the last trial decides, from all of them
        if trials_disagree(policy.trials_so_far(self.benchmark)[:-1], policy.target):
            return "trials disagree"  # the interval spans the trials' medians: more rounds here cannot narrow it
        # the module's processes differ beyond the target: rounds cannot help, once the result has an interval
        futile = spread_out_of_reach(policy.between_so_far(self.benchmark), policy.trial[1], policy.target)
        started, extra = time.monotonic(), 0
        while True:
            trials = policy.trials_so_far(self.benchmark)
            found = trial_interval(trials, resamples=STOPPING_RESAMPLES)
            if futile and found is not None:
                return "spread between trials"
            if found is not None and found.half_width_rel <= policy.target:
                return "precise"
            if sum(len(t) for t in trials) >= policy.max_rounds:
                return "max rounds"
            spent = time.monotonic() - started
            if spent >= policy.budget_s and (found is not None or extra >= min_rounds_for()):
                # Never before the first interval (6 rounds in all): a budget spent on one round too few to give
                # one (a 4 s epoch in a 3 s budget) bought nothing. The rounds cap still holds, and so many extra
                # rounds bound it should rounds somehow not count.
                return "budget"
            own = median_interval(trials[-1])  # this trial's rounds alone: their scatter, not a gap between trials
            if own is not None and out_of_reach(own, policy.target, extra, spent, policy.budget_s):
                return "out of reach"
            policy.extra_round(self.benchmark, counted, setup, teardown)
            extra += 1


def measured_call(call: Callable[[], Any], extra_info: Dict[str, Any], power_window: Callable[[], PowerWindow]) -> Any:
    """``call()`` (a plain fixture's whole benchmark call) with every family measured around it."""
    release_freed()
    probed = probe_times()
    with Instruments(power_window) as instruments:
        result = call()
    extra_info.update(instruments.figures)
    extra_info.update(summarise(probed + probe_times()))
    extra_info["measured_around"] = "the benchmark call (calibration and warm-up included)"
    return result
