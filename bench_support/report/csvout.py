"""report.csv: one row per benchmark per run, with its parameters, time statistics,
validity flags and every scalar extra_info figure."""

from __future__ import annotations

import csv
from typing import Any, Dict, List, Sequence

from bench_support.files import write_atomic
from bench_support.report.runs import Run
from bench_support.report.validity import validity

#: pytest-benchmark's time statistics, written as ``time_<key>_s`` columns (seconds), and its round count.
TIME_COLUMNS = ("min", "median", "mean", "max", "stddev", "iqr")


def write_csv(runs: Sequence[Run], path: str) -> int:
    """Write the rows of ``runs`` to ``path``; returns the number of rows."""
    rows = []
    for run in runs:
        for bench in run.benchmarks():
            row: Dict[str, Any] = {
                "device": run.device,
                "run": run.label,
                "datetime": run.data.get("datetime"),
                "profile": run.profile,
                "group": bench.get("group"),
                "name": bench["name"],
            }
            for key, value in (bench.get("params") or {}).items():
                row[f"param:{key}"] = value
            stats = bench.get("stats") or {}
            for key in TIME_COLUMNS:
                row[f"time_{key}_s"] = stats.get(key)
            row["rounds"] = stats.get("rounds")
            v = validity(bench, run.profile)
            row.update(median_ci_rel=v["median_ci_rel"], imprecise=v["noisy"], invalid=v["invalid"])
            for key, value in (bench.get("extra_info") or {}).items():
                if value is None or isinstance(value, (int, float, str, bool)):
                    row[key] = value
            rows.append(row)
    columns: List[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def write(tmp: str) -> None:
        # backslashreplace: a path of undecodable bytes is written escaped, not refused
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write, suffix=".csv")  # whole or not at all: a reader never sees half a table
    return len(rows)
