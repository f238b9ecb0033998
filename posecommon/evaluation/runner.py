"""Run a model over every image of a COCO-format dataset and score it with :func:`evaluate_coco`.

Top-down models (``preprocess.resize == "affine_crop"``: VTTransPose, TransPose-H-S) are evaluated as TransPose's
``validate`` + ``evaluate`` (``lib/core/function.py:98-198``, ``lib/dataset/coco.py:290-367``): person boxes
(ground truth by default, or a COCO detection-results file, or a detector) -> ``model.predict`` (crops, flip test,
DARK, rescoring ``box score x mean keypoint confidence > 0.2``) -> OKS-NMS per image at
:data:`TOPDOWN_OKS_NMS_THRESHOLD` with the padded crop areas as instance areas -> COCOeval.

Single-stage models (DRSI-Net, YOLO-Pose) are evaluated as YOLO-Pose's ``test.py``: the evaluation thresholds below,
keypoints clamped to the image (``test.py:176``, ``utils/general.py:391-404``; :func:`~posecommon.ops.clip_points`),
results without ``bbox`` (``test.py:212-218``).

Results are written in the official evaluators' format (:func:`~posecommon.evaluation.results_to_coco`, no
``bbox``). :func:`predict_coco_results` writes them without scoring, also for an image-info file without
annotations such as ``image_info_test-dev2017.json`` (results for the COCO evaluation server).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import tqdm

from ..data.coco import CocoKeypoints, load_coco_keypoints
from ..errors import InvalidInputError
from ..ops.geometry import box_xywh_to_xyxy, box_xyxy_to_xywh, xywh_to_center_scale
from ..ops.letterbox import clip_points
from ..predict import PredictKernel, RunOptions, build_kernel
from .coco import evaluate_coco, results_to_coco
from .oks_nms import oks_nms
from .person_boxes import PersonBoxes, ground_truth_person_boxes, load_person_detections

__all__ = [
    "SINGLE_STAGE_IOU_THRESHOLD",
    "SINGLE_STAGE_MAX_DETECTIONS",
    "SINGLE_STAGE_SCORE_THRESHOLD",
    "TOPDOWN_BOX_SCORE_THRESHOLD",
    "TOPDOWN_OKS_NMS_THRESHOLD",
    "evaluate_model",
    "predict_coco_results",
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
    "max_people": SINGLE_STAGE_MAX_DETECTIONS,
}

TOPDOWN_OKS_NMS_THRESHOLD = 0.9
"""OKS-NMS threshold of top-down evaluation (``TEST.OKS_THRE: 0.9``, TP-H-S yaml line 112)."""

_RUN = RunOptions()
"""Evaluation runs each model as ``predict`` does by default (fused copy, channels-last on CPU, float32)."""

TOPDOWN_BOX_SCORE_THRESHOLD = 0.0
"""Person boxes with a lower score are not evaluated (``TEST.IMAGE_THRE: 0.0``, TP-H-S yaml line 108)."""


def _is_top_down(model: Any) -> bool:
    return model.preprocess.resize == "affine_crop"


def _detector_boxes(detector: PredictKernel, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO ``(x, y, w, h)`` boxes and scores of a single-stage detector, kept down to its evaluation threshold.

    The official protocol evaluates every box of its detection file with a score of at least
    :data:`TOPDOWN_BOX_SCORE_THRESHOLD` (0.0); a detector run here gives its boxes with its own COCO evaluation
    settings (:data:`SINGLE_STAGE_SCORE_THRESHOLD` 0.001, not the 0.25 of ``predict``'s default; IoU and
    detection count as in its evaluation).
    """
    (found,) = detector([pixels], [{}], _RUN)
    boxes, scores = found.boxes.detach().cpu().double(), found.scores.detach().cpu().double()
    keep = scores >= TOPDOWN_BOX_SCORE_THRESHOLD
    return box_xyxy_to_xywh(boxes[keep]), scores[keep]


