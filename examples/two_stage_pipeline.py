"""Multi-person poses with PosePipeline: DRSI-Net finds the people, VTTransPose places their keypoints.

Two stages (detector boxes -> top-down keypoints in each box)::

    python examples/two_stage_pipeline.py --detector-weights drsi_s.safetensors \
        --pose-weights runs/vt/final --image crowd.jpg --out poses.png

One stage (DRSI-Net's own keypoints, no second model)::

    python examples/two_stage_pipeline.py --single-stage --detector-weights drsi_s.safetensors --image crowd.jpg \
        --out poses.png

Without ``--image`` a synthetic image is generated; without weights both models are random, so the boxes and
keypoints are meaningless but every step runs. ``--max-people`` keeps only the best-scoring detections. The pipeline
follows the same predict contract as the models: ``pipeline("crowd.jpg")`` gives one result, a list or a directory
gives a list, a video or generator gives an iterator.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from posecommon import PoseModel, PosePipeline, create_model
from posecommon.data import generate_synthetic_coco


def load_model(name: str, weights: str | None, input_size: tuple[int, int] | None) -> PoseModel:
    """A ``save_pretrained`` directory or ``hf-hub:`` repo rebuilds its own model; a file loads into ``name``."""
    if weights is not None and (weights.startswith("hf-hub:") or Path(weights).is_dir()):
        return PoseModel.from_pretrained(weights)
    overrides = {"input_size": input_size} if input_size else {}
    return create_model(name, pretrained=weights or False, **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detector", default="drsi_net_s", help="single-stage model name")
    parser.add_argument("--detector-weights", default=None)
    parser.add_argument(
        "--detector-input",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="letterbox size (multiples of 64; default 960x960)",
    )
    parser.add_argument("--pose-model", default="vttranspose_h_s", help="top-down model name")
    parser.add_argument("--pose-weights", default=None)
    parser.add_argument(
        "--pose-input", type=int, nargs=2, metavar=("H", "W"), default=None, help="crop size (default 256x192)"
    )
    parser.add_argument("--single-stage", action="store_true", help="use the detector's own keypoints")
    parser.add_argument("--image", default=None, help="image file (default: a generated synthetic image)")
    parser.add_argument("--synthetic-size", type=int, default=320)
    parser.add_argument("--score-threshold", type=float, default=0.25)
    parser.add_argument("--max-people", type=int, default=100)
    parser.add_argument("--no-flip", action="store_true", help="skip the top-down flip test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="annotated PNG to write")
    parser.add_argument("--json", default=None, help="also write the COCO keypoint results here")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    size = tuple(args.detector_input) if args.detector_input else None
    detector = load_model(args.detector, args.detector_weights, size)
    pose_model = None
    if not args.single_stage:
        size = tuple(args.pose_input) if args.pose_input else None
        pose_model = load_model(args.pose_model, args.pose_weights, size)
    pipeline = PosePipeline(
        detector,
        pose_model,
        score_threshold=args.score_threshold,
        max_people=args.max_people,
        **({"flip_test": False} if args.no_flip and pose_model is not None else {}),
    )

    with tempfile.TemporaryDirectory() as tmp:
        image_path = args.image
        if image_path is None:
            side = args.synthetic_size
            split = generate_synthetic_coco(tmp, 1, image_size=(side, side), seed=args.seed, split="val")
            image_path = next(split.image_dir.iterdir())
        result = pipeline(image_path).cpu()  # one image in, one PoseResult out
        picture = result.plot(keypoint_threshold=0.0)

    stages = "one stage" if pose_model is None else "two stages"
    print(f"{stages}: {len(result)} people, keypoints {tuple(result.keypoints.shape)}")
    for index, (box, score) in enumerate(zip(result.boxes.tolist(), result.scores.tolist(), strict=True)):
        print(f"person {index}: box {[round(v, 1) for v in box]}, score {score:.3f}")
    picture.save(args.out)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_coco(image_id=1), indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
