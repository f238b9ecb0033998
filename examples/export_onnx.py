"""Export a posezoo model to ONNX, run the file with onnxruntime on an image and compare with PyTorch.

VTTransPose (top-down; the graph outputs heatmaps, decoded here with TopDownCodec)::

    python examples/export_onnx.py --weights runs/vt/final --image photo.jpg --box 40 20 220 400 --out vt.onnx

DRSI-Net with boxes, scores and keypoints decoded inside the graph (NMS stays outside)::

    python examples/export_onnx.py --model drsi_net_s --weights drsi_s.safetensors --decode --top-k 100 --out drsi.onnx

Without ``--image`` the script generates a synthetic image (and, for a top-down model, uses its ground-truth
person boxes); without ``--weights`` the model has random weights, which is enough to check the export. The
comparison feeds the same preprocessed input to onnxruntime (the fused export) and to the PyTorch model as loaded
(unfused), prints the largest absolute difference of every output and whether all of them agree within
``atol + rtol * |PyTorch|`` elementwise (as ``torch.allclose``); the exit status is 1 when they do not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from posecommon import PoseModel, TopDownCodec, create_model, load_image
from posecommon.data import generate_synthetic_coco, load_coco_keypoints
from posecommon.export import export_module, export_onnx
from posecommon.ops.letterbox import letterbox


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
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="input size of the model built from the registry and of the graph (default: the model's)",
    )
    parser.add_argument("--decode", action="store_true", help="DRSI-Net: decode boxes/scores/keypoints in the graph")
    parser.add_argument("--top-k", type=int, default=None, help="with --decode: keep the K best candidates")
    parser.add_argument("--image", default=None, help="image file (default: a generated synthetic image)")
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        action="append",
        metavar=("X1", "Y1", "X2", "Y2"),
        help="person box for a top-down model, repeatable (default: the synthetic people or the whole image)",
    )
    parser.add_argument("--synthetic-size", type=int, default=256, help="side of the generated image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime and PyTorch intra-op threads")
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of the comparison")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (|a - b| <= atol + rtol |b|)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    size = tuple(args.input_size) if args.input_size else None
    model = load_model(args.model, args.weights, size).eval()
    if args.weights is None:
        print(f"note: {model.model_name} has random weights (pass --weights to export trained ones)")

    path = export_onnx(model, args.out, input_size=size, include_decode=args.decode, top_k=args.top_k)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    height, width = json.loads(meta["input_size"])  # the graph's (H, W), recorded by export_onnx
    names = [o.name for o in session.get_outputs()]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): images (B, 3, {height}, {width}) -> {', '.join(names)}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.image is None:
            image_path, gt_boxes = synthetic_image(Path(tmp), args.synthetic_size, args.seed)
        else:
            image_path, gt_boxes = Path(args.image), None
        pixels = load_image(image_path)  # (3, H, W) uint8

    preprocess = model.preprocess
    top_down = preprocess.resize == "affine_crop"
    if top_down:  # one crop per person box, as VTTransPose.predict makes them
        if args.box:
            boxes = torch.tensor(args.box)
        elif gt_boxes is not None and len(gt_boxes):
            boxes = gt_boxes
        else:
            boxes = torch.tensor([[0.0, 0.0, pixels.shape[2] - 1.0, pixels.shape[1] - 1.0]])
        cropper = TopDownCodec((height, width), (height, width))  # regions and crops need no heatmap size
        regions = cropper.regions(boxes)
        inputs = cropper.crop(pixels, regions, pad_value=preprocess.pad_value)
    else:  # the whole image, letterboxed
        inputs = letterbox(pixels, (height, width), preprocess.pad_value)[0][None]
    inputs = preprocess.normalize(inputs)

    got = session.run(None, {"images": inputs.numpy()})
    with torch.no_grad():
        want = export_module(model, args.decode, None)(inputs)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    if args.top_k is not None:  # the graph's candidates are the reference's at the graph's indices
        index = torch.from_numpy(got[3])
        want = [
            torch.gather(t, 1, index.view(*index.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:]))
            for t in want
        ] + [index]

    worst, agree = 0.0, True
    for name, have, ref in zip(names, got, want, strict=True):
        ref = ref.double().numpy()
        diff = float(np.abs(have.astype(np.float64) - ref).max()) if have.size else 0.0
        worst = max(worst, diff)
        agree = agree and have.shape == ref.shape and np.allclose(have, ref, rtol=args.rtol, atol=args.atol)
        print(f"{name:10s} {tuple(have.shape)}  max |output| {float(np.abs(have).max()):.3g}  max abs diff {diff:.2e}")

    if top_down:  # decode the ONNX heatmaps and map the keypoints back to the image
        heatmaps = torch.from_numpy(got[0])
        codec = TopDownCodec((height, width), tuple(heatmaps.shape[-2:]))
        keypoints, scores = codec.decode(heatmaps, regions)  # DARK, then straight back to image pixels
        shape = tuple(keypoints.shape)
        print(f"{len(boxes)} people, keypoints {shape} in image pixels, mean confidence {float(scores.mean()):.3g}")
    verdict = "agrees with" if agree else "DIFFERS from"
    tolerance = f"atol {args.atol:g}, rtol {args.rtol:g}"
    print(f"onnxruntime {verdict} PyTorch on {Path(image_path).name}: max abs diff {worst:.2e} ({tolerance})")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
