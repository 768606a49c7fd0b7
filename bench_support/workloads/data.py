"""Seeded, cached image datasets on disk, and the loaders that read them.

The generated set has the four classes of the continual-learning seed (orange/blue x
square/circle) drawn at a random position, size and rotation on a random background
with a lighting gradient and noise, stored as JPEG files in a class-per-folder layout
(``<root>/<name>/{train,val}/<class>/<class>_<index>.jpg``), so reading it costs what
reading photos costs: file opens, bytes from storage and a decode.

Every image is a pure function of (seed, split, index): an interrupted generation
resumes where it stopped, and nothing valid is ever generated again. Each file is
written atomically (temp file + rename), so a file under its final name is complete;
``manifest.json`` (written last) records every file's size and SHA-256, so a truncated,
overwritten or replaced file is noticed and regenerated alone; the class folders hold
exactly the manifest's files (see :mod:`bench_support.workloads.manifest`).
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from bench_support.errors import UserError
from bench_support.files import read_json, write_atomic, write_json_atomic
from bench_support.workloads import manifest as integrity
from bench_support.workloads.drawing import render
from bench_support.workloads.manifest import FORMAT_VERSION

CLASSES = ("blue_circle", "blue_square", "orange_circle", "orange_square")
SPLITS = ("train", "val")
# ImageNet statistics, as the Jetson study's transforms use.
NORM_MEAN = (0.485, 0.456, 0.406)
NORM_STD = (0.229, 0.224, 0.225)

Progress = Callable[[int, int], None]


class DataError(UserError):
    """A dataset that cannot be built or read; the message is one line for the user."""


@dataclass(frozen=True)
class DatasetSpec:
    n_train: int
    n_val: int
    image_size: int
    seed: int = 0

    @property
    def name(self) -> str:
        return f"synth-{self.image_size}px-{self.n_train}+{self.n_val}-seed{self.seed}"

    def count(self, split: str) -> int:
        return self.n_train if split == "train" else self.n_val


def _file_list(spec: DatasetSpec) -> List[Tuple[str, str, int]]:
    """(split, class, index) of every image; classes are balanced round-robin."""
    items = []
    for split in SPLITS:
        for index in range(spec.count(split)):
            items.append((split, CLASSES[index % len(CLASSES)], index))
    return items


def _relpath(split: str, label: str, index: int) -> str:
    return os.path.join(split, label, f"{label}_{index:05d}.jpg")


def ensure_dataset(
    root: str, spec: DatasetSpec, progress: Optional[Progress] = None, announce: Optional[Callable[[str], None]] = None
) -> str:
    """Build the dataset under ``root`` if needed; return its directory.

    Only missing or damaged files are (re)generated; temp files of a killed generation
    are removed. A repair of an existing dataset (damaged or missing images, a torn or
    missing manifest) is said in one line through ``announce`` before it starts.
    Raises DataError with a one-line message when ``root`` cannot be written or the class
    folders hold image files the dataset did not generate.
    """
    directory = os.path.join(root, spec.name)
    try:
        os.makedirs(directory, exist_ok=True)
        with integrity.locked(directory):
            _ensure(directory, spec, progress, announce)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""  # a file where a class folder should be, say
        raise DataError(f"cannot write the dataset under {root}: {exc.strerror or exc}{where}") from None
    return directory


def _ensure(
    directory: str, spec: DatasetSpec, progress: Optional[Progress], announce: Optional[Callable[[str], None]]
) -> None:
    items = {_relpath(*item): item for item in _file_list(spec)}
    foreign = integrity.tidy(directory, SPLITS, CLASSES, items)
    if foreign:
        raise DataError(
            f"{directory} holds {len(foreign)} image file(s) or folder(s) it did not generate, which "
            f"ImageFolder would load (first: {foreign[0]}); move them away"
        )
    manifest_path = os.path.join(directory, "manifest.json")
    old = read_json(manifest_path)
    expected = {"format": FORMAT_VERSION, "spec": asdict(spec), "classes": list(CLASSES)}
    sizes, hashes, redraw = integrity.recorded(old, expected)
    files: Dict[str, int] = {}
    digests: Dict[str, str] = {}
    todo = []
    for rel, item in items.items():
        found = None
        if not redraw:
            found = integrity.intact(os.path.join(directory, rel), sizes.get(rel), hashes.get(rel), spec.image_size)
        if found is None:
            todo.append(item)
        else:
            files[rel], digests[rel] = found
    current = dict(expected, files=files, sha256=digests)
    if not todo and old == current:
        return
    repair = _repair_text(old, bool(sizes), redraw, len(todo), len(files), os.path.exists(manifest_path))
    if repair and announce:
        announce(f"{directory}: {repair}")

    for split in SPLITS:
        for label in CLASSES:
            os.makedirs(os.path.join(directory, split, label), exist_ok=True)
    for done, (split, label, index) in enumerate(todo, 1):
        rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
        buffer = io.BytesIO()
        render(label, spec.image_size, rng).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        rel = _relpath(split, label, index)
        write_atomic(os.path.join(directory, rel), lambda tmp, b=data: _write_bytes(tmp, b), integrity.TEMP_SUFFIX)
        files[rel], digests[rel] = len(data), integrity.digest(data)
        if progress:  # the callback decides how often it draws
            progress(done, len(todo))
    write_json_atomic(manifest_path, dict(expected, files=files, sha256=digests), indent=0)


def _repair_text(old: Any, vouched: bool, redraw: bool, todo: int, intact: int, manifest_exists: bool) -> str:
    """What a re-run of generation repairs, in words; "" for a first generation (nothing was there)."""
    if redraw:
        return f"images drawn by an older version: regenerating all {todo}"
    if old is None and not manifest_exists and not intact:
        return ""
    if old is None and manifest_exists:
        head = "manifest.json is unreadable (torn?)"
    elif old is None and intact:
        head = "manifest.json is missing"
    elif old is not None and not vouched:
        head = "manifest.json describes another dataset"
    elif todo:
        return f"{todo} image(s) missing or damaged: regenerating them"
    else:
        return "manifest.json differs from the images: rebuilding it"
    if todo:
        return f"{head}: {intact} image(s) intact, regenerating {todo}, and rebuilding the manifest"
    return f"{head}: every image is intact; rebuilding the manifest"


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def dataset_bytes(directory: str) -> int:
    """Total size of the image files of a generated dataset (from its files when the manifest lacks it)."""
    return integrity.dataset_bytes(directory, SPLITS)


# --- reading --------------------------------------------------------------------------


def train_transform(image_size: int):
    """The Jetson study's training transforms: random crop with padding, flip, normalise."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomCrop(image_size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(NORM_MEAN, NORM_STD),
        ]
    )


