"""Where the continual scenario writes its checkpoints: a folder on the project's disk and one on tmpfs.

The checkpoints are fine-tuned on the user's photos, so they stay the user's: each
folder is private (0700; the files in it, written through ``mkstemp``, are 0600), lives
only as long as the run (:func:`remove_targets`, and the worker removes them if the
benchmark process is killed), and is named after its owner
(:func:`bench_support.leftovers.owner_tag`) so that a later run's
:func:`bench_support.leftovers.reap` removes what a killed run left.

A target that cannot be made (a read-only project folder, no tmpfs) is kept as a column
with no directory and the reason under ``unavailable``: its figures are reported as
unavailable, and the rest of the scenario runs.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Mapping

from bench_support.leftovers import owner_tag, private_dir
from bench_support.measure.diskio import storage_of


def _made(directory: str) -> Dict[str, Any]:
    """``{"directory": directory}`` once it is a private folder, or the reason it cannot be."""
    try:
        private_dir(directory)
    except OSError as exc:
        why = exc.strerror or str(exc)
        return {"directory": None, "unavailable": f"cannot make {directory}: {why}"}
    return {"directory": directory}


def checkpoint_targets(root: str, shm_dir: str = "/dev/shm") -> Dict[str, Dict[str, Any]]:
    """{column label: facts} for ``<root>/.bench-ckpt/continual-<tag>`` and ``<shm_dir>/edge-bench-cl-<tag>``.

    Labelled by the filesystem found (``ext4``, ``tmpfs``; ``disk-tmpfs`` and ``shm-tmpfs``
    when the project itself is on tmpfs).
    """
    tag = owner_tag()
    disk_dir = os.path.join(root, ".bench-ckpt", f"continual-{tag}")
    disk_made = _made(disk_dir)
    disk = storage_of(disk_dir if disk_made["directory"] else root)
    shm = storage_of(shm_dir) if os.path.isdir(shm_dir) else {"fs_type": None}
    disk_label = disk["fs_type"] or "disk"
    shm_label = "tmpfs"
    if shm.get("fs_type") == "tmpfs" and disk_label == "tmpfs":
        disk_label, shm_label = "disk-tmpfs", "shm-tmpfs"  # the project itself is on tmpfs
    targets: Dict[str, Dict[str, Any]] = {disk_label: dict(disk, role="disk", **disk_made)}
    if shm.get("fs_type") == "tmpfs":
        targets[shm_label] = dict(shm, role="memory", **_made(os.path.join(shm_dir, f"edge-bench-cl-{tag}")))
    else:
        found = shm.get("fs_type") or "nothing"
        targets[shm_label] = {"directory": None, "role": "memory", "unavailable": f"no tmpfs at {shm_dir} ({found})"}
    return targets


def unavailable_lines(targets: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """A note per target that could not be made (none for a machine without tmpfs: no fault there)."""
    return [
        f"continual-learning checkpoint writes to {label} not measured: {t['unavailable']}"
        for label, t in targets.items()
        if t.get("unavailable", "").startswith("cannot make ")
    ]


def remove_targets(targets: Mapping[str, Mapping[str, Any]]) -> None:
    """Remove the targets' folders, and the project's ``.bench-ckpt`` when nothing else is left in it."""
    for target in targets.values():
        if target.get("directory"):
            shutil.rmtree(target["directory"], ignore_errors=True)
            parent = os.path.dirname(target["directory"])
            if os.path.basename(parent) == ".bench-ckpt":
                try:
                    os.rmdir(parent)
                except OSError:
                    pass  # another run's folders are in it
