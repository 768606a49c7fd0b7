"""The generated dataset: layout, determinism, caching, repair and failure messages."""

import hashlib
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from bench_support.workloads.data import (
    CLASSES,
    FORMAT_VERSION,
    DataError,
    DatasetSpec,
    ensure_dataset,
    image_folders,
)

SPEC = DatasetSpec(n_train=16, n_val=8, image_size=24, seed=3)


def _digests(directory):
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".jpg"):
                with open(os.path.join(base, name), "rb") as fh:
                    out[os.path.relpath(os.path.join(base, name), directory)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def test_layout_classes_and_images(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    train, val = image_folders(directory, SPEC.image_size)
    assert train.classes == sorted(CLASSES) and len(train) == 16 and len(val) == 8
    counts = {c: sum(1 for _, label in train.samples if train.classes[label] == c) for c in CLASSES}
    assert set(counts.values()) == {4}  # balanced
    path, label = train.samples[0]
    assert os.path.basename(path).startswith(train.classes[label] + "_")
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (24, 24)
    tensor, _ = train[0]
    assert tuple(tensor.shape) == (3, 24, 24)


def test_generation_is_deterministic_and_seeded(tmp_path):
    a = _digests(ensure_dataset(str(tmp_path / "a"), SPEC))
    b = _digests(ensure_dataset(str(tmp_path / "b"), SPEC))
    c = _digests(ensure_dataset(str(tmp_path / "c"), DatasetSpec(16, 8, 24, seed=4)))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_valid_files_are_never_generated_again(tmp_path):
    calls = []
    directory = ensure_dataset(str(tmp_path), SPEC, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (24, 24)
    before = {p: os.stat(os.path.join(directory, p)).st_mtime_ns for p in _digests(directory)}
    calls.clear()
    ensure_dataset(str(tmp_path), SPEC, progress=lambda d, t: calls.append((d, t)))
    assert calls == []
    assert before == {p: os.stat(os.path.join(directory, p)).st_mtime_ns for p in before}


def test_damaged_and_missing_files_alone_are_regenerated(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    good = _digests(directory)
    victims = sorted(good)[:2]
    with open(os.path.join(directory, victims[0]), "r+b") as fh:
        fh.truncate(10)
    os.unlink(os.path.join(directory, victims[1]))
    calls = []
    ensure_dataset(str(tmp_path), SPEC, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (2, 2)
    assert _digests(directory) == good


def test_an_unwritable_root_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError) as info:
        ensure_dataset(str(blocker / "data"), SPEC)
    assert "cannot write the dataset under" in str(info.value) and "\n" not in str(info.value)


def _object_pixels(image, label):
    """Pixels close to the class colour: the drawn shape (backgrounds are muted)."""
    import numpy as np

    from bench_support.workloads.drawing import _COLOURS

    colour = np.array(_COLOURS[label.split("_")[0]], np.float32)
    return int((np.linalg.norm(np.asarray(image, np.float32) - colour, axis=2) < 70).sum())


def test_shape_size_does_not_tell_the_class():
    """Squares and circles cover the same area on average: a model must learn outlines."""
    import numpy as np

    from bench_support.workloads.drawing import render

    rng = np.random.default_rng(0)
    area = {label: np.mean([_object_pixels(render(label, 64, rng), label) for _ in range(150)]) for label in CLASSES}
    for colour in ("blue", "orange"):
        ratio = area[f"{colour}_square"] / area[f"{colour}_circle"]
        assert 0.85 < ratio < 1.15, (colour, ratio)  # equal circumradii would give ~0.64


def test_a_set_from_an_older_renderer_is_redrawn(tmp_path):
    import json

    directory = ensure_dataset(str(tmp_path), SPEC)
    manifest_path = os.path.join(directory, "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["format"] = 1  # the renderer before shapes of equal area
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    before = _digests(directory)
    calls = []
    ensure_dataset(str(tmp_path), SPEC, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (24, 24)  # every file drawn again, whatever its state
    assert _digests(directory) == before
    with open(manifest_path) as fh:
        assert json.load(fh)["format"] == FORMAT_VERSION


def test_a_training_loader_never_ends_on_a_batch_of_one():
    from bench_support.workloads.data import make_loader

    assert [len(b) for b in make_loader(list(range(9)), 8)] == [8]  # BatchNorm cannot train on 1 sample
    assert [len(b) for b in make_loader(list(range(10)), 8)] == [8, 2]
    assert [len(b) for b in make_loader(list(range(9)), 8, shuffle=False)] == [8, 1]  # evaluation sees all


def test_study_sized_images_are_textured_jpegs_of_a_photos_weight():
    """From TEXTURE_FROM_PX on, a generated 224 px JPEG weighs 8-32 KB (the study's ImageNet-sized photos' order);
    a flat 32 px one about 1 KB."""
    import io

    from bench_support.workloads.drawing import TEXTURE_FROM_PX, render

    def jpeg_kb(size, seed):
        buffer = io.BytesIO()
        render(CLASSES[seed % 4], size, np.random.default_rng(seed)).save(buffer, format="JPEG", quality=90)
        return len(buffer.getvalue()) / 1024

    assert TEXTURE_FROM_PX <= 224
    large = [jpeg_kb(224, seed) for seed in range(8)]
    assert all(8 <= kb <= 32 for kb in large), large
    assert all(kb < 2 for kb in (jpeg_kb(32, seed) for seed in range(8)))


def test_a_file_where_a_class_folder_should_be_is_named(tmp_path):
    ensure_dataset(str(tmp_path), SPEC)
    directory = os.path.join(str(tmp_path), SPEC.name)
    first = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))[0]
    shutil.rmtree(os.path.join(directory, first))
    open(os.path.join(directory, first), "w").close()  # a file in the class folder's place
    with pytest.raises(DataError) as info:
        ensure_dataset(str(tmp_path), SPEC)
    assert "cannot write the dataset under" in str(info.value) and first in str(info.value), str(info.value)
