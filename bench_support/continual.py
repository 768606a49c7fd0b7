"""On-device continual learning: pretrain on synthetic images, fine-tune on photos.

The two phases of the seed's robot:
- "at the factory": :func:`pretrain` trains the model on the generated synthetic set
  and leaves a checkpoint (cached: one per model, image size, dataset and recipe);
- "on the device": :class:`FineTune` loads it and fine-tunes on the photos, one epoch at
  a time, and after each epoch measures accuracy (held-out photos, synthetic validation
  set), memory three ways and the latency of a durable checkpoint write per target.

Both run inside a fresh worker process (:mod:`bench_support.cl_worker`), so the memory
figures are the fine-tune's own: not the pytest process's, and not those of the
configuration that ran before it (glibc keeps freed heap resident and hands it out
again, which would make the second configuration look leaner than it is).

Memory (MB = 2**20 bytes), as the seed defines it:
- ``mem_peak_abs_mb``: ``ru_maxrss``, the kernel's peak RSS of the process so far,
  unit-normalised (KiB on Linux, bytes on macOS);
- ``mem_delta_mb``: that peak minus its value just before the first fine-tune step —
  the growth due to training: gradients, optimizer state, saved activations;
- ``mem_now_mb``: the RSS at the end of the epoch (psutil).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, save_checkpoint
from .data import CLASSES, NORM_MEAN, NORM_STD, image_folders, make_loader, render
from .memory import MB, rss_hwm_mb, rss_now_mb, ru_maxrss_mb
from .photos import load_photo
from .training import build_model, evaluate, train_epoch

FINETUNE_MODES = ("whole", "head")
#: The scenario's models: the suite's small CNN (default) and two torchvision ones.
CL_MODELS = ("smallcnn", "mobilenet_v3_small", "resnet18")
PRETRAIN_BATCH = 32
PRETRAIN_LR = 5e-3


class ScenarioError(Exception):
    """The scenario cannot run as configured; the message is one line for the user."""


# --- data -------------------------------------------------------------------------------


def photo_transform(image_size: int, train: bool):
    """Short side to ``image_size``, centre square crop (the shapes keep their aspect).

    Training adds what a handful of photos lacks: a random crop of 50-100 % of the
    area, a flip, and jittered brightness, contrast and saturation. Measured on the
    stand-ins (3 shuffles x 2 seeds): whole-network Adam 0.875-0.94 with it, 0.81-0.94
    without.
    """
    from torchvision import transforms

    steps: list = [transforms.Resize(image_size)]
    if train:
        steps += [
            transforms.RandomResizedCrop(image_size, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2),
        ]
    else:
        steps.append(transforms.CenterCrop(image_size))
    steps += [transforms.ToTensor(), transforms.Normalize(NORM_MEAN, NORM_STD)]
    return transforms.Compose(steps)


class PhotoDataset(torch.utils.data.Dataset):
    """(path, class index) pairs, decoded from disk at every epoch as a robot's loader would."""

    def __init__(self, items: Sequence[Tuple[str, int]], image_size: int, train: bool) -> None:
        self.items = list(items)
        self.image_size = image_size
        self.transform = photo_transform(image_size, train)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, target = self.items[index]
        return self.transform(load_photo(path, self.image_size)), target


def label_space(photo_classes: Sequence[str]) -> Tuple[List[str], bool]:
    """(the model's output classes, whether they are the synthetic set's).

    Photos of the synthetic classes (or some of them) keep the pretrained 4-way head,
    so the synthetic validation accuracy still means something (forgetting); other
    classes get a new final layer and no synthetic accuracy.
    """
    if set(photo_classes) <= set(CLASSES):
        return list(CLASSES), True
    return sorted(photo_classes), False


