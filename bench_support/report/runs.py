"""Saved runs: what lies under a results folder, and the figures of one benchmark."""

from __future__ import annotations

import heapq
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_support.report.sanitise import is_number, sanitise_run
from bench_support.results import saved_runs

#: pytest-benchmark's time statistics (s); every other figure comes from extra_info.
TIME_METRICS = ("min", "median", "mean", "max")


@dataclass
class Run:
    device: str
    path: str
    number: int
    data: Dict[str, Any]
    #: What loading changed (a figure of the wrong type shown as unavailable), one line each, naming the file.
    problems: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def profile(self) -> Optional[str]:
        return (self.data.get("edge_bench") or {}).get("profile")

    @property
    def settings(self) -> Dict[str, Any]:
        """The profile and the options that change what a benchmark measures ({} for runs saved before)."""
        block = self.data.get("edge_bench") or {}
        known = {"profile": block.get("profile")} if block.get("profile") else {}
        return {**known, **(block.get("settings") or {})}

    @property
    def partial(self) -> bool:
        return bool(((self.data.get("edge_bench") or {}).get("selection") or {}).get("partial"))

    @property
    def facts(self) -> Dict[str, Any]:
        return (self.data.get("machine_info") or {}).get("device") or {}

    def benchmarks(self) -> List[Dict[str, Any]]:
        return [b for b in self.data.get("benchmarks") or [] if isinstance(b, dict) and b.get("name")]


def load_runs(results_dir: str) -> Tuple[List[Run], List[str]]:
    """Every readable run under ``results_dir``, oldest first per device, and the problems met."""
    runs: List[Run] = []
    problems: List[str] = []
    if not os.path.isdir(results_dir):
        return runs, [f"{results_dir}: no such directory"]
    for saved in saved_runs(results_dir):
        path = saved.path
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: skipped, not readable JSON ({str(exc).splitlines()[0]})")
            continue
        problem = run_problem(data)
        if problem:
            problems.append(f"{path}: skipped, not a pytest-benchmark run ({problem})")
            continue
        if "edge_bench" not in data:
            why = "saved by an older suite or without its plugin (no edge_bench block)"
            problems.append(f"{path}: {why}; shown with what it has")
        run = _loaded(saved.device or device_of(data, path), path, saved.number, data)
        problems.extend(run.problems)
        runs.append(run)
    runs = in_order(runs)
    if not runs and not problems:
        problems.append(f"{results_dir}: no saved runs yet (run ./run.sh first)")
    return runs, problems


def in_order(runs: Sequence[Run]) -> List[Run]:
    """Oldest first per device: by run number within a storage folder, the folders interleaved by datetime.

    A board without a clock (no RTC, no network) records 1970 or any other date, so a run's ``datetime`` cannot
    order the runs of one folder; the number pytest-benchmark gives each save there can (it only grows, and is what
    the plugin compares by). Only runs of different folders (a new interpreter, another machine id) are placed by
    their datetimes, each folder keeping its own number order; a file without a number is placed by its datetime.
    """
    streams: Dict[Tuple[str, str], List[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.device, r.path)):
        folder = os.path.dirname(run.path) if run.number else run.path  # an unnumbered file: a stream of its own
        streams.setdefault((run.device, folder), []).append(run)
    for stream in streams.values():
        stream.sort(key=lambda r: r.number)
    out: List[Run] = []
    for device in sorted({device for device, _ in streams}):
        mine = [stream for (owner, _), stream in streams.items() if owner == device]
        out.extend(heapq.merge(*mine, key=_datetime))  # merge keeps each folder's order, whatever its dates
    return out


def _datetime(run: Run) -> str:
    """The run's recorded ``datetime``, "" where absent or not a string (never a TypeError in a sort)."""
    value = run.data.get("datetime")
    return value if isinstance(value, str) else ""


def device_of(data: Dict[str, Any], path: str) -> str:
    """The device a run in pytest-benchmark's own storage layout names, else its machine-id folder's name."""
    for block in ((data.get("edge_bench") or {}), ((data.get("machine_info") or {}).get("device") or {})):
        if isinstance(block, dict) and isinstance(block.get("device_id"), str) and block["device_id"]:
            return block["device_id"]
    return os.path.basename(os.path.dirname(path))


