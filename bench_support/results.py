"""The results layout: the only module that knows where a run's files go.

    results/                          the root (``--save-results DIR``; ./run.sh uses results/)
      <device-id>/                    one folder per device (board or CPU model + hostname)
        <machine-id>/NNNN_<profile>.json   pytest-benchmark's storage: one file per run
        continual/NNNN_<profile>/     the continual-learning CSV, log and plots of run NNNN
      report.csv, plots/              written by ``python -m bench_support.report``

``<machine-id>`` is pytest-benchmark's own sub-folder (system, interpreter, version,
bits), kept so that ``pytest-benchmark compare --storage file://results/<device-id>``
and ``--benchmark-compare`` find the runs.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional

_RUN_FILE = re.compile(r"^(\d{4})_(.*)\.json$")


def machine_id() -> str:
    """pytest-benchmark's storage sub-folder name for this interpreter."""
    from pytest_benchmark.utils import get_machine_id

    return get_machine_id()


def device_dir(root: str, device_id: str) -> str:
    return os.path.join(root, device_id)


def storage_dir(device_folder: str) -> str:
    """The folder pytest-benchmark saves this interpreter's runs of a device in."""
    return os.path.join(device_folder, machine_id())


def run_files(device_folder: str) -> List[str]:
    """Saved runs of one device (every interpreter), by path."""
    return sorted(glob.glob(os.path.join(glob.escape(device_folder), "*", "*.json")))


def has_runs(device_folder: str) -> bool:
    return bool(glob.glob(os.path.join(glob.escape(storage_dir(device_folder)), "*.json")))


def next_run_label(device_folder: str, name: str) -> str:
    """``NNNN_<name>``: the label pytest-benchmark gives the next run it saves here."""
    numbers = []
    for path in glob.glob(os.path.join(glob.escape(storage_dir(device_folder)), "*.json")):
        match = _RUN_FILE.match(os.path.basename(path))
        if match:
            numbers.append(int(match.group(1)))
    return f"{max(numbers, default=0) + 1:04d}_{name}"


def continual_dir(device_folder: str, run_label: Optional[str] = None) -> str:
    """Where the continual-learning outputs of a run go: its number, or a time stamp when unsaved."""
    return os.path.join(device_folder, "continual", run_label or time.strftime("run-%Y%m%d-%H%M%S"))


def report_csv(root: str) -> str:
    return os.path.join(root, "report.csv")


def plots_dir(root: str) -> str:
    return os.path.join(root, "plots")


@dataclass(frozen=True)
class SavedRun:
    device: str  # the device folder's name
    path: str
    number: int  # NNNN, 0 when the file name has none

    @property
    def label(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]


def saved_runs(root: str) -> Iterator[SavedRun]:
    """Every run file under ``root``, in path order (devices, then interpreters, then numbers)."""
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "*", "*", "*.json"))):
        device = os.path.basename(os.path.dirname(os.path.dirname(path)))
        if os.path.basename(os.path.dirname(path)) == "continual":
            continue
        match = _RUN_FILE.match(os.path.basename(path))
        yield SavedRun(device, path, int(match.group(1)) if match else 0)
