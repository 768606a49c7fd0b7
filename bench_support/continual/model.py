"""The scenario's model and what a fine-tune changes in it: head, frozen parts, rates, optimizer.

The default model is :class:`SmallCNN`; ``mobilenet_v3_small`` and ``resnet18`` come
from torchvision (:func:`bench_support.workloads.training.build_model`), optionally
starting from ImageNet weights that are already in the local torch cache.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

from bench_support.errors import UserError
from bench_support.workloads.training import build_model

FINETUNE_MODES = ("whole", "head")
#: The scenario's models: the suite's small CNN (default) and two torchvision ones.
CL_MODELS = ("smallcnn", "mobilenet_v3_small", "resnet18")
#: Fine-tune learning rate; the layers below the head get BACKBONE_LR_SCALE of it.
FINETUNE_LR = 2e-3
BACKBONE_LR_SCALE = 0.3


class ScenarioError(UserError):
    """The scenario cannot run as configured; the message is one line for the user."""


class SmallCNN(nn.Module):
    """Ten 3x3 convolutions (16 to 128 channels, five stride-2 stages), global max pooling.

    The default model of the scenario, 0.37 M parameters. Max pooling rather than the
    usual average: "is there a corner anywhere" is what tells a square from a circle, and
    a detector's maximum does not fade with the object's size or the picture's, so the
    shapes learnt at the factory's 64 px hold at the fine-tune's 128 px. The torchvision
    models (average pooling) learn shape from the synthetic images far more slowly.
    """

    WIDTHS = (16, 32, 64, 64, 128)

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = 3
        for width in self.WIDTHS:
            for stride in (2, 1):
                layers += [
                    nn.Conv2d(channels, width, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_cl_model(name: str, num_classes: int) -> nn.Module:
    if name == "smallcnn":
        return SmallCNN(num_classes)
    if name not in CL_MODELS:
        raise ScenarioError(f"unknown model {name!r}; expected one of {', '.join(CL_MODELS)}")
    return build_model(name, num_classes)


def import_model_libraries(name: str) -> None:
    """Import what building ``name`` will import (torchvision for its models), so a memory floor read next holds it."""
    if name != "smallcnn":
        import torchvision.models  # noqa: F401


def head_of(model: nn.Module) -> nn.Module:
    """The classifier block: ``fc`` (ResNet) or ``classifier`` (MobileNet, VGG)."""
    for name in ("fc", "classifier"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ScenarioError(f"{type(model).__name__}: no classifier head (fc or classifier) to fine-tune")


def replace_final_layer(model: nn.Module, num_classes: int) -> None:
    """A fresh final Linear layer with ``num_classes`` outputs."""
    head = head_of(model)
    if isinstance(head, nn.Linear):
        model.fc = nn.Linear(head.in_features, num_classes)
        return
    index = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
    head[index] = nn.Linear(head[index].in_features, num_classes)


def prepare_finetune(model: nn.Module, mode: str) -> List[nn.Parameter]:
    """Freeze what ``mode`` does not train; returns the parameters to optimise."""
    if mode not in FINETUNE_MODES:
        raise ScenarioError(f"unknown fine-tune mode {mode!r}; expected one of {', '.join(FINETUNE_MODES)}")
    if mode == "head":
        model.requires_grad_(False)
        head_of(model).requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def frozen_bn_train_mode(model: nn.Module) -> None:
    """Training mode with every BatchNorm layer in eval: statistics from the factory.

    A batch of 4 photos cannot estimate BatchNorm statistics; updating them from such
    batches wrecks what pretraining learnt. The layers' affine weights still train in a
    whole-network fine-tune.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def head_only_train_mode(model: nn.Module) -> None:
    """Training mode for the head only: the frozen backbone keeps its BatchNorm statistics."""
    model.eval()
    head_of(model).train()


def param_groups(model: nn.Module, params: Sequence[nn.Parameter]) -> List[Dict[str, Any]]:
    """The head at ``FINETUNE_LR``, the rest of ``params`` at ``BACKBONE_LR_SCALE`` of it.

    The pretrained layers need less change than the head; at the full rate a
    whole-network fine-tune on batches of 4 photos can lose what pretraining learnt.
    """
    head = {id(p) for p in head_of(model).parameters()}
    groups = [
        {"params": [p for p in params if id(p) in head], "lr": FINETUNE_LR},
        {"params": [p for p in params if id(p) not in head], "lr": FINETUNE_LR * BACKBONE_LR_SCALE},
    ]
    return [g for g in groups if g["params"]]


def finetune_optimizer(name: str, groups: Sequence[Dict[str, Any]]) -> torch.optim.Optimizer:
    """The seed's Adam, or SGD with momentum 0.9, at the rates of ``groups`` (see :func:`param_groups`).

    Not the suite's training optimizer (:func:`bench_support.workloads.training.build_optimizer`):
    its SGD rate (0.01) is for training from scratch, and on a whole network with
    batches of 4 photos it collapses to one class.
    """
    if name == "adam":
        return torch.optim.Adam(groups, lr=FINETUNE_LR)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=FINETUNE_LR, momentum=0.9)
    raise ScenarioError(f"unknown optimizer {name!r}; expected adam or sgd")


def imagenet_weights_path(model_name: str) -> Tuple[str, str]:
    """(where torchvision would cache the model's ImageNet weights, the file's name)."""
    from torchvision import models

    weights = models.get_model_weights(model_name).DEFAULT
    filename = os.path.basename(weights.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename), filename


def load_imagenet_backbone(model: nn.Module, path: str) -> int:
    """Load cached ImageNet weights into ``model`` except the 1000-class final layer."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return len(usable)
