"""The user's photos: classes from file names, checks, a stratified held-out split.

Convention (from the continual-learning seed): the class of a photo is the first two
underscore-separated tokens of its file name, ``orange_square_01.jpg`` -> ``orange_square``
(lower-cased, so ``Orange_Square_02.JPG`` joins it). A name needs a third token (the
photo's own part: a number, a date) so that a camera's ``IMG_1234.jpg`` is reported as
misnamed instead of becoming a class of its own.

Every unusable file is skipped and named with the reason: a name that does not fit, a
file that is empty, not an image or damaged, a copy of another photo (a copy would sit in
training and in the held-out split at once, or carry two classes), a class with fewer than
``MIN_PER_CLASS`` usable photos. Hidden files (``.DS_Store``) are ignored silently.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from PIL import Image, ImageOps

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PATTERN = "<word>_<word>_<anything>.jpg (e.g. orange_square_01.jpg; .jpeg, .png, .bmp, .webp too)"
#: Two photos to learn from and one to test on, at the least.
MIN_PER_CLASS = 3
#: Skipped files named in the one-line message; the rest are counted.
LISTED = 12
#: Share of each class held out for the accuracy figure (rounded up, at least one).
HOLDOUT_FRAC = 0.3
#: A "word" is letters and digits of any script (röd, 青い), and hyphens: ``[^\W_]`` is \w without the underscore.
_NAME = re.compile(r"^((?:[^\W_]|-)+)_((?:[^\W_]|-)+)_.+$")


@dataclass
class PhotoSet:
    """The usable photos of a folder, what was skipped and why."""

    directory: str
    items: List[Tuple[str, str]] = field(default_factory=list)  # (path, class)
    problems: List[Tuple[str, str]] = field(default_factory=list)  # (file name, reason)

    @property
    def classes(self) -> List[str]:
        return sorted({label for _, label in self.items})

    def counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for _, label in self.items:
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def usable(self) -> bool:
        return len(self.classes) >= 2

    def problem_line(self) -> Optional[str]:
        """One line naming every skipped file and the expected pattern, or None."""
        if not self.problems:
            return None
        listed = "; ".join(f"{shown(name)} ({reason})" for name, reason in self.problems[:LISTED])
        more = len(self.problems) - LISTED
        if more > 0:  # a camera folder of 1500 IMG_*.JPG made a 72 KB "line"; the results list every one
            listed += f"; and {more} more (each named in the result's photos.skipped)"
        return (
            f"{shown(self.directory)}: skipped {len(self.problems)} file(s): {listed} — expected {PATTERN}, "
            f"at least {MIN_PER_CLASS} photos per class"
        )

    def unusable_reason(self) -> Optional[str]:
        if self.usable:
            return None
        found = ", ".join(f"{k} ({v})" for k, v in self.counts().items()) or "none"
        return (
            f"{shown(self.directory)}: need photos of at least 2 classes with {MIN_PER_CLASS}+ photos each; "
            f"usable classes: {found}"
        )


def shown(name: str) -> str:
    """A file name as one line can hold it: a newline or another control character written as its escape."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in name)


def class_of(file_name: str) -> Optional[str]:
    """``orange_square_01.jpg`` -> ``orange_square``; None when the name does not fit (a control character in it
    never does: ``$`` would match before a trailing newline)."""
    if any(unicodedata.category(c) == "Cc" for c in file_name):
        return None
    # NFKC: macOS writes names decomposed (NFD), and a full-width ＲＥＤ_ｓｔａｒ is red_star typed on another keyboard.
    stem, ext = os.path.splitext(unicodedata.normalize("NFKC", file_name))
    if ext.lower() not in EXTENSIONS:
        return None
    match = _NAME.match(stem)
    if not match:
        return None
    return f"{match.group(1)}_{match.group(2)}".lower()


