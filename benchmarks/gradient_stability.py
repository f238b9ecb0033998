"""Gradient norms through deep stacks of high-order gnConv vs Res-gnConv (the paper's stability claim, Sec. 3.2).

Each stack is ``depth`` pre-norm residual blocks ``x = x + mixer(LN(x))`` (the Hor/R-Hor token-mixer half, without
layer scale so the mixer is not hidden). At initialisation, one batch of Gaussian input goes through the stack and
the loss ``mean(y * r)`` (fixed random ``r``) is back-propagated. Reported per block index d (0 = input side):
``||dL/dx_d||``, the gradient norm at the input of block d, normalised by the one at the output, plus the norm of
the gradient of each block's parameters. Bounded means the ratio stays O(1) as depth and order grow.

Usage::

    python benchmarks/gradient_stability.py                 # orders 2 4 6, depth 24, 32 channels
    python benchmarks/gradient_stability.py --orders 2 3 4 5 6 --depth 48 --out grad.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math

import torch
from torch import nn

from drsinet import GnConv, ResGnConv
from posecommon.layers import LayerNorm2d

logger = logging.getLogger("gradient_stability")


class _Residual(nn.Module):
    def __init__(self, mixer: nn.Module, channels: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.mixer = mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))


def _make_mixer(kind: str, channels: int, order: int, gn_scale: float, lam: float) -> nn.Module:
    if kind == "gnconv":
        return GnConv(channels, order, scale=gn_scale)
    return ResGnConv(channels, order, lam=lam)


@torch.no_grad()
def _reinit(module: nn.Module, gain: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, gain / math.sqrt(fan_in))
            if m.bias is not None:
                m.bias.zero_()


def measure(
    kind: str,
    order: int,
    depth: int,
    channels: int,
    size: int,
    batch: int,
    seed: int,
    gn_scale: float,
    lam: float,
    weight_gain: float | None = None,
) -> dict[str, object]:
    """Gradient norms per block of one stack; see the module docstring."""
    torch.manual_seed(seed)
    blocks = nn.ModuleList(_Residual(_make_mixer(kind, channels, order, gn_scale, lam), channels) for _ in range(depth))
    if weight_gain is not None:
        _reinit(blocks, weight_gain)
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
    out_rms = h.detach().square().mean().sqrt().item()
    return {
        "kind": kind,
        "order": order,
        "depth": depth,
        "weight_gain": weight_gain,
        "input_grad_ratio_per_block": act_grad,
        "param_grad_norm_per_block": param_grad,
        "output_rms": out_rms,
        "finite": all(math.isfinite(v) for v in act_grad + param_grad),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gn-scale", type=float, default=1.0 / 3.0, help="gnConv's depthwise scale (HorNet: 1/3)")
    parser.add_argument("--lam", type=float, default=math.sqrt(2.0), help="Res-gnConv's lambda")
    parser.add_argument(
        "--weight-gain",
        type=float,
        default=None,
        help="re-initialise every conv N(0, gain^2 / fan_in) (variance-preserving at 1) instead of torch's default",
    )
    parser.add_argument("--out", default=None, help="write all per-block numbers as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    results = []
    marks = sorted({0, args.depth // 4, args.depth // 2, 3 * args.depth // 4, args.depth - 1})
    header = f"{'mixer':10s} {'order':>5s} " + " ".join(f"{'blk' + str(d):>10s}" for d in marks)
    logger.info("||dL/dx_d|| / ||dL/dy|| at the input of block d (depth %d, %d ch)", args.depth, args.channels)
    logger.info(header)
    for order in args.orders:
        for kind in ("gnconv", "resgnconv"):
            r = measure(
                kind,
                order,
                args.depth,
                args.channels,
                args.size,
                args.batch,
                args.seed,
                args.gn_scale,
                args.lam,
                args.weight_gain,
            )
            results.append(r)
            ratios = r["input_grad_ratio_per_block"]
            logger.info(f"{kind:10s} {order:5d} " + " ".join(f"{ratios[d]:10.3g}" for d in marks))
    logger.info("")
    logger.info("max parameter-gradient norm over blocks / output RMS")
    for r in results:
        logger.info(
            f"{r['kind']:10s} {r['order']:5d}  max |grad W| {max(r['param_grad_norm_per_block']):10.3g}  "
            f"output rms {r['output_rms']:10.3g}"
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
