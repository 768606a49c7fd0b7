"""Checkpoint writes: target filesystem x write mode x payload x overwrite-or-new.

One round is one checkpoint write, timed as a whole by pytest-benchmark and phase by
phase by the writer (serialise+write, fsync, rename, directory fsync; medians over the
rounds in extra_info). Before every round, untimed: ``sync`` (so no earlier write's
dirty pages are flushed inside this one) and, for the new-file case, removal of the
previous round's file. The filesystem and block device are detected, never assumed.
"""

import os

import pytest

from bench_support.measure.diskio import storage_of
from bench_support.measure.machine import filesystem_of
from bench_support.workloads import checkpoint, crashcheck

pytestmark = pytest.mark.benchmark(group="checkpoint")

#: Each trial pass over the grid in one fresh process (not one per benchmark): the payloads are built once for it.
ISOLATE = "trial"

GRID = {
    "smoke": {"target": ["project", "shm"], "mode": ["durable"], "payload": ["mobilenet_v3_small-weights"],
              "existing": ["overwrite"]},
    # quick: the smallest and the largest payload; the size axis in between is full's (a third of quick's time went
    # to this grid, and the middle point told nothing the two ends did not).
    "quick": {"target": ["project", "shm"], "mode": ["durable", "atomic", "plain"],
              "payload": ["mobilenet_v3_small-weights", "resnet18-weights+adam"],
              "existing": ["overwrite", "newfile"]},
    "full": {"target": ["project", "shm"], "mode": ["durable", "atomic", "plain"],
             "payload": ["mobilenet_v3_small-weights", "mobilenet_v3_small-weights+adam", "resnet18-weights",
                         "resnet18-weights+adam"],
             "existing": ["overwrite", "newfile"]},
}  # fmt: skip


@pytest.fixture(scope="module")
def payload_states():
    """Each payload built once for this module, and freed with it."""
    states = {}

    def state(name):
        if name not in states:
            states[name] = checkpoint.build_payload(name)
        return states[name]

    yield state
    states.clear()


def test_checkpoint_write(harness, profile, payload_states, ckpt_target_dir, target, mode, payload, existing):
    writes = checkpoint.CheckpointRounds(payload_states(payload), ckpt_target_dir, mode, existing)
    harness.run(writes.write, profile.checkpoint, setup=writes.setup)

    info = harness.extra_info
    info.update(storage_of(ckpt_target_dir), target=target, write_mode=mode, existing=existing, payload=payload)
    info.update(checkpoint.durability(mode, info["fs_type"]))
    info.update(writes.figures(harness.measured_rounds))


def test_checkpoint_crash_consistency(harness, suite, tmp_path):
    """SIGKILL a durable, atomic writer at random moments; no trial may tear the checkpoint."""
    if not suite.crash_trials:
        pytest.skip("crash check is off: enable it with --crash-trials N (e.g. 200)")
    reports = []
    harness.run(lambda: reports.append(crashcheck.run(str(tmp_path), suite.crash_trials)), rounds=1)
    report = reports[-1]
    harness.extra_info.update(report.as_dict(), **(filesystem_of(str(tmp_path)) or {}))
    checkpoint.remove_stale_temps(os.path.join(str(tmp_path), "crash-check.pt"))
    assert report.torn == 0, f"{report.torn} of {report.trials} killed writes left a torn checkpoint"
    assert report.stale_temps_left == 0
