"""Inference-time fusion: fold BatchNorm into the preceding convolution, in place.

A layer that can be fused defines ``fuse_(self) -> None``; :func:`fuse_model` calls it on every such submodule.
Fusion is exact in eval mode (BatchNorm uses its running statistics there); outputs agree up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_bn_into_conv", "fuse_model"]


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a new convolution equal to ``bn(conv(x))`` for a BatchNorm in eval mode.

    The result has a bias even when ``conv`` had none; it lives on the same device and dtype as ``conv``.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"conv has {conv.out_channels} output channels but BatchNorm has {bn.num_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + shift)
    return fused


def fuse_model(model: nn.Module) -> nn.Module:
    """Fuse ``model`` and each submodule defining ``fuse_()`` (deepest first); switch to eval mode; return ``model``."""
    model.eval()
    fusable = [m for m in model.modules() if callable(getattr(m, "fuse_", None))]
    for module in reversed(fusable):
        module.fuse_()
    return model
