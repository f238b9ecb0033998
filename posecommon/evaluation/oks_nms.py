"""Greedy non-maximum suppression on OKS between pose instances (HRNet/TransPose ``oks_nms``).

Shape key: N instances, K joints; ``keypoints`` ``(N, K, 2|3)`` in image pixels, ``scores`` ``(N,)``, ``areas``
``(N,)`` (e.g. box area).

The similarity of a candidate to an already kept instance is :func:`posecommon.evaluation.oks` with the kept
instance as ground truth: all its K joints count as labelled and its own area is the OKS area. (HRNet averages the
two areas instead; using one :func:`oks` everywhere keeps NMS, loss and evaluation on the same definition.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..keypoints import KeypointSpec
from .oks import oks

__all__ = ["oks_nms"]


def oks_nms(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    areas: torch.Tensor,
    threshold: float = 0.9,
    sigmas: KeypointSpec | Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Keep the highest-scoring instances, dropping any whose OKS with a kept one exceeds ``threshold``.

    Ties in score keep the lower index first (stable sort).

    Args:
        keypoints: ``(N, K, 2|3)`` keypoints.
        scores: ``(N,)`` instance scores.
        areas: ``(N,)`` instance areas in square pixels.
        threshold: OKS above which a lower-scoring instance is suppressed.
        sigmas: Per-joint sigmas (``None`` = COCO, only for K = 17); see :func:`~posecommon.evaluation.oks`.

    Returns:
        ``(N_kept,)`` int64 indices into the inputs, by decreasing score, on ``keypoints``' device.

    Raises:
        InvalidInputError: shapes disagree or sigmas are missing.
    """
    n = keypoints.shape[0]
    if scores.shape != (n,) or areas.shape != (n,):
        raise InvalidInputError(f"scores and areas must be ({n},), got {tuple(scores.shape)} and {tuple(areas.shape)}")
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    if n == 0:
        return order.to(keypoints.device)
    reference = keypoints.detach()[..., :2]
    as_gt = torch.cat((reference, torch.ones_like(reference[..., :1])), dim=-1)
    similarity = oks(keypoints.detach(), as_gt, areas.detach(), sigmas)  # (candidate, reference)
    overlap = (similarity.transpose(0, 1) > threshold).cpu().numpy()  # [kept, candidate]
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in order.cpu().tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i]
    return torch.tensor(keep, dtype=torch.long, device=keypoints.device)
