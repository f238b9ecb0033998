"""HRNet-S-W32, the backbone of TransPose-H-S and VTTransPose, with the official attribute names.

Layout (TransPose-H-S, ``reference/transpose_h_s.md``): stem of two 3x3 stride-2 convolutions (64 channels),
``layer1`` of 4 bottlenecks (-> 256), ``transition1`` to a 1/4 and a 1/8 branch (W, 2W channels), ``stage2``
(1 module), ``transition2`` adding a 1/16 branch (4W), ``stage3`` (4 modules, the last fuses into the 1/4 branch
only). Module names and nn.Sequential indices match the official code, so the official checkpoint's keys load
unchanged. Every Conv-BN pair can be folded for inference (``fuse_`` methods).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posecommon.layers import FeatureInfo, checkpoint_module, fold_bn_into_conv, recomputation_applies, take_indices

from .blocks import BN_MOMENTUM, VBlock

__all__ = ["BasicBlock", "Bottleneck", "ConvBN", "HRModule", "HRNetS", "HRNetSLayers"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


def _fold_pair(conv: nn.Module, bn: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Fold ``bn`` into ``conv`` if it is still a BatchNorm; returns the new (conv, bn) pair."""
    if isinstance(bn, nn.BatchNorm2d):
        return fold_bn_into_conv(conv, bn), nn.Identity()
    return conv, bn


class ConvBN(nn.Sequential):
    """``Conv2d`` (no bias) + ``BatchNorm2d`` (+ ``ReLU``) as an ``nn.Sequential`` with indices 0, 1 (, 2).

    The official HRNet builds transitions, downsamples and fuse layers as plain sequentials with these indices;
    this subclass keeps the keys and adds :meth:`fuse_`.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out.
        kernel_size: Square kernel size (1 or 3 in HRNet); padding is ``kernel_size // 2``.
        stride: Convolution stride.
        relu: Append a ReLU.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = False):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def fuse_(self) -> None:
        """Fold the BatchNorm into the convolution in place."""
        self[0], self[1] = _fold_pair(self[0], self[1])


class BasicBlock(nn.Module):
    """HRNet/ResNet basic block: ``relu(x + bn2(conv2(relu(bn1(conv1(x))))))`` with 3x3 convolutions.

    Args:
        channels: Input and output channels C.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1: nn.Module = _conv3x3(channels, channels)
        self.bn1: nn.Module = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2: nn.Module = _conv3x3(channels, channels)
        self.bn2: nn.Module = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)

    def fuse_(self) -> None:
        """Fold both BatchNorms into their convolutions in place."""
        self.conv1, self.bn1 = _fold_pair(self.conv1, self.bn1)
        self.conv2, self.bn2 = _fold_pair(self.conv2, self.bn2)


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4): 1x1 -> 3x3 -> 1x1 with BatchNorm, ReLU and a residual connection.

    Args:
        in_channels: Input channels C_in.
        channels: Bottleneck width; the output has ``4 * channels`` channels C_out.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``; a 1x1 conv + BN projects the residual when ``C_in != C_out``
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1: nn.Module = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2: nn.Module = _conv3x3(channels, channels)
        self.bn2: nn.Module = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv3: nn.Module = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3: nn.Module = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = ConvBN(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)

    def fuse_(self) -> None:
        """Fold the three BatchNorms into their convolutions in place (the downsample fuses itself)."""
        self.conv1, self.bn1 = _fold_pair(self.conv1, self.bn1)
        self.conv2, self.bn2 = _fold_pair(self.conv2, self.bn2)
        self.conv3, self.bn3 = _fold_pair(self.conv3, self.bn3)


