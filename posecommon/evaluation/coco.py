"""COCO keypoint results and evaluation through pycocotools' ``COCOeval`` (whose numbers are the reference).

Shape key: N instances per image, K joints. Keypoints are written as flat ``[x1, y1, c1, ..., xK, yK, cK]`` float
lists in image pixels (pixel-centre convention of :class:`~posecommon.PoseResult`), boxes as COCO ``[x, y, w, h]``.

Instance score (HRNet/TransPose evaluation, ``validate`` + ``evaluate``): the box score times the mean confidence of
the keypoints whose confidence exceeds a threshold (0.2, HRNet's ``IN_VIS_THRE``); an instance with no keypoint
above the threshold scores 0. :func:`instance_scores` computes it; prediction code stores it in
:attr:`PoseResult.scores`, and :func:`results_to_coco` writes those scores unchanged.

Result format: the official evaluators write ``image_id``, ``category_id``, ``keypoints`` and ``score`` and no
``bbox`` (TransPose ``lib/dataset/coco.py:417-426``, which adds only its crop ``center`` and ``scale``; YOLO-Pose
``test.py:212-218``, where the ``bbox`` line is commented out). pycocotools' ``loadRes`` then takes each result's
``area`` from the extent of its keypoints; with a ``bbox`` it would take the box area instead (the ``bbox`` branch
comes first in ``loadRes``). APM and APL depend on it: ``COCOeval.evaluateImg`` ignores a result that matches no
ground truth in an area range when its area lies outside the range. The other eight numbers do not (recall counts
matched ground truth only, and the "all" range contains every area). So
:func:`results_to_coco` writes the official format by default, and :func:`evaluate_coco` scores every result
without its ``bbox`` and ``area``. ``posezoo predict`` keeps ``bbox`` in its ``predictions.json``
(:meth:`PoseResult.to_coco <posecommon.PoseResult.to_coco>`): it is a prediction file, not an evaluation one.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..errors import DatasetError, InvalidInputError
from ..keypoints import KeypointSpec
from ..structures import PoseResult
from .oks import resolve_sigmas

__all__ = ["COCO_STAT_NAMES", "evaluate_coco", "instance_scores", "results_to_coco", "write_coco_results"]

logger = logging.getLogger(__name__)

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
"""Names of the 10 numbers of ``COCOeval.stats`` for ``iouType="keypoints"``, in order."""

_ANNOTATION_KEYS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox", "iscrowd")
_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")
_DROPPED_RESULT_KEYS = ("bbox", "area")
"""Result keys :func:`evaluate_coco` drops: the official evaluators write neither, so pycocotools takes each
result's area from its keypoints (see the module docstring)."""


