"""pytest-benchmark's storage and hooks: where a run is saved, what it records about the
machine, how runs are compared, and the suite's block in the saved JSON.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import pytest

from bench_support import results
from bench_support.continual.photos import files_fingerprint, has_photo_files
from bench_support.errors import UserError
from bench_support.measure import machine
from bench_support.plugin import trials
from bench_support.plugin.state import CONTINUAL, INTERRUPTED, POWER, STATE
from bench_support.report.baseline import baseline_differences, run_baseline, scoped_changes, settings_of
from bench_support.report.runs import load_run_file
from bench_support.report.sanitise import NUMBER_STATS, is_number
from bench_support.report.summary import fastest_loaders
from bench_support.report.validity import validity


def _suite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-bench")
    except PackageNotFoundError:  # a checkout used without installing it
        return "unknown"


#: What a figure means can change between versions (0.2.0: the distributed probe's no_sync step, the RSS floor read
#: after collection; 0.3.0: trials, per-trial rounds, intervals across trials): a run of another version is never the
#: baseline (bench_support/report/baseline.py).
SUITE_VERSION = _suite_version()


#: pytest-benchmark's own default for --benchmark-storage: any other value was the user's choice.
DEFAULT_STORAGE = "file://./.benchmarks"


def configure_storage(option: Any, device_folder: str, run_name: str, this_run: Dict[str, Any]) -> str:
    """``--save-results``: save into the device's own folder, compared with its last run that ran alike.

    pytest-benchmark's options keep their meaning: a ``--benchmark-save NAME`` or ``--benchmark-autosave`` names
    the run, an explicit ``--benchmark-compare`` is obeyed, and a ``--benchmark-storage`` elsewhere contradicts
    ``--save-results`` (refused, as a UserError). pytest-benchmark alone compares with the newest run whatever it
    ran; here the baseline is the one :mod:`bench_support.report.baseline` picks for the report and the gate too.
    ``this_run`` is the run's own edge_bench block (:func:`this_run_block`). Returns the line saying which run is
    compared and why (or why none is).
    """
    storage = "file://" + device_folder
    chosen = getattr(option, "benchmark_storage", DEFAULT_STORAGE)
    if chosen not in (DEFAULT_STORAGE, storage):
        raise UserError(
            f"--save-results saves into {device_folder}, --benchmark-storage into {chosen}: give one of them"
        )
    option.benchmark_storage = storage
    if not option.benchmark_save and not option.benchmark_autosave:
        option.benchmark_save = run_name
    option.benchmark_save_data = True  # per-round data: the report's intervals and plots need more than a mean
    if option.benchmark_compare:
        return f"compared with run {option.benchmark_compare} as asked (--benchmark-compare)"
    # Unreadable files are skipped here; the report names them. So are runs pytest-benchmark could not compare with.
    loaded = (load_run_file(path)[0] for path in sorted(results.compared_run_files(device_folder)))
    judged = [(run, compare_problem(run.data)) for run in loaded if run is not None]
    earlier = [run for run, problem in judged if problem is None]
    skipped = "".join(
        f"; skipped {run.label}: {problem}, pytest-benchmark cannot compare with it"
        for run, problem in judged
        if problem
    )
    if not earlier:
        return skipped[2:]
    this_run = {"edge_bench": this_run}
    base = run_baseline(earlier, this_run)
    newest = earlier[-1].label
    if base is None:
        why = "; ".join(baseline_differences(settings_of(earlier[-1].data), settings_of(this_run)))
        why = why or "partial or interrupted"
        return f"not compared: no earlier run here ran alike (the last, {newest}: {why}){skipped}"
    option.benchmark_compare = base.label.split("_", 1)[0]
    later = f"; {newest}, newer, did not run alike" if newest != base.label else ""
    scoped = scoped_changes(base.data, this_run)
    other = f"; its continual results ran on other photos ({'; '.join(scoped)})" if scoped else ""
    return f"compared with {base.label}, the last run of this device that ran alike{later}{other}{skipped}"


def compare_problem(data: Dict[str, Any]) -> Optional[str]:
    """Why pytest-benchmark could not compare with a saved run the report reads, or None: it needs every benchmark's
    ``fullname`` and ``stats`` with a mean (storage/file.py, ``normalize_stats``)."""
    for i, bench in enumerate(data.get("benchmarks") or []):
        stats = bench.get("stats")
        if not isinstance(bench.get("fullname"), str):
            return f"benchmarks[{i}] has no fullname"
        if not isinstance(stats, dict):
            return f"benchmarks[{i}] has no stats"
        if "ops" not in stats and not (is_number(stats.get("mean"), True) and stats["mean"] != 0):
            return f"benchmarks[{i}].stats has no mean"
        # Its comparison table formats these as numbers; the report has already made a damaged one None.
        for key in NUMBER_STATS:
            if key in stats and not is_number(stats[key], True):
                return f"benchmarks[{i}].stats.{key} is not a number"
    return None


def _object(value: Any) -> Dict[str, Any]:
    """``value`` where it is a JSON object, else an empty one: a damaged saved run compares as one that says nothing."""
    return value if isinstance(value, dict) else {}


def continual_run_dir(config: pytest.Config) -> str:
    """Where this run's continual-learning outputs go: beside the saved run, under its number."""
    state = config.stash[STATE]
    folder = state.results_dir or results.device_dir(f"{state.project_dir}/results", state.device_id)
    save = getattr(config.option, "benchmark_save", None)
    label = results.next_run_label(state.results_dir, save) if state.results_dir and save else None
    return results.continual_dir(folder, label)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: Dict[str, Any]) -> None:
    state = config.stash[STATE]
    paths = {"data_dir": state.data_dir}
    if state.results_dir:
        paths["results_dir"] = state.results_dir
    facts = machine.collect(paths)
    facts["device_id"] = state.device_id
    facts["platform"] = state.platform
    power = config.stash.get(POWER, None)
    if power is not None:
        facts["power"] = power.facts()
    machine_info["device"] = facts


