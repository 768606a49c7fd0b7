"""The regression gate (``--fail-on``): did the latest run get worse than its baseline?

The gate compares the latest run of a device with a baseline (its previous run, or
``--baseline FILE``) and fails when a metric got worse beyond its threshold *and*
beyond noise:
- time statistics (``min``, ``median``, ``mean``, ``max``): a one-sided Mann-Whitney U
  test on the saved rounds (``--benchmark-save-data``, which ``./run.sh`` always passes),
  significant at p <= alpha (0.05 unless told), *and* a change beyond the run history band
  below — rounds inside one run underestimate the drift between runs. The test is exact
  (the rank-sum distribution counted over the pooled midranks, ties included) up to
  ``EXACT_MAX_N`` rounds in all, and the normal approximation with tie and continuity
  correction above (within 0.02 of the exact p at the crossover; milliseconds at 100+100);
- extra_info figures (one value per run): the change must also exceed the noise band:
  for figures derived from time (``bench_support.metrics.is_timed``: durations, rates,
  energy, power, stall and utilisation figures) two standard errors of the difference
  of two runs' means, from the rounds' spread (sigma ~ IQR/1.349);
- every metric: the run history band, twice the metric's standard deviation over this
  device's earlier runs when there are at least two (measured here: 27 % between two
  honest runs whose rounds agreed within 5 %);
- not judged (instead of failing): fewer than 3 rounds on either side, a result whose
  ``extra_info.validity`` says ``contended`` or ``throttled`` on either side (missing: false),
  and, for time-derived figures, a pair whose speed probe (``speed_probe_ms``, the same fixed
  workload timed around each benchmark) moved more than ``runs.MACHINE_BAND`` between the runs
  (``runs.machine_change``), unless the figure scales with the machine's speed: times and durations
  (and rates, inversely) are then judged corrected by the probe's ratio, as the baseline's machine
  would have measured them, and the verdict says so.
- absolute RSS figures read at the end of the rounds (``runs.RSS_AT_THE_END``) whose file-backed part
  (``rss_file_mb``: library pages, which follow the page cache) moved beyond ``runs.FILE_PAGES_BAND_MB``: judged
  as measured and without that move; where only the latter passes, not judged (the move may be the page
  cache's or the change's own), and the verdict gives both figures.
A positive threshold means "higher is worse" (``energy_j:5%``), a negative one
"lower is worse" (``samples_per_s:-5%``).

Zero baselines: the change is relative to the baseline, |old|. Where the baseline is
zero — at most the unit's floor (``ZERO_FLOOR``: a reading's resolution, e.g. 0.1 % of a
fraction, one 4 KiB page of MB; 0 for counts) — the change is relative to the larger of
|old| and |new| instead: leaving zero is a change of 100 %, beyond any threshold below
that (``stall_frac 0 -> 0.6`` fails ``stall_frac:10%``), and two values both at the floor
are no change.

``check_rule`` refuses (ValueError) a metric that is neither a time statistic nor a number
figure of the vocabulary (suggesting a close name), and a rule whose sign contradicts the
vocabulary's ``better`` (``samples_per_s:5%``): it could never catch a regression.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_support import metrics
from bench_support.ranks import EXACT_MAX_N, mann_whitney_p  # noqa: F401 - part of the gate's API
from bench_support.report.baseline import scoped_changes
from bench_support.report.runs import (
    RSS_AT_THE_END,
    TIME_METRICS,
    Run,
    file_pages_change,
    file_pages_moved,
    machine_moved,
    metric,
    rounds_of,
    spread,
)

MIN_GATE_ROUNDS = 3
#: Per unit, the magnitude at or below which a figure counts as zero (see the module doc).
ZERO_FLOOR = {"s": 1e-6, "ms": 1e-3, "fraction": 1e-3, "%": 0.1, "MB": 4096 / 2**20, "MB/s": 4096 / 2**20}
ZERO_FLOOR.update({"samples/s": 1e-3, "J": 1e-3, "mJ": 1e-3, "W": 1e-3})
#: Units of vocabulary entries that are not numbers the gate can compare.
NOT_NUMBERS = ("text", "flag", "list", "record", "param")
#: ``extra_info.validity`` flags under which a result is not judged.
DISTURBANCES = ("contended", "throttled")


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

    @property
    def higher_is_worse(self) -> bool:
        return math.copysign(1.0, self.threshold) > 0  # "-0%" says lower is worse

    def __str__(self) -> str:
        return f"{self.metric}:{100 * self.threshold:g}%"


def check_rule(rule: Rule) -> None:
    """Raise ValueError, one line, for a rule the gate cannot apply (see the module doc)."""
    entry = metrics.get(rule.metric)
    if rule.metric in TIME_METRICS:
        better, unit = metrics.LOWER, "s"
    elif entry is None:
        known = list(TIME_METRICS) + list(metrics.METRICS)
        close = difflib.get_close_matches(rule.metric, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "python -m bench_support.metrics lists the figures"
        raise ValueError(f"--fail-on {rule}: unknown metric {rule.metric} ({hint})")
    else:
        better, unit = entry.better, entry.unit
    if unit in NOT_NUMBERS:
        raise ValueError(f"--fail-on {rule}: {rule.metric} is a {unit} figure, not a number the gate can compare")
    if (better == metrics.HIGHER) == rule.higher_is_worse and better is not None:
        meant = Rule(rule.metric, -rule.threshold)
        raise ValueError(
            f"--fail-on {rule}: {better} is better for {rule.metric}, so this rule would never catch a "
            f"regression (did you mean {meant}?)"
        )


def zero_floor(name: str) -> float:
    entry = None if name in TIME_METRICS else metrics.get(name)
    return ZERO_FLOOR.get("s" if entry is None else entry.unit, 0.0)


def relative_change(old: float, new: float, floor: float = 0.0) -> Tuple[float, float, str]:
    """(change as a fraction of the scale, the scale, how it reads); zero baselines as the module doc says."""
    if abs(old) > floor:
        change = (new - old) / abs(old)
        return change, abs(old), f"{change:+.1%}"
    top = max(abs(old), abs(new))
    if top <= floor:
        return 0.0, 0.0, "none, both at zero" + (f" (within {floor:g})" if floor else "")
    change = (new - old) / top
    return change, top, f"{new - old:+.3g} from a zero baseline, {change:+.1%} of the larger value"


# --- the Mann-Whitney U test -----------------------------------------------------------------


def noise_band(relative_iqr: float, rounds: int) -> float:
    """Two standard errors of the difference between two runs' means, relative.

    sigma of one round ~ IQR/1.349 (normal); of a run's mean sigma/sqrt(n); of the
    difference of two such means sqrt(2) times that.
    """
    return 2.0 * math.sqrt(2.0) * (relative_iqr / 1.349) / math.sqrt(max(rounds, 1))


def _two_sd(values: Sequence[float]) -> float:
    """Twice the standard deviation of ``values`` (0 with fewer than 2)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return 2.0 * math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def history_band(values: Sequence[float]) -> float:
    """Twice the relative standard deviation of a figure over earlier runs (0 with < 2)."""
    mean = sum(values) / len(values) if values else 0.0
    return _two_sd(values) / abs(mean) if mean else 0.0


