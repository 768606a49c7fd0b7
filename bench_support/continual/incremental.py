"""Class-incremental fine-tuning: the photos' new classes join the factory's, and what is measured per class.

The factory model answers over the synthetic classes (``CLASSES``). Photos of classes it
never saw extend its head: the known classes keep their pretrained rows, and each new
class gets a row "imprinted" from the embeddings of its training photos (after Qi et al.,
*Low-shot learning with imprinted weights*, CVPR 2018; see :func:`imprinted_rows`), so
the model answers over old and new classes together from the first step. Forgetting is
then measurable on the known classes: the synthetic validation set keeps its meaning.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from bench_support.continual.model import head_of
from bench_support.workloads.data import CLASSES


def label_space(photo_classes: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(the model's classes: the factory's, then the photos' new ones sorted; the new ones)."""
    new = sorted(set(photo_classes) - set(CLASSES))
    return list(CLASSES) + new, new


def final_linear(model: nn.Module) -> Tuple[nn.Module, str, nn.Linear]:
    """(the module holding the last Linear layer, its attribute name, the layer)."""
    head = head_of(model)
    if isinstance(head, nn.Linear):
        return model, "fc", head
    index = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
    return head, str(index), head[index]


@torch.no_grad()
def embeddings_and_logits(model: nn.Module, loader) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs of the final layer, its outputs, the targets) over ``loader``: eval mode, no augmentation."""
    _, _, layer = final_linear(model)
    seen: List[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    features, logits, targets = [], [], []
    model.eval()
    try:
        for images, labels in loader:
            seen.clear()
            logits.append(model(images))
            features.append(seen[0])
            targets.append(labels)
    finally:
        hook.remove()
    return torch.cat(features), torch.cat(logits), torch.cat(targets)


@torch.no_grad()
def imprinted_rows(model: nn.Module, loader, new_indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(weight rows, biases) for the new classes ``new_indices`` from the training photos in ``loader``.

    A row is the direction from the mean embedding of all the photos to its class's mean,
    at the known rows' mean norm: after ReLU every embedding points into the same orthant,
    so an uncentred mean would score every photo highly. Its bias puts the class's own mean
    photo at the logit the known classes give their own photos (or, with no known photo,
    the largest known logit on average), so new and known outputs start on one scale.
    """
    features, logits, targets = embeddings_and_logits(model, loader)
    _, _, layer = final_linear(model)
    known = targets < layer.out_features
    if known.any():
        reference = logits[known].gather(1, targets[known][:, None]).mean()
    else:
        reference = logits.max(dim=1).values.mean()
    centre = features.mean(dim=0)
    norm = layer.weight.norm(dim=1).mean()
    rows, biases = [], []
    for index in new_indices:
        mean = features[targets == index].mean(dim=0)
        direction = mean - centre
        row = direction / direction.norm().clamp_min(1e-8) * norm
        rows.append(row)
        biases.append(reference - row @ mean)
    return torch.stack(rows), torch.stack(biases)


@torch.no_grad()
def _replace_final(model: nn.Module, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
    """A final Linear layer with these weights and biases, in the place of the old one."""
    parent, name, old = final_linear(model)
    new = nn.Linear(old.in_features, len(weight), bias=bias is not None)
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    setattr(parent, name, new)


def extend_head(model: nn.Module, rows: torch.Tensor, biases: torch.Tensor) -> None:
    """Add one output per row: the known rows and biases as they are, then ``rows`` and ``biases``."""
    _, _, old = final_linear(model)
    _replace_final(model, torch.cat([old.weight, rows]), None if old.bias is None else torch.cat([old.bias, biases]))


def keep_rows(model: nn.Module, rows: Sequence[int]) -> None:
    """Narrow the final layer to the outputs ``rows``, in that order (their weights and biases as they are)."""
    _, _, old = final_linear(model)
    index = list(rows)
    _replace_final(model, old.weight[index], None if old.bias is None else old.bias[index])


@torch.no_grad()
def per_class_accuracy(model: nn.Module, loader, classes: Sequence[str]) -> Tuple[float, Dict[str, float]]:
    """(top-1 accuracy over ``loader``, accuracy per class present in it)."""
    model.eval()
    correct: Dict[int, int] = {}
    total: Dict[int, int] = {}
    for images, targets in loader:
        hits = model(images).argmax(dim=1) == targets
        for target, hit in zip(targets.tolist(), hits.tolist()):
            total[target] = total.get(target, 0) + 1
            correct[target] = correct.get(target, 0) + int(hit)
    overall = sum(correct.values()) / sum(total.values()) if total else float("nan")
    return overall, {classes[c]: round(correct[c] / total[c], 4) for c in sorted(total)}


def split_known_new(per_class: Dict[str, float], counts: Dict[str, int]) -> Dict[str, object]:
    """Accuracy over the held-out photos of the known classes and of the new ones (None where there are none)."""
    out: Dict[str, object] = {}
    for part, members in (
        ("known", [c for c in per_class if c in CLASSES]),
        ("new", [c for c in per_class if c not in CLASSES]),
    ):
        n = sum(counts[c] for c in members)
        out[f"acc_{part}"] = round(sum(per_class[c] * counts[c] for c in members) / n, 4) if n else None
    return out


#: A row's accuracies that a result repeats for its last epoch, as ``final_<name>``.
FINAL_ACCURACIES = ("acc", "acc_per_class", "acc_known", "acc_new",
                    "acc_ncm", "acc_ncm_per_class", "acc_ncm_known", "acc_ncm_new")  # fmt: skip


def final_accuracies(row: Dict[str, object]) -> Dict[str, object]:
    """``final_acc``, ``final_acc_known``, ... from the last epoch's row."""
    return {f"final_{name}": row[name] for name in FINAL_ACCURACIES}