# --- the model --------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Ten 3x3 convolutions (16 to 128 channels, five stride-2 stages), global max pooling.

    The default model of the scenario, 0.37 M parameters. Max pooling rather than the
    usual average: "is there a corner anywhere" is what tells a square from a circle, and
    a detector's maximum does not fade with the object's size or the picture's. Measured
    on a 2-core CPU: it learns the shapes from random weights in ~1 minute at 64 px and
    keeps them at 128 px, where mobilenet_v3_small and resnet18 (average pooling) stayed
    at chance on shape after several minutes.
    """

    WIDTHS = (16, 32, 64, 64, 128)

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = 3
        for width in self.WIDTHS:
            for stride in (2, 1):
                layers += [
                    nn.Conv2d(channels, width, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_cl_model(name: str, num_classes: int) -> nn.Module:
    if name == "smallcnn":
        return SmallCNN(num_classes)
    if name not in CL_MODELS:
        raise ScenarioError(f"unknown model {name!r}; expected one of {', '.join(CL_MODELS)}")
    return build_model(name, num_classes)


def head_of(model: nn.Module) -> nn.Module:
    """The classifier block: ``fc`` (ResNet) or ``classifier`` (MobileNet, VGG)."""
    for name in ("fc", "classifier"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ScenarioError(f"{type(model).__name__}: no classifier head (fc or classifier) to fine-tune")


def replace_final_layer(model: nn.Module, num_classes: int) -> None:
    """A fresh final Linear layer with ``num_classes`` outputs."""
    head = head_of(model)
    if isinstance(head, nn.Linear):
        model.fc = nn.Linear(head.in_features, num_classes)
        return
    index = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
    head[index] = nn.Linear(head[index].in_features, num_classes)


def prepare_finetune(model: nn.Module, mode: str) -> List[nn.Parameter]:
    """Freeze what ``mode`` does not train; returns the parameters to optimise."""
    if mode not in FINETUNE_MODES:
        raise ScenarioError(f"unknown fine-tune mode {mode!r}; expected one of {', '.join(FINETUNE_MODES)}")
    if mode == "head":
        model.requires_grad_(False)
        head_of(model).requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def frozen_bn_train_mode(model: nn.Module) -> None:
    """Training mode with every BatchNorm layer in eval: statistics from the factory.

    A batch of 4 photos cannot estimate BatchNorm statistics; updating them from such
    batches wrecks what pretraining learnt (measured: whole-network SGD fell to chance).
    The layers' affine weights still train in a whole-network fine-tune.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def head_only_train_mode(model: nn.Module) -> None:
    """Training mode for the head only: the frozen backbone keeps its BatchNorm statistics."""
    model.eval()
    head_of(model).train()


#: Fine-tune learning rate; the layers below the head get BACKBONE_LR_SCALE of it.
FINETUNE_LR = 1e-3
BACKBONE_LR_SCALE = 0.3


def param_groups(model: nn.Module, params: Sequence[nn.Parameter]) -> List[Dict[str, Any]]:
    """The head at ``FINETUNE_LR``, the rest of ``params`` at ``BACKBONE_LR_SCALE`` of it.

    The pretrained layers need less change than the head; at the full rate a
    whole-network fine-tune on batches of 4 photos sometimes lost what pretraining
    had learnt (held-out accuracy down from 0.875 to 0.81 on the stand-ins).
    """
    head = {id(p) for p in head_of(model).parameters()}
    groups = [
        {"params": [p for p in params if id(p) in head], "lr": FINETUNE_LR},
        {"params": [p for p in params if id(p) not in head], "lr": FINETUNE_LR * BACKBONE_LR_SCALE},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(name: str, groups) -> torch.optim.Optimizer:
    """The seed's Adam, or SGD with momentum 0.9, at the rates of ``groups``.

    The suite's training SGD (lr 0.01) is for training from scratch: on a whole network
    with batches of 4 it collapsed to one class within an epoch (measured).
    """
    if name == "adam":
        return torch.optim.Adam(groups, lr=FINETUNE_LR)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=FINETUNE_LR, momentum=0.9)
    raise ScenarioError(f"unknown optimizer {name!r}; expected adam or sgd")


