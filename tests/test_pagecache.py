"""Residency, eviction and cache states — checked against fincore and the device counters."""

import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_support.measure import pagecache
from bench_support.measure.diskio import block_device_of, diskstats_name, io_figures, io_snapshot
from bench_support.measure.machine import filesystem_of

PAGE = pagecache.PAGE_SIZE


def _write(path, nbytes):
    with open(path, "wb") as fh:
        fh.write(os.urandom(nbytes))
        fh.flush()
        os.fsync(fh.fileno())
    return str(path)


@pytest.fixture
def files(tmp_path):
    if (filesystem_of(str(tmp_path)) or {}).get("fs_type") in pagecache.MEMORY_FS:
        pytest.skip("the temporary directory is on tmpfs here: nothing in it can be cold")
    return [_write(tmp_path / f"f{i}.bin", size) for i, size in enumerate((1, PAGE, 3 * PAGE + 5, 200 * PAGE))]


def test_cold_then_warm_then_cold(files):
    pagecache.evict_fadvise(files)
    assert pagecache.residency(files).resident_bytes == 0
    assert pagecache.read_all(files) == sum(os.path.getsize(f) for f in files)
    warm = pagecache.residency(files)
    assert warm.resident_bytes == warm.total_bytes and warm.frac == 1.0
    assert warm.resident_pages == sum(-(-os.path.getsize(f) // PAGE) for f in files)
    pagecache.evict_fadvise(files)
    assert pagecache.residency(files).frac == 0.0


def test_dirty_pages_are_written_back_before_eviction(tmp_path):
    path = str(tmp_path / "dirty.bin")
    with open(path, "wb") as fh:
        fh.write(os.urandom(64 * PAGE))  # no fsync: the pages are dirty
    pagecache.evict_fadvise([path])  # must fsync first, or DONTNEED leaves them all
    assert pagecache.residency([path]).resident_bytes == 0


def test_partial_residency_and_empty_files(tmp_path, files):
    big = files[-1]
    pagecache.evict_fadvise([big])
    with open(big, "rb", buffering=0) as fh:
        fh.read(20 * PAGE)
    resident, size, pages = pagecache.file_residency(big)
    assert size == 200 * PAGE
    assert 20 <= pages < 200 and resident == pages * PAGE  # readahead may bring a little more
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert pagecache.file_residency(str(empty)) == (0, 0, 0)


@pytest.mark.skipif(not shutil.which("fincore"), reason="fincore (util-linux) not installed")
def test_residency_agrees_with_fincore(files):
    pagecache.evict_fadvise(files)
    with open(files[-1], "rb", buffering=0) as fh:
        fh.read(37 * PAGE)
    pagecache.read_all(files[:2])
    for path in files:
        out = subprocess.run(
            ["fincore", "--raw", "--noheadings", "--bytes", "-o", "PAGES,RES", path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        _, _, pages = pagecache.file_residency(path)
        assert pages == int(out[0]), path
        assert pages * PAGE == int(out[1]), path


def test_cold_and_warm_states_are_verified(files):
    cold = pagecache.prepare(files, "cold", "fadvise")
    assert cold.frac <= pagecache.COLD_MAX_FRAC
    warm = pagecache.prepare(files, "warm", None)
    assert warm.frac >= pagecache.WARM_MIN_FRAC


def test_tmpfs_can_never_be_cold():
    with pytest.raises(pagecache.EvictionUnavailable, match="tmpfs keeps files in memory"):
        pagecache.choose_method("auto", "tmpfs")
    assert pagecache.choose_method("auto", "ext4") == "fadvise"


def test_drop_caches_refused_is_a_clear_reason(tmp_path):
    (tmp_path / "sys/vm").mkdir(parents=True)
    (tmp_path / "sys/vm/drop_caches").write_text("")
    os.chmod(tmp_path / "sys/vm/drop_caches", 0o444)
    if os.access(tmp_path / "sys/vm/drop_caches", os.W_OK):  # root ignores the mode bits
        subprocess.run(["chattr", "+i", str(tmp_path / "sys/vm/drop_caches")], check=False)
    try:
        if os.access(tmp_path / "sys/vm/drop_caches", os.W_OK):
            pytest.skip("cannot make a file unwritable for this user here")
        with pytest.raises(pagecache.EvictionUnavailable, match="drop_caches"):
            pagecache.choose_method("drop_caches", "ext4", proc_root=str(tmp_path))
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "sys/vm/drop_caches")], check=False, capture_output=True)


def test_a_cold_read_of_large_files_reads_their_bytes_from_the_device(tmp_path):
    """disk_read_mb against the bytes read, for files where pages and metadata are negligible."""
    device = diskstats_name(block_device_of(str(tmp_path)))
    if device is None:
        pytest.skip(f"{tmp_path} has no block device here")
    big = [_write(tmp_path / f"big{i}.bin", 8 << 20) for i in range(4)]
    # The device's counters also count every other process's reads (a parallel test worker, CI's neighbours):
    # up to three tries, one of which must agree. A wrong count (sectors, units, the wrong device) fails all three.
    tries = []
    for _ in range(3):
        pagecache.prepare(big, "cold", "fadvise")
        before = io_snapshot(device)
        nbytes = pagecache.read_all(big)
        figures = io_figures(before, io_snapshot(device))
        read_mb = nbytes / float(1 << 20)
        tries.append(figures)
        if abs(figures["disk_read_mb"] - read_mb) / read_mb < 0.05:
            break
    assert abs(figures["disk_read_mb"] - read_mb) / read_mb < 0.05, tries
    assert abs(figures["proc_read_mb"] - read_mb) / read_mb < 0.05, figures
    # util_pct comes from io_ticks (whole milliseconds of busy device): a fast 32 MB read can round to 0.
    assert figures["read_iops"] > 0 and figures["r_await_ms"] is not None and 0 <= figures["util_pct"] <= 100


NOBODY = 65534
AS_NOBODY = r"""
import json, os, sys
from bench_support.measure import pagecache as p
work, roots_file = sys.argv[1], sys.argv[2]
out = {"uid": os.geteuid()}
mine = []
for i in range(3):
    path = os.path.join(work, f"mine{i}.bin")
    with open(path, "wb") as fh:
        fh.write(os.urandom(64 * p.PAGE_SIZE))
    mine.append(path)
out["auto"] = p.choose_method("auto", "ext4")
try:
    p.choose_method("drop_caches", "ext4")
    out["drop_caches"] = "allowed"
except p.EvictionUnavailable as exc:
    out["drop_caches"] = str(exc)
out["cold"] = p.prepare(mine, "cold", out["auto"]).frac
out["warm"] = p.prepare(mine, "warm", None).frac
try:
    p.file_residency(roots_file)
    out["roots_file"] = "measured"
except p.ResidencyUnknown as exc:
    out["roots_file"] = str(exc)
print(json.dumps(out))
"""


def test_a_non_root_user_evicts_its_own_files_and_is_told_about_the_rest(tmp_path):
    """Run as uid 65534: fadvise on files it owns; drop_caches refused; no false residency."""
    import json
    import sys

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to run a process as another user (setpriv)")
    if (filesystem_of(str(tmp_path)) or {}).get("fs_type") in pagecache.MEMORY_FS:
        pytest.skip("the temporary directory is on tmpfs here: nothing in it can be cold")
    work = tmp_path / "nobody"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    for parent in (tmp_path, *tmp_path.parents):
        if not os.stat(parent).st_mode & 0o001:
            os.chmod(parent, os.stat(parent).st_mode | 0o001)  # let the other user traverse
    roots_file = _write(work / "roots.bin", 16 * PAGE)  # owned by root, mode 0644 for nobody
    os.chmod(roots_file, 0o644)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = None
    for python in (sys.executable, "/usr/bin/python3"):  # the venv may sit in a root-only directory
        result = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                python,
                "-c",
                AS_NOBODY,
                str(work),
                roots_file,
            ],
            capture_output=True,
            text=True,
            cwd=repo,
            env={"PYTHONPATH": repo, "PATH": os.environ["PATH"]},
        )
        if result.returncode == 0:
            break
    if result.returncode != 0:
        pytest.skip("no Python here that another user may run: " + result.stderr.strip().splitlines()[-1])
    out = json.loads(result.stdout)
    assert out["uid"] == NOBODY
    assert out["auto"] == "fadvise"
    assert "drop_caches" in out["drop_caches"] and "root" in out["drop_caches"]
    assert out["cold"] <= 0.01 and out["warm"] >= 0.99
    assert "neither owned nor writable" in out["roots_file"]


