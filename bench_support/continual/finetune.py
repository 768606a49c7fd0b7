"""Phase 2, "on the device" (inside the worker): fine-tune on the photos, epoch by epoch.

:class:`FineTune` loads the factory checkpoint and the photos, measures the accuracy
and memory before the first step, then per epoch trains (the timed part) and, untimed,
measures accuracy (held-out photos by the head and by the nearest class mean, synthetic
validation set), memory three ways and the latency of a durable checkpoint write per
target. Each epoch shows every training photo ``VIEWS_PER_EPOCH`` times, each batch
joined by replayed synthetic images of the known classes (:mod:`~bench_support.continual.rehearsal`).

It runs in a fresh worker process (:mod:`bench_support.continual.worker`), so the
memory figures are the fine-tune's own: not the pytest process's, and not those of the
configuration that ran before it (glibc keeps freed heap resident and hands it out
again, which would make the second configuration look leaner than it is).

Memory (MB = 2**20 bytes), as the seed defines it:
- ``mem_peak_abs_mb``: ``ru_maxrss``, the kernel's peak RSS of the process so far,
  unit-normalised (KiB on Linux, bytes on macOS);
- ``mem_delta_mb``: the peak since the first fine-tune step minus the RSS just before it —
  the growth due to training: gradients, optimizer state, saved activations. Setup (a large
  photo decoded, the checkpoint loaded) can peak above anything training reaches, so before the
  first step freed memory is given back and the kernel's high-water mark is reset; where it
  cannot be reset (not Linux), the delta is over the peak so far and hides a training peak
  below setup's (``mem_peak_reset`` says which);
- ``mem_now_mb``: the RSS at the end of the epoch (psutil).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Sequence, Tuple

import torch

from bench_support.continual.imaging import FolderDataset, photo_transform
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
    import_model_libraries,
    param_groups,
    prepare_finetune,
)
from bench_support.continual.photos import load_photo
from bench_support.continual.rehearsal import ReplayBatches, nearest_mean_accuracy
from bench_support.measure.memory import release_freed, reset_peak_rss, rss_hwm_mb, rss_now_mb, ru_maxrss_mb
from bench_support.metrics import MB
from bench_support.workloads.checkpoint import CheckpointError, save_checkpoint
from bench_support.workloads.data import CLASSES, make_loader
from bench_support.workloads.training import train_epoch

#: Each training photo is seen this often per epoch, under fresh augmentation draws: with
#: ~7 photos per class, one look per epoch left 4 epochs at a loss of ~1 on the stand-ins.
VIEWS_PER_EPOCH = 8
#: Synthetic images of the factory's classes replayed beside each batch of photos (rehearsal).
REPLAY_PER_BATCH = 2


class PhotoDataset(torch.utils.data.Dataset):
    """(path, class index) pairs, decoded from disk at every epoch as a robot's loader would.

    ``views``: how often each photo appears in one pass, each time under fresh random
    draws of the training transform (repeated augmentation).
    """

    def __init__(self, items: Sequence[Tuple[str, int]], image_size: int, train: bool, views: int = 1) -> None:
        self.items = list(items)
        self.views = views
        self.image_size = image_size
        self.transform = photo_transform(image_size, train)

    def __len__(self) -> int:
        return len(self.items) * self.views

    def __getitem__(self, index: int):
        path, target = self.items[index % len(self.items)]
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


@contextmanager
def one_thread() -> Iterator[None]:
    """The block runs torch on this thread alone, then the thread count goes back.

    For the untimed work (evaluating, imprinting): an operator split over several threads
    waits at its end for the slowest of them, and on a busy machine one of them is often
    descheduled, so each of thousands of small operators waits out a time slice (figures in
    docs/methods.md, Noise). One thread has nobody to wait for. The timed epochs keep the
    count they record.
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        yield  # torch's native thread pool cannot grow back once started: leave the count alone
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def start_thread_pool() -> None:
    """Run one operator on every thread, so the pool exists before the memory baseline is read."""
    a = torch.ones(256, 256)
    torch.mm(a, a)


