"""Gradient norms through deep stacks of high-order gnConv vs Res-gnConv (DRSI-Net's stability claim, Sec. 3.2).

Thin wrapper around :func:`drsinet.gradient_norms` (the benchmark suite runs the same measurement, see
``python -m posecommon.app.bench``), printing the per-block ratios ``||dL/dx_d|| / ||dL/dy||`` for chosen orders.

Usage::

    python benchmarks/gradient_stability.py                       # orders 2 4 6, depth 24, 32 channels
    python benchmarks/gradient_stability.py --orders 2 3 4 5 6 --weight-gain 2 --out grad.json
"""

from __future__ import annotations

import argparse
import json
import math

from drsinet import gradient_norms


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
    parser.add_argument("--weight-gain", type=float, default=None, help="re-initialise convs N(0, gain^2 / fan_in)")
    parser.add_argument("--out", default=None, help="write all per-block numbers as JSON here")
    args = parser.parse_args(argv)
    marks = sorted({0, args.depth // 4, args.depth // 2, 3 * args.depth // 4, args.depth - 1})
    print(f"{'mixer':10s} {'order':>5s} " + " ".join(f"{'blk' + str(d):>10s}" for d in marks) + "  max|grad W|")
    results = []
    for order in args.orders:
        for kind in ("gnconv", "resgnconv"):
            r = gradient_norms(
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
            row = " ".join(f"{ratios[d]:10.3g}" for d in marks)
            print(f"{kind:10s} {order:5d} {row}  {max(r['param_grad_norm_per_block']):10.3g}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
