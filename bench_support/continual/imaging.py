"""The fine-tune's image pipeline with PIL and torch alone: the worker of a smallcnn needs no torchvision.

Importing torchvision costs the worker's memory floor tens of MB it does not use (its
models, datasets and transforms) while the scenario's default model is the suite's
own. What the fine-tune needs is small: a resize, crops, flips, quarter turns, a
brightness/contrast/saturation jitter, a normalisation, and a folder of synthetic PNGs
per class. The random draws come from torch's generator, so ``torch.manual_seed`` and
the DataLoader's per-worker seeding make them repeatable as torchvision's are.
"""

from __future__ import annotations

import math
import os
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageEnhance

from bench_support.continual.photos import EXTENSIONS
from bench_support.workloads.data import NORM_MEAN, NORM_STD, DataError

#: The training photos' random crop: 50-100 % of the area, aspect 3:4 to 4:3.
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
#: Brightness, contrast and saturation factors are drawn from 1 +- these.
JITTER = (0.3, 0.3, 0.2)
_MEAN = np.array(NORM_MEAN, np.float32)
_STD = np.array(NORM_STD, np.float32)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """The short side to ``size``, the aspect kept (bilinear, as torchvision's Resize)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)


def centre_square(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def random_resized_crop(img: Image.Image, size: int) -> Image.Image:
    """A random ``CROP_SCALE`` share of the area at a random ``CROP_RATIO`` aspect, resized to a square.

    Ten tries for a box that fits; then the whole image, cropped at the centre to the
    nearest aspect in ``CROP_RATIO`` (torchvision's rule too).
    """
    w, h = img.size
    area = w * h
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * _uniform(*CROP_SCALE)
        aspect = math.exp(_uniform(log_low, log_high))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(torch.randint(0, w - cw + 1, ()).item())
            top = int(torch.randint(0, h - ch + 1, ()).item())
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    cw, ch = w, h
    if w / h < CROP_RATIO[0]:
        ch = round(w / CROP_RATIO[0])
    elif w / h > CROP_RATIO[1]:
        cw = round(h * CROP_RATIO[1])
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))


def flip_and_turn(img: Image.Image) -> Image.Image:
    """A mirror image half the time, and a quarter turn 0-3 times: a camera looking down on a table has no "up"."""
    if torch.rand(()).item() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    turns = int(torch.randint(0, 4, ()).item())
    return img.rotate(90 * turns, expand=True) if turns else img


def jitter(img: Image.Image) -> Image.Image:
    """Brightness, contrast and saturation, each by a random factor, in a random order; the hue is kept.

    The hue stays because a colour is what a class can be about (``green_circle``).
    """
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    for i in torch.randperm(3).tolist():
        img = enhancers[i](img).enhance(_uniform(1 - JITTER[i], 1 + JITTER[i]))
    return img


def to_normalised_tensor(img: Image.Image) -> torch.Tensor:
    """C x H x W float32, normalised with the suite's channel means and deviations."""
    pixels = (np.asarray(img.convert("RGB"), np.float32) / 255 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


class HeldOutTransform:
    """Short side to ``size``, centre square. (A class, not a closure: DataLoader workers
    started by spawn or forkserver receive it pickled.)"""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return to_normalised_tensor(centre_square(resize_short_side(img, self.size), self.size))


class TrainingTransform(HeldOutTransform):
    """A random crop, flip, quarter turn and jitter: a few photos, each seen several times an
    epoch, look different every time, so that they are not memorised as they are."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = random_resized_crop(resize_short_side(img, self.size), self.size)
        return to_normalised_tensor(jitter(flip_and_turn(img)))


def photo_transform(image_size: int, train: bool) -> Callable[[Image.Image], torch.Tensor]:
    return TrainingTransform(image_size) if train else HeldOutTransform(image_size)


class FolderDataset(torch.utils.data.Dataset):
    """``<root>/<class>/<image>`` as (tensor, index of the class in ``classes``).

    Raises :class:`DataError` (one line) when the class folders are not ``classes`` or
    hold no image.
    """

    def __init__(self, root: str, image_size: int, train: bool, classes: Sequence[str]) -> None:
        try:
            found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        except OSError as exc:
            raise DataError(f"synthetic set {root}: {exc.strerror}") from None
        if found != sorted(classes):
            raise DataError(f"synthetic set {root}: class folders {found}, expected {sorted(classes)}")
        self.items: List[Tuple[str, int]] = [
            (os.path.join(root, name, f), i)
            for i, name in enumerate(classes)
            for f in sorted(os.listdir(os.path.join(root, name)))
            if f.lower().endswith(EXTENSIONS)
        ]
        if not self.items:
            raise DataError(f"synthetic set {root}: no images in its class folders")
        self.transform = photo_transform(image_size, train)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, target = self.items[index]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), target
