"""Every place the plugin leans on pytest's or pytest-benchmark's internals, and nowhere else.

Each function below uses something neither project documents as API. They are kept in this one module so that a
new release breaks one file, and ``tests/test_upstream_contract.py`` checks each against the installed versions
(the supported ranges are in pyproject.toml). Each docstring names the upstream change that would remove it;
docs/architecture.md ("Upstream") collects them, ready to send.
"""

from __future__ import annotations

import atexit
import copy
import inspect
import os
import sys
import tempfile
from typing import Any, Callable, List, Optional, Sequence, Set

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import safe_dumps

from bench_support import results
from bench_support.files import write_atomic

# --- pytest-benchmark -------------------------------------------------------------------------


def benchmark_session(config: pytest.Config) -> Any:
    """pytest-benchmark's BenchmarkSession of this run, or None (plugin disabled, or before it configured).

    Upstream: a public accessor (a stash key, or ``config.pluginmanager.get_plugin("benchmarksession")``).
    """
    return getattr(config, "_benchmarksession", None)


def finished_benchmarks(config: pytest.Config) -> List[Any]:
    session = benchmark_session(config)
    return list(getattr(session, "benchmarks", None) or [])


class TransactionalStorage(FileStorage):
    """pytest-benchmark's file storage, saving through :func:`bench_support.results.save_run`.

    pytest-benchmark picks the next number and then opens that name with O_TRUNC: two runs saving at once overwrite
    each other and a crash leaves a torn file. Installed by re-classing the session's storage object (its
    constructor already ran). Upstream: ``FileStorage.save`` writing a temp file and linking it to a name it claims
    exclusively (``O_EXCL``), or a ``pytest_benchmark_storage`` hook that lets a plugin supply the storage.
    """

    problems: List[str]

    def save(self, output_json, save):
        folder = str(self.get("probe").parent)
        data = safe_dumps(output_json, ensure_ascii=True, indent=4).encode()
        try:
            path = results.save_run(folder, save, data)
        except OSError as exc:
            self.problems.append(f"the run was NOT saved to {folder}: {exc.strerror or exc}{rescue(data, save)}")
            return
        self.logger.info(f"Saved benchmark data in: {path}")


def rescue(data: bytes, save: str) -> str:
    """The run, written whole where it can still go (the temporary folder) when its folder refused it: what the
    measurements took is not lost. Returns the words that say where, or that this failed too."""
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix=f"edge-bench-unsaved-{save}-", suffix=".json")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        if path is not None and os.path.exists(path):
            os.unlink(path)  # whole or not at all, here too
        return f" (nor kept elsewhere: {exc.strerror or exc})"
    return f"; the run is kept whole in {path} (copy it into the results folder once that is fixed)"


def make_saving_transactional(config: pytest.Config, problems: List[str]) -> None:
    """Save runs (and --benchmark-json) whole or not at all; failures go to ``problems``, not lost.

    Upstream: the same exclusive, atomic write in ``BenchmarkSession.save_json`` (temp file + rename), and save
    failures reported instead of raised after the results table.
    """
    session = benchmark_session(config)
    if session is None:
        return
    if isinstance(session.storage, FileStorage):
        session.storage.__class__ = TransactionalStorage
        session.storage.problems = problems

    def save_json(output_json) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                fh.write(safe_dumps(output_json, ensure_ascii=True, indent=4).encode())

        path = str(session.json)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)  # as the configure check allowed
            write_atomic(path, write, suffix=".part")
        except OSError as exc:
            problems.append(f"--benchmark-json {path} was NOT written: {exc.strerror or exc}")

    session.save_json = save_json


def unmatched_compare(config: pytest.Config) -> Optional[str]:
    """Why ``--benchmark-compare`` cannot compare, when that is known before any benchmark runs; else None.

    An explicit run (``--benchmark-compare=0007``) that matches no saved run, or ``--benchmark-compare-fail`` with
    nothing to compare against: pytest-benchmark loads the runs at configure time but only warns, then runs every
    benchmark and ends in a ``UsageError`` traceback (the second case) or compares nothing (the first). A plain
    ``--benchmark-compare`` on a device's first run (nothing saved yet) stays the warning it is upstream.
    Upstream: raise the UsageError from ``handle_loading`` at configure time.
    """
    session = benchmark_session(config)
    if session is None or getattr(session, "compared_mapping", None):
        return None
    compare = getattr(session, "compare", None)
    where = str(getattr(session, "storage", "")) or "the storage"
    if not compare:
        failing = getattr(session, "compare_fail", None)
        return "--benchmark-compare-fail: no run to compare with (give --benchmark-compare)" if failing else None
    if compare is not True:
        return f"--benchmark-compare={compare}: no readable saved run matches it in {where} (a damaged one is skipped)"
    if getattr(session, "compare_fail", None):
        return f"--benchmark-compare-fail: no saved run to compare with in {where}"
    return None


