"""The command line of the report; ``python -m bench_support.report --help``."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from bench_support import report as package
from bench_support import results
from bench_support.report.csvout import write_csv
from bench_support.report.gate import Rule, gate
from bench_support.report.plots import write_plots
from bench_support.report.runs import by_device, load_run_file, load_runs
from bench_support.report.tables import compare_devices, compare_runs, fmt_number


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Tables, report.csv and plots of the runs under RESULTS_DIR; with ``--fail-on``, the gate.

    Returns 0, 1 when the gate failed, 2 on a usage error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench_support.report", description=(package.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("results_dir", nargs="?", default="results")
    parser.add_argument("--device", help="the device whose latest run the gate checks (default: every device)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC:THRESHOLD")
    parser.add_argument("--baseline", metavar="FILE", help="saved run to compare against (default: the previous)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        rules = [Rule.parse(text) for text in args.fail_on]
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2

    runs, problems = load_runs(args.results_dir)
    for problem in problems:
        print(f"report: {problem}")
    devices = by_device(runs)
    for device_runs in devices.values():
        if len(device_runs) >= 2:
            print("\n".join(compare_runs(device_runs[-2], device_runs[-1])))
    latest = {device: device_runs[-1] for device, device_runs in devices.items()}
    if len(latest) >= 2:
        print("\n".join(compare_devices(latest)))
    if runs:
        csv_path = results.report_csv(args.results_dir)
        count = write_csv(runs, csv_path)
        print(f"report: {count} rows in {csv_path}")
        if not args.no_plots:
            for path in write_plots(latest, results.plots_dir(args.results_dir)):
                print(f"report: plot {path}")

    if not rules:
        return 0
    failed = False
    for device, device_runs in sorted(devices.items()):
        if args.device and device != args.device:
            continue
        if args.baseline:
            baseline, problem = load_run_file(args.baseline)
            if baseline is None:
                print(f"report: --baseline {args.baseline}: {problem}", file=sys.stderr)
                return 2
        elif len(device_runs) >= 2:
            baseline = device_runs[-2]
        else:
            print(f"gate: {device}: only one saved run, nothing to compare with")
            continue
        for verdict in gate(baseline, device_runs[-1], rules, history=device_runs[:-1]):
            status = "FAIL" if verdict.failed else "ok"
            print(
                f"gate {status}: {device} {verdict.benchmark} {verdict.metric} {fmt_number(verdict.old)} → "
                f"{fmt_number(verdict.new)} ({verdict.note}; {verdict.test})"
            )
            failed = failed or verdict.failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
