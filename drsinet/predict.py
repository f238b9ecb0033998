"""End-to-end DRSI-Net inference: images -> letterbox -> forward -> decode -> NMS -> original image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from posecommon.errors import BadImageError, InvalidInputError
from posecommon.image import load_image
from posecommon.inference import running_for_inference
from posecommon.letterbox import letterbox, unletterbox_boxes, unletterbox_points
from posecommon.structures import PoseResult

from .decode import decode_outputs, postprocess

if TYPE_CHECKING:
    from .model import DRSINet

__all__ = ["predict"]

_SINGLE = (str, Path, Image.Image, np.ndarray, torch.Tensor)


def _as_list(images: object) -> list[object]:
    if isinstance(images, _SINGLE):
        return [images]
    if isinstance(images, Sequence):
        return list(images)
    raise BadImageError(
        f"unsupported image input {type(images).__name__}; pass a path, PIL image, HxWx3 uint8 numpy array, "
        "(3, H, W) uint8 tensor, or a list of them"
    )


@torch.no_grad()
def predict(
    model: DRSINet,
    images: object,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    input_size: tuple[int, int] | None = None,
    max_detections: int = 300,
    fuse: bool = True,
    channels_last: bool | None = None,
) -> list[PoseResult]:
    """Detect people and keypoints in one image or a list of images.

    Each image is loaded with :func:`~posecommon.image.load_image` (grayscale and RGBA converted), letterboxed
    to ``input_size`` (pad bottom/right with the model's pad value), run through ``model`` in eval mode (by default a
    cached fused copy, see :mod:`posecommon.inference`; the model's own train/eval mode is left as it was), decoded,
    filtered by score and NMS, and mapped back to its own pixels.

    Args:
        model: A DRSI-Net.
        images: A path, PIL image, numpy ``(H, W, 3)`` uint8 array, ``(3, H, W)`` uint8 tensor, or a list of them.
        score_threshold: Minimum ``objectness * class`` score.
        iou_threshold: NMS IoU.
        input_size: Letterbox size ``(H, W)``; defaults to the model's ``config.input_size``. Multiples of 64.
        max_detections: Per-image cap.
        fuse: Run a cached copy with BatchNorm folded (:func:`~posecommon.inference.inference_module`).
        channels_last: Run in channels-last memory; ``None``: on CPU only.

    Returns:
        One :class:`~posecommon.structures.PoseResult` per image (boxes xyxy, keypoints ``(x, y, conf)``) in
        that image's pixel coordinates (boxes clipped to the image; keypoints are not clipped), on the model's device.

    Raises:
        BadImageError: an image cannot be read or has an unsupported type/mode/shape.
        InvalidInputError: ``input_size`` is not a pair of positive multiples of the largest stride, or a
            threshold is outside ``[0, 1]``.
    """
    size = tuple(int(v) for v in (input_size or model.config.input_size))
    step = max(model.config.strides)
    if len(size) != 2 or any(v <= 0 or v % step for v in size):
        raise InvalidInputError(f"input_size must be two positive multiples of {step}, got {input_size}")
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise InvalidInputError(f"{name} must be in [0, 1], got {value}")
    items = _as_list(images)
    if not items:
        return []
    param = next(model.parameters())
    batch, infos = [], []
    pad_value = model.preprocess.pad_value
    for item in items:
        padded, info = letterbox(load_image(item), size, pad_value)
        batch.append(padded)
        infos.append(info)
    x = model.preprocess.normalize(torch.stack(batch)).to(device=param.device, dtype=param.dtype)
    with running_for_inference(model, fuse, channels_last) as net:
        outputs = net(x)
    boxes, scores, keypoints = decode_outputs(outputs, model.anchor_tensor(param.device), model.config.strides)
    results = postprocess(boxes, scores, keypoints, score_threshold, iou_threshold, max_detections=max_detections)
    return [
        PoseResult(
            _clip_boxes(unletterbox_boxes(r.boxes, info), info.image_size),
            r.scores,
            unletterbox_points(r.keypoints, info),
        )
        for r, info in zip(results, infos, strict=True)
    ]


def _clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clip ``(N, 4)`` xyxy boxes to the image, whose pixels span ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    height, width = image_size
    x = boxes[:, 0::2].clamp(-0.5, width - 0.5)
    y = boxes[:, 1::2].clamp(-0.5, height - 0.5)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
