"""The fixtures benchmarks use. Thin: each hands the session's state to a workload or an
instrument of the library and returns what it built.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable

import pytest

from bench_support import leftovers
from bench_support.board.setup import SetupError
from bench_support.errors import Unavailable
from bench_support.measure.harness import Harness, Precision, measured_call
from bench_support.measure.power import PowerSession, open_source
from bench_support.plugin import trials, upstream
from bench_support.plugin.state import CONTINUAL, POWER, POWER_IDLE, POWER_MODES, STATE, SuiteState
from bench_support.plugin.storage import continual_run_dir
from bench_support.plugin.terminal import bar_writer, live_writer, progress_writer
from bench_support.profiles import Profile


@pytest.fixture(scope="session")
def suite(pytestconfig: pytest.Config) -> SuiteState:
    return pytestconfig.stash[STATE]


@pytest.fixture(scope="session")
def profile(suite: SuiteState) -> Profile:
    return suite.profile


@pytest.fixture(scope="session")
def say(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """``say(text)``: one ``edge-bench: text`` line on the terminal now, through pytest's capture and from a
    fresh-process worker alike (what a benchmark waits on, when the wait lasts)."""
    write = live_writer(pytestconfig)
    return lambda text: write(f"edge-bench: {text}")


@pytest.fixture(scope="session")
def image_datasets(pytestconfig: pytest.Config, suite: SuiteState, say: Callable[[str], None]):
    """``image_datasets(image_size, data_root="data-dir") -> (train, val, info)``, built once per session."""
    from bench_support.workloads.datasets import DatasetProvider

    p = suite.profile
    return DatasetProvider(
        p.n_train, p.n_val, suite.data_seed, suite.data_roots, suite.cifar_root, progress_writer(pytestconfig), say
    )


@pytest.fixture
def data_root() -> str:
    """The data root a benchmark reads from; the plugin parametrises it over --data-root."""
    return "data-dir"


@pytest.fixture(scope="session")
def power_session(pytestconfig: pytest.Config, suite: SuiteState):
    source, reason = open_source(suite.power_backend, suite.power_interval_s)
    session = PowerSession(source, reason, suite.power_interval_s)
    known = pytestconfig.stash.get(POWER_IDLE, None)
    if known is not None:  # measured once per run, by the first process of it that needed power
        session.idle_w, session.idle_reason = known
    else:
        if source is not None and suite.power_idle_s > 0:  # a silent wait reads as a hang
            live_writer(pytestconfig)(
                f"edge-bench: measuring idle power for {suite.power_idle_s:g} s before the first benchmark "
                "(--power-idle-s)"
            )
        session.measure_idle(suite.power_idle_s)
        if source is not None and suite.power_idle_s > 0:
            pytestconfig.stash[POWER_IDLE] = (session.idle_w, session.idle_reason)
    pytestconfig.stash[POWER] = session
    yield session
    session.close()


@pytest.fixture
def harness(benchmark, suite: SuiteState, power_session: PowerSession, request: pytest.FixtureRequest):
    p = suite.profile
    trial = trials.trial_of(request.node) or (1, 1)
    precision = Precision(
        p.precision_target,
        p.round_budget_s,
        p.max_rounds,
        upstream.round_times,
        upstream.extra_round,
        trial,
        lambda bench: trials.earlier_rounds(request.config, bench),
        lambda bench: trials.between_so_far(request.config, bench),
    )
    yield Harness(benchmark, power_session.window, precision)
    trials.record(request.config, benchmark)


@pytest.fixture(autouse=True)
def _plain_benchmark_measures(request: pytest.FixtureRequest) -> None:
    """A benchmark written with the plain ``benchmark`` fixture gets the memory and power families too."""
    if "benchmark" in request.fixturenames and "harness" not in request.fixturenames:
        benchmark = request.getfixturevalue("benchmark")
        # the target its precision is judged by, as a harnessed benchmark records it (--precision-target)
        benchmark.extra_info["precision_target_rel"] = request.getfixturevalue("suite").profile.precision_target
        window = request.getfixturevalue("power_session").window
        upstream.measure_plain_fixture(benchmark, lambda call: measured_call(call, benchmark.extra_info, window))


@pytest.fixture(scope="session")
def single_rank_throughput() -> dict:
    """The distributed benchmark's samples/s at world size 1, per configuration: what the others scale against."""
    return {}


@pytest.fixture(autouse=True)
def power_mode(request: pytest.FixtureRequest):
    """Under --jetson-power-modes, this benchmark's nvpmodel mode: entered and its clocks settled, before anything
    else of the benchmark is built; the mode, settling time and clocks go into its extra_info. None otherwise."""
    name = getattr(request, "param", None)
    if name is None:
        return None
    try:
        facts = request.config.stash[POWER_MODES].enter(name)
    except SetupError as exc:
        raise Unavailable(str(exc)) from None
    if "benchmark" in request.fixturenames:
        request.getfixturevalue("benchmark").extra_info.update(facts)
    return name


@pytest.fixture
def torch_device(device: str) -> str:
    """The grid's ``device``, skipped with the reason where this machine has none."""
    from bench_support.workloads import training

    return training.require_device(device)


@pytest.fixture
def loader_config(num_workers, prefetch_factor, pin_memory, persistent_workers):
    import torch

    from bench_support.workloads import loading

    return loading.loader_config(
        num_workers, prefetch_factor, pin_memory, persistent_workers, torch.cuda.is_available()
    )


@pytest.fixture
def ckpt_target_dir(suite: SuiteState, target: str):
    """A fresh folder of this process on the target; removed afterwards."""
    from bench_support.workloads import checkpoint

    base = checkpoint.target_base(target, suite.project_dir, dict(suite.ckpt_dirs))
    directory = os.path.join(base, leftovers.owner_tag())  # pid and start time: a later run reaps it if killed
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:  # a read-only project folder, a full disk: this target cannot be measured here
        raise Unavailable(f"checkpoint target {target}: cannot create {directory}: {exc.strerror}") from None
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.rmdir(base)
    except OSError:
        pass


@pytest.fixture(scope="module")
def continual_scenario(pytestconfig: pytest.Config, suite: SuiteState):
    """The continual-learning scenario, prepared once per module; its outputs are written at the end."""
    from bench_support.continual import scenario as continual

    live, bars = live_writer(pytestconfig), bar_writer(pytestconfig, "steps")
    prepared = continual.prepare(suite.continual, suite.profile, suite.data_dir, suite.project_dir, live, bars)
    try:
        yield prepared
    finally:
        prepared.close()
    pytestconfig.stash[CONTINUAL] = prepared.finish(continual_run_dir(pytestconfig))
