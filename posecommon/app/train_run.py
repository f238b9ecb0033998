"""One training run from the command line: data (synthetic or COCO-format) -> train -> evaluate -> predictions.

Used by ``posezoo train``; the README's main job is such a run on the synthetic default.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image

from ..config import MAX_INPUT_SIDE, check_at_least, check_device, check_rate, check_size
from ..data.synthetic import generate_synthetic_splits
from ..data.yolo_format import find_yolo_root, prepare_yolo_splits
from ..errors import DatasetError, InvalidInputError, RunMismatchError, TrainingInterrupted, WeightsNotFoundError
from ..evaluation.coco import results_to_coco
from ..evaluation.runner import evaluate_model
from ..hub.intersect import init_weights_file, load_intersecting
from ..media.image import load_image
from ..model import PoseModel
from ..registry import create_model
from ..train.checkpoint import CheckpointStore
from ..train.config import TrainConfig
from ..train.durable import atomic_write_bytes
from ..train.interrupt import Abandoned, StopRequest
from ..train.loader import default_num_workers
from ..train.metrics_log import MetricsLog
from ..train.optim import OPTIMIZERS
from ..train.precision import AMP_MODES
from ..train.recipe import TrainRecipe
from ..train.run_identity import describe_model, diff_runs
from ..train.run_lock import RunLock
from ..train.trainer import Trainer
from ..visualize import draw_pose

__all__ = [
    "SYNTHETIC_STAMP",
    "CocoSplits",
    "TrainRunOptions",
    "backbone_choice",
    "check_run_paths",
    "check_train_options",
    "describe_plan",
    "effective_recipe",
    "find_coco_splits",
    "recipe_help",
    "run_training",
    "train_config_from_recipe",
    "write_predictions",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoSplits:
    """Annotation files and image directories of a train and a validation split."""

    train_ann: Path
    train_images: Path
    val_ann: Path
    val_images: Path


def find_coco_splits(root: str | Path, train_split: str = "train2017", val_split: str = "val2017") -> CocoSplits:
    """Locate ``annotations/person_keypoints_<split>.json`` and ``<split>/`` for both splits under ``root``.

    Raises:
        DatasetError: a file or directory is missing (the message lists what was looked for).
    """
    root = Path(root)
    paths = []
    for split in (train_split, val_split):
        ann, images = root / "annotations" / f"person_keypoints_{split}.json", root / split
        missing = [str(p) for p in (ann, images) if not p.exists()]
        if missing:
            raise DatasetError(
                f"COCO-format data under {root} is incomplete: missing {missing}. Expected the COCO layout "
                "annotations/person_keypoints_<split>.json and <split>/ image folders (pass --train-split/--val-split)."
            )
        paths += [ann, images]
    return CocoSplits(*paths)


@dataclass(frozen=True)
class TrainRunOptions:
    """Options of :func:`run_training` (the ``posezoo train`` flags). None means: the model's recipe decides.

    Args:
        epochs: Passes over the training data (None: the recipe's, unless ``steps`` is given).
        steps: Batches of the run instead of ``epochs``; a short run: unless ``schedule`` says otherwise, it uses
            the per-step cosine schedule with ``warmup_steps`` of linear warm-up and no gradient accumulation.
        batch_size: Samples per batch over all processes (None: the recipe's).
        input_size: Model input ``(H, W)``; None keeps the model's default.
        lr: Peak learning rate (None: the recipe's).
        lr_final: Final learning rate (None: the recipe's).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"`` (None: the recipe's; its momentum stays: SGD momentum or
            Adam's beta1).
        schedule: ``"recipe"`` (the recipe's schedule, warm-up and gradient accumulation) or ``"cosine"`` (per
            step); None: ``"cosine"`` when ``steps`` is given, else ``"recipe"``.
        warmup_steps: Warm-up steps (None: the recipe's with ``schedule="recipe"``, 0 with ``"cosine"``).
        nominal_batch_size: Accumulate gradients to this many samples per optimiser step, 0 for none (None: the
            recipe's with ``schedule="recipe"``, none with ``"cosine"``).
        grad_clip: Maximum gradient norm (None: the recipe's).
        num_workers: DataLoader workers per process (None: :func:`~posecommon.train.default_num_workers`).
        eval_every: Evaluate on the validation split every this many steps (0: at the end only).
        checkpoint_every: Write a checkpoint every this many steps (and at the end); an interrupted or killed run
            resumes from the newest one when run again with the same ``out_dir``.
        eval_before: Also evaluate before training (to show that the model learns).
        max_eval_images: Evaluate on at most this many validation images.
        num_predictions: Annotated validation images to write at the end.
        device: ``"cpu"``, ``"cuda"``, ... (None: CUDA when available).
        seed: Seed of the initial weights, data generation, order and augmentation.
        synthetic_train: Synthetic training images (``--data synthetic``).
        synthetic_val: Synthetic validation images.
        synthetic_image_size: ``(H, W)`` of synthetic images.
        amp: Mixed precision, ``"auto"``, ``"fp16"``, ``"bf16"`` or ``"none"`` (:mod:`posecommon.train.precision`);
            None: the recipe's (``"auto"`` for DRSI-Net / YOLO-Pose, ``"none"`` for the top-down models, as the
            official code trained).
        keep_best: Export the weights of the evaluation with the best AP as ``final/`` (None: the recipe's
            ``keep_best`` on COCO-format data, off on synthetic data).
        init_weights: Initialise the model from this checkpoint before training, as YOLO-Pose's ``--weights``: the
            tensors whose name and shape match are loaded, the rest keep their fresh initialisation
            (:func:`~posecommon.hub.load_intersecting`); a safetensors file, a ``save_pretrained`` directory (e.g.
            written by ``posezoo convert``) or a training run directory.
        resume_anyway: Resume a run directory even when its saved settings differ from these.
        augmentation: Overrides of the recipe's augmentation (keyword arguments of the model's
            ``training_dataset``: the fields of :class:`~posecommon.data.TopDownAugmentation` for top-down; ``mosaic``,
            ``translate``, ``flip``, ``hsv_h``, ... for multi-person).
        grad_checkpointing: Gradient checkpointing (``model.set_grad_checkpointing``): less activation memory for
            about one more forward pass per step.
        channels_last: Train with channels-last weights and activations.
        compile: Train through ``torch.compile`` of the model.
        backbone_weights: Backbone initialisation of models that have one (``model.init_backbone``, the
            VTTransPose family): ``"imagenet"``, ``"kaiming"``, ``"none"`` or a safetensors path; ``None`` picks
            :func:`backbone_choice`'s default.
        recipe: Replaces the model's :attr:`~posecommon.PoseModel.train_recipe`.
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    input_size: tuple[int, int] | None = None
    lr: float | None = None
    lr_final: float | None = None
    optimizer: str | None = None
    schedule: str | None = None
    warmup_steps: int | None = None
    nominal_batch_size: int | None = None
    grad_clip: float | None = None
    num_workers: int | None = None
    eval_every: int = 0
    checkpoint_every: int = 100
    eval_before: bool = False
    max_eval_images: int | None = None
    num_predictions: int = 4
    device: str | None = None
    seed: int = 0
    synthetic_train: int = 400
    synthetic_val: int = 50
    synthetic_image_size: tuple[int, int] = (256, 256)
    amp: str | None = None
    keep_best: bool | None = None
    init_weights: str | None = None
    resume_anyway: bool = False
    augmentation: dict[str, Any] = field(default_factory=dict)
    recipe: TrainRecipe | None = None
    backbone_weights: str | None = None
    grad_checkpointing: bool = False
    channels_last: bool = False
    compile: bool = False


def backbone_choice(model: PoseModel, data: str | Path, requested: str | None) -> str:
    """The backbone initialisation a run uses: ``requested``, else ``"imagenet"`` on COCO-format data (the
    official TransPose recipe, ``MODEL.PRETRAINED`` in the TP-H-S yaml) and ``"kaiming"`` on synthetic data (which
    stays offline, so it starts the backbone as HRNet's own from-scratch training does:
    ``vttranspose.scratch_init``), for models with an ``init_backbone`` method; ``"none"`` for the others.

    Raises:
        InvalidInputError: a backbone initialisation is requested for a model that has none.
    """
    supported = callable(getattr(model, "init_backbone", None))
    if requested is not None and requested != "none" and not supported:
        raise InvalidInputError(
            f"{type(model).__name__} has no backbone initialisation; drop --backbone-weights (or pass 'none')"
        )
    if requested is not None:
        return requested
    if not supported:
        return "none"
    return "kaiming" if str(data) == "synthetic" else "imagenet"


def effective_recipe(
    recipe: TrainRecipe, options: TrainRunOptions, data: str | Path | None = None, backbone: str | None = None
) -> TrainRecipe:
    """``recipe`` with the values ``options`` set (their sources become ``"command line"``).

    With ``backbone`` (the run's :func:`backbone_choice`), ``initialisation`` says how this run starts where the
    recipe's words (how the official run started) would not: e.g. from scratch on synthetic data, or without the
    ``--init-weights`` a YOLO-Pose recipe names.

    ``keep_best`` stays off on ``data="synthetic"`` unless ``options.keep_best`` asks for it: a synthetic run is a
    demonstration whose ``final/`` is its last step (the recipes' ``keep_best`` is for COCO-format data).
    """
    changes: dict[str, Any] = {
        name: getattr(options, name)
        for name in ("epochs", "steps", "batch_size", "lr", "lr_final", "optimizer", "grad_clip", "amp", "keep_best")
        if getattr(options, name) is not None
    }
    schedule = options.schedule or ("cosine" if options.steps is not None else "recipe")
    if schedule not in ("recipe", "cosine"):
        raise InvalidInputError(f"unknown schedule {schedule!r}; choose 'recipe' or 'cosine'")
    if schedule == "cosine":
        changes |= {"schedule": "cosine", "nominal_batch_size": None, "warmup_epochs": 0.0, "warmup_min_steps": 0}
    if options.warmup_steps is not None:
        changes |= {"warmup_epochs": 0.0, "warmup_min_steps": options.warmup_steps}
    if options.nominal_batch_size is not None:
        changes["nominal_batch_size"] = options.nominal_batch_size or None
    if options.augmentation:
        changes["augmentation"] = tuple({**recipe.augmentation_kwargs(), **options.augmentation}.items())
    sources = dict(recipe.sources) | dict.fromkeys(changes, "command line")
    if options.keep_best is None and str(data) == "synthetic" and recipe.keep_best:
        changes["keep_best"] = False
        sources["keep_best"] = "off on synthetic data (--keep-best turns it on)"
    initialisation = None if backbone is None else _run_initialisation(recipe, options, backbone)
    if initialisation is not None:
        changes["initialisation"] = initialisation
        if options.backbone_weights is not None or options.init_weights is not None:
            sources["initialisation"] = "command line"
    return recipe.replace(**changes, sources=tuple(sources.items()))


def _run_initialisation(recipe: TrainRecipe, options: TrainRunOptions, backbone: str) -> str | None:
    """How a run with ``backbone`` (:func:`backbone_choice`) and ``options.init_weights`` starts, followed by the
    recipe's words, where the recipe's words alone would not say it; None where they do."""
    start = {
        "none": "from scratch",
        "kaiming": "from scratch, He-normal backbone (--backbone-weights kaiming)",
        "imagenet": "ImageNet backbone weights",
    }.get(backbone, f"backbone weights from {backbone}")
    if options.init_weights is not None:
        start += f", then the tensors of {options.init_weights} whose name and shape match (--init-weights)"
        return f"{start}; the recipe's: {recipe.initialisation}"
    both_from_scratch = backbone == "none" and recipe.initialisation.startswith("from scratch")
    both_imagenet = backbone == "imagenet" and "ImageNet" in recipe.initialisation
    return None if both_from_scratch or both_imagenet else f"{start}; the recipe's: {recipe.initialisation}"


def train_config_from_recipe(
    recipe: TrainRecipe, options: TrainRunOptions, steps_per_epoch: int, num_workers: int
) -> TrainConfig:
    """The :class:`TrainConfig` of a run under ``recipe`` (as :func:`effective_recipe` made it from ``options``):
    ``recipe.steps`` batches, else ``recipe.epochs`` epochs; the run options (evaluation, checkpoints, precision,
    seed) come from ``options``."""
    return TrainConfig(
        total_steps=recipe.total_steps(steps_per_epoch),
        batch_size=recipe.batch_size,
        optimizer=recipe.optimizer,
        lr=recipe.lr,
        lr_final=recipe.lr_final,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        schedule=recipe.schedule,
        warmup_steps=recipe.warmup_steps(steps_per_epoch),
        nominal_batch_size=recipe.nominal_batch_size,
        warmup_bias_lr=recipe.warmup_bias_lr,
        warmup_momentum=recipe.warmup_momentum,
        grad_clip=recipe.grad_clip,
        amp=recipe.amp,
        ema_decay=recipe.ema_decay,
        ema_ramp=recipe.ema_ramp,
        eval_every=options.eval_every,
        checkpoint_every=options.checkpoint_every,
        keep_best=recipe.keep_best,
        num_workers=num_workers,
        seed=options.seed,
        grad_checkpointing=options.grad_checkpointing,
        channels_last=options.channels_last,
        compile=options.compile,
    )


def _build_model(model_name: str, options: TrainRunOptions) -> PoseModel:
    """The model a run trains: ``model_name`` at ``options.input_size``, random weights."""
    overrides = {"input_size": tuple(options.input_size)} if options.input_size else {}
    model = create_model(model_name, **overrides)
    if not isinstance(model, PoseModel):
        raise TypeError(f"{model_name} is not a posezoo PoseModel")
    return model


def _base_recipe(model_name: str, model: PoseModel, options: TrainRunOptions) -> TrainRecipe:
    base_recipe = options.recipe or model.train_recipe
    if base_recipe is None:
        raise InvalidInputError(f"{model_name} declares no train_recipe; pass TrainRunOptions(recipe=...)")
    return base_recipe


def recipe_help(model_name: str, options: TrainRunOptions, data: str | Path = "synthetic") -> str:
    """The recipe a run of ``model_name`` with ``options`` on ``data`` uses, formatted as the run prints it, without
    reading data or training (``posezoo train MODEL [flags] --help``).

    The text is :func:`effective_recipe`'s recipe, the object the run turns into its
    :class:`~posecommon.train.TrainConfig` (:func:`train_config_from_recipe`), followed by the run's length as far
    as it is known without the data (the steps per epoch come from the dataset and are printed when a run starts).
    """
    model = _build_model(model_name, options)
    backbone = backbone_choice(model, data, options.backbone_weights)
    recipe = effective_recipe(_base_recipe(model_name, model, options), options, data, backbone)
    if recipe.steps is not None:
        length = f"run: {recipe.steps} steps of batch {recipe.batch_size}"
    else:
        length = f"run: {recipe.epochs} epochs of batch {recipe.batch_size}"
    return (
        f"training recipe of {model_name} with these flags (what `posezoo train {model_name}` runs):\n"
        + recipe.format()
        + f"\n{length}; steps per epoch (and a warm-up given in epochs) follow from the data and are printed when "
        "the run starts"
    )


def describe_plan(config: TrainConfig, steps_per_epoch: int) -> str:
    """One line saying how long the run is and how it steps the optimiser (printed after the recipe)."""
    accumulate = max(round(config.nominal_batch_size / config.batch_size), 1) if config.nominal_batch_size else 1
    return (
        f"run: {config.total_steps} steps of batch {config.batch_size} ({config.total_steps / steps_per_epoch:.4g} "
        f"epochs of {steps_per_epoch} steps), schedule {config.schedule}, warm-up {config.warmup_steps} steps, "
        f"{accumulate} batch(es) per optimiser step, amp {config.amp}, checkpoint every {config.checkpoint_every} "
        f"steps{', final/ = best AP' if config.keep_best else ''}, {config.num_workers} data worker(s)"
        + "".join(
            f", {flag}"
            for flag, on in (
                ("gradient checkpointing", config.grad_checkpointing),
                ("channels-last", config.channels_last),
                ("torch.compile", config.compile),
            )
            if on
        )
    )


def _init_distributed(device: str | None) -> int:
    """Initialise the process group when launched by ``torchrun`` with several processes; return this rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank()


SYNTHETIC_STAMP = "posezoo-synthetic.json"
"""Written into the synthetic data folder after generation: the settings it was generated with."""


def _prepare_synthetic(root: Path, options: TrainRunOptions) -> None:
    """Generate the synthetic splits under ``root``, unless the files there were generated with these settings.

    The settings are written last (:data:`SYNTHETIC_STAMP`), so data whose generation was interrupted is generated
    again; a resumed run does not rewrite its data.
    """
    wanted = {
        "train": options.synthetic_train,
        "val": options.synthetic_val,
        "image_size": list(options.synthetic_image_size),
        "seed": options.seed,
    }
    stamp = root / SYNTHETIC_STAMP
    annotations = [root / "annotations" / f"person_keypoints_{split}.json" for split in ("train", "val")]
    try:
        if json.loads(stamp.read_text()) == wanted and all(path.is_file() for path in annotations):
            return
    except (OSError, ValueError, RecursionError):
        pass
    stamp.unlink(missing_ok=True)
    generate_synthetic_splits(
        root,
        options.synthetic_train,
        options.synthetic_val,
        seed=options.seed,
        image_size=options.synthetic_image_size,
        progress=True,
    )
    stamp.write_text(json.dumps(wanted))


def write_predictions(model: PoseModel, ann_file: Path, image_dir: Path, out_dir: Path, count: int) -> list[Path]:
    """Predict on the first ``count`` images of a COCO-format split; write ``<stem>.png`` (drawn) and ``<stem>.json``
    (COCO results with their boxes, as ``posezoo predict``).

    Top-down models are given the ground-truth person boxes; single-stage models detect on the whole image.
    """
    from ..data.coco import load_coco_keypoints

    data = load_coco_keypoints(ann_file, image_dir, model.keypoint_spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for record in data.images[:count]:
        pixels = load_image(record.path)
        if model.preprocess.resize == "affine_crop":
            persons = data.persons.get(record.image_id, [])
            boxes = torch.tensor([p.bbox_xyxy for p in persons], dtype=torch.float32).view(-1, 4)
            result = model.predict(pixels, boxes)
        else:
            result = model.predict(pixels)
        image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        stem = Path(record.file_name).stem
        draw_pose(image, result.to("cpu"), model.keypoint_spec).save(out_dir / f"{stem}.png")
        (out_dir / f"{stem}.json").write_text(json.dumps(results_to_coco(result.to("cpu"), record.image_id, bbox=True)))
        written.append(out_dir / f"{stem}.png")
    return written


def check_train_options(options: TrainRunOptions) -> None:
    """Check the options that need neither a model nor data (``posezoo train`` runs this before anything else).

    Raises:
        InvalidInputError: a count, size, rate or device is out of range; the message names the flag.
    """
    at_least = {
        "--epochs": (options.epochs, 1),
        "--steps": (options.steps, 1),
        "--batch-size": (options.batch_size, 1),
        "--max-eval-images": (options.max_eval_images, 1),
        "--synthetic-train": (options.synthetic_train, 1),
        "--synthetic-val": (options.synthetic_val, 1),
        "--warmup-steps": (options.warmup_steps, 0),
        "--nominal-batch-size": (options.nominal_batch_size, 0),
        "--eval-every": (options.eval_every, 0),
        "--checkpoint-every": (options.checkpoint_every, 0),
        "--workers": (options.num_workers, 0),
        "--seed": (options.seed, 0),
        "num_predictions": (options.num_predictions, 0),
    }
    for flag, (value, low) in at_least.items():
        check_at_least(flag, value, low)
    for flag, value, low in (("--lr", options.lr, None), ("--lr-final", options.lr_final, 0.0)):
        check_rate(flag, value, low)
    if options.grad_clip is not None:
        check_rate("--grad-clip", options.grad_clip, None)
    check_size("--synthetic-image-size", options.synthetic_image_size, 16, MAX_INPUT_SIDE)
    if options.input_size is not None:
        check_size("--input-size", options.input_size, 1, MAX_INPUT_SIDE)
    for name, value in options.augmentation.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"--augment {name}={value}: expected a finite number")
    if options.amp is not None and options.amp not in AMP_MODES:
        raise InvalidInputError(f"unknown amp mode {options.amp!r}; choose one of {', '.join(AMP_MODES)}")
    if options.optimizer is not None and options.optimizer not in OPTIMIZERS:
        raise InvalidInputError(f"unknown optimizer {options.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if options.schedule not in (None, "recipe", "cosine"):
        raise InvalidInputError(f"unknown schedule {options.schedule!r}; choose 'recipe' or 'cosine'")
    named = (None, "imagenet", "kaiming", "none")
    if options.backbone_weights not in named and not Path(options.backbone_weights).is_file():
        raise WeightsNotFoundError(f"--backbone-weights {options.backbone_weights}: no such file")
    if options.init_weights is not None:
        init_weights_file(options.init_weights)
    check_device(options.device)


def check_run_paths(data: str | Path, out_dir: str | Path) -> None:
    """Check the data location and the run directory before anything is generated or loaded.

    Raises:
        InvalidInputError: ``out_dir`` is a file or cannot be created or written.
        DatasetError: ``data`` is neither ``"synthetic"`` nor an existing directory.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file; pass a directory (new, or a run directory to resume)")
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write the run directory {out}: {existing} is not a writable directory")
    if str(data) == "synthetic":
        return
    root = Path(str(data).removeprefix("yolo:"))
    if not root.is_dir():
        raise DatasetError(f"--data {data}: no such directory (pass 'synthetic', a COCO-format root or a YOLO root)")


_RUN_KEYS = ("model", "model_layout", "data", "splits", "synthetic", "augmentation")
"""The parts of a run's description known before its data is generated (compared first, with the seed, which the
synthetic data depends on; see run_training)."""


def _check_saved_run(out_dir: Path, current: dict[str, Any], resume_anyway: bool) -> None:
    """Refuse a run directory saved with another model, data or augmentation before any file is written."""
    found = CheckpointStore(out_dir / "checkpoints").newest_description()
    if found is None:
        return
    saved, where, _ = found
    saved_train = saved.get("train") if isinstance(saved.get("train"), dict) else {}
    saved_part = {**{key: saved.get(key) for key in _RUN_KEYS}, "train": {"seed": saved_train.get("seed")}}
    current_part = {key: current.get(key) for key in (*_RUN_KEYS, "train")}
    if saved_part["model"] != current_part["model"] or saved_part["model_layout"] != current_part["model_layout"]:
        config_changes = diff_runs(
            {"model_config": saved.get("model_config")}, {"model_config": current.get("model_config")}
        )
        what = (
            f"another model ({saved_part['model']!r}, this run trains {current_part['model']!r})"
            if saved_part["model"] != current_part["model"]
            else f"a {current_part['model']} of another shape ({'; '.join(config_changes) or 'other parameter shapes'})"
        )
        raise RunMismatchError(
            f"{out_dir} holds a run of {what} in checkpoint {where.name}. Use another --out.",
            diff_runs(saved_part, current_part),
        )
    differences = diff_runs(saved_part, current_part)
    if differences and not resume_anyway:
        listed = "; ".join(differences)
        raise RunMismatchError(
            f"{out_dir} holds a run with other settings (checkpoint {where.name}, saved -> now): {listed}. Run again "
            "with the saved settings to resume it, pass --resume-anyway to continue it with the new ones, or use "
            "another --out.",
            differences,
        )


def run_training(
    model_name: str,
    data: str | Path,
    out_dir: str | Path,
    options: TrainRunOptions,
    train_split: str = "train2017",
    val_split: str = "val2017",
    report: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Train ``model_name`` on ``data`` (``"synthetic"``, a COCO-format root or a YOLO-format root), evaluate, predict.

    A YOLO-format root (``"yolo:DIR"``, or a DIR with ``images/`` and ``labels/``, see
    :mod:`posecommon.data.yolo_format`) is converted to COCO files under ``out_dir/data`` first.

    The model's :class:`~posecommon.train.TrainRecipe` with the values ``options`` override is given to ``report``
    (``posezoo train`` prints it) and saved as ``recipe.json``. Writes under ``out_dir``: ``data/`` (synthetic
    only, generated once per setting), ``recipe.json``, ``train_config.json``, ``checkpoints/``, ``metrics.jsonl``,
    ``final/`` (``save_pretrained``; with ``keep_best`` the weights of the best evaluation), ``predictions/`` (made
    with the ``final/`` weights) and ``summary.json`` (every evaluation of the run, read from ``metrics.jsonl``).
    Re-running with the same ``out_dir`` resumes from the newest checkpoint.

    Order, so that a refused run changes nothing on disk: the options are checked, the run directory is locked
    (:class:`~posecommon.train.run_lock.RunLock`, held until the summary is written), the model is built, the
    saved run's model, data and augmentation are compared with this one's (unless ``options.resume_anyway``),
    the data is prepared, the trainer compares the full settings, and only then is anything of the run written.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on CUDA, gloo on CPU), each
    process trains on its share of every global batch, and rank 0 alone locks, generates data, evaluates and
    writes files.

    Returns:
        The summary: model, steps, COCO numbers before (if asked) and after training, every evaluation, paths
        (an empty dict on ranks other than 0).

    Raises:
        InvalidInputError, DatasetError, ConfigError: a bad option, data location or model setting.
        RunInUseError: another process is using ``out_dir``.
        RunMismatchError: ``out_dir`` holds a run with other settings (and not ``options.resume_anyway``).
        TrainingInterrupted: Ctrl-C or SIGTERM; what was done is saved and running the same call again resumes.
        TrainingDivergedError: the loss became NaN or infinite.
    """
    check_train_options(options)
    check_run_paths(data, out_dir)
    out_dir = Path(out_dir)
    rank = _init_distributed(options.device)
    synthetic = str(data) == "synthetic"
    if synthetic:
        train_split, val_split = "train", "val"
    torch.manual_seed(options.seed)  # the initial weights: the same run twice starts from the same model
    model = _build_model(model_name, options)  # checks the model settings; writes nothing
    with RunLock(out_dir) if rank == 0 else nullcontext():
        backbone = backbone_choice(model, data, options.backbone_weights)
        recipe = effective_recipe(_base_recipe(model_name, model, options), options, data, backbone)
        augmentation = recipe.augmentation_kwargs()
        run_info: dict[str, Any] = {"data": str(data), "splits": [train_split, val_split], "augmentation": augmentation}
        if synthetic:
            run_info["synthetic"] = [options.synthetic_train, options.synthetic_val, list(options.synthetic_image_size)]
        current = json.loads(json.dumps({**describe_model(model), **run_info, "train": {"seed": options.seed}}))
        _check_saved_run(out_dir, current, options.resume_anyway)
        return _train_checked(
            model, model_name, data, out_dir, options, recipe, run_info, train_split, val_split, rank, report
        )


def _train_checked(
    model: PoseModel,
    model_name: str,
    data: str | Path,
    out_dir: Path,
    options: TrainRunOptions,
    recipe: TrainRecipe,
    run_info: dict[str, Any],
    train_split: str,
    val_split: str,
    rank: int,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """:func:`run_training` once the run directory is locked and the saved run agrees with this one."""
    synthetic = str(data) == "synthetic"
    if rank == 0 and synthetic:
        _prepare_synthetic(out_dir / "data", options)
    if dist.is_initialized():
        dist.barrier()
    root = out_dir / "data" if synthetic else Path(data)
    yolo_root = find_yolo_root(data)
    if yolo_root is None:
        splits = find_coco_splits(root, train_split, val_split)
    else:  # YOLO-format labels -> COCO files cached in out_dir/data, written by rank 0 first
        if rank == 0:
            prepare_yolo_splits(yolo_root, out_dir / "data", model.keypoint_spec, train_split, val_split)
        if dist.is_initialized():
            dist.barrier()
        yolo = prepare_yolo_splits(yolo_root, out_dir / "data", model.keypoint_spec, train_split, val_split)
        splits = CocoSplits(yolo.train_ann, yolo.train_images, yolo.val_ann, yolo.val_images)
    backbone = backbone_choice(model, data, options.backbone_weights)
    if backbone != "none":
        model.init_backbone(backbone)
    summary: dict[str, Any] = {"model": model_name, "data": str(data), "backbone": backbone}
    if options.init_weights is not None:
        loaded = load_intersecting(model, options.init_weights)
        if rank == 0:
            report(loaded.format())
        summary["init_weights"] = loaded.summary()
        run_info["init_weights_sha256"] = loaded.sha256

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        stats, _ = evaluate_model(m, splits.val_ann, splits.val_images, max_images=options.max_eval_images)
        return stats

    try:
        dataset = model.training_dataset(splits.train_ann, splits.train_images, train=True, **run_info["augmentation"])
    except TypeError as err:  # an --augment name the dataset does not take
        raise InvalidInputError(f"--augment: {err}") from None
    if len(dataset) < recipe.batch_size:  # type: ignore[arg-type]
        raise DatasetError(
            f"the training split {splits.train_ann} gives {len(dataset)} sample(s), fewer than one batch of "  # type: ignore[arg-type]
            f"{recipe.batch_size}; lower --batch-size or add data"
        )
    steps_per_epoch = max(1, len(dataset) // recipe.batch_size)  # type: ignore[arg-type]
    num_workers = options.num_workers if options.num_workers is not None else default_num_workers()
    config = train_config_from_recipe(recipe, options, steps_per_epoch, num_workers)
    summary["steps"] = config.total_steps
    if rank == 0:
        report(recipe.format() + "\n" + describe_plan(config, steps_per_epoch))
    trainer = Trainer(
        model,
        dataset,
        model.training_task(recipe.batch_size),
        config,
        out_dir,
        evaluate=evaluate,
        device=options.device,
        run_info=run_info,
        report=report,
    )
    resumed_at = trainer.check_resumable(options.resume_anyway)  # writes nothing; refuses a changed run
    if rank == 0:
        plan = {"steps": config.total_steps, "steps_per_epoch": steps_per_epoch, "warmup_steps": config.warmup_steps}
        atomic_write_bytes(out_dir / "recipe.json", json.dumps({**recipe.to_dict(), "run": plan}, indent=2).encode())
        log = MetricsLog(out_dir / "metrics.jsonl")
        if options.eval_before and resumed_at is None and not any(e["step"] == 0 for e in log.evaluations()):
            log.trim(0)
            log.append({"step": 0, "eval": evaluate(model)})
            log.close()
    trainer.fit(resume_anyway=options.resume_anyway)
    if dist.is_initialized():
        dist.barrier()
    if rank != 0:
        return {}
    with StopRequest() as stop:
        try:
            with stop.abandonable():
                evaluations = trainer.metrics.evaluations()
                if evaluations and evaluations[0]["step"] == 0:
                    summary["before"] = evaluations[0]
                last = evaluations[-1] if evaluations else None
                summary["after"] = last if last is not None and last["step"] == trainer.step else None
                summary["evaluations"] = evaluations
                if trainer.best is not None:
                    summary["best"] = trainer.best
                predictions = write_predictions(
                    trainer.final_model(), splits.val_ann, splits.val_images, out_dir / "predictions",
                    options.num_predictions,
                )  # fmt: skip
                summary["predictions"] = [str(p) for p in predictions]
                summary["final"] = str(out_dir / "final")
                atomic_write_bytes(out_dir / "summary.json", json.dumps(summary, indent=2).encode())
        except Abandoned:
            newest = (trainer.store.candidates() or [None])[0]
            raise TrainingInterrupted(
                trainer.step, str(newest) if newest else None, rank, stop.signal or signal.SIGINT, phase="finishing"
            ) from None
    return summary