def _topdown_results(
    kernel: PredictKernel,
    pixels: torch.Tensor,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_id: int,
    oks_threshold: float,
) -> list[dict[str, Any]]:
    """COCO results of one image: predict on COCO ``(x, y, w, h)`` boxes, then OKS-NMS (``coco.py:327-357``)."""
    if boxes.shape[0] == 0:
        return []
    inputs = {"boxes": box_xywh_to_xyxy(boxes).float(), "box_scores": scores.float()}
    (found,) = kernel([pixels], [inputs], _RUN)
    input_h, input_w = kernel.input_size
    _, size = xywh_to_center_scale(boxes, input_w / input_h, kernel.padding)
    sigmas = kernel.keypoint_spec if kernel.keypoint_spec.sigmas is not None else None
    keep = oks_nms(found.keypoints.cpu(), found.scores.cpu(), size.prod(dim=-1), oks_threshold, sigmas)
    entries = results_to_coco(found, image_id)
    return [entries[i] for i in keep.tolist()]


def _predict_dataset(
    model: Any,
    data: CocoKeypoints,
    *,
    detector: Any | None = None,
    person_boxes: PersonBoxes | None = None,
    max_images: int | None = None,
    progress: bool = True,
    oks_threshold: float = TOPDOWN_OKS_NMS_THRESHOLD,
    **predict_kwargs: Any,
) -> list[dict[str, Any]]:
    """COCO keypoint results of ``model`` on every image of ``data``.

    A top-down model (``preprocess.resize == "affine_crop"``) is given person boxes: ``person_boxes`` when given
    (e.g. :func:`~posecommon.evaluation.load_person_detections`), else the boxes of ``detector`` when one is passed,
    else the official ground-truth boxes (:func:`~posecommon.evaluation.ground_truth_person_boxes`, the "GT boxes"
    protocol). Its instances are then filtered per image by OKS-NMS (the official ``evaluate``). A single-stage
    model predicts from the whole image with YOLO-Pose's evaluation settings, :data:`SINGLE_STAGE_SCORE_THRESHOLD`,
    :data:`SINGLE_STAGE_IOU_THRESHOLD` and :data:`SINGLE_STAGE_MAX_DETECTIONS`, unless ``predict_kwargs`` override
    them, and its keypoints are clamped to the image (:func:`~posecommon.ops.clip_points`).

    Args:
        model: A posezoo model with ``predict``.
        data: The dataset from :func:`~posecommon.data.coco.load_coco_keypoints`.
        detector: Optional single-stage model whose boxes feed a top-down ``model``.
        person_boxes: Person boxes for a top-down ``model`` (exclusive with ``detector``).
        max_images: Evaluate only the first this many images (sorted by id).
        progress: Show a progress bar.
        oks_threshold: OKS-NMS threshold of top-down models (:data:`TOPDOWN_OKS_NMS_THRESHOLD`).
        **predict_kwargs: Prediction options of ``model`` (keywords of its ``predict_kernel``).

    Returns:
        COCO results ``[{image_id, category_id, keypoints, score}]`` (the official format, no ``bbox``).

    Raises:
        InvalidInputError: both ``detector`` and ``person_boxes``, boxes for a single-stage model, or a top-down
            model without person boxes on a file without annotations.
    """
    top_down = _is_top_down(model)
    options = predict_kwargs if top_down else {**_SINGLE_STAGE_EVAL, **predict_kwargs}
    kernel = build_kernel(model.predict_kernel, options)
    if detector is not None and person_boxes is not None:
        raise InvalidInputError("pass either a detector or person boxes (a detection file), not both")
    if not top_down and (detector is not None or person_boxes is not None):
        raise InvalidInputError(
            f"{type(model).__name__} is a single-stage model: it finds people itself, so it takes no detector or "
            "person boxes"
        )
    if top_down and detector is None and person_boxes is None:
        if not data.annotated:
            raise InvalidInputError(
                f"{data.ann_file} has no annotations, so there are no ground-truth person boxes for "
                f"{type(model).__name__}: pass a detection file (--det-json, detections=) or a detector"
            )
        person_boxes = ground_truth_person_boxes(data)
    detector_kernel = detector.predict_kernel(**_SINGLE_STAGE_EVAL) if detector is not None else None
    images = data.images[:max_images] if max_images is not None else data.images
    results: list[dict[str, Any]] = []
    for record in tqdm(images, desc="evaluate", unit="img", disable=not progress):
        pixels = data.load_image(record.image_id)
        if not top_down:
            (found,) = kernel([pixels], [{}], _RUN)
            found = dataclasses.replace(found, keypoints=clip_points(found.keypoints, (record.height, record.width)))
            results.extend(results_to_coco(found, record.image_id))
            continue
        if person_boxes is not None:
            boxes, scores = (torch.from_numpy(a) for a in person_boxes.of_image(record.image_id))
        else:
            boxes, scores = _detector_boxes(detector_kernel, pixels)
        results.extend(_topdown_results(kernel, pixels, boxes, scores, record.image_id, oks_threshold))
    return results


