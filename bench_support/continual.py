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

import torch
from torch import nn

from .checkpoint import CheckpointError, save_checkpoint
from .data import CLASSES, NORM_MEAN, NORM_STD, image_folders, make_loader
from .memory import MB, rss_hwm_mb, rss_now_mb, ru_maxrss_mb
from .photos import load_photo
from .training import build_model, evaluate, train_epoch

FINETUNE_MODES = ("whole", "head")
PRETRAIN_BATCH = 32
PRETRAIN_LR = 5e-3


class ScenarioError(Exception):
    """The scenario cannot run as configured; the message is one line for the user."""


# --- data -------------------------------------------------------------------------------


def photo_transform(image_size: int, train: bool):
    """Short side to ``image_size``, centre square crop (the shapes keep their aspect); training adds a flip."""
    from torchvision import transforms

    steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    if train:
        steps.append(transforms.RandomHorizontalFlip())
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


def build_optimizer(name: str, params) -> torch.optim.Optimizer:
    """The seed's Adam (lr 1e-3), or SGD with momentum 0.9 at a fine-tuning rate (lr 1e-3).

    The suite's training SGD (lr 0.01) is for training from scratch: on a whole network
    with batches of 4 it collapsed to one class within an epoch (measured).
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
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

    torchvision's MobileNetV3 updates them with momentum 0.01: after a short pretraining
    they still hold mostly their initial values, and the model in eval mode predicts
    one class (measured: synthetic accuracy 0.25 = chance before, 0.68 after).
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


class _SteppedOptimizer:
    """An optimizer whose step also steps a learning-rate schedule (what train_epoch calls)."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule) -> None:
        self.optimizer, self.schedule = optimizer, schedule

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizer.step()
        self.schedule.step()


def pretrain(config: Dict[str, Any]) -> Dict[str, Any]:
    """Train on the synthetic set and write the checkpoint ``config["output"]``.

    Adam with a one-cycle schedule (peak lr ``PRETRAIN_LR``): the most accuracy for a
    short CPU budget among the recipes tried; then a BatchNorm recalibration pass.
    """
    torch.manual_seed(config["seed"])
    model = build_model(config["model"], num_classes=len(CLASSES))
    loaded = None
    if config["weights"] == "imagenet":
        loaded = load_imagenet_backbone(model, config["imagenet_path"])
    train_set, val_set = image_folders(config["synth_dir"], config["image_size"])
    train_loader = make_loader(train_set, PRETRAIN_BATCH, seed=config["seed"])
    val_loader = make_loader(val_set, 64, shuffle=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=PRETRAIN_LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=PRETRAIN_LR, total_steps=max(1, config["epochs"] * len(train_loader))
    )
    stepped = _SteppedOptimizer(optimizer, schedule)
    start = time.perf_counter()
    losses = []
    for _ in range(config["epochs"]):
        losses.append(train_epoch(model, train_loader, stepped, torch.device("cpu")).loss)
    recalibrate_batchnorm(model, make_loader(train_set, 64, shuffle=False))
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, val_loader, torch.device("cpu"))
    save_checkpoint({"model": model.state_dict(), "classes": list(CLASSES)}, config["output"], mode="durable")
    return {
        "pretrain_s": round(seconds, 3),
        "pretrain_epochs": config["epochs"],
        "pretrain_images": len(train_set),
        "pretrain_image_size": config["image_size"],
        "pretrain_losses": [round(v, 4) for v in losses],
        "pretrain_synth_acc": accuracy,
        "imagenet_tensors_loaded": loaded,
    }


# --- phase 2: on the device -------------------------------------------------------------


class FineTune:
    """Everything loaded and measured before the first step; then epoch by epoch."""

    def __init__(self, config: Dict[str, Any]) -> None:
        torch.manual_seed(config["seed"])
        self.config = config
        self.device = torch.device("cpu")
        classes, self.synthetic_labels = label_space(config["photo_classes"])
        self.classes = classes
        index = {label: i for i, label in enumerate(classes)}

        self.model = build_model(config["model"], num_classes=len(CLASSES))
        state = torch.load(config["pretrained"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        if not self.synthetic_labels:
            replace_final_layer(self.model, len(classes))
        self.mode = config["finetune"]
        params = prepare_finetune(self.model, self.mode)
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = build_optimizer(config["optimizer"], params)

        size, batch, workers = config["image_size"], config["batch"], config["workers"]
        train = PhotoDataset([(p, index[c]) for p, c in config["train"]], size, train=True)
        held = PhotoDataset([(p, index[c]) for p, c in config["held_out"]], size, train=False)
        self.train_loader = make_loader(train, batch, num_workers=workers, seed=config["seed"])
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
        result = train_epoch(self.model, self.train_loader, self.optimizer, self.device, train_mode=mode)
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
