"""Crash consistency of a checkpoint writer, by killing it.

Each trial forks a child that writes checkpoint version n+1 over version n, and
SIGKILLs it after a random delay drawn across the measured length of a whole write
(so kills land before, during and after each phase). Afterwards the final name must
load with ``torch.load`` and hold exactly version n or version n+1; anything else is a
torn checkpoint. A temp file left by a killed writer must be gone after the next
write. A SIGKILL stops the process, not the machine: this checks atomicity; a power
cut is what fsync is for, and no test in a running system can show that.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict

from bench_support.workloads.checkpoint import save_checkpoint, temp_prefix

Writer = Callable[[Any, str], None]


def atomic_writer(obj: Any, path: str) -> None:
    save_checkpoint(obj, path, mode="durable")


def plain_writer(obj: Any, path: str) -> None:
    """What most code does: torch.save straight into the final name. Tears on a crash."""
    import torch

    torch.save(obj, path)


def payload(version: int, n_floats: int) -> Dict[str, Any]:
    import torch

    return {"version": version, "weights": torch.full((n_floats,), float(version))}


def holds_version(path: str, versions) -> bool:
    """True if ``path`` loads and is, entirely, one of ``versions``."""
    import torch

    try:
        obj = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to load is a torn checkpoint
        return False
    version = obj.get("version") if isinstance(obj, dict) else None
    if version not in versions:
        return False
    weights = obj.get("weights")
    return weights is not None and bool((weights == float(version)).all())


def _write_in_child(writer: Writer, obj: Any, path: str) -> int:
    with warnings.catch_warnings():  # 3.12+ warns about fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            writer(obj, path)
            code = 0
        except BaseException:  # noqa: BLE001 - the child must never return into the caller
            code = 1
        os._exit(code)
    return pid


@dataclass
class CrashReport:
    trials: int = 0
    killed: int = 0  # the kill arrived before the writer finished
    completed: int = 0  # the writer finished before the kill
    torn: int = 0
    stale_temps_seen: int = 0  # trials after which a killed writer's temp file lay there
    stale_temps_left: int = 0  # temp files remaining after a final, uninterrupted write
    write_s: float = 0.0  # length of one uninterrupted write, fork to exit

    def as_dict(self) -> Dict[str, Any]:
        return {f"crash_{k}": v for k, v in self.__dict__.items()}


def run(
    directory: str, trials: int, writer: Writer = atomic_writer, payload_mb: float = 16.0, seed: int = 0
) -> CrashReport:
    """Kill ``writer`` ``trials`` times while it overwrites a checkpoint in ``directory``."""
    if not hasattr(os, "fork"):
        raise RuntimeError("the crash check needs os.fork (Linux, macOS)")
    rng = random.Random(seed)
    n_floats = max(1, int(payload_mb * (1 << 20) / 4))
    path = os.path.join(directory, "crash-check.pt")
    temps = os.path.join(glob.escape(directory), glob.escape(temp_prefix(path)) + "*")
    report = CrashReport()

    atomic_writer(payload(0, n_floats), path)
    current = 0
    start = time.perf_counter()  # calibrate: one whole write, fork to exit
    pid = _write_in_child(writer, payload(1, n_floats), path)
    os.waitpid(pid, 0)
    report.write_s = time.perf_counter() - start
    current = 1 if holds_version(path, (1,)) else current

    for _ in range(trials):
        new = current + 1
        obj = payload(new, n_floats)  # built before the fork: the child only writes
        delay = rng.uniform(0.0, 1.2 * report.write_s)
        pid = _write_in_child(writer, obj, path)
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        report.trials += 1
        if os.WIFSIGNALED(status):
            report.killed += 1
        else:
            report.completed += 1
        if glob.glob(temps):
            report.stale_temps_seen += 1
        if holds_version(path, (current, new)):
            current = new if holds_version(path, (new,)) else current
        else:
            report.torn += 1
            atomic_writer(payload(new, n_floats), path)  # start the next trial from a sound checkpoint
            current = new

    atomic_writer(payload(current + 1, n_floats), path)
    report.stale_temps_left = len(glob.glob(temps))
    os.unlink(path)
    return report
