"""One training run from the command line: data (synthetic or COCO-format) -> train -> evaluate -> predictions.

Used by ``posezoo train``; the README's main job is such a run on the synthetic default.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image

from ..data.synthetic import generate_synthetic_splits
from ..data.yolo_format import find_yolo_root, prepare_yolo_splits
from ..errors import DatasetError, InvalidInputError
from ..evaluation.coco import results_to_coco
from ..evaluation.runner import evaluate_model
from ..hub.intersect import load_intersecting
from ..media.image import load_image
from ..model import PoseModel
from ..registry import create_model
from ..train.config import TrainConfig
from ..train.loader import default_num_workers
from ..train.recipe import TrainRecipe
from ..train.trainer import Trainer
from ..visualize import draw_pose

__all__ = [
    "CocoSplits",
    "TrainRunOptions",
    "backbone_choice",
    "describe_plan",
    "effective_recipe",
    "find_coco_splits",
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
            VTTransPose family): ``"imagenet"``, ``"none"`` or a safetensors path; ``None`` picks
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
    official TransPose recipe, ``MODEL.PRETRAINED`` in the TP-H-S yaml) and ``"none"`` on synthetic data (which
    stays offline), for models with an ``init_backbone`` method; ``"none"`` for the others.

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
    return "imagenet" if supported and str(data) != "synthetic" else "none"


def effective_recipe(recipe: TrainRecipe, options: TrainRunOptions, data: str | Path | None = None) -> TrainRecipe:
    """``recipe`` with the values ``options`` set (their sources become ``"command line"``).

    ``keep_best`` stays off on ``data="synthetic"`` unless ``options.keep_best`` asks for it: a synthetic run is a
    demonstration whose ``final/`` is its last step (the recipes' ``keep_best`` is for COCO-format data).
    """
    changes: dict[str, Any] = {
        name: getattr(options, name)
        for name in ("epochs", "batch_size", "lr", "lr_final", "optimizer", "grad_clip", "amp", "keep_best")
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
    return recipe.replace(**changes, sources=tuple(sources.items()))


def train_config_from_recipe(
    recipe: TrainRecipe, options: TrainRunOptions, steps_per_epoch: int, num_workers: int
) -> TrainConfig:
    """The :class:`TrainConfig` of a run of ``options.steps`` (else ``recipe.epochs`` epochs) under ``recipe``."""
    total_steps = options.steps if options.steps is not None else recipe.epochs * steps_per_epoch
    return TrainConfig(
        total_steps=total_steps,
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


def _generate_synthetic(root: Path, options: TrainRunOptions) -> None:
    generate_synthetic_splits(
        root, options.synthetic_train, options.synthetic_val, seed=options.seed, image_size=options.synthetic_image_size
    )


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
    only), ``recipe.json``, ``train_config.json``, ``checkpoints/``, ``metrics.jsonl``, ``final/``
    (``save_pretrained``; with ``keep_best`` the weights of the best evaluation), ``predictions/`` (made with the
    ``final/`` weights) and ``summary.json``. Re-running with the same ``out_dir`` resumes from
    the newest checkpoint (after checking that the settings are the same, unless ``options.resume_anyway``).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on CUDA, gloo on CPU), each
    process trains on its share of every global batch, and rank 0 alone generates data, evaluates and writes files.

    Returns:
        The summary: model, steps, COCO numbers before (if asked) and after training, paths (an empty dict on
        ranks other than 0).

    Raises:
        TrainingInterrupted: Ctrl-C or SIGTERM; the checkpoint is written and running the same call again resumes.
    """
    out_dir = Path(out_dir)
    rank = _init_distributed(options.device)
    if str(data) == "synthetic":
        train_split, val_split = "train", "val"
    if rank == 0 and str(data) == "synthetic":
        _generate_synthetic(out_dir / "data", options)
    if dist.is_initialized():
        dist.barrier()
    root = out_dir / "data" if str(data) == "synthetic" else Path(data)
    yolo_root = find_yolo_root(data)
    if yolo_root is None:
        splits = find_coco_splits(root, train_split, val_split)
    overrides = {"input_size": tuple(options.input_size)} if options.input_size else {}
    torch.manual_seed(options.seed)  # the initial weights: the same run twice starts from the same model
    model = create_model(model_name, **overrides)
    if not isinstance(model, PoseModel):
        raise TypeError(f"{model_name} is not a posezoo PoseModel")
    if yolo_root is not None:  # YOLO-format labels -> COCO files cached in out_dir/data, written by rank 0 first
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
    run_info: dict[str, Any] = {"data": str(data), "splits": [train_split, val_split]}
    if options.init_weights is not None:
        loaded = load_intersecting(model, options.init_weights)
        if rank == 0:
            report(loaded.format())
        summary["init_weights"] = loaded.summary()
        run_info["init_weights_sha256"] = loaded.sha256
    base_recipe = options.recipe or model.train_recipe
    if base_recipe is None:
        raise InvalidInputError(f"{model_name} declares no train_recipe; pass TrainRunOptions(recipe=...)")
    recipe = effective_recipe(base_recipe, options, data)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        stats, _ = evaluate_model(m, splits.val_ann, splits.val_images, max_images=options.max_eval_images)
        return stats

    augmentation = recipe.augmentation_kwargs()
    dataset = model.training_dataset(splits.train_ann, splits.train_images, train=True, **augmentation)
    steps_per_epoch = max(1, len(dataset) // recipe.batch_size)  # type: ignore[arg-type]
    num_workers = options.num_workers if options.num_workers is not None else default_num_workers()
    config = train_config_from_recipe(recipe, options, steps_per_epoch, num_workers)
    summary["steps"] = config.total_steps
    if rank == 0:
        report(recipe.format() + "\n" + describe_plan(config, steps_per_epoch))
        out_dir.mkdir(parents=True, exist_ok=True)
        plan = {"steps": config.total_steps, "steps_per_epoch": steps_per_epoch, "warmup_steps": config.warmup_steps}
        (out_dir / "recipe.json").write_text(json.dumps({**recipe.to_dict(), "run": plan}, indent=2))
    if options.eval_before and rank == 0:
        summary["before"] = evaluate(model)
    task = model.training_task(recipe.batch_size)
    run_info["augmentation"] = augmentation
    if str(data) == "synthetic":
        run_info["synthetic"] = [options.synthetic_train, options.synthetic_val, list(options.synthetic_image_size)]
    trainer = Trainer(
        model, dataset, task, config, out_dir, evaluate=evaluate, device=options.device, run_info=run_info
    )
    result = trainer.fit(resume_anyway=options.resume_anyway)
    if dist.is_initialized():
        dist.barrier()
    if rank != 0:
        return {}
    summary["after"] = result.evaluations[-1] if result.evaluations else None
    summary["evaluations"] = result.evaluations
    if result.best is not None:
        summary["best"] = result.best
    predictions = write_predictions(
        trainer.final_model(), splits.val_ann, splits.val_images, out_dir / "predictions", options.num_predictions
    )
    summary["predictions"] = [str(p) for p in predictions]
    summary["final"] = str(out_dir / "final")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
