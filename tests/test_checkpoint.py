"""The checkpoint writer: phases, stale temps, failures, crash consistency, devices."""

import glob
import os
import subprocess
import tempfile

import pytest
import torch

from bench_support.measure.diskio import block_device_of
from bench_support.workloads import crashcheck
from bench_support.workloads.checkpoint import CheckpointError, durability, save_checkpoint, temp_prefix
from conftest import make_unwritable

STATE = {"w": torch.arange(1000, dtype=torch.float32)}


def _temps(path):
    return glob.glob(os.path.join(os.path.dirname(path), temp_prefix(path) + "*"))


@pytest.mark.parametrize("mode", ["durable", "atomic", "plain"])
def test_each_mode_writes_a_loadable_checkpoint_and_times_its_phases(tmp_path, mode):
    path = str(tmp_path / "latest.pt")
    t = save_checkpoint(STATE, path, mode=mode)
    assert torch.equal(torch.load(path)["w"], STATE["w"])
    assert t.nbytes == os.path.getsize(path) and t.write_ms > 0
    done = [x for x in (t.write_ms, t.fsync_ms, t.rename_ms, t.dirsync_ms) if x is not None]
    assert all(x >= 0 for x in done) and sum(done) <= t.total_ms + 1e-6
    assert (t.fsync_ms is not None, t.rename_ms is not None) == {
        "durable": (True, True),
        "atomic": (False, True),
        "plain": (False, False),
    }[mode]
    assert _temps(path) == []


def test_stale_temps_of_this_name_alone_are_removed_by_the_next_write(tmp_path):
    path = str(tmp_path / "latest.pt")
    stale = tmp_path / (temp_prefix(path) + "crashed")
    other = tmp_path / (temp_prefix(str(tmp_path / "other.pt")) + "crashed")
    stale.write_bytes(b"half a checkpoint")
    other.write_bytes(b"someone else's")
    save_checkpoint(STATE, path)
    assert not stale.exists() and other.exists()


def test_unwritable_directory_is_one_clear_error_and_keeps_the_previous(tmp_path):
    path = str(tmp_path / "latest.pt")
    save_checkpoint(STATE, path)
    undo = make_unwritable(tmp_path)
    try:
        with pytest.raises(CheckpointError) as info:
            save_checkpoint({"w": torch.zeros(5)}, path)
    finally:
        undo()
    message = str(info.value)
    assert "\n" not in message and path in message and "untouched" in message
    assert torch.equal(torch.load(path)["w"], STATE["w"])
    assert _temps(path) == []


@pytest.fixture
def tiny_tmpfs():
    """A 1 MiB tmpfs, mounted for the test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mount = tempfile.mkdtemp(prefix="edge-bench-full-")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], capture_output=True, text=True)
    if result.returncode:
        os.rmdir(mount)
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", mount], check=True)
    os.rmdir(mount)


@pytest.mark.parametrize("mode", ["durable", "atomic"])
def test_full_filesystem_is_one_clear_error_and_keeps_the_previous(tiny_tmpfs, mode):
    path = os.path.join(tiny_tmpfs, "latest.pt")
    save_checkpoint(STATE, path)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint({"w": torch.randn(1 << 20)}, path, mode=mode)  # 4 MiB into 1 MiB
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert torch.equal(torch.load(path)["w"], STATE["w"])
    assert _temps(path) == [] and os.listdir(tiny_tmpfs) == ["latest.pt"]


def test_plain_mode_failure_says_the_previous_checkpoint_is_lost(tiny_tmpfs):
    path = os.path.join(tiny_tmpfs, "latest.pt")
    save_checkpoint(STATE, path)
    with pytest.raises(CheckpointError, match="the previous checkpoint is lost"):
        save_checkpoint({"w": torch.randn(1 << 20)}, path, mode="plain")


def test_durability_follows_the_filesystem_not_the_mode_alone():
    assert durability("durable", "ext4")["durable"] is True
    tmpfs = durability("durable", "tmpfs")
    assert tmpfs["durable"] is False and "tmpfs" in tmpfs["durability_note"] and tmpfs["atomic"] is True
    assert durability("plain", "xfs") == {
        "atomic": False,
        "durable": False,
        "durability_note": "no fsync: a power loss can lose the new checkpoint or tear it",
    }


def test_atomic_writer_survives_200_kills(tmp_path):
    report = crashcheck.run(str(tmp_path), trials=200, payload_mb=8)
    assert report.trials == 200
    assert report.killed >= 20, "too few kills landed before the write finished to test anything"
    assert report.torn == 0
    assert report.stale_temps_seen > 0 and report.stale_temps_left == 0


def test_the_check_catches_a_writer_that_is_not_atomic(tmp_path):
    report = crashcheck.run(str(tmp_path), trials=60, writer=crashcheck.plain_writer, payload_mb=8)
    assert report.torn > 0


def _fake_sys(tmp_path, links):
    for dev, target in links.items():
        real = tmp_path / target.lstrip("/")
        real.mkdir(parents=True, exist_ok=True)
        link = tmp_path / "sys/dev/block" / dev
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(real, link)
    return tmp_path


def test_partitions_map_to_their_disk_on_a_fake_sysfs(tmp_path):
    root = _fake_sys(
        tmp_path,
        {
            "179:2": "/sys/devices/platform/mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p2",
            "259:0": "/sys/devices/pci0000:00/nvme/nvme0/nvme0n1",
        },
    )
    (root / "sys/devices/platform/mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p2/partition").write_text("2\n")
    assert block_device_of("/x", str(root), dev=(179, 2)) == {"block_device": "mmcblk0", "partition": "mmcblk0p2"}
    assert block_device_of("/x", str(root), dev=(259, 0)) == {"block_device": "nvme0n1"}


def test_anonymous_devices_say_why_there_is_no_block_device(tmp_path):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text("30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw\n")
    result = block_device_of("/dev/shm/x", str(tmp_path), dev=(0, 27))
    assert result["block_device"] is None
    assert result["block_device_unavailable"] == "tmpfs has no block device (anonymous device 0:27)"
