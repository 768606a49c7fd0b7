"""The session's life: state at configure time, guards once benchmarks are collected, errors as skips or
one-line failures while tests run, and the exit.

Installed, the plugin loads into every pytest run of its environment, as pytest-benchmark does; it stays inert
(options parsed, nothing installed, nothing written) unless the session collected a benchmark.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import os
import signal
import sys

import pytest
from pytest_benchmark.session import PerformanceRegression

from bench_support import leftovers, netguard
from bench_support.board import setup as jetson_setup
from bench_support.board.power_modes import PowerModeSweep
from bench_support.errors import Unavailable, UserError
from bench_support.measure.memory import rss_now_mb
from bench_support.plugin import isolation, server, trials, upstream
from bench_support.plugin.options import PATH_OPTIONS
from bench_support.plugin.parsers import creatable_prefix
from bench_support.plugin.signals import StopSignals
from bench_support.plugin.state import (
    CHILD,
    COMPARED_WITH,
    FAILED_AFTER_TESTS,
    INTERRUPTED,
    PASSED,
    POWER_MODES,
    RUNNER,
    SAVE_PROBLEMS,
    SESSION,
    STATE,
    STOPS,
    build_state,
    ensure_data_dir,
)
from bench_support.plugin.storage import configure_storage, this_run_block


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args, parser) -> None:
    # Before pytest looks for conftests and test paths: an existing folder given as an option's value
    # (--data-dir /x) must not have moved the rootdir away from the project and its pytest.ini.
    upstream.realign_rootdir(early_config, args, PATH_OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the storage options must be settled before pytest-benchmark reads them.
    try:
        state = build_state(config)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    server.configure(config)
    child = CHILD in config.stash  # the fresh-process server (plugin/server.py): the session saves, not it
    histogram = getattr(config.option, "benchmark_histogram", None)
    if histogram and importlib.util.find_spec("pygal") is None:
        raise pytest.UsageError("--benchmark-histogram needs pygal: pip install 'pytest-benchmark[histogram]'")
    for prefix in histogram or ():  # pytest-benchmark writes there after the run: a bad folder is refused now
        try:
            creatable_prefix("--benchmark-histogram", str(prefix))
        except UserError as exc:
            raise pytest.UsageError(str(exc)) from None
    json_path = getattr(config.option, "benchmark_json", None)
    if json_path is not None and not child:  # written after the run: a folder or an unwritable place is refused now
        if os.path.isdir(str(json_path)):  # also --benchmark-json="" (pytest-benchmark's Path("") is ".")
            raise pytest.UsageError(f"--benchmark-json {json_path}: a folder, not a file (give a file name)")
        try:
            creatable_prefix("--benchmark-json", str(json_path))
        except UserError as exc:
            raise pytest.UsageError(str(exc)) from None
    mode, clocks = config.getoption("jetson_power_mode"), config.getoption("jetson_clocks")
    modes = config.getoption("jetson_power_modes")
    if mode and modes:
        raise pytest.UsageError("--jetson-power-mode and --jetson-power-modes: give one (a sweep restores the start)")
    if modes:
        try:
            sweep = PowerModeSweep(modes)
        except jetson_setup.SetupError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.add_cleanup(sweep.close)  # also after a failure or Ctrl-C: pytest unconfigures either way
        config.stash[POWER_MODES] = sweep
    if (mode or clocks) and not child:  # the parent applied it for the whole run
        try:
            config.add_cleanup(jetson_setup.apply(mode, clocks))
        except jetson_setup.SetupError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = state
    if state.results_dir and not child:
        try:
            config.stash[COMPARED_WITH] = configure_storage(
                config.option, state.results_dir, state.profile.name, this_run_block(config)
            )
        except UserError as exc:
            raise pytest.UsageError(str(exc)) from None
    upstream.silence_default_machine_info_comparison(config)
    if (state.results_dir or _runs_the_suites_benchmarks(config)) and not config.getoption("allow_network"):
        netguard.install()  # before the benchmark modules are even imported


def _runs_the_suites_benchmarks(config: pytest.Config) -> bool:
    """The run names the project's benchmarks/ folder (or a file in it), or falls back to it through testpaths."""
    folder = os.path.join(str(config.rootpath), "benchmarks")
    for arg in config.args:
        path = os.path.abspath(os.path.join(str(config.invocation_params.dir), str(arg).split("::")[0]))
        if path == folder or path.startswith(folder + os.sep):
            return True
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION] = session
    if CHILD in session.config.stash:
        upstream.forget_benchmarks(session.config)  # a child saves and compares nothing: its parent does
        return
    unmatched = upstream.unmatched_compare(session.config)
    if unmatched:  # pytest-benchmark would run every benchmark and then fail with a traceback
        raise pytest.UsageError(unmatched)
    upstream.make_saving_transactional(session.config, session.config.stash.setdefault(SAVE_PROBLEMS, []))


