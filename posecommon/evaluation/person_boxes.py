"""Person boxes for evaluating top-down models: ground-truth boxes, or a COCO detection-results file.

Both follow TransPose's ``COCODataset`` (``lib/dataset/coco.py``):

- Ground truth (``_load_coco_keypoint_annotation_kernal``, ``coco.py:144-209``): every non-crowd annotation of the
  person class whose keypoint values are not all 0, with ``area > 0`` and a box that survives the official
  sanitisation (:func:`~posecommon.ops.geometry.clean_coco_boxes`); score 1.
- Detections (``_load_coco_person_detection_results``, ``coco.py:247-288``): a COCO detection-results JSON, a list
  of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``. Entries with ``category_id != 1`` and scores
  below ``score_threshold`` (``TEST.IMAGE_THRE: 0.0`` in the TP-H-S yaml, line 108) are skipped; boxes are used
  as they are (no sanitisation), with their scores.

Boxes are COCO ``(x, y, w, h)`` float64 arrays in image pixels, per image id. What is skipped is counted in
:attr:`PersonBoxes.skipped` and logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.coco import CocoKeypoints
from ..errors import DatasetError
from ..ops.geometry import clean_coco_boxes

__all__ = ["DETECTION_PERSON_CATEGORY", "PersonBoxes", "ground_truth_person_boxes", "load_person_detections"]

logger = logging.getLogger(__name__)

DETECTION_PERSON_CATEGORY = 1
"""``category_id`` of people in a detection-results file (``det_res['category_id'] != 1``, ``coco.py:262``)."""


@dataclass(frozen=True)
class PersonBoxes:
    """Person boxes and their scores, per image.

    Args:
        boxes: Image id -> ``(N, 4)`` float64 COCO ``(x, y, w, h)`` boxes in image pixels.
        scores: Image id -> ``(N,)`` float64 box scores.
        source: Where the boxes came from (for messages).
        skipped: Counts of skipped annotations or detections by reason.
    """

    boxes: dict[int, np.ndarray]
    scores: dict[int, np.ndarray]
    source: str
    skipped: dict[str, int] = field(default_factory=dict)

    def of_image(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4), scores (N,))`` of one image; empty arrays when it has none."""
        return self.boxes.get(image_id, np.zeros((0, 4))), self.scores.get(image_id, np.zeros(0))

    @property
    def count(self) -> int:
        """Number of boxes over all images."""
        return sum(len(v) for v in self.boxes.values())


def _person_category(data: CocoKeypoints) -> int:
    """The class the official loader keeps: the first category id (``_coco_ind_to_class_ind[...] == 1``)."""
    ids = sorted(data.coco.getCatIds())
    return ids[0] if ids else DETECTION_PERSON_CATEGORY


def ground_truth_person_boxes(data: CocoKeypoints) -> PersonBoxes:
    """The official ground-truth boxes of every image of ``data`` (see the module docstring), score 1.

    Args:
        data: A loaded annotation file (:func:`~posecommon.data.coco.load_coco_keypoints`); the raw annotations of
            its pycocotools index are used, so its own filtering does not matter.

    Returns:
        The boxes; ``skipped`` counts ``"crowd"``, ``"category"``, ``"no_keypoints"`` and ``"box_or_area"``.
    """
    category = _person_category(data)
    boxes: dict[int, list[list[float]]] = {}
    skipped: Counter[str] = Counter()
    for record in data.images:
        for ann in data.coco.imgToAnns.get(record.image_id, []):
            if ann.get("iscrowd", 0):
                skipped["crowd"] += 1
                continue
            raw = torch.tensor([ann["bbox"]], dtype=torch.float64)
            clean, valid = clean_coco_boxes(raw, record.width, record.height)
            area = ann.get("area", float(raw[0, 2] * raw[0, 3]))
            if not (area > 0 and bool(valid[0])):
                skipped["box_or_area"] += 1
            elif ann["category_id"] != category:
                skipped["category"] += 1
            elif max(ann["keypoints"]) == 0:
                skipped["no_keypoints"] += 1
            else:
                boxes.setdefault(record.image_id, []).append(clean[0].tolist())
    arrays = {image_id: np.asarray(b, dtype=np.float64) for image_id, b in boxes.items()}
    result = PersonBoxes(arrays, {k: np.ones(len(v)) for k, v in arrays.items()}, "ground truth", dict(skipped))
    logger.info("ground-truth person boxes: %d kept, skipped %s", result.count, dict(skipped) or "none")
    return result


