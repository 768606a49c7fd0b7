"""Durable, atomic checkpoint writes, timed phase by phase.

    temp file in the target directory  (same filesystem as the final name)
    serialise into it, flush            write_ms
    fsync(file)                         fsync_ms    (durable mode)
    os.replace(temp, final)             rename_ms   (atomic on POSIX within one filesystem)
    fsync(directory)                    dirsync_ms  (durable mode: makes the rename itself durable)

A crash at any moment leaves the final name holding either the previous complete
checkpoint or the new one; a temp file a crashed writer left behind is removed by the
next write to the same name. ``torch.save(obj, path)`` alone (mode ``plain``, the
baseline most code uses) writes into the final name directly: neither atomic nor durable.

On tmpfs fsync returns at once (there is no disk): the write is atomic but never
durable — nothing on tmpfs survives a reboot.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from bench_support.errors import Unavailable, UserError
from bench_support.measure.machine import filesystem_of
from bench_support.metrics import MB

MODES = ("durable", "atomic", "plain")
#: Filesystems whose contents do not survive a reboot, so fsync cannot make them durable.
VOLATILE_FS = ("tmpfs", "ramfs")


class CheckpointError(UserError):
    """A checkpoint that could not be written; the message is one line for the user."""


@dataclass(frozen=True)
class WriteTimings:
    mode: str
    nbytes: int
    write_ms: float
    fsync_ms: Optional[float]  # None: the mode does not fsync
    rename_ms: Optional[float]  # None: the mode does not rename
    dirsync_ms: Optional[float]
    total_ms: float


def temp_prefix(final_path: str) -> str:
    """Temp files of one checkpoint name share this prefix (hidden, tied to the name)."""
    return f".{os.path.basename(final_path)}.tmp-"


def remove_stale_temps(final_path: str) -> int:
    """Delete temp files an interrupted write of ``final_path`` left; returns how many.

    Assumes one writer per checkpoint name, as a training process has.
    """
    directory = os.path.dirname(os.path.abspath(final_path))
    removed = 0
    for stale in glob.glob(os.path.join(glob.escape(directory), glob.escape(temp_prefix(final_path)) + "*")):
        try:
            os.unlink(stale)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


class _RecordingFile:
    """Hands torch a file whose write errors are remembered.

    torch re-raises a failed write as an opaque RuntimeError ("unexpected pos ...");
    keeping the OSError lets the user read "No space left on device".
    """

    def __init__(self, fh) -> None:
        self._fh = fh
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._fh.flush()


def _default_serialise(obj: Any, fh) -> None:
    import torch

    torch.save(obj, fh)


def _fail(path: str, exc: BaseException, recorded: Optional[OSError] = None, atomic: bool = True) -> CheckpointError:
    cause = recorded or exc
    if isinstance(cause, OSError):
        reason = cause.strerror or errno.errorcode.get(cause.errno or 0, str(cause))
    else:
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    fate = "the previous checkpoint is untouched" if atomic else "written in place: the previous checkpoint is lost"
    return CheckpointError(f"cannot write checkpoint {path}: {reason} ({fate})")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def save_checkpoint(
    obj: Any,
    path: str,
    mode: str = "durable",
    serialise: Callable[[Any, Any], None] = _default_serialise,
) -> WriteTimings:
    """Write ``obj`` to ``path`` in ``mode`` and return the time of each phase.

    Raises CheckpointError (one line) on any failure; in the atomic modes the previous
    checkpoint at ``path`` is then untouched and no temp file is left behind.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if mode == "plain":
        start = time.perf_counter()
        recorder = None
        try:
            with open(path, "wb") as fh:
                recorder = _RecordingFile(fh)
                serialise(obj, recorder)
        except (OSError, RuntimeError) as exc:
            raise _fail(path, exc, recorder and recorder.error, atomic=False) from None
        write = _ms(start)
        return WriteTimings(mode, os.path.getsize(path), write, None, None, None, write)

    remove_stale_temps(path)
    begin = time.perf_counter()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(path))
        with os.fdopen(fd, "wb") as fh:
            recorder = _RecordingFile(fh)
            start = time.perf_counter()
            try:
                serialise(obj, recorder)
                fh.flush()
            except RuntimeError as exc:
                raise _fail(path, exc, recorder.error) from None
            write = _ms(start)
            fsync = None
            if mode == "durable":
                start = time.perf_counter()
                os.fsync(fh.fileno())
                fsync = _ms(start)
            nbytes = fh.tell()
        start = time.perf_counter()
        os.replace(tmp, path)
        tmp = None
        rename = _ms(start)
        dirsync = None
        if mode == "durable":
            start = time.perf_counter()
            dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            dirsync = _ms(start)
    except OSError as exc:
        raise _fail(path, exc) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return WriteTimings(mode, nbytes, write, fsync, rename, dirsync, _ms(begin))


