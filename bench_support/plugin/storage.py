"""pytest-benchmark's storage and hooks: where a run is saved, what it records about the
machine, how runs are compared, and the suite's block in the saved JSON.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

import pytest
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import safe_dumps

from bench_support import results
from bench_support.files import write_atomic
from bench_support.measure import machine
from bench_support.plugin.state import CONTINUAL, INTERRUPTED, POWER, SAVE_PROBLEMS, STATE
from bench_support.report.summary import fastest_loaders
from bench_support.report.validity import validity

SUITE_VERSION = "0.1.0"


def configure_storage(config: pytest.Config, device_folder: str, run_name: str) -> str:
    """Save into the device's own folder; compare with its last run of the same profile.

    pytest-benchmark alone compares with the newest run, whatever its profile: a smoke run
    against a quick one reads as -90 %. Returns the line saying which run is compared and
    why (or why none is).
    """
    option = config.option
    option.benchmark_storage = "file://" + device_folder
    if not option.benchmark_save and not option.benchmark_autosave:
        option.benchmark_save = run_name
    option.benchmark_save_data = True  # per-round data: comparisons need more than a mean
    if option.benchmark_compare:
        return f"compared with run {option.benchmark_compare} as asked (--benchmark-compare)"
    labels = sorted(os.path.splitext(os.path.basename(p))[0] for p in results.compared_run_files(device_folder))
    if not labels:
        return ""
    alike = [label for label in labels if label.split("_", 1)[-1] == run_name]
    if not alike:
        return f"not compared: no earlier {run_name} run here (the last run, {labels[-1]}, used another profile)"
    option.benchmark_compare = alike[-1].split("_", 1)[0]
    later = f"; {labels[-1]}, newer, used another profile" if labels[-1] != alike[-1] else ""
    return f"compared with {alike[-1]}, the last {run_name} run of this device{later}"


def silence_default_machine_info_comparison(config: pytest.Config) -> None:
    """Drop pytest-benchmark's own comparison of machine_info.

    It warns whenever the whole dict differs, which it does at every run (CPU
    frequency, available memory; upstream issue #255). Ours below compares only the
    stable facts and names them. The hook is not firstresult, so the default has to be
    switched off rather than overridden.
    """
    hook = config.pluginmanager.hook.pytest_benchmark_compare_machine_info
    for impl in hook.get_hookimpls():
        if getattr(impl.function, "__module__", "") == "pytest_benchmark.plugin":
            impl.function = lambda *args, **kwargs: None


class TransactionalStorage(FileStorage):
    """pytest-benchmark's file storage, saving through :func:`bench_support.results.save_run`.

    pytest-benchmark picks the next number and then opens that name with O_TRUNC: two
    runs saving at once overwrite each other and a crash leaves a torn file. Installed by
    re-classing the session's storage object (its constructor already ran).
    """

    problems: List[str]

    def save(self, output_json, save):
        folder = str(self.get("probe").parent)
        try:
            path = results.save_run(folder, save, safe_dumps(output_json, ensure_ascii=True, indent=4).encode())
        except OSError as exc:
            self.problems.append(f"the run was NOT saved to {folder}: {exc.strerror or exc}")
            return
        self.logger.info(f"Saved benchmark data in: {path}")


def make_saving_transactional(config: pytest.Config) -> None:
    """Save runs (and --benchmark-json) whole or not at all; failures are counted, not lost."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return
    problems: List[str] = config.stash.setdefault(SAVE_PROBLEMS, [])
    if isinstance(session.storage, FileStorage):
        session.storage.__class__ = TransactionalStorage
        session.storage.problems = problems

    def save_json(output_json) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                fh.write(safe_dumps(output_json, ensure_ascii=True, indent=4).encode())

        path = str(session.json)
        try:
            write_atomic(path, write, suffix=".part")
        except OSError as exc:
            problems.append(f"--benchmark-json {path} was NOT written: {exc.strerror or exc}")

    session.save_json = save_json


def drop_unfinished(config: pytest.Config) -> int:
    """Remove benchmarks that were interrupted before a round finished (pytest-benchmark's
    statistics fail on them and the whole run would be lost); returns how many."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return 0
    finished = [b for b in session.benchmarks if getattr(getattr(b, "stats", None), "data", None)]
    dropped = len(session.benchmarks) - len(finished)
    session.benchmarks[:] = finished
    return dropped


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
    saved = compared_benchmark.get("machine_info", {}).get("device", {})
    changes = machine.stable_differences(machine_info.get("device", {}), saved)
    then = (compared_benchmark.get("edge_bench") or {}).get("profile")
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
        "suite_version": SUITE_VERSION,
        "profile": state.profile.name,
        "device_id": state.device_id,
        "platform": state.platform,
        "data_dir": state.data_dir,
        "cifar_root": state.cifar_root,
        "interrupted": config.stash.get(INTERRUPTED, False),
        "rss_at_start_mb": state.rss_at_start_mb,
        # What makes two runs comparable beyond the profile, and whether this run ran only part of the suite.
        "settings": {
            "thread_policy": state.thread_policy,
            "cache_drop": state.cache_drop,
            "power_backend": state.power_backend,
            "data_roots": sorted(state.data_roots),
            "ckpt_dirs": sorted(state.ckpt_dirs),
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
