"""Which block device a file lives on, and that device's I/O counters.

``os.stat(path).st_dev`` gives the device numbers; ``/sys/dev/block/MAJ:MIN`` links
to the device, and a partition's directory sits inside its disk's (and holds a
``partition`` file). tmpfs, overlayfs and btrfs use anonymous device numbers with no
sysfs entry: then the mount's source from mountinfo is tried, and where that is not a
device node either the result says the file has no block device, and why.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from bench_support.measure.machine import filesystem_of
from bench_support.measure.sysfs import counter_delta
from bench_support.metrics import MB


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


# --- device counters (what iostat shows) ----------------------------------------------

#: /proc/diskstats fields after major, minor and name (sectors are always 512 bytes).
DISKSTATS_FIELDS = (
    "reads",
    "reads_merged",
    "sectors_read",
    "ms_reading",
    "writes",
    "writes_merged",
    "sectors_written",
    "ms_writing",
    "in_flight",  # a gauge, not a counter
    "ms_io",
    "ms_weighted",
)
SECTOR_BYTES = 512


def parse_diskstats(text: str) -> Dict[str, Dict[str, int]]:
    """{device name: {field: value}} from the text of /proc/diskstats (any kernel's width)."""
    stats: Dict[str, Dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 + len(DISKSTATS_FIELDS):
            continue
        try:
            values = [int(v) for v in parts[3 : 3 + len(DISKSTATS_FIELDS)]]
        except ValueError:
            continue
        stats[parts[2]] = dict(zip(DISKSTATS_FIELDS, values))
    return stats


def read_diskstats(proc_root: str = "/proc") -> Dict[str, Dict[str, int]]:
    with open(os.path.join(proc_root, "diskstats")) as fh:
        return parse_diskstats(fh.read())


@dataclass(frozen=True)
class IoSnapshot:
    t: float  # time.monotonic()
    device: Optional[Dict[str, int]]  # the device's diskstats line, None without a device
    proc_read_bytes: Optional[int]  # bytes this process fetched from storage


def io_snapshot(device: Optional[str], proc_root: str = "/proc") -> IoSnapshot:
    """Counters of ``device`` (a diskstats name: partition or disk) and of this process, now."""
    stats = read_diskstats(proc_root).get(device) if device else None
    try:
        import psutil

        proc_bytes: Optional[int] = psutil.Process().io_counters().read_bytes
    except (ImportError, AttributeError, OSError):
        proc_bytes = None
    return IoSnapshot(time.monotonic(), stats, proc_bytes)


def io_figures(before: IoSnapshot, after: IoSnapshot) -> Dict[str, Optional[float]]:
    """iostat's read figures between two snapshots: r/s, MB read, r_await, %util."""
    dt = after.t - before.t
    figures: Dict[str, Optional[float]] = {}
    if before.device is not None and after.device is not None and dt > 0:
        delta = {k: counter_delta(before.device[k], after.device[k]) for k in DISKSTATS_FIELDS if k != "in_flight"}
        reads = delta["reads"]
        figures.update(
            disk_reads=reads,
            disk_read_mb=delta["sectors_read"] * SECTOR_BYTES / MB,
            read_iops=reads / dt,
            disk_read_mb_per_s=delta["sectors_read"] * SECTOR_BYTES / MB / dt,
            r_await_ms=delta["ms_reading"] / reads if reads else None,
            util_pct=min(100.0, 100.0 * delta["ms_io"] / (dt * 1000.0)),
        )
    if before.proc_read_bytes is not None and after.proc_read_bytes is not None:
        figures["proc_read_mb"] = (after.proc_read_bytes - before.proc_read_bytes) / MB
    return figures


def diskstats_name(info: Dict[str, Optional[str]]) -> Optional[str]:
    """The diskstats line to watch for a block_device_of() result: the partition if any."""
    return info.get("partition") or info.get("block_device")


def storage_of(path: str) -> Dict[str, Optional[str]]:
    """Filesystem type, mount point and block device of ``path``: what every result records."""
    fs = filesystem_of(path) or {}
    facts: Dict[str, Optional[str]] = {"fs_type": fs.get("fs_type"), "mount_point": fs.get("mount_point")}
    facts.update(block_device_of(path))
    return facts