#: The fixtures that read or write the data folder: only a run using one of them makes ./data.
DATA_FIXTURES = ("image_datasets", "continual_scenario")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Benchmarks collected: the guards go up, and the RSS floor is read with their libraries imported."""
    if not any("benchmark" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    config = session.config
    stops = StopSignals()  # from here on, a finished benchmark is worth keeping
    if stops.install():
        config.stash[STOPS] = stops
    state = config.stash[STATE]
    if state.trials > 1:  # after every plugin's reordering and pytest's -k/-m: the order that runs
        config.stash[trials.ORDER] = (state.trial_seed, [item.name for item in session.items])
    if any(name in getattr(item, "fixturenames", ()) for item in session.items for name in DATA_FIXTURES):
        try:
            ensure_data_dir(state)
        except UserError as exc:
            pytest.exit(f"edge-bench: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    # What killed runs left (checkpoints in /dev/shm hold RAM), owned by processes that are gone.
    line = leftovers.reap_line(leftovers.reap(state.project_dir, ckpt_dirs=list(state.ckpt_dirs.values())))
    if line:
        sys.stderr.write(f"edge-bench: {line}\n")
    if not config.getoption("allow_network"):
        netguard.install()  # a second install is a no-op (installed at configure for the suite's own runs)
    config.stash[STATE] = dataclasses.replace(state, rss_at_start_mb=round(rss_now_mb(), 1))
    debugging = [flag for flag, dest in DEBUGGING if config.getoption(dest, None)]
    if state.isolate == "benchmark" and debugging:  # a worker's debugger and setup lines would go to its log
        sys.stderr.write(f"edge-bench: {debugging[0]}: every benchmark runs in this process, as with --isolate none\n")
        config.stash[STATE] = dataclasses.replace(config.stash[STATE], isolate="none")
    elif (
        state.isolate == "benchmark"
        and CHILD not in config.stash
        and not config.option.collectonly
        and not config.getoption("benchmark_skip", False)  # every benchmark is skipped: no process to start
    ):
        try:
            config.stash[RUNNER] = isolation.Runner(config, session.items)
        except OSError as exc:  # no temporary folder for the server's spec and log (TMPDIR missing, full, read-only)
            sys.stderr.write(
                f"edge-bench: cannot prepare the fresh-process server ({exc.strerror or exc}): every benchmark runs "
                "in this process, as with --isolate none\n"
            )
            config.stash[STATE] = dataclasses.replace(config.stash[STATE], isolate="none")  # saved as it ran


#: pytest's options whose output is the test process's own terminal: they keep every benchmark in this process.
DEBUGGING = (("--pdb", "usepdb"), ("--trace", "trace"), ("--setup-show", "setupshow"), ("--setup-only", "setuponly"),
             ("--setup-plan", "setupplan"))  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    """The fresh-process server (plugin/server.py) forks a worker per chunk the session sends, instead of running
    its items itself."""
    if CHILD not in session.config.stash:
        return None
    server.serve(session)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """An isolated benchmark runs in a fresh process (plugin/isolation.py); its reports are replayed here."""
    runner = item.config.stash.get(RUNNER, None)
    if runner is None or not runner.runs(item):
        return None
    runner.protocol(item)
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    """Outermost around saving and the summary: an interrupted run keeps what finished, and
    anything that fails after the tests (a save, pytest-benchmark's compare-fail gate) fails
    the run, also with the fast exit."""
    config = session.config
    stops = config.stash.get(STOPS, None)
    if stops is not None:
        stops.shield()  # a second signal (tox sends one, users press Ctrl-C twice) must not tear the save
    runner = config.stash.get(RUNNER, None)
    if runner is not None:
        try:
            runner.close()  # a worker still running (an interrupt) is stopped and what it finished adopted
        except Exception as exc:  # noqa: BLE001 - what finished is saved whatever happened to the server
            sys.stderr.write(f"edge-bench: stopping the fresh-process server: {type(exc).__name__}: {exc}\n")
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        config.stash[INTERRUPTED] = True
        upstream.drop_unfinished(config, config.stash.get(PASSED, set()))
        upstream.describe_interrupt_plainly(config)
    if CHILD in config.stash:
        upstream.forget_benchmarks(config)  # the server ran nothing itself; its workers handed over theirs
    else:
        trials.merge(config)  # before pytest-benchmark saves, compares or shows anything
    try:
        result = yield
    except PerformanceRegression:  # --benchmark-compare-fail: the gate users wire into CI; its table was printed
        config.stash[FAILED_AFTER_TESTS] = True
        session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED
        sys.stderr.write("edge-bench: performance has regressed (--benchmark-compare-fail): the run fails\n")
        return None
    except BaseException:
        config.stash[FAILED_AFTER_TESTS] = True
        session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED
        raise
    if config.stash.get(SAVE_PROBLEMS, None) and not session.exitstatus:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if stops is not None and stops.exit_status() is not None:
        session.exitstatus = stops.exit_status()  # 143 after SIGTERM, as a shell reports a process it ended
    return result


def _as_outcome(exc: BaseException) -> None:
    """An Unavailable becomes a skip with its reason, a UserError a one-line failure."""
    if isinstance(exc, Unavailable):
        try:  # reported at the benchmark's own location, not here
            raise pytest.skip.Exception(str(exc), _use_item_location=True) from None
        except TypeError:  # a pytest without the keyword
            pytest.skip(str(exc))
    if isinstance(exc, UserError):
        pytest.fail(str(exc), pytrace=False)


def _suite_errors_as_outcomes():
    """A wrapper for a run-test phase (fixtures' setup, the test's call) applying :func:`_as_outcome`."""

    @pytest.hookimpl(wrapper=True)
    def wrapper(item: pytest.Item):
        try:
            return (yield)
        except (Unavailable, UserError) as exc:
            error = exc
        _as_outcome(error)  # outside the except block: the message is not printed twice, as a chain

    return wrapper


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    if report.when == "call" and report.passed:  # finished: an interrupted run keeps it
        item.config.stash.setdefault(PASSED, set()).add(item.nodeid)
    stops = item.config.stash.get(STOPS, None)
    if stops is not None and stops.received is not None:
        # The KeyboardInterrupt a stop signal raised can be swallowed (Python only reports an exception raised in a
        # weakref callback or __del__); the run then stops here, at the next phase, instead of going on.
        item.session.shouldstop = f"{signal.Signals(stops.received).name} received"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_keyboard_interrupt(excinfo):
    """pytest describes where an interrupt landed; where that frame has no line number (Python 3.11 can give a
    traceback entry ``tb_lineno = None`` for a signal handled between instructions), its description raises
    TypeError and the run would end in an internal error instead of saving what finished."""
    try:
        return (yield)
    except Exception:  # noqa: BLE001 - the description is lost, the interrupt is not: the session goes on to save
        return None


pytest_runtest_setup = _suite_errors_as_outcomes()
pytest_runtest_call = _suite_errors_as_outcomes()


def pytest_unconfigure(config: pytest.Config) -> None:
    stops = config.stash.get(STOPS, None)
    if stops is not None:
        stops.uninstall()
    session = config.stash.get(SESSION, None)
    ran_benchmarks = bool(upstream.finished_benchmarks(config))
    torch_loaded = "torch" in sys.modules  # the teardown it skips is torch's: another project's run exits as usual
    if (
        session is not None
        and ran_benchmarks
        and torch_loaded
        and not config.getoption("no_fast_exit")
        and _pytest_is_main()
    ):
        atexit.register(_exit_without_teardown, int(session.exitstatus))


def _pytest_is_main() -> bool:
    """True when this process is the pytest command itself, not a program embedding it."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in ("pytest", "pytest.__main__", "py.test"):
        return True
    return os.path.basename(sys.argv[0]) in ("pytest", "py.test")


def _exit_without_teardown(status: int) -> None:
    """End the process after every atexit handler, skipping the interpreter's teardown.

    The CUDA build of torch pages shared-library code into the process while its C++
    objects are destroyed at exit. That is after every benchmark, but an outside
    reading of the process's peak RSS (``/usr/bin/time -v``) would include it and
    disagree with ``rss_peak_mb``.
    """
    atexit.unregister(_exit_without_teardown)
    upstream.run_other_exit_handlers()  # everyone else's handlers, in their usual order
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
