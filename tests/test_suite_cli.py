"""End-to-end: the suite run as a user runs it, in fresh processes."""

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from bench_support import metrics
from conftest import REPO, make_unwritable, run_pytest

TRAINING_KEYS = ("samples_per_s", "epoch_s", "fetch_stall_s", "compute_s", "stall_frac", "loss", "accuracy")
MEMORY_KEYS = ("rss_peak_mb", "rss_now_mb", "rss_delta_mb", "rss_tree_peak_mb")
POWER_KEYS = ("energy_j", "energy_net_j", "power_avg_w", "power_idle_w", "power_source", "power_samples")


def _one_line_error(result):
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


#: What every result carries, whatever the benchmark: the harness's instruments (bench_support/measure/harness.py,
#: which the plain ``benchmark`` fixture gets too) give the power, interference and speed families, and storage adds
#: the validity verdict. Besides: the rounds (``Harness.run``) or ``measured_around`` (the plain fixture), and the
#: memory family, or where the work runs in a process that reports its own memory (``harness.run(memory=False)``)
#: that process's peak (see _peak_memory). Not asserted: the timeline, drawn only when the rounds outlast a sampler
#: tick (0.1 s).
EVERY_RESULT = {
    "power": (*POWER_KEYS, "power_unavailable"),
    "interference": ("own_cpu_s", "throttled"),
    "speed": ("speed_probe_ms", "speed_probe_iqr"),
    "run": ("validity",),
}
#: The suite's block of a saved run (bench_support/plugin/storage.py, docs/results.md).
EDGE_BENCH_KEYS = (
    "profile", "device_id", "platform", "suite_version", "data_dir", "cifar_root", "rss_at_start_mb", "settings",
    "selection", "interrupted", "continual", "fastest_loader", "fastest_loader_by_size",
)  # fmt: skip
#: pytest-benchmark's own top level of a saved run.
TOP_LEVEL_KEYS = ("benchmarks", "commit_info", "datetime", "edge_bench", "machine_info", "version")
#: Narrows the keys test to these benchmark modules (file names in benchmarks/, comma-separated): how
#: tests/test_new_benchmark_module.py checks one new module without running the whole smoke profile.
ONLY_MODULES = "BENCH_TEST_MODULES"


def declares(path, name):
    """Whether a module assigns ``name`` at its top level (read, not imported: nothing of it runs)."""
    with open(path) as fh:
        tree = ast.parse(fh.read(), path)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def benchmark_modules(repo=REPO):
    """The file names of benchmarks/test_*.py: (those a plain run runs, those declaring ``ON_REQUEST``)."""
    paths = sorted(glob.glob(os.path.join(repo, "benchmarks", "test_*.py")))
    on_request = [os.path.basename(p) for p in paths if declares(p, "ON_REQUEST")]
    return [os.path.basename(p) for p in paths if os.path.basename(p) not in on_request], on_request


def _peak_memory(info):
    """The memory family, or where the work runs in a process of its own, that process's peak in MB."""
    found = [metrics.get(key) for key in info]
    return any(m.family == "memory" or (m.unit == "MB" and "peak" in m.name) for m in found if m is not None)


def check_saved_run(run, modules, partial=False):
    """The rules every saved run keeps, whatever benchmark modules ran: each module saved a result; every figure is
    in the vocabulary; each result carries what every result carries; the suite's block has its keys."""
    assert all(metrics.METRICS[k].family == family for family, keys in EVERY_RESULT.items() for k in keys)
    assert set(TOP_LEVEL_KEYS) <= set(run), sorted(run)
    block = run["edge_bench"]
    assert set(EDGE_BENCH_KEYS) <= set(block), sorted(set(EDGE_BENCH_KEYS) - set(block))
    assert block["profile"] == "smoke" and block["interrupted"] is False and block["rss_at_start_mb"] > 50
    assert block["selection"]["partial"] is partial and block["settings"]["thread_policy"]
    saved = {os.path.basename(bench["fullname"].split("::")[0]) for bench in run["benchmarks"]}
    assert saved == set(modules), (sorted(saved), sorted(modules))
    for bench in run["benchmarks"]:
        info, name = bench["extra_info"], bench["name"]
        unknown = sorted(k for k in info if metrics.get(k) is None)
        assert not unknown, f"{name}: not in bench_support/metrics: {unknown}"
        for family, keys in EVERY_RESULT.items():
            missing = [k for k in keys if k not in info]
            assert not missing, f"{name}: no {missing} of the {family} family"
        assert {"rounds_measured", "measured_around"} & set(info), f"{name}: neither the rounds nor measured_around"
        assert _peak_memory(info), f"{name}: no memory figure"


