"""Profiles: how much data and how many rounds every area of the suite runs.

A profile is the one place that says how big a run is. The parameter grids are
declared next to each benchmark (``GRID`` in the benchmark module); the plugin
parametrises every benchmark with its module's grid for the chosen profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

#: Extra rounds at most, for a profile given a target it did not have (``--precision-target`` on smoke).
DEFAULT_MAX_ROUNDS = 100

#: --isolate's values.
ISOLATE_CHOICES = ("benchmark", "none")


@dataclass(frozen=True)
class Rounds:
    measured: int  # rounds pytest-benchmark times
    warmup: int = 0  # untimed rounds before them (start-up costs: allocator growth, first touch)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    n_train: int  # generated training images
    n_val: int  # generated held-out images
    training: Rounds  # training epochs (one round = one epoch)
    loader_pass: Rounds  # loader-only passes over the training split
    loader_training: Rounds  # training epochs through each loader configuration
    stall_breakdown: Rounds  # cold epochs of the stall breakdown (each after a synthetic and a warm one)
    checkpoint: Rounds  # checkpoint writes
    pagecache_read: Rounds  # cold or warm reads of the dataset
    cold_start: Rounds  # cold first epochs; ``warmup`` is the warm epochs that follow, for comparison
    factory_images: int  # continual learning: synthetic images of the factory pretraining
    factory_epochs: int
    finetune_epochs: int  # continual learning: fine-tune epochs on the photos
    min_valid_rounds: int  # fewer measured rounds mark a result invalid (every area runs at least these)
    # Precision (docs/methods.md): after its rounds, a benchmark keeps adding rounds until the 95 % interval of its
    # median is within precision_target of it (a fraction), or round_budget_s (wall) is spent, or max_rounds is
    # reached; a result still wider is flagged. None: no target (a smoke run only checks that things run).
    precision_target: Optional[float] = None
    round_budget_s: float = 0.0
    max_rounds: int = 0
    # Trials (docs/methods.md): every benchmark is measured in this many interleaved passes over its module's grid,
    # each with the rounds above, and the passes are merged; its interval then spans what changes between them.
    trials: int = 1
    # Fresh processes (docs/methods.md): "benchmark" runs each benchmark in a process forked from one that has only
    # collected; "none" runs everything in the session's process (a smoke run only checks that things run).
    isolate: str = "none"

    def with_sizes(self, n_train: Optional[int] = None, n_val: Optional[int] = None) -> Profile:
        from dataclasses import replace

        return replace(self, n_train=n_train or self.n_train, n_val=n_val or self.n_val)

    def with_precision(self, target: Optional[float] = None, budget_s: Optional[float] = None) -> Profile:
        """The profile with another precision target or round budget (``--precision-target``, ``--round-budget``);
        a profile without a round cap (smoke) gets quick's once a target is asked for."""
        from dataclasses import replace

        if target is None and budget_s is None:
            return self
        return replace(
            self,
            precision_target=target if target is not None else self.precision_target,
            round_budget_s=budget_s if budget_s is not None else self.round_budget_s,
            max_rounds=self.max_rounds or DEFAULT_MAX_ROUNDS,
        )


PROFILES: Dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "smoke",
            "one tiny configuration per benchmark; checks that the suite runs",
            n_train=32,
            n_val=16,
            training=Rounds(1),
            loader_pass=Rounds(1),
            loader_training=Rounds(1),
            stall_breakdown=Rounds(1),
            checkpoint=Rounds(1),
            pagecache_read=Rounds(1),
            cold_start=Rounds(1, 1),
            factory_images=512,
            factory_epochs=1,
            finetune_epochs=1,
            min_valid_rounds=1,
        ),
        Profile(
            "quick",
            "default: the core grid",
            n_train=512,
            n_val=128,
            # Per trial (2 trials, pooled): two trials are what fits the quick profile's 6 minutes on a 2-core VM
            # (docs/methods.md, "Trials"); the last trial adds rounds until precise or round_budget_s is spent.
            training=Rounds(2, 1),
            loader_pass=Rounds(2, 1),
            loader_training=Rounds(2, 1),
            stall_breakdown=Rounds(2),  # each round's setup runs a synthetic and a warm epoch: the warm-up is there
            checkpoint=Rounds(3, 1),
            pagecache_read=Rounds(2),
            cold_start=Rounds(2, 1),
            factory_images=16384,
            factory_epochs=8,
            finetune_epochs=4,
            min_valid_rounds=3,
            precision_target=0.05,
            round_budget_s=3.0,
            max_rounds=DEFAULT_MAX_ROUNDS,
            trials=2,
            isolate="benchmark",
        ),
        Profile(
            "full",
            "the Jetson study's grid: more models, batch sizes, epochs (hours)",
            n_train=4096,
            n_val=1024,
            training=Rounds(3, 1),
            loader_pass=Rounds(3, 1),
            loader_training=Rounds(3, 1),
            stall_breakdown=Rounds(3),
            checkpoint=Rounds(10, 2),
            pagecache_read=Rounds(4),
            cold_start=Rounds(2, 2),
            factory_images=32768,
            factory_epochs=8,
            finetune_epochs=4,
            min_valid_rounds=5,
            precision_target=0.02,
            round_budget_s=60.0,
            max_rounds=200,
            trials=3,
            isolate="benchmark",
        ),
    )
}

# --- readable ids -------------------------------------------------------------------------

_ID_FORMATS = {
    "batch": "b{}",
    "image_size": "{}px",
    "num_workers": "w{}",
    "prefetch_factor": "pf{}",
    "target": "to-{}",
    "data_root": "on-{}",
    "world_size": "ws{}",
}
_BOOL_IDS = {"pin_memory": ("nopin", "pin"), "persistent_workers": ("respawn", "persistent")}


def format_id(name: str, value: object) -> str:
    if name in _BOOL_IDS:
        return _BOOL_IDS[name][bool(value)]
    return _ID_FORMATS.get(name, "{}").format(value)


def grid_combinations(
    grid: Mapping[str, Sequence], wanted: Sequence[str], keep=None
) -> Tuple[Tuple[str, ...], list, list]:
    """(names, value tuples, ids) of the cross product of ``grid`` over the ``wanted`` names.

    ``keep`` filters combinations that mean nothing (prefetch without workers). Ids
    name every value (``resnet18-b16-sgd-cpu-32px``), as PyTorch's operator benchmarks
    do, so results stay readable in tables and comparisons.
    """
    names = tuple(name for name in grid if name in wanted)
    combos = [()]
    for name in names:
        combos = [c + (v,) for c in combos for v in grid[name]]
    if keep is not None:
        combos = [c for c in combos if keep(dict(zip(names, c)))]
    ids = ["-".join(format_id(n, v) for n, v in zip(names, combo)) for combo in combos]
    return names, combos, ids
