"""DRSI-Net building blocks: YOLOv5 pieces (Focus, C3, SPP/SPPF), CBAM, the DRSI/Hor blocks and C3DR.

Every block takes plain keyword arguments (never a config) and works on any channel count and spatial size.
Conv-BN-activation layers are :class:`~posecommon.layers.ConvNormAct`; blocks with extra BatchNorms define
``fuse_()`` so :func:`~posecommon.layers.fuse_model` folds them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posecommon.layers import (
    ConvNormAct,
    LayerNorm2d,
    checkpoint_dense_convolutions,
    checkpoint_module,
    checkpoint_sequential,
    fold_bn_into_conv,
    get_act,
    recomputation_applies,
)

from .gnconv import GnConv, ResGnConv

BN_EPS = 1e-3
"""Epsilon of every BatchNorm of the DRSI-Net family: YOLOv5's ``initialize_weights`` sets ``eps = 1e-3`` and
``momentum = 0.03`` on every ``BatchNorm2d`` of the model (``utils/torch_utils.py:144-151`` on branch yolo-pose,
called at model construction, ``models/yolo.py:149``). :class:`~posecommon.layers.ConvNormAct` has the same
defaults; the DRSI block's own BatchNorms use these constants. BN folding reads each BatchNorm's ``eps``."""
BN_MOMENTUM = 0.03
"""Running-statistics momentum of every BatchNorm of the DRSI-Net family (PyTorch convention); see :data:`BN_EPS`."""

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "C3",
    "C3DR",
    "CBAM",
    "SPP",
    "SPPF",
    "Bottleneck",
    "ChannelAttention",
    "DRSIBlock",
    "Focus",
    "HorBlock",
    "SpatialAttention",
    "fold_bn_before_conv",
]


@torch.no_grad()
def fold_bn_before_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """Return a convolution equal to ``conv(bn(x))`` for an eval-mode BatchNorm and an unpadded ``conv``.

    Exact only without zero padding (padding would see ``0`` instead of ``bn(0)``), so only 1x1 convolutions
    with ``groups == 1`` are accepted.
    """
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), 0):
        raise ValueError("fold_bn_before_conv needs an unpadded 1x1 convolution with groups=1")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, stride=conv.stride, bias=True).to(
        device=conv.weight.device, dtype=conv.weight.dtype
    )
    weight = conv.weight[:, :, 0, 0]
    fused.weight.copy_((weight * scale.view(1, -1)).view_as(conv.weight))
    bias = conv.bias if conv.bias is not None else weight.new_zeros(conv.out_channels)
    fused.bias.copy_(bias + weight @ shift)
    return fused


class Focus(nn.Module):
    """YOLOv5 Focus stem: space-to-depth (2x2 pixels to channels) then a Conv-BN-act.

    Odd heights/widths are padded by one zero row/column at the bottom/right before the rearrangement.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: Kernel of the convolution after space-to-depth.
        act: Activation name.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, ceil(H / 2), ceil(W / 2))``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, act: str = "silu") -> None:
        super().__init__()
        self.conv = ConvNormAct(4 * in_channels, out_channels, kernel_size, act=act)
        self.grad_checkpointing = False
        """Checkpoint the stem in training, keeping only the image (set by ``set_grad_checkpointing``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and recomputation_applies(self):
            return checkpoint_module(self, x, function=self.forward_plain)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without checkpointing."""
        if x.shape[-1] % 2 or x.shape[-2] % 2:  # F.pad copies the input even when it adds nothing
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        # YOLOv5 order: (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col).
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1)
        return self.conv(x)


