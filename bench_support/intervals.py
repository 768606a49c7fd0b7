"""How precise a median is: the distribution-free confidence interval of the median from order statistics.

For n independent rounds, the interval between the k-th smallest and the k-th largest holds the true median with
probability 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), whatever the distribution (no normality, no bootstrap). k is
the largest that keeps that probability at or above the level asked. Below 6 rounds no such interval reaches 95 %:
a result with fewer rounds cannot claim that precision, and says so.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, List, Optional, Sequence, Tuple

LEVEL = 0.95


@dataclass(frozen=True)
class MedianInterval:
    median: float
    low: float
    high: float
    level: float  # the exact coverage of this pair of order statistics (at least the level asked)
    rounds: int

    @property
    def half_width_rel(self) -> float:
        """The larger side's distance from the median, as a fraction of the median."""
        if self.median == 0:
            return math.inf if self.high != self.low else 0.0
        return max(self.median - self.low, self.high - self.median) / abs(self.median)


#: Above this many rounds (a plain fixture's calibrated micro-benchmark has 10^5), the binomial is replaced by its
#: normal approximation (continuity-corrected; its error in the coverage is below 10^-3 there).
EXACT_UP_TO = 1000


@functools.lru_cache(maxsize=2048)
def _rank_and_coverage(n: int, level: float) -> Optional[tuple]:
    """(k, coverage) for the largest 1-based k with 1 - 2 P(B <= k-1) >= level, B ~ Binomial(n, 1/2)."""
    if n > EXACT_UP_TO:
        z = NormalDist().inv_cdf((1 - level) / 2)
        m = math.floor(n / 2 - 0.5 + z * math.sqrt(n) / 2)  # the largest k-1
        coverage = 1 - 2 * NormalDist().cdf((m + 0.5 - n / 2) / (math.sqrt(n) / 2))
        return (m + 1, coverage) if m >= 0 else None
    total, term, cumulative, found = 2**n, 1, 0, None  # term = C(n, i), exact integers
    for i in range(n // 2):
        cumulative += term  # P(B <= i) * 2^n
        coverage = 1 - 2 * cumulative / total
        if coverage < level:
            break
        found = (i + 1, coverage)
        term = term * (n - i) // (i + 1)
    return found


def order_statistic_rank(n: int, level: float = LEVEL) -> Optional[int]:
    """The largest k (1-based) whose interval [x_(k), x_(n-k+1)] covers the median with at least ``level``."""
    found = _rank_and_coverage(n, level)
    return found[0] if found else None


def min_rounds_for(level: float = LEVEL) -> int:
    """The fewest rounds whose widest interval (min to max) reaches ``level``: 6 for 95 %."""
    n = 1
    while order_statistic_rank(n, level) is None:
        n += 1
    return n


def median_interval(values: Sequence[float], level: float = LEVEL) -> Optional[MedianInterval]:
    """The median with its ``level`` confidence interval; None when too few values give one."""
    data = sorted(float(v) for v in values)
    n = len(data)
    found = _rank_and_coverage(n, level)
    if found is None:
        return None
    k, coverage = found
    middle = (data[(n - 1) // 2] + data[n // 2]) / 2
    return MedianInterval(middle, data[k - 1], data[n - k], coverage, n)


def interval_figures(
    values: Sequence[float],
    level: float = LEVEL,
    trials: Optional[Sequence[Sequence[float]]] = None,
    between: Optional[BetweenTrials] = None,
) -> dict:
    """The extra_info figures of a time's interval (seconds); the key ``median_ci_unavailable`` says why not.

    ``trials``: the same rounds cut into their trials, where there were several (:func:`trial_interval`);
    ``between``: the spread between trials pooled over the result's module, which widens it (:func:`widened`).
    """
    several = trials is not None and sum(1 for t in trials if len(t)) > 1
    found = trial_interval(trials, level) if several else median_interval(values, level)
    if several and found is not None and between is not None:
        found = widened(found, trials, between, level)
    if found is None:
        return {
            "median_ci_low_s": None,
            "median_ci_high_s": None,
            "median_ci_rel": None,
            "median_ci_unavailable": f"{len(values)} round(s): a {level:.0%} interval of the median needs "
            f"{min_rounds_for(level)}",
        }
    return {
        "median_ci_low_s": found.low,
        "median_ci_high_s": found.high,
        "median_ci_rel": round(found.half_width_rel, 4),
        "median_ci_level": round(found.level, 4),
        "median_ci_method": (
            "order statistics"
            if not several
            else f"order statistics widened over {len(trials)} trials"
            + (f" and by the spread between trials of the module (σ {between.sd_log:.1%})" if between else "")
        ),
    }


def widened(
    found: MedianInterval, trials: Sequence[Sequence[float]], between: BetweenTrials, level: float = LEVEL
) -> MedianInterval:
    """``found`` (a result's interval over its k trials) widened to at least its typical trial × exp(± t·σ/√k).

    Two trials that happen to agree say little about a third: on the 2-core VM a training epoch whose two trials
    gave an interval of ±5 % (1.71-1.88 s) took 1.65 s in the next run, where its module's trials moved by
    σ = 14.5 %. σ (:func:`between_trials`, pooled over the module's results, a dozen degrees of freedom) is the
    spread of one process's median; the mean of k of them is known to within t·σ/√k, t Student's with the pooled
    degrees of freedom. On a quiet machine (σ about 1 %) that adds little; on a noisy one it says what a re-run
    will show, and the flag follows.
    """
    k = sum(1 for t in trials if len(t))
    centre = typical_trial(trials)
    if k < 2 or centre <= 0:
        return found
    half = t_quantile(0.5 + level / 2, between.df) * between.sd_log / math.sqrt(k)
    low, high = min(found.low, centre * math.exp(-half)), max(found.high, centre * math.exp(half))
    return MedianInterval(found.median, low, high, found.level, found.rounds)


# --- across trials ----------------------------------------------------------------------------------------------

#: Bootstrap resamples for intervals across trials and for effects; seeded, so a report is reproducible.
RESAMPLES = 2000


def _two_stage(trials: Sequence[Sequence[float]], rng: random.Random) -> float:
    """One resample's median: trials drawn with replacement, then each drawn trial's rounds with replacement."""
    return _pooled_median([trials[rng.randrange(len(trials))] for _ in trials], rng)


#: A trial with more rounds (a plain fixture's calibrated micro-benchmark has 10^5) enters the bootstrap as this many
#: evenly spaced order statistics of its rounds: the same distribution, resampled as if fewer rounds had been taken,
#: so the interval can only come out wider (conservative), in milliseconds instead of minutes.
THIN_TO = 200


def _thinned(trial: List[float]) -> List[float]:
    if len(trial) <= THIN_TO:
        return trial
    ordered = sorted(trial)
    return [ordered[int((i + 0.5) * len(ordered) / THIN_TO)] for i in range(THIN_TO)]


def _pooled_median(trials: Sequence[Sequence[float]], rng: random.Random) -> float:
    """The median of the given trials' rounds, each trial's rounds drawn with replacement."""
    return statistics.median([trial[rng.randrange(len(trial))] for trial in trials for _ in trial])


def typical_trial(trials: Sequence[Sequence[float]]) -> float:
    """The geometric mean of the trials' medians (with one trial, its median): every trial weighs alike, however many
    rounds it took. Only the last trial adds rounds, so the median of all rounds leans to that one process, while a
    trial is the unit that replicates (the variance lives between processes). A mean of logs, because the spread
    between trials is measured and widened on the log scale (:func:`between_trials`, :func:`effect`)."""
    medians = [statistics.median(t) for t in trials if len(t)]
    if len(medians) == 1 or min(medians) <= 0:
        return statistics.median(medians)
    return math.exp(statistics.fmean(math.log(m) for m in medians))


def _percentiles(values: List[float], level: float) -> tuple:
    values.sort()
    n = len(values)
    low = values[max(0, int(math.floor((1 - level) / 2 * n)))]
    high = values[min(n - 1, int(math.ceil((1 + level) / 2 * n)) - 1)]
    return low, high


#: Trials whose rounds a rank test tells apart at this level (Bonferroni over the trials) disagree.
DISAGREE_P = 0.05


def trials_apart(trials: Sequence[Sequence[float]], alpha: float = DISAGREE_P) -> bool:
    """Some trial's rounds lie apart from the other trials' beyond their own scatter: a two-sided Mann-Whitney test
    of each trial against the rest pooled, at ``alpha`` over the number of comparisons. Short trials can only be told
    apart when their rounds differ throughout (two against six rounds never can): medians alone are no evidence of a
    drift, and with so few rounds the order-statistic interval already runs from the smallest to the largest."""
    from bench_support.ranks import mann_whitney_p

    trials = [list(t) for t in trials if len(t)]
    if len(trials) < 2:
        return False
    tests = 1 if len(trials) == 2 else len(trials)  # two trials: one comparison, whichever is taken first
    for i, trial in enumerate(trials[:tests]):
        rest = [v for j, t in enumerate(trials) if j != i for v in t]
        p = 2 * min(mann_whitney_p(trial, rest), mann_whitney_p(rest, trial))
        if p <= alpha / tests:
            return True
    return False


def trial_interval(
    trials: Sequence[Sequence[float]], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> Optional[MedianInterval]:
    """The median of all rounds with an interval that covers what another run would see.

    One trial: the order-statistic interval of its rounds. Several (the same benchmark measured in interleaved passes,
    docs/methods.md): the order-statistic interval of all their rounds, and, where the trials disagree
    (:func:`trials_apart`), widened to span every trial's own median and the percentile interval of a bootstrap over
    whole trials: the interval is then as wide as their disagreement, never narrower. From 6 trials on, it is widened
    instead to the order-statistic interval of the trials' medians, which a distribution-free 95 % needs 6 of. None
    below the rounds an order-statistic interval needs (6 in all).
    """
    trials = [[float(v) for v in t] for t in trials if len(t)]
    pooled = [v for t in trials for v in t]
    found = median_interval(pooled, level)
    if len(trials) <= 1 or found is None or not trials_apart(trials):
        return found
    over_trials = median_interval([statistics.median(t) for t in trials], level)
    if over_trials is not None:
        # Enough trials (6 for 95 %) for the order-statistic interval of their medians, each trial one observation
        # of what a process measures: it narrows as trials are added, where spanning every trial's median would only
        # widen (--trials raised to pin a median down on a noisy machine).
        low, high = min(found.low, over_trials.low), max(found.high, over_trials.high)
        return MedianInterval(found.median, low, high, found.level, found.rounds)
    rng = random.Random(seed)
    thinned = [_thinned(t) for t in trials]  # the same distributions, cheap to take medians of
    medians = []
    for _ in range(resamples):
        drawn = [thinned[rng.randrange(len(thinned))] for _ in thinned]
        medians.append(statistics.median([v for t in drawn for v in t]))
    boot_low, boot_high = _percentiles(medians, level)
    trial_medians = [statistics.median(t) for t in trials]
    low = min(found.low, boot_low, *trial_medians)
    high = max(found.high, boot_high, *trial_medians)
    return MedianInterval(found.median, low, high, found.level, found.rounds)


def split_trials(rounds: Sequence[float], trial_rounds: Optional[Sequence[int]]) -> List[List[float]]:
    """Rounds saved in trial order, cut back into their trials by the recorded counts (one trial when unknown)."""
    rounds = list(rounds)
    recorded = trial_rounds if isinstance(trial_rounds, (list, tuple)) else ()  # a damaged file's 3, NaN: unknown
    counts = [c for c in recorded if isinstance(c, int) and not isinstance(c, bool) and c > 0]
    if len(counts) < 2 or sum(counts) != len(rounds):
        return [rounds] if rounds else []
    out, start = [], 0
    for count in counts:
        out.append(rounds[start : start + count])
        start += count
    return out


@dataclass(frozen=True)
class Effect:
    """``a`` over ``b`` as a ratio of medians, with its bootstrap interval."""

    ratio: float
    low: float
    high: float
    level: float

    @property
    def clear(self) -> bool:
        """The interval excludes "no change" (a ratio of 1)."""
        return self.low > 1 or self.high < 1

    @property
    def rerun(self) -> Tuple[float, float]:
        """Where a re-run's ratio should fall (``level``): each side of the interval, on the log scale, times
        :data:`RERUN_WIDER`.

        The interval says where the true ratio lies; a re-run's ratio carries its own error on top, so a 95 % interval
        holds the next run's estimate only about 83 % of the time (Cumming & Maillardet, *Psychological Methods* 2006).
        Over four pairs of quick runs on the 2-core VM, 22 of 28 effects fell in the first run's interval. A re-run as
        precise as this one differs from it by √2 times this run's error (Spence & Stanley, *PLoS ONE* 2016: the
        prediction interval of a replication); over four other pairs, 28 of 28 fell in this range.
        """
        if self.ratio <= 0 or self.low <= 0:
            return self.low, self.high
        return self.ratio * (self.low / self.ratio) ** RERUN_WIDER, self.ratio * (self.high / self.ratio) ** RERUN_WIDER


#: How much wider, on the log scale, the range of a re-run's effect is than the effect's interval: two runs' errors.
RERUN_WIDER = math.sqrt(2)


@functools.lru_cache(maxsize=64)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (``p`` above one half): closed forms for 1 and 2 degrees of freedom, else the root of
    its distribution function, integrated by Simpson's rule (within 10^-4 of the tables)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float, steps: int = 400) -> float:
        h = x / steps
        density = [norm * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(steps + 1)]
        return 0.5 + h / 3 * (density[0] + density[-1] + 4 * sum(density[1:-1:2]) + 2 * sum(density[2:-1:2]))

    low, high = 0.0, 20.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class BetweenTrials:
    """How much a benchmark's median moves from one process to the next: the standard deviation of the log of
    trial medians, pooled over a group of benchmarks (a module's, which share the machine and the work's kind)."""

    sd_log: float
    df: int  # degrees of freedom: the trials beyond the first, summed over the pooled benchmarks


def between_trials(trial_sets: Iterable[Sequence[Sequence[float]]]) -> Optional[BetweenTrials]:
    """The pooled process-to-process spread of ``trial_sets`` (each one benchmark's rounds cut into trials).

    Two trials of one benchmark give one degree of freedom, far too few for an interval; a module's dozen
    benchmarks give a dozen (Kalibera & Jones: estimate the variance at the level where it lives). None without
    a benchmark of two or more trials.
    """
    squares, df = 0.0, 0
    for trials in trial_sets:
        logs = [math.log(m) for m in (statistics.median(t) for t in trials if len(t)) if m > 0]
        if len(logs) >= 2:
            squares += statistics.variance(logs) * (len(logs) - 1)
            df += len(logs) - 1
    return BetweenTrials(math.sqrt(squares / df), df) if df else None


#: The most trials :func:`trials_for` projects; beyond it the answer is "more than this".
MOST_TRIALS = 1000
#: A result's larger half-width, measured from its own sample median, against the expected distance of the order
#: statistic from the true median: about 1.07-1.09 times it from 20 trials on, in simulation (lognormal trial
#: medians, 1000 runs per spread); :func:`trials_for` aims at the typical result's measured width.
WIDER_FROM_SAMPLE_MEDIAN = 1.08


def trials_for(sd_log: float, target: float, level: float = LEVEL, most: int = MOST_TRIALS) -> Optional[int]:
    """About how many trials bring the interval of their medians within ``target`` (a fraction) of the median,
    when a trial's median moves from process to process by ``sd_log`` (the standard deviation of its log,
    :func:`between_trials`). None beyond ``most``.

    It projects the interval the suite builds from 6 trials on: the k-th smallest to the k-th largest trial median
    (:func:`order_statistic_rank`), whose upper end lies, in expectation, ``z`` standard deviations above the
    median, z from Blom's approximation of normal order statistics, Φ⁻¹((i − 3/8) / (n + 1/4)) for the i-th of n.
    The interval is within the target when exp(sd_log · z · 1.08) − 1 is, from this n on (the width is a sawtooth
    in n); 1.08 (:data:`WIDER_FROM_SAMPLE_MEDIAN`) because a result's larger half-width is measured from its own
    sample median. It aims at the typical result: in simulation about half of the results measured with that many
    trials meet the target and four in five are within 1.3 times it (``tests/test_run_precision.py``).
    """
    limit = math.log1p(target) / WIDER_FROM_SAMPLE_MEDIAN
    least = min_rounds_for(level)
    if sd_log <= 0:
        return least

    @functools.cache  # each n is asked again by the windows of the n before it
    def within(n: int) -> bool:
        k = order_statistic_rank(n, level)
        return k is not None and sd_log * NormalDist().inv_cdf((n - k + 1 - 0.375) / (n + 0.25)) <= limit

    # The distribution-free interval of a median needs about (1.2533 · 1.96 · sd / limit)² observations; start the
    # exact scan a little below that, so that the smallest n is found without a scan from 6.
    z_level = NormalDist().inv_cdf(0.5 + level / 2)
    ratio = 1.2533 * z_level * sd_log / limit if limit > 0 else math.inf
    if ratio > math.sqrt((most + 1) / 0.8):  # the scan would start beyond ``most`` (a target of 1e-200 %: no float)
        return None
    start = max(least, int(0.8 * ratio**2))
    for n in range(start, most + 1):
        # k grows in whole steps, so the width is a sawtooth in n: the answer is the n from which more trials stay
        # within, not the first tooth that dips below (checked over the next fifth, where the teeth lie).
        if within(n) and all(within(m) for m in range(n + 1, min(most, n + max(10, n // 5)) + 1)):
            return n
    return None


def effect(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
    between: Optional[BetweenTrials] = None,
) -> Optional[Effect]:
    """The ratio of the two sides' typical trials (:func:`typical_trial`: the geometric mean of each side's trial
    medians) with a percentile interval from resampling both sides (two-stage over their trials), which holds it.

    Every trial weighs alike in the ratio: a median of all rounds would lean to the last trial, which adds rounds,
    and make the effect one process's, while the widening below assumes a mean over all of a side's trials. The
    bootstrap still resamples the rounds pooled: resampling typical trials from two or three trials drew an interval
    too narrow when nothing differed (9 % of pairs "clear" against 6-7 %, ``tests/test_trials.py``).

    Where both sides ran in the same number of trials (the interleaved passes of one run), the trials are resampled
    as pairs: trial t of ``a`` with trial t of ``b``, which ran minutes apart at most, under the same drift of the
    host. A drift that slows a whole trial then cancels in the ratio, as the interleaving intends (RMIT). The
    interval says how sure this run is of the comparison. With two or three trials a side, though, the bootstrap
    sees the variance between processes through two or three draws of it, and a re-run's effect moved outside it.
    ``between`` (:func:`between_trials`, pooled over the benchmarks' module) then widens it to at least
    ratio × exp(± t · sd · sqrt(1/k_a + 1/k_b)), t with the pooled degrees of freedom: the interval of a ratio of two
    means over k_a and k_b processes. Pairing is ignored there, which errs wide. None when either side has fewer
    than two rounds (one round per side resamples into a single ratio: an "interval" of one point) or a median of
    zero.
    """
    a = [[float(v) for v in t] for t in a if len(t)]
    b = [[float(v) for v in t] for t in b if len(t)]
    if sum(map(len, a)) < 2 or sum(map(len, b)) < 2:
        return None
    med_a, med_b = typical_trial(a), typical_trial(b)
    if med_b == 0:
        return None
    rng = random.Random(seed)
    a, b = [_thinned(t) for t in a], [_thinned(t) for t in b]
    paired = len(a) == len(b) > 1
    ratios = []
    for _ in range(resamples):
        if paired:
            picks = [rng.randrange(len(a)) for _ in a]
            numerator = _pooled_median([a[i] for i in picks], rng)
            denominator = _pooled_median([b[i] for i in picks], rng)
        else:
            numerator, denominator = _two_stage(a, rng), _two_stage(b, rng)
        if denominator != 0:
            ratios.append(numerator / denominator)
    if not ratios:
        return None
    low, high = _percentiles(ratios, level)
    centre = med_a / med_b
    low, high = min(low, centre), max(high, centre)  # trials drawn unevenly can leave the ratio itself outside
    if between is not None and centre > 0:
        half = t_quantile(0.5 + level / 2, between.df) * between.sd_log * math.sqrt(1 / len(a) + 1 / len(b))
        low, high = min(low, centre * math.exp(-half)), max(high, centre * math.exp(half))
    return Effect(centre, low, high, level)


# --- a proportion (an accuracy on a held-out set) ---------------------------------------------------------------


def proportion_interval(successes: int, n: int, level: float = LEVEL) -> Optional[tuple]:
    """The Wilson score interval of ``successes`` out of ``n`` (an accuracy on n held-out photos); None for n = 0.

    Chosen over the plain normal interval because it stays inside [0, 1] and keeps its coverage at the small n
    and the accuracies near 1 that a few photos give.
    """
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
