"""The command line of the report; ``python -m bench_support.report --help``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from bench_support import report as package
from bench_support import results
from bench_support.report.baseline import run_baseline
from bench_support.report.csvout import write_csv
from bench_support.report.gate import Rule, check_rule, gate
from bench_support.report.html import write_html
from bench_support.report.plots import write_plots
from bench_support.report.runs import Run, by_device, load_run_file, load_runs
from bench_support.report.tables import compare_devices, compare_history, fmt_number
from bench_support.report.timelines import write_timelines


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Tables, report.csv and plots of the runs under RESULTS_DIR; with ``--fail-on``, the gate.

    Returns 0; 1 when the gate failed; 3 when it judged nothing; 4 when the report could not be written (one line
    on stderr: a read-only folder, a full disk); 2 on a usage error (one line on stderr, before the report): a rule
    the gate refuses (``gate.check_rule``), a ``--baseline`` that is not a readable, undamaged run with benchmarks,
    a ``--device`` without saved runs, an empty value, a results folder that is missing, or — with ``--fail-on`` —
    one that holds no run.
    """
    for stream in (sys.stdout, sys.stderr):  # a path of undecodable bytes is printed escaped, never a traceback
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = argparse.ArgumentParser(
        prog="python -m bench_support.report", description=(package.__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "results_dir",
        nargs="?",
        default="results",
        help="the saved runs: a --save-results folder (one sub-folder per device), pytest-benchmark's own storage "
        "such as .benchmarks, or one folder of run files (default: results); report.csv, report.html and plots/ "
        "are written there",
    )
    parser.add_argument("--device", help="the device whose latest run the gate checks (default: every device)")
    parser.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="METRIC:THRESHOLD",
        help="the regression gate: fail (exit 1) when METRIC of the latest run got worse than its baseline by more "
        "than THRESHOLD, e.g. median:10%% or samples_per_s:-5%%; repeatable (./run.sh: BENCH_FAIL_ON=a,b)",
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="saved run to compare against (default: the device's last earlier run that ran alike)",
    )
    parser.add_argument("--no-plots", action="store_true", help="tables, CSV and HTML only: no PNG plots")
    parser.add_argument(
        "--allow-unjudged",
        action="store_true",
        help="exit 0 when the gate could judge none of its checks (default: exit 3, so a gate that judged nothing "
        "never passes silently)",
    )
    args = parser.parse_args(argv)
    try:
        rules = [Rule.parse(text) for text in args.fail_on]
        for rule in rules:
            check_rule(rule)
    except ValueError as exc:
        return _usage(str(exc))
    # An unset shell variable ("$RESULTS", --baseline=) is never taken as "the default" in silence.
    for name, shown in (("results_dir", "RESULTS_DIR"), ("baseline", "--baseline"), ("device", "--device")):
        if getattr(args, name) == "":
            return _usage(f"{shown} is empty; give a value or leave it out")
    baseline = None
    if args.baseline is not None:
        baseline, problem = load_run_file(args.baseline)
        if baseline is not None and not baseline.benchmarks():
            problem = "no benchmarks in it"
        elif baseline is not None and baseline.problems:
            # Named on purpose as the yardstick: a damaged figure in it is refused, not quietly left unjudged.
            problem = baseline.problems[0][len(baseline.path) + 2 :].removesuffix("; shown as unavailable")
        if problem:
            return _usage(f"--baseline {args.baseline}: {problem}")
    if not os.path.isdir(args.results_dir):  # a mistyped path is not "no saved runs yet"
        return _usage(f"{args.results_dir}: no such directory" + ("; the gate needs saved runs" if rules else ""))

    runs, problems = load_runs(args.results_dir)
    devices = by_device(runs)
    if args.device and args.device not in devices:
        known = ", ".join(sorted(devices)) or "none"
        return _usage(f"--device {args.device}: no saved run of that device in {args.results_dir} (devices: {known})")
    if rules and not runs:
        skipped = [problem for problem in problems if ": skipped," in problem]
        detail = f" ({len(skipped)} file(s) skipped, the first: {skipped[0]})" if skipped else ""
        return _usage(f"{args.results_dir}: no saved runs to gate{detail}")
    for problem in problems:
        print(f"report: {problem}")
    for device_runs in devices.values():
        print("\n".join(compare_history(device_runs)))
    latest = {device: device_runs[-1] for device, device_runs in devices.items()}
    side = compare_devices(latest) if len(latest) >= 2 else []
    if side:
        print("\n".join(side))
    unwritten = ""
    if runs:
        try:
            write_outputs(args, runs, devices, latest, side)
        except OSError as exc:  # a read-only folder, a full disk, report.csv a directory: one line, and the run fails
            unwritten = f"the report was NOT written into {args.results_dir}: {exc.strerror or exc}"
            if exc.filename:
                unwritten += f" ({exc.filename})"
            print(f"report: {unwritten}", file=sys.stderr)
    if not rules:
        return CANNOT_WRITE if unwritten else 0
    chosen = {d: r for d, r in devices.items() if not args.device or d == args.device}
    failed, judged = run_gate(chosen, rules, baseline)
    if failed:
        return 1
    if unwritten:
        return CANNOT_WRITE
    if not judged and not args.allow_unjudged:
        print("gate: no check could be judged (the lines above say why): exit 3; --allow-unjudged accepts that")
        return UNJUDGED
    return 0


