"""Randomized interleaved trials: the order they run in, and how a benchmark's trials become one result.

Every benchmark of a module is measured in several trials (passes over the module's grid). Each pass runs in its
own shuffled order, drawn from the run's seed, so a drift of the host (a neighbour starting, a clock settling) falls
on every configuration a finding compares alike instead of on whichever ran last (Abedi & Brecht, ICPE 2017).
The order is a pure function of the seed: the saved run records the seed and the order, and ``--trial-seed``
replays it. After the run, each benchmark's trials are merged into one result (:func:`merge_infos`), under the
name it has without trials, so comparisons with earlier runs, the report and the gate see one result per benchmark.
"""

from __future__ import annotations

import random
import re
import statistics
from typing import Any, Dict, List, Sequence, Tuple, TypeVar

from bench_support.intervals import BetweenTrials, between_trials, interval_figures, split_trials

T = TypeVar("T")

_TRIAL_ID = re.compile(r"t(\d+)of(\d+)")


def trial_id(trial: int, trials: int) -> str:
    """The id a trial adds to a benchmark's name: ``t2of3``."""
    return f"t{trial}of{trials}"


def without_trial(name: str) -> str:
    """A benchmark's name (or param id) without its trial id: ``f[a-b-t2of3]`` -> ``f[a-b]``, ``f[t1of3]`` -> ``f``."""
    name = re.sub(r"\[t\d+of\d+\]$", "", name)
    name = re.sub(r"^t\d+of\d+$", "", name)
    name = re.sub(r"(^|\[)t\d+of\d+-", r"\1", name)
    return re.sub(r"-t\d+of\d+(?=\]|$|-)", "", name)


def module_of(name: str) -> str:
    """The module (test file) part of a benchmark's node id: the unit its spread between trials is pooled over."""
    return name.split("::")[0]


def shuffled(keys: Sequence[T], seed: int, scope: str, trial: int) -> List[T]:
    """``keys`` in the order trial ``trial`` of ``scope`` (a module) runs them: a pure function of the seed."""
    out = list(keys)
    random.Random(f"{seed}:{scope}:{trial}").shuffle(out)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def median_trial(rounds: Sequence[Sequence[float]]) -> int:
    """The index of the trial whose median time is the median of the trials' medians (the lower one of two)."""
    medians = [statistics.median(r) if len(r) else float("inf") for r in rounds]
    ranked = sorted(range(len(medians)), key=lambda i: medians[i])
    return ranked[(len(ranked) - 1) // 2]


#: Figures summed over the trials (counts of what was measured), and taken at their largest (peaks).
SUMMED = ("rounds_measured", "rounds_warmup")


def merge_infos(infos: Sequence[Dict[str, Any]], rounds: Sequence[Sequence[float]]) -> Dict[str, Any]:
    """One benchmark's extra_info from its trials' (in trial order) and their rounds (seconds).

    The figures are the median trial's, so that they stay consistent with one another (its samples/s, its energy,
    its stall share); peaks (``*peak*``) are the largest of any trial, counts of rounds their sums; the interval is
    recomputed over all trials; and the trials' own figures are added (docs/methods.md).
    """
    middle = median_trial(rounds)
    out = dict(infos[middle])
    for key in out:
        values = [info.get(key) for info in infos]
        if not all(_number(v) for v in values):
            continue
        if key in SUMMED:
            out[key] = sum(values)
        elif "peak" in key:
            out[key] = max(values)
    out.update(interval_figures([v for r in rounds for v in r], trials=rounds))
    last = infos[-1]
    for key in ("rounds_stopped", "round_budget_s", "precision_target_rel"):
        if key in last:
            out[key] = last[key]
    out.update(
        trials=len(infos),
        trial_rounds=[len(r) for r in rounds],
        trial_medians_s=[round(statistics.median(r), 6) if len(r) else None for r in rounds],
        figures_from_trial=middle + 1,
    )
    return out


def widen_by_module(results: Sequence[Tuple[Any, Sequence[float], Dict[str, Any]]]) -> Dict[str, BetweenTrials]:
    """Each merged result's interval widened by the spread between trials pooled over its module.

    ``results``: (module, rounds in trial order, extra_info) of every result of the run, merged (the plugin passes
    the test file, which in the suite's own benchmarks is one group); an extra_info is
    updated in place (its interval figures, ``between_trials_sd_log`` and ``between_trials_df``) where the result
    ran in two trials or more and its module measured a spread (:func:`bench_support.intervals.widened`). Returns
    the spreads by module.
    """
    by_group: Dict[str, List[List[List[float]]]] = {}
    for group, rounds, info in results:
        trials = split_trials(list(rounds), info.get("trial_rounds"))
        if len(trials) >= 2:
            by_group.setdefault(str(group), []).append(trials)
    spreads = {group: found for group, sets in by_group.items() for found in [between_trials(sets)] if found}
    for group, rounds, info in results:
        between = spreads.get(str(group))
        trials = split_trials(list(rounds), info.get("trial_rounds"))
        if between is None or len(trials) < 2:
            continue
        info.update(interval_figures(list(rounds), trials=trials, between=between))
        info.update(between_trials_sd_log=round(between.sd_log, 6), between_trials_df=between.df)
    return spreads