def silence_default_machine_info_comparison(config: pytest.Config) -> None:
    """Switch off pytest-benchmark's own comparison of machine_info.

    It warns whenever the whole dict differs, which it does at every run (CPU frequency, available memory;
    upstream issue #255); the suite's hook compares only the stable facts and names them. The hook is not
    firstresult, so the default has to be switched off rather than overridden. Upstream: compare a documented
    subset, or make ``pytest_benchmark_compare_machine_info`` firstresult.
    """
    hook = config.pluginmanager.hook.pytest_benchmark_compare_machine_info
    for impl in hook.get_hookimpls():
        if getattr(impl.function, "__module__", "") == "pytest_benchmark.plugin":
            impl.function = lambda *args, **kwargs: None


def drop_unfinished(config: pytest.Config, passed: Set[str]) -> int:
    """Remove the benchmarks of an interrupted run whose test did not pass its call; returns how many.

    ``passed``: the node ids whose call phase passed. A benchmark stopped between rounds has data but fewer rounds
    than it was to take, and one without rounds makes pytest-benchmark's statistics fail, losing the whole run.
    Upstream: skip benchmarks without data when saving.
    """
    session = benchmark_session(config)
    if session is None:
        return 0
    finished = [
        b
        for b in session.benchmarks
        if getattr(getattr(b, "stats", None), "data", None) and getattr(b, "fullname", None) in passed
    ]
    dropped = len(session.benchmarks) - len(finished)
    session.benchmarks[:] = finished
    return dropped


def merge_trials(
    config: pytest.Config,
    trial_param: str,
    strip: Callable[[str], str],
    merge_infos: Callable[[List[dict], List[List[float]]], dict],
) -> int:
    """Replace the results of one benchmark's trials (``trial_param`` in its params) by one result, in place.

    The first trial's result is kept under the names ``strip`` gives (``f[a-t1of3]`` -> ``f[a]``), with every
    trial's rounds in trial order and the extra_info ``merge_infos`` builds. Returns how many results went.
    Upstream: a hook to group several items' rounds into one benchmark (what pytest-repeat users ask for).
    """
    from pytest_benchmark.stats import Stats

    session = benchmark_session(config)
    if session is None:
        return 0
    groups: dict = {}
    kept = []
    for bench in session.benchmarks:
        params = getattr(bench, "params", None) or {}
        if trial_param not in params:
            kept.append(bench)
            continue
        key = strip(bench.fullname)
        if key not in groups:
            groups[key] = []
            kept.append(key)  # where the merged result goes: where its first trial to finish was
        groups[key].append(bench)
    for key, group in groups.items():
        group.sort(key=lambda b: b.params[trial_param][0])
        first = group[0]
        rounds = [list(b.stats.data) for b in group]
        stats = Stats()
        for values in rounds:
            for value in values:
                stats.update(value)
        params = {k: v for k, v in first.params.items() if k != trial_param}
        first.name, first.fullname = strip(first.name), key
        first.param = strip(first.param or "") or None
        first.params = params or None
        first.extra_info = merge_infos([b.extra_info for b in group], rounds)
        first.stats = stats
    dropped = len(session.benchmarks) - len(kept)
    session.benchmarks[:] = [groups[b][0] if isinstance(b, str) else b for b in kept]
    return dropped


def benchmarks_as_dicts(config: pytest.Config) -> List[dict]:
    """The finished benchmarks as pytest-benchmark saves them, rounds included: what a child process sends.

    Upstream: a documented round trip (``Metadata.as_dict`` / ``from_dict``), as pytest-xdist support would need.
    """
    return [b.as_dict(include_data=True, stats=True) for b in finished_benchmarks(config) if b]


