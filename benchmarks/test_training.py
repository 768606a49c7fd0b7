"""Training epochs: model x batch x optimizer x device x image size.

One round is one epoch through the DataLoader; the warm-up epoch (start-up costs:
allocator growth, first-touch of the data) is run but not counted, as in the Jetson
study. Everything built here (dataset, model, optimiser, loaders) is untimed.
"""

import pytest

from bench_support.measure.diskio import storage_of
from bench_support.measure.memory import added_mb
from bench_support.measure.power import energy_per_sample_mj
from bench_support.workloads.data import make_loader
from bench_support.workloads.training import TrainingRun

pytestmark = pytest.mark.benchmark(group="training")

#: --jetson-power-modes runs this grid once per nvpmodel mode (the time/energy trade-off per mode).
POWER_MODE_SWEEP = True

GRID = {
    "smoke": {"model": ["mobilenet_v3_small"], "batch": [8], "optimizer": ["sgd"], "device": ["cpu"],
              "image_size": [32]},
    "quick": {"model": ["mobilenet_v3_small", "resnet18"], "batch": [16], "optimizer": ["sgd", "adam"],
              "device": ["cpu", "cuda"], "image_size": [32]},
    "full": {"model": ["mobilenet_v3_small", "resnet18", "vgg11"], "batch": [16, 32, 64], "optimizer": ["sgd", "adam"],
             "device": ["cpu", "cuda"], "image_size": [32, 128, 224]},
}  # fmt: skip


def test_training_epoch(
    suite, harness, profile, image_datasets, model, batch, optimizer, torch_device, image_size, data_root
):
    train, val, info = image_datasets(image_size, data_root)
    cuda = torch_device == "cuda"
    run = TrainingRun(
        model,
        optimizer,
        train_loader=make_loader(train, batch, num_workers=0, pin_memory=cuda),
        val_loader=make_loader(val, 64, shuffle=False),
        num_classes=info["num_classes"],
        device=torch_device,
    )
    harness.run(run.epoch, profile.training)

    figures = run.figures(harness.measured_rounds)
    figures["energy_per_sample_mj"] = energy_per_sample_mj(harness.extra_info["energy_j"], figures["samples_measured"])
    figures["rss_train_delta_mb"] = added_mb(harness.extra_info.get("rss_peak_mb"), harness.extra_info["rss_built_mb"])
    harness.extra_info.update(figures, num_workers=0, **info, **storage_of(info["dataset_dir"]))
    if suite.trace_steps:
        harness.extra_info["steps"] = run.step_trace(harness.measured_rounds)
