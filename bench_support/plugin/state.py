"""The suite's state for one pytest session: every option, checked and resolved, frozen.

Benchmarks and fixtures read their parameters from here (the ``suite`` fixture), never
from ``config.getoption``: the options are parsed and validated once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, List, Mapping, Optional, Sequence, Set, Tuple

import pytest

from bench_support.errors import UserError
from bench_support.measure import machine
from bench_support.profiles import PROFILES, Profile
from bench_support.workloads.datasets import data_root_dir
from bench_support.workloads.torchrun import Topology

STATE = pytest.StashKey["SuiteState"]()
SESSION = pytest.StashKey[pytest.Session]()
POWER = pytest.StashKey[Any]()  # the PowerSession, once the first benchmark opened it
CONTINUAL = pytest.StashKey[Any]()  # the continual scenario's Outcome, once it finished
INTERRUPTED = pytest.StashKey[bool]()  # Ctrl-C: the run is saved with what finished, and says so
SAVE_PROBLEMS = pytest.StashKey[List[str]]()  # saves that failed: the run fails
COMPARED_WITH = pytest.StashKey[str]()  # which saved run pytest-benchmark compares with, and why that one
POWER_MODES = pytest.StashKey[Any]()  # the PowerModeSweep of --jetson-power-modes
FAILED_AFTER_TESTS = pytest.StashKey[bool]()  # something raised after the tests (a compare-fail gate)
PASSED = pytest.StashKey[Set[str]]()  # node ids whose call passed: what an interrupted run keeps
STOPS = pytest.StashKey[Any]()  # the StopSignals handlers: SIGTERM/SIGHUP end the run as Ctrl-C does
POWER_IDLE = pytest.StashKey[Tuple[Optional[float], Optional[str]]]()  # idle power measured once, by whichever process
CHILD = pytest.StashKey[Tuple[dict, Any]]()  # in a child process (plugin/isolation.py): its spec and its pipe
RUNNER = pytest.StashKey[Any]()  # in the parent: the isolation Runner starting the children


@dataclass(frozen=True)
class SuiteState:
    profile: Profile
    project_dir: str  # the repository root: where .bench-ckpt/ and data_real/ live
    data_dir: str
    data_seed: int
    device_id: str
    platform: str
    cifar_root: Optional[str]
    results_dir: Optional[str]  # this device's results folder, when --save-results is given
    ckpt_dirs: Mapping[str, str]  # user checkpoint targets: name -> directory
    data_roots: Mapping[str, str]  # name -> directory holding the datasets; "data-dir" is --data-dir
    cache_drop: str
    thread_policy: str
    trace_steps: bool
    crash_trials: int
    trials: int  # interleaved trials of every benchmark (bench_support.trials)
    trial_seed: int  # the seed of their order, recorded in the saved run
    isolate: str  # "benchmark": each benchmark in a fresh process (plugin/isolation.py); "none"
    power_backend: str
    power_interval_s: float
    power_idle_s: float
    continual: Mapping[str, Any]
    topology: Topology = Topology()  # the distributed benchmark's place among machines
    # RSS when the suite starts, its libraries (torch, torchvision) imported: the floor under every result.
    rss_at_start_mb: Optional[float] = None

    @property
    def user_data_roots(self) -> Tuple[str, ...]:
        return tuple(name for name in self.data_roots if name != "data-dir")


def _unique(option: str, pairs: Sequence[Tuple[str, str]]) -> Mapping[str, str]:
    named: dict = {}
    for name, path in pairs:
        if name in named:
            raise UserError(f"{option} {name}={path}: the name {name} is given twice")
        same = [other for other, there in named.items() if os.path.realpath(there) == os.path.realpath(path)]
        if same:  # two names for one folder: the same measurement twice, under two names
            raise UserError(f"{option} {name}={path}: that folder is given already, as {same[0]}")
        named[name] = path
    return named


#: The platforms $BENCH_PLATFORM may name (as run.sh and tox do); "auto" or unset detects it.
PLATFORMS = ("cpu", "cuda", "jetson")


def _platform(given: Optional[str]) -> str:
    """$BENCH_PLATFORM, checked: a misspelt one ("gpu") silently ran as another platform, isolation and all."""
    name = (given or "").strip().lower()
    if name in ("", "auto"):
        return machine.detect_platform()
    if name not in PLATFORMS:
        raise UserError(f"$BENCH_PLATFORM {given!r}: expected one of {', '.join(PLATFORMS)} or auto")
    return name


def _profile(name: str) -> Profile:
    """The profile of ``--profile`` or $BENCH_PROFILE (whose value argparse does not check)."""
    found = PROFILES.get(name) or PROFILES.get(name.strip().lower())
    if found is None:
        raise UserError(f"profile {name!r} (--profile or $BENCH_PROFILE): expected one of {', '.join(PROFILES)}")
    return found


def _topology(option) -> Topology:
    nnodes, node_rank, master = option("dist_nnodes"), option("dist_node_rank"), option("dist_master")
    if node_rank >= nnodes:
        raise UserError(f"--dist-node-rank {node_rank}: must be below --dist-nnodes ({nnodes})")
    if nnodes > 1 and master is None:
        raise UserError(f"--dist-nnodes {nnodes}: give node 0's address with --dist-master HOST:PORT")
    if nnodes == 1 and master is not None:
        raise UserError("--dist-master: only with --dist-nnodes > 1 (one machine uses the loopback)")
    return Topology(nnodes, node_rank, master, option("dist_ifname"))


def ensure_data_dir(state: SuiteState) -> None:
    """The default data folder (./data), made when first needed; UserError when it cannot be."""
    from bench_support.plugin.parsers import writable_dir

    writable_dir("data directory", state.data_dir, create=True)


def _isolate(asked: Optional[str], profile: Profile, platform: str, sweep: bool) -> str:
    """--isolate, else the profile's on a CPU platform, else none: a forked worker's CUDA has not run on a GPU yet
    (docs/methods.md, "Fresh processes"), and a power-mode sweep switches the board from the session's process."""
    if asked == "benchmark" and sweep:
        raise UserError("--isolate benchmark and --jetson-power-modes: give one (the sweep runs in one process)")
    if asked:
        return asked
    return profile.isolate if platform == "cpu" and not sweep else "none"