def check_image(path: str) -> Optional[str]:
    """Why ``path`` cannot be used as a photo, or None if it decodes completely."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if size == 0:
        return "empty file, 0 bytes"
    try:
        with Image.open(path) as img:
            img.verify()  # structure and checksums, without decoding
        with Image.open(path) as img:
            img.draft("RGB", (256, 256))  # JPEG: decode at reduced scale, still every block
            img.load()
    except Image.DecompressionBombError:
        return "image too large to decode safely"
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"not a readable image: {reason}"
    return None


def scan(directory: str) -> PhotoSet:
    """Every photo in ``directory`` (not its subfolders) sorted into classes, with problems."""
    photos = PhotoSet(directory)
    candidates: List[Tuple[str, str]] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            photos.problems.append((name + "/", "a folder: photos go directly in the photo folder"))
            continue
        if not os.path.isfile(path):  # a FIFO or a device would block or never end; a dangling link has nothing
            photos.problems.append((name, "not a regular file"))
            continue
        label = class_of(name)
        if label is None:
            ext = os.path.splitext(name)[1].lower()
            reason = "name does not match the pattern" if ext in EXTENSIONS else "not a photo file type"
            photos.problems.append((name, reason))
            continue
        why = check_image(path)
        if why:
            photos.problems.append((name, why))
            continue
        candidates.append((path, label))
    candidates = _without_copies(candidates, photos.problems)

    counts: Dict[str, int] = {}
    for _, label in candidates:
        counts[label] = counts.get(label, 0) + 1
    for path, label in candidates:
        if counts[label] < MIN_PER_CLASS:
            n = counts[label]
            photos.problems.append(
                (os.path.basename(path), f"class {label} has {n} usable photo{'s' if n != 1 else ''}")
            )
        else:
            photos.items.append((path, label))
    return photos


def _without_copies(candidates: List[Tuple[str, str]], problems: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """``candidates`` less byte-identical copies (a symlink to another photo is one): within a class the first name
    stays; a file named as two classes stays in neither, as nothing says which name is right."""
    by_digest: Dict[str, List[Tuple[str, str]]] = {}
    for path, label in candidates:
        by_digest.setdefault(_digest(path), []).append((path, label))
    dropped = set()
    for copies in by_digest.values():
        first = os.path.basename(copies[0][0])
        if len({label for _, label in copies}) > 1:
            named = ", ".join(f"{shown(os.path.basename(p))} ({label})" for p, label in copies)
            for path, _ in copies:
                problems.append((os.path.basename(path), f"the same image under two classes: {named}"))
                dropped.add(path)
            continue
        for path, _ in copies[1:]:
            problems.append((os.path.basename(path), f"a copy of {shown(first)}"))
            dropped.add(path)
    return [(path, label) for path, label in candidates if path not in dropped]


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def files_fingerprint(directory: str) -> Optional[str]:
    """``"N files <12 hex>"`` over the names and sizes of a folder's non-hidden files, or None when it cannot be
    listed: two runs whose photo folder has the same path but other photos did not run alike. Names and sizes, not
    contents, so that it costs a listing, not a read of every photo."""
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
        lines = []
        for name in names:
            path = os.path.join(directory, name)
            size = os.path.getsize(path) if os.path.isfile(path) else -1
            lines.append(f"{name}\0{size}\n")
    except OSError:
        return None
    digest = hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{len(names)} files {digest}"


def has_photo_files(directory: str) -> bool:
    """Whether a folder holds anything the user meant as a photo (non-hidden files)."""
    try:
        return any(not n.startswith(".") for n in os.listdir(directory))
    except OSError:
        return False


def holdout_count(n: int) -> int:
    """Held-out photos of a class of ``n``: 30 % rounded up, at least 1, leaving 2 to learn from."""
    return max(1, min(math.ceil(n * HOLDOUT_FRAC), n - 2))


def stratified_split(
    items: List[Tuple[str, str]], seed: int = 0
) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """(fine-tune, held-out) photos: each class split on its own, by a seeded shuffle.

    Deterministic for a given folder and seed: the same photos are held out in every
    configuration and every run, so accuracies compare.
    """
    by_class: Dict[str, List[Tuple[str, str]]] = {}
    for item in sorted(items):
        by_class.setdefault(item[1], []).append(item)
    train: List[Tuple[str, str]] = []
    held: List[Tuple[str, str]] = []
    for label, members in sorted(by_class.items()):
        order = list(members)
        random.Random(f"{seed}-{label}").shuffle(order)
        k = holdout_count(len(order))
        held.extend(order[:k])
        train.extend(order[k:])
    return train, held


def load_photo(path: str, min_side: int) -> Image.Image:
    """A photo, upright (EXIF orientation applied) and RGB, decoded no larger than needed.

    Phone JPEGs are 12+ megapixels: JPEG draft mode decodes them at 1/2, 1/4 or 1/8
    scale directly, as long as the short side stays at least ``min_side``.
    """
    with Image.open(path) as img:
        img.draft("RGB", (min_side, min_side))
        img = ImageOps.exif_transpose(img)
        return eight_bit(img).convert("RGB")


#: Greyscale modes of more than 8 bits (16-bit PNG and TIFF greys load as these), which Pillow's convert("RGB")
#: clips at 255 instead of scaling: a 16-bit grey photo became white.
WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def eight_bit(img: Image.Image) -> Image.Image:
    """``img`` with a wide grey scaled into 8 bits by its format's range (16 bits, or a float's 0-1); else as is."""
    if img.mode not in WIDE_GREY:
        return img
    import numpy as np

    values = np.asarray(img, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    if img.mode == "F":
        top = 1.0 if peak <= 1.0 else 255.0
    else:  # "I" holds 8-bit values in some files and 16-bit in others: its own peak tells which
        top = 65535.0 if img.mode.startswith("I;16") or peak > 255 else 255.0
    scaled = np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)  # 2-D uint8: "L"
