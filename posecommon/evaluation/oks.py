"""Object keypoint similarity (OKS), vectorised in torch and identical to pycocotools' ``COCOeval.computeOks``.

Shape key:
    - N: predicted instances, M: ground-truth instances, K: joints.
    - ``pred``: ``(N, K, 2)`` or ``(N, K, 3)`` ``(x, y[, score])`` in image pixels (the score is ignored, as in
      COCOeval). ``gt``: ``(M, K, 3)`` ``(x, y, v)``; a joint counts as labelled when ``v > 0``.
    - ``areas``: ``(M,)`` ground-truth areas (COCO ``area``). ``gt_boxes``: ``(M, 4)`` COCO ``(x, y, w, h)``.

Pixel convention: whatever the inputs use, as long as predictions and ground truth agree (OKS depends on
differences only).

For a ground truth with ``k1 > 0`` labelled joints, COCOeval computes
``mean over labelled joints of exp(-d^2 / (2 * (2 sigma)^2 * (area + eps)))`` with ``eps = np.spacing(1)``. For a
ground truth with no labelled joint it measures, for every joint, the distance from the prediction to the box
``[x - w, x + 2w] x [y - h, y + 2h]`` (the gt box doubled around itself; zero inside) and averages over all K
joints; this branch needs ``gt_boxes``. The same function serves OKS losses (it is differentiable in ``pred``),
OKS-NMS and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..keypoints import COCO17, KeypointSpec

__all__ = ["oks", "resolve_sigmas"]

_EPS = float(np.spacing(1))


def resolve_sigmas(
    sigmas: KeypointSpec | Sequence[float] | np.ndarray | torch.Tensor | None,
    num_joints: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-joint OKS sigmas as a ``(K,)`` tensor.

    Args:
        sigmas: A :class:`~posecommon.KeypointSpec` (its ``sigmas``), a sequence/array/tensor of K values, or
            ``None``, which means the COCO sigmas and is allowed only when ``num_joints == 17``.
        num_joints: K.
        dtype: Output dtype.
        device: Output device.

    Raises:
        InvalidInputError: no sigmas available for K joints, or the wrong number of them.
    """
    if isinstance(sigmas, KeypointSpec):
        if sigmas.sigmas is None:
            raise InvalidInputError(
                f"KeypointSpec {sigmas.name!r} has no OKS sigmas; build it with sigmas=... (one per joint) to use OKS"
            )
        values = sigmas.sigmas
    elif sigmas is None:
        if num_joints != COCO17.num_joints:
            raise InvalidInputError(
                f"OKS needs per-joint sigmas for {num_joints} joints; only the 17 COCO joints have a default. Pass "
                "sigmas=keypoint_spec (a KeypointSpec with sigmas) or a sequence of floats"
            )
        values = COCO17.sigmas
    else:
        values = sigmas
    result = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor) else values)
    result = result.to(dtype=dtype, device=device)
    if result.shape != (num_joints,):
        raise InvalidInputError(f"expected {num_joints} OKS sigmas, got shape {tuple(result.shape)}")
    return result


def oks(
    pred: torch.Tensor | np.ndarray,
    gt: torch.Tensor | np.ndarray,
    areas: torch.Tensor | np.ndarray,
    sigmas: KeypointSpec | Sequence[float] | np.ndarray | torch.Tensor | None = None,
    gt_boxes: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """OKS between every prediction and every ground truth, as ``COCOeval.computeOks``.

    Args:
        pred: ``(N, K, 2|3)`` predicted keypoints.
        gt: ``(M, K, 3)`` ground-truth keypoints with visibility flags.
        areas: ``(M,)`` ground-truth areas.
        sigmas: Per-joint sigmas, see :func:`resolve_sigmas` (``None`` = COCO, only for K = 17).
        gt_boxes: ``(M, 4)`` COCO ``(x, y, w, h)`` ground-truth boxes; required only when some ground truth has no
            labelled joint.

    Returns:
        ``(N, M)`` OKS in ``[0, 1]``, in the promoted floating dtype of ``pred`` and ``gt`` (float64 for numpy
        inputs), on ``pred``'s device; differentiable with respect to ``pred``.

    Raises:
        InvalidInputError: shapes disagree, sigmas are missing, or ``gt_boxes`` is missing where needed.
    """
    pred = torch.as_tensor(pred)
    gt = torch.as_tensor(gt, device=pred.device)
    areas = torch.as_tensor(areas, device=pred.device)
    if pred.dim() != 3 or pred.shape[-1] not in (2, 3):
        raise InvalidInputError(f"pred must be (N, K, 2) or (N, K, 3), got {tuple(pred.shape)}")
    num_joints = pred.shape[1]
    if gt.dim() != 3 or gt.shape[1:] != (num_joints, 3):
        raise InvalidInputError(f"gt must be (M, {num_joints}, 3), got {tuple(gt.shape)}")
    if areas.shape != gt.shape[:1]:
        raise InvalidInputError(f"areas must be ({gt.shape[0]},), got {tuple(areas.shape)}")
    dtype = torch.promote_types(pred.dtype, gt.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64
    variances = (2 * resolve_sigmas(sigmas, num_joints, dtype, pred.device)) ** 2  # (K,)
    xd, yd = pred[None, :, :, 0].to(dtype), pred[None, :, :, 1].to(dtype)  # (1, N, K)
    gt = gt.to(dtype)
    xg, yg = gt[:, None, :, 0], gt[:, None, :, 1]  # (M, 1, K)
    labelled = gt[:, :, 2] > 0  # (M, K)
    num_labelled = labelled.sum(dim=1)  # (M,)
    dx = xd - xg
    dy = yd - yg
    if (num_labelled == 0).any():
        if gt_boxes is None:
            raise InvalidInputError(
                "some ground truths have no labelled keypoint; COCOeval then measures the distance to the gt box, "
                "so pass gt_boxes (M, 4) as COCO (x, y, w, h)"
            )
        boxes = torch.as_tensor(gt_boxes, device=pred.device).to(dtype)
        if boxes.shape != (gt.shape[0], 4):
            raise InvalidInputError(f"gt_boxes must be ({gt.shape[0]}, 4), got {tuple(boxes.shape)}")
        x0 = (boxes[:, 0] - boxes[:, 2])[:, None, None]
        x1 = (boxes[:, 0] + 2 * boxes[:, 2])[:, None, None]
        y0 = (boxes[:, 1] - boxes[:, 3])[:, None, None]
        y1 = (boxes[:, 1] + 2 * boxes[:, 3])[:, None, None]
        box_dx = (x0 - xd).clamp(min=0) + (xd - x1).clamp(min=0)
        box_dy = (y0 - yd).clamp(min=0) + (yd - y1).clamp(min=0)
        no_label = (num_labelled == 0)[:, None, None]
        dx = torch.where(no_label, box_dx, dx)
        dy = torch.where(no_label, box_dy, dy)
        counted = labelled | (num_labelled == 0)[:, None]  # the box branch averages over all K joints
    else:
        counted = labelled
    e = (dx**2 + dy**2) / variances / (areas.to(dtype)[:, None, None] + _EPS) / 2  # (M, N, K)
    total = (torch.exp(-e) * counted[:, None, :]).sum(dim=-1)
    return (total / counted.sum(dim=1).clamp(min=1)[:, None]).transpose(0, 1)
