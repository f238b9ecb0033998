"""Convolution building blocks: Conv + BatchNorm + activation, and depthwise-separable convolution."""

from __future__ import annotations

import torch
from torch import nn

from .act import get_act
from .fuse import fold_bn_into_conv

__all__ = ["ConvNormAct", "DepthwiseSeparableConv"]


class ConvNormAct(nn.Module):
    """``act(bn(conv(x)))`` with "same" padding for odd kernels; fusable for inference.

    Attribute names ``conv``, ``bn``, ``act`` follow YOLOv5's ``Conv`` so its checkpoints map 1:1.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out.
        kernel_size: Square kernel size, or ``(kh, kw)``.
        stride: Convolution stride.
        groups: Convolution groups (``groups == in_channels`` gives a depthwise convolution).
        act: Activation name for :func:`~posecommon.layers.get_act` (``None`` for none).
        bn_eps: BatchNorm epsilon.
        bn_momentum: BatchNorm momentum.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, ceil(H / stride), ceil(W / stride))`` for odd kernels
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "silu",
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        padding = (ks[0] // 2, ks[1] // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, ks, stride, padding, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = get_act(act, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse_(self) -> None:
        """Fold the BatchNorm into the convolution in place (eval-mode statistics)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fold_bn_into_conv(self.conv, self.bn)
            self.bn = nn.Identity()


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k convolution followed by a pointwise 1 x 1 convolution.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out.
        kernel_size: Depthwise kernel size (odd).
        stride: Depthwise stride.
        norm: Add BatchNorm after each convolution (``False`` gives two plain biased convolutions).
        act: Activation after each BatchNorm (ignored when ``norm`` is ``False``).

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: bool = False,
        act: str | None = None,
    ) -> None:
        super().__init__()
        if norm:
            self.depthwise: nn.Module = ConvNormAct(in_channels, in_channels, kernel_size, stride, in_channels, act)
            self.pointwise: nn.Module = ConvNormAct(in_channels, out_channels, 1, 1, 1, act)
        else:
            pad = kernel_size // 2
            self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, pad, groups=in_channels)
            self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))
