"""Conclusions drawn across a session's results: the fastest loader configuration.

"Fastest within noise": the configuration with the best median rate wins; every other
configuration whose rate is within the winner's own round-to-round spread (its
IQR/median, at least 5 %) is named as tied, since a run cannot tell them apart.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

LOADER_KEYS = ("num_workers", "prefetch_factor", "pin_memory", "persistent_workers")
MIN_NOISE = 0.05


def _noise(bench: Any) -> float:
    stats = getattr(getattr(bench, "stats", None), "stats", None) or getattr(bench, "stats", None)
    try:
        return max(MIN_NOISE, float(stats.iqr) / float(stats.median))
    except (AttributeError, TypeError, ZeroDivisionError):
        return MIN_NOISE


def describe(config: Dict[str, Any]) -> str:
    return ", ".join(f"{key}={config.get(key)}" for key in LOADER_KEYS)


def fastest_loader(benchmarks: Iterable[Any]) -> Optional[Dict[str, Any]]:
    """The best loader-only configuration of the session, with the ties within noise."""
    candidates = [
        b
        for b in benchmarks
        if getattr(b, "group", None) == "dataloader"
        and b.extra_info.get("measure") == "loader"
        and b.extra_info.get("samples_per_s")
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda b: b.extra_info["samples_per_s"])
    rate = best.extra_info["samples_per_s"]
    noise = _noise(best)
    tied: List[Dict[str, Any]] = []
    for b in candidates:
        if b is not best and b.extra_info["samples_per_s"] >= rate * (1 - noise):
            tied.append({k: b.extra_info.get(k) for k in LOADER_KEYS + ("samples_per_s",)})
    return {
        "config": {k: best.extra_info.get(k) for k in LOADER_KEYS},
        "samples_per_s": rate,
        "noise_frac": noise,
        "tied_within_noise": tied,
        "benchmark": best.name,
        "measured_on": "loader-only passes over the training split (warm page cache)",
    }


def fastest_loader_line(result: Optional[Dict[str, Any]]) -> Optional[str]:
    if not result:
        return None
    line = f"fastest loader here: {describe(result['config'])} — {result['samples_per_s']:.0f} samples/s"
    if result["tied_within_noise"]:
        others = "; ".join(describe(t) for t in result["tied_within_noise"])
        line += f" (within noise, {result['noise_frac']:.0%}: {others})"
    return line