def build_state(config: pytest.Config) -> SuiteState:
    """The state of this session from its options; UserError (one line) when they do not fit together."""
    from bench_support.continual import scenario
    from bench_support.plugin.parsers import writable_dir

    option = config.getoption
    root = str(config.rootpath)
    profile = _profile(option("profile")).with_sizes(option("train_images"), option("val_images"))
    profile = profile.with_precision(option("precision_target"), option("round_budget"))
    if option("data_dir"):
        data_dir = option("data_dir")
    elif os.environ.get("BENCH_DATA_DIR"):  # given, so it must exist: a typo must not make a new folder
        data_dir = writable_dir("BENCH_DATA_DIR", os.environ["BENCH_DATA_DIR"])
    else:  # made once benchmarks are collected (ensure_data_dir): a run that benchmarks nothing writes nothing
        data_dir = os.path.join(root, "data")
    data_roots = {"data-dir": data_dir}
    for name, path in _unique("--data-root", option("data_root")).items():
        data_roots[name] = data_root_dir(path)
    cl_options = {
        "model": option("cl_model"),
        "image_size": option("cl_image_size"),
        "batch": option("cl_batch"),
        "workers": option("cl_workers"),
        "epochs": option("cl_epochs"),
        "seed": option("data_seed"),
        "weights": option("cl_weights"),
        "rss_budget_mb": option("rss_budget_mb"),
        "data_real": option("data_real"),
        "allow_network": bool(option("allow_network")),
        "pretrain_images": option("cl_pretrain_images"),
    }
    device_id = machine.device_id(option("device_name"))
    platform = _platform(os.environ.get("BENCH_PLATFORM"))
    results = option("save_results")
    return SuiteState(
        profile=profile,
        project_dir=root,
        data_dir=data_dir,
        data_seed=option("data_seed"),
        device_id=device_id,
        platform=platform,
        cifar_root=option("cifar_root"),
        results_dir=writable_dir("--save-results", os.path.join(results, device_id), create=True) if results else None,
        ckpt_dirs=MappingProxyType(dict(_unique("--ckpt-dir", option("ckpt_dir")))),
        data_roots=MappingProxyType(data_roots),
        cache_drop=option("cache_drop"),
        thread_policy=option("thread_policy"),
        trace_steps=bool(option("trace_steps")),
        crash_trials=option("crash_trials"),
        trials=option("trials") or profile.trials,
        trial_seed=option("trial_seed") if option("trial_seed") is not None else secrets.randbelow(2**32),
        isolate=_isolate(option("isolate"), profile, platform, bool(option("jetson_power_modes"))),
        power_backend=option("power_backend"),
        power_interval_s=option("power_interval"),
        power_idle_s=option("power_idle_s"),
        continual=scenario.settings_from(cl_options, profile, root),
        topology=_topology(option),
    )
