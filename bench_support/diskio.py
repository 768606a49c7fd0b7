"""Which block device a file lives on.

``os.stat(path).st_dev`` gives the device numbers; ``/sys/dev/block/MAJ:MIN`` links
to the device, and a partition's directory sits inside its disk's (and holds a
``partition`` file). tmpfs, overlayfs and btrfs use anonymous device numbers with no
sysfs entry: then the mount's source from mountinfo is tried, and where that is not a
device node either the result says the file has no block device, and why.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from .machine import filesystem_of


def _sys_block_entry(major: int, minor: int, root: str) -> Optional[Dict[str, str]]:
    link = os.path.join(root, "sys/dev/block", f"{major}:{minor}")
    if not os.path.exists(link):
        return None
    real = os.path.realpath(link)
    name = os.path.basename(real)
    if os.path.exists(os.path.join(real, "partition")):
        return {"block_device": os.path.basename(os.path.dirname(real)), "partition": name}
    return {"block_device": name}


def block_device_of(path: str, root: str = "/", dev: Optional[Tuple[int, int]] = None) -> Dict[str, Optional[str]]:
    """``{"block_device": disk, "partition": part}``, or ``block_device: None`` plus a reason.

    ``root`` and ``dev`` let tests hand in a fake sysfs tree and device numbers.
    """
    if dev is None:
        st_dev = os.stat(path).st_dev
        dev = (os.major(st_dev), os.minor(st_dev))
    entry = _sys_block_entry(dev[0], dev[1], root)
    if entry:
        return entry
    mount = filesystem_of(path, root) or {}
    source = mount.get("source", "")
    if source.startswith("/dev/"):
        try:  # btrfs and friends: the mount's source node names the real device
            rdev = os.stat(os.path.join(root, source.lstrip("/"))).st_rdev
            entry = _sys_block_entry(os.major(rdev), os.minor(rdev), root)
        except OSError:
            entry = None
        if entry:
            return dict(entry, block_device_note="from the mount source in mountinfo")
    fs_type = mount.get("fs_type", "this filesystem")
    return {
        "block_device": None,
        "block_device_unavailable": f"{fs_type} has no block device (anonymous device {dev[0]}:{dev[1]})",
    }