def load_run_file(path: str, device: str = "baseline") -> Tuple[Optional[Run], str]:
    """One run file given by path (``--baseline``), or None and why it could not be read."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except OSError as exc:
        return None, str(exc).splitlines()[0]
    except ValueError as exc:
        return None, f"not readable JSON ({str(exc).splitlines()[0]})"
    problem = run_problem(data)
    if problem:
        return None, f"not a pytest-benchmark run ({problem})"
    return _loaded(device, path, 0, data), ""


def _loaded(device: str, path: str, number: int, data: Dict[str, Any]) -> Run:
    """The run, its figures made safe to read once here (:mod:`.sanitise`) rather than checked by every reader."""
    return Run(device, path, number, data, [f"{path}: {problem}" for problem in sanitise_run(data)])


#: The blocks of a run's ``edge_bench`` the report reads into (each an object, or absent or null).
_OBJECT_BLOCKS = ("settings", "selection", "continual", "trials", "fastest_loader", "fastest_loader_by_size")

_JSON_TYPES = {"list": "an array", "str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}


def run_problem(data: Any) -> Optional[str]:
    """Why ``data`` (a parsed run file) is not a run the report can read, or None.

    The shape the report relies on: an object with a ``benchmarks`` list of objects whose
    ``stats`` and ``extra_info`` are objects and ``stats.data`` a list of finite numbers (each may be absent or
    null). A figure of the wrong type within that shape is no reason to skip the run: :mod:`.sanitise` shows it as
    unavailable.
    """
    if not isinstance(data, dict):
        return f"{_JSON_TYPES.get(type(data).__name__, 'null')}, not an object"
    if not isinstance(data.get("benchmarks"), list):
        return "no 'benchmarks' list"
    for key in ("edge_bench", "machine_info", "commit_info"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is not an object"
    block = data.get("edge_bench") or {}
    for key in _OBJECT_BLOCKS:
        if block.get(key) is not None and not isinstance(block[key], dict):
            return f"edge_bench.{key} is not an object"
    device = (data.get("machine_info") or {}).get("device")
    if device is not None and not isinstance(device, dict):
        return "machine_info.device is not an object"
    for i, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict):
            return f"benchmarks[{i}] is not an object"
        for key in ("stats", "extra_info", "params", "options"):
            if bench.get(key) is not None and not isinstance(bench[key], dict):
                return f"benchmarks[{i}].{key} is not an object"
        for key in ("name", "group", "fullname"):
            if bench.get(key) is not None and not isinstance(bench[key], str):
                return f"benchmarks[{i}].{key} is not a string"
        validity = (bench.get("extra_info") or {}).get("validity")
        if validity is not None and not isinstance(validity, dict):
            return f"benchmarks[{i}].extra_info.validity is not an object"
        stats = bench.get("stats") or {}
        rounds = stats.get("data")
        if rounds is not None and not (isinstance(rounds, list) and all(is_number(x, True) for x in rounds)):
            return f"benchmarks[{i}].stats.data is not a list of numbers"
    return None


def by_device(runs: Sequence[Run]) -> Dict[str, List[Run]]:
    devices: Dict[str, List[Run]] = {}
    for run in runs:
        devices.setdefault(run.device, []).append(run)
    return devices


# --- figures of one benchmark -------------------------------------------------------------


def rounds_of(bench: Dict[str, Any]) -> List[float]:
    return [float(x) for x in (bench.get("stats") or {}).get("data") or []]


def spread(bench: Dict[str, Any]) -> Optional[float]:
    """IQR/median of the rounds, None where the stats lack them."""
    stats = bench.get("stats") or {}
    try:
        return float(stats["iqr"]) / float(stats["median"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def metric(bench: Dict[str, Any], name: str) -> Optional[float]:
    """A time statistic (s) or an extra_info figure; None where absent or not a finite number."""
    source = bench.get("stats") or {} if name in TIME_METRICS else bench.get("extra_info") or {}
    value = source.get(name)
    if not is_number(value, finite=True):  # NaN, infinite, a string: unavailable, never a number to compute with
        return None
    return float(value)


#: How far the speed probe (``speed_probe_ms``) may move between two runs before a change of a
#: time-derived figure is put down to the machine rather than the benchmark (docs/methods.md, Noise).
MACHINE_BAND = 0.10


def machine_moved(before: Optional[Dict[str, Any]], bench: Dict[str, Any]) -> str:
    """'the machine ran 14 % slower (speed probe 6.1 → 7.0 ms)', or "" when the probe cannot explain a change.

    The probe speaks only when its change is beyond the band and beyond its own precision (the two probes' interval
    half-widths added, ``speed_probe_ci_rel``; the IQR/median for runs saved before it was recorded), when that
    precision is finer than the change of the benchmark it would explain, and when the benchmark's median moved the
    same way (a probe saying "slower" beside a benchmark that got faster explains nothing).
    """
    found = machine_change(before, bench)
    if found is None:
        return ""
    old, new = metric(before, "speed_probe_ms"), metric(bench, "speed_probe_ms")
    pace = "slower" if new > old else "faster"
    return f"the machine ran {abs(found):.0%} {pace} (speed probe {old:.3g} → {new:.3g} ms)"


def _probe_noise(bench: Dict[str, Any]) -> float:
    ci = metric(bench, "speed_probe_ci_rel")
    return ci if ci is not None else (metric(bench, "speed_probe_iqr") or 0.0)


def machine_change(before: Optional[Dict[str, Any]], bench: Dict[str, Any]) -> Optional[float]:
    """The speed probe's relative change between two results (+0.14: 14 % slower) where it may speak, else None."""
    old = metric(before, "speed_probe_ms") if before else None
    new = metric(bench, "speed_probe_ms")
    if not old or not new:
        return None
    change = new / old - 1
    own_noise = _probe_noise(before) + _probe_noise(bench)
    if abs(change) <= max(MACHINE_BAND, own_noise):
        return None
    t_old, t_new = metric(before, "median"), metric(bench, "median")
    if not t_old or not t_new:
        return change  # no time of its own to check against (a run-wide statement)
    moved = t_new / t_old - 1
    if moved * change <= 0 or abs(moved) <= own_noise:
        return None
    return change


