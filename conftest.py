# The suite's pytest plugin is the installed package's `pytest11` entry point (pyproject.toml), so the project's
# benchmarks, a user's own project and pytest-benchmark's CLI all get the same hooks. This file only guards the
# project's own benchmarks: they need torch, and a missing or mismatched one would otherwise surface as a traceback
# while they are collected. Say in one line what this board needs instead.
import os

import pytest

from bench_support.torch_check import problem

# Not in the fresh-process server (bench_support/plugin/server.py): the session checked, and the server must not
# query the GPU before it forks its workers (a child of a process that initialised CUDA cannot use it).
_torch_problem = (
    None
    if os.environ.get("EDGE_BENCH_SERVER")
    else problem(os.environ.get("BENCH_PLATFORM") or "auto", import_torchvision=False)
)


def pytest_addoption(parser, pluginmanager):
    if _torch_problem:
        raise pytest.UsageError(f"edge-bench: {_torch_problem}")
    loaded = pluginmanager.has_plugin("edge_bench") or pluginmanager.has_plugin("bench_support.plugin")
    if not loaded and not pluginmanager.is_blocked("edge_bench"):
        raise pytest.UsageError(
            "edge-bench: the suite's plugin is not installed in this environment: pip install -e . (or ./run.sh)"
        )