def disturbance(old_bench: Dict[str, Any], new_bench: Dict[str, Any]) -> str:
    """``contended (latest run: why)``, why from the validity's ``conditions``, per side flagged; or ""."""
    found = []
    for side, bench in (("latest run", new_bench), ("baseline", old_bench)):
        validity = (bench.get("extra_info") or {}).get("validity")
        for flag in DISTURBANCES if isinstance(validity, dict) else ():
            if validity.get(flag) is True:
                whys = [
                    str(c)[len(flag) + 1 :].strip()
                    for c in validity.get("conditions") or []
                    if str(c).startswith(f"{flag}:")
                ]
                found.append(f"{flag} ({side}{f': {whys[0]}' if whys else ''})")
    return ", ".join(found)


@dataclass
class Verdict:
    benchmark: str
    metric: str
    old: Optional[float]
    new: Optional[float]
    failed: bool
    test: str
    note: str = ""
    judged: bool = True  # False: too few rounds, or a contended / throttled result


def _judge(
    rule: Rule, old_bench: Dict[str, Any], bench: Dict[str, Any], past: List[Dict[str, Any]], alpha: float
) -> Optional[Verdict]:
    name = rule.metric
    old, new = metric(old_bench, name), metric(bench, name)
    if old is None or new is None:
        return None
    timed_stat = name in TIME_METRICS
    if timed_stat:
        test = f"one-sided Mann-Whitney U on the saved rounds, p <= {alpha:g}, and the run history band"
    else:
        test = "threshold and a noise band from the rounds (time-derived figures) and the run history"
    disturbed = disturbance(old_bench, bench)
    if disturbed:
        note = f"not judged: {disturbed}; a disturbed run is no evidence of a regression"
        return Verdict(bench["name"], name, old, new, False, test, note, judged=False)
    moved = machine_moved(old_bench, bench) if timed_stat or metrics.is_timed(name) else ""
    factor = None
    if moved:
        factor = _speed_correction(name, old_bench, bench)
        if factor is None:
            note = f"not judged: {moved}; a time-derived change is then no evidence of a regression"
            return Verdict(bench["name"], name, old, new, False, test, note, judged=False)
        new = new * factor  # the figure as the baseline's machine would have measured it
    paged = file_pages_moved(old_bench, bench) if name in RSS_AT_THE_END else ""
    measured = new
    if paged:
        new = new - file_pages_change(old_bench, bench)  # the figure with the baseline's file-backed pages
    if timed_stat:
        rounds = min(len(rounds_of(old_bench)), len(rounds_of(bench)))
    else:
        rounds = min(int((b.get("stats") or {}).get("rounds") or 0) for b in (old_bench, bench))
    if rounds < MIN_GATE_ROUNDS:
        note = f"cannot judge: fewer than {MIN_GATE_ROUNDS} saved rounds"
        return Verdict(bench["name"], name, old, new, False, test, note, judged=False)
    change, scale, reads = relative_change(old, new, zero_floor(name))
    worse = change > rule.threshold if rule.higher_is_worse else change < rule.threshold
    history = [v for v in (metric(b, name) for b in past) if v is not None]
    band = _two_sd(history)  # absolute, 0 with fewer than 2 earlier runs
    if timed_stat:
        xs_old, xs_new = rounds_of(old_bench), [x * (factor or 1.0) for x in rounds_of(bench)]
        p = mann_whitney_p(xs_new, xs_old)
        method = "exact" if len(xs_old) + len(xs_new) <= EXACT_MAX_N else "normal approximation"
        failed = worse and p <= alpha and abs(new - old) > band
        note = f"change {reads}, p={p:.3g} ({method}), history band ±{band / scale if scale else 0:.1%}"
        note += f" ({len(history)} earlier runs)"
    else:
        if metrics.is_timed(name):
            band = max(band, scale * noise_band(max(spread(old_bench) or 0.0, spread(bench) or 0.0), rounds))
        failed = worse and abs(new - old) > band
        note = f"change {reads}, noise band ±{band / scale if scale else 0:.1%}"
    if factor is not None:
        note += f"; judged corrected for the machine's speed (x{factor:.3f}: {moved})"
    if paged:
        raw_change = relative_change(old, measured, zero_floor(name))[0]
        raw_worse = raw_change > rule.threshold if rule.higher_is_worse else raw_change < rule.threshold
        if raw_worse and abs(measured - old) > band and not failed:
            # Only the correction passes it: the file-backed pages may be the page cache's, or a library or a
            # mapped file the change itself added. Neither can be told from here, so it is not judged.
            note = (
                f"not judged: {name} {measured:.4g} as measured, {new:.4g} without the change of {paged}; "
                "that may be the page cache's or the change's own (a library or file it maps): compare rss_anon_mb"
            )
            return Verdict(bench["name"], name, old, measured, False, test, note, judged=False)
        note += f"; judged without the change of {paged}: the same verdict as measured"
    return Verdict(bench["name"], name, old, new, failed, test, note)


