"""One training run from the command line: data (synthetic or COCO-format) -> train -> evaluate -> predictions.

Used by ``posezoo train``; the README's main job is such a run on the synthetic default.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
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
from ..image import load_image
from ..model import PoseModel
from ..registry import create_model
from ..visualize import draw_pose
from .trainer import TrainConfig, Trainer

__all__ = ["CocoSplits", "RunOptions", "backbone_choice", "find_coco_splits", "run_training", "write_predictions"]

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
class RunOptions:
    """Options of :func:`run_training` (the ``posezoo train`` flags).

    Args:
        steps: Optimiser steps.
        batch_size: Samples per step.
        input_size: Model input ``(H, W)``; None keeps the model's default.
        lr: Peak learning rate; None uses the model's paper recipe.
        lr_final: Final learning rate; None uses the recipe.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``; None uses the recipe's (the recipe's momentum stays:
            SGD momentum or Adam's beta1).
        warmup_steps: Linear warm-up steps.
        num_workers: DataLoader workers.
        eval_every: Evaluate on the validation split every this many steps (0: at the end only).
        checkpoint_every: Write ``checkpoints/last`` every this many steps, so an interrupted run resumes there.
        eval_before: Also evaluate before training (to show that the model learns).
        max_eval_images: Evaluate on at most this many validation images.
        num_predictions: Annotated validation images to write at the end.
        device: ``"cpu"``, ``"cuda"``, ... (None: CUDA when available).
        seed: Seed of data generation, order and augmentation.
        synthetic_train: Synthetic training images (``--data synthetic``).
        synthetic_val: Synthetic validation images.
        synthetic_image_size: ``(H, W)`` of synthetic images.
        amp: Mixed precision on CUDA.
        augmentation: Overrides of the training dataset's augmentation arguments (the fields of
            :class:`~posecommon.data.TopDownAugmentation` for top-down; ``mosaic``, ``translate``, ``flip`` for
            multi-person).
        backbone_weights: Backbone initialisation of models that have one (``model.init_backbone``, the
            VTTransPose family): ``"imagenet"``, ``"none"`` or a safetensors path; ``None`` picks
            :func:`backbone_choice`'s default.
    """

    steps: int = 1000
    batch_size: int = 16
    input_size: tuple[int, int] | None = None
    lr: float | None = None
    lr_final: float | None = None
    optimizer: str | None = None
    warmup_steps: int = 0
    num_workers: int = 0
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
    amp: bool = True
    augmentation: dict[str, float] = field(default_factory=dict)
    backbone_weights: str | None = None


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


def _generate_synthetic(root: Path, options: RunOptions) -> None:
    generate_synthetic_splits(
        root, options.synthetic_train, options.synthetic_val, seed=options.seed, image_size=options.synthetic_image_size
    )


def write_predictions(model: PoseModel, ann_file: Path, image_dir: Path, out_dir: Path, count: int) -> list[Path]:
    """Predict on the first ``count`` images of a COCO-format split; write ``<stem>.png`` (drawn) and ``<stem>.json``.

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
        (out_dir / f"{stem}.json").write_text(json.dumps(results_to_coco(result.to("cpu"), record.image_id)))
        written.append(out_dir / f"{stem}.png")
    return written


def run_training(
    model_name: str,
    data: str | Path,
    out_dir: str | Path,
    options: RunOptions,
    train_split: str = "train2017",
    val_split: str = "val2017",
) -> dict[str, Any]:
    """Train ``model_name`` on ``data`` (``"synthetic"``, a COCO-format root or a YOLO-format root), evaluate, predict.

    A YOLO-format root (``"yolo:DIR"``, or a DIR with ``images/`` and ``labels/``, see
    :mod:`posecommon.data.yolo_format`) is converted to COCO files under ``out_dir/data`` first.

    Writes under ``out_dir``: ``data/`` (synthetic only), ``checkpoints/last/``, ``metrics.jsonl``,
    ``final/`` (``save_pretrained``), ``predictions/`` and ``summary.json``. Re-running with the same
    ``out_dir`` resumes from the last checkpoint.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on CUDA, gloo on CPU), each
    process trains on its share of every global batch, and rank 0 alone generates data, evaluates and writes files.

    Returns:
        The summary: model, steps, COCO numbers before (if asked) and after training, paths (an empty dict on
        ranks other than 0).
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
    recipe = {**model.train_recipe}
    if options.lr is not None:
        recipe["lr"] = options.lr
    if options.lr_final is not None:
        recipe["lr_final"] = options.lr_final
    if options.optimizer is not None:
        recipe["optimizer"] = options.optimizer
    config = replace(
        TrainConfig(total_steps=options.steps, batch_size=options.batch_size, **recipe),
        warmup_steps=options.warmup_steps,
        num_workers=options.num_workers,
        eval_every=options.eval_every,
        checkpoint_every=options.checkpoint_every,
        seed=options.seed,
        amp=options.amp,
    )

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        stats, _ = evaluate_model(m, splits.val_ann, splits.val_images, max_images=options.max_eval_images)
        return stats

    summary: dict[str, Any] = {"model": model_name, "data": str(data), "steps": options.steps, "backbone": backbone}
    if options.eval_before and rank == 0:
        summary["before"] = evaluate(model)
    dataset = model.training_dataset(splits.train_ann, splits.train_images, train=True, **options.augmentation)
    task = model.training_task(options.batch_size)
    trainer = Trainer(model, dataset, task, config, out_dir, evaluate=evaluate, device=options.device)
    result = trainer.fit()
    if dist.is_initialized():
        dist.barrier()
    if rank != 0:
        return {}
    summary["after"] = result.evaluations[-1] if result.evaluations else None
    summary["evaluations"] = result.evaluations
    predictions = write_predictions(
        trainer.eval_model, splits.val_ann, splits.val_images, out_dir / "predictions", options.num_predictions
    )
    summary["predictions"] = [str(p) for p in predictions]
    summary["final"] = str(out_dir / "final")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