def forget_benchmarks(config: pytest.Config) -> None:
    """Empty this session's results: a child process hands them over and saves, compares and shows nothing.

    Upstream: a switch that turns a session into a worker (what ``--dist`` does for pytest-xdist's workers).
    """
    session = benchmark_session(config)
    if session is None:
        return
    session.benchmarks[:] = []
    session.save = session.autosave = session.json = session.histogram = None
    session.compare = session.compare_fail = None
    session.compared_mapping = {}


def adopt_benchmarks(config: pytest.Config, dicts: List[dict]) -> List[Any]:
    """Results a child process measured, as pytest-benchmark's own objects, appended to this session's.

    Each becomes a ``Metadata`` with the child's rounds fed through ``Stats`` as its fixture feeds them, so saving,
    comparing and the tables treat it as measured here. Upstream: ``Metadata.from_dict``.
    """
    from types import SimpleNamespace

    from pytest_benchmark.stats import Metadata, Stats

    session = benchmark_session(config)
    if session is None:
        return []
    adopted = []
    for data in dicts:
        bench = Metadata.__new__(Metadata)
        for key in ("group", "name", "fullname", "param", "params", "extra_info", "options"):
            setattr(bench, key, data.get(key))
        bench.extra_info = dict(bench.extra_info or {})
        bench.options = dict(bench.options or {})
        bench.cprofile_stats = None
        stats = data.get("stats") or {}
        bench.iterations = stats.get("iterations", 1)
        bench.stats = Stats()
        for value in stats.get("data") or []:
            bench.stats.update(value)
        bench.fixture = SimpleNamespace(has_error=False)
        if bench.stats:
            session.benchmarks.append(bench)
            adopted.append(bench)
    return adopted


def basetemp(config: pytest.Config):
    """The session's base temporary folder, made now if it is not yet (pytest's ``tmp_path_factory``).

    Upstream: ``config.tmp_path_factory`` as a public attribute (it is only reachable through the fixture).
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return tempfile.gettempdir()
    return factory.getbasetemp()


def teardown_all(session: pytest.Session) -> None:
    """Tear down every fixture still set up (a forked worker leaving after its items, or after an interrupt).

    Upstream: a public way to finish a session's setup state outside ``pytest_sessionfinish``.
    """
    setup_state = getattr(session, "_setupstate", None)
    if setup_state is not None:
        setup_state.teardown_exact(None)


def measure_plain_fixture(benchmark: BenchmarkFixture, measured: Callable[[Callable[[], Any]], Any]) -> None:
    """Run every call of a plain ``benchmark`` fixture through ``measured`` (which opens the instruments).

    pytest-benchmark insists that the ``benchmark`` funcarg is its own class, so the instance is re-classed rather
    than wrapped. Upstream: a hook around a benchmark's timed call (``pytest_benchmark_wrap_call``).
    """

    class MeasuredBenchmark(type(benchmark)):
        def __call__(self, function_to_benchmark, *args, **kwargs):
            return measured(lambda: BenchmarkFixture.__call__(self, function_to_benchmark, *args, **kwargs))

        def pedantic(self, target, *args, **kwargs):
            return measured(lambda: BenchmarkFixture.pedantic(self, target, *args, **kwargs))

    benchmark.__class__ = MeasuredBenchmark


def round_times(benchmark: BenchmarkFixture) -> List[float]:
    """The seconds of each measured round so far (pedantic's, then :func:`extra_round`'s).

    Upstream: a public view of the rounds of a benchmark in progress.
    """
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return list(getattr(stats, "data", None) or [])


def extra_round(benchmark: BenchmarkFixture, target: Callable, setup=None, teardown=None) -> None:
    """One more measured round after ``pedantic``'s, timed and recorded exactly as pedantic times its own.

    pedantic takes a fixed round count, so a benchmark that keeps measuring until its interval is narrow enough
    adds rounds here (before any statistic is read: they are computed once, from all the rounds). Upstream: a
    stopping rule for pedantic (``rounds`` as a callable deciding from the rounds so far).
    """
    args, kwargs = (), {}
    if setup is not None:
        prepared = setup()
        if prepared:
            args, kwargs = prepared
    duration, _ = benchmark._make_runner(target, args, kwargs)(None)
    benchmark.stats.stats.update(duration)
    if teardown is not None:
        teardown(*args, **kwargs)


# --- CPython --------------------------------------------------------------------------------------


def run_other_exit_handlers() -> None:
    """Every registered atexit handler, in the usual order, before the process leaves with ``os._exit``.

    Upstream (CPython): none; ``atexit._run_exitfuncs`` is the only way to run them early.
    """
    atexit._run_exitfuncs()


# --- pytest -------------------------------------------------------------------------------------


def _determine_setup(config: pytest.Config, file_or_dir: List[str], rootdir: Optional[str]):
    """pytest's own rootdir/inifile choice for these free arguments: (rootpath, inipath, inicfg)."""
    from _pytest.config.findpaths import determine_setup

    ns = config.known_args_namespace
    known = inspect.signature(determine_setup).parameters
    kwargs = {"inifile": None, "args": file_or_dir, "rootdir_cmd_arg": rootdir}
    if "invocation_dir" in known:
        kwargs["invocation_dir"] = config.invocation_params.dir
    if "override_ini" in known:
        kwargs["override_ini"] = getattr(ns, "override_ini", None)
    found = determine_setup(**kwargs)
    return found[0], found[1], dict(found[2])