def _speed_correction(name: str, old_bench: Dict[str, Any], bench: Dict[str, Any]) -> Optional[float]:
    """The factor that puts a time (or a rate) of the latest run on the baseline's machine speed, where the speed
    probe may speak and the figure scales with speed: time statistics and durations by old/new probe, rates by
    its inverse. None for any other figure (energy, fractions): those stay unjudged."""
    old_probe, new_probe = metric(old_bench, "speed_probe_ms"), metric(bench, "speed_probe_ms")
    if not old_probe or not new_probe:
        return None
    found = metrics.get(name)
    unit = "s" if name in TIME_METRICS else (found.unit if found is not None else None)
    if unit in ("s", "ms"):
        return old_probe / new_probe
    if unit in ("samples/s", "MB/s"):
        return new_probe / old_probe
    return None


def gate(
    baseline: Run, latest: Run, rules: Sequence[Rule], alpha: float = 0.05, history: Sequence[Run] = ()
) -> List[Verdict]:
    """Verdicts of ``rules`` on ``latest`` against ``baseline``; ``history``: earlier runs of the device.

    Raises ValueError for a rule :func:`check_rule` refuses.
    """
    for rule in rules:
        check_rule(rule)
    verdicts = []
    old_benches = {b["name"]: b for b in baseline.benchmarks()}
    earlier = [{b["name"]: b for b in run.benchmarks()} for run in history]
    for bench in latest.benchmarks():
        old_bench = old_benches.get(bench["name"])
        if old_bench is None:
            continue
        past = [runs[bench["name"]] for runs in earlier if bench["name"] in runs]
        changed = scoped_changes(baseline.data, latest.data, bench.get("group") or "")
        for rule in rules:
            verdict = _judge(rule, old_bench, bench, past, alpha)
            if verdict is not None and changed:  # the continual results on other photos: another workload
                note = "not judged: it ran on other photos (" + "; ".join(changed) + ")"
                verdict = replace(verdict, failed=False, note=note, judged=False)
            if verdict is not None:
                verdicts.append(verdict)
    return verdicts
