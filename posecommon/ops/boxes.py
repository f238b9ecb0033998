"""Element-wise box operations for losses and target assignment: format conversion, IoU and Complete IoU (CIoU).

Pure, batched torch: every function broadcasts over leading dimensions, works on any device and dtype, never
modifies its inputs and is differentiable where noted. (Pairwise ``(N, M)`` IoU for NMS is
:func:`posecommon.ops.box_iou`.)

Shape key and formats:
    - ``(..., 4)`` boxes; ``xyxy`` = ``(x1, y1, x2, y2)`` corners, ``cxcywh`` = ``(cx, cy, w, h)`` centre and size.
      (COCO's top-left ``(x, y, w, h)`` is :func:`posecommon.ops.geometry.box_xyxy_to_xywh`'s format, not this one.)
    - Coordinates are continuous and in any frame, as long as both arguments share it; IoU and CIoU are invariant
      to translation and to uniform scaling.
"""

from __future__ import annotations

import math

import torch

__all__ = ["aligned_box_ciou", "aligned_box_iou", "box_cxcywh_to_xyxy", "box_xyxy_to_cxcywh"]


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Centre/size boxes to corner boxes.

    Shape:
        - Input: ``(..., 4)`` ``(cx, cy, w, h)``
        - Output: ``(..., 4)`` ``(x1, y1, x2, y2)``
    """
    centre, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat((centre - size / 2, centre + size / 2), dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """Corner boxes to centre/size boxes (the exact inverse of :func:`box_cxcywh_to_xyxy`).

    Shape:
        - Input: ``(..., 4)`` ``(x1, y1, x2, y2)``
        - Output: ``(..., 4)`` ``(cx, cy, w, h)``
    """
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim=-1)


def _iou_parts(
    boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """IoU plus the sizes and the enclosing box that CIoU needs (xyxy inputs, broadcast together)."""
    w1 = boxes1[..., 2] - boxes1[..., 0]
    h1 = boxes1[..., 3] - boxes1[..., 1]
    w2 = boxes2[..., 2] - boxes2[..., 0]
    h2 = boxes2[..., 3] - boxes2[..., 1]
    inter_w = (torch.minimum(boxes1[..., 2], boxes2[..., 2]) - torch.maximum(boxes1[..., 0], boxes2[..., 0])).clamp(
        min=0
    )
    inter_h = (torch.minimum(boxes1[..., 3], boxes2[..., 3]) - torch.maximum(boxes1[..., 1], boxes2[..., 1])).clamp(
        min=0
    )
    inter = inter_w * inter_h
    union = w1.clamp(min=0) * h1.clamp(min=0) + w2.clamp(min=0) * h2.clamp(min=0) - inter
    iou = inter / (union + eps)
    return iou, w1, h1, w2, h2, union


def aligned_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of corresponding boxes (not all pairs), differentiable.

    Args:
        boxes1: ``(..., 4)`` xyxy boxes.
        boxes2: ``(..., 4)`` xyxy boxes, broadcastable with ``boxes1``.
        eps: Added to the union so that empty boxes give 0 instead of NaN.

    Returns:
        ``(...)`` IoU in ``[0, 1]``; boxes with negative width or height count as empty.
    """
    return _iou_parts(boxes1, boxes2, eps)[0]


def aligned_box_ciou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al., 2020) of corresponding boxes, differentiable.

    ``CIoU = IoU - rho^2 / c^2 - alpha * v`` with ``rho`` the distance between the box centres, ``c`` the diagonal
    of the smallest box enclosing both, ``v = 4 / pi^2 * (atan(w2 / h2) - atan(w1 / h1))^2`` the aspect-ratio
    mismatch and ``alpha = v / (1 - IoU + v)``. As in the CIoU paper and YOLOv5, ``alpha`` is a constant of the
    gradient (computed without autograd). ``1 - CIoU`` is the CIoU loss, in ``[0, 2]`` up to ``v``'s small share.

    Args:
        boxes1: ``(..., 4)`` xyxy boxes (the prediction, in a loss).
        boxes2: ``(..., 4)`` xyxy boxes (the target), broadcastable with ``boxes1``.
        eps: Guards the union, the enclosing diagonal, the heights in the aspect ratios and ``alpha``'s
            denominator.

    Returns:
        ``(...)`` CIoU in ``[-1, 1]``.
    """
    iou, w1, h1, w2, h2, _ = _iou_parts(boxes1, boxes2, eps)
    enclose_w = torch.maximum(boxes1[..., 2], boxes2[..., 2]) - torch.minimum(boxes1[..., 0], boxes2[..., 0])
    enclose_h = torch.maximum(boxes1[..., 3], boxes2[..., 3]) - torch.minimum(boxes1[..., 1], boxes2[..., 1])
    diagonal_sq = enclose_w**2 + enclose_h**2 + eps
    centre_dx = (boxes2[..., 0] + boxes2[..., 2] - boxes1[..., 0] - boxes1[..., 2]) / 2
    centre_dy = (boxes2[..., 1] + boxes2[..., 3] - boxes1[..., 1] - boxes1[..., 3]) / 2
    distance_sq = centre_dx**2 + centre_dy**2
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (distance_sq / diagonal_sq + alpha * v)
