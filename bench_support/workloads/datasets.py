"""The datasets a run trains and reads from: generated once per session, per size and data root.

On every data root the generated dataset is the same, byte for byte (it is a pure
function of its seed), so results on two storage media compare like with like.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from bench_support.errors import Unavailable
from bench_support.metrics import MB
from bench_support.workloads.data import DatasetSpec, cifar10, dataset_bytes, ensure_dataset, image_folders

Progress = Callable[[str], Callable[[int, int], None]]  # label -> (done, total) callback


class DatasetProvider:
    """``get(image_size, data_root) -> (train, val, info)``, each built once."""

    def __init__(
        self,
        n_train: int,
        n_val: int,
        seed: int,
        data_roots: Mapping[str, str],
        cifar_root: Optional[str] = None,
        progress: Optional[Progress] = None,
        announce: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.n_train, self.n_val, self.seed = n_train, n_val, seed
        self.data_roots = data_roots
        self.cifar_root = cifar_root
        self.progress = progress
        self.announce = announce  # a repair of existing data is said, not done silently
        self._cache: Dict[Tuple[int, str], Tuple[Any, Any, Dict[str, Any]]] = {}

    def get(self, image_size: int, data_root: str = "data-dir") -> Tuple[Any, Any, Dict[str, Any]]:
        key = (image_size, data_root)
        if key not in self._cache:
            train, val, info = self._cifar(image_size, data_root) if self.cifar_root else self._generated(*key)
            info.update(train_samples=len(train), val_samples=len(val), data_root=data_root)
            self._cache[key] = (train, val, info)
        return self._cache[key]

    __call__ = get

    def _cifar(self, image_size: int, data_root: str):
        if image_size != 32:
            raise Unavailable(f"CIFAR-10 images are 32 px; {image_size} px runs only on generated data")
        if data_root != "data-dir":
            raise Unavailable("--data-root places generated data only; CIFAR-10 is read from --cifar-root")
        train, val = cifar10(self.cifar_root, image_size)
        return train, val, {"dataset": "cifar10", "num_classes": 10, "dataset_dir": self.cifar_root}

    def _generated(self, image_size: int, data_root: str):
        spec = DatasetSpec(self.n_train, self.n_val, image_size, self.seed)
        label = spec.name if data_root == "data-dir" else f"{spec.name} on {data_root}"
        progress = self.progress(label) if self.progress else None
        directory = ensure_dataset(self.data_roots[data_root], spec, progress, self.announce)
        train, val = image_folders(directory, image_size)
        info = {
            "dataset": spec.name,
            "num_classes": len(train.classes),
            "dataset_mb": round(dataset_bytes(directory) / MB, 3),
            "dataset_dir": directory,
        }
        return train, val, info


def image_files(dataset: Any) -> list:
    """The files behind an ImageFolder dataset; Unavailable for CIFAR-10's pickled batches."""
    paths = [path for path, _ in getattr(dataset, "samples", [])]
    if not paths:
        raise Unavailable("this benchmark reads generated image files (CIFAR-10 is one pickled file per batch)")
    return paths


def data_root_dir(path: str) -> str:
    """Where a user's ``--data-root NAME=PATH`` keeps the suite's datasets."""
    return os.path.join(path, "edge-bench-data")
