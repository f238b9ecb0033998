"""Optimiser construction with YOLOv5's three parameter groups."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InvalidInputError

__all__ = ["OPTIMIZERS", "build_optimizer", "parameter_groups"]

OPTIMIZERS = ("sgd", "adam", "adamw")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Three groups in YOLOv5's order (``train.py:115-130`` on branch yolo-pose): 0 = weights of rank 1 (norm
    scales) without decay, 1 = weights of rank >= 2 (convolutions, linear layers, embeddings) with
    ``weight_decay``, 2 = biases without decay.

    YOLOv5 sorts by module type (BatchNorm2d weights without decay, other modules' ``weight`` with decay, every
    ``bias``); for its models, which hold no other rank-1 weights, the two rules give the same groups. Parameters
    that are not a module's ``weight`` or ``bias`` go by rank (YOLOv5 would leave them out of the optimiser).
    """
    norms, weights, biases = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.rsplit(".", 1)[-1] == "bias":
            biases.append(param)
        elif param.dim() >= 2:
            weights.append(param)
        else:
            norms.append(param)
    return [
        {"params": norms, "weight_decay": 0.0},
        {"params": weights, "weight_decay": weight_decay},
        {"params": biases, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (Nesterov, ``train.py:127``), Adam or AdamW with ``momentum`` as beta1 (``train.py:125``).

    Raises:
        InvalidInputError: unknown optimiser name.
    """
    groups = parameter_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    raise InvalidInputError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