def instance_scores(box_scores: torch.Tensor, keypoint_scores: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """HRNet/TransPose rescoring: box score x mean of the keypoint confidences above ``threshold``.

    Args:
        box_scores: ``(N,)`` detector box scores.
        keypoint_scores: ``(N, K)`` keypoint confidences (heatmap maxima).
        threshold: Confidences must exceed this to enter the mean.

    Returns:
        ``(N,)`` instance scores; 0 where no keypoint exceeds the threshold.
    """
    above = keypoint_scores > threshold
    total = (keypoint_scores * above).sum(dim=-1)
    count = above.sum(dim=-1)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    return box_scores * mean


def results_to_coco(
    results: PoseResult | Sequence[PoseResult],
    image_ids: int | Sequence[int],
    category_id: int = 1,
    bbox: bool = False,
) -> list[dict[str, Any]]:
    """COCO keypoint results ``[{image_id, category_id, keypoints, score}]`` for one or several images, in the
    official evaluators' format (see the module docstring).

    Args:
        results: One :class:`~posecommon.PoseResult` per image (or a single one).
        image_ids: The COCO image id of each result (or a single id).
        category_id: COCO category of the instances (1 = person).
        bbox: Also write each instance's box as ``bbox`` ``[x, y, w, h]`` (as ``posezoo predict`` does); such a
            file is not the official evaluation format.

    Returns:
        JSON-able list of dicts; ``score`` is :attr:`PoseResult.scores` unchanged, keypoints are floats.

    Raises:
        InvalidInputError: the number of results and image ids differ.
    """
    if isinstance(results, PoseResult):
        results = [results]
    if isinstance(image_ids, int):
        image_ids = [image_ids]
    if len(results) != len(image_ids):
        raise InvalidInputError(f"got {len(results)} results for {len(image_ids)} image ids")
    entries = [
        entry
        for result, image_id in zip(results, image_ids, strict=True)
        for entry in result.to_coco(image_id, category_id)
    ]
    if not bbox:
        for entry in entries:
            entry.pop("bbox", None)
    return entries


def write_coco_results(path: str | Path, results: list[dict[str, Any]]) -> Path:
    """Write COCO results (e.g. from :func:`results_to_coco`) as JSON to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{what} file not found: {path}")
    text = path.read_text()
    if not text.strip():
        raise DatasetError(f"{what} file {path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{what} file {path} is not valid JSON: {err}") from err


def _ground_truth_dict(ground_truth: str | Path | dict[str, Any] | COCO) -> tuple[dict[str, Any], str]:
    """A deep copy of the ground-truth dataset dict (pycocotools mutates annotations) and a name for messages."""
    if isinstance(ground_truth, COCO):
        return copy.deepcopy(ground_truth.dataset), "COCO object"
    if isinstance(ground_truth, dict):
        return copy.deepcopy(ground_truth), "annotation dict"
    if isinstance(ground_truth, (str, Path)):
        return _load_json(Path(ground_truth), "annotation"), str(ground_truth)
    raise DatasetError(f"ground truth must be a path, a dict or a pycocotools COCO, got {type(ground_truth).__name__}")


def _validate_ground_truth(dataset: Any, name: str) -> int:
    """Check the fields COCOeval reads; return K."""
    if not isinstance(dataset, dict):
        raise DatasetError(f"{name}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DatasetError(f"{name}: missing or non-list '{key}'")
    if not dataset["annotations"]:
        raise DatasetError(f"{name}: contains no annotations, so there is nothing to evaluate against")
    image_ids = {image.get("id") for image in dataset["images"] if isinstance(image, dict)}
    num_values = None
    for index, ann in enumerate(dataset["annotations"]):
        missing = [key for key in _ANNOTATION_KEYS if not isinstance(ann, dict) or key not in ann]
        if missing:
            raise DatasetError(f"{name}: annotation #{index} lacks {missing} (COCO keypoint annotations need them)")
        if ann["image_id"] not in image_ids:
            raise DatasetError(
                f"{name}: annotation #{index} (id {ann['id']}) refers to unknown image {ann['image_id']}"
            )
        if num_values is None:
            num_values = len(ann["keypoints"])
        if len(ann["keypoints"]) != num_values or num_values % 3 or num_values == 0:
            raise DatasetError(
                f"{name}: annotation #{index} (id {ann['id']}) has {len(ann['keypoints'])} keypoint values; every "
                f"annotation needs the same 3 * K values (first one has {num_values})"
            )
    return num_values // 3


def _results_list(results: str | Path | Sequence[dict[str, Any]], image_ids: set[Any], num_joints: int) -> list:
    """A validated copy of the results in the official format: ``bbox`` and ``area`` dropped, so that ``loadRes``
    takes the area from the keypoints' extent (and it adds ``area``/``bbox``/``id`` to the copies, not the input)."""
    if isinstance(results, (str, Path)):
        results = _load_json(Path(results), "results")
        if not isinstance(results, list):
            raise InvalidInputError("results file must hold a JSON list of result dicts")
    copied = []
    for index, result in enumerate(results):
        missing = [key for key in _RESULT_KEYS if not isinstance(result, dict) or key not in result]
        if missing:
            raise InvalidInputError(f"result #{index} lacks {missing}")
        if result["image_id"] not in image_ids:
            raise InvalidInputError(f"result #{index} refers to image {result['image_id']}, not in the ground truth")
        if len(result["keypoints"]) != 3 * num_joints:
            raise InvalidInputError(
                f"result #{index} has {len(result['keypoints'])} keypoint values, expected {3 * num_joints}"
            )
        entry = {k: v for k, v in result.items() if k not in _DROPPED_RESULT_KEYS}
        copied.append({**entry, "keypoints": [float(v) for v in result["keypoints"]]})
    return copied


def evaluate_coco(
    ground_truth: str | Path | dict[str, Any] | COCO,
    results: str | Path | Sequence[dict[str, Any]],
    sigmas: KeypointSpec | Sequence[float] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR with pycocotools (``COCOeval(iouType="keypoints")``), its printing silenced.

    Neither input is modified (pycocotools writes into annotation and result dicts, so it gets copies). Results
    are scored in the official evaluators' format: a result's ``bbox`` and ``area`` are dropped, so its area is
    that of its keypoints' extent (see the module docstring). Empty results are evaluated as "no detections":
    pycocotools then gives AP = AR = 0 for every area range that has ground truth (and -1 where a range has none).

    Args:
        ground_truth: COCO keypoint annotation file, its parsed dict, or a ``pycocotools.coco.COCO``.
        results: COCO results list (e.g. :func:`results_to_coco`) or a JSON file holding one.
        sigmas: Per-joint OKS sigmas (a :class:`~posecommon.KeypointSpec` or K floats); ``None`` uses COCO's and
            is allowed only for K = 17.

    Returns:
        ``{"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"}`` as floats in ``[0, 1]``
        (or -1 when undefined).

    Raises:
        DatasetError: the annotation file is missing, empty, not JSON, has no annotations or malformed ones.
        InvalidInputError: a result is malformed or refers to an unknown image, or sigmas are missing for K != 17.
    """
    dataset, name = _ground_truth_dict(ground_truth)
    num_joints = _validate_ground_truth(dataset, name)
    kpt_sigmas = resolve_sigmas(sigmas, num_joints).numpy()
    image_ids = {image["id"] for image in dataset["images"]}
    detections = _results_list(results, image_ids, num_joints)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(dataset["images"]), "categories": list(dataset["categories"])}
            coco_dt.dataset["annotations"] = []
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        coco_eval.params.kpt_oks_sigmas = np.asarray(kpt_sigmas, dtype=np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    logger.info("COCOeval keypoints:\n%s", output.getvalue())
    return {key: float(value) for key, value in zip(COCO_STAT_NAMES, coco_eval.stats, strict=True)}
