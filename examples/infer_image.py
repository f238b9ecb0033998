"""Predict human poses on one image with a posezoo model and draw them.

Top-down model (VTTransPose) with your own weights and person boxes::

    python examples/infer_image.py --weights runs/vt/final --image photo.jpg --box 40 20 220 400 --out pose.png

Single-stage model (DRSI-Net), which finds the people itself::

    python examples/infer_image.py --model drsi_net_s --weights drsi_s.safetensors --image photo.jpg --out pose.png

Without ``--image`` the script draws a synthetic image (posezoo's generator) and uses its ground-truth person
boxes; without ``--weights`` the model has random weights, so the drawn keypoints are meaningless (but the whole
code path runs). The result is written as an annotated PNG (``result.plot()``) and, with ``--json``, as COCO keypoint
results (``result.to_coco()``). ``model.predict`` also takes directories, globs, URLs, videos and lists; see
``posezoo predict`` for the command-line version.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from posecommon import PoseModel, create_model
from posecommon.data import generate_synthetic_coco, load_coco_keypoints


def load_model(name: str, weights: str | None, input_size: tuple[int, int] | None) -> PoseModel:
    """A ``save_pretrained`` directory or ``hf-hub:`` repo rebuilds its own model; a file loads into ``name``."""
    if weights is not None and (weights.startswith("hf-hub:") or Path(weights).is_dir()):
        return PoseModel.from_pretrained(weights)
    overrides = {"input_size": input_size} if input_size else {}
    return create_model(name, pretrained=weights or False, **overrides)


def synthetic_image(out_dir: Path, size: int, seed: int) -> tuple[Path, torch.Tensor]:
    """One generated image and the ground-truth boxes ``(N, 4)`` xyxy of the people on it."""
    split = generate_synthetic_coco(out_dir, num_images=1, image_size=(size, size), seed=seed, split="val")
    data = load_coco_keypoints(split.ann_file, split.image_dir)
    record = data.images[0]
    boxes = torch.tensor([p.bbox_xyxy for p in data.persons.get(record.image_id, [])]).view(-1, 4)
    return record.path, boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vttranspose_h_s", help="registry name (see `posezoo models`)")
    parser.add_argument("--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo")
    parser.add_argument("--image", default=None, help="image file (default: a generated synthetic image)")
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        action="append",
        metavar=("X1", "Y1", "X2", "Y2"),
        help="person box for a top-down model, repeatable (default: the whole image)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="model input size when building from the registry (default: the paper's)",
    )
    parser.add_argument("--synthetic-size", type=int, default=256, help="side of the generated image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-flip", action="store_true", help="top-down: skip the flip test (2x faster)")
    parser.add_argument("--score-threshold", type=float, default=0.25, help="single-stage: minimum person score")
    parser.add_argument("--keypoint-threshold", type=float, default=0.3, help="draw keypoints above this confidence")
    parser.add_argument("--out", required=True, help="annotated PNG to write")
    parser.add_argument("--json", default=None, help="also write the COCO keypoint results here")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = load_model(args.model, args.weights, tuple(args.input_size) if args.input_size else None)
    if args.weights is None:
        print(f"note: {model.model_name} has random weights (pass --weights for meaningful keypoints)")

    with tempfile.TemporaryDirectory() as tmp:
        if args.image is None:
            image_path, gt_boxes = synthetic_image(Path(tmp), args.synthetic_size, args.seed)
        else:
            image_path, gt_boxes = Path(args.image), None
        if model.preprocess.resize == "affine_crop":  # top-down: keypoints inside given person boxes
            boxes = torch.tensor(args.box) if args.box else gt_boxes  # None: the whole image is one box
            result = model.predict(image_path, boxes, flip_test=not args.no_flip)
        else:  # single-stage: the model finds the people
            result = model.predict(image_path, score_threshold=args.score_threshold)
        result = result.cpu()
        picture = result.plot(keypoint_threshold=args.keypoint_threshold)  # drawn while the image file exists

    for index, person in enumerate(result):  # one single-person PoseResult per person
        shown = int((person.keypoints[0, :, 2] >= args.keypoint_threshold).sum())
        score = float(person.scores)
        print(f"person {index}: score {score:.3f}, {shown}/{result.num_joints} keypoints above threshold")
    picture.save(args.out)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_coco(image_id=1), indent=1))
    height, width = result.image_size
    print(f"{len(result)} people, {result.num_joints} keypoints each; wrote {args.out} ({width}x{height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
