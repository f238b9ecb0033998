"""Inference-time fusion: fold BatchNorm into the preceding convolution, split convolutions by output, in place.

A layer that can be fused defines ``fuse_(self) -> None``; :func:`fuse_model` calls it on every such submodule.
Fusion is exact in eval mode (BatchNorm uses its running statistics there); outputs agree up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_bn_into_conv", "fuse_model", "split_conv_outputs"]


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


@torch.no_grad()
def split_conv_outputs(conv: nn.Conv2d, sizes: list[int]) -> list[nn.Conv2d]:
    """Split ``conv`` by output channel: ``torch.cat([c(x) for c in parts], 1) == conv(x)``.

    Each part has the rows of ``conv``'s weight (and bias) for its output channels; a grouped convolution is split
    at group boundaries (every size must be a multiple of the outputs per group), keeping its inputs per group.

    Args:
        conv: The convolution to split (not modified).
        sizes: Output channels of the parts, summing to ``conv.out_channels``.

    Returns:
        One new convolution per size, on ``conv``'s device and dtype.

    Raises:
        ValueError: the sizes do not sum to the output channels or cut through a group.
    """
    if sum(sizes) != conv.out_channels or min(sizes) < 1:
        raise ValueError(f"sizes {sizes} must be positive and sum to the {conv.out_channels} output channels")
    per_group_out = conv.out_channels // conv.groups
    per_group_in = conv.in_channels // conv.groups
    if conv.groups > 1 and any(size % per_group_out for size in sizes):
        raise ValueError(f"sizes {sizes} must be multiples of the {per_group_out} outputs per group")
    parts = []
    start = 0
    for size in sizes:
        groups = size // per_group_out if conv.groups > 1 else 1
        in_channels = per_group_in * groups if conv.groups > 1 else conv.in_channels
        part = nn.Conv2d(
            in_channels,
            size,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)
        part.weight.copy_(conv.weight[start : start + size])
        if conv.bias is not None:
            part.bias.copy_(conv.bias[start : start + size])
        parts.append(part.to(memory_format=_memory_format(conv.weight)))
        start += size
    return parts


def _memory_format(weight: torch.Tensor) -> torch.memory_format:
    is_channels_last = weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if is_channels_last and not weight.is_contiguous() else torch.contiguous_format


def fuse_model(model: nn.Module) -> nn.Module:
    """Fuse ``model`` and each submodule defining ``fuse_()`` (deepest first); switch to eval mode; return ``model``."""
    model.eval()
    fusable = [m for m in model.modules() if callable(getattr(m, "fuse_", None))]
    for module in reversed(fusable):
        module.fuse_()
    return model
