"""Is a result usable: noisy or invalid flags from its rounds.

The pytest plugin stores ``validity(bench, profile_name)`` in every saved result's
extra_info; the report flags results with it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from bench_support.measure.interference import CONTENDED_SHARE
from bench_support.profiles import PROFILES
from bench_support.report.runs import spread

#: IQR/median of the rounds above which a result is noisy, and above which it is invalid.
NOISY, INVALID = 0.10, 0.25


def min_rounds(profile_name: Optional[str]) -> int:
    """The profile's minimum measured rounds for a valid result; 1 for an unknown or missing profile."""
    profile = PROFILES.get(profile_name or "")
    return profile.min_valid_rounds if profile else 1


def validity(bench: Dict[str, Any], profile_name: Optional[str]) -> Dict[str, Any]:
    """noisy / invalid flags from the rounds; contended and throttled from the interference figures."""
    rounds = int((bench.get("stats") or {}).get("rounds") or 0)
    info = bench.get("extra_info") or {}
    rel = spread(bench)
    minimum = min_rounds(profile_name)
    reasons = []
    if rel is not None and rel > INVALID:
        reasons.append(f"IQR/median {rel:.2f} > {INVALID}")
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
    if isinstance(probe, (int, float)) and probe > NOISY and ((rel is not None and rel > NOISY) or reasons):
        # A noisy result, and the same fixed work repeated around it varied too: the machine was noisy.
        why.append(f"the machine's own speed varied: the speed probe's IQR/median was {probe:.2f}")
    out = {
        "iqr_over_median": rel,
        "noisy": rel is not None and rel > NOISY,
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
    out = " [INVALID]" if v["invalid"] else (" [noisy]" if v["noisy"] else "")
    if v.get("contended"):
        out += f" [contended {v['foreign_cpu_share']:.0%}]"
    if v.get("throttled"):
        out += " [throttled]"
    return out
