"""A loaded run's figures made safe to read: one of the wrong type or out of its range is shown as unavailable.

:func:`bench_support.report.runs.run_problem` refuses a file whose shape the report cannot read at all; this goes
one level down, into the figures the tables, findings and plots compute with (a benchmark's time statistics, the
continual scenario's summary in ``edge_bench.continual``). A figure that is not a finite number in its range (NaN,
a string, an accuracy of -1) becomes None, the report's "unavailable", and a configuration without a name is left
out, each with one line naming the field, so that one damaged value never costs the report of the other runs.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from bench_support import metrics

#: The statistics of a saved benchmark that are numbers (seconds, or the count of rounds), all ≥ 0.
NUMBER_STATS = ("min", "median", "mean", "max", "iqr", "stddev")

#: Figures the vocabulary calls fractions that are the difference of two (final minus pretrained): they may be < 0.
SIGNED_FRACTIONS = ("lift", "forgetting")

_JSON_TYPES = {"list": "an array", "dict": "an object", "str": "a string", "bool": "a boolean", "NoneType": "null"}


def is_number(value: Any, finite: bool = False) -> bool:
    """An int or float (never a bool); with ``finite``, neither NaN nor infinite (an int too large for a float is
    not finite either, rather than an OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return not finite or math.isfinite(value)
    except OverflowError:
        return False


def _whole(value: Any) -> bool:
    return is_number(value, True) and value >= 0 and float(value).is_integer()


def _within(low: float, high: float):
    return lambda value: is_number(value, True) and low <= value <= high


#: unit (as the vocabulary names it) -> (what a value must be, the words that say so).
_CHECKS = {
    "fraction": (_within(0.0, 1.0), "a fraction in [0, 1]"),
    "signed fraction": (_within(-1.0, 1.0), "a fraction in [-1, 1]"),
    "count": (_whole, "a whole number ≥ 0"),
    "flag": (lambda value: isinstance(value, bool), "true or false"),
    **{unit: (_within(0.0, math.inf), "a number ≥ 0") for unit in ("s", "ms", "MB")},
}


def _check(name: str) -> Optional[Tuple[Any, str]]:
    """How a figure of the continual summary is checked, from its unit in the vocabulary; None: not checked."""
    if name in SIGNED_FRACTIONS:
        return _CHECKS["signed fraction"]
    entry = metrics.get(name)
    return _CHECKS.get(entry.unit) if entry is not None else None


def _shown(value: Any) -> str:
    """The bad value in a problem line: 'NaN', '-1', 'a string'."""
    if is_number(value):
        return "NaN" if value != value else repr(value) if len(repr(value)) <= 24 else "a number out of range"
    return _JSON_TYPES.get(type(value).__name__, "not a JSON value")


def _unavailable(record: Dict[str, Any], key: str, where: str, ok, wanted: str, problems: List[str]) -> None:
    value = record.get(key)
    if value is not None and not ok(value):
        problems.append(f"{where}.{key} is {_shown(value)}, not {wanted}; shown as unavailable")
        record[key] = None


def sanitise_run(data: Dict[str, Any]) -> List[str]:
    """Make the figures of ``data`` (a run :func:`~bench_support.report.runs.run_problem` accepted) safe to read, in
    place; returns one line per figure changed or configuration left out (without the file's name)."""
    problems: List[str] = []
    for i, bench in enumerate(data.get("benchmarks") or []):
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if isinstance(stats, dict):
            for key in NUMBER_STATS:
                _unavailable(stats, key, f"benchmarks[{i}].stats", *_CHECKS["s"], problems)
            _unavailable(stats, "rounds", f"benchmarks[{i}].stats", *_CHECKS["count"], problems)
    block = (data.get("edge_bench") or {}).get("continual")
    if isinstance(block, dict):
        _continual(block, problems)
    return problems


def _continual(block: Dict[str, Any], problems: List[str]) -> None:
    where = "edge_bench.continual"
    photos = block.get("photos")
    if photos is not None and not isinstance(photos, dict):
        problems.append(f"{where}.photos is {_shown(photos)}, not an object; shown as unavailable")
        block["photos"] = photos = None
    if isinstance(photos, dict):
        _unavailable(photos, "held_out_photos", f"{where}.photos", *_CHECKS["count"], problems)
    configs = block.get("configs")
    if configs is None:
        return
    if not isinstance(configs, list):
        problems.append(f"{where}.configs is {_shown(configs)}, not an array; no configuration shown")
        block["configs"] = None
        return
    kept = []
    for i, config in enumerate(configs):
        if not isinstance(config, dict):
            problems.append(f"{where}.configs[{i}] is {_shown(config)}, not an object; left out")
            continue
        name = config.get("config")
        if not isinstance(name, str) or not name:
            said = "missing" if name is None else _shown(name)
            problems.append(f"{where}.configs[{i}].config is {said}, not a configuration's name; left out")
            continue
        for key in list(config):
            check = _check(key) if key != "config" else None
            if check is not None:
                _unavailable(config, key, f"{where}.configs[{i}]", *check, problems)
        kept.append(config)
    block["configs"] = kept
