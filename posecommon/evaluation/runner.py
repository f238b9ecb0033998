"""Run a model over every image of a COCO-format dataset and score it with :func:`evaluate_coco`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import tqdm

from ..data.coco import CocoKeypoints, load_coco_keypoints
from ..structures import PoseResult
from .coco import evaluate_coco, results_to_coco

__all__ = [
    "SINGLE_STAGE_IOU_THRESHOLD",
    "SINGLE_STAGE_MAX_DETECTIONS",
    "SINGLE_STAGE_SCORE_THRESHOLD",
    "evaluate_model",
    "predict_dataset",
]

SINGLE_STAGE_SCORE_THRESHOLD = 0.001
"""Score threshold of single-stage models during COCO evaluation (YOLO-Pose's README test command ``--conf 0.001``,
README.md:150 on branch yolo-pose; ``test.py:26``): AP integrates over all scores, so a display threshold such as
0.25 would cut the precision-recall curve short."""
SINGLE_STAGE_IOU_THRESHOLD = 0.65
"""Box-NMS IoU of single-stage models during COCO evaluation: YOLO-Pose's README evaluates with ``--iou 0.65``
(README.md:150, 156 on branch yolo-pose; ``test.py:27`` defaults to 0.6). ``predict`` keeps its own 0.45."""
SINGLE_STAGE_MAX_DETECTIONS = 300
"""Detections kept per image after NMS during COCO evaluation (``max_det = 300``, ``utils/general.py:498``)."""
_SINGLE_STAGE_EVAL = {
    "score_threshold": SINGLE_STAGE_SCORE_THRESHOLD,
    "iou_threshold": SINGLE_STAGE_IOU_THRESHOLD,
    "max_detections": SINGLE_STAGE_MAX_DETECTIONS,
}


def _is_top_down(model: Any) -> bool:
    return model.preprocess.resize == "affine_crop"


def predict_dataset(
    model: Any,
    data: CocoKeypoints,
    *,
    detector: Any | None = None,
    max_images: int | None = None,
    progress: bool = True,
    **predict_kwargs: Any,
) -> list[dict[str, Any]]:
    """COCO keypoint results of ``model`` on every image of ``data``.

    A top-down model (``preprocess.resize == "affine_crop"``) is given the ground-truth person boxes of each image
    (the COCO "GT boxes" protocol; annotations with no labelled keypoint or crowd are not used as boxes), or the
    boxes of ``detector`` when one is passed. A single-stage model predicts from the whole image with YOLO-Pose's
    evaluation settings, :data:`SINGLE_STAGE_SCORE_THRESHOLD`, :data:`SINGLE_STAGE_IOU_THRESHOLD` and
    :data:`SINGLE_STAGE_MAX_DETECTIONS`, unless ``predict_kwargs`` override them.

    Args:
        model: A posezoo model with ``predict``.
        data: The dataset from :func:`~posecommon.data.coco.load_coco_keypoints`.
        detector: Optional single-stage model whose boxes feed a top-down ``model``.
        max_images: Evaluate only the first this many images (sorted by id).
        progress: Show a progress bar.
        **predict_kwargs: Passed to ``model.predict``.

    Returns:
        COCO results ``[{image_id, category_id, keypoints, score, bbox}]``.
    """
    images = data.images[:max_images] if max_images is not None else data.images
    results: list[dict[str, Any]] = []
    for record in tqdm(images, desc="evaluate", unit="img", disable=not progress):
        pixels = data.load_image(record.image_id)
        if not _is_top_down(model):
            found: PoseResult = model.predict(pixels, **{**_SINGLE_STAGE_EVAL, **predict_kwargs})
        elif detector is not None:
            boxes = detector.predict(pixels)
            found = model.predict(pixels, boxes.boxes, boxes.scores, **predict_kwargs)
        else:
            persons = data.persons.get(record.image_id, [])
            boxes = torch.tensor([p.bbox_xyxy for p in persons], dtype=torch.float32).view(-1, 4)
            found = model.predict(pixels, boxes, **predict_kwargs)
        results.extend(results_to_coco(found, record.image_id))
    return results


def evaluate_model(
    model: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    detector: Any | None = None,
    max_images: int | None = None,
    progress: bool = True,
    **predict_kwargs: Any,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Predict on a COCO-format dataset and evaluate with pycocotools.

    Args:
        model: A posezoo model with ``predict`` and ``keypoint_spec`` (its sigmas are used for OKS).
        ann_file: COCO keypoints annotation file.
        image_dir: Directory of its images.
        detector: See :func:`predict_dataset`.
        max_images: See :func:`predict_dataset`; the ground truth is restricted to the same images.
        progress: Show a progress bar.
        **predict_kwargs: Passed to ``model.predict``.

    Returns:
        The 10 COCO numbers (see :func:`evaluate_coco`) and the results list.

    Raises:
        DatasetError: the annotation file is malformed or an image is missing/unreadable.
    """
    data = load_coco_keypoints(ann_file, image_dir, model.keypoint_spec, check_files=True)
    results = predict_dataset(
        model, data, detector=detector, max_images=max_images, progress=progress, **predict_kwargs
    )
    ground_truth: Any = data.coco
    if max_images is not None:
        keep = {record.image_id for record in data.images[:max_images]}
        dataset = data.coco.dataset
        ground_truth = {
            **dataset,
            "images": [image for image in dataset["images"] if image["id"] in keep],
            "annotations": [ann for ann in dataset["annotations"] if ann["image_id"] in keep],
        }
    sigmas = model.keypoint_spec if model.keypoint_spec.sigmas is not None else None
    return evaluate_coco(ground_truth, results, sigmas=sigmas), results