def predict_coco_results(
    model: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    detector: Any | None = None,
    detections: str | Path | None = None,
    max_images: int | None = None,
    progress: bool = True,
    oks_threshold: float = TOPDOWN_OKS_NMS_THRESHOLD,
    **predict_kwargs: Any,
) -> list[dict[str, Any]]:
    """COCO keypoint results of ``model`` on the images of ``ann_file``, predicted as :func:`evaluate_model` does but
    not scored.

    ``ann_file`` may be an image-info file without annotations, such as COCO's ``image_info_test-dev2017.json``
    (what the COCO evaluation server scores; TransPose writes its test-dev results the same way and skips the
    evaluation, ``lib/dataset/coco.py:113-121, 359-367``). A top-down model then needs person boxes from
    ``detections`` or ``detector``. Arguments as :func:`evaluate_model`.

    Returns:
        The results, in the official format (no ``bbox``).

    Raises:
        DatasetError: a file is malformed, a detection names an image that is not in ``ann_file``, or an image is
            missing/unreadable.
        InvalidInputError: as :func:`evaluate_model`, or a top-down model without boxes on an image-info file.
    """
    data = load_coco_keypoints(
        ann_file, image_dir, model.keypoint_spec, check_files=True, allow_empty=True, require_annotations=False
    )
    person_boxes = None
    if detections is not None:
        person_boxes = load_person_detections(detections, data, TOPDOWN_BOX_SCORE_THRESHOLD)
    return _predict_dataset(
        model,
        data,
        detector=detector,
        person_boxes=person_boxes,
        max_images=max_images,
        progress=progress,
        oks_threshold=oks_threshold,
        **predict_kwargs,
    )


def evaluate_model(
    model: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    detector: Any | None = None,
    detections: str | Path | None = None,
    max_images: int | None = None,
    progress: bool = True,
    oks_threshold: float = TOPDOWN_OKS_NMS_THRESHOLD,
    **predict_kwargs: Any,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Predict on a COCO-format dataset and evaluate with pycocotools.

    Args:
        model: A posezoo model with ``predict`` and ``keypoint_spec`` (its sigmas are used for OKS).
        ann_file: COCO keypoints annotation file.
        image_dir: Directory of its images.
        detector: Optional single-stage model whose boxes feed a top-down ``model`` (as ``posezoo evaluate
            --detector``), run with the single-stage evaluation settings.
        detections: COCO detection-results JSON of person boxes for a top-down model (the official detected-box
            protocol); every box with a score of at least :data:`TOPDOWN_BOX_SCORE_THRESHOLD` is evaluated.
            Without it and without ``detector``, top-down models get the ground-truth boxes.
        max_images: Evaluate only the first this many images (sorted by id); the ground truth is restricted to the
            same images.
        progress: Show a progress bar.
        oks_threshold: OKS-NMS threshold of top-down models (:data:`TOPDOWN_OKS_NMS_THRESHOLD`).
        **predict_kwargs: Prediction options of ``model`` (keywords of its ``predict_kernel``); a single-stage
            model's default to the YOLO-Pose evaluation settings above.

    Returns:
        The 10 COCO numbers (see :func:`evaluate_coco`) and the results list.

    Raises:
        DatasetError: the annotation or detection file is malformed, has no ``annotations`` (an image-info file:
            use :func:`predict_coco_results`), a detection names an image that is not in the annotation file, or an
            image is missing/unreadable.
        InvalidInputError: both ``detector`` and ``detections``, or either with a single-stage model.
    """
    data = load_coco_keypoints(ann_file, image_dir, model.keypoint_spec, check_files=True)
    person_boxes = None
    if detections is not None:
        person_boxes = load_person_detections(detections, data, TOPDOWN_BOX_SCORE_THRESHOLD)
    results = _predict_dataset(
        model,
        data,
        detector=detector,
        person_boxes=person_boxes,
        max_images=max_images,
        progress=progress,
        oks_threshold=oks_threshold,
        **predict_kwargs,
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
