"""Phase 2, "on the device" (inside the worker): fine-tune on the photos, epoch by epoch.

:class:`FineTune` loads the factory checkpoint and the photos, measures the accuracy
and memory before the first step, then per epoch trains (the timed part) and, untimed,
measures accuracy (held-out photos, synthetic validation set), memory three ways and
the latency of a durable checkpoint write per target.

It runs in a fresh worker process (:mod:`bench_support.continual.worker`), so the
memory figures are the fine-tune's own: not the pytest process's, and not those of the
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
from collections import Counter
from typing import Any, Dict, Sequence, Tuple

import torch

from bench_support.continual.incremental import (
    extend_head,
    imprinted_rows,
    label_space,
    per_class_accuracy,
    split_known_new,
)
from bench_support.continual.model import (
    build_cl_model,
    finetune_optimizer,
    frozen_bn_train_mode,
    head_only_train_mode,
    param_groups,
    prepare_finetune,
)
from bench_support.continual.photos import load_photo
from bench_support.measure.memory import rss_hwm_mb, rss_now_mb, ru_maxrss_mb
from bench_support.metrics import MB
from bench_support.workloads.checkpoint import CheckpointError, save_checkpoint
from bench_support.workloads.data import CLASSES, NORM_MEAN, NORM_STD, image_folders, make_loader
from bench_support.workloads.training import train_epoch


def photo_transform(image_size: int, train: bool):
    """Short side to ``image_size``, centre square crop (the shapes keep their aspect).

    Training adds what a handful of photos lacks: a random crop of 50-100 % of the
    area, a flip, and jittered brightness, contrast and saturation, so that a few
    photos seen for a few epochs are not memorised as they are.
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


class ScheduledStepper:
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
        # Everything the worker imports is loaded by now: the floor under its memory figures.
        self.import_mb = ru_maxrss_mb()
        torch.manual_seed(config["seed"])
        self.config = config
        self.device = torch.device("cpu")
        classes, new = label_space(config["photo_classes"])
        self.classes = classes
        index = {label: i for i, label in enumerate(classes)}
        size, batch, workers = config["image_size"], config["batch"], config["workers"]
        train_items = [(p, index[c]) for p, c in config["train"]]
        held = PhotoDataset([(p, index[c]) for p, c in config["held_out"]], size, train=False)
        self.held_loader = make_loader(held, batch, shuffle=False)  # no larger than training's: not the peak
        self.held_counts = Counter(c for _, c in config["held_out"])
        self.synth_loader = None  # no synthetic set given (a worker driven on its own): no forgetting figure
        if config.get("synth_dir"):
            _, synth_val = image_folders(config["synth_dir"], size)
            self.synth_loader = make_loader(synth_val, batch, shuffle=False)

        self.model = build_cl_model(config["model"], num_classes=len(CLASSES))
        state = torch.load(config["pretrained"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        # The factory's model as it came, on the same photos: what the device knew before learning anything.
        pretrained = self._accuracies()
        if new:  # class-incremental: one imprinted row per new class, from its training photos
            plain = make_loader(PhotoDataset(train_items, size, train=False), batch, shuffle=False)
            extend_head(self.model, *imprinted_rows(self.model, plain, [index[c] for c in new]))
        self.mode = config["finetune"]
        params = prepare_finetune(self.model, self.mode)
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = finetune_optimizer(config["optimizer"], param_groups(self.model, params))

        train = PhotoDataset(train_items, size, train=True)
        self.train_loader = make_loader(train, batch, num_workers=workers, seed=config["seed"])
        # Cosine decay to 0 over the whole fine-tune, stepped per batch: the last epoch
        # settles instead of ending on a noisy step of batches of a few photos.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(1, config["epochs"] * len(self.train_loader))
        )
        self.stepper = ScheduledStepper(self.optimizer, schedule)
        self.targets: Dict[str, str] = config["ckpt_dirs"]  # column label -> directory
        self.epoch = 0

        before = self._accuracies()
        # The baseline: the peak so far, just before the first fine-tune step.
        self.baseline_mb = ru_maxrss_mb()
        self.ready = {
            "pretrained_acc": pretrained["acc"],
            "pretrained_acc_per_class": pretrained["acc_per_class"],
            "pretrained_synth_acc": pretrained["synth_acc"],
            "acc_before": before["acc"],
            "acc_per_class_before": before["acc_per_class"],
            "synth_acc_before": before["synth_acc"],
            "new_classes": new,
            "mem_import_mb": round(self.import_mb, 2),
            "mem_baseline_mb": round(self.baseline_mb, 2),
            "mem_now_before_mb": round(rss_now_mb(), 2),
            "trainable_params": self.trainable,
            "total_params": sum(p.numel() for p in self.model.parameters()),
            "model_classes": classes,
            "torch_threads": torch.get_num_threads(),
        }

    def _accuracies(self) -> Dict[str, Any]:
        """Held-out photos (overall, per class, known and new) and the synthetic set (known classes only)."""
        held, per_class = per_class_accuracy(self.model, self.held_loader, self.classes)
        synth = per_class_accuracy(self.model, self.synth_loader, self.classes)[0] if self.synth_loader else None
        return {"acc": held, "acc_per_class": per_class, **split_known_new(per_class, self.held_counts),
                "synth_acc": synth}  # fmt: skip

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
        accuracies = self._accuracies()
        row: Dict[str, Any] = {
            "epoch": self.epoch,
            **accuracies,
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
