"""Typed prediction results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["PoseResult"]


@dataclass(frozen=True)
class PoseResult:
    """Poses found in one image, in that image's pixel coordinates.

    Pixel convention: ``(x, y) = (0, 0)`` is the centre of the top-left pixel (the COCO annotation convention
    used by ``COCOeval`` is the same up to the half-pixel offset that COCO itself leaves unspecified).

    Args:
        boxes: ``(N, 4)`` float person boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` instance scores in ``[0, 1]``.
        keypoints: ``(N, K, 3)`` float ``(x, y, confidence)``.

    Raises:
        ValueError: the three tensors disagree on N, or have the wrong rank / last dimension.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    keypoints: torch.Tensor

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.dim() == 2 else -1
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {tuple(self.scores.shape)}")
        if self.keypoints.dim() != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be ({n}, K, 3), got {tuple(self.keypoints.shape)}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_joints(self) -> int:
        """K."""
        return int(self.keypoints.shape[1])

    @classmethod
    def empty(cls, num_joints: int, device: torch.device | str = "cpu") -> PoseResult:
        """A result with no instances."""
        zeros = torch.zeros(0, device=device)
        return cls(zeros.view(0, 4), zeros, zeros.view(0, num_joints, 3))

    def to(self, device: torch.device | str) -> PoseResult:
        """Copy of the result on ``device``."""
        return PoseResult(self.boxes.to(device), self.scores.to(device), self.keypoints.to(device))

    def numpy(self) -> dict[str, np.ndarray]:
        """``{"boxes": (N, 4), "scores": (N,), "keypoints": (N, K, 3)}`` as float32 numpy arrays."""
        return {
            "boxes": self.boxes.detach().float().cpu().numpy(),
            "scores": self.scores.detach().float().cpu().numpy(),
            "keypoints": self.keypoints.detach().float().cpu().numpy(),
        }

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results: ``[{image_id, category_id, keypoints: [x, y, c] * K, score, bbox}]``.

        ``bbox`` is ``[x, y, w, h]``; ``score`` is the instance score as stored in :attr:`scores`.
        """
        arrays = self.numpy()
        results = []
        for box, score, kpts in zip(arrays["boxes"], arrays["scores"], arrays["keypoints"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_id),
                    "keypoints": [float(v) for v in kpts.reshape(-1)],
                    "score": float(score),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
        return results
