"""Normalisation layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerNorm2d"]


class LayerNorm2d(nn.LayerNorm):
    """Channels-first LayerNorm: normalises each pixel's channel vector of a ``(B, C, H, W)`` map.

    Equivalent to permuting to ``(B, H, W, C)``, applying :class:`torch.nn.LayerNorm` over ``C`` and permuting
    back; the affine weight and bias have shape ``(C,)``.

    Args:
        num_channels: C.
        eps: Added to the variance for numerical stability.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
