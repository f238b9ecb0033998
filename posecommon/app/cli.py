"""The ``posezoo`` command line: ``models``, ``train``, ``evaluate``, ``predict``, ``export``, ``convert``, ``bench``.

``posezoo --version`` prints the version; every ``--help`` gives each option's default
(:mod:`posecommon.app.cli_help`), and ``posezoo train MODEL [flags] --help`` also prints the training recipe those
flags give, without training. ``predict`` and ``train`` without ``--out`` write into a new numbered folder,
``runs/predict/exp``, ``exp2``, ... (:mod:`posecommon.app.run_dirs`).

Every error posezoo raises on purpose (:class:`~posecommon.errors.PosezooError`, a missing optional dependency
included) ends the command with one line on stderr and exit status 2, never a traceback. Model names are checked
before anything is built (with "did you mean" suggestions), and each command checks its own arguments before it
imports torch or loads a model. ``posezoo models`` reads the model table from a cache (:mod:`posecommon.app.size_cache`)
and then imports neither torch nor the models.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import InvalidInputError, PosezooError, WeightsNotFoundError
from .checks import check_evaluate_args, check_predict_args, one_line
from .cli_help import DefaultsFormatter, TrainHelpAction, package_version
from .run_dirs import RUNS_ROOT, numbered_run_dir

if TYPE_CHECKING:
    from ..model import PoseModel
    from .train_run import TrainRunOptions


__all__ = ["build_parser", "main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from .model_table import format_size_table
    from .size_cache import cached_size_rows

    print(format_size_table(cached_size_rows(args.pattern)))
    print("\nMACs = FLOPs / 2 from torch.utils.flop_counter (attention matmuls included); Δ = ours vs paper.")
    return 0


def load_model(name: str | None, weights: str | None) -> PoseModel:
    """Build a model for the CLI.

    ``weights`` may be a ``save_pretrained`` directory (or a training run directory, whose ``final/`` is used) or
    ``hf-hub:`` repo, which also gives the model and its config, or a ``.safetensors`` file for model ``name``.
    Without weights the model has random weights (a warning is logged). ``name`` is checked against the registry
    first, so a misspelt name fails (with suggestions) before anything is built or downloaded.

    Raises:
        UnknownModelError: ``name`` is not registered.
        WeightsNotFoundError: the weights cannot be found, or do not hold model ``name``.
    """
    from ..model import PoseModel
    from ..registry import create_model, get_model_info

    if name is not None:
        get_model_info(name)
    if weights is not None:
        path = Path(weights)
        if path.is_dir() and not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
            path = path / "final"
        if weights.startswith("hf-hub:") or (path / "config.json").is_file():
            model = PoseModel.from_pretrained(str(path) if path.exists() else weights)
            if name is not None and model.model_name != name:
                raise WeightsNotFoundError(f"{weights} holds a {model.model_name} model, not {name}")
            return model
        if name is None and not path.exists():
            raise WeightsNotFoundError(f"weights not found: {weights} (no such file or directory)")
        if name is None:
            raise WeightsNotFoundError(f"{weights} is a weight file; pass --model to say which model it is for")
        return create_model(name, pretrained=str(path) if path.exists() else weights)
    if name is None:
        raise WeightsNotFoundError("pass --model NAME (and --weights FILE or DIR for trained weights)")
    logging.getLogger("posezoo").warning("no --weights given: %s has random weights", name)
    return create_model(name)


def train_options(args: argparse.Namespace) -> TrainRunOptions:
    """The :class:`~posecommon.app.train_run.TrainRunOptions` of ``posezoo train``'s flags (the run and
    ``posezoo train MODEL --help`` use this one translation)."""
    from .train_run import TrainRunOptions

    return TrainRunOptions(
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
        keep_best=args.keep_best,
        init_weights=args.init_weights,
        resume_anyway=args.resume_anyway,
        augmentation=dict(args.augment),
        backbone_weights=args.backbone_weights,
        grad_checkpointing=args.grad_checkpointing,
        channels_last=args.channels_last,
        compile=args.compile,
    )


def _check_train_args(args: argparse.Namespace) -> None:
    from .train_run import check_run_paths, check_train_options

    check_train_options(train_options(args))
    check_run_paths(args.data, args.out if args.out is not None else RUNS_ROOT / "train")


def _recipe_help(args: argparse.Namespace) -> str:
    from .train_run import recipe_help

    try:
        return recipe_help(args.model, train_options(args), args.data)
    except PosezooError as err:
        return f"(no recipe for {args.model}: {err})"


def _cmd_train(args: argparse.Namespace) -> int:
    from ..errors import TrainingInterrupted
    from .checks import stop_message
    from .train_run import run_training

    options = train_options(args)
    if args.out is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InvalidInputError("under torchrun, pass --out (each process would number a folder of its own)")
        args.out = str(numbered_run_dir("train"))
        print(f"writing to {args.out}, a new numbered folder (pass --out {args.out} to resume this run)")
    try:
        summary = run_training(
            args.model, args.data, args.out, options, args.train_split, args.val_split, report=print
        )
    except TrainingInterrupted as stop:
        if stop.rank == 0:  # under torchrun, rank 0 reports
            print(f"posezoo train: {stop_message(stop)}", file=sys.stderr)
        return 128 + stop.signal_number
    except KeyboardInterrupt:
        print("posezoo train: interrupted before training started (no step was run)", file=sys.stderr)
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


def _is_image_info_file(ann: str) -> bool:
    """Whether ``ann`` is a COCO image-info file (``images`` without ``annotations``); False when unreadable."""
    try:
        dataset = json.loads(Path(ann).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # the evaluation's own reader names the fault
        return False
    return isinstance(dataset, dict) and "images" in dataset and "annotations" not in dataset


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.runner import evaluate_model
    from ..registry import list_models

    ann, images = args.ann, args.images
    if args.run is not None and not Path(args.run).is_dir() and args.run in list_models():
        if args.model is not None and args.model != args.run:
            raise WeightsNotFoundError(f"two model names given: {args.run} and --model {args.model}")
        args.model, args.run = args.run, None
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
    if args.results and _is_image_info_file(ann):  # e.g. image_info_test-dev2017.json: results, no scores
        from ..evaluation.runner import predict_coco_results

        results = predict_coco_results(
            model, ann, images, detector=detector, detections=args.det_json, max_images=args.max_images
        )
        Path(args.results).write_text(json.dumps(results))
        print(f"{ann} has no annotations (an image-info file): {len(results)} results written to {args.results}")
        return 0
    stats, results = evaluate_model(
        model, ann, images, detector=detector, detections=args.det_json, max_images=args.max_images
    )
    print(_format_stats(stats))
    if args.results:
        Path(args.results).write_text(json.dumps(results))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict_run import (
        PredictOptions,
        build_kernel,
        check_output_dir,
        coco_image_ids,
        people_count,
        run_predictions,
    )

    # before any model is loaded: an explicit --out is checked, else a new numbered folder is made
    out = check_output_dir(args.out, exist_ok=args.exist_ok) if args.out else numbered_run_dir("predict")
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
    # predict runs a fused copy by default (posecommon.predict.inference); the loaded models stay as they are.
    model = load_model(args.model, args.weights)
    if args.detector is not None and model.preprocess.resize != "affine_crop":  # before the detector is loaded
        raise InvalidInputError(f"{model.model_name} finds people itself; --detector is for top-down models")
    detector = load_model(args.detector, args.detector_weights) if args.detector else None
    kernel = build_kernel(model, detector, options)
    report = None if args.quiet else print
    summary = run_predictions(kernel, args.sources, out, options, ann_file=args.ann, progress=False, report=report)
    videos = f", {summary.videos} video(s) ({summary.frames} frames)" if summary.videos else ""
    found = people_count(summary.people) + " found"
    models = ((args.model, args.weights), (args.detector, args.detector_weights))
    random = [name for name, weights in models if name and weights is None]
    if random:
        found += f" (weights are random: {', '.join(random)}; train with `posezoo train` or pass --weights)"
    count = summary.images + summary.frames
    speed = f", {summary.milliseconds / count:.0f} ms per image" if count else ""
    print(f"{found}{speed}")
    print(f"wrote {summary.images} annotated image(s){videos} and {summary.predictions.name} to {out}")
    if summary.failures:  # one line per failed input, and only those, on stderr
        for source, reason in summary.failures:
            print(f"posezoo predict: skipped {one_line(source)}: {one_line(reason)}", file=sys.stderr)
        print(f"{len(summary.failures)} input(s) failed (listed on stderr)")
        return 1
    return 0


def _check_export_args(args: argparse.Namespace) -> None:
    """The export options that can be checked without torch, before the model name and the onnx extra."""
    if args.input_size is not None and min(args.input_size) <= 0:
        raise InvalidInputError(f"--input-size H W must be positive, got {args.input_size[0]} {args.input_size[1]}")
    if args.top_k is not None and not args.decode:
        raise InvalidInputError("--top-k keeps the best decoded candidates: it needs --decode")
    if args.top_k is not None and args.top_k < 1:
        raise InvalidInputError(f"--top-k must be at least 1, got {args.top_k}")
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise InvalidInputError(f"--out must name an .onnx file, got {args.out}")
    if out.is_dir():
        raise InvalidInputError(f"--out {args.out} is a directory; name the .onnx file to write")
    existing = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InvalidInputError(f"cannot write {args.out}: {existing} is not a writable directory")


def _cmd_export(args: argparse.Namespace) -> int:
    from ..extras import require_extra

    modules = ("onnx", "onnxscript") if args.no_check else ("onnx", "onnxscript", "onnxruntime")
    require_extra("onnx", modules, "ONNX export")
    from ..export import check_onnx, export_onnx

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
    batch_sizes = (1,) if args.static_batch else (1, 3)
    report = check_onnx(path, model, include_decode=args.decode, top_k=args.top_k, batch_sizes=batch_sizes)
    worst = max(report.max_abs_diff.values())
    verdict = "agrees with" if report.ok else "DIFFERS from"
    print(
        f"onnxruntime {verdict} PyTorch at batch sizes {', '.join(map(str, batch_sizes))} "
        f"(max abs diff {worst:.2e}, atol {report.atol}, rtol {report.rtol})"
    )
    return 0 if report.ok else 1


def _cmd_convert(args: argparse.Namespace) -> int:
    """``posezoo convert NAME FILE --out DIR``: a converter a model family registered
    (:func:`~posecommon.registry.get_converter`)."""
    from ..registry import get_converter

    converter = get_converter(args.converter)
    overrides = dict(args.config)
    if args.input_size:
        overrides["input_size"] = tuple(args.input_size)
    _, report = converter.convert(args.source, args.out, args.model, **overrides)
    print(f"wrote {args.out}: {report.summary()}")
    for line in report.details():
        print(f"  {line}")
    return 0


def _add_convert_parser(sub: Any) -> None:
    convert = sub.add_parser(
        "convert",
        help="convert an official checkpoint into a posezoo model directory (safetensors + config + model card)",
        description="Converters: yolo-pose (official YOLO-Pose last.pt, read as data: nothing in it is imported or "
        "called) and transpose (official TransPose-H-S .pth). The output records the source file's sha256.",
    )
    convert.add_argument("converter", help="registered converter: yolo-pose or transpose")
    convert.add_argument("source", help="the official checkpoint file")
    convert.add_argument("--out", required=True, help="directory to write (config.json, model.safetensors, README.md)")
    convert.add_argument("--model", default=None, help="registry name to convert into (default: what the file is)")
    convert.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="input size the weights were trained at",
    )
    convert.add_argument(
        "--config",
        type=_json_key_value,
        nargs="*",
        default=[],
        metavar="FIELD=JSON",
        help="config overrides of the posezoo model, e.g. width_multiple=0.5 (checked against its config)",
    )
    convert.set_defaults(func=_cmd_convert)


def _json_key_value(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.suite import run_from_args

    return run_from_args(args)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class _LazyArgumentParser(_Parser):
    """A sub-command parser whose arguments are added on first use (so their module is imported only then)."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_populated(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._ensure_populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()