# --- partial residency: the curve between cold and warm ------------------------------------


def test_cache_state_names_their_target_fraction():
    assert [pagecache.target_fraction(s) for s in ("cold", "r25", "r50", "r75", "warm")] == [0, 0.25, 0.5, 0.75, 1]
    assert pagecache.target_fraction("r0") is None and pagecache.target_fraction("hot") is None


@given(
    st.lists(st.integers(1, 6 * 4096), min_size=40, max_size=120),
    st.sampled_from([0.25, 0.5, 0.75]),
)
@settings(max_examples=40, deadline=None)
def test_the_resident_subset_comes_within_tolerance_of_its_target(tmp_path_factory, sizes, fraction):
    folder = tmp_path_factory.mktemp("subset")
    paths = []
    for i, size in enumerate(sizes):
        path = folder / f"{i}.jpg"
        path.write_bytes(b"x" * size)
        paths.append(str(path))
    chosen = pagecache.resident_subset(paths, fraction)
    size = {p: os.path.getsize(p) for p in paths}
    got = sum(size[p] for p in chosen) / sum(size.values())
    assert abs(got - fraction) <= max(size.values()) / sum(size.values()) / 2 + 1e-9  # within half a file
    assert set(chosen) == set(pagecache.resident_subset(paths, fraction))  # the same files every round


@pytest.mark.skipif(not shutil.which("fincore"), reason="fincore (util-linux) not installed")
def test_a_half_resident_state_is_verified_and_fincore_agrees(tmp_path):
    if (filesystem_of(str(tmp_path)) or {}).get("fs_type") in pagecache.MEMORY_FS:
        pytest.skip("the temporary directory is on tmpfs here: nothing in it can be cold")
    paths = [_write(tmp_path / f"img{i:03d}.jpg", 900 + 37 * i) for i in range(80)]
    found = pagecache.prepare(paths, "r50", "fadvise")
    assert abs(found.frac - 0.5) <= pagecache.PARTIAL_TOLERANCE
    out = subprocess.run(
        ["fincore", "--raw", "--noheadings", "-o", "PAGES", *paths], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sum(int(v) for v in out) == found.resident_pages  # an independent tool sees the same pages resident
    # Whole files: each one is all in or all out.
    assert {pagecache.file_residency(p)[2] for p in paths} <= {0, 1}


def test_a_partial_state_the_kernel_does_not_keep_is_refused(files, monkeypatch):
    monkeypatch.setattr(pagecache, "read_all", lambda paths: 0)  # as if the reads were evicted at once
    with pytest.raises(pagecache.EvictionUnavailable, match="tolerance 5%"):
        pagecache.prepare(files, "r50", "fadvise")
