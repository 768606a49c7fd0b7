"""Is a result usable: judged by the precision of its median, not by how its rounds scatter.

A result is *imprecise* (the ``noisy`` flag, kept under its old name) when the 95 % confidence interval of its
median (:mod:`bench_support.intervals`, from the saved rounds, else from the figures the harness recorded) is wider
than its target on either side (the one it records, ``precision_target_rel``: the profile's or
``--precision-target``; else the profile's), or when too few rounds give no such interval; *invalid* when it has fewer
rounds than the profile's minimum. Many scattered rounds can still pin a median down; three tight ones cannot.
The pytest plugin stores ``validity(bench, profile_name)`` in every saved result's extra_info; the report flags
results with it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from bench_support.intervals import LEVEL, BetweenTrials, min_rounds_for, split_trials, trial_interval, widened
from bench_support.measure.interference import CONTENDED_SHARE
from bench_support.profiles import PROFILES
from bench_support.report.runs import rounds_of, spread

#: The speed probe's IQR/median above which the machine's own speed is said to have varied.
NOISY = 0.10


def min_rounds(profile_name: Optional[str]) -> int:
    """The profile's minimum measured rounds for a valid result; 1 for an unknown or missing profile."""
    profile = PROFILES.get(profile_name or "")
    return profile.min_valid_rounds if profile else 1


def precision(bench: Dict[str, Any], profile_name: Optional[str]) -> Dict[str, Any]:
    """The median's interval against the result's target (recorded, else the profile's):
    {median_ci_rel, target, judged, imprecise, reason}."""
    profile = PROFILES.get(profile_name or "")
    info = bench.get("extra_info") or {}
    recorded = info.get("precision_target_rel")
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and recorded > 0:
        target = float(recorded)  # the target the rounds were taken for (the profile's, or --precision-target)
    else:
        target = profile.precision_target if profile else None
    if target is None:  # a profile without a target (smoke) only checks that things run
        return {"median_ci_rel": None, "target": None, "judged": False, "imprecise": False, "reason": ""}
    data = rounds_of(bench)
    trials = split_trials(data, info.get("trial_rounds")) if data else []
    found = trial_interval(trials) if data else None
    between = _recorded_spread(info)
    if found is not None and between is not None and len(trials) >= 2:
        found = widened(found, trials, between)  # as the run widened it: by its module's spread between trials
    if found is not None:
        rel, n = found.half_width_rel, found.rounds
    else:
        recorded = info.get("median_ci_rel")
        rel = float(recorded) if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) else None
        n = int((bench.get("stats") or {}).get("rounds") or len(data) or 0)
    out = {"median_ci_rel": rel, "target": target, "judged": True, "imprecise": False, "reason": ""}
    stopped = info.get("rounds_stopped")
    if stopped == "fixed":
        # The rounds are part of what is measured (a fine-tune's epochs, a cold start's cold epochs): the time is
        # reported with its interval where one exists, but a scenario is not a repeated measurement to judge.
        out.update(judged=False, reason=f"not judged: {n} round(s) fixed by the benchmark's design")
        return out
    count = info.get("trials")
    after = f"{n} round(s)" + (f" in {count} trials" if isinstance(count, int) and count > 1 else "")
    after += f", stopped: {stopped}" if stopped and stopped != "precise" else ""
    if between is not None and len(trials) >= 2:
        after += f"; the module's trials moved by σ {between.sd_log:.1%}"
    if rel is None:
        out.update(imprecise=True, reason=f"no {LEVEL:.0%} interval of the median from {after} "
                   f"(needs {min_rounds_for()})")  # fmt: skip
    elif rel > target:
        out.update(imprecise=True, reason=f"{LEVEL:.0%} interval of the median ±{rel:.1%} > the target "
                   f"±{target * 100:g}% ({after})")  # fmt: skip
    return out


def _recorded_spread(info: Dict[str, Any]) -> Optional[BetweenTrials]:
    """The spread between trials the run pooled over the result's module (``between_trials_sd_log``, ``_df``)."""
    sd, df = info.get("between_trials_sd_log"), info.get("between_trials_df")
    if isinstance(sd, (int, float)) and not isinstance(sd, bool) and sd >= 0 and isinstance(df, int) and df > 0:
        return BetweenTrials(float(sd), df)
    return None


def validity(bench: Dict[str, Any], profile_name: Optional[str]) -> Dict[str, Any]:
    """imprecise (``noisy``) / invalid flags from the rounds; contended and throttled from the interference figures."""
    rounds = int((bench.get("stats") or {}).get("rounds") or 0)
    info = bench.get("extra_info") or {}
    rel = spread(bench)
    judged = precision(bench, profile_name)
    minimum = min_rounds(profile_name)
    reasons = []
    if rounds < minimum:
        reasons.append(f"{rounds} round(s), the {profile_name} profile's minimum is {minimum}")
    share = info.get("foreign_cpu_share")
    contended = isinstance(share, (int, float)) and share > CONTENDED_SHARE
    throttled = info.get("throttled")
    why = []  # what the measurements say about the conditions, for a noisy or invalid result
    if contended:
        why.append(f"contended: other processes used {share:.0%} of the CPU during the rounds")
    if throttled:
        why.append("throttled: " + _throttle_reason(info))
    steal = info.get("steal_share")
    if isinstance(steal, (int, float)) and steal > 0.05:
        why.append(f"the hypervisor took {steal:.0%} of the CPU (steal)")
    probe = info.get("speed_probe_iqr")
    if isinstance(probe, (int, float)) and probe > NOISY and (judged["imprecise"] or reasons):
        # A noisy result, and the same fixed work repeated around it varied too: the machine was noisy.
        why.append(f"the machine's own speed varied: the speed probe's IQR/median was {probe:.2f}")
    out = {
        "iqr_over_median": rel,
        "median_ci_rel": judged["median_ci_rel"],
        "precision_target": judged["target"],
        "noisy": judged["imprecise"],
        "precision_reason": judged["reason"],
        "invalid": bool(reasons),
        "invalid_reasons": reasons,
        "contended": contended if share is not None else None,
        "foreign_cpu_share": share,
        "throttled": throttled,
        "conditions": why,
    }
    if throttled is None:
        out["throttled_unavailable"] = info.get("throttled_unavailable") or "no frequency or throttle figures"
    return out


def _throttle_reason(info: Dict[str, Any]) -> str:
    if info.get("thermal_throttle_events"):
        return f"{info['thermal_throttle_events']} thermal throttle event(s)"
    low, top = info.get("cpu_freq_min_mhz"), info.get("cpu_freq_limit_mhz")
    return f"the fastest CPU ran at {low} MHz of {top} MHz" if low and top else "measured"


def flag(v: Dict[str, Any]) -> str:
    """`` [INVALID]``, `` [noisy]``, plus why (contended, throttled), for a benchmark's line in a table."""
    out = " [INVALID]" if v["invalid"] else (" [imprecise]" if v["noisy"] else "")
    if v.get("contended"):
        out += f" [contended {v['foreign_cpu_share']:.0%}]"
    if v.get("throttled"):
        out += " [throttled]"
    return out