class HRModule(nn.Module):
    """High-resolution module: parallel branches of residual blocks, then multi-resolution fusion.

    Branch i runs at 1/2^i of the first branch's resolution with ``channels[i]`` channels. Fusion into output i
    sums, over all branches j: the branch itself (j = i); ``1x1 conv + BN`` then nearest upsampling (j > i); or a
    chain of ``3x3 stride-2 conv + BN`` (ReLU on all but the last) (j < i); then ReLU. Upsampling goes to the
    exact size of branch i, which equals HRNet's scale-factor upsampling whenever sizes divide evenly and keeps
    odd sizes working.

    Args:
        channels: Channels of each branch.
        num_blocks: Blocks per branch.
        num_vblocks: Per branch, how many of its last blocks are :class:`~vttranspose.VBlock` instead of
            :class:`BasicBlock` (default: none).
        multi_scale_output: Output every branch (``True``) or only the fused first branch.
        vblock_scales: Channel groups of the V blocks.

    With :attr:`grad_checkpointing` the module is one checkpointing segment in training (its input list is kept,
    its forward runs again in backward; :func:`~posecommon.layers.checkpoint_module`).

    Shape:
        - Input: list of ``(B, channels[i], H / 2^i, W / 2^i)``
        - Output: the same list after fusion, or only its first element (in a list) when
          ``multi_scale_output`` is ``False``
    """

    def __init__(
        self,
        channels: Sequence[int],
        num_blocks: int = 4,
        num_vblocks: Sequence[int] | None = None,
        multi_scale_output: bool = True,
        vblock_scales: int = 4,
    ) -> None:
        super().__init__()
        n = len(channels)
        num_vblocks = tuple(num_vblocks) if num_vblocks is not None else (0,) * n
        if len(num_vblocks) != n or any(not 0 <= v <= num_blocks for v in num_vblocks):
            raise ValueError(f"num_vblocks must give 0..{num_blocks} per branch for {n} branches, got {num_vblocks}")
        self.branches = nn.ModuleList(
            nn.Sequential(
                *(VBlock(c, vblock_scales) if k >= num_blocks - v else BasicBlock(c) for k in range(num_blocks))
            )
            for c, v in zip(channels, num_vblocks, strict=True)
        )
        self.fuse_layers = nn.ModuleList()
        if n > 1:
            for i in range(n if multi_scale_output else 1):
                row = nn.ModuleList()
                for j in range(n):
                    if j > i:
                        row.append(ConvBN(channels[j], channels[i], 1))
                    elif j == i:
                        row.append(nn.Identity())
                    else:
                        chain = [ConvBN(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                        chain.append(ConvBN(channels[j], channels[i], 3, 2))
                        row.append(nn.Sequential(*chain))
                self.fuse_layers.append(row)
        self.relu = nn.ReLU()
        self.grad_checkpointing = False
        """Checkpoint the whole module in training (set by ``set_grad_checkpointing``)."""

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.grad_checkpointing and recomputation_applies(self):
            return checkpoint_module(self, xs, function=self.forward_plain)
        return self.forward_plain(xs)

    def forward_plain(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The forward without checkpointing: :meth:`fuse` of :meth:`run_branches`."""
        return self.fuse(self.run_branches(xs))

    def run_branches(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each branch's residual blocks on its input (before the fusion); every branch's map, even when only the
        first is fused and output.

        Shape:
            - Input: list of ``(B, channels[i], H / 2^i, W / 2^i)``
            - Output: the same shapes
        """
        return [branch(x) for branch, x in zip(self.branches, xs, strict=True)]

    def fuse(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The multi-resolution fusion of the branch outputs (see the class docstring).

        Shape:
            - Input: list of ``(B, channels[i], H / 2^i, W / 2^i)``
            - Output: the fused list, or its first map only (in a list) when ``multi_scale_output`` is False
        """
        if len(xs) == 1:
            return xs
        outs = []
        for i, row in enumerate(self.fuse_layers):
            y = None
            for j, layer in enumerate(row):
                term = layer(xs[j])
                if j > i:
                    term = F.interpolate(term, size=xs[i].shape[-2:], mode="nearest")
                y = term if y is None else y + term
            outs.append(self.relu(y))
        return outs


class HRNetSLayers:
    """Mixin that builds and runs HRNet-S (stem to stage 3) on an ``nn.Module`` under the official names.

    Used by :class:`HRNetS` and by :class:`~vttranspose.VTTransPose`, which keeps these modules at its top level
    exactly as the official TransPose-H does (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``, ``transition1``,
    ``stage2``, ``transition2``, ``stage3``), so the official state-dict keys need no renaming.
    """

    conv1: nn.Module
    bn1: nn.Module
    conv2: nn.Module
    bn2: nn.Module
    stage3: nn.Sequential
    hrnet_width: int

    def build_hrnet_s(
        self,
        width: int = 32,
        stage3_modules: int = 4,
        blocks_per_branch: int = 4,
        vblocks_per_module: Sequence[int] | None = None,
        vblock_scales: int = 4,
    ) -> None:
        """Create the HRNet-S modules as attributes of ``self`` (an ``nn.Module`` whose ``__init__`` has run).

        Args:
            width: Channels W of the 1/4 branch (32 for HRNet-S-W32); the other branches have 2W and 4W.
            stage3_modules: Number of stage-3 modules.
            blocks_per_branch: Blocks per branch in stages 2 and 3.
            vblocks_per_module: For each stage-3 module, how many of the last blocks of its 1/16 branch are V blocks.
            vblock_scales: Channel groups of the V blocks.
        """
        vblocks = tuple(vblocks_per_module) if vblocks_per_module is not None else (0,) * stage3_modules
        if len(vblocks) != stage3_modules:
            raise ValueError(f"vblocks_per_module needs {stage3_modules} entries, got {vblocks}")
        c1, c2, c3 = width, 2 * width, 4 * width
        self.hrnet_width = width
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(64, 64, stride=2)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *(Bottleneck(256, 64) for _ in range(3)))
        self.transition1 = nn.ModuleList(
            [ConvBN(256, c1, 3, relu=True), nn.Sequential(ConvBN(256, c2, 3, stride=2, relu=True))]
        )
        self.stage2 = nn.Sequential(HRModule((c1, c2), blocks_per_branch))
        self.transition2 = nn.ModuleList(
            [nn.Identity(), nn.Identity(), nn.Sequential(ConvBN(c2, c3, 3, stride=2, relu=True))]
        )
        self.stage3 = nn.Sequential(
            *(
                HRModule(
                    (c1, c2, c3),
                    blocks_per_branch,
                    num_vblocks=(0, 0, v),
                    multi_scale_output=m < stage3_modules - 1,
                    vblock_scales=vblock_scales,
                )
                for m, v in enumerate(vblocks)
            )
        )

    def forward_hrnet(self, x: torch.Tensor) -> torch.Tensor:
        """Run stem to stage 3.

        Shape:
            - Input: ``(B, 3, H, W)``
            - Output: ``(B, W_c, ceil(H / 4), ceil(W / 4))``, the fused 1/4-resolution branch (W_c = width)
        """
        return self.hrnet_maps(x)[0]

    def hrnet_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem to stage 3, keeping the three branches of the last stage-3 module: the fused 1/4 map (what
        :meth:`forward_hrnet` returns) and the 1/8 and 1/16 branch outputs that the last module computes before
        fusing into the 1/4 branch (the 1/16 one after its V blocks, in VTTransPose).

        Shape:
            - Input: ``(B, 3, H, W)``
            - Output: ``[(B, W_c, H/4, W/4), (B, 2 W_c, H/8, W/8), (B, 4 W_c, H/16, W/16)]`` (sizes rounded up by
              each stride-2 convolution)
        """
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self.stage2([transition(x) for transition in self.transition1])
        xs = [transition(xs[min(i, len(xs) - 1)]) for i, transition in enumerate(self.transition2)]
        for module in self.stage3[:-1]:
            xs = module(xs)
        last = self.stage3[-1]
        branches = last.run_branches(xs)
        return [last.fuse(branches)[0], branches[1], branches[2]]

    def hrnet_feature_info(self) -> list[dict[str, int | str]]:
        """``feature_info`` entries of :meth:`hrnet_maps` (timm's form, :mod:`posecommon.layers.features`)."""
        width = self.hrnet_width
        last = f"stage3.{len(self.stage3) - 1}.branches"
        return [
            {"num_chs": width, "reduction": 4, "module": "stage3"},
            {"num_chs": 2 * width, "reduction": 8, "module": f"{last}.1"},
            {"num_chs": 4 * width, "reduction": 16, "module": f"{last}.2"},
        ]

    def fuse_stem_(self) -> None:
        """Fold the stem's two BatchNorms into its convolutions (the other modules have their own ``fuse_``)."""
        self.conv1, self.bn1 = _fold_pair(self.conv1, self.bn1)
        self.conv2, self.bn2 = _fold_pair(self.conv2, self.bn2)


class HRNetS(HRNetSLayers, nn.Module):
    """HRNet-S-W32 backbone on its own (stem to stage 3), for reuse outside the pose models.

    Args:
        width: Channels of the 1/4 branch.
        stage3_modules: Number of stage-3 modules.
        blocks_per_branch: Blocks per branch in stages 2 and 3.
        vblocks_per_module: For each stage-3 module, how many of the last blocks of its 1/16 branch are V blocks.
        vblock_scales: Channel groups of the V blocks.

    Reuse (timm's interface, :mod:`posecommon.layers.features`): ``feature_info`` lists the three branch maps of
    the last stage-3 module (strides 4, 8, 16, :meth:`~HRNetSLayers.hrnet_maps`); :meth:`forward_features` is
    :meth:`forward`; :meth:`forward_intermediates` returns a selection.

    Shape:
        - Input: ``(B, 3, H, W)``
        - Output: ``(B, width, ceil(H / 4), ceil(W / 4))``
    """

    def __init__(
        self,
        width: int = 32,
        stage3_modules: int = 4,
        blocks_per_branch: int = 4,
        vblocks_per_module: Sequence[int] | None = None,
        vblock_scales: int = 4,
    ) -> None:
        super().__init__()
        self.build_hrnet_s(width, stage3_modules, blocks_per_branch, vblocks_per_module, vblock_scales)
        self.feature_info = FeatureInfo(self.hrnet_feature_info())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_hrnet(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fused 1/4 map (the same as :meth:`forward`)."""
        return self.forward_hrnet(x)

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | list[int] | None = None, intermediates_only: bool = False
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps of ``feature_info`` selected by ``indices`` (0: stride 4, 1: stride 8, 2: stride 16).

        Returns:
            ``(forward_features(x), selected maps)``, or the selected maps alone with ``intermediates_only``.
        """
        chosen, _ = take_indices(len(self.feature_info), indices)
        maps = self.hrnet_maps(x)
        selected = [maps[i] for i in chosen]
        return selected if intermediates_only else (maps[0], selected)

    def fuse_(self) -> None:
        """Fold the stem's BatchNorms (called by :func:`~posecommon.layers.fuse_model` when nested)."""
        self.fuse_stem_()