def imagenet_weights_path(model_name: str) -> Tuple[str, str]:
    """(where torchvision would cache the model's ImageNet weights, the file's name)."""
    from torchvision import models

    weights = models.get_model_weights(model_name).DEFAULT
    filename = os.path.basename(weights.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename), filename


def load_imagenet_backbone(model: nn.Module, path: str) -> int:
    """Load cached ImageNet weights into ``model`` except the 1000-class final layer."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return len(usable)


# --- phase 1: at the factory ------------------------------------------------------------


def recalibrate_batchnorm(model: nn.Module, loader) -> None:
    """Re-estimate every BatchNorm's statistics as a plain average over ``loader``.

    The factory trains at 64 px and the fine-tune runs at 128: the statistics are taken
    at the fine-tune size. (And torchvision's MobileNetV3 updates them with momentum
    0.01: after a short pretraining they still hold mostly their initial values, and
    the model in eval mode predicted one class: synthetic accuracy 0.25 before, 0.68 after.)
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


def factory_images(count: int, size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic images (uint8, N x 3 x size x size) and labels, classes round-robin.

    Rendered in memory by the synthetic set's own renderer: the factory needs many more
    images than the on-disk set holds, and never reads them twice.
    """
    rng = np.random.default_rng([seed, 64, count])
    pixels = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        pixels[i] = np.asarray(render(CLASSES[i % len(CLASSES)], size, rng))
    labels = torch.arange(count) % len(CLASSES)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), labels


def photometric_augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips and the light of a real scene, for a uint8 batch; returns it normalised.

    Per image: horizontal/vertical flip, a light fall-off in a random direction, a
    vignette, exposure and white balance (+-20 % per channel), contrast, a blotchy
    low-frequency shading, a surface grain, sensor noise; per batch: a defocus blur.
    None of it changes colour class or outline, so the model learns them under
    conditions a camera meets. Measured on all 48 stand-in photos before any
    fine-tuning: 0.83-0.90 without it, 0.88-1.0 with it (three pretraining seeds each).
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


def pretrain(config: Dict[str, Any]) -> Dict[str, Any]:
    """Train on synthetic images and write the checkpoint ``config["output"]``.

    ``factory_images`` images at ``factory_size`` px (a quarter of the pixels of 128:
    4x cheaper per step), photometric augmentation, Adam with a one-cycle schedule
    (peak ``PRETRAIN_LR``); then the BatchNorm statistics are re-estimated on the
    on-disk synthetic training set at the fine-tune size, and the synthetic validation
    accuracy is measured there.
    """
    seed = config["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_cl_model(config["model"], num_classes=len(CLASSES))
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
    for _ in range(config["epochs"]):
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
        losses.append(total / steps_per_epoch)
    del images
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
        "pretrain_augment": "flips, light fall-off, vignette, exposure, white balance, contrast, shading, grain, "
        "blur, noise",
        "pretrain_losses": [round(v, 4) for v in losses],
        "pretrain_synth_acc": accuracy,
        "synth_acc_image_size": config["image_size"],
        "imagenet_tensors_loaded": loaded,
    }


# --- phase 2: on the device -------------------------------------------------------------


class _Scheduled:
    """An optimizer whose step also steps its learning-rate schedule (what train_epoch calls)."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule) -> None:
        self.optimizer, self.schedule = optimizer, schedule

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizer.step()
        self.schedule.step()


class FineTune:
    """Everything loaded and measured before the first step; then epoch by epoch."""

    def __init__(self, config: Dict[str, Any]) -> None:
        torch.manual_seed(config["seed"])
        self.config = config
        self.device = torch.device("cpu")
        classes, self.synthetic_labels = label_space(config["photo_classes"])
        self.classes = classes
        index = {label: i for i, label in enumerate(classes)}

        self.model = build_cl_model(config["model"], num_classes=len(CLASSES))
        state = torch.load(config["pretrained"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        if not self.synthetic_labels:
            replace_final_layer(self.model, len(classes))
        self.mode = config["finetune"]
        params = prepare_finetune(self.model, self.mode)
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = build_optimizer(config["optimizer"], param_groups(self.model, params))

        size, batch, workers = config["image_size"], config["batch"], config["workers"]
        train = PhotoDataset([(p, index[c]) for p, c in config["train"]], size, train=True)
        held = PhotoDataset([(p, index[c]) for p, c in config["held_out"]], size, train=False)
        self.train_loader = make_loader(train, batch, num_workers=workers, seed=config["seed"])
        # Cosine decay to 0 over the whole fine-tune, stepped per batch: the last epoch
        # settles instead of ending on a noisy step (measured: whole-network Adam ended
        # 0.81 where it had been 0.94 an epoch earlier without it; 0.875-1.0 with it).
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(1, config["epochs"] * len(self.train_loader))
        )
        self.stepper = _Scheduled(self.optimizer, schedule)
        # Evaluation in batches no larger than training's: it must not set the memory peak.
        self.held_loader = make_loader(held, batch, shuffle=False)
        self.synth_loader = None
        if self.synthetic_labels:
            _, synth_val = image_folders(config["synth_dir"], size)
            self.synth_loader = make_loader(synth_val, batch, shuffle=False)
        self.targets: Dict[str, str] = config["ckpt_dirs"]  # column label -> directory
        self.epoch = 0

        before = self._accuracies()
        # The baseline: the peak so far, just before the first fine-tune step.
        self.baseline_mb = ru_maxrss_mb()
        self.ready = {
            "acc_before": before[0],
            "synth_acc_before": before[1],
            "mem_baseline_mb": round(self.baseline_mb, 2),
            "mem_now_before_mb": round(rss_now_mb(), 2),
            "trainable_params": self.trainable,
            "total_params": sum(p.numel() for p in self.model.parameters()),
            "model_classes": classes,
            "torch_threads": torch.get_num_threads(),
        }

    def _accuracies(self) -> Tuple[float, Optional[float]]:
        held = evaluate(self.model, self.held_loader, self.device)
        synth = evaluate(self.model, self.synth_loader, self.device) if self.synth_loader else None
        return held, synth

    def train_epoch(self) -> Dict[str, Any]:
        mode = head_only_train_mode if self.mode == "head" else frozen_bn_train_mode
        result = train_epoch(self.model, self.train_loader, self.stepper, self.device, train_mode=mode)
        self.epoch += 1
        self._last = result
        return {"time_s": result.epoch_s}

    def after_epoch(self) -> Dict[str, Any]:
        """The epoch's row: accuracies, memory, one durable checkpoint write per target."""
        # Memory first, untimed but before evaluation and checkpointing can move it.
        peak, now, hwm = ru_maxrss_mb(), rss_now_mb(), rss_hwm_mb()
        acc, synth = self._accuracies()
        row: Dict[str, Any] = {
            "epoch": self.epoch,
            "acc": acc,
            "synth_acc": synth,
            "time_s": round(self._last.epoch_s, 4),
            "loss": self._last.loss,
            "fetch_stall_s": round(self._last.fetch_stall_s, 4),
            "mem_peak_abs_mb": round(peak, 2),
            "mem_delta_mb": round(peak - self.baseline_mb, 2),
            "mem_now_mb": round(now, 2),
            "mem_hwm_mb": None if hwm is None else round(hwm, 2),
            "ckpt": {},
        }
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "classes": self.classes,
        }
        for label, directory in self.targets.items():
            path = os.path.join(directory, "continual-latest.pt")
            try:
                timings = save_checkpoint(state, path, mode="durable")
                row["ckpt"][label] = {"ms": round(timings.total_ms, 3), "mb": round(timings.nbytes / MB, 3)}
            except CheckpointError as exc:
                row["ckpt"][label] = {"ms": None, "error": str(exc)}
        return row
