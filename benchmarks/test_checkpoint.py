"""Checkpoint writes: target filesystem x write mode x payload x overwrite-or-new.

One round is one checkpoint write, timed as a whole by pytest-benchmark and phase by
phase by the writer (serialise+write, fsync, rename, directory fsync; medians over the
rounds in extra_info). Before every round, untimed: ``sync`` (so no earlier write's
dirty pages are flushed inside this one) and, for the new-file case, removal of the
previous round's file. The filesystem and block device are detected, never assumed.
"""

import os
import shutil
import statistics

import pytest

from bench_support import crashcheck
from bench_support.checkpoint import durability, remove_stale_temps, save_checkpoint
from bench_support.diskio import storage_of
from bench_support.machine import filesystem_of
from bench_support.memory import MB
from bench_support.profiles import parametrize_grid

pytestmark = pytest.mark.benchmark(group="checkpoint")

GRID = {
    "smoke": {
        "target": ["project", "shm"],
        "mode": ["durable"],
        "payload": ["mobilenet_v3_small-weights"],
        "existing": ["overwrite"],
    },
    "quick": {
        "target": ["project", "shm"],
        "mode": ["durable", "atomic", "plain"],
        "payload": ["mobilenet_v3_small-weights", "resnet18-weights", "resnet18-weights+adam"],
        "existing": ["overwrite", "newfile"],
    },
    "full": {
        "target": ["project", "shm"],
        "mode": ["durable", "atomic", "plain"],
        "payload": [
            "mobilenet_v3_small-weights",
            "mobilenet_v3_small-weights+adam",
            "resnet18-weights",
            "resnet18-weights+adam",
        ],
        "existing": ["overwrite", "newfile"],
    },
}
ROUNDS = {"smoke": (1, 0), "quick": (8, 1), "full": (30, 2)}  # (measured, warm-up) writes
PHASES = ("write_ms", "fsync_ms", "rename_ms", "dirsync_ms", "total_ms")


def pytest_generate_tests(metafunc):
    user_targets = [value.partition("=")[0] for value in metafunc.config.getoption("ckpt_dir")]
    parametrize_grid(metafunc, GRID, extra={"target": user_targets})


@pytest.fixture(scope="module")
def payloads():
    """name -> state dict to save: a model's weights, optionally with Adam's state."""
    import torch

    from bench_support.training import build_model

    cache = {}

    def get(name):
        if name not in cache:
            model_name, _, what = name.partition("-")
            torch.manual_seed(0)
            model = build_model(model_name, num_classes=10)
            state = {"model": model.state_dict()}
            if what == "weights+adam":
                optimizer = torch.optim.Adam(model.parameters())
                model(torch.randn(2, 3, 32, 32)).sum().backward()
                optimizer.step()  # Adam's two moment buffers exist only after a step
                state["optimizer"] = optimizer.state_dict()
            cache[name] = state
        return cache[name]

    return get


@pytest.fixture
def target_dir(suite, pytestconfig, target, tmp_path_factory):
    if target == "project":
        base = os.path.join(str(pytestconfig.rootpath), ".bench-ckpt")
    elif target == "shm":
        fs = filesystem_of("/dev/shm") if os.path.isdir("/dev/shm") else None
        if not fs or fs["fs_type"] != "tmpfs":
            pytest.skip("no tmpfs at /dev/shm on this machine")
        base = "/dev/shm/edge-bench-ckpt"
    else:
        base = os.path.join(suite.ckpt_dirs[target], "edge-bench-ckpt")
    directory = os.path.join(base, f"{os.getpid()}")
    os.makedirs(directory, exist_ok=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.rmdir(base)
    except OSError:
        pass


def test_checkpoint_write(harness, profile, payloads, target_dir, target, mode, payload, existing):
    state = payloads(payload)
    rounds, warmup = ROUNDS[profile.name]
    timings = []
    counter = iter(range(1_000_000))
    final = os.path.join(target_dir, "latest.pt")
    if existing == "overwrite":
        save_checkpoint(state, final, mode="durable")  # the file a round replaces

    def setup():
        if existing == "newfile":
            for name in os.listdir(target_dir):
                os.unlink(os.path.join(target_dir, name))
            path = os.path.join(target_dir, f"ckpt-{next(counter):05d}.pt")
        else:
            path = final
        os.sync()
        return (path,), {}

    def write(path):
        timings.append(save_checkpoint(state, path, mode=mode))

    harness.run(write, rounds=rounds, warmup_rounds=warmup, setup=setup)

    measured = timings[-harness.measured_rounds :]
    info = harness.extra_info
    info.update(storage_of(target_dir), target=target)
    info.update(durability(mode, info["fs_type"]))
    info.update(write_mode=mode, existing=existing, payload=payload)
    for phase in PHASES:
        values = [getattr(t, phase) for t in measured]
        info[phase] = statistics.median(values) if None not in values else None
    skipped = [p for p in PHASES if info[p] is None]
    if skipped:
        info["phases_not_done"] = f"{', '.join(skipped)}: not part of the {mode} mode"
    info["ckpt_mb"] = measured[-1].nbytes / MB
    info["mb_per_s"] = info["ckpt_mb"] / (info["total_ms"] / 1000.0) if info["total_ms"] else None


def test_checkpoint_crash_consistency(harness, pytestconfig, tmp_path):
    """SIGKILL a durable, atomic writer at random moments; no trial may tear the checkpoint."""
    trials = pytestconfig.getoption("crash_trials")
    if not trials:
        pytest.skip("crash check is off: enable it with --crash-trials N (e.g. 200)")
    reports = []
    harness.run(lambda: reports.append(crashcheck.run(str(tmp_path), trials)), rounds=1)
    report = reports[-1]
    harness.extra_info.update(report.as_dict())
    harness.extra_info.update(filesystem_of(str(tmp_path)) or {})
    remove_stale_temps(os.path.join(str(tmp_path), "crash-check.pt"))
    assert report.torn == 0, f"{report.torn} of {report.trials} killed writes left a torn checkpoint"
    assert report.stale_temps_left == 0
