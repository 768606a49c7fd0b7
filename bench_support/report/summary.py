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


def _loader_candidates(benchmarks: Iterable[Any]) -> List[Any]:
    return [
        b
        for b in benchmarks
        if getattr(b, "group", None) == "dataloader"
        and b.extra_info.get("measure") == "loader"
        and b.extra_info.get("samples_per_s")
    ]


def fastest_loaders(benchmarks: Iterable[Any]) -> Dict[str, Dict[str, Any]]:
    """The fastest loader configuration per image size (``"32"``, ``"224"``), smallest first: a 1 KB and a
    20 KB JPEG are different loads. Under a power-mode sweep, per size and mode (``"224 MAXN"``)."""
    by_size: Dict[str, List[Any]] = {}
    for b in _loader_candidates(benchmarks):
        mode = b.extra_info.get("power_mode")
        by_size.setdefault(str(b.extra_info.get("image_size", 32)) + (f" {mode}" if mode else ""), []).append(b)
    return {key: _best(by_size[key]) for key in sorted(by_size, key=lambda k: int(k.split()[0]))}


def fastest_loader(benchmarks: Iterable[Any]) -> Optional[Dict[str, Any]]:
    """The first of :func:`fastest_loaders`: the smallest image size's (in the first power mode seen)."""
    return next(iter(fastest_loaders(benchmarks).values()), None)


def _best(candidates: List[Any]) -> Dict[str, Any]:
    """The best of one size's (and mode's) loader-only configurations, with the ties within noise."""
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
        "image_size": best.extra_info.get("image_size", 32),
        "measured_on": "loader-only passes over the training split (warm page cache)",
    }


def fastest_loader_line(result: Optional[Dict[str, Any]], with_size: bool = False) -> Optional[str]:
    """One line for the terminal; ``with_size`` names the image size (a session with several)."""
    if not result:
        return None
    size = f" at {result['image_size']} px" if with_size and result.get("image_size") else ""
    line = f"fastest loader here{size}: {describe(result['config'])} — {result['samples_per_s']:.0f} samples/s"
    if result["tied_within_noise"]:
        others = "; ".join(describe(t) for t in result["tied_within_noise"])
        line += f" (within noise, {result['noise_frac']:.0%}: {others})"
    return line
