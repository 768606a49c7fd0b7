"""Phase 1, "at the factory" (inside the worker): train on synthetic images, write the checkpoint.

:func:`pretrain` renders many synthetic images in memory, trains on them under
photometric augmentation, re-estimates the BatchNorm statistics at the fine-tune size
and measures the synthetic validation accuracy there. The parent side (what to
pretrain, the cache) is :mod:`bench_support.continual.factory`.

The factory trains on a catalogue wider than the four classes it ships
(:data:`CATALOGUE`: four colours by four shapes), then keeps only those four outputs.
A backbone trained on orange/blue squares and circles alone learns "orange or blue"
and "a corner or not", which is all those classes need and too little to tell a new
class apart: on the stand-ins, triangles were taken for squares and a new colour for a
known one. Trained on more colours and outlines, as a backbone trained on a large
dataset is, its features separate what the device meets next. The stand-ins' new
classes (green, triangles) are in no part of the catalogue.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from bench_support.continual.incremental import keep_rows
from bench_support.continual.model import build_cl_model, load_imagenet_backbone
from bench_support.workloads.checkpoint import save_checkpoint
from bench_support.workloads.data import CLASSES, NORM_MEAN, NORM_STD, image_folders, make_loader
from bench_support.workloads.drawing import render
from bench_support.workloads.training import evaluate

PRETRAIN_BATCH = 32
PRETRAIN_LR = 5e-3
#: What the factory trains on; it ships the outputs of ``CLASSES`` only.
CATALOGUE = tuple(
    f"{c}_{s}" for c in ("orange", "blue", "red", "yellow") for s in ("circle", "square", "pentagon", "rhombus")
)
AUGMENTATIONS = "flips, light fall-off, vignette, exposure, white balance, contrast, shading, grain, blur, noise"


def factory_images(count: int, size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic images (uint8, N x 3 x size x size) and labels, the catalogue round-robin.

    Rendered in memory by the synthetic set's own renderer: the factory needs many more
    images than the on-disk set holds, and never reads them twice.
    """
    rng = np.random.default_rng([seed, 64, count])
    pixels = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        pixels[i] = np.asarray(render(CATALOGUE[i % len(CATALOGUE)], size, rng))
    labels = torch.arange(count) % len(CATALOGUE)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), labels


