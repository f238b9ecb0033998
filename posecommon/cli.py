"""The ``posezoo`` command line: ``models``, ``train``, ``evaluate``, ``predict``, ``export`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidInputError, PosezooError, WeightsNotFoundError
from .train.optim import OPTIMIZERS
from .train.precision import AMP_MODES

if TYPE_CHECKING:
    from .model import PoseModel

__all__ = ["build_parser", "main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from .model_table import format_size_table, measure_sizes
    from .registry import list_models

    names = list_models(args.pattern)
    if not names:
        print("no models registered" + (f" matching {args.pattern!r}" if args.pattern else ""))
        return 0
    print(format_size_table(measure_sizes(names)))
    print("\nMACs = FLOPs / 2 from torch.utils.flop_counter (attention matmuls included); Δ = ours vs paper.")
    return 0


def load_model(name: str | None, weights: str | None) -> PoseModel:
    """Build a model for the CLI.

    ``weights`` may be a ``save_pretrained`` directory (or a training run directory, whose ``final/`` is used) or
    ``hf-hub:`` repo, which also gives the model and its config, or a ``.safetensors`` file for model ``name``.
    Without weights the model has random weights (a warning is logged).
    """
    from .model import PoseModel
    from .registry import create_model

    if weights is not None:
        path = Path(weights)
        if path.is_dir() and not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
            path = path / "final"
        if weights.startswith("hf-hub:") or (path / "config.json").is_file():
            model = PoseModel.from_pretrained(str(path) if path.exists() else weights)
            if name is not None and model.model_name != name:
                raise WeightsNotFoundError(f"{weights} holds a {model.model_name} model, not {name}")
            return model
        if name is None:
            raise WeightsNotFoundError(f"{weights} is a weight file; pass --model to say which model it is for")
        if not path.exists():
            raise WeightsNotFoundError(f"weight file not found: {weights}")
        return create_model(name, pretrained=str(path))
    if name is None:
        raise WeightsNotFoundError("pass --model NAME (and --weights FILE or DIR for trained weights)")
    logging.getLogger("posezoo").warning("no --weights given: %s has random weights", name)
    return create_model(name)


def _cmd_train(args: argparse.Namespace) -> int:
    from .errors import TrainingInterrupted
    from .train.run import RunOptions, run_training

    options = RunOptions(
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        input_size=tuple(args.input_size) if args.input_size else None,
        lr=args.lr,
        lr_final=args.lr_final,
        optimizer=args.optimizer,
        schedule=args.schedule,
        warmup_steps=args.warmup_steps,
        nominal_batch_size=args.nominal_batch_size,
        grad_clip=args.grad_clip,
        num_workers=args.workers,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        eval_before=args.eval_before,
        max_eval_images=args.max_eval_images,
        device=args.device,
        seed=args.seed,
        synthetic_train=args.synthetic_train,
        synthetic_val=args.synthetic_val,
        synthetic_image_size=tuple(args.synthetic_image_size),
        amp=args.amp,
        resume_anyway=args.resume_anyway,
        augmentation=dict(args.augment),
        backbone_weights=args.backbone_weights,
    )
    try:
        summary = run_training(args.model, args.data, args.out, options, args.train_split, args.val_split, report=print)
    except TrainingInterrupted as stop:
        if stop.rank != 0:  # under torchrun, rank 0 reports
            return 130
        where = f"checkpoint {stop.checkpoint}" if stop.checkpoint else "no checkpoint yet"
        print(
            f"posezoo train: interrupted at step {stop.step} ({where}); run the same command to resume", file=sys.stderr
        )
        return 130
    except KeyboardInterrupt:
        print("posezoo train: interrupted before training started (nothing to save)", file=sys.stderr)
        return 130
    if not summary:  # a torchrun process other than rank 0
        return 0
    if summary.get("before"):
        print("before training:")
        print(_format_stats(summary["before"]))
    if summary.get("after"):
        print(f"after {summary['steps']} steps:")
        print(_format_stats(summary["after"]))
    print(f"run directory: {args.out} (final weights in {summary['final']}, predictions in {args.out}/predictions)")
    return 0


def _key_value(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _format_stats(stats: dict[str, float]) -> str:
    names = [k for k in stats if k != "step"]
    header = " | ".join(f"{k:>6}" for k in names)
    values = " | ".join(f"{stats[k]:6.3f}" for k in names)
    return f"{header}\n{values}"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.runner import evaluate_model
    from .registry import list_models

    ann, images = args.ann, args.images
    if args.run is not None and not Path(args.run).is_dir() and args.run in list_models():
        if args.model is not None and args.model != args.run:
            raise WeightsNotFoundError(f"two model names given: {args.run} and --model {args.model}")
        args.model, args.run = args.run, None
    if args.det_json is not None and (args.detector is not None or args.use_gt_boxes):
        raise InvalidInputError("--det-json, --detector and --use-gt-boxes choose the person boxes: pass only one")
    if args.use_gt_boxes and args.detector is not None:
        raise InvalidInputError("--use-gt-boxes and --detector choose the person boxes: pass only one")
    if args.run is not None:
        summary_path = Path(args.run) / "summary.json"
        if not summary_path.is_file():
            raise WeightsNotFoundError(f"{args.run} is not a training run directory (no summary.json)")
        data_root = Path(args.run) / "data"
        ann = ann or str(data_root / "annotations" / "person_keypoints_val.json")
        images = images or str(data_root / "val")
    if ann is None or images is None:
        raise WeightsNotFoundError("pass --ann COCO_JSON and --images DIR (or a run directory)")
    model = load_model(args.model, args.weights or args.run)
    detector = load_model(args.detector, args.detector_weights) if args.detector else None
    stats, results = evaluate_model(
        model, ann, images, detector=detector, detections=args.det_json, max_images=args.max_images
    )
    print(_format_stats(stats))
    if args.results:
        Path(args.results).write_text(json.dumps(results))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict_run import PredictOptions, build_predictor, check_output_dir, coco_image_ids, run_predictions

    out = check_output_dir(args.out, exist_ok=args.exist_ok)  # before any model is loaded
    if args.ann is not None:
        coco_image_ids(args.ann)
    options = PredictOptions(
        batch_size=args.batch_size,
        device=args.device,
        half=args.half,
        input_size=tuple(args.input_size) if args.input_size else None,
        detector_input_size=tuple(args.detector_input_size) if args.detector_input_size else None,
        flip=not args.no_flip,
        score_threshold=args.score_threshold,
        iou_threshold=args.iou_threshold,
        max_people=args.max_people,
        keypoint_threshold=args.keypoint_threshold,
    )
    # predict runs a fused copy by default (posecommon.inference); the loaded models stay as they are.
    model = load_model(args.model, args.weights)
    detector = load_model(args.detector, args.detector_weights) if args.detector else None
    predictor = build_predictor(model, detector, options)
    summary = run_predictions(predictor, args.sources, out, options, ann_file=args.ann)
    videos = f", {summary.videos} video(s) ({summary.frames} frames)" if summary.videos else ""
    print(f"wrote {summary.images} annotated image(s){videos} and {summary.predictions.name} to {out}")
    if summary.failures:
        print(f"{len(summary.failures)} input(s) failed:", file=sys.stderr)
        for source, reason in summary.failures:
            print(f"  {source}: {reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import check_onnx, export_onnx

    model = load_model(args.model, args.weights)
    size = tuple(args.input_size) if args.input_size else None
    path = export_onnx(
        model,
        args.out,
        input_size=size,
        opset=args.opset,
        dynamic_batch=not args.static_batch,
        include_decode=args.decode,
        top_k=args.top_k,
        fuse=not args.no_fuse,
    )
    print(f"wrote {path}")
    if args.no_check:
        return 0
    report = check_onnx(
        path, model, include_decode=args.decode, top_k=args.top_k, batch_sizes=(1,) if args.static_batch else (1, 3)
    )
    worst = max(report.max_abs_diff.values())
    verdict = "agrees with" if report.ok else "DIFFERS from"
    print(f"onnxruntime {verdict} PyTorch (max abs diff {worst:.2e}, atol {report.atol}, rtol {report.rtol})")
    return 0 if report.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``posezoo`` (one sub-command per job)."""
    parser = argparse.ArgumentParser(prog="posezoo", description="VTTransPose and DRSI-Net human pose models.")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list registered models with params and MACs beside the paper's figures")
    models.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'drsi_*'")
    models.set_defaults(func=_cmd_models)

    train = sub.add_parser(
        "train",
        help="train a model on synthetic or COCO-format data, evaluate, predict",
        description="Train with the model's published recipe (printed at the start and saved as recipe.json); "
        "flags override single values. Re-running with the same --out resumes from the newest checkpoint.",
    )
    train.add_argument("model", help="registry name, e.g. vttranspose_h_s or drsi_net_s")
    train.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (generated), a COCO-format root, or a YOLO-format root (yolo:DIR, or DIR with images/ and "
        "labels/)",
    )
    train.add_argument("--out", required=True, help="run directory (re-running resumes)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the recipe's)")
    length.add_argument(
        "--steps", type=int, default=None, help="batches instead of epochs: a short run (per-step cosine by default)"
    )
    train.add_argument("--batch-size", type=int, default=None, help="samples per batch, all processes (the recipe's)")
    train.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    train.add_argument("--lr-final", type=float, default=None, help="final learning rate (default: the recipe's)")
    train.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=None, help="default: the recipe's (keeps its momentum)"
    )
    train.add_argument(
        "--schedule",
        choices=("recipe", "cosine"),
        default=None,
        help="the recipe's schedule with its warm-up and gradient accumulation, or a per-step cosine "
        "(default: cosine with --steps, else recipe)",
    )
    train.add_argument("--warmup-steps", type=int, default=None, help="warm-up steps (default: the schedule's)")
    train.add_argument(
        "--nominal-batch-size", type=int, default=None, help="accumulate gradients to N samples (0: never)"
    )
    train.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: the recipe's)")
    train.add_argument("--amp", choices=AMP_MODES, default="auto", help="mixed precision (auto: fp16 on CUDA only)")
    train.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: from the CPUs this process may use)"
    )
    train.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: at the end)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="write a checkpoint every N steps")
    train.add_argument(
        "--resume-anyway", action="store_true", help="resume --out even if its saved settings differ from these"
    )
    train.add_argument("--eval-before", action="store_true", help="also evaluate the untrained model")
    train.add_argument("--max-eval-images", type=int, default=None)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--train-split", default="train2017")
    train.add_argument("--val-split", default="val2017")
    train.add_argument("--synthetic-train", type=int, default=400, help="synthetic training images")
    train.add_argument("--synthetic-val", type=int, default=50, help="synthetic validation images")
    train.add_argument("--synthetic-image-size", type=int, nargs=2, metavar=("H", "W"), default=(256, 256))
    train.add_argument(
        "--augment",
        type=_key_value,
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="override the recipe's augmentation, e.g. rotation=15 half_body=0",
    )
    train.add_argument(
        "--backbone-weights",
        default=None,
        metavar="imagenet|none|PATH",
        help="backbone initialisation of the VTTransPose family (default: imagenet on COCO data, none on synthetic)",
    )
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="COCO keypoint AP of a model on a COCO-format dataset")
    evaluate.add_argument(
        "run", nargs="?", default=None, help="a training run directory (uses its val split), or a model name"
    )
    evaluate.add_argument("--model", default=None, help="registry name (not needed with a run or saved directory)")
    evaluate.add_argument("--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo")
    evaluate.add_argument("--ann", default=None, help="COCO keypoints annotation JSON")
    evaluate.add_argument("--images", default=None, help="image directory")
    evaluate.add_argument("--detector", default=None, help="detector for a top-down model (default: GT boxes)")
    evaluate.add_argument(
        "--det-json", default=None, help="COCO detection-results JSON of person boxes for a top-down model"
    )
    evaluate.add_argument(
        "--use-gt-boxes", action="store_true", help="top-down: ground-truth person boxes (the default without boxes)"
    )
    evaluate.add_argument("--detector-weights", default=None)
    evaluate.add_argument("--max-images", type=int, default=None)
    evaluate.add_argument("--results", default=None, help="also write the COCO results JSON here")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = sub.add_parser(
        "predict",
        help="draw predicted poses on images and videos and write them as JSON",
        description="Sources: image files, directories, glob patterns (quote them), http(s) URLs and video files "
        "(needs the video extra). Writes <stem>.png and <stem>.json per image, <stem>.mp4 and <stem>.jsonl per "
        "video, and predictions.json (COCO results of all images). Unreadable inputs are reported and skipped; the "
        "exit status is 1 when any failed.",
    )
    predict.add_argument("sources", nargs="+", metavar="SOURCE", help="image, directory, glob, URL or video")
    predict.add_argument("--model", default=None, help="registry name")
    predict.add_argument("--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo")
    predict.add_argument("--detector", default=None, help="person detector (DRSI-Net) for a top-down model")
    predict.add_argument("--detector-weights", default=None)
    predict.add_argument("--out", required=True, help="output directory (must be new or empty, see --exist-ok)")
    predict.add_argument(
        "--exist-ok", action="store_true", help="write into a non-empty --out (same names overwritten, others kept)"
    )
    predict.add_argument("--ann", default=None, help="COCO annotation file: predictions.json uses its image ids")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: where the model is)")
    predict.add_argument("--half", action="store_true", help="float16 on CUDA, bfloat16 on CPU (autocast)")
    predict.add_argument("--batch-size", type=_positive_int, default=1, help="images per forward pass")
    predict.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="model input")
    predict.add_argument(
        "--detector-input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="detector letterbox size"
    )
    predict.add_argument("--no-flip", action="store_true", help="top-down: skip the flip test (2x faster)")
    predict.add_argument("--score-threshold", type=float, default=0.25, help="minimum detection score")
    predict.add_argument("--iou-threshold", type=float, default=0.45, help="detection NMS IoU")
    predict.add_argument("--max-people", type=_positive_int, default=None, help="detections kept per image")
    predict.add_argument("--keypoint-threshold", type=float, default=0.3, help="draw keypoints above this")
    predict.set_defaults(func=_cmd_predict)

    export = sub.add_parser("export", help="export a model to ONNX and check it against PyTorch with onnxruntime")
    export.add_argument("model", help="registry name, e.g. vttranspose_h_s or drsi_net_s")
    export.add_argument("--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo")
    export.add_argument("--format", choices=("onnx",), default="onnx")
    export.add_argument("--out", required=True, help="output .onnx file")
    export.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    export.add_argument("--opset", type=int, default=18)
    export.add_argument("--decode", action="store_true", help="DRSI-Net: decode boxes/scores/keypoints in the graph")
    export.add_argument("--top-k", type=int, default=None, help="with --decode: keep the K best candidates per image")
    export.add_argument("--static-batch", action="store_true", help="fix the batch axis to 1")
    export.add_argument("--no-fuse", action="store_true", help="export without folding BatchNorm")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    export.set_defaults(func=_cmd_export)

    from .bench import add_bench_arguments

    bench = sub.add_parser("bench", help="benchmark suite: speed, memory and the papers' efficiency claims")
    add_bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``posezoo`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except PosezooError as err:
        print(f"posezoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
