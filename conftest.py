# The suite's pytest plugin lives in the importable library, so pytest-benchmark's own
# CLI (which imports this file) sees the same hooks.
pytest_plugins = ["bench_support.plugin"]
