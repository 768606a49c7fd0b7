"""The results layout: the only module that knows where a run's files go.

    results/                          the root (``--save-results DIR``; ./run.sh uses results/)
      <device-id>/                    one folder per device (board or CPU model + hostname)
        <machine-id>/NNNN_<profile>.json   pytest-benchmark's storage: one file per run
        continual/NNNN_<profile>/     the continual-learning CSV, log and plots of run NNNN
        runs/NNNN_<profile>/          the report's drawings of run NNNN (timelines), drawn once
      report.csv, report.html, plots/ written by ``python -m bench_support.report``

``<machine-id>`` is pytest-benchmark's own sub-folder (system, interpreter, version,
bits), kept so that ``pytest-benchmark compare --storage file://results/<device-id>``
and ``--benchmark-compare`` find the runs.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import tempfile
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


def compared_run_files(device_folder: str) -> List[str]:
    """The runs pytest-benchmark can compare with: those in this interpreter's storage folder."""
    return glob.glob(os.path.join(glob.escape(storage_dir(device_folder)), "*.json"))


def next_run_label(device_folder: str, name: str) -> str:
    """``NNNN_<name>``: the label the next run saved here gets, unless another run saves first."""
    folder = storage_dir(device_folder)
    return f"{_next_number(folder) if os.path.isdir(folder) else 1:04d}_{name}"


_PART = re.compile(r"^\.saving-(\d+)-.*\.part$")


def save_run(folder: str, name: str, data: bytes) -> str:
    """Save a run as ``NNNN_<name>.json`` in ``folder``, whole or not at all; returns its path.

    The bytes go to a hidden temp file first (fsynced); the number is then taken by
    hard-linking that file to its final name, which fails if the name exists: two runs
    saving at once get distinct numbers, and a crash at any moment leaves either the whole
    file or none (only the temp file, removed by the next save). Where the filesystem has no
    hard links (FAT, exFAT), an exclusive lock on the folder serialises the numbering.
    Raises OSError (no space, no permission) with nothing left behind.
    """
    os.makedirs(folder, exist_ok=True)
    remove_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".saving-{os.getpid()}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        path = _claim_number(folder, name, tmp)
        _fsync_dir(folder)
        return path
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _claim_number(folder: str, name: str, tmp: str) -> str:
    number = _next_number(folder)
    while True:
        path = os.path.join(folder, f"{number:04d}_{name}.json")
        try:
            os.link(tmp, path)
            return path
        except FileExistsError:
            number += 1
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            return _claim_number_locked(folder, name, tmp)


def _claim_number_locked(folder: str, name: str, tmp: str) -> str:
    import fcntl

    with open(os.path.join(folder, ".numbering.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        number = _next_number(folder)
        path = os.path.join(folder, f"{number:04d}_{name}.json")
        os.replace(tmp, path)
        return path


def _next_number(folder: str) -> int:
    numbers = [int(m.group(1)) for m in map(_RUN_FILE.match, os.listdir(folder)) if m]
    return max(numbers, default=0) + 1


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # filesystems that cannot fsync a directory
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder: str) -> List[str]:
    """Remove the temp files of saves whose process is gone (killed mid-save); returns them."""
    removed = []
    for entry in os.listdir(folder):
        match = _PART.match(entry)
        if match and not _alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(folder, entry))
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def continual_dir(device_folder: str, run_label: Optional[str] = None) -> str:
    """Where the continual-learning outputs of a run go: its number, or a time stamp when unsaved."""
    return os.path.join(device_folder, "continual", run_label or time.strftime("run-%Y%m%d-%H%M%S"))


def run_drawings_dir(root: str, device: str, run_label: str) -> str:
    """The report's drawings of one saved run: they belong to it, so a later (partial) run never replaces them."""
    return os.path.join(root, device, "runs", run_label)


def report_csv(root: str) -> str:
    return os.path.join(root, "report.csv")


def report_html(root: str) -> str:
    return os.path.join(root, "report.html")


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
    """Every run file under ``root``, in path order (devices, then interpreters, then numbers).

    Three layouts: the suite's ``root/<device>/<machine-id>/*.json`` (``--save-results``), pytest-benchmark's
    own ``root/<machine-id>/NNNN_*.json`` (``--benchmark-storage``, ``--benchmark-autosave`` into .benchmarks/),
    and one such machine-id folder given itself (``root/NNNN_*.json``). The last two have no device folder:
    ``device`` is then "" and the run's own record names it.
    """
    base = glob.escape(root)
    for path in sorted(glob.glob(os.path.join(base, "*", "*", "*.json"))):
        device = os.path.basename(os.path.dirname(os.path.dirname(path)))
        if os.path.basename(os.path.dirname(path)) == "continual":
            continue
        match = _RUN_FILE.match(os.path.basename(path))
        yield SavedRun(device, path, int(match.group(1)) if match else 0)
    for pattern in (("*", "*.json"), ("*.json",)):
        for path in sorted(glob.glob(os.path.join(base, *pattern))):
            match = _RUN_FILE.match(os.path.basename(path))
            if match:
                yield SavedRun("", path, int(match.group(1)))
