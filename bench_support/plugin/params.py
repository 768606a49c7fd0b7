"""Every benchmark parametrised from its module's ``GRID`` for the session's profile.

A benchmark module declares ``GRID = {profile: {parameter: values}}`` (and optionally
``GRID_FILTER``, a predicate dropping combinations that mean nothing). Each test
function gets the cross product of the grid's parameters it uses, with readable ids.
The user's own targets join the grid: ``--ckpt-dir`` names extend ``target``,
``--data-root`` names extend ``data_root``; a benchmark that reads data but has no
``data_root`` in its grid runs on each user root too, when there are any.

Two more module-level declarations, read here (no list of modules anywhere else):
``POWER_MODE_SWEEP = True`` makes ``--jetson-power-modes`` run the module's grid once
per nvpmodel mode; ``ON_REQUEST = "<command>"`` leaves the module out of a plain
``pytest benchmarks/`` unless it is named on the command line, as ``<command>`` does: it
is read from the module's source, so a module left out is not even imported (its imports
would otherwise count in every run's RSS floor).
"""

from __future__ import annotations

import ast
import os
from typing import List, Optional

import pytest

from bench_support.plugin import server, trials
from bench_support.plugin.state import POWER_MODES, STATE
from bench_support.profiles import format_id, grid_combinations


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = metafunc.config.stash.get(STATE, None)
    if state is None:
        return
    grids = getattr(metafunc.module, "GRID", None)
    if grids is not None:
        _parametrize_grid(metafunc, state, grids)
    trials.parametrize(metafunc, state.trials)  # last: its id is taken out again when the trials are merged


def _parametrize_grid(metafunc: pytest.Metafunc, state, grids) -> None:
    grid = {name: list(values) for name, values in grids[state.profile.name].items()}
    if "target" in grid:
        grid["target"] += list(state.ckpt_dirs)
    if "data_root" in grid:
        grid["data_root"] += list(state.user_data_roots)
    names, combos, ids = grid_combinations(grid, metafunc.fixturenames, getattr(metafunc.module, "GRID_FILTER", None))
    if names:
        values = [c[0] for c in combos] if len(names) == 1 else combos
        metafunc.parametrize(",".join(names), values, ids=ids)
    sweep = metafunc.config.stash.get(POWER_MODES, None)
    if sweep is not None and getattr(metafunc.module, "POWER_MODE_SWEEP", False):
        metafunc.parametrize("power_mode", sweep.names, ids=[f"pm-{n}" for n in sweep.names], indirect=True)
    if "data_root" in metafunc.fixturenames and "data_root" not in names and state.user_data_roots:
        # Only then: the default ids stay comparable with earlier runs.
        roots = ["data-dir", *state.user_data_roots]
        metafunc.parametrize("data_root", roots, ids=[format_id("data_root", r) for r in roots])


def pytest_collection_modifyitems(config: pytest.Config, items) -> None:
    """Trials in their seeded order, module by module, those declaring ``RUN_FIRST`` first (with one trial too:
    :mod:`bench_support.plugin.trials`); under a power-mode sweep, every benchmark of a mode runs before the next
    mode's: one switch per mode."""
    state = config.stash.get(STATE, None)
    if state is not None:
        trials.order(items, state.trial_seed)
    sweep = config.stash.get(POWER_MODES, None)
    if sweep is not None:
        _by_mode(items, sweep)
    server.narrow(config, items)  # the fresh-process server: the items the session runs in fresh processes


def _by_mode(items, sweep) -> None:
    order = {name: i for i, name in enumerate(sweep.names)}

    def mode_of(item) -> int:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("power_mode") if callspec is not None else None
        return -1 if mode is None else order[mode]

    items.sort(key=mode_of)  # stable: within a mode the usual order


def on_request(path: str) -> Optional[str]:
    """The module's ``ON_REQUEST`` string, read from its source without importing it; None if it has none."""
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None  # pytest's own collection reports what is wrong with it
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ON_REQUEST" for t in node.targets):
            value = node.value
            return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else "on request"
    return None


def pytest_ignore_collect(collection_path, config: pytest.Config) -> Optional[bool]:
    name = collection_path.name
    if not (name.startswith("test_") and name.endswith(".py")) or named_on_command_line(str(collection_path), config):
        return None
    how = on_request(str(collection_path))
    if how is None:
        return None
    path = os.path.relpath(str(collection_path), str(config.rootpath))
    config.stash.setdefault(ON_REQUEST_LEFT_OUT, []).append(f"{path} runs on request: {how}")
    return True


ON_REQUEST_LEFT_OUT = pytest.StashKey[List[str]]()


def pytest_report_collectionfinish(config: pytest.Config, items) -> List[str]:
    return [f"edge-bench: {line}" for line in config.stash.get(ON_REQUEST_LEFT_OUT, [])]


def named_on_command_line(path: str, config: pytest.Config) -> bool:
    for arg in config.args:
        target = os.path.abspath(os.path.join(str(config.invocation_params.dir), arg.split("::")[0]))
        if target == os.path.abspath(path):
            return True
    return False
