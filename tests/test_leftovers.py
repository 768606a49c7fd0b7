"""Leftovers of killed runs: removed by a later run when their owner is gone, never a live process's."""

import json
import os
import subprocess
import sys

import pytest

from bench_support import leftovers
from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="owner tags need /proc")


def _dead_pid():
    """The pid of a process that ran and is gone (and reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not leftovers.is_alive(proc.pid)
    return proc.pid


def _folder(path, content=b"x" * 1000):
    os.makedirs(path)
    with open(os.path.join(path, "latest.pt"), "wb") as fh:
        fh.write(content)
    return str(path)


def test_reap_removes_the_folders_of_gone_owners_only(tmp_path):
    project, shm, tmp, usb = (tmp_path / name for name in ("project", "shm", "tmp", "usb"))
    dead, me = _dead_pid(), leftovers.owner_tag()
    pid, start = me.split("-")
    reused = f"{pid}-{int(start) + 1}"  # this pid, but a process that started at another time: gone
    gone = [
        _folder(shm / "edge-bench-ckpt" / str(dead)),  # the checkpoint benchmark's, pid only
        _folder(shm / f"edge-bench-cl-{dead}"),  # the continual targets, before owner tags
        _folder(shm / f"edge-bench-cl-{reused}"),
        _folder(tmp / f"edge-bench-cl-{dead}-1-abc_xyz9"),  # a worker's config folder
        _folder(tmp / f"edge-bench-ddp-{dead}-k2j4_x9q"),  # a distributed run's folder
        _folder(tmp / f"edge-bench-srv-{dead}-q7_zz01a"),  # the fresh processes' server folder
        _folder(project / ".bench-ckpt" / str(dead)),
        _folder(project / ".bench-ckpt" / f"continual-{dead}-12345"),
        _folder(usb / "edge-bench-ckpt" / f"{dead}-7"),
    ]
    kept = [
        _folder(shm / "edge-bench-ckpt" / pid),  # alive
        _folder(shm / f"edge-bench-cl-{me}"),
        _folder(tmp / f"edge-bench-ddp-{me}-abcdefgh"),
        _folder(tmp / f"edge-bench-srv-{me}-abcdefgh"),
        _folder(tmp / f"edge-bench-cl-{me}-abcdefgh"),
        _folder(project / ".bench-ckpt" / f"continual-{me}"),
        _folder(project / ".bench-ckpt" / f"{pid}"),
        _folder(tmp / "edge-bench-cl-abcdefgh"),  # an owner this version cannot tell: left alone
        _folder(tmp / f"other-{dead}"),  # not the suite's name
        _folder(project / ".bench-ckpt" / f"continual-{dead}-x"),
    ]
    (tmp / f"edge-bench-cl-{dead}-2").write_text("a file, not a folder")
    kept.append(str(tmp / f"edge-bench-cl-{dead}-2"))
    target = _folder(tmp_path / "not-a-leftover")
    os.symlink(target, shm / f"edge-bench-cl-{dead}-3")  # a link is never followed nor removed
    kept += [str(shm / f"edge-bench-cl-{dead}-3"), target]

    removed = leftovers.reap(str(project), shm=str(shm), tmp=str(tmp), ckpt_dirs=[str(usb)])
    assert sorted(removed) == sorted(gone)
    assert not any(os.path.lexists(p) for p in gone)
    assert all(os.path.lexists(p) for p in kept)
    assert os.path.isfile(os.path.join(target, "latest.pt"))
    assert leftovers.reap(str(project), shm=str(shm), tmp=str(tmp), ckpt_dirs=[str(usb)]) == []
    line = leftovers.reap_line(removed)
    assert "\n" not in line and line.startswith("removed 9 folder(s) left by killed runs: ")
    assert leftovers.reap_line([]) is None


def test_reap_leaves_another_users_folder(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder to another user")
    folder = _folder(tmp_path / f"edge-bench-cl-{_dead_pid()}")
    os.chown(folder, 12345, 12345)
    assert leftovers.reap(str(tmp_path / "project"), shm=str(tmp_path), tmp=str(tmp_path / "none")) == []
    assert os.path.isdir(folder)


def test_owner_tags_name_the_process_and_its_start():
    tag = leftovers.owner_tag()
    assert tag.startswith(f"{os.getpid()}-") and leftovers.tag_alive(tag)
    pid, start = map(int, tag.split("-"))
    assert leftovers.is_alive(pid) and leftovers.is_alive(pid, start) and not leftovers.is_alive(pid, start - 1)
    assert not leftovers.tag_alive(str(_dead_pid()))
    assert leftovers.named_after(f"/x/edge-bench-cl-{tag}-abcdefgh", tag)
    assert leftovers.named_after(f"/x/continual-{tag}/", tag)
    assert not leftovers.named_after(f"/x/continual-{tag}0", tag) and not leftovers.named_after("/x/y", tag)


def test_what_a_killed_run_made_is_reaped_by_the_next(tmp_path):
    """The folders the continual scenario makes, named by the real code in a process that is then
    SIGKILLed (no cleanup of its own), are what the next run's reap removes."""
    project = tmp_path / "project"
    project.mkdir()
    code = (
        "import json, sys, tempfile\n"
        "from bench_support import leftovers\n"
        "from bench_support.continual.targets import checkpoint_targets\n"
        "targets = checkpoint_targets(sys.argv[1])\n"
        "temp = tempfile.mkdtemp(prefix=f'edge-bench-cl-{leftovers.owner_tag()}-', dir=sys.argv[2])\n"
        "print(json.dumps([t['directory'] for t in targets.values() if t['directory']] + [temp]), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(project), str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    made = json.loads(proc.stdout.readline())
    assert len(made) >= 2 and all(os.path.isdir(p) for p in made)
    assert not set(made) & set(leftovers.reap(str(project), tmp=str(tmp_path)))  # the owner runs: kept
    proc.kill()
    proc.wait()
    removed = leftovers.reap(str(project), tmp=str(tmp_path))
    assert set(made) <= set(removed) and not any(os.path.exists(p) for p in made)


def test_a_tag_holds_where_a_process_is_told_a_made_up_start_time_of_its_own(monkeypatch):
    """qemu-user answers a process's reads of its own /proc/<pid>/stat with fields it makes up (start time and CPU
    times among them): a tag taken from there named a process that, read by any other process, was gone."""
    real = leftovers._stat_fields

    def emulated(path):
        fields = real(path)
        if fields is not None and path in ("/proc/self/stat", f"/proc/{os.getpid()}/stat"):
            fields[19] = "0"  # what the emulator says of this process
        return fields

    monkeypatch.setattr(leftovers, "_stat_fields", emulated)
    told = leftovers.owner_tag()
    monkeypatch.undo()
    assert told == leftovers.owner_tag() and leftovers.tag_alive(told)
