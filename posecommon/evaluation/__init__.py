"""Pose evaluation: OKS, OKS-NMS, COCO results and COCOeval-based AP/AR."""

from .coco import COCO_STAT_NAMES, evaluate_coco, instance_scores, results_to_coco, write_coco_results
from .oks import oks, resolve_sigmas
from .oks_nms import oks_nms
from .runner import (
    SINGLE_STAGE_IOU_THRESHOLD,
    SINGLE_STAGE_MAX_DETECTIONS,
    SINGLE_STAGE_SCORE_THRESHOLD,
    evaluate_model,
    predict_dataset,
)

__all__ = [
    "COCO_STAT_NAMES",
    "SINGLE_STAGE_IOU_THRESHOLD",
    "SINGLE_STAGE_MAX_DETECTIONS",
    "SINGLE_STAGE_SCORE_THRESHOLD",
    "evaluate_coco",
    "evaluate_model",
    "instance_scores",
    "oks",
    "oks_nms",
    "predict_dataset",
    "resolve_sigmas",
    "results_to_coco",
    "write_coco_results",
]
