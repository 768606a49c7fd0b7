"""Leftovers of killed runs: per-process temporary folders, removed once their owner is gone.

A run killed by SIGKILL or the OOM killer cannot clean up after itself. Every temporary
folder the suite makes is therefore named after its owner, the process that made it
and whose lifetime bounds it, with :func:`owner_tag`: ``<pid>-<start>``, the start
being the process's start time in clock ticks since boot (``/proc/<pid>/stat``; the pid
alone where there is no ``/proc``). A later run calls :func:`reap`, which removes the
folders whose owner is gone:

- ``<shm>/edge-bench-ckpt/<tag>/`` and ``<project>/.bench-ckpt/<tag>/`` (the checkpoint
  benchmark's folders; also ``<dir>/edge-bench-ckpt/<tag>/`` of each ``--ckpt-dir``),
- ``<shm>/edge-bench-cl-<tag>/`` and ``<project>/.bench-ckpt/continual-<tag>/`` (the
  continual scenario's checkpoint targets),
- ``<tmp>/edge-bench-cl-<tag>-XXXXXXXX/`` (a continual worker's config and stderr),
- ``<tmp>/edge-bench-ddp-<tag>-XXXXXXXX/`` (a distributed run's script, logs and figures),
- ``<tmp>/edge-bench-srv-<tag>-XXXXXXXX/`` (the fresh processes' server: its spec and log).

An owner is gone when no process has its pid, when the process with its pid is a
zombie, or when that process started at another time than the tag says (the pid was
reused). A folder named with a pid alone is kept while any process has that pid: a
live process's folder is never removed. Only the user's own directories are touched,
never a symbolic link, and never anything but the names above.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from typing import Iterable, List, Optional, Tuple

#: ``<pid>`` or ``<pid>-<start ticks>``.
_TAG = r"(?P<pid>\d+)(?:-(?P<start>\d+))?"
#: The names of leftovers: continual targets, continual, distributed and server folders; checkpoint folders; the
#: project's folders.
_CL = re.compile(rf"^edge-bench-(?:cl|ddp|srv)-{_TAG}(?:-[A-Za-z0-9_]+)?$")
_CKPT = re.compile(rf"^{_TAG}$")
_PROJECT = re.compile(rf"^(?:continual-)?{_TAG}$")


def _stat_fields(path: str) -> Optional[List[str]]:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": the comm may hold spaces


def _proc_stat(pid: int) -> Optional[Tuple[str, int]]:
    """(state letter, start time in ticks since boot) of ``pid`` from /proc; None when it has none.

    The start time comes from the main thread's entry (``/proc/<pid>/task/<pid>/stat``, the same figure): an emulator
    such as qemu-user answers a process's reads of its own ``/proc/<pid>/stat`` with one it makes up, whose start
    time is not the kernel's, so every tag a process gave itself there named a process already gone.
    """
    fields = _stat_fields(f"/proc/{pid}/stat")
    if fields is None:
        return None
    thread = _stat_fields(f"/proc/{pid}/task/{pid}/stat")
    return fields[0], int((thread or fields)[19])


def _has_proc() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/stat")


def owner_tag(pid: Optional[int] = None) -> str:
    """``<pid>-<start ticks>`` of ``pid`` (this process by default); ``<pid>`` where /proc does not tell."""
    pid = os.getpid() if pid is None else pid
    found = _proc_stat(pid)
    return f"{pid}-{found[1]}" if found else str(pid)


def is_alive(pid: int, start: Optional[int] = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not), and started at ``start`` ticks when given."""
    if pid <= 0:
        return False
    found = _proc_stat(pid) if _has_proc() else None
    if found is not None:
        return found[0] not in "ZX" and (start is None or found[1] == start)
    try:  # no /proc, or one that hides other users' processes (hidepid): ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def tag_alive(tag: str) -> bool:
    """Whether the owner named by an :func:`owner_tag` still runs."""
    match = _CKPT.match(tag)
    if not match:
        raise ValueError(f"not an owner tag: {tag!r}")
    return is_alive(int(match["pid"]), None if match["start"] is None else int(match["start"]))


def named_after(path: str, tag: str) -> bool:
    """Whether the folder ``path`` carries the owner tag ``tag`` as a whole part of its name."""
    name = os.path.basename(os.path.normpath(path))
    return re.search(rf"(?:^|-){re.escape(tag)}(?:-|$)", name) is not None


def private_dir(path: str) -> str:
    """Make ``path`` a folder only its owner reads (0700), its parents as the umask says.

    An existing ``path`` is used only when it is a real folder of this user (in a shared
    place such as /dev/shm, another user could have made it first); OSError otherwise.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError(f"{path} exists and is not a folder of this user") from None
    os.chmod(path, 0o700)
    return path


def _candidates(project_dir: str, shm: str, tmp: str, ckpt_dirs: Iterable[str]) -> List[Tuple[str, re.Pattern]]:
    places = [
        (shm, _CL),
        (tmp, _CL),
        (os.path.join(shm, "edge-bench-ckpt"), _CKPT),
        (os.path.join(project_dir, ".bench-ckpt"), _PROJECT),
    ]
    places += [(os.path.join(d, "edge-bench-ckpt"), _CKPT) for d in ckpt_dirs]
    found, seen = [], set()
    for directory, pattern in places:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if pattern.match(name) and os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                found.append((path, pattern.match(name)))
    return found


def reap(
    project_dir: str, shm: str = "/dev/shm", tmp: Optional[str] = None, ckpt_dirs: Iterable[str] = ()
) -> List[str]:
    """Remove the leftovers of runs whose owner is gone (see the module's docstring); returns their paths.

    ``ckpt_dirs``: the ``--ckpt-dir`` folders, whose ``edge-bench-ckpt/`` holds the checkpoint
    benchmark's per-process folders. A folder that cannot be removed completely is not
    listed. Never raises for a folder it cannot read or remove.
    """
    removed = []
    for path, match in _candidates(project_dir, shm, tmp or tempfile.gettempdir(), ckpt_dirs):
        start = None if match["start"] is None else int(match["start"])
        if is_alive(int(match["pid"]), start):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def reap_line(removed: List[str]) -> Optional[str]:
    """The one line for the terminal about what :func:`reap` removed; None when nothing."""
    if not removed:
        return None
    return f"removed {len(removed)} folder(s) left by killed runs: {', '.join(removed)}"
