"""Class-incremental fine-tuning: the head grows, known rows stay, new rows point at their photos' mean."""

import pytest
import torch
from torch import nn

from bench_support.continual.incremental import (
    embeddings_and_logits,
    extend_head,
    imprinted_rows,
    label_space,
    per_class_accuracy,
    split_known_new,
)
from bench_support.continual.model import SmallCNN
from bench_support.workloads.data import CLASSES


def test_the_label_space_is_the_factorys_classes_then_the_new_ones():
    classes, new = label_space(["orange_triangle", "blue_circle", "green_circle"])
    assert classes == list(CLASSES) + ["green_circle", "orange_triangle"] and new == ["green_circle", "orange_triangle"]
    assert label_space(["blue_circle", "orange_square"]) == (list(CLASSES), [])


def _loader(features, labels):
    return [(torch.stack(features), torch.tensor(labels))]


def test_new_rows_are_imprinted_centred_and_calibrated_and_the_known_rows_kept():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4)
    old = model.classifier[0].weight.detach().clone(), model.classifier[0].bias.detach().clone()
    images = torch.rand(8, 3, 32, 32)
    targets = [0, 1, 4, 4, 4, 5, 5, 5]
    features, logits, seen = embeddings_and_logits(model, _loader(list(images), targets))
    with torch.no_grad():
        expected = torch.flatten(model.pool(model.features(images)), 1)
    assert torch.allclose(features, expected, atol=1e-5) and seen.tolist() == targets
    rows, biases = imprinted_rows(model, _loader(list(images), targets), [4, 5])
    centre, norm = features.mean(0), old[0].norm(dim=1).mean()
    reference = (logits[0, 0] + logits[1, 1]) / 2  # the known photos' own logits
    for row, bias, index in zip(rows, biases, (4, 5)):
        mean = features[torch.tensor(targets) == index].mean(0)
        assert row.norm().item() == pytest.approx(norm.item(), rel=1e-4)
        assert nn.functional.cosine_similarity(row, mean - centre, dim=0).item() == pytest.approx(1.0, abs=1e-5)
        assert (row @ mean + bias).item() == pytest.approx(reference.item(), rel=1e-4)  # one scale with the known
    extend_head(model, rows, biases)
    layer = model.classifier[0]
    assert isinstance(layer, nn.Linear) and layer.out_features == 6
    assert torch.equal(layer.weight.detach()[:4], old[0]) and torch.equal(layer.bias.detach()[:4], old[1])
    assert model(images).shape == (8, 6)


def test_a_torchvision_head_in_a_sequential_grows_too():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8))
    model.classifier = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 4))  # head_of finds `classifier`
    extend_head(model, torch.ones(1, 4), torch.zeros(1))
    assert model.classifier[2].out_features == 5


class _Fixed(nn.Module):
    """A 'model' whose prediction for image i is predictions[i]."""

    def __init__(self, predictions, classes):
        super().__init__()
        self.predictions, self.classes = predictions, classes

    def forward(self, x):
        return nn.functional.one_hot(torch.tensor(self.predictions[: len(x)]), self.classes).float()


def test_accuracy_per_class_and_known_versus_new():
    classes = list(CLASSES) + ["green_circle"]
    labels = [0, 0, 1, 1, 4, 4]
    model = _Fixed([0, 1, 1, 1, 4, 0], len(classes))
    overall, per_class = per_class_accuracy(model, _loader([torch.zeros(1)] * 6, labels), classes)
    assert overall == pytest.approx(4 / 6)
    assert per_class == {"blue_circle": 0.5, "blue_square": 1.0, "green_circle": 0.5}
    counts = {"blue_circle": 2, "blue_square": 2, "green_circle": 2}
    assert split_known_new(per_class, counts) == {"acc_known": 0.75, "acc_new": 0.5}
    known_only = {"blue_circle": 0.5}
    assert split_known_new(known_only, {"blue_circle": 2}) == {"acc_known": 0.5, "acc_new": None}