def _strace(log) -> tuple:
    """strace's command prefix that logs the IP-related calls (and the execs) of every process to ``log``, and why
    not where it cannot (not installed, or no ptrace here). Only the traced calls stop the processes where strace
    has --seccomp-bpf (>= 5.3); plain strace stops every system call of every process."""
    if not shutil.which("strace"):
        return (), "strace not installed"
    base = ["strace", "-f", "-qq", "-o", os.devnull]
    seccomp = (
        ["--seccomp-bpf"]
        if subprocess.run([*base, "--seccomp-bpf", "true"], capture_output=True).returncode == 0
        else []
    )
    probe = subprocess.run([*base, *seccomp, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return (), "strace cannot trace here: " + (probe.stderr.strip().splitlines() or ["?"])[0]
    return ("strace", "-f", *seccomp, "-qq", "-e", "trace=execve,socket,connect,sendto,sendmsg", "-o", str(log)), ""


def test_every_benchmark_module_runs_saves_the_vocabularys_figures_and_opens_no_ip_socket(shared_data_dir, tmp_path):
    """Every module of benchmarks/ (less those run on request) runs in the smoke profile of a plain run, once: the
    rules of check_saved_run hold for every result. The same run is watched by strace with the suite's own network
    guard off (--allow-network), independent of it: the kernel's view of every process in the run shows no IP
    socket. Where strace cannot watch, the guard stays on. One run for both, the longest these tests start.
    BENCH_TEST_MODULES narrows the run (-k) to the modules it names."""
    modules, on_request = benchmark_modules()
    only = [m for m in os.environ.get(ONLY_MODULES, "").split(",") if m]
    assert set(only) <= set(modules), f"{ONLY_MODULES}: {sorted(set(only) - set(modules))} not run by default"
    chosen = only or modules
    narrow = ["-k", " or ".join(only)] if only else []  # a file name matches its module's tests only
    out, log = tmp_path / "run.json", tmp_path / "net.log"
    tracer, untraced = _strace(log)
    result = run_pytest(
        "benchmarks", *narrow, "--profile", "smoke", "--data-dir", shared_data_dir, "--benchmark-json", str(out),
        "--save-results", str(tmp_path / "results"), *(["--allow-network"] if tracer else []), prefix=tracer,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for module in chosen:
        assert module in result.stdout, module
    for module in on_request:  # left out, not even imported: run by naming it (or the command it declares)
        assert f"benchmarks/{module} runs on request: " in result.stdout, module
    check_saved_run(json.loads(out.read_text()), chosen, partial=bool(only))
    if untraced:
        pytest.skip(f"the figures were checked; the kernel's view of the sockets was not ({untraced})")
    calls = log.read_text().splitlines()
    assert any("execve(" in line for line in calls), "strace logged no exec of the run: it traced nothing"
    offending = [line for line in calls if "AF_INET" in line]
    assert offending == []


def test_a_plain_benchmark_gets_the_memory_and_power_families(tmp_path):
    mine = tmp_path / "test_mine.py"
    mine.write_text("def test_sum(benchmark):\n    benchmark(sum, range(10000))\n")
    out = tmp_path / "mine.json"
    result = run_pytest(
        str(mine), "-q", "--data-dir", str(tmp_path), "--benchmark-json", str(out), "--power-idle-s", "0"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads(out.read_text())["benchmarks"][0]["extra_info"]
    assert info["rss_peak_mb"] > 10 and info["rss_peak_method"].startswith("VmHWM")
    for key in POWER_KEYS:
        assert key in info
    assert (info["power_source"] is None) == bool(info["power_unavailable"])
    assert info["measured_around"].startswith("the benchmark call")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--train-images", "2"], "--train-images 2: need at least 4"),
        (["--profil", "quick"], "unrecognized arguments: --profil"),
        (["--profile", "huge"], "invalid choice: 'huge'"),
        (["--data-dir", "/nonexistent/edge-bench"], "--data-dir /nonexistent/edge-bench: no such directory"),
    ],
)
def test_bad_options_are_one_clear_line(args, expected):
    line = _one_line_error(run_pytest("benchmarks", "--collect-only", "-q", *args))
    assert expected in line


def test_cifar_root_without_cifar_is_one_clear_line(tmp_path):
    line = _one_line_error(run_pytest("benchmarks", "--collect-only", "-q", "--cifar-root", str(tmp_path)))
    assert f"--cifar-root {tmp_path}: no CIFAR-10 there" in line
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    line = _one_line_error(run_pytest("benchmarks", "--collect-only", "-q", "--cifar-root", str(tmp_path)))
    assert "incomplete CIFAR-10, missing data_batch_2" in line


def test_unwritable_data_dir_is_one_clear_line(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    undo = make_unwritable(target)
    try:
        line = _one_line_error(run_pytest("benchmarks", "--collect-only", "-q", "--data-dir", str(target)))
    finally:
        undo()
    assert f"--data-dir {target}: directory is not writable" in line


def _saved_runs(results, device):
    return sorted(glob.glob(os.path.join(results, device, "*", "*.json")))


def test_the_distributed_benchmark_runs_when_named_and_saves_its_figures(shared_data_dir, tmp_path):
    out = tmp_path / "run.json"
    result = run_pytest(
        "benchmarks/test_distributed.py", "--profile", "smoke", "--data-dir", shared_data_dir,
        "--benchmark-json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    benches = {b["params"]["world_size"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    assert sorted(benches) == [1, 2]
    for info in benches.values():
        assert not [k for k in info if metrics.get(k) is None]
        assert info["net_interface"] == "lo" and info["power_unavailable"]
    two = benches[2]
    assert len(two["rss_peak_mb_per_rank"]) == 2 and min(two["rss_peak_mb_per_rank"]) > 100
    assert two["threads_per_rank"] == max(1, len(os.sched_getaffinity(0)) // 2)
    # The figures that only exist with a second rank: the loopback carried the all-reduce, the scaling.
    assert two["net_mb_sent_per_step"] >= two["allreduce_mb_per_step"]
    assert two["scaling_efficiency"] == round(two["samples_per_s"] / (2 * benches[1]["samples_per_s"]), 4)
    assert two["allreduce_ms_per_step"] > 0 and "comm_share" in two


def test_results_are_saved_per_device_and_the_second_run_compares(tmp_path, shared_data_dir):
    results = str(tmp_path / "results")
    args = [
        "benchmarks/test_training.py",
        "--profile",
        "smoke",
        "--data-dir",
        shared_data_dir,
        "--save-results",
        results,
        "--device-name",
        "Bench Board A",
    ]
    first = run_pytest(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    saved = _saved_runs(results, "bench-board-a")
    assert [os.path.basename(p) for p in saved] == ["0001_smoke.json"]

    with open(saved[0]) as fh:
        run = json.load(fh)
    assert run["machine_info"]["device"]["device_id"] == "bench-board-a"
    assert run["edge_bench"]["profile"] == "smoke"
    training = [b for b in run["benchmarks"] if b["group"] == "training"]
    assert training
    for bench in training:
        info = bench["extra_info"]
        for key in TRAINING_KEYS + MEMORY_KEYS:
            assert isinstance(info[key], (int, float)) and info[key] == info[key], (key, info[key])
        assert info["rss_peak_mb"] > 50 and 0 <= info["stall_frac"] <= 1 and 0 <= info["accuracy"] <= 1
        for key in POWER_KEYS:
            assert key in info and info[key] is None
        assert info["power_unavailable"]
        assert bench["stats"]["data"], "per-round data is saved for later comparisons"

    # Pretend the first run used another torch: the comparison must name that fact,
    # and only stable facts (pytest-benchmark's own whole-dict warning is switched off).
    run["machine_info"]["device"]["torch"]["version"] = "0.0-earlier"
    with open(saved[0], "w") as fh:
        json.dump(run, fh)
    second = run_pytest(*args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert "torch.version: '0.0-earlier' -> " in output
    assert "Benchmark machine_info is different" not in output
    assert [os.path.basename(p) for p in _saved_runs(results, "bench-board-a")] == [
        "0001_smoke.json",
        "0002_smoke.json",
    ]
    assert "0001_smoke" in second.stdout and "(NOW)" in second.stdout
    assert "edge-bench: compared with 0001_smoke, the last run of this device that ran alike" in second.stdout

    other = run_pytest(*args[:-1], "Bench Board B", "--benchmark-histogram", str(tmp_path / "hist" / "h"))
    assert other.returncode == 0, other.stdout[-3000:] + other.stderr[-3000:]
    assert [os.path.basename(p) for p in _saved_runs(results, "bench-board-b")] == ["0001_smoke.json"]
    assert "(NOW)" not in other.stdout  # nothing of its own to compare with yet
    # pygal is in the requirements: the histogram is drawn, and its script is a local file, not a URL.
    (svg,) = glob.glob(str(tmp_path / "hist" / "*.svg"))
    with open(svg) as fh:
        text = fh.read()
    assert "<script" in text and not re.search(r'(src|href)="https?://', text)


def test_network_access_in_a_benchmark_run_is_an_error(tmp_path):
    """The guard goes up when the session collected a benchmark (a run without one is left alone,
    tests/test_plugin_install.py); from then on every test of the run is under it."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import socket\n"
        "def test_a_benchmark(benchmark):\n"
        "    benchmark(sum, range(10))\n"
        "def test_phone_home():\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "def test_resolve():\n"
        "    socket.getaddrinfo('example.org', 80)\n"
        "def test_local_unix_socket_is_fine():\n"
        "    a, b = socket.socketpair(socket.AF_UNIX)\n"
        "    a.close(); b.close()\n"
    )
    result = run_pytest(str(probe), "-q", "--data-dir", str(tmp_path), "--power-idle-s", "0", "--trials", "1")
    assert result.returncode == 1
    assert result.stdout.count("NetworkForbidden") >= 2
    assert "2 failed, 2 passed" in result.stdout


@pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="GNU time not installed")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_rss_peak_agrees_with_gnu_time(tmp_path, shared_data_dir):
    out = tmp_path / "run.json"
    result = run_pytest(
        "benchmarks/test_training.py",
        "--profile",
        "smoke",
        "--data-dir",
        shared_data_dir,
        "--benchmark-json",
        str(out),
        prefix=["/usr/bin/time", "-v"],
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    kib = [int(line.split(":")[1]) for line in result.stderr.splitlines() if "Maximum resident set size" in line]
    gnu_time_mb = kib[0] / 1024.0
    peak = json.loads(out.read_text())["benchmarks"][0]["extra_info"]["rss_peak_mb"]
    assert abs(peak - gnu_time_mb) / gnu_time_mb < 0.05, (peak, gnu_time_mb)


def _findmnt_type(path):
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True)
    return out.stdout.split()[0] if out.returncode == 0 else None


def test_checkpoint_targets_report_the_filesystem_they_found(tmp_path, shared_data_dir):
    out = tmp_path / "ckpt.json"
    extra = tmp_path / "extra-disk"
    extra.mkdir()
    result = run_pytest(
        "benchmarks/test_checkpoint.py",
        "--profile",
        "smoke",
        "--data-dir",
        shared_data_dir,
        "--ckpt-dir",
        f"mydisk={extra}",
        "--benchmark-json",
        str(out),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = {
        b["extra_info"]["target"]: b["extra_info"]
        for b in json.loads(out.read_text())["benchmarks"]
        if "target" in b["extra_info"]
    }
    assert set(results) >= {"project", "mydisk"}
    if shutil.which("findmnt"):
        assert results["project"]["fs_type"] == _findmnt_type(REPO)
        assert results["mydisk"]["fs_type"] == _findmnt_type(str(extra))
    for info in results.values():
        for key in ("ckpt_mb", "write_ms", "total_ms", "mb_per_s", "rss_peak_mb"):
            assert info[key] > 0
        assert "block_device" in info
    if "shm" in results:  # /dev/shm is tmpfs on Linux
        shm = results["shm"]
        assert shm["fs_type"] == "tmpfs" and shm["fsync_ms"] < 20.0  # a no-op there (margin for a busy machine)
        assert shm["durable"] is False and "tmpfs" in shm["durability_note"]
        assert shm["block_device"] is None and shm["block_device_unavailable"]
    assert not os.listdir(extra), "the benchmark cleans up after itself"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("mydisk", "expected NAME=PATH"),
        ("shm=/tmp", "shm is a built-in target"),
        ("x=/nonexistent", "no such directory"),
    ],
)
def test_bad_ckpt_dir_is_one_clear_line(value, expected):
    assert expected in _one_line_error(run_pytest("benchmarks", "--collect-only", "-q", "--ckpt-dir", value))


def test_crash_check_runs_from_the_command_line(tmp_path, shared_data_dir):
    out = tmp_path / "crash.json"
    result = run_pytest(
        "benchmarks/test_checkpoint.py",
        "-k",
        "crash",
        "--profile",
        "smoke",
        "--data-dir",
        shared_data_dir,
        "--crash-trials",
        "30",
        "--benchmark-json",
        str(out),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads(out.read_text())["benchmarks"][0]["extra_info"]
    assert info["crash_trials"] == 30 and info["crash_torn"] == 0


@pytest.mark.skipif(not shutil.which("fio"), reason="fio not installed (apt-get install fio)")
def test_durable_fsync_of_64_mib_is_in_line_with_fio(tmp_path):
    """Our fsync after writing 64 MiB against fio's fsync after writing 64 MiB, same filesystem."""
    from bench_support.workloads.checkpoint import save_checkpoint

    state = {"w": torch_randn_64mib()}
    ours = sorted(save_checkpoint(state, str(tmp_path / "c.pt")).fsync_ms for _ in range(3))[1]

    def fio_fsync_ms():
        # fio reports an fsync only when more I/O follows it: 65 MiB written with an fsync
        # after every 64 writes of 1 MiB times exactly one fsync of 64 MiB of dirty data.
        target = tmp_path / "fio.dat"
        if target.exists():
            target.unlink()
        run = subprocess.run(
            [
                "fio",
                "--name=ckpt",
                f"--filename={target}",
                "--rw=write",
                "--bs=1M",
                "--size=65M",
                "--fsync=64",
                "--output-format=json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        sync = json.loads(run.stdout)["jobs"][0]["sync"]
        assert sync["total_ios"] == 1
        return sync["lat_ns"]["mean"] / 1e6

    fio_ms = sorted(fio_fsync_ms() for _ in range(3))[1]
    assert 0.2 < ours / fio_ms < 5.0, (ours, fio_ms)


def torch_randn_64mib():
    import torch

    return torch.randn(16 << 20)


def test_two_data_roots_give_separate_results_and_tmpfs_cannot_be_cold(tmp_path, shared_data_dir):
    if not os.path.isdir("/dev/shm") or _findmnt_type("/dev/shm") != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm here")
    shm_root = tempfile.mkdtemp(prefix="edge-bench-root-", dir="/dev/shm")
    out = tmp_path / "roots.json"
    try:
        result = run_pytest(
            "benchmarks/test_pagecache.py",
            "benchmarks/test_training.py",
            "--profile",
            "smoke",
            "--data-dir",
            shared_data_dir,
            "--data-root",
            f"ram={shm_root}",
            "--benchmark-json",
            str(out),
            "-rs",
        )
    finally:
        shutil.rmtree(shm_root, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "tmpfs keeps files in memory: a cold read is impossible there" in result.stdout
    results = {b["name"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    disk_type = _findmnt_type(shared_data_dir)
    for name, info in results.items():
        root = info["data_root"]
        assert root in ("data-dir", "ram") and name.endswith(f"on-{root}]")
        assert info["fs_type"] == ("tmpfs" if root == "ram" else disk_type), name
    assert not any("cold" in n and "on-ram" in n for n in results), "no cold result on tmpfs"
    assert any(n.startswith("test_training_epoch") and n.endswith("on-ram]") for n in results)

    cold = results["test_read[cold-raw-32px-on-data-dir]"]
    warm = results["test_read[warm-raw-32px-on-data-dir]"]
    assert cold["resident_frac_before"] <= 0.01 and warm["resident_frac_before"] >= 0.99
    assert cold["eviction_method"] in ("fadvise", "drop_caches") and cold["fs_type"] == disk_type
    # This process's own fetch from storage is whole pages of the files: no other process adds to it.
    assert abs(cold["proc_read_mb"] - cold["read_pages_mb"]) / cold["read_pages_mb"] < 0.05
    assert cold["disk_read_mb"] >= 0.95 * cold["read_pages_mb"]
    assert warm["proc_read_mb"] == 0 and warm["mem_available_mb_at_start"] > 0


def test_dataloader_results_and_the_fastest_configuration(tmp_path, shared_data_dir):
    out = tmp_path / "dl.json"
    result = run_pytest(
        "benchmarks/test_dataloader.py",
        "--profile",
        "smoke",
        "--data-dir",
        shared_data_dir,
        "--benchmark-json",
        str(out),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Smoke takes one round of each: no interval, so no configuration is called faster than the other.
    assert "edge-bench: fastest loader here: no clear winner — num_workers=" in result.stdout
    run = json.loads(out.read_text())
    fastest = run["edge_bench"]["fastest_loader"]
    assert fastest["samples_per_s"] > 0 and "num_workers" in fastest["config"]
    loaders = [b["extra_info"] for b in run["benchmarks"] if b["name"].startswith("test_loader_")]
    assert {info["num_workers"] for info in loaders} == {0, 1}
    for info in loaders:
        assert info["first_batch_s"] > 0 and info["cpu_util_pct"] > 0 and info["samples_per_s"] > 0
        assert info["torch_threads_main"] >= 1 and info["thread_policy"] == "default"
        assert info["torch_threads_worker"] == (1 if info["num_workers"] else None)
    breakdown = next(b["extra_info"] for b in run["benchmarks"] if b["name"].startswith("test_stall_breakdown"))
    assert breakdown["resident_frac_before_cold"] <= 0.01 and breakdown["resident_frac_before_warm"] >= 0.99
    # The attribution is the differences of the three measured epochs (exactly), clipped at zero.
    epoch = {s: breakdown[f"{s}_epoch_s"] for s in ("synthetic", "warm", "cold")}
    assert all(v > 0 for v in epoch.values())
    assert breakdown["prep_stall_raw_s"] == pytest.approx(epoch["warm"] - epoch["synthetic"], abs=1e-12)
    assert breakdown["fetch_stall_raw_s"] == pytest.approx(epoch["cold"] - epoch["warm"], abs=1e-12)
    assert breakdown["prep_stall_s"] == max(0.0, breakdown["prep_stall_raw_s"])
    assert breakdown["fetch_stall_s"] == max(0.0, breakdown["fetch_stall_raw_s"])
    stalls = breakdown["prep_stall_s"] + breakdown["fetch_stall_s"]
    assert breakdown["stall_frac"] == pytest.approx(stalls / epoch["cold"])
    samples = breakdown["samples_per_epoch"]
    for source, seconds in epoch.items():
        assert breakdown[f"{source}_samples_per_s"] == pytest.approx(samples / seconds)
