"""Draw poses (skeleton limbs, keypoints, boxes with their scores) on images.

Shape key: N instances, K joints; poses are boxes ``(N, 4)`` ``xyxy``, scores ``(N,)`` and keypoints ``(N, K, 3)``
``(x, y, confidence)`` in image pixels, ``(0, 0)`` being the centre of the top-left pixel (PIL draws with the same
convention). Anything holding those three (a :class:`~posecommon.PoseResult`, or a plain object with tensors or
arrays) can be drawn; this module does not depend on the result type, which calls it (``PoseResult.plot``).

Colours: joints on the left side of the body (``k < flip_indices[k]``) are drawn in one colour, right-side joints in
another and unpaired (central) joints in a third; limbs cycle through a small palette; boxes are one colour, with
the instance score written on a filled label at the box's top-left corner.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .errors import InvalidInputError
from .keypoints import KeypointSpec, default_keypoint_spec
from .media.image import load_image

__all__ = ["Poses", "as_pil", "draw_pose"]


class Poses(Protocol):
    """What :func:`draw_pose` draws: ``boxes (N, 4)``, ``scores (N,)`` and ``keypoints (N, K, 3)`` (tensors or
    arrays), in image pixels."""

    boxes: Any
    scores: Any
    keypoints: Any


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


_LEFT = (0, 200, 255)
_RIGHT = (255, 120, 0)
_CENTRE = (0, 255, 120)
_BOX = (255, 255, 0)
_LIMB_PALETTE = ((255, 60, 60), (60, 255, 60), (60, 120, 255), (255, 0, 255), (0, 255, 255), (255, 200, 0))


def as_pil(image: Any) -> Image.Image:
    """An RGB PIL copy of ``image``: a PIL image (any mode), a path, a numpy ``(H, W[, C])`` RGB array or a
    ``(3, H, W)`` uint8 tensor (see :func:`~posecommon.media.image.load_image`)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")  # always a new image
    pixels = load_image(image).cpu()
    return Image.fromarray(np.ascontiguousarray(pixels.permute(1, 2, 0).numpy()))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_pose(
    image: Image.Image | str | np.ndarray | torch.Tensor | Any,
    result: Poses,
    keypoint_spec: KeypointSpec | None = None,
    keypoint_threshold: float = 0.3,
    draw_boxes: bool = True,
    radius: int | None = None,
    line_width: int | None = None,
    show_scores: bool = True,
) -> Image.Image:
    """Draw every instance of ``result`` on a copy of ``image``.

    A keypoint is drawn (a filled circle) when its confidence is ``>= keypoint_threshold``; a limb of
    ``keypoint_spec.skeleton`` is drawn when both its keypoints are.

    Args:
        image: The image the result refers to: a PIL image (any mode), a file path, a numpy RGB array or a
            ``(3, H, W)`` uint8 tensor; the drawing is on an RGB copy.
        result: Poses in the image's pixel coordinates.
        keypoint_spec: Joint set (skeleton, left/right); defaults to the result's ``keypoint_spec`` when it has
            one, else COCO-17 for K = 17 and no skeleton otherwise.
        keypoint_threshold: Minimum confidence of a drawn keypoint.
        draw_boxes: Also draw the instance boxes.
        radius: Keypoint circle radius in pixels; default ``max(2, min(W, H) // 150)``.
        line_width: Limb and box width in pixels; default ``max(1, radius // 2)``.
        show_scores: With ``draw_boxes``, write each instance score (two decimals) on a label above the box.

    Returns:
        A new RGB image; ``image`` is not modified.

    Raises:
        InvalidInputError: the result's K differs from the keypoint spec's.
        BadImageError: ``image`` cannot be read.
    """
    boxes, scores, points = _numpy(result.boxes), _numpy(result.scores), _numpy(result.keypoints)
    num_joints = points.shape[1] if points.ndim == 3 else 0
    if keypoint_spec is None:
        keypoint_spec = getattr(result, "keypoint_spec", None) or default_keypoint_spec(num_joints)
    if keypoint_spec.num_joints != num_joints:
        raise InvalidInputError(
            f"result has {num_joints} joints but keypoint spec {keypoint_spec.name!r} has {keypoint_spec.num_joints}"
        )
    canvas = as_pil(image)
    radius = max(2, min(canvas.size) // 150) if radius is None else radius
    line_width = max(1, radius // 2) if line_width is None else line_width
    draw = ImageDraw.Draw(canvas)
    flip = keypoint_spec.flip_indices
    joint_colours = [_LEFT if k < flip[k] else _RIGHT if k > flip[k] else _CENTRE for k in range(len(flip))]
    font = _font(max(10, min(canvas.size) // 40)) if draw_boxes and show_scores else None
    for box, score, keypoints in zip(boxes, scores, points, strict=True):
        if draw_boxes:
            draw.rectangle([float(v) for v in box], outline=_BOX, width=line_width)
            if font is not None:
                _score_label(draw, font, box, float(score))
        shown = keypoints[:, 2] >= keypoint_threshold
        for index, (a, b) in enumerate(keypoint_spec.skeleton):
            if shown[a] and shown[b]:
                ends = [(float(keypoints[j, 0]), float(keypoints[j, 1])) for j in (a, b)]
                draw.line(ends, fill=_LIMB_PALETTE[index % len(_LIMB_PALETTE)], width=line_width)
        for k in shown.nonzero()[0]:
            x, y = float(keypoints[k, 0]), float(keypoints[k, 1])
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=joint_colours[k])
    return canvas


def _score_label(draw: ImageDraw.ImageDraw, font: Any, box: np.ndarray, score: float) -> None:
    """``score`` in black on a box-coloured label just above the box's top-left corner (inside when no room)."""
    text = f"{score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 4, bottom - top + 4
    x = float(box[0])
    y = float(box[1]) - height if float(box[1]) - height >= 0 else float(box[1])
    draw.rectangle([x, y, x + width, y + height], fill=_BOX)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(0, 0, 0), font=font)