class Bottleneck(nn.Module):
    """YOLOv5 bottleneck: 1x1 then 3x3 Conv-BN-act, with a residual when ``shortcut`` and widths match.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        shortcut: Add the input to the output (only when ``C_in == C_out``).
        expansion: Hidden width / C_out.
        act: Activation name.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(
        self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 1.0, act: str = "silu"
    ) -> None:
        super().__init__()
        hidden = max(int(out_channels * expansion), 1)
        self.cv1 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.cv2 = ConvNormAct(hidden, out_channels, 3, act=act)
        self.add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """YOLOv5 C3 (CSP bottleneck with three convolutions).

    ``cv3(concat(m(cv1(x)), cv2(x)))`` where ``cv1``/``cv2`` are 1x1 convs to ``C_out / 2`` and ``m`` is ``n``
    bottlenecks (or any ``blocks`` given, which is how :class:`C3DR` reuses it). With :attr:`grad_checkpointing`
    the whole module is one checkpointing segment in training (:func:`~posecommon.layers.checkpoint_module`); a
    :class:`C3DR` instead checkpoints each of its blocks (:func:`~posecommon.layers.checkpoint_sequential`), whose
    activations are too large to rebuild all at once.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        num_blocks: Bottlenecks n in the cross-stage branch.
        shortcut: Residual inside the bottlenecks (backbone: yes, neck: no).
        expansion: Hidden width / C_out of the two branches.
        act: Activation name.
        blocks: Replaces the bottlenecks; must map ``hidden -> hidden`` channels.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        act: str = "silu",
        blocks: nn.Module | None = None,
    ) -> None:
        super().__init__()
        hidden = max(int(out_channels * expansion), 1)
        self.cv1 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.cv2 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.cv3 = ConvNormAct(2 * hidden, out_channels, 1, act=act)
        if blocks is None:
            blocks = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, act) for _ in range(num_blocks)))
        self.m = blocks
        self.grad_checkpointing = False
        """Checkpoint in training (set by ``set_grad_checkpointing``): the module, or each block of a C3DR."""

    checkpoint_blocks: bool = False
    """Checkpoint each block of ``m`` instead of the whole module (:class:`C3DR`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and recomputation_applies(self)):
            return self.forward_plain(x)
        if not self.checkpoint_blocks:
            return checkpoint_module(self, x, function=self.forward_plain)
        return self.cv3(torch.cat((checkpoint_sequential(self.m, self.cv1(x)), self.cv2(x)), dim=1))

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without checkpointing."""
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling (YOLOv5): 1x1 conv to ``C_in / 2``, parallel stride-1 max-pools, concat, 1x1 conv.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernels: Odd max-pool kernel sizes.
        act: Activation name.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernels: tuple[int, ...] = (5, 9, 13), act: str = "silu"
    ) -> None:
        super().__init__()
        hidden = max(in_channels // 2, 1)
        self.cv1 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.cv2 = ConvNormAct(hidden * (len(kernels) + 1), out_channels, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x, *(pool(x) for pool in self.m)], dim=1))


class SPPF(nn.Module):
    """Fast SPP (YOLOv5): three chained stride-1 max-pools of one kernel, equal to SPP with kernels k, 2k-1, 3k-2.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: Odd max-pool kernel.
        act: Activation name.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, act: str = "silu") -> None:
        super().__init__()
        hidden = max(in_channels // 2, 1)
        self.cv1 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.cv2 = ConvNormAct(hidden * 4, out_channels, 1, act=act)
        self.m = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), dim=1))


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` with a shared 2-layer MLP.

    Args:
        channels: C.
        reduction: Hidden width of the MLP is ``max(C // reduction, 1)``.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(Conv_kxk(concat(mean_c(x), max_c(x))))``.

    Args:
        kernel_size: Odd kernel of the 2 -> 1 convolution (7 in CBAM).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al. 2018): channel attention, then spatial attention.

    The spatial attention's 7x7 convolution has a bias and no BatchNorm (CBAM's reference code uses a BN there; on a
    single output map a bias is equivalent after folding).

    Args:
        channels: C.
        reduction: Channel-attention reduction ratio.
        kernel_size: Spatial-attention kernel.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, computed in place when no gradient flows through ``x`` (a fresh map nobody else holds).

    Inference then writes the largest maps of the block (the 4x-expanded ones) once instead of twice.
    """
    return F.gelu(x) if x.requires_grad else torch.ops.aten.gelu_(x)


