"""CSDR-Net backbone (paper Sec. 3.1, Fig. 5) and the CSPDarknet53-P6 layout of YOLO-Pose it replaces."""

from __future__ import annotations

import math

import torch
from torch import nn

from posecommon.layers import ConvNormAct, FeatureInfo, take_indices

from .blocks import C3, C3DR, SPP, SPPF, Focus

__all__ = ["CSDRNet"]


class CSDRNet(nn.Module):
    """Focus stem, four stages of (3x3 stride-2 Conv-BN-SiLU, C3DR or C3), and stage 5 (Conv s2, SPP/SPPF, C3).

    Paper Sec. 3.1 names the stage outputs ``[P2, P3, P4, P5]`` in the text but ``[P3, P4, P5, P6]`` in Fig. 2; we
    follow Fig. 2 and YOLOv5-P6: the outputs are the stage 2, 3, 4 and 5 features at strides 8, 16, 32, 64 (stage 1
    at stride 4 feeds only stage 2). Stage 5 keeps YOLOv5's SPP and a C3 without shortcuts ("The low-resolution
    feature map (P6) ... is obtained using the SPP and C3 modules"), whatever ``stage_block`` is.

    Args:
        stem_channels: Focus output width.
        stage_channels: Output widths of stages 1-5.
        stage_blocks: Block counts of stages 1-4 and of the stage-5 C3.
        stage_block: ``"c3dr"`` (CSDR-Net) or ``"c3"`` (CSPDarknet53, YOLO-Pose).
        block: Block inside C3DR: ``"drsi"``, ``"hor"`` or ``"rhor"``.
        expansion_ratio: Expansion of the C3DR blocks.
        order: Interaction order of the C3DR blocks.
        kernel_size: Depthwise kernel of (Res-)gnConv.
        lam: lambda of Res-gnConv.
        spp: ``"spp"`` or ``"sppf"``.
        spp_kernels: Max-pool kernels of SPP.
        act: Activation of the Conv-BN-act layers.

    Reuse (timm's interface, :mod:`posecommon.layers.features`): ``feature_info`` lists P3-P6 (channels
    ``stage_channels[1:]``, strides 8-64, modules ``stages.1`` to ``stages.4``); :meth:`forward_features` is
    :meth:`forward`; :meth:`forward_intermediates` returns a selection of the four maps.

    Shape:
        - Input: ``(B, 3, H, W)`` with H, W multiples of 64
        - Output: list of 4 maps ``(B, stage_channels[i], H / s, W / s)`` for s = 8, 16, 32, 64
    """

    def __init__(
        self,
        stem_channels: int,
        stage_channels: tuple[int, ...],
        stage_blocks: tuple[int, ...],
        stage_block: str = "c3dr",
        block: str = "drsi",
        expansion_ratio: float = 4.0,
        order: int = 2,
        kernel_size: int = 7,
        lam: float = math.sqrt(2.0),
        spp: str = "spp",
        spp_kernels: tuple[int, ...] = (3, 5, 7),
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.stem = Focus(3, stem_channels, 3, act=act)
        stages = []
        in_channels = stem_channels
        for out_channels, num_blocks in zip(stage_channels[:4], stage_blocks[:4], strict=True):
            down = ConvNormAct(in_channels, out_channels, 3, 2, act=act)
            if stage_block == "c3dr":
                csp: nn.Module = C3DR(
                    out_channels, out_channels, num_blocks, block, expansion_ratio, order, kernel_size, lam, act
                )
            elif stage_block == "c3":
                csp = C3(out_channels, out_channels, num_blocks, shortcut=True, act=act)
            else:
                raise ValueError(f"stage_block must be 'c3' or 'c3dr', got {stage_block!r}")
            stages.append(nn.Sequential(down, csp))
            in_channels = out_channels
        out_channels = stage_channels[4]
        pool = (
            SPP(out_channels, out_channels, spp_kernels, act)
            if spp == "spp"
            else SPPF(out_channels, out_channels, act=act)
        )
        stages.append(
            nn.Sequential(
                ConvNormAct(in_channels, out_channels, 3, 2, act=act),
                pool,
                C3(out_channels, out_channels, stage_blocks[4], shortcut=False, act=act),
            )
        )
        self.stages = nn.ModuleList(stages)
        self.out_channels: tuple[int, ...] = tuple(stage_channels[1:])
        self.strides: tuple[int, ...] = (8, 16, 32, 64)
        self.feature_info = FeatureInfo(
            {"num_chs": c, "reduction": s, "module": f"stages.{i + 1}"}
            for i, (c, s) in enumerate(zip(self.out_channels, self.strides, strict=True))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._stage_outputs(x, 3)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """P3-P6 (the same as :meth:`forward`).

        Shape:
            - Input: ``(B, 3, H, W)``
            - Output: list of 4 maps ``(B, feature_info.channels()[i], H / s_i, W / s_i)``
        """
        return self.forward(x)

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | list[int] | None = None, intermediates_only: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The maps of ``feature_info`` selected by ``indices`` (:func:`~posecommon.layers.take_indices`).

        Args:
            x: Input images.
            indices: ``None`` (all four), an int ``n`` (the last ``n``) or a list of indices (0 = P3).
            intermediates_only: Return only the selected maps (the stages after the last one are not run).

        Returns:
            ``(forward_features(x), selected maps)``, or the selected maps alone.
        """
        chosen, last = take_indices(len(self.feature_info), indices)
        maps = self._stage_outputs(x, last if intermediates_only else 3)
        selected = [maps[i] for i in chosen]
        return selected if intermediates_only else (maps, selected)

    def _stage_outputs(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        """P3 ... P(3 + last): the stage outputs up to feature ``last``."""
        x = self.stem(x)
        features = []
        for index, stage in enumerate(self.stages[: last + 2]):
            x = stage(x)
            if index >= 1:
                features.append(x)
        return features
