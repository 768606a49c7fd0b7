"""Reading the training dataset cold, partly cached and warm, and a training run that starts cold.

Before every round, untimed, the dataset's files are put into the round's cache state
and that state is *measured* (mincore): a cold round starts with <= 1 % of the bytes
cached, a warm one with >= 99 %, ``r25``/``r50``/``r75`` within 5 points of 25/50/75 %
(a fixed subset of whole files made resident after evicting all), or the benchmark is
skipped with the reason. The report draws read time against the measured residency. The
device's /proc/diskstats counters and this process's read_bytes bracket each round.
``raw`` reads the files' bytes; ``decoded`` reads them through the DataLoader with
JPEG decoding and the training transforms.
"""

import pytest

from bench_support.measure.machine import memory_facts
from bench_support.workloads.datasets import image_files
from bench_support.workloads.reads import ColdStart, FileReads

pytestmark = pytest.mark.benchmark(group="pagecache")

CURVE = ["cold", "r25", "r50", "r75", "warm"]
GRID = {
    "smoke": {"cache_state": ["cold", "warm"], "reader": ["raw"], "image_size": [32], "data_root": ["data-dir"]},
    "quick": {"cache_state": CURVE, "reader": ["raw", "decoded"], "image_size": [32], "data_root": ["data-dir"]},
    "full": {"cache_state": CURVE, "reader": ["raw", "decoded"], "image_size": [32, 128], "data_root": ["data-dir"],
             "start_state": CURVE[:-1]},
}  # fmt: skip


def GRID_FILTER(combo):
    """The curve's middle for raw reads; decoded reads (decode time dwarfs I/O here) at its two ends."""
    return combo.get("reader") != "decoded" or combo.get("cache_state") in ("cold", "warm")


def test_read(harness, profile, suite, image_datasets, cache_state, reader, image_size, data_root):
    train, _, info = image_datasets(image_size, data_root)
    reads = FileReads(train, image_files(train), cache_state, reader, info["dataset_dir"], suite.cache_drop)
    mem_available = memory_facts().get("available_mb")
    harness.run(reads.read, profile.pagecache_read, setup=reads.rounds.prepare, teardown=reads.rounds.finish)

    harness.extra_info.update(reads.figures(harness.measured_rounds), mem_available_mb_at_start=mem_available)
    harness.extra_info.update(dataset=info["dataset"], dataset_mb=info.get("dataset_mb"), data_root=data_root)
    harness.extra_info["image_size"] = image_size


@pytest.fixture
def start_state():
    """Where the cold-start training's first epochs start: cold, unless the grid (full) sweeps the residency."""
    return "cold"


def test_training_cold_start(harness, profile, suite, image_datasets, data_root, start_state):
    """Epoch 0 cold (or partly cached), the following epochs warm (the study's protocol), side by side."""
    train, val, info = image_datasets(32, data_root)
    paths, directory = image_files(train), info["dataset_dir"]
    start = ColdStart(train, val, info["num_classes"], paths, directory, suite.cache_drop, start_state)
    rounds = profile.cold_start
    harness.run(start.run.epoch, rounds.measured, setup=start.rounds.prepare, teardown=start.rounds.finish)
    start.warm_epochs(rounds.warmup)

    harness.extra_info.update(start.figures(harness.measured_rounds, rounds.warmup))
    harness.extra_info.update(data_root=data_root, dataset=info["dataset"])