#: Absolute RSS figures: the file-backed pages (libraries) in them follow the page cache, not only the work.
RSS_ABSOLUTE = ("rss_peak_mb", "rss_now_mb", "rss_baseline_mb", "rss_built_mb", "rss_tree_peak_mb")
#: Those read where ``rss_file_mb`` is (at the end of the rounds): the ones a move of it can be taken out of.
RSS_AT_THE_END = ("rss_peak_mb", "rss_now_mb", "rss_tree_peak_mb")
#: How far the file-backed RSS (``rss_file_mb``) may move between two results before it is named as a cause.
FILE_PAGES_BAND_MB = 16.0


def file_pages_change(before: Optional[Dict[str, Any]], bench: Dict[str, Any]) -> Optional[float]:
    """How much the file-backed RSS moved between two results (MB, + more), where beyond the band; else None.

    The same import of torch leaves some 200 MB more of its libraries resident when they are wholly in the page
    cache (just installed, or read since) than after the cache dropped them (docs/methods.md, Fresh processes):
    a change of an absolute RSS figure between runs can be the page cache's rather than the benchmark's.
    """
    old = metric(before, "rss_file_mb") if before else None
    new = metric(bench, "rss_file_mb")
    if old is None or new is None or abs(new - old) < FILE_PAGES_BAND_MB:
        return None
    return new - old


def file_pages_moved(before: Optional[Dict[str, Any]], bench: Dict[str, Any]) -> str:
    """'file-backed pages 425 → 223 MB (the page cache's, …)', or "" where they stayed put."""
    change = file_pages_change(before, bench)
    if change is None:
        return ""
    old, new = metric(before, "rss_file_mb"), metric(bench, "rss_file_mb")
    return f"file-backed pages {old:.0f} → {new:.0f} MB (the page cache's, or libraries and files the work maps)"
