"""Draw the annotated example image of the docs (``docs/_static/prediction.png``).

With ``--run RUN_DIR`` (a ``posezoo train`` run directory of a top-down model) the picture shows that run's final
model predicting on the first synthetic validation image of the run, given the ground-truth person boxes. Without
it, the picture shows the ground-truth keypoints of a freshly generated synthetic image, drawn with
:func:`posecommon.draw_pose` (so it illustrates the drawing and the data, not a model). The script prints which.

    python docs/scripts/draw_prediction.py --run /tmp/run_vt2 --out docs/_static/prediction.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from PIL import Image

from posecommon import COCO17, PoseModel, PoseResult, draw_pose, load_image
from posecommon.data import generate_synthetic_coco, load_coco_keypoints


def ground_truth_result(persons: list) -> PoseResult:
    """The annotated people of one image as a PoseResult (visibility > 0 becomes confidence 1)."""
    boxes = torch.tensor([p.bbox_xyxy for p in persons], dtype=torch.float32).view(-1, 4)
    keypoints = torch.stack([torch.as_tensor(p.keypoints, dtype=torch.float32) for p in persons])
    keypoints[..., 2] = (keypoints[..., 2] > 0).float()
    return PoseResult(boxes, torch.ones(len(persons)), keypoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="training run directory (uses final/ and data/val)")
    parser.add_argument("--image-index", type=int, default=0, help="which validation image")
    parser.add_argument("--size", type=int, default=256, help="side of a generated image (no --run)")
    parser.add_argument("--scale", type=int, default=2, help="enlarge the picture this many times (nearest)")
    parser.add_argument("--out", default="docs/_static/prediction.png")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.run is not None:
            run = Path(args.run)
            model = PoseModel.from_pretrained(run / "final")
            ann, images = run / "data" / "annotations" / "person_keypoints_val.json", run / "data" / "val"
        else:
            model = None
            split = generate_synthetic_coco(
                tmp, args.image_index + 1, image_size=(args.size, args.size), seed=1, split="val", image_format="png"
            )
            ann, images = split.ann_file, split.image_dir
        data = load_coco_keypoints(ann, images, model.keypoint_spec if model else COCO17)
        record = data.images[args.image_index]
        persons = data.persons.get(record.image_id, [])
        pixels = load_image(record.path)
    if model is not None:
        boxes = torch.tensor([p.bbox_xyxy for p in persons], dtype=torch.float32).view(-1, 4)
        result = model.predict(pixels, boxes).to("cpu")
        what = f"{model.model_name} from {args.run}/final, ground-truth boxes"
    else:
        result = ground_truth_result(persons)
        what = "ground truth of a synthetic image"
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    if args.scale > 1:  # enlarge first so that lines stay thin and sharp
        image = image.resize((image.width * args.scale, image.height * args.scale), Image.Resampling.NEAREST)
        result = PoseResult(
            (result.boxes + 0.5) * args.scale - 0.5,
            result.scores,
            torch.cat(((result.keypoints[..., :2] + 0.5) * args.scale - 0.5, result.keypoints[..., 2:]), -1),
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    draw_pose(image, result, model.keypoint_spec if model else COCO17).save(args.out, optimize=True)
    print(f"wrote {args.out}: {what}, image {record.file_name}, {len(result)} people")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
