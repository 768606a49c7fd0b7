"""How precise a median is: the distribution-free confidence interval of the median from order statistics.

For n independent rounds, the interval between the k-th smallest and the k-th largest holds the true median with
probability 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), whatever the distribution (no normality, no bootstrap). k is
the largest that keeps that probability at or above the level asked. Below 6 rounds no such interval reaches 95 %:
a result with fewer rounds cannot claim that precision, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Optional, Sequence

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


def interval_figures(values: Sequence[float], level: float = LEVEL) -> dict:
    """The extra_info figures of a time's interval (seconds); the key ``median_ci_unavailable`` says why not."""
    found = median_interval(values, level)
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
    }