def _add_train_arguments(train: argparse.ArgumentParser) -> None:
    from ..train.optim import OPTIMIZERS  # the train modules import torch: only when `posezoo train` runs
    from ..train.precision import AMP_MODES

    train.add_argument(
        "-h", "--help", action=TrainHelpAction, describe=_recipe_help, help="show this help, and MODEL's recipe"
    )
    train.add_argument("model", help="registry name, e.g. vttranspose_h_s or drsi_net_s")
    train.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (generated), a COCO-format root, or a YOLO-format root (yolo:DIR, or DIR with images/ and "
        "labels/)",
    )
    train.add_argument(
        "--out",
        default=None,
        help="run directory; re-running with the same --out resumes (default: a new runs/train/exp, exp2, ...)",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default: the recipe's)")
    length.add_argument(
        "--steps", type=int, default=None, help="batches instead of epochs: a short run (per-step cosine by default)"
    )
    train.add_argument("--batch-size", type=int, default=None, help="samples per batch, all processes (the recipe's)")
    train.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="model input (default: the model's)"
    )
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
    train.add_argument(
        "--amp", choices=AMP_MODES, default=None, help="mixed precision (default: the recipe's; auto = fp16 on CUDA)"
    )
    train.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="final/ = the weights of the best validation AP (default: the recipe's, on COCO-format data)",
    )
    train.add_argument(
        "--init-weights",
        default=None,
        metavar="FILE",
        help="start from these weights, loading what matches by name and shape (safetensors or save_pretrained dir)",
    )
    train.add_argument(
        "--grad-checkpointing", action="store_true", help="recompute activations in backward: less memory, slower"
    )
    train.add_argument("--channels-last", action="store_true", help="channels-last weights and activations")
    train.add_argument("--compile", action="store_true", help="train through torch.compile of the model")
    train.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: from the CPUs this process may use)"
    )
    train.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: at the end)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="write a checkpoint every N steps")
    train.add_argument(
        "--resume-anyway", action="store_true", help="resume --out even if its saved settings differ from these"
    )
    train.add_argument("--eval-before", action="store_true", help="also evaluate the untrained model")
    train.add_argument("--max-eval-images", type=int, default=None, help="evaluate on at most N images (default: all)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights, data, order and augmentation")
    train.add_argument("--train-split", default="train2017", help="COCO-format training split name")
    train.add_argument("--val-split", default="val2017", help="COCO-format validation split name")
    train.add_argument("--synthetic-train", type=int, default=400, help="synthetic training images")
    train.add_argument("--synthetic-val", type=int, default=50, help="synthetic validation images")
    train.add_argument(
        "--synthetic-image-size", type=int, nargs=2, metavar=("H", "W"), default=(256, 256), help="synthetic image size"
    )
    train.add_argument(
        "--augment",
        type=_key_value,
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="override the recipe's augmentation, e.g. rotation=15 half_body=0 (default: the recipe's)",
    )
    train.add_argument(
        "--backbone-weights",
        default=None,
        metavar="imagenet|kaiming|none|PATH",
        help="backbone initialisation of the VTTransPose family: ImageNet weights, He-normal from scratch, the "
        "official N(0, 0.001), or a safetensors file (default: imagenet on COCO data, kaiming on synthetic)",
    )


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from .bench.suite import add_bench_arguments  # imports torch: only when `posezoo bench` runs

    add_bench_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``posezoo`` (one sub-command per job)."""
    parser = _Parser(
        prog="posezoo", description="VTTransPose and DRSI-Net human pose models.", formatter_class=DefaultsFormatter
    )
    parser.add_argument("--version", action="version", version=f"posezoo {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_LazyArgumentParser)

    models = sub.add_parser("models", help="list registered models with params and MACs beside the paper's figures")
    models.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'drsi_*'")
    models.set_defaults(func=_cmd_models)

    train = sub.add_parser(
        "train",
        help="train a model on synthetic or COCO-format data, evaluate, predict",
        description="Train with the model's published recipe (printed at the start and saved as recipe.json); "
        "flags override single values. Re-running with the same --out resumes from the newest checkpoint. "
        "`posezoo train MODEL [flags] --help` prints the recipe those flags give, without training.",
        populate=_add_train_arguments,
        add_help=False,
    )
    train.set_defaults(func=_cmd_train, check=_check_train_args)

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
    evaluate.add_argument("--detector-weights", default=None, help="the detector's weights (default: random)")
    evaluate.add_argument(
        "--max-images", type=_positive_int, default=None, help="evaluate on at most N images (default: all)"
    )
    evaluate.add_argument(
        "--results",
        default=None,
        help="also write the COCO results JSON here (the only output for an image-info file such as test-dev's)",
    )
    evaluate.set_defaults(func=_cmd_evaluate, check=check_evaluate_args)

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
    predict.add_argument(
        "--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo (default: random)"
    )
    predict.add_argument("--detector", default=None, help="person detector (DRSI-Net) for a top-down model")
    predict.add_argument("--detector-weights", default=None, help="the detector's weights (default: random)")
    predict.add_argument(
        "--out",
        default=None,
        help="output directory, new or empty unless --exist-ok (default: a new runs/predict/exp, exp2, ...)",
    )
    predict.add_argument(
        "--exist-ok", action="store_true", help="write into a non-empty --out (same names overwritten, others kept)"
    )
    predict.add_argument(
        "--ann", default=None, help="COCO annotation file whose image ids predictions.json uses (default: file names)"
    )
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: where the model is)")
    predict.add_argument("--half", action="store_true", help="float16 on CUDA, bfloat16 on CPU (autocast)")
    predict.add_argument("--batch-size", type=_positive_int, default=1, help="images per forward pass")
    predict.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="model input (default: the model's)"
    )
    predict.add_argument(
        "--detector-input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="detector letterbox size (default: the detector's)",
    )
    predict.add_argument("--no-flip", action="store_true", help="top-down: skip the flip test (2x faster)")
    predict.add_argument("--score-threshold", type=float, default=0.25, help="minimum detection score")
    predict.add_argument("--iou-threshold", type=float, default=0.45, help="detection NMS IoU")
    predict.add_argument(
        "--max-people", type=_positive_int, default=None, help="detections kept per image (default: the model's)"
    )
    predict.add_argument("--keypoint-threshold", type=float, default=0.3, help="draw keypoints above this")
    predict.add_argument(
        "-q", "--quiet", action="store_true", help="no line per image (people found and time), only the summary"
    )
    predict.set_defaults(func=_cmd_predict, check=check_predict_args)

    export = sub.add_parser("export", help="export a model to ONNX and check it against PyTorch with onnxruntime")
    export.add_argument("model", help="registry name, e.g. vttranspose_h_s or drsi_net_s")
    export.add_argument("--weights", default=None, help="safetensors file, save_pretrained dir or hf-hub:org/repo")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="export format")
    export.add_argument("--out", required=True, help="output .onnx file (required)")
    export.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), default=None, help="input size (default: the model's)"
    )
    export.add_argument("--opset", type=int, default=18, help="ONNX opset")
    export.add_argument("--decode", action="store_true", help="DRSI-Net: decode boxes/scores/keypoints in the graph")
    export.add_argument(
        "--top-k", type=int, default=None, help="with --decode: keep the K best candidates per image (default: all)"
    )
    export.add_argument("--static-batch", action="store_true", help="fix the batch axis to 1")
    export.add_argument("--no-fuse", action="store_true", help="export without folding BatchNorm")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    export.set_defaults(func=_cmd_export, check=_check_export_args)

    _add_convert_parser(sub)

    bench = sub.add_parser(
        "bench", help="benchmark suite: speed, memory and the papers' efficiency claims", populate=_add_bench_arguments
    )
    bench.set_defaults(func=_cmd_bench)
    return parser


def _check_model_names(args: argparse.Namespace) -> None:
    """Look up every model name the command was given before it starts (unknown names suggest close ones)."""
    names = [getattr(args, attr, None) for attr in ("model", "detector")]
    if any(names):
        from ..registry import get_model_info

        for name in filter(None, names):
            get_model_info(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``posezoo`` console script; returns the exit status.

    Order: the arguments are parsed (an argument error is one line and status 2), then the command's own argument
    checks (its ``check`` default: sizes, thresholds, counts, devices, paths; nothing is loaded or generated yet),
    then the model names (``--model``, ``--detector``), then the command. Errors raised on purpose by posezoo
    (:class:`~posecommon.errors.PosezooError`) and operating-system errors (a full disk, a read-only directory)
    print one line, ``posezoo COMMAND: error: MESSAGE``, and return 2.
    """
    try:
        args, unknown = build_parser().parse_known_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or an argument error (2, one line already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    if unknown:
        command = f"posezoo {args.command}"
        print(f"{command}: error: unrecognized arguments: {' '.join(unknown)} (see {command} --help)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        check = getattr(args, "check", None)
        if check is not None:  # a command's own argument checks, before any model or data
            check(args)
        if args.command != "models":
            _check_model_names(args)
        return args.func(args)
    except PosezooError as err:
        print(f"posezoo {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine's fault, not posezoo's: a full disk, a read-only or vanished directory
        print(f"posezoo {args.command}: error: {one_line(_os_error(err))}", file=sys.stderr)
        return 2


def _os_error(err: OSError) -> str:
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}" if err.strerror else str(err)


if __name__ == "__main__":
    sys.exit(main())
