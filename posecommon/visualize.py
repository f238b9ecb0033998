"""Draw poses (skeleton limbs, keypoints, boxes) on PIL images.

Shape key: N instances, K joints; :class:`~posecommon.PoseResult` holds boxes ``(N, 4)`` ``xyxy`` and keypoints
``(N, K, 3)`` ``(x, y, confidence)`` in image pixels, ``(0, 0)`` being the centre of the top-left pixel (PIL
draws with the same convention).

Colours: joints on the left side of the body (``k < flip_indices[k]``) are drawn in one colour, right-side joints in
another and unpaired (central) joints in a third; limbs cycle through a small palette; boxes are one colour.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from .errors import InvalidInputError
from .keypoints import COCO17, KeypointSpec, generic_keypoint_spec
from .structures import PoseResult

__all__ = ["draw_pose"]

_LEFT = (0, 200, 255)
_RIGHT = (255, 120, 0)
_CENTRE = (0, 255, 120)
_BOX = (255, 255, 0)
_LIMB_PALETTE = ((255, 60, 60), (60, 255, 60), (60, 120, 255), (255, 0, 255), (0, 255, 255), (255, 200, 0))


def draw_pose(
    image: Image.Image,
    result: PoseResult,
    keypoint_spec: KeypointSpec | None = None,
    keypoint_threshold: float = 0.3,
    draw_boxes: bool = True,
    radius: int | None = None,
    line_width: int | None = None,
) -> Image.Image:
    """Draw every instance of ``result`` on a copy of ``image``.

    A keypoint is drawn (a filled circle) when its confidence is ``>= keypoint_threshold``; a limb of
    ``keypoint_spec.skeleton`` is drawn when both its keypoints are.

    Args:
        image: The image the result refers to (any PIL mode; the copy is RGB).
        result: Poses in the image's pixel coordinates.
        keypoint_spec: Joint set (skeleton, left/right); defaults to COCO-17 for K = 17, else no skeleton.
        keypoint_threshold: Minimum confidence of a drawn keypoint.
        draw_boxes: Also draw the instance boxes.
        radius: Keypoint circle radius in pixels; default ``max(2, min(W, H) // 150)``.
        line_width: Limb and box width in pixels; default ``max(1, radius // 2)``.

    Returns:
        A new RGB image; ``image`` is not modified.

    Raises:
        InvalidInputError: the result's K differs from the keypoint spec's.
    """
    if keypoint_spec is None:
        num_joints = result.num_joints
        keypoint_spec = COCO17 if num_joints == COCO17.num_joints else generic_keypoint_spec(num_joints)
    if keypoint_spec.num_joints != result.num_joints:
        raise InvalidInputError(
            f"result has {result.num_joints} joints but keypoint spec {keypoint_spec.name!r} has "
            f"{keypoint_spec.num_joints}"
        )
    canvas = image.convert("RGB")  # always a new image
    radius = max(2, min(canvas.size) // 150) if radius is None else radius
    line_width = max(1, radius // 2) if line_width is None else line_width
    draw = ImageDraw.Draw(canvas)
    arrays = result.numpy()
    flip = keypoint_spec.flip_indices
    joint_colours = [_LEFT if k < flip[k] else _RIGHT if k > flip[k] else _CENTRE for k in range(len(flip))]
    for box, keypoints in zip(arrays["boxes"], arrays["keypoints"], strict=True):
        if draw_boxes:
            draw.rectangle([float(v) for v in box], outline=_BOX, width=line_width)
        shown = keypoints[:, 2] >= keypoint_threshold
        for index, (a, b) in enumerate(keypoint_spec.skeleton):
            if shown[a] and shown[b]:
                ends = [(float(keypoints[j, 0]), float(keypoints[j, 1])) for j in (a, b)]
                draw.line(ends, fill=_LIMB_PALETTE[index % len(_LIMB_PALETTE)], width=line_width)
        for k in shown.nonzero()[0]:
            x, y = float(keypoints[k, 0]), float(keypoints[k, 1])
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=joint_colours[k])
    return canvas
