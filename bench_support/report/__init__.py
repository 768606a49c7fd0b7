"""Compare saved runs and devices on every metric: tables, CSV, plots, a regression gate.

    python -m bench_support.report [RESULTS_DIR] [--device ID] [--no-plots]
                                   [--fail-on METRIC:THRESHOLD ...] [--baseline FILE]

Reads every saved run of every device under RESULTS_DIR (default ``results``) and
prints, per benchmark group, (a) each device's latest run against its previous one
and (b) the devices side by side on their latest runs — timing *and* the group's key
figures from the vocabulary (``bench_support.metrics``) — naming the machine facts that
differ between compared runs. Writes ``report.csv`` (one row per benchmark per run) and
PNG plots under ``plots/`` (where ``bench_support.results`` says). ``--fail-on`` runs
the regression gate (``gate.py`` explains its tests) and exits 1 when it fails.

Modules: ``runs`` (loading), ``sanitise`` (a damaged figure shown as unavailable), ``validity``
(noisy / invalid flags), ``tables``, ``csvout``, ``gate``, ``plots``, ``__main__`` (the command
line), ``summary`` (the fastest loader of a session).
"""

from __future__ import annotations

from typing import Optional, Sequence

from bench_support.report.csvout import write_csv
from bench_support.report.gate import Rule, gate, mann_whitney_p
from bench_support.report.plots import write_plots
from bench_support.report.runs import Run, load_runs
from bench_support.report.tables import compare_devices, compare_history, compare_runs
from bench_support.report.validity import validity

__all__ = [
    "Run",
    "Rule",
    "compare_devices",
    "compare_history",
    "compare_runs",
    "gate",
    "load_runs",
    "main",
    "mann_whitney_p",
    "validity",
    "write_csv",
    "write_plots",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (``bench_support.report.__main__.main``), imported when called so that
    ``python -m bench_support.report`` does not find its ``__main__`` already imported."""
    from bench_support.report.__main__ import main as command_line

    return command_line(argv)
