"""Class-incremental pieces: the worker's image pipeline, rehearsal batches, nearest class mean, the factory's head."""

import colorsys
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bench_support.continual import imaging
from bench_support.continual.incremental import final_linear, keep_rows
from bench_support.continual.model import SmallCNN
from bench_support.continual.rehearsal import NearestMean, ReplayBatches
from bench_support.workloads.data import DataError


def _photo(w=320, h=240, colour=(40, 160, 70)):
    img = Image.new("RGB", (w, h), (120, 100, 80))
    img.paste(Image.new("RGB", (w // 3, h // 3), colour), (w // 3, h // 3))
    return img


def test_held_out_transform_is_a_centre_square_and_deterministic():
    held = imaging.photo_transform(64, train=False)
    a, b = held(_photo()), held(_photo())
    assert tuple(a.shape) == (3, 64, 64) and a.dtype == torch.float32 and torch.equal(a, b)
    portrait = held(_photo(240, 320))
    assert tuple(portrait.shape) == (3, 64, 64)
    # The centre pixel is the object's colour, normalised with the suite's statistics.
    expected = (np.array([40, 160, 70]) / 255 - np.array(imaging.NORM_MEAN)) / np.array(imaging.NORM_STD)
    assert np.allclose(a[:, 32, 32].numpy(), expected, atol=0.02)


def test_training_draws_repeat_under_a_seed_and_differ_between_draws():
    train = imaging.photo_transform(48, train=True)
    torch.manual_seed(3)
    first = [train(_photo()) for _ in range(4)]
    torch.manual_seed(3)
    again = [train(_photo()) for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(first[0], x) for x in first[1:])
    assert all(tuple(x.shape) == (3, 48, 48) for x in first)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(40, 160, 70), (235, 125, 30), (40, 85, 200), (200, 35, 40)]))
def test_jitter_keeps_the_hue_of_a_colour(seed, colour):
    """Brightness, contrast and saturation may change; a green must stay green (a class can be a colour)."""
    torch.manual_seed(seed)
    out = np.asarray(imaging.jitter(Image.new("RGB", (8, 8), colour)), np.float32)[4, 4] / 255
    hue_in = colorsys.rgb_to_hsv(*(np.array(colour) / 255))[0]
    hue_out = colorsys.rgb_to_hsv(*out)[0]
    assert min(abs(hue_in - hue_out), 1 - abs(hue_in - hue_out)) < 0.03


def test_random_resized_crop_keeps_at_least_half_the_area(monkeypatch):
    seen = []
    real_resize = Image.Image.resize

    def spy(self, size, resample=None, box=None, **kw):
        if box is not None:
            seen.append((box[2] - box[0]) * (box[3] - box[1]) / (self.size[0] * self.size[1]))
        return real_resize(self, size, resample, box, **kw)

    monkeypatch.setattr(Image.Image, "resize", spy)
    torch.manual_seed(0)
    for _ in range(50):
        imaging.random_resized_crop(_photo(), 32)
    assert len(seen) == 50 and min(seen) >= 0.49 and max(seen) <= 1.0


def test_folder_dataset_orders_classes_like_imagefolder_and_refuses_others(tmp_path):
    for name in ("orange_square", "blue_circle"):
        (tmp_path / name).mkdir()
        _photo(16, 16).save(tmp_path / name / "a.png")
        (tmp_path / name / "notes.txt").write_text("not an image")
    data = imaging.FolderDataset(str(tmp_path), 16, False, ["orange_square", "blue_circle"])
    # Labels are the positions in the classes given (the model's rows), not in the folders' sorted order.
    assert [t for _, t in data.items] == [0, 1] and data.items[0][0].endswith("orange_square/a.png")
    assert tuple(data[1][0].shape) == (3, 16, 16) and data[1][1] == 1
    with pytest.raises(DataError, match="expected"):
        imaging.FolderDataset(str(tmp_path), 16, False, ["orange_square", "blue_circle", "green_circle"])
    for name in ("orange_square", "blue_circle"):
        (tmp_path / name / "a.png").unlink()
    with pytest.raises(DataError, match="no images"):
        imaging.FolderDataset(str(tmp_path), 16, False, ["orange_square", "blue_circle"])
    with pytest.raises(DataError, match="synthetic set"):
        imaging.FolderDataset(str(tmp_path / "gone"), 16, False, ["orange_square"])


