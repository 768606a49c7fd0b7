"""The overhead tool's interval for the median."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.overhead import median_interval


@pytest.mark.parametrize("n, ranks", [(6, (1, 6)), (10, (2, 9)), (16, (4, 13)), (20, (6, 15)), (30, (10, 21))])
def test_the_interval_uses_the_tabulated_order_statistics(n, ranks):
    # Ranks from the binomial(n, 1/2) tables of distribution-free confidence intervals for a median.
    assert median_interval(list(range(1, n + 1))) == ranks


@given(st.lists(st.floats(-1e6, 1e6), min_size=6, max_size=60))
def test_the_interval_holds_the_median_and_covers_at_least_95_percent(values):
    low, high = median_interval(values)
    ordered = sorted(values)
    n = len(values)
    assert low <= ordered[(n - 1) // 2] <= ordered[n // 2] <= high
    k = ordered.index(low) + 1  # rank of the lower bound (ties: its first occurrence, the widest reading)
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
    assert coverage >= 0.95
