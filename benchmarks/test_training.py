"""Training epochs: model x batch x optimizer x device x image size.

One round is one epoch through the DataLoader; the warm-up epoch (start-up costs:
allocator growth, first-touch of the data) is run but not counted, as in the Jetson
study. Everything built here (dataset, model, optimiser, loaders) is untimed.
"""

import pytest

from bench_support.data import make_loader
from bench_support.diskio import storage_of
from bench_support.plugin import require_device
from bench_support.power import energy_per_sample_mj
from bench_support.profiles import parametrize_grid
from bench_support.training import TrainingRun

pytestmark = pytest.mark.benchmark(group="training")

GRID = {
    "smoke": {
        "model": ["mobilenet_v3_small"],
        "batch": [8],
        "optimizer": ["sgd"],
        "device": ["cpu"],
        "image_size": [32],
    },
    "quick": {
        "model": ["mobilenet_v3_small", "resnet18"],
        "batch": [16],
        "optimizer": ["sgd", "adam"],
        "device": ["cpu", "cuda"],
        "image_size": [32],
    },
    "full": {
        "model": ["mobilenet_v3_small", "resnet18", "vgg11"],
        "batch": [16, 32, 64],
        "optimizer": ["sgd", "adam"],
        "device": ["cpu", "cuda"],
        "image_size": [32, 128],
    },
}


def pytest_generate_tests(metafunc):
    parametrize_grid(metafunc, GRID)
    user_roots = [value.partition("=")[0] for value in metafunc.config.getoption("data_root")]
    if user_roots:  # only then: the default ids stay comparable with earlier runs
        metafunc.parametrize("data_root", ["data-dir", *user_roots], ids=[f"on-{r}" for r in ["data-dir", *user_roots]])


def test_training_epoch(harness, profile, image_datasets, model, batch, optimizer, device, image_size, data_root):
    require_device(device)
    train, val, info = image_datasets(image_size, data_root)
    run = TrainingRun(
        model,
        optimizer,
        train_loader=make_loader(train, batch, num_workers=0, pin_memory=device == "cuda"),
        val_loader=make_loader(val, 64, shuffle=False),
        num_classes=info["num_classes"],
        device=device,
    )
    harness.run(run.epoch, rounds=profile.rounds, warmup_rounds=profile.warmup_rounds)

    figures = run.figures(harness.measured_rounds)
    energy = harness.extra_info.get("energy_j")
    figures["energy_per_sample_mj"] = energy_per_sample_mj(energy, figures.get("samples_measured", 0))
    harness.extra_info.update(figures)
    harness.extra_info.update(info)
    harness.extra_info["num_workers"] = 0
    harness.extra_info.update(storage_of(info["dataset_dir"]))
