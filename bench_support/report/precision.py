"""How precise a run is as a whole, and how many trials its targets would take on this machine.

Each flagged result states its own interval. What a user needs next is the run's answer: how far a median moves
from one process to the next here (the spread between trials, pooled over a module's benchmarks, where the
variance lives: Kalibera & Jones) and, for a module whose results missed their target, how many trials that target
would take at that spread. The spread is measured from the run's own trials; the trials needed are a projection
from it (:func:`bench_support.intervals.trials_for`), and the text says so. Each result is judged by the target it
records (the profile's, or ``--precision-target``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from bench_support.intervals import MOST_TRIALS, between_trials, trials_for
from bench_support.report.summary import trials_of
from bench_support.report.validity import precision
from bench_support.trials import module_of


@dataclass(frozen=True)
class ModuleSpread:
    group: str
    benchmarks: int  # results of two trials or more that the spread is pooled over
    sd_log: float  # standard deviation of the log of a trial's median, between trials
    df: int
    imprecise: int  # the module's results that missed their target
    target: float  # the module's (most common) target
    trials_needed: Optional[int]  # at that target; None: more than MOST_TRIALS


@dataclass(frozen=True)
class RunPrecision:
    targets: List[float]  # the targets the judged results were measured for, most common first
    judged: int  # results judged on precision (not a scenario's fixed rounds)
    imprecise: int
    trials: List[int]  # the trial counts of the judged results, smallest first
    modules: List[ModuleSpread]  # modules of which some result ran in two trials or more
    unmeasured: List[str]  # modules of which no result ran in two trials: no spread between processes


def run_precision(benchmarks: Sequence[Dict[str, Any]], profile_name: Optional[str]) -> Optional[RunPrecision]:
    """The run's precision against the targets its results record; None for a profile without one (smoke) or no
    judged result. ``benchmarks`` as saved (dicts with name, group, stats.data and extra_info)."""
    judged = [(bench, v) for bench, v in ((b, precision(b, profile_name)) for b in benchmarks) if v["judged"]]
    if not judged:
        return None
    by_module: Dict[str, List[tuple]] = {}
    for bench, verdict in judged:
        by_module.setdefault(_module_of(bench), []).append((bench, verdict))
    modules, unmeasured = [], []
    labelled = sorted(((_label(module, members), members) for module, members in by_module.items()), key=lambda x: x[0])
    for group, members in labelled:
        spread = between_trials(trials_of(bench) for bench, _ in members)
        if spread is None:
            unmeasured.append(group)
            continue
        target = Counter(v["target"] for _, v in members).most_common(1)[0][0]
        several = sum(1 for bench, _ in members if sum(1 for t in trials_of(bench) if t) >= 2)
        missed = sum(1 for _, v in members if v["imprecise"])
        needed = trials_for(spread.sd_log, target)
        modules.append(ModuleSpread(group, several, spread.sd_log, spread.df, missed, target, needed))
    return RunPrecision(
        targets=[t for t, _ in Counter(v["target"] for _, v in judged).most_common()],
        judged=len(judged),
        imprecise=sum(1 for _, v in judged if v["imprecise"]),
        trials=sorted({int((b.get("extra_info") or {}).get("trials") or 1) for b, _ in judged}),
        modules=modules,
        unmeasured=unmeasured,
    )


def _module_of(bench: Dict[str, Any]) -> str:
    """The result's test file, the unit its interval was widened over (plugin/trials.py); its group where the saved
    result has no node id."""
    fullname = str(bench.get("fullname") or "")
    return module_of(fullname) if "::" in fullname else str(bench.get("group") or "other")


def _label(module: str, members: List[tuple]) -> str:
    """A module's name in the text: its benchmarks' one group (``checkpoint``), else its file's name."""
    groups = {bench.get("group") for bench, _ in members}
    only = next(iter(groups)) if len(groups) == 1 else None
    return str(only) if only else module.rsplit("/", 1)[-1]


def _percent(fraction: float) -> str:
    return f"±{fraction * 100:g}%"


def _needed(module: ModuleSpread) -> str:
    count = str(module.trials_needed) if module.trials_needed is not None else f"more than {MOST_TRIALS}"
    return f"{module.group} {count}"


def precision_text(found: RunPrecision) -> str:
    """One paragraph: how many results missed their target, the spread between trials per module, and the trials
    that spread would take in the modules that missed."""
    target = _percent(found.targets[0]) if len(found.targets) == 1 else ", ".join(map(_percent, found.targets))
    trials = str(found.trials[0]) if len(found.trials) == 1 else f"{found.trials[0]}-{found.trials[-1]}"
    against = f"the target {target}" if len(found.targets) == 1 else f"their targets ({target})"
    text = (
        f"{found.imprecise} of {found.judged} judged results are wider than {against} "
        f"({trials} trial{'' if trials == '1' else 's'} each)"
    )
    if not found.modules:
        return text + "; no result ran in two trials or more, so the spread between processes is not measured"
    spreads = ", ".join(f"{m.group} {m.sd_log:.1%}" for m in found.modules)
    text += f". Between trials (fresh processes) a median moved by σ = {spreads} (pooled per module)"
    missed = [m for m in found.modules if m.imprecise]
    if missed:
        by_target = {m.target for m in missed}
        aim = _percent(missed[0].target) if len(by_target) == 1 else "its target"
        text += (
            f"; at that spread {aim} would take about this many trials where results missed it (--trials N; a "
            f"projection from this run's spread): {', '.join(_needed(m) for m in missed)}"
        )
    if found.unmeasured:
        text += f"; not measured for {', '.join(found.unmeasured)} (one trial)"
    return text


def precision_values(found: RunPrecision) -> Dict[str, Any]:
    """The figures behind :func:`precision_text`, for a finding's values."""
    return {
        "targets": found.targets,
        "judged": found.judged,
        "imprecise": found.imprecise,
        "trials": found.trials,
        "between_trials": {
            m.group: {
                "sd_log": round(m.sd_log, 4),
                "df": m.df,
                "benchmarks": m.benchmarks,
                "imprecise": m.imprecise,
                "target": m.target,
                "trials_needed": m.trials_needed if m.imprecise else None,
            }
            for m in found.modules
        },
    }
