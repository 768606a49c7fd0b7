"""Every benchmark parametrised from its module's ``GRID`` for the session's profile.

A benchmark module declares ``GRID = {profile: {parameter: values}}`` (and optionally
``GRID_FILTER``, a predicate dropping combinations that mean nothing). Each test
function gets the cross product of the grid's parameters it uses, with readable ids.
The user's own targets join the grid: ``--ckpt-dir`` names extend ``target``,
``--data-root`` names extend ``data_root``; a benchmark that reads data but has no
``data_root`` in its grid runs on each user root too, when there are any.
"""

from __future__ import annotations

import os
from typing import Optional

import pytest

from bench_support.plugin.state import POWER_MODES, STATE
from bench_support.profiles import format_id, grid_combinations


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    grids = getattr(metafunc.module, "GRID", None)
    if grids is None:
        return
    state = metafunc.config.stash[STATE]
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
    if sweep is not None and os.path.basename(str(metafunc.module.__file__)) in SWEPT_BY_POWER_MODE:
        metafunc.parametrize("power_mode", sweep.names, ids=[f"pm-{n}" for n in sweep.names], indirect=True)
    if "data_root" in metafunc.fixturenames and "data_root" not in names and state.user_data_roots:
        # Only then: the default ids stay comparable with earlier runs.
        roots = ["data-dir", *state.user_data_roots]
        metafunc.parametrize("data_root", roots, ids=[format_id("data_root", r) for r in roots])


#: The grids --jetson-power-modes runs once per mode (the study's time/energy trade-off per mode).
SWEPT_BY_POWER_MODE = ("test_training.py", "test_dataloader.py")


def pytest_collection_modifyitems(config: pytest.Config, items) -> None:
    """Under a power-mode sweep, every benchmark of a mode before the next mode's: one switch per mode."""
    sweep = config.stash.get(POWER_MODES, None)
    if sweep is None:
        return
    order = {name: i for i, name in enumerate(sweep.names)}

    def mode_of(item) -> int:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("power_mode") if callspec is not None else None
        return -1 if mode is None else order[mode]

    items.sort(key=mode_of)  # stable: within a mode the usual order


#: Benchmark modules a plain ``pytest benchmarks/`` leaves out: they run when named on the
#: command line (or through the run.sh command given here).
ON_REQUEST = {"test_distributed.py": "./run.sh distributed"}


def named_on_command_line(path: str, config: pytest.Config) -> bool:
    for arg in config.args:
        target = os.path.abspath(os.path.join(str(config.invocation_params.dir), arg.split("::")[0]))
        if target == os.path.abspath(path):
            return True
    return False


def pytest_ignore_collect(collection_path, config: pytest.Config) -> Optional[bool]:
    if collection_path.name in ON_REQUEST and not named_on_command_line(str(collection_path), config):
        return True
    return None