def _add(fresh: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``fresh + other``, summed into ``fresh`` (a convolution's new output) when no gradient is recorded.

    With gradients the sum is a new tensor: the recomputation of
    :func:`~posecommon.layers.checkpoint_dense_convolutions` keeps the convolution's output and must find it
    unchanged. Addition commutes exactly, so both give the same values.
    """
    return fresh.add_(other) if not torch.is_grad_enabled() else fresh + other


class DRSIBlock(nn.Module):
    """Dual-residual spatial interaction block (paper eq. 7-8).

    ``I(x) = x + Conv1x1(GELU(BN(DW3x3(GELU(BN(Conv1x1(BN(x))))))))`` (eq. 7: ``C_1 = Conv o BN``,
    ``D = DW o GELU o BN``, ``C_2 = Conv o GELU o BN``), then ``y = I(x) + ResGnConv(LN(I(x)))`` (eq. 8) with a
    channels-first LayerNorm. The expansion ratio of the inverted bottleneck is not given in the paper; 4 (the MLP
    ratio of the transformer/Hor blocks it replaces, Fig. 4) reproduces Table 1's sizes and makes Table 3's DRSI and
    Hor/R-Hor rows cost nearly the same MACs, as the paper reports (10.9 vs 10.8 G). ``fuse_()`` folds the three
    BatchNorms (eps :data:`BN_EPS`, momentum :data:`BN_MOMENTUM`, as every BatchNorm of YOLOv5) into the two
    convolutions they touch (exact); the LayerNorm stays.

    Memory in training (:attr:`memory_lean`, on by default): autograd would keep about 36 maps of C channels per
    block for backward (the 4C-wide BatchNorm inputs and outputs, GELU outputs and depthwise input of the inverted
    bottleneck, then LayerNorm and Res-gnConv's partial products). The block runs under
    :func:`~posecommon.layers.checkpoint_dense_convolutions`: it keeps its input and the outputs of its 1x1
    convolutions (about 10 maps of C channels at order 2) and recomputes the BatchNorms, GELUs, LayerNorm, depthwise
    convolutions and gating products when backward reaches it. Outputs, gradients and BatchNorm statistics are
    those of :meth:`forward_plain`.

    Args:
        channels: C.
        expansion_ratio: Hidden width / C of the inverted bottleneck.
        order: Interaction order of Res-gnConv.
        kernel_size: Depthwise kernel of Res-gnConv.
        lam: lambda of Res-gnConv (eq. 5).
        act: Activation of Res-gnConv's ``g_k``.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(
        self,
        channels: int,
        expansion_ratio: float = 4.0,
        order: int = 2,
        kernel_size: int = 7,
        lam: float = math.sqrt(2.0),
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = max(round(channels * expansion_ratio), 1)
        self.bn0: nn.Module = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.pw1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.pw2 = nn.Conv2d(hidden, channels, 1)
        self.norm = LayerNorm2d(channels)
        self.gnconv = ResGnConv(channels, order, kernel_size, lam, act)
        self.memory_lean = True
        """Recompute the cheap intermediates in backward instead of keeping them (training only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_lean and recomputation_applies(self):
            return checkpoint_dense_convolutions(self, self.forward_plain, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without recomputation (what :meth:`forward` runs in eval, without gradients, compiled)."""
        h = _gelu(self.bn1(self.pw1(self.bn0(x))))
        h = _gelu(self.bn2(self.dw(h)))
        x = _add(self.pw2(h), x)
        return _add(self.gnconv.forward_plain(self.norm(x)), x)

    def fuse_(self) -> None:
        """Fold ``bn0`` (before ``pw1``), ``bn1`` (after ``pw1``) and ``bn2`` (after ``dw``) in place."""
        if isinstance(self.bn0, nn.BatchNorm2d):
            self.pw1 = fold_bn_into_conv(fold_bn_before_conv(self.bn0, self.pw1), self.bn1)
            self.dw = fold_bn_into_conv(self.dw, self.bn2)
            self.bn0, self.bn1, self.bn2 = nn.Identity(), nn.Identity(), nn.Identity()


class HorBlock(nn.Module):
    """Transformer meta-architecture with a recursive gated convolution as token mixer (Fig. 4c; Table 3).

    ``x = x + gamma_1 * mixer(LN(x)); y = x + gamma_2 * MLP(LN(x))`` with ``MLP = Conv1x1 -> GELU -> Conv1x1``
    (expansion ``expansion_ratio``) and learnable per-channel layer scales initialised to ``layer_scale`` (HorNet).
    ``mixer="gnconv"`` is HorNet's Hor block, ``mixer="resgnconv"`` the paper's R-Hor block. In training the whole
    block keeps only its input and its 1x1 convolutions' outputs for backward (:attr:`memory_lean`, as
    :class:`DRSIBlock`).

    Args:
        channels: C.
        mixer: ``"gnconv"`` or ``"resgnconv"``.
        expansion_ratio: MLP hidden width / C.
        order: Interaction order of the mixer.
        kernel_size: Depthwise kernel of the mixer.
        lam: lambda of Res-gnConv (ignored for gnConv).
        layer_scale: Initial value of gamma_1, gamma_2 (0 disables the layer scales).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(
        self,
        channels: int,
        mixer: str = "gnconv",
        expansion_ratio: float = 4.0,
        order: int = 2,
        kernel_size: int = 7,
        lam: float = math.sqrt(2.0),
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        if mixer == "gnconv":
            self.mixer: nn.Module = GnConv(channels, order, kernel_size)
        elif mixer == "resgnconv":
            self.mixer = ResGnConv(channels, order, kernel_size, lam)
        else:
            raise ValueError(f"mixer must be 'gnconv' or 'resgnconv', got {mixer!r}")
        hidden = max(round(channels * expansion_ratio), 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), get_act("gelu"), nn.Conv2d(hidden, channels, 1))
        if layer_scale > 0:
            self.gamma1 = nn.Parameter(torch.full((channels, 1, 1), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((channels, 1, 1), float(layer_scale)))
        else:
            self.register_parameter("gamma1", None)
            self.register_parameter("gamma2", None)
        self.memory_lean = True
        """Recompute the cheap intermediates in backward instead of keeping them (training only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_lean and recomputation_applies(self):
            return checkpoint_dense_convolutions(self, self.forward_plain, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without recomputation (what :meth:`forward` runs in eval, without gradients, compiled)."""
        y = self.mixer.forward_plain(self.norm1(x))
        x = x + (y if self.gamma1 is None else self.gamma1 * y)
        y = self.mlp(self.norm2(x))
        return x + (y if self.gamma2 is None else self.gamma2 * y)


class C3DR(C3):
    """Cross-stage DRSI module (paper eq. 9-11): a C3 whose cross-stage branch runs n DRSI-family blocks.

    ``x' = Conv1x1(x)``, ``x'' = Conv1x1(x)`` (both ``C_out / 2``, eq. 9); ``x'`` goes through n blocks (eq. 10);
    ``y = Conv1x1(concat(DR_n(x'), x''))`` (eq. 11; the "+" inside eq. 11's Concat is read as the concatenation
    itself, as in the CSP/C3 structure the paper builds on). Attribute names follow YOLOv5's C3 (``cv1`` the
    cross-stage branch, ``cv2`` the main branch, ``cv3`` the fusion, ``m`` the blocks).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        num_blocks: Blocks n.
        block: ``"drsi"`` (:class:`DRSIBlock`), ``"hor"`` or ``"rhor"`` (:class:`HorBlock` with gnConv /
            Res-gnConv), Table 3.
        expansion_ratio: Inverted-bottleneck / MLP expansion of the blocks.
        order: Interaction order of the blocks' (Res-)gnConv.
        kernel_size: Depthwise kernel of the (Res-)gnConv.
        lam: lambda of Res-gnConv.
        act: Activation of the three 1x1 Conv-BN-act layers.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        block: str = "drsi",
        expansion_ratio: float = 4.0,
        order: int = 2,
        kernel_size: int = 7,
        lam: float = math.sqrt(2.0),
        act: str = "silu",
    ) -> None:
        hidden = max(int(out_channels * 0.5), 1)
        if block == "drsi":
            blocks = [DRSIBlock(hidden, expansion_ratio, order, kernel_size, lam, act) for _ in range(num_blocks)]
        elif block in ("hor", "rhor"):
            mixer = "gnconv" if block == "hor" else "resgnconv"
            blocks = [HorBlock(hidden, mixer, expansion_ratio, order, kernel_size, lam) for _ in range(num_blocks)]
        else:
            raise ValueError(f"block must be 'drsi', 'hor' or 'rhor', got {block!r}")
        super().__init__(in_channels, out_channels, num_blocks, act=act, blocks=nn.Sequential(*blocks))

    checkpoint_blocks = True
