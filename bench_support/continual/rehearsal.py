"""What keeps a class-incremental fine-tune from forgetting, and a classifier that is not biased by it.

Rehearsal (experience replay): every batch of photos is joined by a few synthetic images
of the factory's classes, drawn from the synthetic training set the device already holds
(the one the factory's BatchNorm statistics come from; forgetting is measured on the
validation split, as iCaRL's protocol does). Without them, a few photos of new classes
pull the whole network towards them and the known classes are forgotten: measured on
the stand-ins with the four-class factory, the synthetic accuracy of the known classes
fell 10-15 points in 4 epochs of ``whole-adam``; with 2 replayed images per batch it
rose by 0-2. The replayed images are decoded in the training loop: their time is in the
timed epoch (as fetch stall), and the epoch's loss is over photos and replayed images.

Nearest class mean (NCM): the class whose mean embedding of the training photos is
closest in angle, with the embeddings centred on their overall mean (as in Rebuffi et
al., *iCaRL*, 2017, and Wang et al., *SimpleShot*, 2019). A linear head trained on a
few photos beside the replayed images leans towards the classes it saw most; the means
weigh every class's photos alike and need no training. Both are measured on the same
backbone, per epoch. A class without training photos has no mean: the nearest mean
answers among the photos' classes only, the head among all its outputs.
"""

from __future__ import annotations

from typing import Dict, Iterator, Sequence, Tuple

import torch
from torch import nn

from bench_support.continual.incremental import embeddings_and_logits


class ReplayBatches:
    """Each batch of ``photos`` with ``replay``'s next batch appended (cycled); as long as ``photos``."""

    def __init__(self, photos, replay) -> None:
        self.photos, self.replay = photos, replay

    def __len__(self) -> int:
        return len(self.photos)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        extra = iter(self.replay)
        for images, targets in self.photos:
            try:
                more, labels = next(extra)
            except StopIteration:
                extra = iter(self.replay)
                more, labels = next(extra)
            yield torch.cat([images, more]), torch.cat([targets, labels])


class NearestMean:
    """Cosine to the centred class means of the training photos' embeddings (taken from ``loader``)."""

    @torch.no_grad()
    def __init__(self, model: nn.Module, loader, n_classes: int) -> None:
        features, _, targets = embeddings_and_logits(model, loader)
        self.present = torch.tensor([bool((targets == c).any()) for c in range(n_classes)])
        means = torch.zeros(n_classes, features.shape[1])
        for c in torch.nonzero(self.present).flatten().tolist():
            means[c] = features[targets == c].mean(dim=0)
        # Centred on the mean of the class means, not of the photos: with 200 photos of one class and 3 of another,
        # the photos' mean sits on the big class, whose centred mean then points nowhere (its accuracy fell to 0.48).
        self.centre = means[self.present].mean(dim=0)
        self.means = nn.functional.normalize(means - self.centre, dim=1).masked_fill(~self.present[:, None], 0.0)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The nearest mean's class; a class without training photos has no mean and is never answered."""
        scores = nn.functional.normalize(features - self.centre, dim=1) @ self.means.T
        return scores.masked_fill(~self.present, float("-inf")).argmax(dim=1)


@torch.no_grad()
def nearest_mean_accuracy(
    model: nn.Module, train_loader, held_loader, classes: Sequence[str]
) -> Tuple[float, Dict[str, float]]:
    """(top-1 of the nearest-mean classifier over ``held_loader``, per class), means from ``train_loader``."""
    classifier = NearestMean(model, train_loader, len(classes))
    features, _, targets = embeddings_and_logits(model, held_loader)
    hits = classifier.predict(features) == targets
    per_class = {classes[c]: round(hits[targets == c].float().mean().item(), 4) for c in sorted(set(targets.tolist()))}
    return hits.float().mean().item(), per_class
