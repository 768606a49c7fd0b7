"""Drawing the generated images: a coloured shape on a lit background, textured at study sizes."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: The synthetic dataset's colours are orange and blue; the continual scenario's factory
#: also draws red and yellow (see :data:`bench_support.continual.pretrain.CATALOGUE`).
_COLOURS = {"orange": (240, 130, 20), "blue": (35, 80, 215), "red": (205, 30, 35), "yellow": (230, 205, 35)}
#: Shapes beyond circle and square: corners, and the rhombus's half-diagonals (long, short) per unit.
_POLYGONS = {"square": 4, "pentagon": 5}
_RHOMBUS_SHORT = math.tan(math.pi / 6)  # a 60/120 degree rhombus


#: From this size on the images are textured (study-sized photos: their decode cost comes from their detail).
TEXTURE_FROM_PX = 160


def value_noise(rng: np.random.Generator, shape: Tuple[int, int], octaves: Sequence[int]) -> np.ndarray:
    """Smooth random texture in [0, 1]: random grids of several coarseness, upsampled, summed."""
    h, w = shape
    total = np.zeros((h, w), dtype=np.float32)
    weight_sum = 0.0
    for cells in octaves:
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        layer = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32)
        weight = 1.0 / cells
        total += layer / 255.0 * weight
        weight_sum += weight
    return total / weight_sum


def _reach(shape: str, radius: float) -> float:
    """Centre to the farthest point of ``shape`` with the area of a circle of ``radius``."""
    if shape == "circle":
        return radius
    if shape == "rhombus":  # area 2 * long * short half-diagonals
        return radius * math.sqrt(math.pi / (2 * _RHOMBUS_SHORT))
    n = _POLYGONS[shape]  # a regular n-gon of circumradius R has area n/2 R^2 sin(2 pi / n)
    return radius * math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))


def render(label: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class ``label`` (e.g. ``orange_square``), ``size`` x ``size`` RGB.

    Below ``TEXTURE_FROM_PX`` a flat shape on a lit background (~1 KB as a 32 px JPEG);
    from it on, the background and the shape carry a surface texture, so a 224 px JPEG
    weighs 10-30 KB and decodes at the cost of a photo of that size.
    """
    colour_name, shape = label.split("_")
    # Background: a muted colour far from orange and blue, lit by a linear gradient.
    base = rng.uniform(60, 190, size=3) * np.array([0.9, 1.0, 0.8])
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    background = base + rng.uniform(20, 60) * (ramp - 0.5)
    textured = size >= TEXTURE_FROM_PX
    if textured:
        background = background * (0.75 + 0.5 * value_noise(rng, (size, size), (6, 24, size // 3)))[..., None]
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(img)
    colour = np.clip(np.array(_COLOURS[colour_name]) + rng.integers(-25, 26, size=3), 0, 255)
    # Both shapes have the area of a circle of this radius, over a wide range: size says
    # nothing about the class, so a model has to learn the outline. (With equal
    # circumradii, circles were 1.6x larger and a model learnt "large = circle", which
    # inverts on photos where squares are the larger cut-outs.)
    radius = rng.uniform(0.12, 0.40) * size
    reach = _reach(shape, radius)  # centre to the farthest point
    margin = min(reach, size / 2)  # the largest squares just fit, and only centred
    cx, cy = rng.uniform(margin, size - margin, size=2)
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=tuple(int(c) for c in colour))
    elif shape in _POLYGONS:
        n = _POLYGONS[shape]
        theta = rng.uniform(0, 2 * math.pi / n)
        corners = [
            (cx + reach * math.cos(theta + k * 2 * math.pi / n), cy + reach * math.sin(theta + k * 2 * math.pi / n))
            for k in range(n)
        ]
        draw.polygon(corners, fill=tuple(int(c) for c in colour))
    else:  # rhombus
        theta = rng.uniform(0, math.pi)
        c, s = math.cos(theta), math.sin(theta)
        half = [(reach, 0), (0, reach * _RHOMBUS_SHORT), (-reach, 0), (0, -reach * _RHOMBUS_SHORT)]
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in half], fill=tuple(int(v) for v in colour))

    if textured:  # the shape's own surface: speckle at a few scales
        shade = (0.85 + 0.3 * value_noise(rng, (size, size), (12, size // 4)))[..., None]
        img = Image.fromarray(np.clip(np.asarray(img, np.float32) * shade, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.2, 0.9))))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, rng.uniform(3, 12), size=(size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