def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark) -> None:
    saved = _object(_object(compared_benchmark.get("machine_info")).get("device"))
    changes = machine.stable_differences(_object(machine_info.get("device")), saved)
    then = _object(compared_benchmark.get("edge_bench")).get("profile")
    state = config.stash.get(STATE, None)
    if then and state is not None and then != state.profile.name:
        changes.append(f"profile {then} -> {state.profile.name}: the times are not comparable")
    if changes:
        benchmarksession.logger.warning("the compared run was made under different conditions: " + "; ".join(changes))


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: Dict[str, Any]) -> None:
    state = config.stash[STATE]
    for bench in output_json.get("benchmarks", []):
        bench.setdefault("extra_info", {})["validity"] = validity(bench, state.profile.name)
    outcome = config.stash.get(CONTINUAL, None)
    by_size = fastest_loaders(benchmarks)
    output_json["edge_bench"] = {
        "continual": outcome.json_block() if outcome is not None else None,
        "fastest_loader": next(iter(by_size.values()), None),  # the smallest size's, as before sizes were kept
        "fastest_loader_by_size": by_size,
        "device_id": state.device_id,
        "platform": state.platform,
        "data_dir": state.data_dir,
        "cifar_root": state.cifar_root,
        "rss_at_start_mb": state.rss_at_start_mb,
        "trials": _trials_block(config),
        **this_run_block(config),
    }


def _trials_block(config: pytest.Config) -> Dict[str, Any]:
    """How many trials, the seed of their order and the order itself (``--trial-seed`` replays it)."""
    state = config.stash[STATE]
    seed, order = config.stash.get(trials.ORDER, (state.trial_seed, []))
    return {"count": state.trials, "seed": seed, "order": order}


def this_run_block(config: pytest.Config) -> Dict[str, Any]:
    """What makes two runs comparable beyond the profile, and whether this run ran only part of the suite."""
    state = config.stash[STATE]
    folder = state.continual["data_real"]
    mine = has_photo_files(folder)
    # Which photos, not only where: a folder the user added photos to holds another workload under the same path.
    photo_files = {"photo_files": files_fingerprint(folder)} if mine else {}
    return {
        "profile": state.profile.name,
        "suite_version": SUITE_VERSION,
        "interrupted": config.stash.get(INTERRUPTED, False),
        "settings": {
            "thread_policy": state.thread_policy,
            "isolate": state.isolate,  # a process per benchmark or one for all: memory and spread differ in kind
            "cache_drop": state.cache_drop,
            "power_backend": state.power_backend,
            "data_roots": sorted(state.data_roots),
            "ckpt_dirs": sorted(state.ckpt_dirs),
            # The continual results' photos: the user's folder, or generated stand-ins when it holds none.
            "photos": folder if mine else "stand-ins",
            **photo_files,
        },
        "selection": selection(config),
    }


def selection(config: pytest.Config) -> Dict[str, Any]:
    """The run's selection: partial when -k, -m or paths narrower than the benchmarks folder chose the tests."""
    keyword = getattr(config.option, "keyword", "") or ""
    marker = getattr(config.option, "markexpr", "") or ""
    paths = [os.path.relpath(str(a), str(config.rootpath)) for a in config.args]
    whole = all(p.rstrip("/") in (".", "benchmarks") for p in paths)
    return {"keyword": keyword or None, "markers": marker or None, "paths": paths,
            "partial": bool(keyword or marker or not whole)}  # fmt: skip