def eval_transform(image_size: int):
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(NORM_MEAN, NORM_STD),
        ]
    )


def image_folders(directory: str, image_size: int):
    """(train, val) torchvision ImageFolder datasets of a generated dataset."""
    from torchvision.datasets import ImageFolder

    return (
        ImageFolder(os.path.join(directory, "train"), transform=train_transform(image_size)),
        ImageFolder(os.path.join(directory, "val"), transform=eval_transform(image_size)),
    )


CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def has_cifar10(root: str) -> bool:
    return os.path.isdir(os.path.join(root, "cifar-10-batches-py"))


def check_cifar_root(root: str) -> str:
    """The absolute CIFAR-10 root, or DataError naming what is missing (the suite never downloads)."""
    root = os.path.abspath(os.path.expanduser(root))
    folder = os.path.join(root, "cifar-10-batches-py")
    if not has_cifar10(root):
        raise DataError(f"--cifar-root {root}: no CIFAR-10 there (expected {folder}/; the suite never downloads)")
    missing = [name for name in CIFAR_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise DataError(f"--cifar-root {root}: incomplete CIFAR-10, missing {', '.join(missing)} in {folder}")
    return root


def cifar10(root: str, image_size: int = 32):
    """(train, test) CIFAR-10 from a local copy; never downloads."""
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(root, train=True, download=False, transform=train_transform(image_size))
        test = CIFAR10(root, train=False, download=False, transform=eval_transform(image_size))
    except RuntimeError:
        raise DataError(
            f"--cifar-root {root}: no intact CIFAR-10 there (expected {os.path.join(root, 'cifar-10-batches-py')} "
            "as extracted from cifar-10-python.tar.gz; the suite never downloads)"
        ) from None
    return train, test


def make_loader(
    dataset,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    pin_memory: bool = False,
    prefetch_factor: Optional[int] = None,
    persistent_workers: bool = False,
):
    """A DataLoader with a seeded shuffle; loader-only options only where they apply.

    A training (shuffled) loader drops a last batch of one sample: BatchNorm cannot train on it.
    """
    import torch
    from torch.utils.data import DataLoader

    kwargs = {"drop_last": shuffle and len(dataset) > batch_size and len(dataset) % batch_size == 1}
    if num_workers > 0:
        kwargs["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