def test_transforms_pickle_for_spawned_loader_workers():
    for train in (True, False):
        again = pickle.loads(pickle.dumps(imaging.photo_transform(32, train)))
        assert tuple(again(_photo()).shape) == (3, 32, 32)


def test_a_very_wide_photo_falls_back_to_the_widest_allowed_centre_crop(monkeypatch):
    boxes = []
    real_resize = Image.Image.resize
    monkeypatch.setattr(
        Image.Image, "resize", lambda self, size, resample=None, box=None: boxes.append(box) or real_resize(self, size)
    )
    monkeypatch.setattr(imaging, "CROP_SCALE", (0.9, 1.0))  # a 90 % crop never fits a 4:1 image at 3:4-4:3
    imaging.random_resized_crop(Image.new("RGB", (400, 100)), 32)
    (box,) = boxes
    assert box == (133, 0, 266, 100)  # the whole height, 4:3 wide (133 px), centred


def test_replay_batches_append_the_next_replayed_batch_and_cycle():
    photos = [(torch.full((2, 1), float(i)), torch.tensor([i, i])) for i in range(5)]
    replay = [(torch.full((1, 1), -1.0), torch.tensor([7])), (torch.full((1, 1), -2.0), torch.tensor([8]))]
    batches = list(ReplayBatches(photos, replay))
    assert len(ReplayBatches(photos, replay)) == 5 and len(batches) == 5
    assert [b[1].tolist() for b in batches] == [[0, 0, 7], [1, 1, 8], [2, 2, 7], [3, 3, 8], [4, 4, 7]]
    assert batches[1][0][:, 0].tolist() == [1.0, 1.0, -2.0]


class _Embed(torch.nn.Module):
    """A 'model' whose final layer's input is the input itself: the embeddings are chosen by the test."""

    def __init__(self, dim, classes):
        super().__init__()
        self.classifier = torch.nn.Sequential(torch.nn.Linear(dim, classes))

    def forward(self, x):
        return self.classifier(x)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.integers(2, 5))
def test_nearest_mean_answers_each_class_mean_with_its_class(seed, classes, per_class):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 8, generator=gen) * 5
    features = torch.cat([c + 0.01 * torch.randn(per_class, 8, generator=gen) for c in centres])
    targets = torch.arange(classes).repeat_interleave(per_class)
    model = _Embed(8, classes + 1)  # one more output than there are photos: a class without photos
    classifier = NearestMean(model, [(features, targets)], classes + 1)
    assert classifier.predict(centres).tolist() == list(range(classes))
    assert not classifier.present[classes] and (classifier.predict(features) != classes).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(50, 200), st.lists(st.integers(3, 5), min_size=1, max_size=4))
def test_nearest_mean_is_not_pulled_onto_the_class_with_the_most_photos(seed, big, small):
    """Classes on orthogonal axes 5 apart, spread 0.5 per dimension: each is separable from the rest by 7 of its
    spread's widths whatever the class sizes. Centred on the photos' mean, the big class's accuracy fell to ~0.5."""
    sizes = [big, *small]
    gen = torch.Generator().manual_seed(seed)
    centres = 5 * torch.eye(8)[: len(sizes)]
    features = torch.cat([c + 0.5 * torch.randn(n, 8, generator=gen) for c, n in zip(centres, sizes)])
    targets = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    hits = NearestMean(_Embed(8, len(sizes)), [(features, targets)], len(sizes)).predict(features) == targets
    assert min(hits[targets == c].float().mean().item() for c in range(len(sizes))) >= 0.9


def test_keep_rows_narrows_the_head_to_the_shipped_classes():
    model = SmallCNN(16)
    _, _, before = final_linear(model)
    weights, biases = before.weight.detach().clone(), before.bias.detach().clone()
    keep_rows(model, [0, 1, 4, 5])
    _, _, after = final_linear(model)
    assert after.out_features == 4
    assert torch.equal(after.weight, weights[[0, 1, 4, 5]]) and torch.equal(after.bias, biases[[0, 1, 4, 5]])
    assert tuple(model.eval()(torch.zeros(1, 3, 32, 32)).shape) == (1, 4)
