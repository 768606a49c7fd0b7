"""The house rules of the code base, checked: imports go one way, each job in its room, one vocabulary."""

import ast
import os
import pathlib
import re

import pytest

from bench_support import metrics

REPO = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = REPO / "bench_support"
POWER = LIBRARY / "measure" / "power"
BOARD = LIBRARY / "board"

#: Imports go one way: a module imports its own layer or a lower one. The longest matching prefix names a
#: module's layer (measure.power is measure); a new top-level module or package needs a line here.
LAYERS = {
    # the vocabularies and helpers every layer uses
    "bench_support.errors": 0,
    "bench_support.files": 0,
    "bench_support.profiles": 0,
    "bench_support.metrics": 0,
    "bench_support.results": 0,
    "bench_support.netguard": 0,
    "bench_support.leftovers": 0,
    "bench_support.intervals": 0,
    "bench_support.trials": 0,
    "bench_support.ranks": 0,
    # the instruments, measure.power included: they read, never set
    "bench_support.measure": 1,
    # what changes the board (power modes, clocks): may read through measure
    "bench_support.board": 2,
    # what is timed
    "bench_support.workloads": 3,
    "bench_support.continual": 4,
    # offline, over saved runs
    "bench_support.report": 5,
    # command lines beside the library (python -m ...), imported by none of it
    "bench_support.torch_check": 6,
    "bench_support.overhead": 6,
    # the pytest face, on top of everything
    "bench_support.plugin": 7,
}

#: The report reads saved runs offline, where torch need not be installed: besides the layers, it imports none of these.
REPORT_NEVER_IMPORTS = (
    "bench_support.workloads",
    "bench_support.continual",
    "bench_support.board",
    "torch",
    "torchvision",
)

#: How code reads a power sensor, as the power package does it. Only bench_support/measure/power may.
SENSOR_READS = {
    "RAPL energy counter file": r"energy_uj",
    "RAPL zones": r"intel-rapl",
    "powercap sysfs": r"/sys/class/powercap",
    "INA3221 driver sysfs": r"/sys/bus/i2c/drivers/ina3221",
    "hwmon power/voltage/current channel file": r"\b(?:power|in|curr)\{\w+\}_input",
    "NVML power reading": r"\bnvmlDeviceGetPowerUsage\b",
    "NVML energy counter": r"\bnvmlDeviceGetTotalEnergyConsumption\b",
    "pynvml import": r"^\s*(?:import|from)\s+pynvml\b",
    "the tegrastats command": r"[\"']tegrastats[\"']",
    "jtop's power readings": r"\.power\s*(?:\[|\.get\()",
}

#: How code changes the board. Nothing under bench_support/measure may; bench_support/board does.
BOARD_CHANGES = {
    "jtop setter of the power mode or jetson_clocks": r"\.(?:nvpmodel|jetson_clocks)\s*=(?!=)",
    "jtop's forced power-mode switch": r"\bset_nvpmodel_(?:id|name)\b",
    "the nvpmodel or jetson_clocks command run": r"[(=,]\s*\[\s*[\"'](?:[\w/]*/)?(?:nvpmodel|jetson_clocks)[\"']",
}
#: A module that opens a file for writing and names a clock, governor or power-mode file writes that file.
WRITES = r"\bopen\([^\n]*[\"'][wa]b?\+?[\"']\s*\)|\.write_(?:text|bytes)\("
CONTROL_FILES = r"scaling_governor|scaling_(?:max|min)_freq|scaling_setspeed|/cpufreq|/devfreq|nvpmodel"


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


def _name(path):
    """The dotted module name of ``path`` (a package's ``__init__`` is the package)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(name):
    """The rank of the layer ``name`` belongs to, by its longest prefix in LAYERS; None if it has none."""
    prefixes = [p for p in LAYERS if name == p or name.startswith(p + ".")]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def _under(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _rel(path):
    return str(path.relative_to(REPO))


def _library_modules():
    """Every module of the library but the root package's ``__init__`` (a docstring)."""
    return [p for p in _modules(LIBRARY) if _name(p) != "bench_support"]


def _found(patterns, path):
    text = path.read_text()
    return sorted(what for what, pattern in patterns.items() if re.search(pattern, text, re.MULTILINE))


def test_every_library_module_has_a_layer():
    assert not [_rel(p) for p in _library_modules() if _layer(_name(p)) is None], "add it to LAYERS"


def test_imports_go_one_way():
    """Its own layer or a lower one: measure never imports the board or workloads, workloads never the report,
    nothing the plugin. (``from bench_support import x`` is checked as ``bench_support.x``.)"""
    offenders = {}
    for path in _library_modules():
        rank = _layer(_name(path))
        names = [n for n in _imports(path) if n.startswith("bench_support.")]
        upward = sorted({n for n in names if _layer(n) is None or _layer(n) > rank})
        if upward:
            offenders[_rel(path)] = upward
    assert not offenders


def test_the_report_imports_no_workload_and_no_torch():
    offenders = {
        _rel(p): [n for n in _imports(p) if _under(n, REPORT_NEVER_IMPORTS)] for p in _modules(LIBRARY / "report")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_power_package_reads_a_power_sensor():
    """The tests' fakes are outside the library and the benchmarks, and do not count."""
    outside = [p for p in _modules(LIBRARY) + _modules(REPO / "benchmarks") if POWER not in p.parents]
    offenders = {_rel(p): _found(SENSOR_READS, p) for p in outside}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_sensor_markers_are_the_power_packages_own():
    """Each marker names a read the power package makes: a marker that finds nothing there guards nothing."""
    used = set().union(*(_found(SENSOR_READS, p) for p in _modules(POWER)))
    assert used == set(SENSOR_READS)


def test_no_instrument_changes_the_board():
    offenders = {}
    for path in _modules(LIBRARY / "measure"):
        found = _found(BOARD_CHANGES, path)
        text = path.read_text()
        if re.search(WRITES, text) and re.search(CONTROL_FILES, text):
            found.append("writes a clock, governor or power-mode file")
        if found:
            offenders[_rel(path)] = found
    assert not offenders


def test_the_board_markers_find_the_boards_own_changes():
    """Every module of the board package that changes the board is caught by a marker."""
    changing = [p for p in _modules(BOARD) if p.name != "__init__.py"]
    assert changing and all(_found(BOARD_CHANGES, p) for p in changing), {
        _rel(p): _found(BOARD_CHANGES, p) for p in changing
    }


@pytest.mark.parametrize("root", ["bench_support", "benchmarks"])
def test_the_plugin_is_imported_by_nothing_outside_it(root):
    offenders = [
        str(p.relative_to(REPO))
        for p in _modules(REPO / root)
        if "plugin" not in p.relative_to(REPO).parts[:2]
        and any(name == "bench_support.plugin" or name.startswith("bench_support.plugin.") for name in _imports(p))
    ]
    assert not offenders


def test_instruments_import_neither_the_board_nor_anything_above_them():
    above = (
        "bench_support.board",
        "bench_support.workloads",
        "bench_support.continual",
        "bench_support.report",
        "bench_support.plugin",
    )
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