def _number(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: {key!r} must be a finite number, got {value!r:.60}")
    return float(value)


def load_person_detections(path: str | Path, data: CocoKeypoints, score_threshold: float = 0.0) -> PersonBoxes:
    """Read a COCO detection-results file and keep the person boxes of the images of ``data``.

    Args:
        path: JSON file: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
        data: The annotation file the detections belong to; every detection's ``image_id`` must be one of its
            images.
        score_threshold: Detections with a lower score are skipped (the official ``IMAGE_THRE``, 0.0).

    Returns:
        The boxes; ``skipped`` counts ``"category"`` (not ``category_id`` 1) and ``"score"`` (below the threshold).

    Raises:
        DatasetError: the file is missing, not JSON, not a list, has a malformed entry (the message names its index),
            refers to an image that is not in the annotation file, or holds no person detection at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"detection file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: not a readable JSON detection file: {err}") from err
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: a COCO detection-results file is a JSON list, got {type(entries).__name__}")
    image_ids = {record.image_id for record in data.images}
    boxes: dict[int, list[list[float]]] = {}
    scores: dict[int, list[float]] = {}
    skipped: Counter[str] = Counter()
    unknown: dict[int, int] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: detection #{index}"
        if not isinstance(entry, dict) or any(k not in entry for k in ("image_id", "category_id", "bbox", "score")):
            raise DatasetError(f"{where}: needs 'image_id', 'category_id', 'bbox' and 'score', got {entry!r:.120}")
        image_id, category = entry["image_id"], entry["category_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise DatasetError(f"{where}: 'image_id' must be an integer, got {image_id!r:.60}")
        bbox = entry["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DatasetError(f"{where}: 'bbox' must be [x, y, w, h], got {bbox!r:.60}")
        box = [_number(v, where, "bbox") for v in bbox]
        if box[2] < 0 or box[3] < 0:
            raise DatasetError(f"{where}: 'bbox' {box} has a negative width or height")
        score = _number(entry["score"], where, "score")
        if image_id not in image_ids:
            unknown.setdefault(image_id, index)
        elif category != DETECTION_PERSON_CATEGORY:
            skipped["category"] += 1
        elif score < score_threshold:
            skipped["score"] += 1
        else:
            boxes.setdefault(image_id, []).append(box)
            scores.setdefault(image_id, []).append(score)
    if unknown:
        listed = ", ".join(f"{image_id} (detection #{index})" for image_id, index in list(unknown.items())[:5])
        raise DatasetError(
            f"{path} has detections for {len(unknown)} image id(s) that are not in the annotation file "
            f"{data.ann_file}: {listed}. Use the detection file made for this annotation file."
        )
    result = PersonBoxes(
        {k: np.asarray(v, dtype=np.float64) for k, v in boxes.items()},
        {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()},
        str(path),
        dict(skipped),
    )
    if result.count == 0:
        raise DatasetError(
            f"{path} holds no person detection (category_id {DETECTION_PERSON_CATEGORY}) with score >= "
            f"{score_threshold} for the images of {data.ann_file}"
        )
    if skipped:
        logger.warning("%s: %d person boxes kept; skipped %s", path, result.count, dict(skipped))
    else:
        logger.info("%s: %d person boxes kept", path, result.count)
    return result
