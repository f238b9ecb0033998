"""The paper's claim about Res-gnConv, measured: gradients through deep, high-order stacks stay bounded.

DRSI-Net (Sec. 3.2) adds residual paths inside the recursive gating of gnConv so that gradients do not grow with the
interaction order and the depth. :func:`gradient_norms` measures gradient norms through stacks of pre-norm residual
gnConv or Res-gnConv blocks at initialisation; the benchmark suite (``posezoo bench``) runs it as the
``"gradient_norms"`` claim, and ``benchmarks/gradient_stability.py`` sweeps it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from posecommon.layers import LayerNorm2d
from posecommon.registry import register_provider

from .gnconv import GnConv, ResGnConv

__all__ = ["gradient_norms"]


class _PreNormResidual(nn.Module):
    """``x + mixer(LayerNorm2d(x))``: the token-mixer half of a Hor / R-Hor block, without layer scale."""

    def __init__(self, mixer: nn.Module, channels: int) -> None:
        super().__init__()

        self.norm = LayerNorm2d(channels)
        self.mixer = mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))


@torch.no_grad()
def _reinit_convs(module: nn.Module, gain: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, gain / math.sqrt(m.weight[0].numel()))
            if m.bias is not None:
                m.bias.zero_()


@register_provider("claim", "gradient_norms")
def gradient_norms(
    kind: str,
    order: int,
    depth: int,
    channels: int = 32,
    size: int = 16,
    batch: int = 2,
    seed: int = 0,
    gn_scale: float = 1.0 / 3.0,
    lam: float = math.sqrt(2.0),
    weight_gain: float | None = None,
) -> dict[str, Any]:
    """Gradient norms through a stack of ``depth`` pre-norm residual gnConv or Res-gnConv blocks at initialisation.

    One Gaussian batch ``(batch, channels, size, size)`` goes through the stack and ``mean(y * r)`` (fixed random
    ``r``) is back-propagated. Bounded gradients mean the ratios stay O(1) as depth and order grow.

    Args:
        kind: ``"gnconv"`` (HorNet's, depthwise scale ``gn_scale``) or ``"resgnconv"`` (lambda ``lam``).
        order: Interaction order n.
        depth: Number of blocks.
        channels: Channels C.
        size: Spatial size.
        batch: Batch size.
        seed: Seed of weights, input and direction.
        gn_scale: gnConv's depthwise output scale (HorNet: 1/3).
        lam: Res-gnConv's lambda.
        weight_gain: Re-initialise every conv ``N(0, gain^2 / fan_in)`` (1 is variance-preserving); ``None`` keeps
            torch's default initialisation.

    Returns:
        ``input_grad_ratio_per_block`` (``||dL/dx_d|| / ||dL/dy||`` at the input of block d, 0 = input side),
        ``param_grad_norm_per_block``, ``output_rms`` and ``finite``.
    """

    torch.manual_seed(seed)

    def mixer() -> nn.Module:
        return GnConv(channels, order, scale=gn_scale) if kind == "gnconv" else ResGnConv(channels, order, lam=lam)

    blocks = nn.ModuleList(_PreNormResidual(mixer(), channels) for _ in range(depth))
    if weight_gain is not None:
        _reinit_convs(blocks, weight_gain)
    h = torch.randn(batch, channels, size, size, requires_grad=True)
    feats = []  # feats[d] is the input of block d; the last entry is the stack's output
    for block in blocks:
        h.retain_grad()
        feats.append(h)
        h = block(h)
    h.retain_grad()
    feats.append(h)
    direction = torch.randn(h.shape, generator=torch.Generator().manual_seed(seed + 1))
    (h * direction).mean().backward()
    out_norm = feats[-1].grad.norm().item()
    act_grad = [f.grad.norm().item() / out_norm for f in feats[:-1]]
    param_grad = [math.sqrt(sum(p.grad.square().sum().item() for p in b.parameters())) for b in blocks]
    return {
        "kind": kind,
        "order": order,
        "depth": depth,
        "weight_gain": weight_gain,
        "input_grad_ratio_per_block": act_grad,
        "param_grad_norm_per_block": param_grad,
        "output_rms": h.detach().square().mean().sqrt().item(),
        "finite": all(math.isfinite(v) for v in act_grad + param_grad),
    }
