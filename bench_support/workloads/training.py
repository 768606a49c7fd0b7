"""The training workload: models, optimisers, one instrumented epoch, evaluation.

Fixed as in the Jetson study: cross-entropy loss, SGD lr 0.01 momentum 0.9; Adam
(lr 1e-3) as in the continual-learning seed. Models come from torchvision with random
weights (nothing is ever downloaded).

Every training workload's step is :func:`train_step` (this epoch, the bare baseline, the
distributed ranks' epoch and communication probe): a change to how a step runs is made there.

Timing of one epoch (see :mod:`bench_support.stall` for the split):
- CPU: host timestamps only — blocked in the loader vs batch-in-hand to step done.
- CUDA: the host wait for each batch is the fetch stall; compute is bracketed by CUDA
  events recorded asynchronously and read once, after a single synchronise at the
  end of the epoch. Nothing synchronises per step: that would remove the overlap of
  loading and compute that real training has.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from bench_support.errors import Unavailable
from bench_support.measure.stall import EpochSplit, split_epoch

MODELS = ("mobilenet_v3_small", "resnet18", "vgg11")
OPTIMIZERS = ("sgd", "adam")


def require_device(name: str) -> str:
    """``name`` if this machine can train on it, else Unavailable with the reason."""
    if name == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        raise Unavailable(f"no CUDA device visible (torch {torch.__version__}, {build})")
    return name


def build_model(name: str, num_classes: int) -> nn.Module:
    import torchvision.models as models

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return getattr(models, name)(weights=None, num_classes=num_classes)


def build_optimizer(name: str, params) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class EpochResult:
    epoch_s: float
    fetch_stall_s: float
    compute_s: float
    first_batch_s: float
    samples: int
    steps: int
    loss: float
    compute_timer: str  # "host" or "cuda-events"
    # Per step, on the host clock: the wait for the batch and the step itself (--trace-steps).
    step_fetch_s: Tuple[float, ...] = ()
    step_compute_s: Tuple[float, ...] = ()

    @property
    def stall_frac(self) -> float:
        return self.fetch_stall_s / self.epoch_s if self.epoch_s > 0 else 0.0


def train_step(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    accumulate: bool = False,
    update: bool = True,
    no_sync: bool = False,
    mark: Optional[Callable[[], None]] = None,
) -> torch.Tensor:
    """One training step, the one every training workload runs: returns the loss (its graph freed).

    Clear the gradients (set to None), forward, loss, backward, optimizer step. Nothing here
    synchronises or reads a clock: each caller's timing brackets the call.

    ``accumulate``: keep the gradients already there (the backward adds to them); such a step that
    also ``update``s clears them after its optimizer step, having spent them.
    ``update=False``: no optimizer step (the gradients wait for a later step's).
    ``no_sync``: forward and backward under ``model.no_sync()``: DistributedDataParallel decides in the
    forward whether the backward all-reduces, so a backward alone inside it still communicates (the probe
    did that before 0.2.0, and its backward_ms_no_sync included the all-reduce).
    ``mark``: called after the loss and again after the backward, before the optimizer step (the
    distributed probe synchronises and reads its clock there).
    """
    if not accumulate:
        optimizer.zero_grad(set_to_none=True)
    with model.no_sync() if no_sync else contextlib.nullcontext():
        loss = loss_fn(model(inputs), targets)
        if mark is not None:
            mark()
        loss.backward()
    if mark is not None:
        mark()
    if update:
        optimizer.step()
        if accumulate:
            optimizer.zero_grad(set_to_none=True)
    return loss


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    criterion: Optional[nn.Module] = None,
    train_mode: Optional[Callable[[nn.Module], object]] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> EpochResult:
    """One pass over ``loader``, timed and split into fetch stall and compute.

    ``train_mode`` puts the model in training mode (default ``model.train()``); a
    head-only fine-tune passes one that keeps the frozen backbone's BatchNorm in eval.
    ``clock`` is the host clock of the split (tests inject a deterministic one).
    """
    criterion = criterion or nn.CrossEntropyLoss()
    (train_mode or nn.Module.train)(model)
    cuda = device.type == "cuda"
    ready: List[float] = []
    done: List[float] = []
    events = []
    loss_sum = torch.zeros((), device=device)
    samples = 0

    start = clock()
    for inputs, targets in loader:
        if cuda:
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
        ready.append(clock())
        if cuda:
            begin = torch.cuda.Event(enable_timing=True)
            begin.record()
        loss = train_step(model, inputs, targets, criterion, optimizer)
        if cuda:
            finish = torch.cuda.Event(enable_timing=True)
            finish.record()
            events.append((begin, finish))
        # Summed on the device: .item() per step would force a synchronisation.
        loss_sum += loss.detach() * targets.shape[0]
        samples += targets.shape[0]
        done.append(clock())
    if cuda:
        torch.cuda.synchronize(device)
    end = clock()

    split: EpochSplit = split_epoch(start, ready, done, end)
    if cuda:
        compute = sum(b.elapsed_time(f) for b, f in events) / 1000.0
        timer = "cuda-events"
    else:
        compute = split.compute_s
        timer = "host"
    return EpochResult(
        epoch_s=split.epoch_s,
        fetch_stall_s=split.fetch_stall_s,
        compute_s=compute,
        first_batch_s=split.first_batch_s,
        samples=samples,
        steps=split.steps,
        loss=(loss_sum.item() / samples) if samples else float("nan"),
        compute_timer=timer,
        step_fetch_s=tuple(r - d for r, d in zip(ready, [start, *done[:-1]])),
        step_compute_s=tuple(d - r for r, d in zip(ready, done)),
    )


def bare_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    criterion: Optional[nn.Module] = None,
) -> None:
    """The same epoch without any instrumentation: the baseline for the harness overhead."""
    criterion = criterion or nn.CrossEntropyLoss()
    model.train()
    for inputs, targets in loader:
        if device.type == "cuda":
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
        train_step(model, inputs, targets, criterion, optimizer)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> float:
    """Top-1 accuracy on ``loader`` (a held-out split)."""
    model.eval()
    correct = total = 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        correct += (model(inputs).argmax(dim=1) == targets).sum().item()
        total += targets.shape[0]
    return correct / total if total else float("nan")


def summarise(epochs: List[EpochResult]) -> Dict[str, object]:
    """The training family of metrics over the measured epochs (means per epoch)."""
    if not epochs:
        return {}
    n = len(epochs)
    total_s = sum(e.epoch_s for e in epochs)
    fetch = sum(e.fetch_stall_s for e in epochs)
    return {
        "epoch_s": total_s / n,
        "samples_per_s": sum(e.samples for e in epochs) / total_s if total_s > 0 else None,
        "fetch_stall_s": fetch / n,
        "compute_s": sum(e.compute_s for e in epochs) / n,
        "stall_frac": fetch / total_s if total_s > 0 else None,
        "first_batch_s": sum(e.first_batch_s for e in epochs) / n,
        "loss": epochs[-1].loss,
        "epochs_measured": n,
        "samples_per_epoch": epochs[-1].samples,
        "samples_measured": sum(e.samples for e in epochs),
        "compute_timer": epochs[-1].compute_timer,
    }


class TrainingRun:
    """A model, its optimiser and loaders, built once (untimed); ``epoch()`` is one round."""

    def __init__(
        self,
        model_name: str,
        optimizer_name: str,
        train_loader,
        val_loader,
        num_classes: int,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = build_model(model_name, num_classes).to(self.device)
        self.optimizer = build_optimizer(optimizer_name, self.model.parameters())
        self.criterion = nn.CrossEntropyLoss()
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.epochs: List[EpochResult] = []

    def epoch(self) -> EpochResult:
        result = train_epoch(self.model, self.train_loader, self.optimizer, self.device, self.criterion)
        self.epochs.append(result)
        return result

    def step_trace(self, measured: int) -> Dict[str, object]:
        """Per-step fetch and compute seconds of the last ``measured`` epochs (one list per epoch)."""
        epochs = self.epochs[-measured:] if measured else []
        return {
            "fetch_s": [[round(v, 6) for v in e.step_fetch_s] for e in epochs],
            "compute_s": [[round(v, 6) for v in e.step_compute_s] for e in epochs],
        }

    def figures(self, measured: int) -> Dict[str, object]:
        """Summary of the last ``measured`` epochs plus held-out accuracy (evaluated now, untimed)."""
        figures = summarise(self.epochs[-measured:] if measured else [])
        figures["accuracy"] = evaluate(self.model, self.val_loader, self.device)
        return figures
