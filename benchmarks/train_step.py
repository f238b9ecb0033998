"""The issue-27 training-step table: DRSI-Net and the YOLO-Pose layout against the official YOLO-Pose code.

One training step (forward, YOLO-Pose loss, backward; ``--optimizer-step`` adds SGD) at batch 1 and 640 x 640,
2 threads per arm, each arm in a fresh process for memory and interleaved rounds for time
(:mod:`posecommon.app.bench.train`). Without ``--official-yolopose`` only posezoo's models run.

Usage::

    python benchmarks/train_step.py [--official-yolopose DIR --official-python PATH] [--variants eager ...]

Same as ``posezoo bench --train --models drsi_net_s drsi_net_l yolo_pose_s6 --size drsinet=640x640
--threads 2 --no-optimizer-step``, with the results written to ``benchmarks/results/train/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from posecommon.app.bench.train import VARIANTS, TrainBenchSettings, format_train_markdown, run_train_bench

OUT = Path(__file__).resolve().parent / "results" / "train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["yolo_pose_s6", "drsi_net_s", "drsi_net_l"])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["eager"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizer-step", action="store_true")
    parser.add_argument("--official-yolopose", default=None, metavar="DIR")
    parser.add_argument("--official-python", default=None, metavar="PATH")
    parser.add_argument("--out", type=Path, default=OUT, help="directory of train_step.json and train_step.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = TrainBenchSettings(
        models=args.models,
        sizes={"drsinet": (args.size, args.size)},
        batch=args.batch,
        variants=tuple(args.variants),
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        optimizer_step=args.optimizer_step,
        official_yolopose=args.official_yolopose,
        official_python=args.official_python,
    )
    report = run_train_bench(settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step.json").write_text(json.dumps(report, indent=1))
    text = format_train_markdown(report)
    (args.out / "train_step.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
