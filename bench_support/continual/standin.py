"""Generated stand-in photos, for a run where the user put no photos in ``data_real/``.

They are deliberately unlike the synthetic pretraining images (:mod:`bench_support.workloads.data`,
flat shapes on a flat background): each is a "photo" of a coloured cut-out lying on a
table, 4:3, with a textured surface (wood grain or cloth), light falling off across the
scene and into the corners, a shaded object with a soft shadow, a camera tilt
(perspective), defocus, sensor noise and JPEG compression at phone-like quality. A
model that only memorised the synthetic set does not do well on them; one that learnt
colour and shape does.

Besides the four classes of the factory (``CLASSES``) the set has two it never saw,
``NEW_CLASSES``: a known shape in a new colour and a new shape in a known colour, so a
run without the user's photos still shows what continual learning is for. The renderer
draws any ``<colour>_<shape>`` of ``PAINTS`` x ``SHAPES``.

Files follow the naming convention of ``data_real/`` (``orange_square_03.jpg``), so
they go through exactly the same scanning and splitting as the user's photos. Every
photo is a pure function of (seed, class, index); a set is generated once per data
directory and reused. Unlike anything made from the user's photos, the set is readable
by every user (folder 0755, photos and manifest 0644).
"""

from __future__ import annotations

import math
import os
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bench_support.files import write_atomic, write_json_atomic
from bench_support.workloads.data import CLASSES, DataError
from bench_support.workloads.drawing import value_noise

FORMAT_VERSION = 2  # 2: two classes the factory never saw
#: Colours and shapes the renderer draws; the factory knows orange and blue squares and circles.
PAINTS = {
    "orange": (235, 125, 30),
    "blue": (40, 85, 200),
    "green": (40, 160, 70),
    "red": (200, 35, 40),
    "purple": (130, 60, 170),
    "yellow": (230, 200, 40),
}
SHAPES = ("circle", "square", "triangle")
#: The stand-in set's classes beyond the factory's: a new colour, and a new shape.
NEW_CLASSES = ("green_circle", "orange_triangle")
STANDIN_CLASSES = tuple(CLASSES) + NEW_CLASSES
WIDTH, HEIGHT = 320, 240  # a small 4:3 photo
SUPERSAMPLE = 3  # the object is drawn larger and scaled down: anti-aliased edges


def _surface(rng: np.random.Generator) -> np.ndarray:
    """A table top or a cloth, HxWx3 float."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    texture = value_noise(rng, (HEIGHT, WIDTH), (4, 16, 48))
    materials = (
        (150, 110, 75),  # light wood
        (95, 65, 45),  # dark wood
        (170, 170, 165),  # grey laminate
        (200, 190, 170),  # beige cloth
        (70, 95, 75),  # green cutting mat
    )
    base = np.array(materials[rng.integers(len(materials))], np.float32) * rng.uniform(0.85, 1.15, 3)
    if rng.random() < 0.5:  # wood grain: wavy stripes along a random direction
        angle = rng.uniform(0, math.pi)
        along = np.cos(angle) * xx + np.sin(angle) * yy
        grain = 0.5 + 0.5 * np.sin(along / rng.uniform(3, 8) + 6 * texture)
        pattern = 0.9 + 0.1 * grain
    else:  # cloth: fine weave plus blotches
        weave = 0.5 + 0.5 * np.sin(xx * rng.uniform(1.5, 2.5)) * np.sin(yy * rng.uniform(1.5, 2.5))
        pattern = 0.92 + 0.05 * weave + 0.15 * (texture - 0.5)
    return base * pattern[..., None]


def _lighting(rng: np.random.Generator) -> np.ndarray:
    """Multiplicative light: a directional fall-off, a vignette and a colour cast, HxWx3."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    u, v = xx / WIDTH - 0.5, yy / HEIGHT - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    ramp = 1.0 + rng.uniform(0.2, 0.6) * (math.cos(angle) * u + math.sin(angle) * v)
    vignette = 1.0 - rng.uniform(0.2, 0.5) * (u**2 + v**2) * 2
    cast = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.08, 0.08) * np.array([1.0, 0.1, -1.0])  # warm or cool
    exposure = rng.uniform(0.75, 1.2)
    return (ramp * vignette)[..., None] * cast * exposure


