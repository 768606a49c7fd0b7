"""Is a result usable: noisy or invalid flags from its rounds.

The pytest plugin stores ``validity(bench, profile_name)`` in every saved result's
extra_info; the report flags results with it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from bench_support.profiles import PROFILES
from bench_support.report.runs import spread

#: IQR/median of the rounds above which a result is noisy, and above which it is invalid.
NOISY, INVALID = 0.10, 0.25


def min_rounds(profile_name: Optional[str]) -> int:
    """The profile's minimum measured rounds for a valid result; 1 for an unknown or missing profile."""
    profile = PROFILES.get(profile_name or "")
    return profile.min_valid_rounds if profile else 1


def validity(bench: Dict[str, Any], profile_name: Optional[str]) -> Dict[str, Any]:
    """noisy / invalid flags from the rounds; throttling cannot be judged from a saved run."""
    rounds = int((bench.get("stats") or {}).get("rounds") or 0)
    rel = spread(bench)
    minimum = min_rounds(profile_name)
    reasons = []
    if rel is not None and rel > INVALID:
        reasons.append(f"IQR/median {rel:.2f} > {INVALID}")
    if rounds < minimum:
        reasons.append(f"{rounds} round(s), the {profile_name} profile's minimum is {minimum}")
    return {
        "iqr_over_median": rel,
        "noisy": rel is not None and rel > NOISY,
        "invalid": bool(reasons),
        "invalid_reasons": reasons,
        "throttled": None,
        "throttled_unavailable": "no frequency or temperature samples are recorded during a run",
    }


def flag(v: Dict[str, Any]) -> str:
    """`` [INVALID]``, `` [noisy]`` or nothing, for a benchmark's line in a table."""
    return " [INVALID]" if v["invalid"] else (" [noisy]" if v["noisy"] else "")