def photometric_augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips and the light of a real scene, for a uint8 batch; returns it normalised.

    Per image: horizontal/vertical flip, a light fall-off in a random direction, a
    vignette, exposure and white balance (+-20 % per channel), contrast, a blotchy
    low-frequency shading, a surface grain, sensor noise; per batch: a defocus blur.
    None of it changes colour class or outline, so the model learns them under
    conditions a camera meets, and the pretrained model already does well on photos
    before any fine-tuning.
    """
    n, _, h, w = batch.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    x = batch.float() / 255
    for dim in (3, 2):
        flip = rand(n) < 0.5
        x[flip] = x[flip].flip(dim)
    v, u = torch.meshgrid(torch.linspace(-0.5, 0.5, h), torch.linspace(-0.5, 0.5, w), indexing="ij")
    angle = rand(n, 1, 1) * 2 * np.pi
    falloff = 1 + 0.6 * rand(n, 1, 1) * (torch.cos(angle) * u + torch.sin(angle) * v)
    vignette = 1 - rand(n, 1, 1) * (u**2 + v**2)
    exposure = (0.7 + 0.5 * rand(n, 1, 1, 1)) * (1 + 0.4 * (rand(n, 3, 1, 1) - 0.5))
    x = x * (falloff * vignette).unsqueeze(1) * exposure
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (0.7 + 0.6 * rand(n, 1, 1, 1))
    blotches = nn.functional.interpolate(rand(n, 1, 8, 8), size=(h, w), mode="bicubic", align_corners=False)
    x = x * (1 + 0.3 * rand(n, 1, 1, 1) * (blotches - 0.5))
    # A surface's grain (wood, cloth weave): fine wavy stripes in a random direction,
    # 1.5-5 px apart at 64 px, on half the images.
    angle = rand(n, 1, 1) * np.pi
    along = (torch.cos(angle) * u + torch.sin(angle) * v) * w
    period = (1.5 + 3.5 * rand(n, 1, 1)) * (w / 64)
    grain = torch.sin(2 * np.pi * along / period + 6 * blotches[:, 0] + 2 * np.pi * rand(n, 1, 1))
    x = x * (1 + (rand(n, 1, 1) < 0.5) * 0.15 * rand(n, 1, 1) * grain).unsqueeze(1)
    if rand(1).item() < 0.7:
        from torchvision.transforms.v2.functional import gaussian_blur

        sigma = 0.3 + 1.2 * (h / 64) * rand(1).item()
        kernel = 2 * round(2 * sigma) + 1
        x = gaussian_blur(x, [kernel, kernel], [sigma, sigma])
    x = x + 0.03 * rand(n, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    mean_t = torch.tensor(NORM_MEAN).view(1, 3, 1, 1)
    std_t = torch.tensor(NORM_STD).view(1, 3, 1, 1)
    return (x.clamp(0, 1) - mean_t) / std_t


def recalibrate_batchnorm(model: nn.Module, loader) -> None:
    """Re-estimate every BatchNorm's statistics as a plain average over ``loader``.

    The factory trains at 64 px and the fine-tune runs at 128: the statistics are taken
    at the fine-tune size. (And torchvision's MobileNetV3 updates them with momentum
    0.01: after a short pretraining they still hold mostly their initial values, and
    the model in eval mode predicts one class until they are re-estimated.)
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for inputs, _ in loader:
            model(inputs)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def pretrain(config: Dict[str, Any], progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Train on synthetic images and write the checkpoint ``config["output"]`` (``progress(step, steps)``).

    ``factory_images`` images at ``factory_size`` px (a quarter of the pixels of 128:
    4x cheaper per step), photometric augmentation, Adam with a one-cycle schedule
    (peak ``PRETRAIN_LR``); then the BatchNorm statistics are re-estimated on the
    on-disk synthetic training set at the fine-tune size, and the synthetic validation
    accuracy is measured there.
    """
    seed = config["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_cl_model(config["model"], num_classes=len(CATALOGUE))
    loaded = None
    if config["weights"] == "imagenet":
        loaded = load_imagenet_backbone(model, config["imagenet_path"])
    start = time.perf_counter()
    images, labels = factory_images(config["factory_images"], config["factory_size"], seed)
    render_s = time.perf_counter() - start
    steps_per_epoch = max(1, len(images) // PRETRAIN_BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=PRETRAIN_LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=PRETRAIN_LR, total_steps=config["epochs"] * steps_per_epoch
    )
    losses = []
    steps = config["epochs"] * steps_per_epoch
    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for step in range(steps_per_epoch):
            take = order[step * PRETRAIN_BATCH : (step + 1) * PRETRAIN_BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(photometric_augment(images[take], gen)), labels[take])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
            if progress is not None:
                progress(epoch * steps_per_epoch + step + 1, steps)
        losses.append(total / steps_per_epoch)
    del images
    keep_rows(model, [CATALOGUE.index(c) for c in CLASSES])
    train_set, val_set = image_folders(config["synth_dir"], config["image_size"])
    recalibrate_batchnorm(model, make_loader(train_set, 64, shuffle=False))
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, make_loader(val_set, 64, shuffle=False), torch.device("cpu"))
    save_checkpoint({"model": model.state_dict(), "classes": list(CLASSES)}, config["output"], mode="durable")
    return {
        "pretrain_s": round(seconds, 3),
        "pretrain_render_s": round(render_s, 3),
        "pretrain_epochs": config["epochs"],
        "pretrain_images": config["factory_images"],
        "pretrain_image_size": config["factory_size"],
        "pretrain_augment": AUGMENTATIONS,
        "pretrain_catalogue": list(CATALOGUE),
        "pretrain_losses": [round(v, 4) for v in losses],
        "pretrain_synth_acc": accuracy,
        "synth_acc_image_size": config["image_size"],
        "imagenet_tensors_loaded": loaded,
    }
