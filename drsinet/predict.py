"""DRSI-Net's predict kernel: images -> letterbox -> forward -> decode -> NMS -> boxes and keypoints in each image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from posecommon.errors import InvalidInputError
from posecommon.model import PoseModel
from posecommon.ops.letterbox import letterbox, unletterbox_boxes, unletterbox_points
from posecommon.predict import (
    PredictKernel,
    RunOptions,
    autocast_context,
    check_count,
    check_fraction,
    model_device,
    running_for_inference,
)
from posecommon.structures import PoseResult

from .decode import decode_outputs, postprocess

__all__ = ["DetectionKernel"]


class DetectionKernel(PredictKernel):
    """Single-stage detection of people and their keypoints, as YOLO-Pose's inference.

    Each image is letterboxed to ``input_size`` (pad bottom/right with the model's pad value), run through the
    model in eval mode (by default a cached fused copy, see :mod:`posecommon.predict.inference`; the model's own
    train/eval mode is left as it was), decoded (:func:`~drsinet.decode.decode_outputs`), filtered by score and
    NMS (:func:`~drsinet.decode.postprocess`) and mapped back to its own pixels.

    Args:
        model: A DRSI-Net (anything with ``config.strides``, ``anchor_tensor``, ``preprocess`` and a forward
            returning the raw per-level outputs).
        score_threshold: Minimum ``objectness x class`` score.
        iou_threshold: NMS IoU.
        input_size: Letterbox size ``(H, W)``; ``None``: the model's ``config.input_size``. Multiples of the largest
            stride (64).
        max_people: At most this many people per image (best scores first).

    Raises:
        InvalidInputError: ``input_size`` is not two positive multiples of the largest stride, a threshold is
            outside ``[0, 1]``, or ``max_people`` is not a positive integer.
    """

    def __init__(
        self,
        model: PoseModel,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        input_size: Sequence[int] | None = None,
        max_people: int = 300,
    ) -> None:
        super().__init__(model.keypoint_spec, (model,))
        size = tuple(int(v) for v in (input_size or model.config.input_size))
        step = max(model.config.strides)
        if len(size) != 2 or any(v <= 0 or v % step for v in size):
            raise InvalidInputError(f"input_size must be two positive multiples of {step}, got {input_size}")
        self.model = model
        self.input_size: tuple[int, int] = size  # type: ignore[assignment]
        self.score_threshold = check_fraction("score_threshold", score_threshold)
        self.iou_threshold = check_fraction("iou_threshold", iou_threshold)
        self.max_people = check_count("max_people", max_people)

    @torch.no_grad()
    def __call__(
        self, images: Sequence[torch.Tensor], inputs: Sequence[Mapping[str, Any]], run: RunOptions
    ) -> list[PoseResult]:
        """Boxes xyxy clipped to each image, keypoints ``(x, y, conf)`` (not clipped), in that image's pixels."""
        if not images:
            return []
        model = self.model
        device = model_device(model)
        dtype = next(model.parameters()).dtype
        batch, infos = [], []
        for pixels in images:
            padded, info = letterbox(pixels.to(device), self.input_size, model.preprocess.pad_value)
            batch.append(padded)
            infos.append(info)
        x = model.preprocess.normalize(torch.stack(batch)).to(device=device, dtype=dtype)
        with running_for_inference(model, run.fuse, run.channels_last) as net, autocast_context(device, run.half):
            outputs = net(x)
        outputs = [o.float() for o in outputs]
        boxes, scores, keypoints = decode_outputs(outputs, model.anchor_tensor(device), model.config.strides)
        found = postprocess(
            boxes, scores, keypoints, self.score_threshold, self.iou_threshold, max_people=self.max_people
        )
        return [
            PoseResult(
                _clip_boxes(unletterbox_boxes(r.boxes, info), info.image_size),
                r.scores,
                unletterbox_points(r.keypoints, info),
            )
            for r, info in zip(found, infos, strict=True)
        ]


def _clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clip ``(N, 4)`` xyxy boxes to the image, whose pixels span ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    height, width = image_size
    x = boxes[:, 0::2].clamp(-0.5, width - 0.5)
    y = boxes[:, 1::2].clamp(-0.5, height - 0.5)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
