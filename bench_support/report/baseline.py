"""The one rule that picks what a run is compared with.

Used by the terminal (the run pytest-benchmark's ``--benchmark-compare`` is pointed at under ``--save-results``),
the report's tables and the gate, so they judge alike:

- two runs are *alike* when no setting both record differs (the profile, the suite's version, and what changes
  what a benchmark measures: thread policy, cache drop, power backend, data roots, checkpoint targets, the
  continual scenario's photos); a setting
  only one of them records (a run saved by an older suite) is unknown, not different;
- a run's baseline (the terminal's comparison, the gate, the report's run-wide speed line) is the newest earlier
  run that ran alike and records the profile and suite version the new one records (pytest-benchmark's own JSON
  or another tool's says neither: what its figures measured is unknown); a partial (``-k``, a path) or
  interrupted run is never the baseline of a whole one;
- one benchmark's row in the report's table is against the newest earlier alike run that ran that benchmark,
  partial or not (its finished benchmarks are whole);
- the continual scenario's photos (:data:`SCOPED`) count for the continual results only: the run-wide baseline may
  have run on other photos, and the gate then leaves those results unjudged, saying so.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

T = TypeVar("T")  # a saved run: report.runs.Run, unless data_of (and names_of) say how to read another


#: Settings that change what one benchmark group measures and nothing else: the continual scenario's photos (the
#: stand-ins or a folder, and that folder's files). They decide whether that group's results ran alike, never the
#: run's other results: adding a photo must not end the training benchmarks' history.
SCOPED: Dict[str, str] = {"photos": "continual", "photo_files": "continual"}


def settings_of(data: Dict[str, Any], group: Optional[str] = None) -> Dict[str, Any]:
    """A saved run's profile and settings ({} for runs saved before the suite recorded them); a setting of
    :data:`SCOPED` only for its own ``group`` (none for the run as a whole)."""
    block = data.get("edge_bench") if isinstance(data, dict) else None
    block = block if isinstance(block, dict) else {}
    known = {key: block[key] for key in ("profile", "suite_version") if block.get(key)}
    settings = block.get("settings")
    found = {**known, **(settings if isinstance(settings, dict) else {})}
    return {key: value for key, value in found.items() if SCOPED.get(key, group) == group}


def scoped_changes(old: Dict[str, Any], new: Dict[str, Any], group: Optional[str] = None) -> List[str]:
    """:func:`differences` in the :data:`SCOPED` settings of ``group`` (of every group when None) between two saved
    runs' data."""
    groups = {group} if group is not None else set(SCOPED.values())
    return [change for g in sorted(groups) for change in differences(
        {k: v for k, v in settings_of(old, g).items() if k in SCOPED},
        {k: v for k, v in settings_of(new, g).items() if k in SCOPED},
    )]  # fmt: skip


def is_whole(data: Dict[str, Any]) -> bool:
    """Neither partial (a selection of the suite) nor interrupted."""
    block = data.get("edge_bench") if isinstance(data, dict) else None
    block = block if isinstance(block, dict) else {}
    selection = block.get("selection") if isinstance(block.get("selection"), dict) else {}
    return not selection.get("partial") and not block.get("interrupted")


#: What a run-wide baseline must record where the new run does: without them nothing says what it measured.
ESSENTIAL = ("profile", "suite_version")


def differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """'name: old -> new' for each setting both record that differs."""
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(set(old) & set(new)) if old[k] != new[k]]


def baseline_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """:func:`differences`, and 'name: not recorded' for each essential setting only ``new`` records."""
    missing = [f"{k}: not recorded -> {new[k]!r}" for k in ESSENTIAL if k in new and k not in old]
    return missing + differences(old, new)


def _data(run: Any) -> Dict[str, Any]:
    return run.data


def _names(run: Any) -> List[str]:
    return [b["name"] for b in run.benchmarks()]


def run_baseline(
    earlier: Sequence[T], new: Dict[str, Any], data_of: Callable[[T], Dict[str, Any]] = _data
) -> Optional[T]:
    """The newest of ``earlier`` (oldest first) that ran alike with ``new`` (a run's saved data)."""
    want_whole = is_whole(new)
    for run in reversed(earlier):
        data = data_of(run)
        if baseline_differences(settings_of(data), settings_of(new)):
            continue
        if want_whole and not is_whole(data):
            continue
        return run
    return None


def benchmark_baseline(
    earlier: Sequence[T],
    new: Dict[str, Any],
    name: str,
    data_of: Callable[[T], Dict[str, Any]] = _data,
    names_of: Callable[[T], Sequence[str]] = _names,
    group: Optional[str] = None,
) -> Optional[T]:
    """The newest of ``earlier`` that ran alike with ``new`` (the settings of the benchmark's ``group`` included) and
    ran the benchmark ``name``."""
    for run in reversed(earlier):
        if not differences(settings_of(data_of(run), group), settings_of(new, group)) and name in names_of(run):
            return run
    return None
