"""Multi-person pose estimation from a detector and an optional top-down pose model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from .image import ImageInput, load_image
from .registry import create_model
from .structures import PoseResult

__all__ = ["PosePipeline"]


class _Detector(Protocol):
    def predict(self, images: Any, score_threshold: float, iou_threshold: float) -> list[PoseResult]: ...


class _TopDownModel(Protocol):
    def predict(
        self, image: Any, boxes: torch.Tensor, box_scores: torch.Tensor | None = None, **kwargs: Any
    ) -> PoseResult: ...


class PosePipeline:
    """Runs a single-stage detector (DRSI-Net) and, optionally, a top-down model (VTTransPose) on its boxes.

    - Single stage (``pose_model is None``): the detector's boxes, scores and keypoints are returned as they are.
    - Two stage: the detector supplies person boxes and box scores; the top-down model predicts the keypoints in
      each box; the instance score is ``box score x mean keypoint confidence (> 0.2)`` (HRNet/TransPose rule).

    Args:
        detector: A model with ``predict(images, score_threshold, iou_threshold) -> list[PoseResult]``.
        pose_model: A model with ``predict(image, boxes, box_scores, **kwargs) -> PoseResult``, or None.
        score_threshold: Minimum detector score.
        iou_threshold: Detector NMS IoU.
        **pose_kwargs: Passed to ``pose_model.predict`` (e.g. ``flip_test=False``).
    """

    def __init__(
        self,
        detector: _Detector,
        pose_model: _TopDownModel | None = None,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        **pose_kwargs: Any,
    ) -> None:
        self.detector = detector
        self.pose_model = pose_model
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.pose_kwargs = pose_kwargs

    @classmethod
    def from_names(
        cls,
        detector: str = "drsi_net_s",
        pose_model: str | None = "vttranspose_h_s",
        pretrained: bool | str = False,
        **kwargs: Any,
    ) -> PosePipeline:
        """Build both models from the registry (``pretrained`` is passed to both ``create_model`` calls)."""
        det = create_model(detector, pretrained=pretrained)
        pose = create_model(pose_model, pretrained=pretrained) if pose_model is not None else None
        return cls(det, pose, **kwargs)  # type: ignore[arg-type]

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> list[PoseResult]:
        """Poses for one image or a list of images.

        Args:
            images: A path, PIL image, numpy ``(H, W, 3)`` array, ``(3, H, W)`` uint8 tensor, or a list of them.

        Returns:
            One :class:`PoseResult` per image, in that image's pixel coordinates.
        """
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        pixels = [load_image(item) for item in items]
        detections = self.detector.predict(
            pixels, score_threshold=self.score_threshold, iou_threshold=self.iou_threshold
        )
        if self.pose_model is None:
            return detections
        return [
            self.pose_model.predict(image, found.boxes, found.scores, **self.pose_kwargs)
            for image, found in zip(pixels, detections, strict=True)
        ]
