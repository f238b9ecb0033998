"""Letterbox resizing (keep aspect ratio, pad bottom/right) and its exact inverse for points and boxes.

Pixel convention: coordinates are continuous ``(x, y)`` with ``(0, 0)`` the centre of the top-left pixel, as in
:class:`~posecommon.structures.PoseResult`; an image of width ``w`` spans ``[-0.5, w - 0.5]``. Resizing ``w``
pixels to ``w'`` maps that span onto ``[-0.5, w' - 0.5]``, i.e. ``x' = (x + 0.5) * w' / w - 0.5``, which is exactly
how :func:`torch.nn.functional.interpolate` (``align_corners=False``) samples. Padding is added at the bottom and
right only, so it never shifts coordinates. The resized size is an integer, and the scale used by the inverse is
the ratio of the integers actually applied (per axis), so forward and inverse maps agree to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

__all__ = [
    "LetterboxInfo",
    "clip_points",
    "letterbox",
    "letterbox_info",
    "letterbox_points",
    "unletterbox_boxes",
    "unletterbox_points",
]


@dataclass(frozen=True)
class LetterboxInfo:
    """The integer geometry one letterbox applied.

    Args:
        image_size: Original ``(h, w)``.
        resized_size: ``(h', w')`` the image was resized to (before padding).
        input_size: Padded model input ``(H, W)``; ``pad_bottom = H - h'``, ``pad_right = W - w'``.
    """

    image_size: tuple[int, int]
    resized_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """``(scale_x, scale_y) = (w' / w, h' / h)``, the exact per-axis factors applied."""
        return self.resized_size[1] / self.image_size[1], self.resized_size[0] / self.image_size[0]

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` padding in pixels; top and left are always 0."""
        return 0, 0, self.input_size[0] - self.resized_size[0], self.input_size[1] - self.resized_size[1]


def letterbox_info(image_size: tuple[int, int], input_size: tuple[int, int]) -> LetterboxInfo:
    """Compute the letterbox geometry: the largest uniform scale that fits ``image_size`` into ``input_size``.

    Args:
        image_size: ``(h, w)`` of the original image.
        input_size: ``(H, W)`` of the model input.

    Raises:
        InvalidInputError: a size is not positive.
    """
    h, w = (int(v) for v in image_size)
    big_h, big_w = (int(v) for v in input_size)
    if min(h, w, big_h, big_w) <= 0:
        raise InvalidInputError(f"sizes must be positive, got image {image_size} and input {input_size}")
    ratio = min(big_h / h, big_w / w)
    new_h = min(max(round(h * ratio), 1), big_h)
    new_w = min(max(round(w * ratio), 1), big_w)
    return LetterboxInfo((h, w), (new_h, new_w), (big_h, big_w))


def letterbox(
    image: torch.Tensor, input_size: tuple[int, int], pad_value: float = 114.0
) -> tuple[torch.Tensor, LetterboxInfo]:
    """Resize ``image`` to fit ``input_size`` keeping its aspect ratio, then pad bottom/right with ``pad_value``.

    Bilinear resampling (antialiased when shrinking), ``align_corners=False``.

    Args:
        image: ``(C, h, w)`` image, uint8 or float, values in ``[0, 255]``.
        input_size: ``(H, W)``.
        pad_value: Value of the padded pixels.

    Returns:
        ``(C, H, W)`` float32 tensor (values in ``[0, 255]``) and the :class:`LetterboxInfo` applied.

    Raises:
        InvalidInputError: ``image`` is not a 3-D tensor or a size is not positive.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise InvalidInputError(f"letterbox expects a (C, h, w) tensor, got {getattr(image, 'shape', type(image))}")
    info = letterbox_info((image.shape[1], image.shape[2]), input_size)
    x = image.to(torch.float32)
    if info.resized_size != info.image_size:
        shrink = info.resized_size[0] < info.image_size[0] or info.resized_size[1] < info.image_size[1]
        x = F.interpolate(x[None], size=info.resized_size, mode="bilinear", align_corners=False, antialias=shrink)[0]
    _, _, bottom, right = info.pad
    return F.pad(x, (0, right, 0, bottom), value=float(pad_value)), info


def letterbox_points(points: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Map original-image points ``(..., 2)`` ``(x, y)`` to model-input pixels (returns a new tensor)."""
    sx, sy = info.scale
    scale = points.new_tensor([sx, sy])
    return (points[..., :2] + 0.5) * scale - 0.5


def unletterbox_points(points: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Map model-input points ``(..., D)`` (``D >= 2``; x, y first) back to original-image pixels.

    Channels after the first two (e.g. keypoint confidence) are copied unchanged; the input is never modified.
    """
    sx, sy = info.scale
    scale = points.new_tensor([sx, sy])
    xy = (points[..., :2] + 0.5) / scale - 0.5
    return torch.cat((xy, points[..., 2:]), dim=-1)


def unletterbox_boxes(boxes: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Map model-input boxes ``(N, 4)`` ``(x1, y1, x2, y2)`` back to original-image pixels (corners as points)."""
    return unletterbox_points(boxes.reshape(*boxes.shape[:-1], 2, 2), info).reshape(boxes.shape)


def clip_points(points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clamp points ``(..., D)`` (``D >= 2``; x, y first) to the image area ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

    The pixel-centre form of YOLO-Pose's ``clip_coords`` (edgeai-yolov5 branch yolo-pose, ``utils/general.py:401-404``),
    which its evaluation applies to the keypoints (``test.py:176`` through ``scale_coords``, ``general.py:391-396``):
    the official code clamps x to ``[0, W]`` and y to ``[0, H]``, the image's extent in its pixel-edge coordinates.
    Other channels (keypoint confidence) are copied unchanged; the input is never modified.

    Args:
        points: ``(..., D)`` points in image pixels.
        image_size: ``(H, W)`` of the image.
    """
    height, width = image_size
    x = points[..., 0:1].clamp(-0.5, width - 0.5)
    y = points[..., 1:2].clamp(-0.5, height - 0.5)
    return torch.cat((x, y, points[..., 2:]), dim=-1)
