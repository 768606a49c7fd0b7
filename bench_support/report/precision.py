"""How precise a run is as a whole, and how many trials its target would take on this machine.

Each flagged result states its own interval. What a user needs next is the run's answer: how far a median moves
from one process to the next here (the spread between trials, pooled over a module's benchmarks, where the
variance lives: Kalibera & Jones) and how many trials the profile's target would take at that spread. The spread
is measured from the run's own trials; the trials needed are a projection from it
(:func:`bench_support.intervals.trials_for`), and the text says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from bench_support.intervals import MOST_TRIALS, between_trials, trials_for
from bench_support.report.summary import trials_of
from bench_support.report.validity import precision


@dataclass(frozen=True)
class ModuleSpread:
    group: str
    benchmarks: int  # results of two trials or more that the spread is pooled over
    sd_log: float  # standard deviation of the log of a trial's median, between trials
    df: int
    trials_needed: Optional[int]  # None: more than MOST_TRIALS


@dataclass(frozen=True)
class RunPrecision:
    target: float
    judged: int  # results judged on precision (not a scenario's fixed rounds)
    imprecise: int
    trials: Optional[int]  # the trials the judged results ran in (the most common count)
    modules: List[ModuleSpread]


def run_precision(benchmarks: Sequence[Dict[str, Any]], profile_name: Optional[str]) -> Optional[RunPrecision]:
    """The run's precision against its profile's target; None for a profile without one (smoke) or no judged
    result. ``benchmarks`` as saved (dicts with name, group, stats.data and extra_info)."""
    verdicts = [(bench, precision(bench, profile_name)) for bench in benchmarks]
    judged = [(bench, v) for bench, v in verdicts if v["judged"]]
    if not judged:
        return None
    counts = Counter((bench.get("extra_info") or {}).get("trials") or 1 for bench, _ in judged)
    by_group: Dict[str, List[Dict[str, Any]]] = {}
    for bench, _ in judged:
        by_group.setdefault(str(bench.get("group") or "other"), []).append(bench)
    target = judged[0][1]["target"]
    modules = []
    for group, members in sorted(by_group.items()):
        cut = [trials_of(bench) for bench in members]
        spread = between_trials(cut)
        if spread is not None:
            several = sum(1 for trials in cut if sum(1 for t in trials if t) >= 2)
            needed = trials_for(spread.sd_log, target)
            modules.append(ModuleSpread(group, several, spread.sd_log, spread.df, needed))
    return RunPrecision(
        target=target,
        judged=len(judged),
        imprecise=sum(1 for _, v in judged if v["imprecise"]),
        trials=counts.most_common(1)[0][0],
        modules=modules,
    )


def _needed(module: ModuleSpread) -> str:
    return str(module.trials_needed) if module.trials_needed is not None else f"more than {MOST_TRIALS}"


def precision_text(found: RunPrecision) -> str:
    """One paragraph: how many results missed the target, the spread between trials per module, the trials that
    spread would take."""
    trials = f"{found.trials} trial" + ("s" if found.trials != 1 else "")
    text = (
        f"{found.imprecise} of {found.judged} judged results are wider than the target ±{found.target * 100:g}% "
        f"({trials} each)"
    )
    if not found.modules:
        return text + "; no result ran in two trials or more, so the spread between processes is not measured"
    spreads = ", ".join(f"{m.group} {m.sd_log:.1%}" for m in found.modules)
    needed = ", ".join(f"{m.group} {_needed(m)}" for m in found.modules)
    return (
        f"{text}. Between trials (fresh processes) a median moved by σ = {spreads} (pooled per module); "
        f"at that spread ±{found.target * 100:g}% would take about this many trials (--trials N; a projection from "
        f"this run's spread): {needed}"
    )


def precision_values(found: RunPrecision) -> Dict[str, Any]:
    """The figures behind :func:`precision_text`, for a finding's values."""
    return {
        "target": found.target,
        "judged": found.judged,
        "imprecise": found.imprecise,
        "trials": found.trials,
        "between_trials": {
            m.group: {
                "sd_log": round(m.sd_log, 4),
                "df": m.df,
                "benchmarks": m.benchmarks,
                "trials_needed": m.trials_needed,
            }  # fmt: skip
            for m in found.modules
        },
    }
