"""Memory figures: peak reset, per-window peaks, the process tree, /proc parsing."""

import multiprocessing
import sys
import time

import pytest

from bench_support.measure import memory, tree

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc")
MB = 1 << 20


def _touch(n_mb):
    """Allocate n_mb of really resident memory (an mmap-backed bytearray, freed on del)."""
    block = bytearray(n_mb * MB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


@linux_only
def test_reset_brings_the_peak_back_to_the_current_rss():
    block = _touch(200)
    del block
    before = memory.rss_hwm_mb()
    assert before - memory.rss_now_mb() > 150, "the freed block should still be in the peak"
    assert memory.reset_peak_rss()
    after = memory.rss_hwm_mb()
    assert after - memory.rss_now_mb() < 20
    # ru_maxrss follows the reset too (same mm high-water mark), in MB on every OS.
    assert abs(memory.ru_maxrss_mb() - after) < 20


@linux_only
def test_a_window_after_a_hungry_one_reports_its_own_peak():
    with memory.MemoryWindow() as hungry:
        block = _touch(300)
        del block
    with memory.MemoryWindow() as lean:
        small = _touch(10)
        del small
    assert hungry.figures["rss_delta_mb"] > 280
    assert lean.figures["rss_delta_mb"] < 40
    assert hungry.figures["rss_peak_mb"] - lean.figures["rss_peak_mb"] > 250
    assert lean.figures["rss_peak_method"].startswith("VmHWM")


def _child(ready, stop, n_mb):
    block = _touch(n_mb)
    ready.set()
    stop.wait(30)
    del block


@linux_only
def test_children_count_in_the_tree_peak_but_not_in_the_process_peak():
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    with memory.MemoryWindow(interval_s=0.02) as window:
        proc = ctx.Process(target=_child, args=(ready, stop, 150))
        proc.start()
        assert ready.wait(30)
        time.sleep(0.2)  # a few sampler periods while the child holds its memory
        stop.set()
        proc.join(30)
    figures = window.figures
    assert figures["rss_tree_peak_mb"] - figures["rss_peak_mb"] > 130
    assert figures["rss_delta_mb"] < 60  # the child's pages are not the parent's
    assert figures["rss_tree_samples"] >= 3


def test_private_memory_is_read_from_smaps_rollup(tmp_path):
    pid_dir = tmp_path / "4242"
    pid_dir.mkdir()
    (pid_dir / "smaps_rollup").write_text(
        "00400000-7ffd [rollup]\n"
        "Rss:              102400 kB\n"
        "Pss:               51200 kB\n"
        "Shared_Clean:      40960 kB\n"
        "Private_Clean:      1024 kB\n"
        "Private_Dirty:     20480 kB\n"
    )
    assert tree.private_mb(4242, proc_root=str(tmp_path)) == pytest.approx(21.0)


def test_status_fields_are_parsed_in_kib(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("Name:\tpython\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\n")
    assert memory.rss_hwm_mb(proc_root=str(tmp_path)) == pytest.approx(512.0)


def test_without_a_resettable_peak_the_window_says_it_sampled(tmp_path):
    # A /proc without clear_refs or VmHWM (macOS, locked-down containers): the window
    # falls back to sampling and must say so instead of claiming a kernel peak.
    with memory.MemoryWindow(interval_s=0.01, proc_root=str(tmp_path)) as window:
        block = _touch(120)
        seen = window.sampler.samples
        deadline = time.monotonic() + 30
        while window.sampler.samples < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # hold the block until the sampler has seen it
        del block
    assert window.figures["rss_peak_method"].startswith("sampled")
    # The sampled peak caught the block that was freed before the window closed.
    assert window.figures["rss_peak_mb"] - window.figures["rss_now_mb"] > 100, window.figures


@linux_only
def test_the_rss_split_follows_a_mapped_file_and_an_allocation_apart(tmp_path):
    """rss_file_mb grows by the pages of a mapped file read through, rss_anon_mb by an allocation, each alone;
    a window records both, and together they are the RSS (RssShmem aside, ~0 here)."""
    import mmap

    path = tmp_path / "blob"
    path.write_bytes(b"\1" * (48 * MB))
    start = memory.rss_split_mb()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        sum(mapped[i] for i in range(0, len(mapped), 4096))  # every page touched, none written
        read = memory.rss_split_mb()
        block = _touch(40)
        allocated = memory.rss_split_mb()
        del block
    assert read["rss_file_mb"] - start["rss_file_mb"] == pytest.approx(48, abs=4)
    assert abs(read["rss_anon_mb"] - start["rss_anon_mb"]) < 8
    assert allocated["rss_anon_mb"] - read["rss_anon_mb"] == pytest.approx(40, abs=4)
    assert abs(allocated["rss_file_mb"] - read["rss_file_mb"]) < 4
    with memory.MemoryWindow(interval_s=0.05) as window:
        pass
    figures = window.figures
    assert figures["rss_anon_mb"] + figures["rss_file_mb"] == pytest.approx(figures["rss_now_mb"], abs=8)


def test_the_rss_split_leaves_out_what_proc_does_not_say(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("Name:\tpython\nVmRSS:\t  262144 kB\nRssAnon:\t  131072 kB\n")
    assert memory.rss_split_mb(proc_root=str(tmp_path)) == {"rss_anon_mb": 128.0}


@linux_only
def test_rss_now_matches_proc_status():
    vmrss = memory._status_kb("VmRSS") / 1024.0
    assert memory.rss_now_mb() == pytest.approx(vmrss, abs=5)
    before = memory.rss_now_mb()
    block = _touch(64)
    assert memory.rss_now_mb() - before > 60  # it follows the process, it is not a constant
    del block


@linux_only
def test_the_descendant_walk_finds_the_same_processes_as_psutil():
    import subprocess

    import psutil

    grandchild = "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"
    children = [subprocess.Popen([sys.executable, "-c", grandchild]) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process().children(recursive=True)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = sorted(p.pid for p in psutil.Process().children(recursive=True))
        assert len(expected) == 4
        assert sorted(tree.descendant_pids(psutil.Process().pid)) == expected
    finally:
        for child in psutil.Process().children(recursive=True):
            child.kill()
        for child in children:
            child.wait()


def test_the_descendant_walk_reads_every_threads_children_and_says_when_the_kernel_has_no_lists(tmp_path):
    def task(pid, tid, kids):
        folder = tmp_path / str(pid) / "task" / str(tid)
        folder.mkdir(parents=True)
        if kids is not None:
            (folder / "children").write_text(" ".join(map(str, kids)) + (" " if kids else ""))

    task(10, 10, [11])
    task(10, 12, [13])  # a child forked by another thread of the process
    task(11, 11, [14])
    task(13, 13, [])
    task(14, 14, [])
    assert sorted(tree.descendant_pids(10, proc_root=str(tmp_path))) == [11, 13, 14]
    task(20, 20, None)
    assert tree.descendant_pids(20, proc_root=str(tmp_path)) is None


def test_the_samplers_own_cpu_time_is_measured():
    """A probe that burns 20 ms of this thread's CPU per tick: the sampler reports at least that much."""

    def costly_probe():
        started = time.thread_time()
        while time.thread_time() - started < 0.02:
            pass
        return 1.0, 1.0

    sampler = memory.TreeSampler(interval_s=0.01, probe=costly_probe)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    in_thread = sampler.samples - 2  # start() and stop() sample on the caller's thread
    assert in_thread >= 1
    assert sampler.cpu_s >= 0.02 * in_thread


def test_the_probe_reads_the_main_threads_children_each_tick_and_every_threads_each_full_scan(tmp_path):
    page = tree._PAGE_SIZE

    def process(pid, rss_pages, private_kb, threads):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "statm").write_text(f"1000 {rss_pages} 0 0 0 0 0\n")
        (tmp_path / str(pid) / "smaps_rollup").write_text(f"Private_Clean: 0 kB\nPrivate_Dirty: {private_kb} kB\n")
        for tid, kids in threads.items():
            (tmp_path / str(pid) / "task" / str(tid)).mkdir(parents=True)
            (tmp_path / str(pid) / "task" / str(tid) / "children").write_text(" ".join(map(str, kids)))

    process(100, rss_pages=(100 * MB) // page, private_kb=0, threads={100: [101], 105: [102]})
    process(101, rss_pages=1, private_kb=10 * 1024, threads={101: []})  # forked by the main thread
    process(102, rss_pages=1, private_kb=20 * 1024, threads={102: []})  # forked by thread 105
    probe = tree.TreeProbe(pid=100, proc_root=str(tmp_path), full_scan_every=3)
    ticks = [probe() for _ in range(4)]
    assert [own for own, _ in ticks] == [pytest.approx(100.0)] * 4
    assert [tree for _, tree in ticks] == [pytest.approx(v) for v in (130.0, 110.0, 110.0, 130.0)]


def test_a_childs_private_memory_is_read_at_first_sight_on_a_new_high_and_within_its_cost_budget(tmp_path):
    """smaps_rollup of a forked torch worker costs 3-10 ms: read again when its RSS sets a new high, or when
    400 times its measured cost has passed (a copy-on-write break grows private pages, not RSS)."""
    page = tree._PAGE_SIZE
    growth = tree.USS_REREAD_GROWTH_MB

    def write(pid, rss_mb, private_mb=None, kids=()):
        folder = tmp_path / str(pid)
        (folder / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
        (folder / "task" / str(pid) / "children").write_text(" ".join(map(str, kids)))
        (folder / "statm").write_text(f"1000 {int(rss_mb * MB) // page} 0 0 0 0 0\n")
        if private_mb is not None:
            (folder / "smaps_rollup").write_text(f"Private_Clean: 0 kB\nPrivate_Dirty: {int(private_mb * 1024)} kB\n")

    now = [0.0]
    cpu = iter(x * 0.005 for x in range(1000))  # each reading costs 5 ms of CPU: budget 400 x 5 ms = 2 s
    probe = tree.TreeProbe(pid=100, proc_root=str(tmp_path), clock=lambda: now[0], cpu_clock=lambda: next(cpu))

    def tick(seconds=0.1):
        now[0] += seconds
        return probe()[1]

    write(100, 100, kids=[101])
    write(101, 50, private_mb=10)
    assert tick() == pytest.approx(110) and probe.uss_reads == 1  # first sight
    write(101, 50 + growth - 0.5, private_mb=11)  # below a new high: the last reading stands
    assert [tick() for _ in range(3)] == [pytest.approx(110)] * 3 and probe.uss_reads == 1
    write(101, 50 + growth + 0.5, private_mb=13)  # a new high: read at once
    assert tick() == pytest.approx(113) and probe.uss_reads == 2
    write(101, 50, private_mb=14)  # falls back, then a copy-on-write break: private grows, RSS does not
    assert tick(1.0) == pytest.approx(113) and tick(0.9) == pytest.approx(113) and probe.uss_reads == 2
    assert tick(0.2) == pytest.approx(114) and probe.uss_reads == 3  # 2.1 s after the last reading
    write(101, 50 + growth + 0.6, private_mb=15)  # back up, but not above the highest RSS read + growth
    assert tick() == pytest.approx(114) and probe.uss_reads == 3
    write(100, 100, kids=[])  # the worker exited; a new one under the same pid is read at first sight
    tick()
    write(100, 100, kids=[101])
    write(101, 40, private_mb=5)
    assert tick() == pytest.approx(105) and probe.uss_reads == 4


@linux_only
def test_the_probe_agrees_with_psutil_on_this_process():
    import psutil

    own, total = tree.TreeProbe()()
    assert own == pytest.approx(psutil.Process().memory_info().rss / MB, rel=0.05)
    assert total >= own


def test_memory_freed_by_an_earlier_benchmark_is_returned_before_the_next():
    """Order-independence: what an earlier benchmark freed but the allocator kept (~100 MB of heap below a live
    object) is handed back before the next benchmark's first round, so its RSS does not carry it."""
    import gc

    from bench_support.measure.memory import release_freed, rss_now_mb

    before = rss_now_mb()
    blobs = [bytes(1000) for _ in range(100_000)]  # malloc'd, not mmap'd: glibc keeps it once freed
    pin = bytes(1000)  # a live object above them: the heap's top cannot simply shrink
    del blobs
    gc.collect()
    held = rss_now_mb()
    release_freed()
    after = rss_now_mb()
    assert pin
    if held - before < 50:
        pytest.skip(f"this allocator returned the memory by itself ({held - before:.0f} MB held)")
    assert after - before < 20, (before, held, after)
