"""DataLoader configurations, and where the stall comes from.

``test_loader_pass``: one round is one full pass of the loader over the training split
(decode + the training transforms + collate), nothing else — the loader's own rate.
``test_loader_training``: one round is one training epoch through that loader, so the
stall is seen against real compute. The data is warm (in the page cache) for both.
``test_stall_breakdown``: the data-stall differential method (Mohan et al., VLDB 2021):
synthetic, warm and cold epochs of the same model; their differences attribute the stall.
"""

import os

import pytest

from bench_support.measure import pagecache
from bench_support.measure.diskio import storage_of
from bench_support.workloads.breakdown import StallBreakdown
from bench_support.workloads.data import make_loader
from bench_support.workloads.datasets import image_files
from bench_support.workloads.loading import LoaderUnderTest, meaningful, thread_policy
from bench_support.workloads.training import TrainingRun

pytestmark = pytest.mark.benchmark(group="dataloader")

#: --jetson-power-modes runs this grid once per nvpmodel mode (the time/energy trade-off per mode).
POWER_MODE_SWEEP = True

# image_size: the loader-only pass also reads study-sized 224 px JPEGs (textured, 10-30 KB), whose decoding is
# the cost workers hide; the 32 px ones (~1 KB) decode in microseconds.
GRID = {
    "smoke": {"image_size": [32], "num_workers": [0, 1], "prefetch_factor": [2], "pin_memory": [False],
              "persistent_workers": [False], "data_root": ["data-dir"]},
    "quick": {"image_size": [32, 224], "num_workers": [0, 1, 2], "prefetch_factor": [2], "pin_memory": [False],
              "persistent_workers": [False], "data_root": ["data-dir"]},
    "full": {"image_size": [32, 224], "num_workers": [0, 1, 2, 4], "prefetch_factor": [2, 4],
             "pin_memory": [False, True], "persistent_workers": [False, True], "data_root": ["data-dir"]},
}  # fmt: skip
GRID_FILTER = meaningful
MODEL, OPTIMIZER, BATCH, IMAGE_SIZE = "mobilenet_v3_small", "sgd", 16, 32


def test_loader_pass(harness, profile, suite, image_datasets, loader_config, image_size):
    train, _, info = image_datasets(image_size)
    loader = LoaderUnderTest(train, BATCH, loader_config, suite.thread_policy)
    with thread_policy(suite.thread_policy, loader_config["num_workers"]) as threads:
        harness.run(loader.one_pass, profile.loader_pass, setup=loader.cpu.start, teardown=loader.cpu.stop)

    n = harness.measured_rounds
    data_mb = info.get("dataset_mb", 0) * info["train_samples"] / (info["train_samples"] + info["val_samples"])
    harness.extra_info.update(loader.config_info(threads, n), **loader.pass_figures(n, data_mb))
    harness.extra_info.update(cores=os.cpu_count(), dataset=info["dataset"], image_size=image_size)


def test_loader_training(harness, profile, suite, image_datasets, loader_config):
    train, val, info = image_datasets(IMAGE_SIZE)
    loader = LoaderUnderTest(train, BATCH, loader_config, suite.thread_policy)
    run = TrainingRun(MODEL, OPTIMIZER, loader.loader, make_loader(val, 64, shuffle=False), info["num_classes"])
    with thread_policy(suite.thread_policy, loader_config["num_workers"]) as threads:
        harness.run(run.epoch, profile.loader_training, setup=loader.cpu.start, teardown=loader.cpu.stop)

    harness.extra_info.update(
        run.figures(harness.measured_rounds), **loader.config_info(threads, harness.measured_rounds)
    )
    harness.extra_info.update(measure="training", model=MODEL, batch=BATCH, dataset=info["dataset"])


def test_stall_breakdown(harness, profile, suite, image_datasets, data_root):
    """Per round: a synthetic and a warm epoch (untimed setup), then the data is evicted
    and verified cold, and the cold epoch is the timed round."""
    train, val, info = image_datasets(IMAGE_SIZE, data_root)
    storage = storage_of(info["dataset_dir"])
    method = pagecache.choose_method(suite.cache_drop, storage["fs_type"])
    breakdown = StallBreakdown(MODEL, OPTIMIZER, train, val, BATCH, info["num_classes"], image_files(train), method)
    harness.run(breakdown.cold_epoch, profile.stall_breakdown, setup=breakdown.setup)

    harness.extra_info.update(breakdown.figures(harness.measured_rounds), **storage)
    harness.extra_info.update(eviction_method=method, data_root=data_root, model=MODEL, batch=BATCH, num_workers=0)
    harness.extra_info.update(dataset=info["dataset"], dataset_mb=info.get("dataset_mb"), samples_per_epoch=len(train))
