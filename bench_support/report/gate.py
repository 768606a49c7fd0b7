"""The regression gate (``--fail-on``): did the latest run get worse than its baseline?

The gate compares the latest run of a device with a baseline (its previous run, or
``--baseline FILE``) and fails when a metric got worse beyond its threshold *and*
beyond noise:
- time statistics (``min``, ``median``, ``mean``): a one-sided Mann-Whitney U test on
  the saved rounds (``--benchmark-save-data``, which ``./run.sh`` always passes),
  significant at p <= 0.05;
- extra_info figures (one value per run): the change must also exceed the noise band:
  for figures derived from time (``bench_support.metrics.is_timed``: durations, rates,
  energy, power, stall and utilisation figures) two standard errors of the difference
  of two runs' means, from the rounds' spread (sigma ~ IQR/1.349); for every figure,
  twice its standard deviation over this device's earlier runs when there are at least
  two — rounds in one process underestimate the drift between processes (measured
  here: 27 % between two honest runs whose rounds agreed within 5 %);
- with fewer than 3 rounds on either side the gate cannot tell change from noise and
  says so instead of failing.
A positive threshold means "higher is worse" (``energy_j:5%``), a negative one
"lower is worse" (``samples_per_s:-5%``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import combinations
from typing import List, Optional, Sequence

from bench_support import metrics
from bench_support.report.runs import TIME_METRICS, Run, metric, rounds_of, spread

MIN_GATE_ROUNDS = 3


@dataclass
class Rule:
    metric: str
    threshold: float  # fraction; positive: higher is worse, negative: lower is worse

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*):([+-]?\d+(?:\.\d+)?)%", text.strip())
        if not match:
            raise ValueError(f"--fail-on {text}: expected METRIC:THRESHOLD%, e.g. energy_j:5% or samples_per_s:-5%")
        return cls(match.group(1), float(match.group(2)) / 100.0)


def mann_whitney_p(worse: Sequence[float], better: Sequence[float]) -> float:
    """One-sided exact p-value that ``worse`` tends to be larger than ``better``.

    Exact enumeration of the rank-sum distribution (the rounds of a run are few);
    ties count half.
    """

    def u_stat(xs: Sequence[float], ys: Sequence[float]) -> float:
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)

    pooled = list(worse) + list(better)
    n = len(worse)
    observed = u_stat(worse, better)
    total = extreme = 0
    for chosen in combinations(range(len(pooled)), n):
        picked = set(chosen)
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in picked]
        total += 1
        if u_stat(xs, ys) >= observed - 1e-12:
            extreme += 1
    return extreme / total


def noise_band(relative_iqr: float, rounds: int) -> float:
    """Two standard errors of the difference between two runs' means, relative.

    sigma of one round ~ IQR/1.349 (normal); of a run's mean sigma/sqrt(n); of the
    difference of two such means sqrt(2) times that.
    """
    return 2.0 * math.sqrt(2.0) * (relative_iqr / 1.349) / math.sqrt(max(rounds, 1))


def history_band(values: Sequence[float]) -> float:
    """Twice the relative standard deviation of a figure over earlier runs (0 with < 2)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return 2.0 * math.sqrt(var) / abs(mean) if mean else 0.0


@dataclass
class Verdict:
    benchmark: str
    metric: str
    old: Optional[float]
    new: Optional[float]
    failed: bool
    test: str
    note: str = ""


def gate(
    baseline: Run, latest: Run, rules: Sequence[Rule], alpha: float = 0.05, history: Sequence[Run] = ()
) -> List[Verdict]:
    """Verdicts of ``rules`` on ``latest`` against ``baseline``; ``history``: earlier runs of the device."""
    verdicts = []
    old_benches = {b["name"]: b for b in baseline.benchmarks()}
    earlier = [{b["name"]: b for b in run.benchmarks()} for run in history]
    for bench in latest.benchmarks():
        old_bench = old_benches.get(bench["name"])
        if old_bench is None:
            continue
        for rule in rules:
            old, new = metric(old_bench, rule.metric), metric(bench, rule.metric)
            if old is None or new is None:
                continue
            change = (new - old) / abs(old) if old else 0.0
            worse = change > rule.threshold if rule.threshold >= 0 else change < rule.threshold
            rounds = min(int((b.get("stats") or {}).get("rounds") or 0) for b in (old_bench, bench))
            if rule.metric in TIME_METRICS:
                test = "one-sided Mann-Whitney U on the saved rounds, p <= 0.05"
                rounds = min(len(rounds_of(old_bench)), len(rounds_of(bench)))
            else:
                test = "threshold and a noise band from the rounds (time-derived figures) and the run history"
            if rounds < MIN_GATE_ROUNDS:
                note = f"cannot judge: fewer than {MIN_GATE_ROUNDS} saved rounds"
                verdicts.append(Verdict(bench["name"], rule.metric, old, new, False, test, note))
                continue
            if rule.metric in TIME_METRICS:
                p = mann_whitney_p(rounds_of(bench), rounds_of(old_bench))
                failed, note = worse and p <= alpha, f"change {change:+.1%}, p={p:.3f}"
            else:
                band = 0.0
                if metrics.is_timed(rule.metric):
                    band = noise_band(max(spread(old_bench) or 0.0, spread(bench) or 0.0), rounds)
                past = [metric(runs[bench["name"]], rule.metric) for runs in earlier if bench["name"] in runs]
                band = max(band, history_band([v for v in past if v is not None]))
                failed, note = worse and abs(change) > band, f"change {change:+.1%}, noise band ±{band:.1%}"
            verdicts.append(Verdict(bench["name"], rule.metric, old, new, failed, test, note))
    return verdicts
