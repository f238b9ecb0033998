"""Box IoU and greedy non-maximum suppression in plain torch (no torchvision), in memory linear in the box count.

Greedy NMS visits boxes by descending score; ties are broken by the lower input index (a stable sort), so the
result is deterministic. A box is suppressed when its IoU with an already kept box is strictly greater than the
threshold (torchvision's convention).

Memory: the greedy result is computed block by block in score order and never materialises an ``N x N`` matrix.
Each block of :data:`BLOCK` candidates is first compared with the boxes already kept (in tiles of at most
:data:`TILE_ELEMENTS` pairs), then resolved greedily inside the block (a ``BLOCK x BLOCK`` matrix). Peak memory is
therefore ``O(N)`` for the boxes plus a constant for one tile: at 30,000 candidates about 20 MB instead of the
~40 GB that an ``N x N`` IoU matrix with its temporaries would need (``posezoo bench`` measures it). The result is
exactly the greedy result of the brute-force definition: the IoU of every compared pair is computed with the same
floating-point operations as :func:`box_iou`, and a box is only ever tested against boxes of higher priority.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidInputError

__all__ = ["BLOCK", "TILE_ELEMENTS", "batched_nms", "box_iou", "nms"]

BLOCK = 512
"""Candidates resolved together (in score order); the in-block IoU matrix is ``BLOCK x BLOCK``."""
TILE_ELEMENTS = 1 << 20
"""At most this many box pairs are compared at once (the IoU tile against the kept boxes)."""


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


def _overlaps(coords1: torch.Tensor, coords2: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``box_iou(boxes1, boxes2) > iou_threshold`` as ``(N, M)`` bool, with (N, M)-sized temporaries only.

    Args:
        coords1: ``(5, N)`` rows ``x1, y1, x2, y2, area`` (contiguous rows make the broadcasts fast).
        coords2: ``(5, M)`` likewise.
        iou_threshold: IoU threshold.

    The arithmetic is :func:`box_iou`'s, operation for operation (same rounding), so the comparison agrees with it
    exactly.
    """
    x1, y1, x2, y2, area1 = coords1[:, :, None]
    u1, v1, u2, v2, area2 = coords2[:, None, :]
    inter = torch.minimum(x2, u2)
    inter -= torch.maximum(x1, u1)
    inter.clamp_(min=0)
    height = torch.minimum(y2, v2)
    height -= torch.maximum(y1, v1)
    inter *= height.clamp_(min=0)
    del height
    union = area1 + area2
    union -= inter
    positive = union > 0
    inter /= union.clamp_(min=torch.finfo(union.dtype).tiny)
    return inter.masked_fill_(~positive, 0) > iou_threshold


def _check(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != (boxes.shape[0],):
        raise InvalidInputError(f"scores must be ({boxes.shape[0]},), got {tuple(scores.shape)}")


def _greedy(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor | None, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS over boxes of the same group (all boxes when ``groups`` is None); see the module docstring."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    coords = torch.cat((boxes.T, area[None]))  # (5, N) in score order
    if groups is not None:
        groups = groups[order]
    kept = torch.zeros(0, dtype=torch.long, device=boxes.device)  # positions in score order
    for start in range(0, boxes.shape[0], BLOCK):
        rows = torch.arange(start, min(start + BLOCK, boxes.shape[0]), device=boxes.device)
        # 1. drop the block's boxes that overlap an already kept box (tile by tile, on the survivors only)
        step = max(1, TILE_ELEMENTS // rows.shape[0])
        for tile_start in range(0, kept.shape[0], step):
            tile = kept[tile_start : tile_start + step]
            hit = _overlaps(coords[:, rows], coords[:, tile], iou_threshold)
            if groups is not None:
                hit &= groups[rows][:, None] == groups[tile][None, :]
            rows = rows[~hit.any(dim=1)]
            if rows.numel() == 0:
                break
        if rows.numel() == 0:
            continue
        # 2. greedy inside the block: a kept box suppresses the later boxes it overlaps
        inner = _overlaps(coords[:, rows], coords[:, rows], iou_threshold)
        if groups is not None:
            inner &= groups[rows][:, None] == groups[rows][None, :]
        inner_np = inner.cpu().numpy()
        alive = np.ones(rows.shape[0], dtype=bool)
        for i in range(rows.shape[0]):
            if alive[i]:
                alive[i + 1 :] &= ~inner_np[i, i + 1 :]
        kept = torch.cat((kept, rows[torch.from_numpy(alive).to(rows.device)]))
    return order[kept]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS in linear memory.

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
    return _greedy(boxes, scores, None, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS run independently within each group (class or image), in one pass and linear memory.

    Boxes of different groups never suppress each other; the IoU of boxes of the same group is computed on their
    own coordinates (no coordinate offsets, so the result equals running :func:`nms` on each group).

    Args:
        boxes: ``(N, 4)`` ``(x1, y1, x2, y2)``.
        scores: ``(N,)``.
        groups: ``(N,)`` integer group ids.
        iou_threshold: Suppression threshold.

    Returns:
        ``(N_keep,)`` int64 indices of kept boxes over all groups, by descending score (ties: lower index first).

    Raises:
        InvalidInputError: shapes do not match.
    """
    _check(boxes, scores)
    if groups.shape != scores.shape:
        raise InvalidInputError(f"groups must be ({boxes.shape[0]},), got {tuple(groups.shape)}")
    return _greedy(boxes, scores, groups.to(boxes.device), iou_threshold)
