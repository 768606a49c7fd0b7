"""The house rules of the code base, checked: module size, who imports whom, one vocabulary."""

import ast
import os
import pathlib

import pytest

from bench_support import metrics

REPO = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = REPO / "bench_support"
MAX_LINES = 300


def _modules(root):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path):
    """Every module name an import statement of ``path`` names (absolute form)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_no_library_module_is_longer_than_a_newcomer_reads_at_once():
    lengths = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in _modules(LIBRARY)}
    assert not {name: n for name, n in lengths.items() if n > MAX_LINES}


@pytest.mark.parametrize("root", ["bench_support", "benchmarks"])
def test_the_plugin_is_imported_by_nothing_outside_it(root):
    offenders = [
        str(p.relative_to(REPO))
        for p in _modules(REPO / root)
        if "plugin" not in p.relative_to(REPO).parts[:2]
        and any(name == "bench_support.plugin" or name.startswith("bench_support.plugin.") for name in _imports(p))
    ]
    assert not offenders


def test_instruments_import_nothing_above_them():
    above = ("bench_support.workloads", "bench_support.continual", "bench_support.report", "bench_support.plugin")
    offenders = {
        str(p.relative_to(REPO)): [n for n in _imports(p) if n.startswith(above)] for p in _modules(LIBRARY / "measure")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_benchmarks_read_the_state_not_the_command_line():
    for path in _modules(REPO / "benchmarks"):
        text = path.read_text()
        assert "getoption" not in text, path
        assert 'partition("=")' not in text, path
        assert "pytest_generate_tests" not in text, f"{path}: declare GRID; the plugin parametrises"


def test_the_readme_metric_table_is_the_vocabulary():
    readme = (REPO / "docs" / "metrics.md").read_text()
    assert metrics.BEGIN in readme and metrics.END in readme
    assert metrics.readme_with_table(readme) == readme, "run: python -m bench_support.metrics --update docs/metrics.md"


def test_the_readme_table_follows_a_rename_in_the_vocabulary(monkeypatch):
    old = metrics.METRICS["total_ms"]
    renamed = dict(metrics.METRICS)
    del renamed["total_ms"]
    renamed["write_total_ms"] = metrics.Metric("write_total_ms", old.unit, old.family, old.better, old.meaning)
    monkeypatch.setattr(metrics, "METRICS", renamed)
    table = metrics.readme_with_table((REPO / "docs" / "metrics.md").read_text())
    assert "| `write_total_ms` |" in table and "| `total_ms` |" not in table


def test_one_helper_per_job():
    """One MB constant, one counter-wrap function, one sysfs reader, one atomic JSON writer."""
    patterns = {"MB = float(1 << 20)": 1, "def counter_delta(": 1, "def read_text(": 1, "def write_json_atomic(": 1}
    found = {pattern: [] for pattern in patterns}
    for path in _modules(LIBRARY):
        text = path.read_text()
        for pattern in patterns:
            if pattern in text:
                found[pattern].append(str(path.relative_to(REPO)))
    assert {k: len(v) for k, v in found.items()} == patterns, found
    assert not any(os.path.basename(p) == "cl_setup.py" for p in map(str, _modules(LIBRARY)))
