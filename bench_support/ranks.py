"""The one-sided Mann-Whitney U test: the gate applies it to two runs' rounds, the interval across trials to tell
whether a benchmark's trials disagree (:func:`bench_support.intervals.trial_interval`).

Exact for small samples (the rank-sum distribution counted over doubled midranks, so ties
are exact), the normal approximation with tie and continuity correction above
``EXACT_MAX_N`` rounds in all.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

#: Rounds in both samples together up to which the p-value is exact.
EXACT_MAX_N = 40


def _doubled_midranks(values: Sequence[float]) -> Tuple[List[int], List[int]]:
    """Twice the midrank of every value (integers, ties sharing one) and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks, ties = [0] * len(values), []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = start + end + 2  # (start + 1) + (end + 1): twice the mean rank
        ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


def _exact_p(ranks: Sequence[int], n: int, observed: int) -> float:
    """P(the doubled rank sum of n of the pooled values >= observed), all splits equally likely.

    A knapsack count: ``counts[k, s]`` subsets of k values with doubled rank sum s, one value
    added at a time — N * n * N^2 steps instead of C(N, n) splits.
    """
    import numpy as np

    top = sum(sorted(ranks)[len(ranks) - n :])
    counts = np.zeros((n + 1, top + 1))
    counts[0, 0] = 1.0
    for r in ranks:
        counts[1:, r:] += counts[:-1, : top + 1 - r].copy()
    row = counts[n]
    return float(min(1.0, row[observed:].sum() / row.sum()))


def _asymptotic_p(n: int, m: int, u: float, ties: Sequence[int]) -> float:
    """The normal approximation of P(U >= u), with the tie correction of the variance and continuity correction."""
    total = n + m
    var = n * m / 12.0 * ((total + 1) - sum(t**3 - t for t in ties) / (total * (total - 1)))
    if var <= 0:
        return 1.0  # every value tied: U is its mean whatever the split
    z = (u - n * m / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_p(worse: Sequence[float], better: Sequence[float], method: str = "auto") -> float:
    """One-sided p-value that ``worse`` tends to be larger than ``better`` (ties count half).

    ``method``: "exact", "asymptotic", or "auto" (exact up to ``EXACT_MAX_N`` values in all).
    """
    n, m = len(worse), len(better)
    if not n or not m:
        return 1.0
    ranks, ties = _doubled_midranks([float(x) for x in worse] + [float(y) for y in better])
    doubled = sum(ranks[:n])
    if method == "exact" or (method == "auto" and n + m <= EXACT_MAX_N):
        return _exact_p(ranks, n, doubled)
    if method not in ("auto", "asymptotic"):
        raise ValueError(f"method {method!r}: expected auto, exact or asymptotic")
    return _asymptotic_p(n, m, doubled / 2.0 - n * (n + 1) / 2.0, ties)


# --- noise ------------------------------------------------------------------------------------
