"""Conclusions drawn across a session's results: the fastest loader configuration.

"Fastest" means faster than the runner-up with a 95 % interval of the effect (the ratio of their pass times,
bootstrapped over trials and rounds: :func:`bench_support.intervals.effect`) that excludes a tie; every
configuration whose effect interval includes "no change" is named as tied with the winner instead.
Works on saved results (dicts) and on pytest-benchmark's live ones alike.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from bench_support.intervals import BetweenTrials, between_trials, effect, split_trials, typical_trial

LOADER_KEYS = ("num_workers", "prefetch_factor", "pin_memory", "persistent_workers")


def _info(bench: Any) -> Dict[str, Any]:
    return (bench.get("extra_info") or {}) if isinstance(bench, dict) else bench.extra_info


def _name(bench: Any) -> str:
    return bench.get("name", "") if isinstance(bench, dict) else bench.name


def _group(bench: Any) -> Optional[str]:
    return bench.get("group") if isinstance(bench, dict) else getattr(bench, "group", None)


def trials_of(bench: Any) -> List[List[float]]:
    """A result's rounds (seconds), cut into its trials."""
    if isinstance(bench, dict):
        data = (bench.get("stats") or {}).get("data") or []
    else:
        stats = getattr(bench, "stats", None)
        data = getattr(getattr(stats, "stats", None), "data", None) or getattr(stats, "data", None) or []
    return split_trials([float(x) for x in data], _info(bench).get("trial_rounds"))


def describe(config: Dict[str, Any]) -> str:
    return ", ".join(f"{key}={config.get(key)}" for key in LOADER_KEYS)


def _loader_candidates(benchmarks: Iterable[Any]) -> List[Any]:
    return [
        b
        for b in benchmarks
        if _group(b) == "dataloader" and _info(b).get("measure") == "loader" and _info(b).get("samples_per_s")
    ]


def fastest_loaders(benchmarks: Iterable[Any]) -> Dict[str, Dict[str, Any]]:
    """The fastest loader configuration per image size (``"32"``, ``"224"``), smallest first: a 1 KB and a
    20 KB JPEG are different loads. Under a power-mode sweep, per size and mode (``"224 MAXN"``)."""
    by_size: Dict[str, List[Any]] = {}
    candidates = _loader_candidates(benchmarks)
    for b in candidates:
        mode = _info(b).get("power_mode")
        by_size.setdefault(str(_info(b).get("image_size", 32)) + (f" {mode}" if mode else ""), []).append(b)
    between = between_trials(trials_of(b) for b in candidates)  # pooled over every loader pass of the run
    return {key: _best(by_size[key], between) for key in sorted(by_size, key=lambda k: int(k.split()[0]))}


def fastest_loader(benchmarks: Iterable[Any]) -> Optional[Dict[str, Any]]:
    """The first of :func:`fastest_loaders`: the smallest image size's (in the first power mode seen)."""
    return next(iter(fastest_loaders(benchmarks).values()), None)


def _against(best: Any, other: Any, between: Optional[BetweenTrials] = None) -> Dict[str, Any]:
    """``other`` against the winner: its configuration, rate, and the winner's gain over it with an interval."""
    out = {k: _info(other).get(k) for k in LOADER_KEYS + ("samples_per_s",)}
    out["benchmark"] = _name(other)
    # other's pass time over the winner's: > 1, the winner is faster
    found = effect(trials_of(other), trials_of(best), between=between)
    if found is None:
        out.update(gain=None, gain_low=None, gain_high=None, gain_rerun_low=None, gain_rerun_high=None, clear=False)
    else:
        low, high = found.rerun
        out.update(gain=found.ratio - 1, gain_low=found.low - 1, gain_high=found.high - 1, clear=found.clear,
                   gain_rerun_low=low - 1, gain_rerun_high=high - 1)  # fmt: skip
    return out


def _best(candidates: List[Any], between: Optional[BetweenTrials] = None) -> Dict[str, Any]:
    """The best of one size's (and mode's) loader-only configurations, against the runner-up and the slowest."""
    # By the typical trial's pass time, the quantity the gains are ratios of (:func:`effect`): a ranking by the
    # median trial's rate could put first a configuration whose gain over the runner-up comes out negative.
    ranked = sorted(candidates, key=lambda b: typical_trial(trials_of(b)) if trials_of(b) else float("inf"))
    best = ranked[0]
    others = [_against(best, b, between) for b in ranked[1:]]
    return {
        "config": {k: _info(best).get(k) for k in LOADER_KEYS},
        "samples_per_s": _info(best)["samples_per_s"],
        "benchmark": _name(best),
        "image_size": _info(best).get("image_size", 32),
        "runner_up": others[0] if others else None,
        "slowest": others[-1] if others else None,
        "tied": [o for o in others if not o["clear"]],
        "measured_on": "loader-only passes over the training split (warm page cache)",
    }


def gain_text(against: Dict[str, Any]) -> str:
    """'+38 % (95 % interval +30 … +47 %, a re-run +27 … +51 %)', or 'no clear difference (-3 … +6 %, a re-run
    -4 … +7 %)': the interval holds the true gain, the re-run's range the gain a re-run should measure
    (:attr:`bench_support.intervals.Effect.rerun`)."""
    if against.get("gain") is None:
        return "no interval (too few rounds)"
    interval = f"{_gain(against['gain_low'])} … {_gain(against['gain_high'])}"
    if against.get("gain_rerun_low") is not None:  # a summary saved before the re-run's range has none
        interval += f", a re-run {_gain(against['gain_rerun_low'])} … {_gain(against['gain_rerun_high'])}"
    if not against["clear"]:
        return f"no clear difference ({interval})"
    return f"{_gain(against['gain'])} (95 % interval {interval})"


def _gain(value: float) -> str:
    """A gain in percent: whole percents, but a tenth below 10 % (a gain of 0.4 % is not "+0%")."""
    return f"{value:+.1%}" if abs(value) < 0.0995 else f"{value:+.0%}"


def fastest_loader_line(result: Optional[Dict[str, Any]], with_size: bool = False) -> Optional[str]:
    """One line for the terminal; ``with_size`` names the image size (a session with several)."""
    if not result:
        return None
    size = f" at {result['image_size']} px" if with_size and result.get("image_size") else ""
    rate = f"{result['samples_per_s']:.0f} samples/s"
    if result.get("tied"):
        others = "; ".join(describe(t) for t in result["tied"])
        return f"fastest loader here{size}: no clear winner — {describe(result['config'])} ({rate}) ties with {others}"
    line = f"fastest loader here{size}: {describe(result['config'])} — {rate}"
    if result.get("runner_up"):
        line += f", {gain_text(result['runner_up'])} over the runner-up"
    return line
