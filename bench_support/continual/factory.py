"""Phase 1 from the benchmark's side: which factory checkpoint a run needs, and its cache.

The checkpoint is made once per model, fine-tune image size, synthetic dataset and
recipe (in a worker process: :func:`bench_support.continual.pretrain.pretrain`) and
cached under ``<data dir>/pretrained/`` with a JSON sidecar holding its figures.
How much the factory trains comes from the profile (``factory_images``,
``factory_epochs``), the image count from ``--cl-pretrain-images`` when given.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from bench_support.continual.worker import run_once
from bench_support.files import read_json, write_json_atomic
from bench_support.profiles import Profile
from bench_support.workloads.data import DatasetSpec, ensure_dataset

#: Bumped when the pretraining recipe changes: old cached checkpoints are not reused.
PRETRAIN_RECIPE = 2
#: The factory trains at this size (or the fine-tune size, if smaller): 4x fewer pixels than 128.
FACTORY_IMAGE_SIZE = 64


@dataclass(frozen=True)
class Pretraining:
    """How to make the factory checkpoint; the recipe is part of its cache key."""

    model: str
    image_size: int  # the fine-tune size: BatchNorm statistics and synthetic accuracy are taken there
    n_train: int  # the on-disk synthetic set (BatchNorm statistics, validation)
    n_val: int
    factory_images: int  # rendered in memory for training
    epochs: int
    seed: int
    weights: str = "synthetic"  # or "imagenet": start from cached ImageNet weights
    imagenet_path: Optional[str] = None

    @property
    def factory_size(self) -> int:
        return min(FACTORY_IMAGE_SIZE, self.image_size)

    @property
    def dataset(self) -> DatasetSpec:
        return DatasetSpec(self.n_train, self.n_val, self.image_size, self.seed)

    @property
    def name(self) -> str:
        """The cache key: everything that changes the checkpoint."""
        return (
            f"{self.model}-{self.dataset.name}-f{self.factory_images}x{self.factory_size}px-e{self.epochs}"
            f"-{self.weights}-r{PRETRAIN_RECIPE}"
        )

    def ensure(self, data_dir: str, cwd: str, progress: Callable[[str], None]) -> Dict[str, Any]:
        """The cached checkpoint and its figures; pretrains (in a worker) when missing.

        Returns the sidecar's figures plus ``pretrained`` (the checkpoint's path),
        ``synth_dir`` (the synthetic set) and ``pretrain_cached``.
        """
        synth_dir = ensure_dataset(data_dir, self.dataset)
        cache = os.path.join(data_dir, "pretrained")
        checkpoint = os.path.join(cache, self.name + ".pt")
        sidecar = os.path.join(cache, self.name + ".json")
        info = read_json(sidecar)
        if isinstance(info, dict) and os.path.isfile(checkpoint):
            info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=True)
            return info
        os.makedirs(cache, exist_ok=True)
        progress(
            f"pretraining {self.model} on {self.factory_images} synthetic {self.factory_size} px images, "
            f"{self.epochs} epochs (once; cached in {cache})"
        )
        config = {
            "model": self.model,
            "seed": self.seed,
            "weights": self.weights,
            "imagenet_path": self.imagenet_path,
            "synth_dir": synth_dir,
            "image_size": self.image_size,
            "factory_images": self.factory_images,
            "factory_size": self.factory_size,
            "epochs": self.epochs,
            "output": checkpoint,
        }
        info = run_once("pretrain", config, cwd)
        info.update(pretrained_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), recipe=PRETRAIN_RECIPE, weights=self.weights)
        write_json_atomic(sidecar, info)
        info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=False)
        return info


def pretraining_for(profile: Profile, settings: Mapping[str, Any]) -> Pretraining:
    """The factory recipe: the profile's image count and epochs, unless the options say otherwise."""
    return Pretraining(
        model=settings["model"],
        image_size=settings["image_size"],
        n_train=profile.n_train,
        n_val=profile.n_val,
        factory_images=settings.get("pretrain_images") or profile.factory_images,
        epochs=profile.factory_epochs,
        seed=settings["seed"],
        weights=settings["weights"],
        imagenet_path=settings.get("imagenet_path"),
    )
