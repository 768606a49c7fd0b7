"""The contract of bench_support/plugin/upstream.py with the installed pytest and pytest-benchmark.

Each workaround there leans on something neither project documents; these tests check each such thing on the
versions installed, so that an upgrade fails here, by name, instead of silently in a benchmark run. The end-to-end
behaviour (transactional saves, compare, interrupted runs, option forms) is tested elsewhere; this is the list.
"""

import atexit
import inspect
import re
from importlib.metadata import version

import pytest
import pytest_benchmark.plugin
from _pytest.config import Config
from _pytest.config.findpaths import determine_setup
from pytest_benchmark.fixture import BenchmarkFixture
from pytest_benchmark.session import BenchmarkSession
from pytest_benchmark.storage.file import FileStorage

from bench_support.plugin import upstream
from tests.conftest import REPO


def _range(requirement: str):
    """(lower, upper) of 'name>=A,<B' as tuples of ints."""
    low = re.search(r">=([\d.]+)", requirement)
    high = re.search(r"<([\d.]+)", requirement)
    as_tuple = lambda text: tuple(int(x) for x in text.split("."))  # noqa: E731
    return as_tuple(low.group(1)), as_tuple(high.group(1)) if high else None


def _installed(name: str):
    return tuple(int(x) for x in re.findall(r"\d+", version(name))[:3])


def test_the_installed_pytest_benchmark_is_in_the_supported_range():
    text = open(f"{REPO}/pyproject.toml").read()
    requirement = re.search(r'"pytest-benchmark([^"]*)"', text).group(1)
    low, high = _range(requirement)
    assert low <= _installed("pytest-benchmark")[: len(low)]
    assert high is None or _installed("pytest-benchmark")[: len(high)] < high


def test_the_benchmark_session_lives_on_the_config():
    # benchmark_session(): pytest-benchmark keeps its session as config._benchmarksession.
    assert "config._benchmarksession = " in inspect.getsource(pytest_benchmark.plugin.pytest_configure)
    init = inspect.getsource(BenchmarkSession.__init__)
    for attribute in ("self.storage", "self.benchmarks", "self.json"):
        assert attribute in init, attribute
    assert callable(getattr(BenchmarkSession, "save_json", None))
    # save_json is looked up on the instance when the run is saved (so an instance attribute replaces it).
    assert "self.save_json(" in inspect.getsource(BenchmarkSession)


def test_file_storage_save_and_probe():
    # TransactionalStorage.save overrides save(output_json, save) and finds the folder through get("probe").
    assert list(inspect.signature(FileStorage.save).parameters) == ["self", "output_json", "save"]
    assert "def get(" in inspect.getsource(FileStorage)
    assert issubclass(upstream.TransactionalStorage, FileStorage)


def test_the_default_machine_info_comparison_is_a_plain_hookimpl():
    assert callable(pytest_benchmark.plugin.pytest_benchmark_compare_machine_info)
    from pytest_benchmark import hookspec

    # Not firstresult: the default runs beside the suite's, so it has to be switched off, not overridden.
    marker = getattr(hookspec.pytest_benchmark_compare_machine_info, "pytest_spec", {})
    assert not marker.get("firstresult")


def test_a_benchmark_fixture_can_be_reclassed():
    assert callable(BenchmarkFixture.__call__) and callable(BenchmarkFixture.pedantic)
    source = inspect.getsource(BenchmarkFixture)
    assert "stats" in source and "self.fullname = node.nodeid" in source  # what drop_unfinished reads


def test_extra_rounds_are_timed_and_recorded_as_pedantic_does():
    # extra_round: pedantic times a round with _make_runner(...)(None) -> (duration, result), then stats.update.
    pedantic = inspect.getsource(BenchmarkFixture._raw_pedantic)
    assert "self._make_runner(target, args, kwargs)" in pedantic and "stats.update(duration)" in pedantic
    assert "def _make_runner(self, function_to_benchmark, args, kwargs)" in inspect.getsource(BenchmarkFixture)
    from pytest_benchmark.stats import Stats

    stats = Stats()
    stats.update(0.5)
    assert stats.data == [0.5]  # round_times reads .data; statistics are computed later, from all of it


def test_a_benchmarks_saved_figures_come_from_attributes_merge_trials_rewrites():
    # merge_trials: the session keeps Metadata objects whose as_dict reads name, fullname, param, params, extra_info
    # and stats (a Stats built from data): rewriting those rewrites what is saved, compared and shown.
    from pytest_benchmark.stats import Metadata

    as_dict = inspect.getsource(Metadata.as_dict)
    for name in ("self.name", "self.fullname", "self.params", "self.param", "self.extra_info", "self.stats"):
        assert name in as_dict, name
    assert "add_stats=bs.benchmarks.append" in inspect.getsource(pytest_benchmark.plugin.benchmark)


def test_the_runs_to_compare_are_loaded_at_configure_time():
    # unmatched_compare: pytest-benchmark loads the runs to compare (handle_loading) while it configures, and keeps
    # compare, compare_fail and compared_mapping on its session; the check reads them at sessionstart.
    assert "bs.handle_loading()" in inspect.getsource(pytest_benchmark.plugin.pytest_configure)
    init, loading = inspect.getsource(BenchmarkSession.__init__), inspect.getsource(BenchmarkSession.handle_loading)
    assert "self.compare =" in init and "self.compare_fail =" in init
    assert "self.compared_mapping = compared_mapping" in loading


def test_atexit_can_run_the_handlers_early():
    assert callable(atexit._run_exitfuncs)


def test_pytest_rootdir_internals():
    # realign_rootdir: determine_setup's keywords, and the Config attributes it resets.
    params = inspect.signature(determine_setup).parameters
    assert {"inifile", "args", "rootdir_cmd_arg"} <= set(params)
    source = inspect.getsource(Config)
    for name in ("self._rootpath", "self._inipath", "self._inicache", "known_args_namespace", "extra_info"):
        assert name in source, name
    assert "_inicfg" in source or "self.inicfg" in source
    # The hook it runs in comes after the entry points load and before conftests are looked for.
    parse = inspect.getsource(getattr(Config, "_preparse", Config.parse))  # pytest < 9: _preparse
    assert parse.index('load_setuptools_entrypoints("pytest11")') < parse.index("pytest_load_initial_conftests")


@pytest.mark.parametrize(
    "name",
    [
        "benchmark_session",
        "make_saving_transactional",
        "realign_rootdir",
        "extra_round",
        "round_times",
        "merge_trials",
        "unmatched_compare",
    ],
)
def test_each_workaround_names_the_upstream_change_that_ends_it(name):
    assert "Upstream" in inspect.getdoc(getattr(upstream, name))
