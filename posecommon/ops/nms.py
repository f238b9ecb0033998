"""Box IoU and greedy non-maximum suppression in plain torch (no torchvision).

Greedy NMS visits boxes by descending score; ties are broken by the lower input index (a stable sort), so the
result is deterministic. A box is suppressed when its IoU with an already kept box is strictly greater than the
threshold (torchvision's convention).
"""

from __future__ import annotations

import torch

from ..errors import InvalidInputError

__all__ = ["batched_nms", "box_iou", "nms"]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` ``(x1, y1, x2, y2)`` boxes -> ``(N, M)``; empty boxes give 0."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def _check(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != (boxes.shape[0],):
        raise InvalidInputError(f"scores must be ({boxes.shape[0]},), got {tuple(scores.shape)}")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS.

    Args:
        boxes: ``(N, 4)`` ``(x1, y1, x2, y2)``.
        scores: ``(N,)``.
        iou_threshold: Suppress boxes whose IoU with a kept box is greater than this.

    Returns:
        ``(N_keep,)`` int64 indices of the kept boxes, by descending score (ties: lower index first), on the
        device of ``boxes``.

    Raises:
        InvalidInputError: shapes do not match.
    """
    _check(boxes, scores)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    # One (N, N) comparison on the device, then a cheap host-side sweep over the boolean matrix.
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    suppressed = torch.zeros(order.shape[0], dtype=torch.bool)
    keep = []
    for i in range(order.shape[0]):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS run independently within each group (class or image), in one pass.

    Boxes of different groups are shifted apart by ``group * (span + 1)`` so they can never overlap, then one
    :func:`nms` runs over all of them.

    Args:
        boxes: ``(N, 4)`` ``(x1, y1, x2, y2)``.
        scores: ``(N,)``.
        groups: ``(N,)`` integer group ids (non-negative).
        iou_threshold: Suppression threshold.

    Returns:
        ``(N_keep,)`` int64 indices of kept boxes over all groups, by descending score (ties: lower index first).

    Raises:
        InvalidInputError: shapes do not match.
    """
    _check(boxes, scores)
    if groups.shape != scores.shape:
        raise InvalidInputError(f"groups must be ({boxes.shape[0]},), got {tuple(groups.shape)}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = (boxes.max() - boxes.min()).to(boxes.dtype) + 1
    offsets = groups.to(boxes.dtype)[:, None] * span
    return nms(boxes - boxes.min() + offsets, scores, iou_threshold)
