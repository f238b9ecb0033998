"""Pose evaluation: OKS, OKS-NMS, person boxes of top-down models, COCO results and COCOeval-based AP/AR."""

from .coco import COCO_STAT_NAMES, evaluate_coco, instance_scores, results_to_coco, write_coco_results
from .oks import oks, resolve_sigmas
from .oks_nms import oks_nms, pairwise_oks
from .person_boxes import PersonBoxes, ground_truth_person_boxes, load_person_detections
from .runner import (
    SINGLE_STAGE_IOU_THRESHOLD,
    SINGLE_STAGE_MAX_DETECTIONS,
    SINGLE_STAGE_SCORE_THRESHOLD,
    TOPDOWN_BOX_SCORE_THRESHOLD,
    TOPDOWN_OKS_NMS_THRESHOLD,
    evaluate_model,
    predict_coco_results,
)

__all__ = [
    "COCO_STAT_NAMES",
    "SINGLE_STAGE_IOU_THRESHOLD",
    "SINGLE_STAGE_MAX_DETECTIONS",
    "SINGLE_STAGE_SCORE_THRESHOLD",
    "TOPDOWN_BOX_SCORE_THRESHOLD",
    "TOPDOWN_OKS_NMS_THRESHOLD",
    "PersonBoxes",
    "evaluate_coco",
    "evaluate_model",
    "ground_truth_person_boxes",
    "instance_scores",
    "load_person_detections",
    "oks",
    "oks_nms",
    "pairwise_oks",
    "predict_coco_results",
    "resolve_sigmas",
    "results_to_coco",
    "write_coco_results",
]
