"""Phase 1 from the benchmark's side: which factory checkpoint a run needs, and its cache.

The checkpoint is made once per model, fine-tune image size, synthetic dataset and
recipe (in a worker process: :func:`bench_support.continual.pretrain.pretrain`) and
cached under ``<data dir>/pretrained/`` with a JSON sidecar holding its figures and
the checkpoint's size and SHA-256. A cached checkpoint is used only when it matches
them (an older sidecar without them: when ``torch.load`` reads it, and the sidecar is
completed); a damaged checkpoint, or one whose sidecar is torn or missing, is made
again, and a line through ``progress`` says so.
How much the factory trains comes from the profile (``factory_images``,
``factory_epochs``), the image count from ``--cl-pretrain-images`` when given.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from bench_support.continual import ship
from bench_support.continual.worker import run_once
from bench_support.files import read_json, write_json_atomic
from bench_support.profiles import Profile
from bench_support.workloads.data import DatasetSpec, ensure_dataset

#: Bumped when the pretraining recipe changes: old cached checkpoints are not reused.
PRETRAIN_RECIPE = 3  # 3: a catalogue of 16 classes, narrowed to the four
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

    def ensure(
        self,
        data_dir: str,
        cwd: str,
        progress: Callable[[str], None],
        bar: Optional[Callable[[str], Callable[[int, int], None]]] = None,
        use_shipped: bool = True,
    ) -> Dict[str, Any]:
        """The cached checkpoint and its figures. When missing: the shipped one for this recipe if there is one
        (:mod:`bench_support.continual.ship`), else pretraining in a worker, its steps shown by ``bar``.

        Returns the sidecar's figures plus ``pretrained`` (the checkpoint's path),
        ``synth_dir`` (the synthetic set) and ``pretrain_cached``.
        """
        synth_dir = ensure_dataset(data_dir, self.dataset)
        cache = os.path.join(data_dir, "pretrained")
        checkpoint = os.path.join(cache, self.name + ".pt")
        sidecar = os.path.join(cache, self.name + ".json")
        info = read_json(sidecar)
        if os.path.isfile(checkpoint):
            damage = _damage(checkpoint, sidecar, info)
            if damage is None:
                info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=True)
                return info
            progress(f"pretrained checkpoint {checkpoint} {damage}; pretraining again")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sidecar)  # an interrupted pretraining must not leave the old figures beside a new checkpoint
        found = ship.shipped(self.name) if use_shipped else None
        if found is not None:
            info = ship.install(found[0], found[1], checkpoint, sidecar)
            progress(
                f"factory model: the shipped {self.name}.pt (SHA-256 {info['checkpoint_sha256'][:16]}…, "
                f"pretrained {str(info.get('pretrained_at', '?'))[:10]}); nothing to pretrain on this device"
            )
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
        info = run_once("pretrain", config, cwd, bar(f"pretraining {self.model}") if bar else None)
        os.chmod(checkpoint, 0o644)  # written through mkstemp (0600): cached data is for every user, as its sidecar
        info.update(pretrained_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), recipe=PRETRAIN_RECIPE, weights=self.weights)
        info.update(fingerprint(checkpoint))
        write_json_atomic(sidecar, info)
        info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=False)
        return info


def fingerprint(path: str) -> Dict[str, Any]:
    """The checkpoint's size and SHA-256, as the sidecar records them."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return {"checkpoint_bytes": os.path.getsize(path), "checkpoint_sha256": sha.hexdigest()}


def _damage(checkpoint: str, sidecar: str, info: Any) -> Optional[str]:
    """Why the cached checkpoint cannot be used ("is damaged (...)", "has no intact sidecar (...)"), or None.

    With the size and hash in the sidecar, the checkpoint must match them. An older
    sidecar without them: the checkpoint must load (``torch.load``), and the sidecar is
    completed so the next session checks the hash only.
    """
    if not isinstance(info, dict):
        state = "torn" if os.path.exists(sidecar) else "missing"
        return f"has no intact sidecar ({os.path.basename(sidecar)} is {state})"
    try:
        found = fingerprint(checkpoint)
    except OSError as exc:
        return f"is damaged (unreadable: {exc.strerror or exc})"
    if "checkpoint_sha256" in info:
        if found["checkpoint_bytes"] != info.get("checkpoint_bytes"):
            return f"is damaged ({found['checkpoint_bytes']} bytes, {info.get('checkpoint_bytes')} recorded)"
        if found["checkpoint_sha256"] != info["checkpoint_sha256"]:
            return "is damaged (its SHA-256 differs from the one recorded)"
        return None
    try:
        import torch

        torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - PytorchStreamReader, pickle and zip errors alike
        return f"is damaged (it does not load: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"
    info.update(found)
    with contextlib.suppress(OSError):  # a read-only cache: checked by loading again next time
        write_json_atomic(sidecar, info)
    return None


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
