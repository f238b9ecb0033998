"""Small augmentation helpers shared by the training datasets.

Randomness: every draw comes from torch's global RNG, which :class:`torch.utils.data.DataLoader` seeds per worker
and :class:`posecommon.train.sampling.SeededSamples` seeds per sample from ``(seed, step, index)``, so an
augmented sample is a pure function of those seeds (exact resume).

Coordinates follow posezoo's pixel-centre convention (:mod:`posecommon.ops.geometry`): an image ``W`` pixels wide
spans ``[-0.5, W - 0.5]`` and a horizontal flip maps ``x`` to ``W - 1 - x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["hflip_boxes", "hflip_keypoints", "mark_outside", "rand_uniform"]


def rand_uniform(low: float, high: float) -> float:
    """One number drawn uniformly from ``[low, high)`` with torch's global RNG."""
    return low + (high - low) * float(torch.rand(()))


def hflip_keypoints(keypoints: np.ndarray, width: int, flip_indices: Sequence[int]) -> np.ndarray:
    """Mirror keypoints left/right and swap left/right joints.

    Args:
        keypoints: ``(..., K, 3)`` ``(x, y, v)`` in pixels of an image ``width`` pixels wide.
        width: Image width.
        flip_indices: Joint permutation (:attr:`posecommon.keypoints.KeypointSpec.flip_indices`).

    Returns:
        ``(..., K, 3)`` new array: joint ``k`` is the mirrored joint ``flip_indices[k]``; unlabelled joints
        (``v = 0``) keep ``(0, 0, 0)``.
    """
    flipped = keypoints[..., list(flip_indices), :]  # fancy indexing: a copy
    labelled = flipped[..., 2] > 0
    flipped[..., 0] = np.where(labelled, width - 1 - flipped[..., 0], flipped[..., 0])
    return flipped


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Mirror ``(N, 4)`` ``xyxy`` boxes of an image ``width`` pixels wide (returns a new array)."""
    return np.stack((width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]), axis=-1)


def mark_outside(keypoints: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    """Unlabel keypoints outside a region: set them to ``(0, 0, 0)`` (COCO's convention for unlabelled).

    Args:
        keypoints: ``(..., K, 3)`` ``(x, y, v)``.
        region: ``(x1, y1, x2, y2)``; a point is inside when ``x1 <= x < x2`` and ``y1 <= y < y2``.

    Returns:
        ``(..., K, 3)`` new array.
    """
    x1, y1, x2, y2 = region
    x, y = keypoints[..., 0], keypoints[..., 1]
    keep = (keypoints[..., 2] > 0) & (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
    return np.where(keep[..., None], keypoints, np.zeros((), keypoints.dtype))
