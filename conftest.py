# The suite's pytest plugin lives in the importable library, so pytest-benchmark's own
# CLI (which imports this file) sees the same hooks.
#
# A missing or mismatched torch would otherwise surface as a traceback while the plugin
# loads: check first, and say in one line what this board needs.
import os

import pytest

from bench_support.torch_check import problem

_torch_problem = problem(os.environ.get("BENCH_PLATFORM") or "auto", import_torchvision=False)

if _torch_problem:
    # Raised while this file registers, before the command line is parsed: the suite's options
    # (which need torch to register) would otherwise be reported as unknown first.
    def pytest_addoption(parser):
        raise pytest.UsageError(f"edge-bench: {_torch_problem}")

else:
    pytest_plugins = ["bench_support.plugin"]