def durability(mode: str, fs_type: Optional[str]) -> Dict[str, Any]:
    """What a write in ``mode`` on ``fs_type`` actually guarantees, for the result."""
    atomic = mode != "plain"
    if fs_type in VOLATILE_FS:
        return {
            "atomic": atomic,
            "durable": False,
            "durability_note": f"{fs_type} is memory-backed: fsync is a no-op and nothing survives a reboot",
        }
    if mode == "durable":
        return {"atomic": True, "durable": True, "durability_note": "file and directory fsynced"}
    note = "no fsync: a power loss can lose the new checkpoint" + ("" if atomic else " or tear it")
    return {"atomic": atomic, "durable": False, "durability_note": note}


# --- the benchmark's rounds ---------------------------------------------------------------

PHASES = ("write_ms", "fsync_ms", "rename_ms", "dirsync_ms", "total_ms")


def build_payload(name: str) -> Dict[str, Any]:
    """``<model>-weights`` or ``<model>-weights+adam``: a state dict to save (seeded). The caller keeps it only as
    long as it needs it (the benchmark module's fixture): held for the whole run, it would sit in every later
    benchmark's RSS."""
    import torch

    from bench_support.workloads.training import build_model

    model_name, _, what = name.partition("-")
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10)
    state = {"model": model.state_dict()}
    if what == "weights+adam":
        optimizer = torch.optim.Adam(model.parameters())
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        optimizer.step()  # Adam's two moment buffers exist only after a step
        state["optimizer"] = optimizer.state_dict()
    return state


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in a (nested) state dict: what a checkpoint of it takes, at least."""
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def target_base(target: str, project_dir: str, user_dirs: Dict[str, str], shm: str = "/dev/shm") -> str:
    """The folder a target's checkpoints go under; Unavailable when /dev/shm is not tmpfs."""
    if target == "project":
        return os.path.join(project_dir, ".bench-ckpt")
    if target == "shm":
        fs = filesystem_of(shm) if os.path.isdir(shm) else None
        if not fs or fs["fs_type"] != "tmpfs":
            raise Unavailable(f"no tmpfs at {shm} on this machine")
        return os.path.join(shm, "edge-bench-ckpt")
    return os.path.join(user_dirs[target], "edge-bench-ckpt")


class CheckpointRounds:
    """One round is one checkpoint write of ``state``; ``setup`` (untimed) syncs earlier writes
    away and, for new files, removes the previous round's file."""

    def __init__(self, state: Any, directory: str, mode: str, existing: str) -> None:
        self.state, self.directory, self.mode, self.existing = state, directory, mode, existing
        self.timings: List[WriteTimings] = []
        self._count = 0
        self.final = os.path.join(directory, "latest.pt")
        # An overwrite holds the old file and the new temp file at once; a new file only itself.
        need = tensor_bytes(state) * (2 if existing == "overwrite" else 1) + (4 << 20)
        free = shutil.disk_usage(directory).free
        if free < need:
            raise Unavailable(
                f"{directory}: {free / MB:.0f} MB free, this {existing} write of a {tensor_bytes(state) / MB:.0f} MB "
                f"checkpoint needs about {need / MB:.0f} MB"
            )
        if existing == "overwrite":
            save_checkpoint(state, self.final, mode="durable")  # the file a round replaces

    def setup(self):
        if self.existing == "newfile":
            for name in os.listdir(self.directory):
                os.unlink(os.path.join(self.directory, name))
            path = os.path.join(self.directory, f"ckpt-{self._count:05d}.pt")
            self._count += 1
        else:
            path = self.final
        os.sync()
        return (path,), {}

    def write(self, path: str) -> None:
        self.timings.append(save_checkpoint(self.state, path, mode=self.mode))

    def figures(self, measured: int) -> Dict[str, Any]:
        """Median of each phase over the last ``measured`` writes; None for a phase the mode skips."""
        timings = self.timings[-measured:]
        info: Dict[str, Any] = {}
        for phase in PHASES:
            values = [getattr(t, phase) for t in timings]
            info[phase] = statistics.median(values) if None not in values else None
        skipped = [p for p in PHASES if info[p] is None]
        if skipped:
            info["phases_not_done"] = f"{', '.join(skipped)}: not part of the {self.mode} mode"
        info["ckpt_mb"] = timings[-1].nbytes / MB
        info["mb_per_s"] = info["ckpt_mb"] / (info["total_ms"] / 1000.0) if info["total_ms"] else None
        return info
