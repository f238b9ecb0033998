"""Decoding of DRSI-Net's raw head outputs into person boxes, scores and keypoints (YOLO-Pose formulas).

All functions are pure and batched; inputs are never modified. Coordinates are model-input pixels, in the frame the
YOLO-Pose formulas define (the one training targets are encoded in); :mod:`posecommon.ops.letterbox` maps them back to
the original image. For level ``l`` with stride ``s`` and grid cell ``(gx, gy)``, anchor ``(aw, ah)``:

- box centre ``(2 sigmoid(t_xy) - 0.5 + g) * s``, size ``(2 sigmoid(t_wh))^2 * anchor``;
- score ``sigmoid(objectness) * sigmoid(class)`` (one class: person);
- keypoint ``(2 t_k - 0.5 + g) * s`` (no sigmoid), confidence ``sigmoid(v_k)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posecommon.errors import InvalidInputError
from posecommon.ops import nms
from posecommon.structures import PoseResult

__all__ = ["decode_outputs", "make_grid", "postprocess"]


def make_grid(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Cell offsets ``(H, W, 2)`` holding ``(x, y) = (column, row)`` as float32."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1)


def decode_outputs(
    outputs: Sequence[torch.Tensor], anchors: torch.Tensor, strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode every anchor of every level (no thresholding).

    Args:
        outputs: L raw tensors ``(B, A_l, H_l, W_l, 6 + 3K)`` from :class:`~drsinet.model.DRSINet`.
        anchors: ``(L, A_l, 2)`` anchor ``(w, h)`` in input pixels.
        strides: L strides.

    Returns:
        ``boxes (B, N, 4)`` xyxy, ``scores (B, N)``, ``keypoints (B, N, K, 3)`` ``(x, y, confidence)``, where
        ``N = sum_l A_l H_l W_l`` (levels, then anchors, then rows, then columns), all in input pixels, float32.

    Raises:
        InvalidInputError: the number of levels, anchors or channels does not fit.
    """
    if not (len(outputs) == len(strides) == anchors.shape[0]):
        raise InvalidInputError(
            f"got {len(outputs)} output levels, {len(strides)} strides and {anchors.shape[0]} anchor groups"
        )
    boxes, scores, keypoints = [], [], []
    for raw, level_anchors, stride in zip(outputs, anchors, strides, strict=True):
        if raw.dim() != 5 or raw.shape[1] != level_anchors.shape[0] or raw.shape[-1] < 9 or (raw.shape[-1] - 6) % 3:
            raise InvalidInputError(f"expected (B, {level_anchors.shape[0]}, H, W, 6 + 3K), got {tuple(raw.shape)}")
        raw = raw.float()
        b, a, h, w, channels = raw.shape
        grid = make_grid(h, w, raw.device).view(1, 1, h, w, 2)
        anchor_wh = level_anchors.to(raw.device, torch.float32).view(1, a, 1, 1, 2)
        xy = (2.0 * torch.sigmoid(raw[..., 0:2]) - 0.5 + grid) * stride
        wh = (2.0 * torch.sigmoid(raw[..., 2:4])) ** 2 * anchor_wh
        boxes.append(torch.cat((xy - wh / 2, xy + wh / 2), dim=-1).reshape(b, -1, 4))
        scores.append((torch.sigmoid(raw[..., 4]) * torch.sigmoid(raw[..., 5])).reshape(b, -1))
        kpt = raw[..., 6:].reshape(b, a, h, w, -1, 3)
        kpt_xy = (2.0 * kpt[..., 0:2] - 0.5 + grid.unsqueeze(-2)) * stride
        kpt_conf = torch.sigmoid(kpt[..., 2:3])
        keypoints.append(torch.cat((kpt_xy, kpt_conf), dim=-1).reshape(b, a * h * w, (channels - 6) // 3, 3))
    return torch.cat(boxes, dim=1), torch.cat(scores, dim=1), torch.cat(keypoints, dim=1)


def postprocess(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    keypoints: torch.Tensor,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_candidates: int = 30000,
    max_people: int = 300,
) -> list[PoseResult]:
    """Score threshold, then per-image box NMS, then keep the best ``max_people``.

    Args:
        boxes: ``(B, N, 4)`` xyxy from :func:`decode_outputs`.
        scores: ``(B, N)``.
        keypoints: ``(B, N, K, 3)``.
        score_threshold: Keep candidates with score strictly above this.
        iou_threshold: NMS suppression IoU.
        max_candidates: At most this many best-scoring candidates per image enter NMS.
        max_people: At most this many detections (people) per image are returned.

    Returns:
        B :class:`~posecommon.structures.PoseResult`, detections by descending score, in input pixels.
    """
    batch, _, num_joints, _ = keypoints.shape
    mask = scores > score_threshold
    image_ids = torch.arange(batch, device=scores.device)[:, None].expand_as(scores)[mask]
    cand_boxes, cand_scores, cand_kpts = boxes[mask], scores[mask], keypoints[mask]
    results = []
    for index in range(batch):
        in_image = image_ids == index
        img_boxes, img_scores, img_kpts = cand_boxes[in_image], cand_scores[in_image], cand_kpts[in_image]
        if img_scores.shape[0] > max_candidates:
            top = torch.topk(img_scores, max_candidates, sorted=False).indices.sort().values
            img_boxes, img_scores, img_kpts = img_boxes[top], img_scores[top], img_kpts[top]
        keep = nms(img_boxes, img_scores, iou_threshold)[:max_people]
        if keep.numel() == 0:
            results.append(PoseResult.empty(num_joints, device=boxes.device))
        else:
            results.append(PoseResult(img_boxes[keep], img_scores[keep], img_kpts[keep]))
    return results
