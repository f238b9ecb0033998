"""Recursive gated convolutions: HorNet's gnConv and DRSI-Net's Res-gnConv."""

from __future__ import annotations

import math

import torch
from torch import nn

from posecommon.layers import (
    ConvNormAct,
    checkpoint_dense_convolutions,
    recomputation_applies,
    split_conv_outputs,
)

__all__ = ["GnConv", "ResGnConv", "interaction_widths"]


def interaction_widths(channels: int, order: int) -> tuple[int, list[int]]:
    """Channel widths of an order-n recursive gated convolution.

    The interaction width ``C' = ceil(C / 2^(n-1)) * 2^(n-1)`` is ``C`` itself whenever ``C`` is divisible by
    ``2^(n-1)`` (every width in DRSI-Net is); otherwise the projections map ``C -> C'`` and back so that any channel
    count works.

    Args:
        channels: Input/output channels C.
        order: Interaction order n >= 1.

    Returns:
        ``(C', [C_0, ..., C_{n-1}])`` with ``C_k = C' / 2^(n-1-k)``.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    unit = 2 ** (order - 1)
    inner = math.ceil(channels / unit) * unit
    return inner, [inner // 2 ** (order - 1 - k) for k in range(order)]


class GnConv(nn.Module):
    """HorNet's recursive gated convolution gnConv (paper eq. 2; HorNet Sec. 3.1).

    ``proj_in`` maps ``C -> 2C'`` and splits into ``p_0`` (C_0) and ``q_0..q_{n-1}`` (C_0..C_{n-1}); one depthwise
    k x k convolution ``f`` runs over all ``q`` and its output is multiplied by ``scale``. Then
    ``p_1 = p_0 * f(q_0)`` and ``p_{k+1} = Conv1x1_k(p_k) * f(q_k)``; ``y = proj_out(p_n)``. There is no residual or
    normalisation inside, which is what makes deep, high-order stacks unstable (measured by
    ``benchmarks/gradient_stability.py``).

    Args:
        channels: Input and output channels C.
        order: Interaction order n >= 1 (n = 1 is a gated convolution).
        kernel_size: Kernel of the depthwise convolution ``f``.
        scale: Factor on ``f``'s output; HorNet's models use 1/3, which is the default here.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(self, channels: int, order: int = 2, kernel_size: int = 7, scale: float = 1.0 / 3.0) -> None:
        super().__init__()
        inner, widths = interaction_widths(channels, order)
        self.order = order
        self.widths = widths
        self.scale = scale
        self.scale_folded = False
        """Set by :meth:`fuse_`: ``scale`` lives in ``dwconv``'s weight and bias."""
        q_channels = sum(widths)
        self.proj_in = nn.Conv2d(channels, widths[0] + q_channels, 1)
        self.dwconv = nn.Conv2d(q_channels, q_channels, kernel_size, padding=kernel_size // 2, groups=q_channels)
        self.pws = nn.ModuleList(nn.Conv2d(widths[k], widths[k + 1], 1) for k in range(order - 1))
        self.proj_out = nn.Conv2d(inner, channels, 1)
        self.memory_lean = True
        """Recompute the cheap intermediates in backward instead of keeping them (training only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_lean and recomputation_applies(self):
            return checkpoint_dense_convolutions(self, self.forward_plain, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without recomputation (what :meth:`forward` runs in eval, without gradients, compiled)."""
        p, q = torch.split(self.proj_in(x), [self.widths[0], sum(self.widths)], dim=1)
        fq = self.dwconv(q)
        if not self.scale_folded:
            fq = fq * self.scale
        fq = torch.split(fq, self.widths, dim=1)
        p = p * fq[0]
        for k, pw in enumerate(self.pws, start=1):
            p = pw(p) * fq[k]
        return self.proj_out(p)

    @torch.no_grad()
    def fuse_(self) -> None:
        """Fold ``scale`` into the depthwise convolution (exact: ``f`` is linear); inference only."""
        if self.scale_folded:
            return
        self.dwconv.weight.mul_(self.scale)
        if self.dwconv.bias is not None:
            self.dwconv.bias.mul_(self.scale)
        self.scale_folded = True


class ResGnConv(nn.Module):
    """Recursive residual gated convolution Res-gnConv (paper eq. 3-6, read as docs/design/drsinet.md records).

    The paper's equations 3-6 are not dimensionally consistent (eq. 3's ``C_k = 2C / 2^(n-k-1)`` do not sum to
    ``2C``; eq. 4 concatenates ``p_k`` and ``f(q_k)`` into ``C_{k+1}`` channels although ``p_k`` has ``C_k`` channels
    only after ``g_k``). This module follows the reading recorded in docs/design/drsinet.md:

    - widths ``C_k = C' / 2^(n-1-k)`` (``C' = C`` unless ``C`` is not divisible by ``2^(n-1)``, see
      :func:`interaction_widths`); ``proj_in``: 1x1 ``C -> 2C'`` split into ``p_0`` (C_0) and ``q_0..q_{n-1}``;
      one depthwise k x k convolution ``f`` over all ``q`` (eq. 3);
    - ``a_0 = p_0 * f(q_0)``;
    - for ``k = 1..n-1``: ``u_k = SiLU(BN(Conv1x1(C_{k-1} -> C_k)(a_{k-1})))`` (``g_k``, eq. 6),
      ``res = concat(u_{k-1}, f(q_{k-1}))`` with ``u_0 = p_0`` (eq. 4, ``2 C_{k-1} = C_k`` channels),
      ``a_k = (res + u_k * f(q_k)) / lambda`` (eq. 5);
    - ``y = proj_out(a_{n-1})``, 1x1 ``C' -> C``.

    With ``order == 1`` the loop is empty and the module is the gated convolution of eq. 1,
    ``proj_out(p_0 * f(q_0))``. ``lambda`` defaults to sqrt(2): ``res`` and ``u_k * f(q_k)`` are two terms of
    comparable variance, and dividing their sum by sqrt(2) keeps the variance of ``a_k`` from doubling at every order
    (the paper only says lambda "scales the output to stabilise training"). The depthwise output is not rescaled
    (HorNet's 1/3 factor is not part of eq. 3-5).

    The recursion keeps every partial product ``a_k``, ``u_k`` and ``f(q_k)`` alive for backward. Training keeps
    only the input and the outputs of the 1x1 convolutions (``proj_in``, ``g_k``'s convolution, ``proj_out``) and
    recomputes the depthwise convolution, ``g_k``'s BatchNorm and SiLU and the gating products when backward
    reaches the module (:attr:`memory_lean`, :func:`~posecommon.layers.checkpoint_dense_convolutions`); outputs
    and gradients are those of :meth:`forward_plain`.

    Args:
        channels: Input and output channels C.
        order: Interaction order n >= 1.
        kernel_size: Kernel of the depthwise convolution ``f`` (7 in the paper, Sec. 3.2).
        lam: The divisor lambda of eq. 5.
        act: Activation of ``g_k``.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C, H, W)``
    """

    def __init__(
        self, channels: int, order: int = 2, kernel_size: int = 7, lam: float = math.sqrt(2.0), act: str = "silu"
    ) -> None:
        super().__init__()
        if lam <= 0:
            raise ValueError(f"lam must be positive, got {lam}")
        inner, widths = interaction_widths(channels, order)
        self.order = order
        self.widths = widths
        self.lam = lam
        self.lam_folded = False
        """Set by :meth:`fuse_`: the 1 / lambda factors live in the weights of ``gates[1:]`` and ``proj_out``."""
        q_channels = sum(widths)
        self.proj_in = nn.Conv2d(channels, widths[0] + q_channels, 1)
        self.dwconv = nn.Conv2d(q_channels, q_channels, kernel_size, padding=kernel_size // 2, groups=q_channels)
        self.gates = nn.ModuleList(ConvNormAct(widths[k - 1], widths[k], 1, act=act) for k in range(1, order))
        self.proj_out = nn.Conv2d(inner, channels, 1)
        self.split_parts: nn.Module | None = None
        """Set by :meth:`fuse_`: ``proj_p``, ``proj_q[k]`` and ``dwconvs[k]`` replace ``proj_in`` and ``dwconv``."""
        self.memory_lean = True
        """Recompute the cheap intermediates in backward instead of keeping them (training only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_lean and recomputation_applies(self):
            return checkpoint_dense_convolutions(self, self.forward_plain, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The forward without recomputation (what :meth:`forward` runs in eval, without gradients, compiled)."""
        if self.split_parts is not None:
            return self._forward_split(x)
        p0, q = torch.split(self.proj_in(x), [self.widths[0], sum(self.widths)], dim=1)
        fq = torch.split(self.dwconv(q), self.widths, dim=1)
        a = p0 * fq[0]
        u_prev = p0
        for k, gate in enumerate(self.gates, start=1):
            u = gate(a)
            # a_k = (concat(u_{k-1}, f(q_{k-1})) + u_k * f(q_k)) / lambda, without materialising the concat: the
            # two halves are added in place into the product (the product's backward does not need its output).
            a = u * fq[k]
            half = self.widths[k - 1]
            a[:, :half] += u_prev
            a[:, half:] += fq[k - 1]
            if not self.lam_folded:
                a = a.div_(self.lam)
            u_prev = u
        return self.proj_out(a)

    def _forward_split(self, x: torch.Tensor) -> torch.Tensor:
        """The fused forward: every map has its own convolution, so no channel slice of a (channels-last) map is
        ever read or written; ``a_k = concat(u_{k-1}, f(q_{k-1})) + u_k * f(q_k)`` (lambda folded)."""
        parts = self.split_parts
        p0 = parts.proj_p(x)
        fq = [dw(proj(x)) for proj, dw in zip(parts.proj_q, parts.dwconvs, strict=True)]
        a = p0 * fq[0]
        u_prev = p0
        for k, gate in enumerate(self.gates, start=1):
            u = gate(a)
            a = torch.cat((u_prev, fq[k - 1]), dim=1).addcmul_(u, fq[k])
            u_prev = u
        return self.proj_out(a)

    @torch.no_grad()
    def fuse_(self) -> None:
        """Fold the divisions by lambda into the 1x1 convolutions that consume ``a_k``, and split the shared
        projections into one convolution per map (inference only).

        ``a_k`` (k >= 1) feeds only ``g_{k+1}``'s convolution or ``proj_out``, both linear in it, so scaling their
        weights by ``1 / lambda`` is exact; it saves one pass over a ``C'``-channel map per order. ``proj_in`` and
        the depthwise ``dwconv`` are split by output channel into ``proj_p`` / ``proj_q[k]`` / ``dwconvs[k]``
        (:func:`~posecommon.layers.split_conv_outputs`: the same weights, so the same sums), which makes every
        ``p_0`` and ``f(q_k)`` a dense tensor of its own instead of a channel slice of a wider map: slices of a
        channels-last map are strided and cost a copy before each convolution.
        """
        if self.lam_folded:
            return
        for gate in list(self.gates)[1:]:
            gate.conv.weight.div_(self.lam)
        self.proj_out.weight.div_(self.lam)
        self.lam_folded = True
        proj_p, *proj_q = split_conv_outputs(self.proj_in, [self.widths[0], *self.widths])
        parts = nn.Module()
        parts.proj_p = proj_p
        parts.proj_q = nn.ModuleList(proj_q)
        parts.dwconvs = nn.ModuleList(split_conv_outputs(self.dwconv, self.widths))
        self.split_parts = parts
        del self.proj_in, self.dwconv
