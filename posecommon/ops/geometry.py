"""Crop geometry: boxes, the official top-down affine transform, region crops, and their exact inverses.

Shape key:
    - N: boxes / crops, K: points per crop, B: images.
    - Boxes: ``(N, 4)``, either ``xyxy`` = ``(x1, y1, x2, y2)`` or ``xywh`` = ``(x, y, w, h)`` (COCO), in image pixels.
    - ``center``: ``(N, 2)`` ``(x, y)`` and ``size``: ``(N, 2)`` ``(width, height)`` of the region to crop, in image
      pixels (the official code's ``scale * 200``). ``rotation``: ``(N,)`` degrees. ``flip``: ``(N,)`` bool.
    - ``output_size``: crop ``(H, W)``, height first like tensor shapes; images are ``(3, H, W)`` / ``(B, 3, H, W)``.
    - Points: ``(N, K, 2)`` ``(x, y)``. Affine matrices: ``(N, 2, 3)``, ``dst_xy = M[:, :, :2] @ src_xy + M[:, :, 2]``.

Pixel-centre convention: integer coordinates are pixel centres in the image and in every crop, so a ``W``-pixel-wide
image spans ``[-0.5, W - 0.5]`` and a horizontal mirror maps ``x`` to ``W - 1 - x``. :func:`warp_affine` samples
with this convention (``grid_sample``, ``align_corners=False``), which is OpenCV's ``cv2.warpAffine`` convention.

Two region transforms live here:

1. **The top-down transform** of the TransPose / VTTransPose family, :func:`topdown_affine`: the official
   ``get_affine_transform`` (TransPose ``lib/utils/transforms.py:58-90``, built from three point pairs). It maps
   the region centre to the crop point ``((W_out - 1) / 2, (H_out - 1) / 2)`` and scales **both axes by one
   factor** ``(W_out - 1) / (size_w - 1)``, derived from the widths only (``transforms.py:66-80``); the rotation is
   a similarity. In formulas, image point ``q`` goes to crop point::

       c_out + (W_out - 1) / (size_w - 1) * R(-rotation) @ (q - center),   R(a) = [[cos a, -sin a], [sin a, cos a]]

   (y points down, so a positive rotation turns the sampled region clockwise on screen and its content appears
   turned counter-clockwise in the crop). The region height ``size_h`` does not enter the transform (the official
   code uses ``scale[0]`` only); it is the crop's aspect ratio that fixes the height. Input crops use it at the
   input size and training targets / decoding at the heatmap size, with the same region (``JointsDataset.py:169-
   170``, ``inference.py:105-110``), so heatmap coordinates are *not* input coordinates divided by 4.
   :func:`xywh_to_center_scale` turns COCO boxes into regions as the official ``_xywh2cs`` does, and
   :func:`clean_coco_boxes` sanitises ground-truth boxes as the official loader does.
2. **Edge-to-edge region crops** (:func:`crop_images`, :func:`crop_to_image`, :func:`image_to_crop`): the region's
   edges map onto the crop's edges, crop point ``p`` being the image point
   ``center + R(rotation) @ ((p - c_out) * (size_w / W_out, size_h / H_out))``. The multi-person augmentation uses
   them; the top-down family does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

__all__ = [
    "box_xywh_to_xyxy",
    "box_xyxy_to_xywh",
    "clean_coco_boxes",
    "crop_images",
    "crop_to_image",
    "crop_to_image_matrix",
    "image_to_crop",
    "image_to_crop_matrix",
    "invert_affine",
    "topdown_affine",
    "transform_points",
    "warp_affine",
    "xywh_to_center_scale",
]


def box_xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` ``(x1, y1, x2, y2)`` -> ``(x, y, w, h)`` (a new tensor)."""
    return torch.cat((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), dim=-1)


