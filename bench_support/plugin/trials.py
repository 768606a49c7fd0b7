"""Trials in pytest: each benchmark parametrised by its trial, the items put in each trial's seeded order, the
rounds of earlier trials kept for the precision rule, and the trials merged before anything is saved or shown.

The order and the merge rule are :mod:`bench_support.trials`'; this module only applies them to pytest's items and
pytest-benchmark's results. A module declares ``TRIALS = 1`` when its benchmark is a scenario measured once (the
continual fine-tune: its epochs are the measurement) or too costly to repeat (the distributed probe); it declares
``RUN_FIRST = True`` to run before the other modules.
"""

from __future__ import annotations

import statistics
from typing import Dict, Iterable, List, Optional, Tuple

import pytest

from bench_support import trials
from bench_support.intervals import BetweenTrials, between_trials
from bench_support.plugin import upstream

#: The indirect parameter that carries a benchmark's trial number.
TRIAL_PARAM = "edge_bench_trial"
#: base name (without the trial) -> the rounds of its finished trials, in trial order
EARLIER = pytest.StashKey[Dict[str, List[List[float]]]]()
#: (seed, the benchmarks' names in the order they ran), for the saved run
ORDER = pytest.StashKey[Tuple[int, List[str]]]()
#: In a fresh process: base name -> the trial medians of other benchmarks of its chunk's modules, sent by the session
#: (its EARLIER holds only the chunk's own benchmarks)
MODULE_MEDIANS = pytest.StashKey[Dict[str, List[float]]]()


def count_for(module, wanted: int) -> int:
    """The trials a module's benchmarks run: the run's, unless the module declares fewer."""
    declared = getattr(module, "TRIALS", None)
    return max(1, min(wanted, declared)) if isinstance(declared, int) else max(1, wanted)


def parametrize(metafunc: pytest.Metafunc, wanted: int) -> None:
    n = count_for(metafunc.module, wanted)
    if n <= 1 or "benchmark" not in metafunc.fixturenames:
        return
    metafunc.fixturenames.append(TRIAL_PARAM)
    ids = [trials.trial_id(t, n) for t in range(1, n + 1)]
    metafunc.parametrize(TRIAL_PARAM, [(t, n) for t in range(1, n + 1)], ids=ids, indirect=True)


@pytest.fixture
def edge_bench_trial(request: pytest.FixtureRequest) -> Tuple[int, int]:
    """(this trial, trials) of the benchmark; (1, 1) where it runs once."""
    return getattr(request, "param", (1, 1))


def trial_of(item: pytest.Item) -> Optional[Tuple[int, int]]:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(TRIAL_PARAM) if callspec is not None else None


def runs_first(item: pytest.Item) -> bool:
    """Whether the item's module declares ``RUN_FIRST = True``."""
    return getattr(getattr(item, "module", None), "RUN_FIRST", False) is True


def order(items: List[pytest.Item], seed: int) -> List[str]:
    """Reorder ``items`` in place: module by module (those declaring ``RUN_FIRST = True`` first, otherwise in
    pytest's order), trial 1 of every benchmark in its shuffled order, then trial 2's, ...; returns the
    benchmarks' names in the order they will run."""
    modules: Dict[str, List[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    ordered: List[pytest.Item] = []
    for scope, members in sorted(modules.items(), key=lambda kv: not runs_first(kv[1][0])):  # stable
        once = [i for i in members if trial_of(i) is None]
        by_trial: Dict[int, List[pytest.Item]] = {}
        for item in members:
            found = trial_of(item)
            if found is not None:
                by_trial.setdefault(found[0], []).append(item)
        ordered += once
        for trial in sorted(by_trial):
            ordered += trials.shuffled(by_trial[trial], seed, scope, trial)
    items[:] = ordered
    return [item.name for item in items]


def base_name(benchmark) -> str:
    return trials.without_trial(benchmark.fullname)


def earlier_rounds(config: pytest.Config, benchmark) -> List[List[float]]:
    """The rounds of this benchmark's trials that finished before this one."""
    return list(config.stash.setdefault(EARLIER, {}).get(base_name(benchmark), []))


module_of = trials.module_of


def module_medians(config: pytest.Config, modules: Iterable[str], leave_out: Iterable[str]) -> Dict[str, List[float]]:
    """The trial medians of every benchmark of ``modules`` with two finished trials or more, but those left out: what
    a fresh process needs to judge its module's spread between trials (:func:`between_so_far`)."""
    wanted, skip = set(modules), set(leave_out)
    earlier = config.stash.get(EARLIER, {})
    return {
        base: [statistics.median(r) for r in rounds if r]
        for base, rounds in earlier.items()
        if module_of(base) in wanted and base not in skip and sum(1 for r in rounds if r) >= 2
    }


def between_so_far(config: pytest.Config, benchmark) -> Optional[BetweenTrials]:
    """The spread between trials of the benchmark's module, from its benchmarks with two finished trials or more:
    those of this process's EARLIER and those the session sent (MODULE_MEDIANS); None until there are any."""
    module = module_of(base_name(benchmark))
    sets = [r for base, r in config.stash.get(EARLIER, {}).items() if module_of(base) == module]
    sets += [[[m] for m in medians] for base, medians in config.stash.get(MODULE_MEDIANS, {}).items()
             if module_of(base) == module]  # fmt: skip
    return between_trials(sets)


def record(config: pytest.Config, benchmark) -> None:
    """This trial's rounds, for the next trials' precision rule."""
    done = upstream.round_times(benchmark)
    if done:
        config.stash.setdefault(EARLIER, {}).setdefault(base_name(benchmark), []).append(done)


def merge(config: pytest.Config) -> int:
    """Each benchmark's trials as one result, its interval widened by its module's spread between trials; returns
    how many results were merged away."""
    dropped = upstream.merge_trials(config, TRIAL_PARAM, trials.without_trial, trials.merge_infos)
    session = upstream.benchmark_session(config)
    benchmarks = getattr(session, "benchmarks", None) or []
    # merged results hold a Stats, the others pytest-benchmark's Metadata, which passes .data on to its Stats.
    # Pooled per test file, as the last trials' rounds judged it (between_so_far): a user's benchmarks often have no
    # group, and two files of them are two kinds of work.
    trials.widen_by_module(
        [(module_of(b.fullname), list(getattr(b.stats, "data", None) or []), b.extra_info) for b in benchmarks]
    )
    return dropped
