"""The generated dataset's integrity: its manifest, its files' content hashes, and nothing else in its folders.

torchvision's ImageFolder loads every file with an image extension under a class
folder (hidden ones included) and makes a class of every folder, so:

- a file is written under a temp name without an image extension (``.tmp-XXXX.partial``)
  and renamed; a temp file left by a killed generation is never loaded, and the next
  ``ensure_dataset`` removes it (under the dataset's lock, so never another session's);
- a file with an image extension, or a folder, that the dataset does not name is
  reported, not deleted (it may be someone's): ImageFolder would count or misread it;
- ``manifest.json`` (written atomically, after every file it names) records each
  file's size and SHA-256. A file whose bytes differ is regenerated alone (every image
  is a pure function of (seed, split, index)). A torn or missing manifest, or one of
  format 2 (sizes only, same images), is rebuilt from the files that decode as the
  expected JPEG (and match the recorded size, where there is one); the others are
  regenerated.

Checking costs a read and a hash of every file per ``ensure_dataset`` (once per session
and data root): 640 or 5,120 small JPEGs, milliseconds when cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from bench_support.files import read_json

FORMAT_VERSION = 3  # 3: a SHA-256 per file; 2: sizes only (shapes of equal area, the images of today)
SAME_IMAGES = (2, 3)  # manifest formats whose images the current renderer draws byte for byte
TEMP_PREFIX = ".tmp-"  # bench_support.files.write_atomic's
TEMP_SUFFIX = ".partial"  # no image extension: ImageFolder never loads a temp file
#: torchvision.datasets.folder.IMG_EXTENSIONS: what ImageFolder loads (compared in lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

Intact = Tuple[int, str]  # (size in bytes, sha256 hex)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def locked(directory: str) -> Iterator[None]:
    """An advisory lock on the dataset folder: two sessions never generate or tidy it at once.

    Where no lock can be had (a read-only medium, another user's lock file), it goes without.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    path = os.path.join(directory, ".lock")
    fd = None
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(path, flags, 0o644)
            break
        except OSError:
            continue
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def tidy(directory: str, splits: Iterable[str], classes: Iterable[str], expected: Iterable[str]) -> List[str]:
    """Remove temp files left by a killed write; return what ImageFolder would load that is not the dataset's.

    The returned paths are relative to ``directory``: image files that ``expected`` does
    not name, anywhere under a class folder, and folders that are not a class.
    """
    expected, classes = set(expected), set(classes)
    foreign: List[str] = []
    if not os.path.isdir(directory):
        return foreign
    for entry in os.scandir(directory):  # a manifest write's leftover
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
    for split in splits:
        split_dir = os.path.join(directory, split)
        if not os.path.isdir(split_dir):
            continue
        for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if not entry.is_dir():
                continue  # ImageFolder reads class folders only
            if entry.name not in classes:
                foreign.append(os.path.join(split, entry.name) + os.sep)
                continue
            for base, _, names in os.walk(entry.path, followlinks=True):  # as ImageFolder walks
                for name in sorted(names):
                    path = os.path.join(base, name)
                    rel = os.path.relpath(path, directory)
                    if name.startswith(TEMP_PREFIX):
                        os.unlink(path)
                    elif rel not in expected and name.lower().endswith(IMAGE_EXTENSIONS):
                        foreign.append(rel)
    return foreign


def recorded(manifest: Any, expected: Mapping[str, Any]) -> Tuple[Dict[str, int], Dict[str, str], bool]:
    """(sizes, hashes, redraw) from a loaded manifest (None when missing or torn).

    ``redraw``: the images were drawn by another renderer, every file is redone. Sizes
    and hashes are empty where the manifest cannot vouch for the files (torn, another
    spec); hashes are empty for format 2.
    """
    if not isinstance(manifest, dict):
        return {}, {}, False
    if manifest.get("format") not in SAME_IMAGES:
        return {}, {}, True
    if any(manifest.get(key) != value for key, value in expected.items() if key != "format"):
        return {}, {}, False
    sizes, hashes = manifest.get("files"), manifest.get("sha256") if manifest.get("format") >= 3 else {}
    sizes = {k: v for k, v in sizes.items() if isinstance(v, int)} if isinstance(sizes, dict) else {}
    hashes = {k: v for k, v in hashes.items() if isinstance(v, str)} if isinstance(hashes, dict) else {}
    return sizes, hashes, False


def _decodes(data: bytes, image_size: int) -> bool:
    """Whether ``data`` is a whole RGB JPEG of ``image_size`` x ``image_size``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.format == "JPEG" and image.mode == "RGB" and image.size == (image_size, image_size)
    except Exception:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for a damaged file
        return False


def intact(path: str, size: Optional[int], sha256: Optional[str], image_size: int) -> Optional[Intact]:
    """(size, sha256) of the file at ``path`` when it is intact, else None (missing, damaged).

    With a recorded hash, its bytes must hash to it; without one, they must match the
    recorded size (if any) and decode as the expected JPEG.
    """
    try:
        if size is not None and os.path.getsize(path) != size:
            return None
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    found = digest(data)
    if sha256 is not None:
        return (len(data), found) if found == sha256 else None
    return (len(data), found) if _decodes(data, image_size) else None


def dataset_bytes(directory: str, splits: Iterable[str]) -> int:
    """Total size of the dataset's images: the manifest's record, or the files themselves when it has none."""
    manifest = read_json(os.path.join(directory, "manifest.json"))
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if isinstance(files, dict) and files and all(isinstance(v, int) for v in files.values()):
        return sum(files.values())
    total = 0
    for split in splits:
        for base, _, names in os.walk(os.path.join(directory, split)):
            for name in names:
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        total += os.path.getsize(os.path.join(base, name))
    return total