def box_xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` ``(x, y, w, h)`` -> ``(x1, y1, x2, y2)`` (a new tensor)."""
    return torch.cat((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), dim=-1)


def _check_xywh(boxes: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be an (N, 4) tensor, got shape {tuple(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        bad = torch.nonzero(~torch.isfinite(boxes).all(dim=1)).flatten().tolist()
        raise InvalidInputError(f"boxes contain NaN or infinite values (rows {bad[:10]})")
    negative = (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    if negative.any():
        bad = torch.nonzero(negative).flatten().tolist()
        raise InvalidInputError(
            f"boxes must be (x, y, w, h) with w >= 0 and h >= 0; rows {bad[:10]} have a negative side "
            "(were (x1, y1, x2, y2) boxes with x2 < x1 passed?)"
        )


def xywh_to_center_scale(
    boxes: torch.Tensor, aspect_ratio: float, padding: float = 1.25, min_size: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-down crop region of COCO ``(x, y, w, h)`` boxes, as the official ``_xywh2cs``.

    TransPose ``lib/dataset/coco.py:215-230``: centre ``(x + (w - 1) / 2, y + (h - 1) / 2)``; the shorter side
    (relative to ``aspect_ratio``) is grown so that ``width / height == aspect_ratio``; both sides are multiplied by
    ``padding`` (1.25, ``coco.py:228``). The official code returns the size in units of 200 pixels; here it is in
    pixels (``scale * 200``). Its ``if center[0] != -1`` guard (a sentinel that never occurs) is not copied.

    Sides are clamped to at least ``min_size`` pixels afterwards, so boxes of zero width or height (a point or a
    line) still give a valid, tiny region; :func:`topdown_affine` needs ``size_w > 1`` (the official transform of a
    region narrower than one pixel would be degenerate or mirrored).

    Args:
        boxes: ``(N, 4)`` COCO ``(x, y, w, h)`` boxes in image pixels.
        aspect_ratio: Crop ``width / height``, e.g. ``192 / 256``.
        padding: Scale factor applied to both sides.
        min_size: Smallest side length of the returned size, in pixels.

    Returns:
        ``(center, size)``: ``(N, 2)`` ``(x, y)`` and ``(N, 2)`` ``(width, height)`` in image pixels.

    Raises:
        InvalidInputError: ``boxes`` is not ``(N, 4)``, has a non-finite value or a negative side, or
            ``aspect_ratio`` / ``padding`` is not positive.
    """
    _check_xywh(boxes)
    if not aspect_ratio > 0 or not padding > 0:
        raise InvalidInputError(f"aspect_ratio and padding must be positive, got {aspect_ratio} and {padding}")
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    x, y, w, h = boxes.unbind(dim=-1)
    center = torch.stack((x + (w - 1) * 0.5, y + (h - 1) * 0.5), dim=-1)
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h = torch.where(wider, w / aspect_ratio, h)
    w = torch.where(taller, h * aspect_ratio, w)
    size = (torch.stack((w, h), dim=-1) * padding).clamp(min=min_size)
    return center, size


def clean_coco_boxes(boxes: torch.Tensor, image_width: int, image_height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sanitise ground-truth COCO boxes as the official loader (TransPose ``lib/dataset/coco.py:162-173``).

    ``x1 = max(0, x)``, ``y1 = max(0, y)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``,
    ``y2 = min(H - 1, y1 + max(0, h - 1))``; the clean box is ``(x1, y1, x2 - x1 + 1, y2 - y1 + 1)`` and it is
    valid when ``x2 >= x1`` and ``y2 >= y1``. (The official loader also requires the annotation's ``area > 0``;
    that is the caller's test, since the area is not part of the box.)

    Args:
        boxes: ``(N, 4)`` COCO ``(x, y, w, h)`` boxes as written in the annotation file.
        image_width: Image width ``W`` in pixels.
        image_height: Image height ``H`` in pixels.

    Returns:
        ``(clean, valid)``: ``(N, 4)`` clean ``(x, y, w, h)`` boxes and ``(N,)`` bool validity.
    """
    boxes = boxes if boxes.is_floating_point() else boxes.double()
    x, y, w, h = boxes.unbind(dim=-1)
    x1 = x.clamp(min=0)
    y1 = y.clamp(min=0)
    x2 = torch.minimum(x1 + (w - 1).clamp(min=0), torch.full_like(x1, image_width - 1))
    y2 = torch.minimum(y1 + (h - 1).clamp(min=0), torch.full_like(y1, image_height - 1))
    clean = torch.stack((x1, y1, x2 - x1 + 1, y2 - y1 + 1), dim=-1)
    return clean, (x2 >= x1) & (y2 >= y1)


def _check_region(center: torch.Tensor, size: torch.Tensor, rotation: torch.Tensor | None) -> None:
    if center.dim() != 2 or center.shape[1] != 2 or size.shape != center.shape:
        raise InvalidInputError(
            f"center and size must both be (N, 2), got {tuple(center.shape)} and {tuple(size.shape)}"
        )
    if rotation is not None and rotation.shape != center.shape[:1]:
        raise InvalidInputError(f"rotation must be ({center.shape[0]},), got {tuple(rotation.shape)}")
    if not (torch.isfinite(center).all() and torch.isfinite(size).all()):
        raise InvalidInputError("center and size must be finite")
    if not (size > 0).all():
        raise InvalidInputError("crop sizes must be positive")


def _rotation_cos_sin(
    rotation: torch.Tensor | None, like: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    if rotation is None:
        return torch.ones_like(like, dtype=dtype), torch.zeros_like(like, dtype=dtype)
    radians = torch.deg2rad(rotation.to(dtype=dtype, device=like.device))
    return torch.cos(radians), torch.sin(radians)


def topdown_affine(
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """The official top-down transform from image pixels to crop pixels (see the module docstring).

    Equal to TransPose's ``get_affine_transform(center, scale, rot, (W_out, H_out))`` with ``scale * 200 = size``
    (``lib/utils/transforms.py:58-90``), computed in closed form instead of from three points. ``flip`` appends a
    mirror of the crop, ``x -> W_out - 1 - x``: the official training code mirrors the whole image and its centre
    before the transform (``JointsDataset.py:162-166``); mirroring the image and then rotating by ``r`` equals
    rotating by ``-r`` and then mirroring the crop, which is how callers express it here.

    Args:
        center: ``(N, 2)`` region centres in image pixels.
        size: ``(N, 2)`` region ``(width, height)`` in image pixels; only the width enters, and it must exceed 1.
        output_size: Crop ``(H_out, W_out)`` (input size or heatmap size).
        rotation: ``(N,)`` rotations in degrees, or ``None`` for none.
        flip: ``(N,)`` bool, mirror the crop horizontally; ``None`` for none.

    Returns:
        ``(N, 2, 3)`` matrices taking image pixels to crop pixels, in ``center``'s floating dtype (computed in
        float64).

    Raises:
        InvalidInputError: bad shapes, non-finite values, or a region width of at most one pixel.
    """
    _check_region(center, size, rotation)
    if not (size[:, 0] > 1).all():
        raise InvalidInputError("top-down regions must be more than 1 pixel wide (size_w > 1)")
    out_h, out_w = (int(v) for v in output_size)
    if out_h < 1 or out_w < 2:
        raise InvalidInputError(f"output_size must be (H >= 1, W >= 2), got {output_size}")
    dtype = center.dtype if center.is_floating_point() else torch.float32
    c = center.to(torch.float64)
    factor = (out_w - 1) / (size[:, 0].to(dtype=torch.float64, device=c.device) - 1)
    cos, sin = _rotation_cos_sin(rotation, c[:, 0], torch.float64)
    # image -> crop: factor * R(-rotation), R(-a) = [[cos a, sin a], [-sin a, cos a]]
    linear = torch.stack(
        (torch.stack((cos * factor, sin * factor), -1), torch.stack((-sin * factor, cos * factor), -1)), dim=-2
    )
    crop_centre = torch.tensor(((out_w - 1) / 2, (out_h - 1) / 2), dtype=torch.float64, device=c.device)
    translation = crop_centre - (linear @ c[:, :, None]).squeeze(-1)
    matrices = torch.cat((linear, translation[..., None]), dim=-1)
    if flip is not None:
        if flip.shape != center.shape[:1]:
            raise InvalidInputError(f"flip must be ({center.shape[0]},), got {tuple(flip.shape)}")
        mirror = torch.tensor([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64, device=c.device)
        mirrored = mirror[:, :2] @ matrices + F.pad(mirror[:, 2:], (2, 0))
        matrices = torch.where(flip.to(c.device).view(-1, 1, 1), mirrored, matrices)
    return matrices.to(dtype)


def invert_affine(matrices: torch.Tensor) -> torch.Tensor:
    """Inverses of ``(N, 2, 3)`` affine matrices (a new ``(N, 2, 3)`` tensor)."""
    linear_inv = torch.linalg.inv(matrices[:, :, :2])
    translation = -(linear_inv @ matrices[:, :, 2:])
    return torch.cat((linear_inv, translation), dim=-1)


def crop_to_image_matrix(
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affine matrices taking crop pixels to image pixels (see the module docstring for the formula).

    Args:
        center: ``(N, 2)`` region centres in image pixels.
        size: ``(N, 2)`` region ``(width, height)`` in image pixels.
        output_size: Crop ``(H_out, W_out)``.
        rotation: ``(N,)`` rotations in degrees, or ``None`` for none.

    Returns:
        ``(N, 2, 3)`` matrices ``M`` with ``image_xy = M[:, :, :2] @ crop_xy + M[:, :, 2]``.
    """
    _check_region(center, size, rotation)
    dtype = center.dtype if center.is_floating_point() else torch.float32
    center = center.to(dtype)
    out_h, out_w = output_size
    scale = size.to(dtype=dtype, device=center.device) / torch.tensor((out_w, out_h), dtype=dtype, device=center.device)
    crop_centre = torch.tensor(((out_w - 1) / 2, (out_h - 1) / 2), dtype=dtype, device=center.device)
    if rotation is None:
        cos = torch.ones_like(center[:, 0])
        sin = torch.zeros_like(center[:, 0])
    else:
        radians = torch.deg2rad(rotation.to(dtype=dtype, device=center.device))
        cos, sin = torch.cos(radians), torch.sin(radians)
    linear = torch.stack(
        (
            torch.stack((cos * scale[:, 0], -sin * scale[:, 1]), -1),
            torch.stack((sin * scale[:, 0], cos * scale[:, 1]), -1),
        ),
        dim=-2,
    )  # (N, 2, 2) = R @ diag(scale)
    translation = center - (linear @ crop_centre[:, None]).squeeze(-1)
    return torch.cat((linear, translation[..., None]), dim=-1)


def image_to_crop_matrix(
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of :func:`crop_to_image_matrix`: ``(N, 2, 3)`` matrices taking image pixels to crop pixels."""
    return invert_affine(crop_to_image_matrix(center, size, output_size, rotation))


def transform_points(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply per-instance affine maps.

    Args:
        points: ``(N, K, 2)`` points.
        matrices: ``(N, 2, 3)`` affine matrices.

    Returns:
        ``(N, K, 2)`` transformed points (a new tensor).
    """
    if points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != matrices.shape[0]:
        raise InvalidInputError(
            f"points must be (N, K, 2) with N = {matrices.shape[0]}, got shape {tuple(points.shape)}"
        )
    matrices = matrices.to(points.dtype)
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]


def crop_to_image(
    points: torch.Tensor,
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Map ``(N, K, 2)`` points from crop pixels back to image pixels (exact inverse of :func:`image_to_crop`)."""
    return transform_points(points, crop_to_image_matrix(center, size, output_size, rotation))


def image_to_crop(
    points: torch.Tensor,
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Map ``(N, K, 2)`` points from image pixels into crop pixels (what :func:`crop_images` does to pixels)."""
    return transform_points(points, image_to_crop_matrix(center, size, output_size, rotation))


def _check_image(image: torch.Tensor, n: int) -> None:
    if image.dim() not in (3, 4) or image.shape[-1] == 0 or image.shape[-2] == 0:
        raise InvalidInputError(f"image must be a non-empty (C, H, W) or (N, C, H, W) tensor, got {tuple(image.shape)}")
    if image.dim() == 4 and image.shape[0] != n:
        raise InvalidInputError(f"got {image.shape[0]} images for {n} crops; pass one image per crop or one image")


def _sample(
    image: torch.Tensor,
    crop_to_image_matrices: torch.Tensor,
    output_size: tuple[int, int],
    pad_value: float,
    mode: str,
) -> torch.Tensor:
    """Sample ``(N, C, H_out, W_out)`` crops at ``image`` points ``M @ crop_xy`` (bilinear, zeros padded)."""
    n = crop_to_image_matrices.shape[0]
    _check_image(image, n)
    out_h, out_w = (int(v) for v in output_size)
    if out_h <= 0 or out_w <= 0:
        raise InvalidInputError(f"output_size must be positive (H, W), got {output_size}")
    dtype = image.dtype if image.is_floating_point() else torch.float32
    if n == 0:
        return torch.zeros(0, image.shape[-3], out_h, out_w, dtype=dtype, device=image.device)
    img_h, img_w = image.shape[-2:]
    # theta = normalise_image @ crop_to_image @ denormalise_crop, all with align_corners=False:
    # normalised u_n = (2 u + 1) / W_out - 1  <=>  u = ((u_n + 1) W_out - 1) / 2, and likewise for the image.
    crop_from_norm = torch.tensor(
        [[out_w / 2, 0.0, (out_w - 1) / 2], [0.0, out_h / 2, (out_h - 1) / 2], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=image.device,
    )
    norm_from_image = torch.tensor(
        [[2 / img_w, 0.0, 1 / img_w - 1], [0.0, 2 / img_h, 1 / img_h - 1]], dtype=dtype, device=image.device
    )
    last_row = torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype, device=image.device).expand(n, 1, 3)
    matrices = crop_to_image_matrices.to(dtype=dtype, device=image.device)
    theta = norm_from_image @ torch.cat((matrices, last_row), dim=1) @ crop_from_norm
    grid = F.affine_grid(theta, [n, image.shape[-3], out_h, out_w], align_corners=False)
    source = image.to(dtype) - pad_value
    if image.dim() == 3:  # one image: sample all crops in one call without copying the image N times
        crops = F.grid_sample(
            source[None], grid.reshape(1, n * out_h, out_w, 2), mode=mode, padding_mode="zeros", align_corners=False
        )
        crops = crops.reshape(image.shape[0], n, out_h, out_w).transpose(0, 1)
    else:
        crops = F.grid_sample(source, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return crops + pad_value


def warp_affine(
    image: torch.Tensor,
    matrices: torch.Tensor,
    output_size: tuple[int, int],
    pad_value: float = 0.0,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Batched ``cv2.warpAffine``: crops whose pixel ``p`` shows the image at ``M^-1 p``, on any device.

    The official code crops with ``cv2.warpAffine(..., flags=cv2.INTER_LINEAR)`` and a constant black border
    (``JointsDataset.py:172-176``); this samples with ``grid_sample`` (``align_corners=False``, the same
    integer-pixel-centre convention) and fills what lies outside the image with ``pad_value``. Bilinear sampling
    blends image and padding over the last half pixel at the border, as OpenCV does. (OpenCV quantises sampling
    positions to 1/32 pixel; we do not.)

    Args:
        image: One ``(C, H, W)`` image shared by all N crops, or ``(N, C, H, W)`` with one image per crop. Any
            dtype; uint8 is sampled as float32.
        matrices: ``(N, 2, 3)`` image-to-crop matrices, e.g. :func:`topdown_affine`.
        output_size: Crop ``(H_out, W_out)``.
        pad_value: Value outside the image, in the image's value range (e.g. 0-255 for uint8).
        mode: ``grid_sample`` interpolation, ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(N, C, H_out, W_out)`` floating tensor on the image's device, values in the image's range.

    Raises:
        InvalidInputError: bad shapes or an empty image.
    """
    if matrices.dim() != 3 or matrices.shape[1:] != (2, 3):
        raise InvalidInputError(f"matrices must be (N, 2, 3), got {tuple(matrices.shape)}")
    return _sample(image, invert_affine(matrices.double()), output_size, pad_value, mode)


def crop_images(
    image: torch.Tensor,
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
    pad_value: float = 0.0,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Edge-to-edge region crops (see the module docstring) with ``grid_sample``, batched, any device.

    Regions may extend partly or wholly outside the image; those parts are filled with ``pad_value`` (bilinear
    sampling blends image and padding over the last half pixel at the border).

    Args:
        image: One ``(3, H, W)`` image shared by all N crops, or ``(N, 3, H, W)`` with one image per crop. Any
            dtype; uint8 is sampled as float32.
        center: ``(N, 2)`` region centres in image pixels.
        size: ``(N, 2)`` region ``(width, height)`` in image pixels.
        output_size: Crop ``(H_out, W_out)``.
        rotation: ``(N,)`` rotations in degrees, or ``None``.
        pad_value: Value outside the image, in the image's value range (e.g. 0-255 for uint8).
        mode: ``grid_sample`` interpolation, ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(N, C, H_out, W_out)`` floating tensor on the image's device, values in the image's range.

    Raises:
        InvalidInputError: bad shapes, non-finite or non-positive sizes, or an empty image.
    """
    _check_image(image, center.shape[0] if center.dim() == 2 else -1)
    _check_region(center, size, rotation)
    dtype = image.dtype if image.is_floating_point() else torch.float32
    out_h, out_w = (int(v) for v in output_size)
    if out_h <= 0 or out_w <= 0:
        raise InvalidInputError(f"output_size must be positive (H, W), got {output_size}")
    matrices = crop_to_image_matrix(center.to(dtype), size.to(dtype), (out_h, out_w), rotation)
    return _sample(image, matrices, (out_h, out_w), pad_value, mode)
