"""Training-step memory per image of every DRSI-Net size, with and without gradient checkpointing (docs/training.md).

For each model and variant, the tensor peak of one training step (forward, YOLO-Pose loss, backward, SGD step;
:mod:`posecommon.app.bench.train`, each arm in a fresh process) at batch 1 and batch 2 of one input size: the
difference is the memory one more image costs, the rest the per-step constant (gradients, optimiser temporaries).
Every map of a convolutional network scales with the pixel count, so the per-image figure at another size S is
this one times ``(S / size)^2``; ``--check-size`` measures one model there at batch 1 to test that.

The implied batch on a GPU of G GiB is ``(G - weights - momentum - constant) / per-image``: an estimate from a
float32 CPU measurement, to be confirmed on a GPU (AMP keeps most activations in float16, and CUDA's allocator and
cuDNN's workspaces add their own overhead).

Usage::

    python benchmarks/train_memory_per_image.py [--models drsi_net_s drsi_net_m drsi_net_l] [--size 640]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from posecommon.app.bench.train import TrainBenchSettings, run_train_bench

OUT = Path(__file__).resolve().parent / "results" / "train"
GPUS_GB = (16, 24, 40, 80)
SIZES = (640, 960)


def measure(models: list[str], size: int, batch: int, variants: tuple[str, ...]) -> dict[str, dict]:
    settings = TrainBenchSettings(
        models=models, sizes={"drsinet": (size, size)}, batch=batch, variants=variants, threads=2, repeats=0
    )
    return run_train_bench(settings)["arms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["drsi_net_s", "drsi_net_m", "drsi_net_l"])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--check-size", type=int, default=960, help="measure the first model here too (0: skip)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = ("eager", "grad_checkpointing")
    one, two = (measure(args.models, args.size, b, variants) for b in (1, 2))
    rows = []
    for label, row in one.items():
        per_image = two[label]["tensor_peak_mb"] - row["tensor_peak_mb"]
        constant = row["tensor_peak_mb"] - per_image
        resident = 2 * row["params_m"] * 4 * 1e6 / 2**20  # weights + SGD momentum, float32
        rows.append(
            {
                "arm": label,
                "params_m": row["params_m"],
                "size": args.size,
                "peak_b1_mb": row["tensor_peak_mb"],
                "peak_b2_mb": two[label]["tensor_peak_mb"],
                "rss_b1_mb": row["rss_growth_mb"],
                "rss_b2_mb": two[label]["rss_growth_mb"],
                "per_image_mb": {s: per_image * (s / args.size) ** 2 for s in SIZES},
                "constant_mb": constant,
                "resident_mb": resident,
                "batch_per_gpu": {
                    s: {
                        gb: max(0, math.floor((gb * 1024 - resident - constant) / (per_image * (s / args.size) ** 2)))
                        for gb in GPUS_GB
                    }
                    for s in SIZES
                },
            }
        )
    check = None
    if args.check_size:
        arms = measure(args.models[:1], args.check_size, 1, ("eager",))
        measured = next(iter(arms.values()))["tensor_peak_mb"]
        first = rows[0]
        predicted = first["constant_mb"] + first["per_image_mb"][args.check_size]
        check = {"arm": first["arm"], "size": args.check_size, "measured_mb": measured, "predicted_mb": predicted}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory_per_image.json").write_text(json.dumps({"rows": rows, "check": check}, indent=1))
    lines = [
        "| model | per image at 640 (MB) | per image at 960 (MB) | constant (MB) | "
        + " | ".join(f"batch on {gb} GB at 640 / 960" for gb in GPUS_GB)
        + " |",
        "|---|---|---|---|" + "---|" * len(GPUS_GB),
    ]
    for r in rows:
        batches = " | ".join(f"{r['batch_per_gpu'][640][gb]} / {r['batch_per_gpu'][960][gb]}" for gb in GPUS_GB)
        lines.append(
            f"| {r['arm']} | {r['per_image_mb'][640]:.0f} | {r['per_image_mb'][960]:.0f} | {r['constant_mb']:.0f} "
            f"| {batches} |"
        )
    if check:
        lines.append(
            f"\nCheck: {check['arm']} at {check['size']}, batch 1: measured {check['measured_mb']:.0f} MB, "
            f"predicted from {args.size} {check['predicted_mb']:.0f} MB."
        )
    text = "\n".join(lines) + "\n"
    (args.out / "memory_per_image.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
