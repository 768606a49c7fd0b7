"""Adding a benchmark module touches that module only (and the vocabulary and docs, for new figures).

In a copy of the project, a new module is dropped into benchmarks/ and the tests that enumerate the benchmark
modules run there, as they are: they must pass without any list being edited.
"""

import os
import shutil

from conftest import REPO, run_pytest

#: What the copy holds: the library, the benchmarks, the tests and what pytest reads at the top.
FOLDERS = ("bench_support", "benchmarks", "tests", "docs")
TOP_FILES = ("conftest.py", "pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
SKIP = shutil.ignore_patterns(".tox", ".git", "data", "results", "__pycache__", ".pytest_cache", "*.egg-info")

NEW_MODULE = '''\
"""A new area, as a user adds one: a grid per profile, one benchmark with the plain fixture."""

import pytest

pytestmark = pytest.mark.benchmark(group="zz_new")

GRID = {"smoke": {"n": [1000]}, "quick": {"n": [1000, 2000]}, "full": {"n": [1000, 2000, 4000]}}


def test_zz_sum(benchmark, n):
    assert benchmark(sum, range(n)) == n * (n - 1) // 2
'''

#: The tests that enumerate benchmarks/ (they glob it): the keys test narrowed to the new module, and the rest whole.
ENUMERATING = (
    "tests/test_suite_cli.py::test_every_benchmark_module_runs_saves_the_vocabularys_figures_and_opens_no_ip_socket",
    "tests/test_architecture.py",
    "tests/test_metrics_vocabulary.py",
)


def _copy_of_the_project(root):
    for folder in FOLDERS:
        shutil.copytree(os.path.join(REPO, folder), root / folder, ignore=SKIP)
    for name in TOP_FILES:
        if os.path.exists(os.path.join(REPO, name)):
            shutil.copy2(os.path.join(REPO, name), root / name)


def test_a_new_benchmark_module_passes_the_tests_that_enumerate_benchmarks_unchanged(tmp_path):
    copy = tmp_path / "project"
    _copy_of_the_project(copy)
    (copy / "benchmarks" / "test_zz_new.py").write_text(NEW_MODULE)
    pythonpath = os.pathsep.join(p for p in (str(copy), os.environ.get("PYTHONPATH")) if p)
    result = run_pytest(
        *ENUMERATING, "-q", "-rA", cwd=str(copy),
        env={"PYTHONPATH": pythonpath, "BENCH_TEST_MODULES": "test_zz_new.py"},
    )  # fmt: skip
    output = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    # Run, not skipped (where strace cannot watch, it skips after its figures were checked, and says so).
    assert f"PASSED {ENUMERATING[0]}" in result.stdout or "the figures were checked;" in result.stdout, output
