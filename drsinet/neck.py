"""Path aggregation networks over P3-P6: PAN (YOLOv5-P6), CBAM-PAN and ASI-PAN (paper Sec. 3.5)."""

from __future__ import annotations

import math

import torch
from torch import nn

from posecommon.layers import ConvNormAct, FeatureInfo

from .blocks import C3, CBAM
from .gnconv import ResGnConv

__all__ = ["PAN"]


class PAN(nn.Module):
    """YOLOv5-P6 path aggregation network, optionally with CBAM and Res-gnConv (Table 4).

    Top-down, from P6 to P3: ``h_l = lateral_l(t_{l+1})`` (1x1 Conv-BN-act to the next level's width), upsample x2
    (nearest), concat with the backbone's ``P_l``, C3 without shortcut. Bottom-up, from P3 to P6:
    ``down_l`` (3x3 stride-2 Conv-BN-act), concat with ``h_{l+1}``, C3. The outputs are the last C3 of each level.

    Readings of Sec. 3.5 (the paper gives no layer table):

    - ``kind="cbam_pan"``: "replaces all standard convolutions before each upsampling ... with a 1x1 CBAM, and a
      3x3 standard convolution in the bottom-up path ... with a 3x3 CBAM". A CBAM has no convolution that could
      change the width or stride, so a "k x k CBAM" is read as the k x k Conv-BN-act followed by :class:`CBAM`.
      This adds < 0.01 GMACs, matching Table 4 (PAN 10.3 vs CBAM-PAN 10.2 G for CSPDarknet53 at 640; CSDR-Net 10.9
      for both).
    - ``kind="asi_pan"``: CBAM-PAN whose top-down "1x1 CBAM" is replaced by Res-gnConv (Sec. 3.5.2). The 1x1
      Conv-BN-act stays (a :class:`~drsinet.gnconv.ResGnConv` keeps the width, so the channel-reducing convolution
      must stay), and the Res-gnConv runs on its *upsampled* output, on the finer grid, just before the
      concatenation: ``t_l = C3(concat(ResGnConv(up(h_l)), P_l))``. The bottom-up path concatenates ``h_l`` (the
      convolution's output) as in PAN and keeps its CBAMs. Evidence: Table 4 puts ASI-PAN at +0.9 GMACs over
      CBAM-PAN at 640 for both backbones (10.2 -> 11.1, 10.9 -> 11.8). Res-gnConv after the upsample adds 1.04
      (C3: 10.09 -> 11.13, CSDR: 10.69 -> 11.73); before it, on the coarse grid, it adds a quarter of that, 0.26
      (10.35 and 10.95, 7 % under the table); on the concatenated features it would add about 4 G. Sec. 3.5.1 also
      describes the top-down features as being upsampled, fused and then given to the attention module.

    Args:
        in_channels: Widths of the backbone's P3, P4, P5, P6.
        num_blocks: Bottlenecks in each C3.
        kind: ``"pan"``, ``"cbam_pan"`` or ``"asi_pan"``.
        cbam_reduction: CBAM channel-attention reduction.
        order: Interaction order of ASI-PAN's Res-gnConv.
        kernel_size: Depthwise kernel of ASI-PAN's Res-gnConv.
        lam: lambda of ASI-PAN's Res-gnConv.
        act: Activation of the Conv-BN-act layers.
        strides: Strides of the four input maps (for ``feature_info``).

    Reuse: ``feature_info`` (timm's form, :mod:`posecommon.layers.features`) lists the four outputs with their
    channels, strides and modules (``td_csp.2`` for the finest, then ``bu_csp.0`` to ``bu_csp.2``); a network built
    on another backbone passes that backbone's four maps to :meth:`forward`.

    Shape:
        - Input: list of 4 maps ``(B, in_channels[i], H_i, W_i)`` with ``H_i = 2 H_{i+1}``, ``W_i = 2 W_{i+1}``
        - Output: list of 4 maps ``(B, in_channels[i], H_i, W_i)``
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        num_blocks: int = 1,
        kind: str = "pan",
        cbam_reduction: int = 16,
        order: int = 2,
        kernel_size: int = 7,
        lam: float = math.sqrt(2.0),
        act: str = "silu",
        strides: tuple[int, ...] = (8, 16, 32, 64),
    ) -> None:
        super().__init__()
        if kind not in ("pan", "cbam_pan", "asi_pan"):
            raise ValueError(f"kind must be 'pan', 'cbam_pan' or 'asi_pan', got {kind!r}")
        if len(in_channels) != 4:
            raise ValueError(f"PAN expects 4 levels (P3-P6), got {len(in_channels)}")
        c3, c4, c5, c6 = in_channels
        self.kind = kind
        self.out_channels: tuple[int, ...] = tuple(in_channels)
        modules = ("td_csp.2", "bu_csp.0", "bu_csp.1", "bu_csp.2")
        self.feature_info = FeatureInfo(
            {"num_chs": c, "reduction": s, "module": m}
            for c, s, m in zip(self.out_channels, strides, modules, strict=True)
        )

        def top_down_unit(cin: int, cout: int) -> nn.Module:
            conv = ConvNormAct(cin, cout, 1, act=act)
            return nn.Sequential(conv, CBAM(cout, cbam_reduction)) if kind == "cbam_pan" else nn.Sequential(conv)

        def bottom_up_unit(channels: int) -> nn.Module:
            conv = ConvNormAct(channels, channels, 3, 2, act=act)
            return nn.Sequential(conv, CBAM(channels, cbam_reduction)) if kind != "pan" else nn.Sequential(conv)

        # Top-down: index 0 acts on the P6 output, 2 on the P4 output.
        self.lateral = nn.ModuleList([top_down_unit(c6, c5), top_down_unit(c5, c4), top_down_unit(c4, c3)])
        self.td_csp = nn.ModuleList(C3(2 * c, c, num_blocks, False, act=act) for c in (c5, c4, c3))
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
        # ASI-PAN only: Res-gnConv on each upsampled top-down feature (index 0 acts on the upsampled P6 output).
        self.upsampled_gnconv = nn.ModuleList(
            ResGnConv(c, order, kernel_size, lam, act) for c in ((c5, c4, c3) if kind == "asi_pan" else ())
        )
        # Bottom-up: index 0 goes from P3 to P4.
        self.down = nn.ModuleList([bottom_up_unit(c3), bottom_up_unit(c4), bottom_up_unit(c5)])
        self.bu_csp = nn.ModuleList(
            C3(2 * cin, cout, num_blocks, False, act=act) for cin, cout in ((c3, c4), (c4, c5), (c5, c6))
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5, p6 = features
        x = p6
        laterals = []
        for index, (lateral, csp, skip) in enumerate(zip(self.lateral, self.td_csp, (p5, p4, p3), strict=True)):
            x = lateral(x)
            laterals.append(x)
            up = self.upsample(x)
            if self.upsampled_gnconv:
                up = self.upsampled_gnconv[index](up)
            x = csp(torch.cat((up, skip), dim=1))
        outputs = [x]
        for down, csp, lateral in zip(self.down, self.bu_csp, reversed(laterals), strict=True):
            x = csp(torch.cat((down(x), lateral), dim=1))
            outputs.append(x)
        return outputs