def realign_rootdir(config: pytest.Config, args: List[str], value_options: Sequence[str]) -> Optional[str]:
    """Choose pytest's rootdir and ini file again, now that the suite's options are known.

    pytest chooses them before any installed plugin loads, from the arguments it cannot tell from paths: in
    ``--data-dir /some/existing/dir`` the folder counts as a test path, the rootdir moves there, and the project's
    pytest.ini (testpaths, addopts) is never read. Called from ``pytest_load_initial_conftests``, before pytest
    looks for conftests and decides the test paths: when the choice made without option values differs, it is
    applied (rootdir, ini file and its values, its addopts and pythonpath, the conftest cut-off). Only when one of
    ``value_options`` (the suite's options that take a path) is written with its value apart: any other run, this
    project's or another's, is left as pytest set it. An explicit ``-c`` is never second-guessed, nor an explicit
    ``--rootdir``. Returns a line saying what moved, or None.

    Upstream: pytest could choose the rootdir after plugins have registered their options (or let
    ``parser.addoption`` declare a path-valued option early), so that option values never count as test paths.
    """
    ns = config.known_args_namespace
    if getattr(ns, "inifilename", None) or not any(arg in value_options for arg in args):
        return None
    rootpath, inipath, inicfg = _determine_setup(config, list(ns.file_or_dir), getattr(ns, "rootdir", None))
    if rootpath == config.rootpath and inipath == config.inipath:
        return None
    moved_from = config.rootpath
    old_cut = str(config.inipath.parent if config.inipath is not None else config.rootpath)
    config._rootpath, config._inipath = rootpath, inipath
    if hasattr(config, "_inicfg"):
        config._inicfg = inicfg
    else:  # pytest < 9
        config.inicfg = inicfg
    config._inicache.clear()
    config._parser.extra_info["rootdir"] = str(rootpath)
    config._parser.extra_info["inifile"] = str(inipath)
    args[:] = [*config.getini("addopts"), *args]
    config.known_args_namespace = config._parser.parse_known_args(args, namespace=copy.copy(config.option))
    if config.known_args_namespace.confcutdir in (None, old_cut):
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)
    for path in reversed(config.getini("pythonpath")):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return f"rootdir {rootpath} (pytest took an option's value for a test path and first chose {moved_from})"


def describe_interrupt_plainly(config: pytest.Config) -> None:
    """Give pytest's terminal a plain description of an interrupt where its own could not be made.

    pytest describes where an interrupt landed (``pytest_keyboard_interrupt``) and, at the session's end, asserts
    that it did. Where the description raised (a traceback entry without a line number: a signal handled between
    instructions on Python 3.11; the plugin keeps the run going, session.py), that assert ended an interrupted run
    in a traceback, after its results were saved (seen under load, in the signal matrix). The stand-in says
    ``KeyboardInterrupt``, as pytest would. Upstream: ``TerminalReporter._report_keyboardinterrupt`` assumes the
    description succeeded.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or getattr(reporter, "_keyboardinterrupt_memo", "unknown") is not None:
        return
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        reporter._keyboardinterrupt_memo = pytest.ExceptionInfo.from_current().getrepr(style="short")