def _object_layer(label: str, rng: np.random.Generator) -> Tuple[Image.Image, Image.Image]:
    """The cut-out (RGBA, shaded) and its mask, at photo size, anti-aliased."""
    colour_name, shape = label.split("_")
    s = SUPERSAMPLE
    w, h = WIDTH * s, HEIGHT * s
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    radius = rng.uniform(0.18, 0.3) * HEIGHT * s
    cx = rng.uniform(0.3, 0.7) * w
    cy = rng.uniform(0.3, 0.7) * h
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
    elif shape == "triangle":  # equilateral, about the square's area, any rotation
        theta = rng.uniform(0, 2 * math.pi)
        size = radius * 1.35
        angles = [theta + k * 2 * math.pi / 3 for k in range(3)]
        corners = [(cx + size * math.cos(a), cy + size * math.sin(a)) for a in angles]
        draw.polygon(corners, fill=255)
    elif shape == "square":
        theta = rng.uniform(0, math.pi / 2)
        corners = [
            (cx + radius * math.sqrt(2) * math.cos(theta + math.pi / 4 + k * math.pi / 2),
             cy + radius * math.sqrt(2) * math.sin(theta + math.pi / 4 + k * math.pi / 2))
            for k in range(4)
        ]  # fmt: skip
        draw.polygon(corners, fill=255)
    else:
        raise ValueError(f"no stand-in shape {shape!r}: one of {', '.join(SHAPES)}")
    mask = mask.resize((WIDTH, HEIGHT), Image.LANCZOS)

    # Paint: a colour of the class, varied in hue and brightness, shaded across the
    # object as a matte surface under the scene's light.
    hue_jitter = rng.integers(-30, 31, 3)
    paint = PAINTS[colour_name]
    paint = np.clip(np.array(paint) + hue_jitter, 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    shade = 1.0 + 0.25 * (math.cos(angle) * (xx - cx / s) + math.sin(angle) * (yy - cy / s)) / (radius / s)
    speckle = 1.0 + 0.06 * (value_noise(rng, (HEIGHT, WIDTH), (24, 64)) - 0.5)
    rgb = np.clip(paint * (shade * speckle)[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB"), mask


def _perspective(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A camera tilt: the photo's corners come from a random quadrilateral of the scene."""
    w, h = img.size
    jitter = rng.uniform(0.0, 0.12, size=(4, 2)) * np.array([w, h])
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    source += jitter * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    # Solve for the 8 coefficients mapping output (target) pixels to input (source) pixels.
    rows, rhs = [], []
    for (x, y), (sx, sy) in zip(target, source):
        rows.append([x, y, 1, 0, 0, 0, -sx * x, -sx * y])
        rows.append([0, 0, 0, x, y, 1, -sy * x, -sy * y])
        rhs.extend([sx, sy])
    coeffs = np.linalg.solve(np.array(rows), np.array(rhs))
    return img.transform((w, h), Image.PERSPECTIVE, tuple(coeffs), resample=Image.BICUBIC)


def render_photo(label: str, rng: np.random.Generator) -> Image.Image:
    """One stand-in photo of class ``label`` (``orange_square`` ...), 320x240 RGB."""
    scene = _surface(rng)
    paint, mask = _object_layer(label, rng)
    # Soft shadow, offset away from the light, then the object on top.
    offset = rng.integers(3, 9, size=2) * rng.choice([-1, 1], size=2)
    shadow = mask.transform(mask.size, Image.AFFINE, (1, 0, -offset[0], 0, 1, -offset[1]))
    shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(rng.uniform(3, 6))), np.float32) / 255.0
    scene *= (1.0 - 0.45 * shadow)[..., None]
    alpha = np.asarray(mask, np.float32)[..., None] / 255.0
    scene = scene * (1 - alpha) + np.asarray(paint, np.float32) * alpha
    scene *= _lighting(rng)
    img = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8), "RGB")

    img = _perspective(img, rng)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6)))  # focus and hand shake
    # Sensor noise, stronger in the shadows (shot noise), per channel.
    arr = np.asarray(img, np.float32)
    sigma = rng.uniform(2, 7) * (1.4 - arr / 255.0)
    arr = arr + rng.normal(0, 1, arr.shape) * sigma
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def file_names(per_class: int, classes: Sequence[str] = STANDIN_CLASSES) -> List[Tuple[str, str, int]]:
    """(file name, class, index) of a stand-in set, in the data_real naming convention."""
    return [(f"{label}_{index + 1:02d}.jpg", label, index) for label in classes for index in range(per_class)]


def photo_rng(seed: int, label: str, index: int) -> np.random.Generator:
    """The generator of one stand-in photo: a pure function of (seed, class, index)."""
    return np.random.default_rng([seed, *(ord(c) for c in label), index, 7])


def write_photos(directory: str, names: Sequence[Tuple[str, str, int]], seed: int) -> None:
    """Render and write stand-in photos (``file_names`` entries) into ``directory``."""
    for name, label, index in names:
        rng = photo_rng(seed, label, index)
        photo = render_photo(label, rng)
        quality = int(rng.integers(60, 86))  # phone-camera JPEG, with its block artefacts
        write_atomic(
            os.path.join(directory, name), lambda tmp, p=photo, q=quality: p.save(tmp, format="JPEG", quality=q), ".jpg"
        )


def ensure_standin(root: str, per_class: int, seed: int = 0, classes: Sequence[str] = STANDIN_CLASSES) -> str:
    """Generate the stand-in set under ``root`` once; return its directory."""
    directory = os.path.join(root, f"standin-photos-v{FORMAT_VERSION}-{per_class}x{len(classes)}-seed{seed}")
    marker = os.path.join(directory, ".complete.json")  # hidden: not a photo
    names = file_names(per_class, classes)
    paths = [os.path.join(directory, n) for n, _, _ in names]
    if os.path.exists(marker) and all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in paths):
        return directory
    try:
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)  # generated, nobody's own photos: every user may read them, whatever the umask
        write_photos(directory, names, seed)
        write_json_atomic(marker, {"per_class": per_class, "seed": seed, "files": len(names)})
    except OSError as exc:
        raise DataError(f"cannot write the stand-in photos under {root}: {exc.strerror or exc}") from None
    return directory
