"""YOLO-Pose target assignment: which (level, anchor, cell) slots learn each ground-truth person, and what they learn.

This is the training-side counterpart of :mod:`drsinet.decode`, written to behave exactly as ``build_targets`` of
the YOLO-Pose code (``utils/loss.py:182-245`` on branch ``yolo-pose`` of TexasInstruments/edgeai-yolov5), which
the DRSI-Net paper trains with. Everything happens in grid units of each level (input pixels / stride):

- Targets come in YOLO-Pose's layout, normalised by the input size (:func:`build_targets`); multiplying by the
  level's grid size ``(W_l, H_l)`` gives grid units (``loss.py:202, 207``). Anchors are divided by the stride
  (``models/yolo.py:142``).
- **Anchors** (``loss.py:210-213``): a target matches every anchor ``(aw, ah)`` of the level with
  ``max(w / aw, aw / w, h / ah, ah / h) < anchor_threshold`` (``anchor_t = 4.0``, ``data/hyp.scratch.yaml:21``).
- **Cells** (``loss.py:216-222, 231``): with the centre ``g`` in grid units and ``g' = (W_l, H_l) - g``, the
  matched pair takes the centre cell ``floor(g)`` and, per axis, the *left/upper* neighbour when
  ``g % 1 < 0.5 and g > 1`` and the *right/lower* neighbour when ``g' % 1 < 0.5 and g' > 1``. A neighbour's cell
  is ``trunc(g + 0.5)`` or ``trunc(g - 0.5)``. So a centre exactly on a cell edge (``g % 1 == 0``) takes both
  horizontal "neighbours", the second of which is the centre cell itself (``trunc(g + 0.5) == g``): the target
  then appears twice in that cell. A centre at ``g == 1.0`` exactly takes no left neighbour.
- **Clamping** (``loss.py:231-237``): cell indices are clamped to the grid *in place*, so the box and keypoint
  offsets below use the clamped cell (the official code clamps views of the index tensor; the effect is visible
  only for a centre exactly on the far image edge, ``g == W_l``, whose offset is then 1.0).
- **Box target** (``loss.py:237``): ``(g - cell, w, h)``; the offset lies in ``(-0.5, 1.5]``.
- **Keypoint targets** (``loss.py:239-241``): every *non-zero* coordinate minus the cell's coordinate on that
  axis (x and y independently); zeros (unlabelled joints) stay 0. The keypoint loss then treats a joint as
  labelled when its *shifted* x is non-zero (``loss.py:143``), so a labelled joint whose x lies exactly on the
  cell's left edge counts as unlabelled, as in the official code.

Order of the slots within a level (which decides "last write wins" for the objectness target,
:class:`drsinet.loss.DRSILoss`): centre cells, then left, upper, right and lower neighbours (``loss.py:194-197,
220-222``); inside each, anchor-major, then target order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from posecommon.errors import InvalidInputError

__all__ = ["LevelTargets", "build_targets"]

# Cell offsets of the centre, left, upper, right and lower slots, in cells (loss.py:193-197: g = 0.5).
_OFFSETS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0), (0.0, -0.5))


@dataclass(frozen=True)
class LevelTargets:
    """The positive slots of one output level and their targets, ``n`` slots; all in grid units of the level.

    A target may appear several times (several anchors and cells), and two entries may name the same slot.

    Attributes:
        target: ``(n,)`` int64 row of the target in the ``targets`` given to :func:`build_targets`.
        batch: ``(n,)`` int64 image of the batch.
        anchor: ``(n,)`` int64 anchor of the level, in ``[0, A)``.
        grid_y: ``(n,)`` int64 cell row, in ``[0, H_l)``.
        grid_x: ``(n,)`` int64 cell column, in ``[0, W_l)``.
        box: ``(n, 4)`` float32 ``(x - grid_x, y - grid_y, w, h)``: centre offset from the cell, box size.
        keypoints: ``(n, K, 2)`` float32 joint coordinates minus the cell (non-zero coordinates only; 0 means
            unlabelled).
        anchor_wh: ``(n, 2)`` float32 the matched anchor's ``(w, h)``.
    """

    target: torch.Tensor
    batch: torch.Tensor
    anchor: torch.Tensor
    grid_y: torch.Tensor
    grid_x: torch.Tensor
    box: torch.Tensor
    keypoints: torch.Tensor
    anchor_wh: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])


def build_targets(
    targets: torch.Tensor,
    anchors: torch.Tensor,
    strides: Sequence[int],
    grid_sizes: Sequence[tuple[int, int]],
    anchor_threshold: float = 4.0,
) -> list[LevelTargets]:
    """Match targets to anchors and cells on every level (see the module docstring for the rules).

    Args:
        targets: ``(n, 6 + 2K)`` YOLO-Pose targets ``[image, class, cx, cy, w, h, x_1, y_1, ..., x_K, y_K]``,
            coordinates normalised to ``[0, 1]`` by the input width (x) and height (y), 0 for unlabelled joints.
            The class column is not used.
        anchors: ``(L, A, 2)`` anchor ``(w, h)`` in input pixels.
        strides: L strides.
        grid_sizes: L grid sizes ``(H_l, W_l)``.
        anchor_threshold: Largest allowed ratio between a box side and the matching anchor side (exclusive).

    Returns:
        L :class:`LevelTargets`, on ``targets``' device.

    Raises:
        InvalidInputError: shapes or lengths disagree, a box has a negative side, or ``anchor_threshold <= 1``.
    """
    if targets.dim() != 2 or targets.shape[1] < 6 or targets.shape[1] % 2:
        raise InvalidInputError(f"targets must be (n, 6 + 2K), got {tuple(targets.shape)}")
    if anchors.dim() != 3 or anchors.shape[-1] != 2:
        raise InvalidInputError(f"anchors must be (L, A, 2), got {tuple(anchors.shape)}")
    if not (anchors.shape[0] == len(strides) == len(grid_sizes)):
        raise InvalidInputError(
            f"got {anchors.shape[0]} anchor groups, {len(strides)} strides and {len(grid_sizes)} grid sizes"
        )
    if not anchor_threshold > 1.0:
        raise InvalidInputError(f"anchor_threshold must be > 1, got {anchor_threshold}")
    if (targets[:, 4:6] < 0).any():
        raise InvalidInputError("target boxes must have non-negative width and height (columns 4, 5)")
    device = targets.device
    targets = targets.float()
    num_targets = targets.shape[0]
    num_joints = (targets.shape[1] - 6) // 2
    num_anchors = anchors.shape[1]
    anchors = anchors.to(device=device, dtype=torch.float32)
    offsets = torch.tensor(_OFFSETS, device=device)
    target_ids = torch.arange(num_targets, device=device)
    anchor_ids = torch.arange(num_anchors, device=device)
    results = []
    for level_anchors, stride, (height, width) in zip(anchors, strides, grid_sizes, strict=True):
        size = torch.tensor((float(width), float(height)), device=device)
        points = targets[:, 2:].reshape(num_targets, 2 + num_joints, 2) * size  # (n, 2 + K, 2) grid units
        anchors_grid = level_anchors / stride
        # (A, n) anchor-target pairs passing the size-ratio test, anchor-major as in loss.py:190-213.
        ratio = points[None, :, 1, :] / anchors_grid[:, None, :]
        matched = torch.maximum(ratio, 1.0 / ratio).amax(dim=-1) < anchor_threshold
        pair_anchor = anchor_ids[:, None].expand(num_anchors, num_targets)[matched]
        pair_target = target_ids[None, :].expand(num_anchors, num_targets)[matched]
        centre = points[pair_target, 0]  # (m, 2)
        inverse = size - centre
        low_side = ((centre % 1.0 < 0.5) & (centre > 1.0)).T  # (2, m): left, upper
        high_side = ((inverse % 1.0 < 0.5) & (inverse > 1.0)).T  # (2, m): right, lower
        take = torch.cat((torch.ones_like(low_side[:1]), low_side, high_side))  # (5, m)
        slot_centre = centre[None].expand(5, -1, -1)[take]
        slot_offset = offsets[:, None, :].expand(-1, centre.shape[0], -1)[take]
        slot_target = pair_target[None].expand_as(take)[take]
        slot_anchor = pair_anchor[None].expand_as(take)[take]
        cell = (slot_centre - slot_offset).long()  # truncation, as .long() in loss.py:231
        cell = torch.minimum(cell.clamp(min=0), torch.tensor((width - 1, height - 1), device=device))
        joints = points[slot_target, 2:]  # (s, K, 2)
        joints = torch.where(joints != 0, joints - cell[:, None, :], joints)
        box = torch.cat((slot_centre - cell, points[slot_target, 1]), dim=-1)
        results.append(
            LevelTargets(
                target=slot_target,
                batch=targets[slot_target, 0].long(),
                anchor=slot_anchor,
                grid_y=cell[:, 1],
                grid_x=cell[:, 0],
                box=box,
                keypoints=joints,
                anchor_wh=anchors_grid[slot_anchor],
            )
        )
    return results