#: The exit status of a gate that could judge none of its checks.
UNJUDGED = 3
#: The exit status when report.csv, the plots or report.html could not be written (the gate's failure comes first).
CANNOT_WRITE = 4


def write_outputs(args, runs: List[Run], devices: Dict[str, List[Run]], latest: Dict[str, Run], side) -> None:
    """report.csv, the plots, the timelines and report.html, each written whole or not at all."""
    csv_path = results.report_csv(args.results_dir)
    count = write_csv(runs, csv_path)
    print(f"report: {count} rows in {csv_path}")
    plots: List[str] = []
    timelines: Dict[str, List[str]] = {}
    if not args.no_plots:
        plots = write_plots(latest, results.plots_dir(args.results_dir), history=devices)
        for path in plots:
            print(f"report: plot {path}")
        for device, run in latest.items():
            folder = results.run_drawings_dir(args.results_dir, device, run.label)
            timelines[device] = write_timelines(run, folder)
            if timelines[device]:
                print(f"report: {len(timelines[device])} timeline(s) of {device} {run.label} in {folder}")
    page = write_html(devices, results.report_html(args.results_dir), plots, timelines, side)
    print(f"report: findings, flags, plots and timelines in one page: {page}")


def _usage(message: str) -> int:
    print(f"report: {message}", file=sys.stderr)
    return 2


def run_gate(devices: Dict[str, List[Run]], rules: Sequence[Rule], baseline: Optional[Run]) -> Tuple[bool, int]:
    """Print the gate's verdicts on each device's latest run; (whether one failed, how many checks were judged).

    The baseline is ``baseline`` or the device's last earlier run that ran alike (:mod:`.baseline`, the rule the
    terminal and the tables use too); the history band comes from the device's earlier runs of the latest run's
    profile (another profile's sizes differ).
    A rule no benchmark of both runs carries gets a line saying it was not judged.
    """
    counts = {"FAIL": 0, "ok": 0, "skip": 0}
    for device, device_runs in sorted(devices.items()):
        last = device_runs[-1]
        base = baseline or run_baseline(device_runs[:-1], last.data)
        if base is None:
            why = "only one saved run" if len(device_runs) < 2 else "no earlier run ran alike"
            print(f"gate: {device}: {why}, nothing to compare with")
            continue
        history = [run for run in device_runs[:-1] if run.profile == last.profile]
        verdicts = gate(base, last, rules, history=history)
        for verdict in verdicts:
            status = "FAIL" if verdict.failed else "ok" if verdict.judged else "skip"
            counts[status] += 1
            print(
                f"gate {status}: {device} {verdict.benchmark} {verdict.metric} {fmt_number(verdict.old)} → "
                f"{fmt_number(verdict.new)} ({verdict.note}; {verdict.test})"
            )
        for rule in rules:
            if not any(v.metric == rule.metric for v in verdicts):
                counts["skip"] += 1
                print(
                    f"gate skip: {device} {rule}: no benchmark has {rule.metric} in both {base.label} and "
                    f"{last.label}; not judged"
                )
    print(f"gate: {counts['FAIL']} failed, {counts['ok']} passed, {counts['skip']} not judged")
    return counts["FAIL"] > 0, counts["FAIL"] + counts["ok"]


if __name__ == "__main__":
    sys.exit(main())
