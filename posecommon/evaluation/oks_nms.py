"""Greedy non-maximum suppression on OKS between pose instances, as TransPose's ``oks_nms`` (``lib/nms/nms.py``).

Shape key: N instances, K joints; ``keypoints`` ``(N, K, 2|3)`` in image pixels, ``scores`` ``(N,)``, ``areas``
``(N,)`` in square pixels (for top-down models the padded crop region, ``np.prod(s * 200, 1)``, TransPose
``lib/core/function.py:174``).

The similarity of two instances ``i`` and ``j`` is the official ``oks_iou`` (``nms.py:75-94``) with
``in_vis_thre=None`` (as ``evaluate`` calls it, ``lib/dataset/coco.py:349-352``): over **all** K joints,
``mean_k exp(-d_k^2 / (2 * (2 sigma_k)^2 * ((a_i + a_j) / 2 + eps)))`` with ``eps = np.spacing(1)``, i.e. the
pairwise *mean* area, so the matrix is symmetric. The greedy loop (``nms.py:97-124``) keeps the highest-scoring
instance and drops every remaining one whose OKS with it exceeds the threshold (``oks <= threshold`` survives).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..keypoints import KeypointSpec
from .oks import resolve_sigmas

__all__ = ["oks_nms", "pairwise_oks"]

_EPS = float(np.spacing(1))


def pairwise_oks(
    keypoints: torch.Tensor,
    areas: torch.Tensor,
    sigmas: KeypointSpec | Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric ``(N, N)`` OKS matrix of the official ``oks_iou`` (pairwise mean area, all joints), float64.

    Args:
        keypoints: ``(N, K, 2|3)`` keypoints (a third column, the score, is ignored).
        areas: ``(N,)`` instance areas.
        sigmas: Per-joint sigmas (``None`` = COCO, only for K = 17; ``oks_iou``'s default, ``nms.py:76-77``).

    Returns:
        ``(N, N)`` float64 OKS on ``keypoints``' device.
    """
    points = keypoints.detach()[..., :2].double()
    variances = (2 * resolve_sigmas(sigmas, points.shape[1], torch.float64, points.device)) ** 2  # (K,)
    squared = ((points[:, None] - points[None]) ** 2).sum(dim=-1)  # (N, N, K)
    area = areas.detach().to(dtype=torch.float64, device=points.device)
    mean_area = (area[:, None] + area[None]) / 2 + _EPS  # (N, N)
    return torch.exp(-squared / variances / mean_area[..., None] / 2).mean(dim=-1)


def oks_nms(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    areas: torch.Tensor,
    threshold: float = 0.9,
    sigmas: KeypointSpec | Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Keep the highest-scoring instances, dropping any whose OKS with a kept one exceeds ``threshold``.

    Order: by decreasing score. Among equal scores the official ``scores.argsort()[::-1]`` (``nms.py:112``) has no
    defined order (numpy's default sort is not stable on every platform); we keep the lower index first.

    Args:
        keypoints: ``(N, K, 2|3)`` keypoints.
        scores: ``(N,)`` instance scores.
        areas: ``(N,)`` instance areas in square pixels.
        threshold: OKS above which a lower-scoring instance is suppressed (``OKS_THRE: 0.9`` in the TP-H-S yaml,
            line 112).
        sigmas: Per-joint sigmas (``None`` = COCO, only for K = 17); see :func:`pairwise_oks`.

    Returns:
        ``(N_kept,)`` int64 indices into the inputs, in the order they were kept, on ``keypoints``' device.

    Raises:
        InvalidInputError: shapes disagree or sigmas are missing.
    """
    n = keypoints.shape[0]
    if keypoints.dim() != 3 or keypoints.shape[-1] not in (2, 3):
        raise InvalidInputError(f"keypoints must be (N, K, 2) or (N, K, 3), got {tuple(keypoints.shape)}")
    if scores.shape != (n,) or areas.shape != (n,):
        raise InvalidInputError(f"scores and areas must be ({n},), got {tuple(scores.shape)} and {tuple(areas.shape)}")
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    if n == 0:
        return order.to(keypoints.device)
    overlap = (pairwise_oks(keypoints, areas, sigmas) > threshold).cpu().numpy()  # [kept, candidate]
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i]
    return torch.tensor(keep, dtype=torch.long, device=keypoints.device)
