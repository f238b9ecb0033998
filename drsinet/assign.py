"""YOLOv5 / YOLO-Pose target assignment: which (level, anchor, cell) slots predict each ground-truth person.

This is the training-side counterpart of :mod:`drsinet.decode`. A target box of size ``(w, h)`` (input pixels) is
matched, independently on every level, to every anchor ``(aw, ah)`` of that level whose size ratio passes
``max(w / aw, aw / w, h / ah, ah / h) < anchor_threshold`` (YOLOv5's ``anchor_t = 4``; the decoded size
``(2 sigmoid)^2 * anchor`` spans ``(0, 4) * anchor``, so a larger ratio could not be represented). For each match
the slot is the cell ``floor(c / stride)`` (clamped to the grid) holding the box centre ``c``, plus, by YOLOv5's
offset rule with ``neighbour_offset = 0.5``, the horizontal neighbour on the side of the nearer cell edge (left when
the fractional part of ``c_x / stride`` is below 0.5, right when above 0.5) and likewise the vertical neighbour, if
those cells exist. A target thus occupies at most 3 cells per matched anchor, and its centre offset from any of
them lies in ``(-0.5, 1.5)`` cells, inside the decodable range ``2 sigmoid - 0.5``. (YOLOv5 writes the rule with
``gxy % 1 < 0.5 & gxy > 1``; it also takes both horizontal neighbours when the centre falls exactly on a cell edge,
which this implementation does not.)

Coordinates: targets are in input pixels, in the same frame the decoder outputs (no half-pixel shift is applied
either way, so what the model learns is what :func:`drsinet.decode.decode_outputs` returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from posecommon.errors import InvalidInputError

__all__ = ["LevelAssignment", "assign_targets"]


@dataclass(frozen=True)
class LevelAssignment:
    """The positive slots of one output level; all fields are ``(n,)`` int64 tensors, one entry per slot.

    A target may appear several times (several anchors and neighbouring cells), and with crowded targets two
    entries may name the same slot.

    Attributes:
        target: Row of the target (index into the ``M`` targets given to :func:`assign_targets`).
        batch: Image of the batch (the target's batch index).
        anchor: Anchor of the level, in ``[0, A)``.
        grid_y: Cell row, in ``[0, H_l)``.
        grid_x: Cell column, in ``[0, W_l)``.
    """

    target: torch.Tensor
    batch: torch.Tensor
    anchor: torch.Tensor
    grid_y: torch.Tensor
    grid_x: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])


def assign_targets(
    batch_index: torch.Tensor,
    boxes: torch.Tensor,
    anchors: torch.Tensor,
    strides: Sequence[int],
    grid_sizes: Sequence[tuple[int, int]],
    anchor_threshold: float = 4.0,
    neighbour_offset: float = 0.5,
) -> list[LevelAssignment]:
    """Match targets to anchors and cells on every level (see the module docstring for the rules).

    Args:
        batch_index: ``(M,)`` image index of each target (integral values; float is accepted, as in collated
            target tensors).
        boxes: ``(M, 4)`` target boxes ``(cx, cy, w, h)`` in input pixels. Boxes with ``w <= 0`` or ``h <= 0``
            match nothing.
        anchors: ``(L, A, 2)`` anchor ``(w, h)`` in input pixels.
        strides: L strides.
        grid_sizes: L grid sizes ``(H_l, W_l)``.
        anchor_threshold: Largest allowed ratio between a box side and the matching anchor side (exclusive).
        neighbour_offset: ``g`` in ``[0, 0.5]``: the left neighbour is added when the fractional centre position is
            below ``g``, the right one when it is above ``1 - g`` (same vertically); 0 keeps only the centre cell.

    Returns:
        L :class:`LevelAssignment`, on ``boxes``' device. Order within a level: neighbour kind (centre cell, left,
        up, right, down), then anchor, then target.

    Raises:
        InvalidInputError: shapes or lengths disagree, or ``neighbour_offset`` / ``anchor_threshold`` is out of range.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be (M, 4) (cx, cy, w, h), got {tuple(boxes.shape)}")
    if batch_index.shape != boxes.shape[:1]:
        raise InvalidInputError(f"batch_index must be ({boxes.shape[0]},), got {tuple(batch_index.shape)}")
    if anchors.dim() != 3 or anchors.shape[-1] != 2:
        raise InvalidInputError(f"anchors must be (L, A, 2), got {tuple(anchors.shape)}")
    if not (anchors.shape[0] == len(strides) == len(grid_sizes)):
        raise InvalidInputError(
            f"got {anchors.shape[0]} anchor groups, {len(strides)} strides and {len(grid_sizes)} grid sizes"
        )
    if not 0.0 <= neighbour_offset <= 0.5:
        raise InvalidInputError(f"neighbour_offset must be in [0, 0.5], got {neighbour_offset}")
    if not anchor_threshold > 1.0:
        raise InvalidInputError(f"anchor_threshold must be > 1, got {anchor_threshold}")
    device = boxes.device
    boxes = boxes.float()
    batch_index = batch_index.to(device).long()
    anchors = anchors.to(device=device, dtype=torch.float32)
    num_anchors = anchors.shape[1]
    num_targets = boxes.shape[0]
    valid = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    target_ids = torch.arange(num_targets, device=device)
    anchor_ids = torch.arange(num_anchors, device=device)
    results = []
    for level_anchors, stride, (height, width) in zip(anchors, strides, grid_sizes, strict=True):
        # (A, M) anchor-target pairs passing the size-ratio test.
        ratio = boxes[None, :, 2:4] / level_anchors[:, None, :]
        worst = torch.maximum(ratio, 1.0 / ratio.clamp(min=torch.finfo(ratio.dtype).tiny)).amax(dim=-1)
        matched = (worst < anchor_threshold) & valid[None, :]
        pair_anchor = anchor_ids[:, None].expand(num_anchors, num_targets)[matched]
        pair_target = target_ids[None, :].expand(num_anchors, num_targets)[matched]
        centre = boxes[pair_target, :2] / stride  # (n, 2) in cells
        limit = torch.tensor((width - 1, height - 1), device=device)
        cell = torch.minimum(centre.floor().long().clamp(min=0), limit)
        frac = centre - cell  # fractional position in the (clamped) cell; outside [0, 1) only at the image border
        # Centre cell, then left, up, right, down neighbours where the offset rule and the grid allow them.
        shifts = torch.tensor(((0, 0), (-1, 0), (0, -1), (1, 0), (0, 1)), device=device)
        take = torch.stack(
            (
                torch.ones_like(frac[:, 0], dtype=torch.bool),
                (frac[:, 0] < neighbour_offset) & (cell[:, 0] > 0),
                (frac[:, 1] < neighbour_offset) & (cell[:, 1] > 0),
                (frac[:, 0] > 1 - neighbour_offset) & (cell[:, 0] < limit[0]),
                (frac[:, 1] > 1 - neighbour_offset) & (cell[:, 1] < limit[1]),
            )
        )  # (5, n)
        slot_cell = (cell[None] + shifts[:, None, :])[take]  # (n_slots, 2) (x, y)
        slot_target = pair_target[None].expand_as(take)[take]
        slot_anchor = pair_anchor[None].expand_as(take)[take]
        results.append(
            LevelAssignment(
                target=slot_target,
                batch=batch_index[slot_target],
                anchor=slot_anchor,
                grid_y=slot_cell[:, 1],
                grid_x=slot_cell[:, 0],
            )
        )
    return results
