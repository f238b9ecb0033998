"""Building blocks of VTTransPose and of the TransPose-H-S baseline encoder.

VTTransPose (Sci. Rep. 14:7608, 2024): :class:`AsymmetricConv` and :class:`VBlock` (backbone, Figs. 5-6, eqs. 4-5),
:class:`TwinAttention`, :class:`DWSeparableFFN`, :class:`TwinEncoderLayer` and :class:`AxialPositionEmbedding`
(encoder, Fig. 3). TransPose-H-S: :class:`TransformerEncoderLayer` (DETR-style post-norm layer with the official
attribute names), :class:`TransformerEncoder` and :func:`sine_position_table`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posecommon.layers import (
    DepthwiseSeparableConv,
    LayerNorm2d,
    checkpoint_module,
    fold_bn_into_conv,
    recomputation_applies,
)

__all__ = [
    "AsymmetricConv",
    "AxialPositionEmbedding",
    "ConvMLP",
    "DWSeparableFFN",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TwinAttention",
    "TwinEncoder",
    "TwinEncoderLayer",
    "VBlock",
    "sine_position_table",
]

BN_MOMENTUM = 0.1


class AsymmetricConv(nn.Module):
    """Asymmetric convolution (paper eq. 5, Fig. 6): 3x1 conv, then 1x3 conv, then BatchNorm and ReLU.

    Both convolutions are linear and bias-free, so their composition is exactly one 3x3 convolution whose kernel is
    ``W[o, i, a, b] = sum_m W_1x3[o, m, 0, b] * W_3x1[m, i, a, 0]`` (zero padding included: the 3x1 output is zero
    wherever the 1x3 kernel reads padding). :meth:`fuse_` merges the two and folds the BatchNorm into the result.

    Reading: eq. 5 has no normalisation; we add BN + ReLU after the pair, as in the paper's "asymmetric
    convolution block" of Fig. 5.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out.
        kernel_size: Odd length k of the k x 1 and 1 x k kernels.

    Shape:
        - Input: ``(B, C_in, H, W)``
        - Output: ``(B, C_out, H, W)``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.conv_v: nn.Module = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), bias=False)
        self.conv_h: nn.Module = nn.Conv2d(out_channels, out_channels, (1, kernel_size), padding=(0, pad), bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv_h(self.conv_v(x))))

    @torch.no_grad()
    def fuse_(self) -> None:
        """Merge the 3x1 and 1x3 convolutions into one k x k convolution and fold the BatchNorm into it.

        Afterwards ``conv_v`` holds the biased k x k convolution and ``conv_h`` and ``bn`` are identities.
        """
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        conv_v, conv_h = self.conv_v, self.conv_h
        k = conv_v.kernel_size[0]
        # (C_out, C_mid, 1, k) x (C_mid, C_in, k, 1) -> (C_out, C_in, k, k): rows from the 3x1, columns from the 1x3.
        kernel = torch.einsum("omb,mia->oiab", conv_h.weight[:, :, 0, :], conv_v.weight[:, :, :, 0])
        merged = nn.Conv2d(conv_v.in_channels, conv_h.out_channels, k, padding=k // 2, bias=False)
        merged = merged.to(device=kernel.device, dtype=kernel.dtype)
        merged.weight.copy_(kernel)
        self.conv_v = fold_bn_into_conv(merged, self.bn)
        self.conv_h = nn.Identity()
        self.bn = nn.Identity()


class VBlock(nn.Module):
    """Intra-level feature fusion block (paper Fig. 5, eq. 4), a drop-in replacement for an HRNet basic block.

    The input is split into ``scales`` channel groups f_1..f_s, each mapped by a 1x1 convolution K to a common
    width g. Forward cascade: ``f'_i = AC(K(f_i) + f'_{i-1})`` with ``f'_0 = 0``. Reverse cascade: ``y_s = f'_s``,
    ``y_i = f'_i + AC(y_{i+1})`` for ``i = s-1 .. 1``. Output: ``x + BN(K_1x1(concat(y_1..y_s)))``.

    Readings (eq. 4 is not well formed; docs/design/vttranspose.md records this one):

    - The reverse cascade adds the *forward* feature f'_i to the asymmetric conv of the next y. This reproduces
      the receptive fields of Table 1: the forward outputs f'_1..f'_4 see 3, 5, 7, 9 pixels and y_1..y_4 see
      15, 13, 11, 9 (each AC adds 2 by eq. 7); the table lists both numbers per branch.
    - The outer 1x1 convolution of eq. 4 is followed by BatchNorm (as every HRNet convolution is); it is folded at
      inference. Eq. 4 has no activation after the identity sum, so none is applied.
    - Channel counts that are not divisible by ``scales`` are split into groups of ``ceil`` / ``floor`` size;
      g = ``ceil(C / scales)``. For C divisible by 4 this is the paper's block exactly.

    Args:
        channels: Input and output channels C (at least ``scales``).
        scales: Number of channel groups s (4 in the paper).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, channels: int, scales: int = 4) -> None:
        super().__init__()
        if scales < 2 or channels < scales:
            raise ValueError(f"VBlock needs scales >= 2 and channels >= scales, got channels={channels}, {scales=}")
        self.split_sizes = [channels // scales + (1 if i < channels % scales else 0) for i in range(scales)]
        width = self.split_sizes[0]
        self.branch_convs = nn.ModuleList(nn.Conv2d(c, width, 1, bias=False) for c in self.split_sizes)
        self.forward_acs = nn.ModuleList(AsymmetricConv(width, width) for _ in range(scales))
        self.reverse_acs = nn.ModuleList(AsymmetricConv(width, width) for _ in range(scales - 1))
        self.fuse_conv: nn.Module = nn.Conv2d(width * scales, channels, 1, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)

    def cascade(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The two cascades: forward features ``[f'_1 .. f'_s]`` and reverse outputs ``[y_1 .. y_s]``.

        Shape:
            - Input: ``(B, C, H, W)``
            - Output: two lists of s tensors ``(B, g, H, W)``
        """
        forward_feats: list[torch.Tensor] = []
        groups = torch.split(x, self.split_sizes, dim=1)
        for group, conv, ac in zip(groups, self.branch_convs, self.forward_acs, strict=True):
            h = conv(group)
            forward_feats.append(ac(h + forward_feats[-1] if forward_feats else h))
        ys = [forward_feats[-1]]
        for i in range(len(forward_feats) - 2, -1, -1):
            ys.insert(0, forward_feats[i] + self.reverse_acs[i](ys[0]))
        return forward_feats, ys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, ys = self.cascade(x)
        return x + self.bn(self.fuse_conv(torch.cat(ys, dim=1)))

    def fuse_(self) -> None:
        """Fold the output BatchNorm into the outer 1x1 convolution (the asymmetric convs fuse themselves)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.fuse_conv = fold_bn_into_conv(self.fuse_conv, self.bn)
            self.bn = nn.Identity()


class TwinAttention(nn.Module):
    """Twin attention (SOTR; paper Fig. 3): column attention over H, then row attention over W.

    Each column of the map is a sequence of H tokens that attend to each other only; the result is then read row
    by row, each row a sequence of W tokens. Both passes are multi-head scaled dot-product attention with their own
    packed q/k/v projection and output projection (as in SOTR's twin transformer). Memory and compute of the
    attention matrices fall from ``(H W)^2`` to ``W H^2 + H W^2``: 96 % less at 64x48 tokens (paper).

    Reading: "column then row" in sequence, with no residual or normalisation between the two passes
    (docs/design/vttranspose.md).

    Args:
        dim: Channels C (the model width d).
        num_heads: Attention heads; must divide ``dim``.
        dropout: Dropout on the attention weights during training.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, dim: int, num_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.column_qkv = nn.Linear(dim, 3 * dim)
        self.column_proj = nn.Linear(dim, dim)
        self.row_qkv = nn.Linear(dim, 3 * dim)
        self.row_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, head_dim = self.num_heads, c // self.num_heads
        drop = self.dropout if self.training else 0.0
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C): channels last for the linear projections

        # Column pass: every column (fixed w) is one sequence of H tokens.
        qkv = self.column_qkv(tokens).view(b, h, w, 3, heads, head_dim)  # (B, H, W, 3, heads, Ch)
        qkv = qkv.permute(3, 0, 2, 4, 1, 5).reshape(3, b * w, heads, h, head_dim)  # (3, B*W, heads, H, Ch)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=drop)  # (B*W, heads, H, Ch)
        out = out.view(b, w, heads, h, head_dim).permute(0, 3, 1, 2, 4).reshape(b, h, w, c)  # (B, H, W, C)
        tokens = self.column_proj(out)

        # Row pass: every row (fixed h) is one sequence of W tokens.
        qkv = self.row_qkv(tokens).view(b, h, w, 3, heads, head_dim)  # (B, H, W, 3, heads, Ch)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5).reshape(3, b * h, heads, w, head_dim)  # (3, B*H, heads, W, Ch)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=drop)  # (B*H, heads, W, Ch)
        out = out.view(b, h, heads, w, head_dim).permute(0, 1, 3, 2, 4).reshape(b, h, w, c)  # (B, H, W, C)
        return self.row_proj(out).permute(0, 3, 1, 2)  # (B, C, H, W)


class DWSeparableFFN(nn.Module):
    """Feed-forward network of the VTTransPose encoder: DWSep(d -> d), LeakyReLU, DWSep(d -> d) (paper Fig. 3-4).

    DWSep = depthwise 3x3 convolution + pointwise 1x1 convolution, both biased, no normalisation.

    Reading: the paper gives no LeakyReLU slope; we use PyTorch's default 0.01.

    Args:
        dim: Channels C.
        negative_slope: Slope of the LeakyReLU for negative inputs.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, dim: int, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.conv1 = DepthwiseSeparableConv(dim, dim, kernel_size=3)
        self.act = nn.LeakyReLU(negative_slope)
        self.conv2 = DepthwiseSeparableConv(dim, dim, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class ConvMLP(nn.Module):
    """Transformer MLP on a feature map: 1x1 conv C -> hidden, ReLU, dropout, 1x1 conv hidden -> C.

    Used by :class:`TwinEncoderLayer` when ``ffn="mlp"`` (an ablation; the paper model uses :class:`DWSeparableFFN`).

    Args:
        dim: Channels C.
        hidden: Hidden channels.
        dropout: Dropout after the activation during training.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class TwinEncoderLayer(nn.Module):
    """VTTransPose encoder layer (paper Fig. 3): ``x = LN(x + TwinAttention(x)); x = LN(x + FFN(x))``.

    Post-norm like the TransPose layer it replaces; LayerNorm normalises each pixel's channel vector. Position
    embeddings are not added here (they are added once before the encoder).

    Args:
        dim: Channels C (the model width d).
        num_heads: Attention heads.
        ffn: ``"dwsep"`` (:class:`DWSeparableFFN`, the paper) or ``"mlp"`` (:class:`ConvMLP`).
        dim_feedforward: Hidden width of the ``"mlp"`` FFN.
        dropout: Dropout on attention weights and on both residual branches during training.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(
        self, dim: int, num_heads: int = 1, ffn: str = "dwsep", dim_feedforward: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.attn = TwinAttention(dim, num_heads, dropout)
        self.norm1 = LayerNorm2d(dim, eps=1e-5)
        if ffn == "dwsep":
            self.ffn: nn.Module = DWSeparableFFN(dim)
        elif ffn == "mlp":
            self.ffn = ConvMLP(dim, dim_feedforward, dropout)
        else:
            raise ValueError(f"ffn must be 'dwsep' or 'mlp', got {ffn!r}")
        self.norm2 = LayerNorm2d(dim, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.attn(x)))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class TwinEncoder(nn.Module):
    """A stack of :class:`TwinEncoderLayer` (no final norm, as in TransPose). With :attr:`grad_checkpointing` each
    layer is a checkpointing segment in training (dropout masks are replayed in the recomputation).

    Args:
        layers: The encoder layers, applied in order.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.grad_checkpointing = False
        """Checkpoint each layer in training (set by ``set_grad_checkpointing``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checkpointed = self.grad_checkpointing and recomputation_applies(self)
        for layer in self.layers:
            x = checkpoint_module(layer, x) if checkpointed else layer(x)
        return x


class AxialPositionEmbedding(nn.Module):
    """Learnable axial position embeddings d x H x 1 and d x 1 x W, broadcast-added to a feature map.

    Built for an ``(H, W)`` grid; for another grid each table is resized with bilinear interpolation along its
    axis (``align_corners=False``), so any input size works.

    Reading: the paper (Twin attention section) gives the two tables' shapes; we add both once, before the
    first encoder layer (docs/design/vttranspose.md).

    Args:
        dim: Channels C.
        height: Grid height H the tables are built for.
        width: Grid width W the tables are built for.

    Shape:
        - Input: ``(B, C, H', W')`` for any ``H'``, ``W'``
        - Output: ``(B, C, H', W')``
    """

    def __init__(self, dim: int, height: int, width: int) -> None:
        super().__init__()
        self.embed_h = nn.Parameter(torch.zeros(1, dim, height, 1))
        self.embed_w = nn.Parameter(torch.zeros(1, dim, 1, width))
        nn.init.normal_(self.embed_h, std=0.02)
        nn.init.normal_(self.embed_w, std=0.02)

    def tables(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The two tables resized to ``(height, width)``: ``(1, C, height, 1)`` and ``(1, C, 1, width)``."""
        embed_h, embed_w = self.embed_h, self.embed_w
        if embed_h.shape[2] != height:
            embed_h = F.interpolate(embed_h, size=(height, 1), mode="bilinear", align_corners=False)
        if embed_w.shape[3] != width:
            embed_w = F.interpolate(embed_w, size=(1, width), mode="bilinear", align_corners=False)
        return embed_h, embed_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed_h, embed_w = self.tables(x.shape[2], x.shape[3])
        return x + embed_h + embed_w


def sine_position_table(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """TransPose's fixed 2-D sine position table (DETR style, normalised coordinates).

    Per axis ``dim / 2`` channels: positions ``1..n`` scaled to ``p = i / (n + 1e-6) * 2 pi``; frequencies
    ``10000^(2 floor(j / 2) / (dim / 2))``; channel j holds ``sin`` for even j and ``cos`` for odd j. The y (row)
    channels come first, then the x (column) channels. Tokens are in row-major order.

    Args:
        height: Grid height H.
        width: Grid width W.
        dim: Channels d (even).
        temperature: Frequency base.
        device: Device of the result.
        dtype: Dtype of the result (computed in float32).

    Returns:
        Tensor ``(H * W, 1, d)``, sequence first as in the official checkpoint.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    scale = 2 * math.pi
    y = torch.arange(1, height + 1, device=device, dtype=torch.float32) / (height + 1e-6) * scale  # (H,)
    x = torch.arange(1, width + 1, device=device, dtype=torch.float32) / (width + 1e-6) * scale  # (W,)
    j = torch.arange(half, device=device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(j, 2, rounding_mode="floor") / half)  # (half,)
    pos_y, pos_x = y[:, None] / freq, x[:, None] / freq  # (H, half), (W, half)
    # Interleave sin of the even channels with cos of the odd channels: [sin_0, cos_1, sin_2, cos_3, ...].
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    table = torch.cat((pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)), 2)
    return table.reshape(height * width, 1, dim).to(dtype)


class TransformerEncoderLayer(nn.Module):
    """The official TransPose encoder layer: DETR-style post-norm self-attention over all H*W tokens.

    ``q = k = x + pos``; ``x = norm1(x + dropout1(MHA(q, k, v=x)))``;
    ``x = norm2(x + dropout2(linear2(dropout(relu(linear1(x))))))``. Attribute names equal the official
    checkpoint's. The attention is :class:`torch.nn.MultiheadAttention` called as the official code calls it
    (attention weights returned, so the full H*W x H*W matrix is materialised, as in the published model:
    ``lib/models/transpose_h.py:196-201``). The official code discards those weights unless it visualises them,
    so :meth:`for_inference_` (called by the model's ``fuse()``, which ``predict`` runs) switches them off:
    PyTorch then runs its fused ``scaled_dot_product_attention`` kernel, which never materialises the matrix
    (36 MiB per head and image at 256x192). Same outputs to float rounding, less memory and time (fused
    channels-last TransPose-H-S at batch 1, one thread: 574-661 ms before, 238-300 ms after).

    Args:
        dim: Token width d.
        num_heads: Attention heads.
        dim_feedforward: Hidden width of the MLP.
        dropout: Dropout on attention weights, the MLP hidden layer and both residual branches.

    Shape:
        - Input: ``(L, B, d)`` (sequence first) and ``pos`` ``(L, 1, d)``, ``(L, B, d)`` or ``None``
        - Output: ``(L, B, d)``
    """

    def __init__(self, dim: int, num_heads: int = 1, dim_feedforward: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = nn.ReLU()
        self.need_weights = True

    def for_inference_(self) -> TransformerEncoderLayer:
        """Stop computing the discarded attention weights (see the class docstring); returns ``self``."""
        self.need_weights = False
        return self

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        q = k = src if pos is None else src + pos
        src2 = self.self_attn(q, k, value=src, need_weights=self.need_weights)[0]
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class TransformerEncoder(nn.Module):
    """Stack of :class:`TransformerEncoderLayer` sharing one position table, no final norm (official layout). With
    :attr:`grad_checkpointing` each layer is a checkpointing segment in training.

    Args:
        layers: The encoder layers, applied in order.

    Shape:
        - Input: ``(L, B, d)`` and ``pos`` ``(L, 1, d)`` or ``None``
        - Output: ``(L, B, d)``
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.grad_checkpointing = False
        """Checkpoint each layer in training (set by ``set_grad_checkpointing``)."""

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        checkpointed = self.grad_checkpointing and recomputation_applies(self)
        for layer in self.layers:
            src = checkpoint_module(layer, src, pos) if checkpointed else layer(src, pos)
        return src
