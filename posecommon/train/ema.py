"""Exponential moving average of model weights (YOLOv5 style, with a warm-up of the decay)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * model`` for floating-point parameters and buffers.

    The decay ramps up as ``d = decay * (1 - exp(-updates / ramp))`` so early averages follow the model closely.
    Integer buffers (BatchNorm's ``num_batches_tracked``) are copied.

    Args:
        model: Model whose weights are averaged (unwrapped, not DDP).
        decay: Final decay.
        ramp: Updates over which the decay ramps up.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average."""
        self.updates += 1
        d = self.decay * (1.0 - math.exp(-self.updates / self.ramp))
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            source = current[name].detach()
            if value.is_floating_point():
                value.mul_(d).add_(source.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(source)
