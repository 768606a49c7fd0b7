"""Profiles: how much data, how many rounds, which grid a run covers.

The parameter grids themselves are declared next to each benchmark (``GRID`` in the
benchmark module); a profile picks one of them and sets the sizes below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence

import pytest


@dataclass(frozen=True)
class Profile:
    name: str
    n_train: int  # generated training images
    n_val: int  # generated held-out images
    rounds: int  # measured rounds (one round of a training benchmark = one epoch)
    warmup_rounds: int  # untimed rounds before them (epoch 0 carries start-up costs)
    description: str


PROFILES: Dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", 32, 16, 1, 0, "one tiny configuration per benchmark; checks that the suite runs"),
        Profile("quick", 512, 128, 3, 1, "default: the core grid, ~4 min on a 2-core CPU (~6 the first time)"),
        Profile("full", 4096, 1024, 5, 1, "the Jetson study's grid: more models, batch sizes, epochs (hours)"),
    )
}

_ID_FORMATS = {
    "batch": "b{}",
    "image_size": "{}px",
    "num_workers": "w{}",
    "prefetch_factor": "pf{}",
    "target": "to-{}",
    "data_root": "on-{}",
}


_BOOL_IDS = {"pin_memory": ("nopin", "pin"), "persistent_workers": ("respawn", "persistent")}


def _fmt(name: str, value: object) -> str:
    if name in _BOOL_IDS:
        return _BOOL_IDS[name][bool(value)]
    return _ID_FORMATS.get(name, "{}").format(value)


def parametrize_grid(
    metafunc: pytest.Metafunc,
    grids: Mapping[str, Mapping[str, Sequence]],
    extra: Optional[Mapping[str, Sequence]] = None,
    keep: Optional[Callable[[Dict[str, object]], bool]] = None,
) -> None:
    """Parametrise a test with the cross product of its module's grid for this profile.

    ``extra`` appends values (e.g. user-given targets); ``keep`` filters combinations.
    Ids name every value (``resnet18-b16-sgd-cpu-32px``), as PyTorch's operator
    benchmarks do, so results stay readable in tables and comparisons.
    """
    profile = metafunc.config.getoption("profile")
    grid = {name: list(values) + list((extra or {}).get(name, ())) for name, values in grids[profile].items()}
    names = [name for name in grid if name in metafunc.fixturenames]
    if not names:
        return
    combos = [()]
    for name in names:
        combos = [c + (v,) for c in combos for v in grid[name]]
    if keep is not None:  # drop combinations that mean nothing (e.g. prefetch without workers)
        combos = [c for c in combos if keep(dict(zip(names, c)))]
    ids = ["-".join(_fmt(n, v) for n, v in zip(names, combo)) for combo in combos]
    values = [c[0] for c in combos] if len(names) == 1 else combos
    metafunc.parametrize(",".join(names), values, ids=ids)