class FineTune:
    """Everything loaded and measured before the first step; then epoch by epoch."""

    def __init__(self, config: Dict[str, Any]) -> None:
        with one_thread():
            self._setup(config)
        start_thread_pool()
        # The baseline, just before the first step: the RSS with everything built, the high-water mark reset to it so
        # that training's own peak shows even below setup's (a 24-megapixel PNG decodes in full: 961 MB against
        # training's ~40 MB more, which read as a delta of 0). The lifetime peak is kept for mem_peak_abs_mb.
        self.setup_peak_mb = ru_maxrss_mb()
        setup_hwm = rss_hwm_mb()  # beside ru_maxrss: equal unless a peak was inherited (worker.py, the shell)
        release_freed()
        self.peak_reset = reset_peak_rss()
        self.baseline_mb = (rss_hwm_mb() if self.peak_reset else None) or ru_maxrss_mb()
        self.ready["mem_baseline_mb"] = round(self.baseline_mb, 2)
        self.ready["mem_setup_peak_mb"] = round(self.setup_peak_mb, 2)
        self.ready["mem_setup_hwm_mb"] = None if setup_hwm is None else round(setup_hwm, 2)
        self.ready["mem_peak_reset"] = self.peak_reset
        self.ready["mem_now_before_mb"] = round(rss_now_mb(), 2)
        self.ready["torch_threads"] = torch.get_num_threads()

    def _setup(self, config: Dict[str, Any]) -> None:
        # Everything the worker imports is loaded by now (torchvision only for its models):
        # the floor under its memory figures.
        import_model_libraries(config["model"])
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
        self.plain_loader = make_loader(PhotoDataset(train_items, size, train=False), batch, shuffle=False)
        # No synthetic set given (a worker driven on its own): no forgetting figure, no rehearsal.
        self.synth_loader = replay = None
        if config.get("synth_dir"):
            val_synth = FolderDataset(os.path.join(config["synth_dir"], "val"), size, False, CLASSES)
            self.synth_loader = make_loader(val_synth, batch, shuffle=False)
            # Exemplars from the training split; forgetting is measured on the validation split.
            train_synth = FolderDataset(os.path.join(config["synth_dir"], "train"), size, True, CLASSES)
            replay = make_loader(train_synth, REPLAY_PER_BATCH, seed=config["seed"] + 1)

        self.model = build_cl_model(config["model"], num_classes=len(CLASSES))
        state = torch.load(config["pretrained"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        # The factory's model as it came, on the same photos: what the device knew before learning anything.
        pretrained = self._accuracies(nearest_mean=False)  # its nearest mean is epoch 0's: measured below
        if new:  # class-incremental: one imprinted row per new class, from its training photos
            extend_head(self.model, *imprinted_rows(self.model, self.plain_loader, [index[c] for c in new]))
        self.mode = config["finetune"]
        params = prepare_finetune(self.model, self.mode)
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = finetune_optimizer(config["optimizer"], param_groups(self.model, params))

        train = PhotoDataset(train_items, size, train=True, views=VIEWS_PER_EPOCH)
        self.train_loader = make_loader(train, batch, num_workers=workers, seed=config["seed"])
        if replay is not None:
            self.train_loader = ReplayBatches(self.train_loader, replay)
        # Cosine decay to 0 over the whole fine-tune, stepped per batch: the last epoch
        # settles instead of ending on a noisy step of batches of a few photos.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(1, config["epochs"] * len(self.train_loader))
        )
        self.stepper = ScheduledStepper(self.optimizer, schedule)
        self.targets: Dict[str, str] = config["ckpt_dirs"]  # column label -> directory
        self.epoch = 0

        before = self._accuracies()
        self.ready = {
            "pretrained_acc": pretrained["acc"],
            "pretrained_acc_per_class": pretrained["acc_per_class"],
            "pretrained_synth_acc": pretrained["synth_acc"],
            "acc_before": before["acc"],
            "acc_per_class_before": before["acc_per_class"],
            "acc_ncm_before": before["acc_ncm"],
            "acc_ncm_per_class_before": before["acc_ncm_per_class"],
            "views_per_epoch": VIEWS_PER_EPOCH,
            "replay_per_batch": REPLAY_PER_BATCH if replay is not None else 0,
            "synth_acc_before": before["synth_acc"],
            "new_classes": new,
            "mem_import_mb": round(self.import_mb, 2),
            "trainable_params": self.trainable,
            "total_params": sum(p.numel() for p in self.model.parameters()),
            "model_classes": classes,
            # A smallcnn worker needs no torchvision: its import would sit in mem_import_mb for nothing.
            "torchvision_loaded": "torchvision" in sys.modules,
        }

    def _accuracies(self, nearest_mean: bool = True) -> Dict[str, Any]:
        """Held-out photos (overall, per class, known and new; the head's and the nearest mean's answers)
        and the synthetic set (known classes only)."""
        held, per_class = per_class_accuracy(self.model, self.held_loader, self.classes)
        synth = per_class_accuracy(self.model, self.synth_loader, self.classes)[0] if self.synth_loader else None
        out = {"acc": held, "acc_per_class": per_class, **split_known_new(per_class, self.held_counts),
               "synth_acc": synth}  # fmt: skip
        if nearest_mean:
            ncm, ncm_per_class = nearest_mean_accuracy(self.model, self.plain_loader, self.held_loader, self.classes)
            ncm_split = split_known_new(ncm_per_class, self.held_counts)
            out.update(acc_ncm=round(ncm, 4), acc_ncm_per_class=ncm_per_class,
                       acc_ncm_known=ncm_split["acc_known"], acc_ncm_new=ncm_split["acc_new"])  # fmt: skip
        return out

    def train_epoch(self) -> Dict[str, Any]:
        mode = head_only_train_mode if self.mode == "head" else frozen_bn_train_mode
        result = train_epoch(self.model, self.train_loader, self.stepper, self.device, train_mode=mode)
        self.epoch += 1
        self._last = result
        return {"time_s": result.epoch_s}

    def after_epoch(self) -> Dict[str, Any]:
        """The epoch's row: accuracies, memory, one durable checkpoint write per target."""
        # Memory first, untimed but before evaluation and checkpointing can move it.
        # After the reset, VmHWM is the peak since it. ru_maxrss is not: the kernel also keeps, per process, the peak
        # at each thread's exit and at exec, which the reset does not clear. The lifetime peak is the largest of all.
        lifetime, now, hwm = ru_maxrss_mb(), rss_now_mb(), rss_hwm_mb()
        trained = hwm if self.peak_reset and hwm is not None else lifetime
        peak = max(lifetime, trained, self.setup_peak_mb)
        with one_thread():
            accuracies = self._accuracies()
        row: Dict[str, Any] = {
            "epoch": self.epoch,
            **accuracies,
            "time_s": round(self._last.epoch_s, 4),
            "loss": self._last.loss,
            "fetch_stall_s": round(self._last.fetch_stall_s, 4),
            "mem_peak_abs_mb": round(peak, 2),
            "mem_delta_mb": round(trained - self.baseline_mb, 2),
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
