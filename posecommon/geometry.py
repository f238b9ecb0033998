"""Top-down geometry: boxes, box -> center/size, affine crops with ``grid_sample``, and their exact inverses.

Shape key:
    - N: boxes / crops, K: points per crop, B: images.
    - Boxes: ``(N, 4)``, either ``xyxy`` = ``(x1, y1, x2, y2)`` or ``xywh`` = ``(x, y, w, h)`` (COCO), in image pixels.
    - ``center``: ``(N, 2)`` ``(x, y)`` and ``size``: ``(N, 2)`` ``(width, height)`` of the region to crop, in image
      pixels (no 200-pixel units as in HRNet). ``rotation``: ``(N,)`` degrees.
    - ``output_size``: crop ``(H, W)``, height first like tensor shapes; images are ``(3, H, W)`` / ``(B, 3, H, W)``.
    - Points: ``(N, K, 2)`` ``(x, y)``.

Pixel-centre convention: integer coordinates are pixel centres in the image and in the crop, so a ``W``-pixel-wide
image spans ``[-0.5, W - 0.5]``. The crop of ``(center, size)`` maps the region's edges onto the crop's edges: crop
point ``p`` (a pixel of an ``(H_out, W_out)`` crop) is the image point::

    center + R(rotation) @ ((p - ((W_out - 1) / 2, (H_out - 1) / 2)) * (size_w / W_out, size_h / H_out))

with ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` acting on ``(x, y)`` with y pointing down (a positive rotation
turns the sampled region clockwise on screen, so its content appears turned counter-clockwise in the crop). This is
exactly ``grid_sample``'s ``align_corners=False`` convention, which :func:`crop_images` uses; :func:`crop_to_image`
and :func:`image_to_crop` apply the same affine map and its inverse, so keypoints decoded in crop pixels map back
exactly. (HRNet maps the box centre to ``W_out / 2`` instead of ``(W_out - 1) / 2``, half a pixel off; we do not
copy that.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InvalidInputError

__all__ = [
    "box_to_center_scale",
    "box_xywh_to_xyxy",
    "box_xyxy_to_xywh",
    "crop_images",
    "crop_to_image",
    "crop_to_image_matrix",
    "image_to_crop",
    "image_to_crop_matrix",
    "transform_points",
]


def box_xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` ``(x1, y1, x2, y2)`` -> ``(x, y, w, h)`` (a new tensor)."""
    return torch.cat((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), dim=-1)


def box_xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` ``(x, y, w, h)`` -> ``(x1, y1, x2, y2)`` (a new tensor)."""
    return torch.cat((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), dim=-1)


def box_to_center_scale(
    boxes: torch.Tensor, aspect_ratio: float, padding: float = 1.25, min_size: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop region of top-down pose models: the box, grown to ``aspect_ratio`` and padded.

    The "scale" is returned as a size in pixels (HRNet's ``scale * 200``).

    As in HRNet/TransPose's ``_box2cs``: the shorter side (relative to ``aspect_ratio``) is enlarged so that
    ``width / height == aspect_ratio`` with the centre fixed, then both sides are multiplied by ``padding``.
    Sides are clamped to at least ``min_size`` pixels afterwards, so zero-width or zero-height boxes (a point or a
    line) still give a valid, tiny crop.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` boxes in image pixels.
        aspect_ratio: Crop ``width / height``, e.g. ``192 / 256``.
        padding: Scale factor applied to both sides.
        min_size: Smallest side length of the returned size, in pixels.

    Returns:
        ``(center, size)``: ``(N, 2)`` ``(x, y)`` and ``(N, 2)`` ``(width, height)`` in image pixels.

    Raises:
        InvalidInputError: ``boxes`` is not ``(N, 4)``, has a non-finite value, or has ``x2 < x1`` or ``y2 < y1``.
    """
    _check_boxes(boxes)
    if not aspect_ratio > 0:
        raise InvalidInputError(f"aspect_ratio must be positive, got {aspect_ratio}")
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    center = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    wider = w > aspect_ratio * h
    w, h = torch.where(wider, w, h * aspect_ratio), torch.where(wider, w / aspect_ratio, h)
    size = (torch.stack((w, h), dim=-1) * padding).clamp(min=min_size)
    return center, size


def _check_boxes(boxes: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be an (N, 4) tensor, got shape {tuple(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        bad = torch.nonzero(~torch.isfinite(boxes).all(dim=1)).flatten().tolist()
        raise InvalidInputError(f"boxes contain NaN or infinite values (rows {bad[:10]})")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        bad = torch.nonzero(inverted).flatten().tolist()
        raise InvalidInputError(
            f"boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; rows {bad[:10]} are inverted "
            "(were (x, y, w, h) boxes passed?)"
        )


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


def _invert_affine(matrices: torch.Tensor) -> torch.Tensor:
    linear_inv = torch.linalg.inv(matrices[:, :, :2])
    translation = -(linear_inv @ matrices[:, :, 2:])
    return torch.cat((linear_inv, translation), dim=-1)


def image_to_crop_matrix(
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of :func:`crop_to_image_matrix`: ``(N, 2, 3)`` matrices taking image pixels to crop pixels."""
    return _invert_affine(crop_to_image_matrix(center, size, output_size, rotation))


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


def crop_images(
    image: torch.Tensor,
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation: torch.Tensor | None = None,
    pad_value: float = 0.0,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Affine crops with ``affine_grid`` / ``grid_sample`` (``align_corners=False``), batched, any device.

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
    if image.dim() not in (3, 4) or image.shape[-1] == 0 or image.shape[-2] == 0:
        raise InvalidInputError(f"image must be a non-empty (C, H, W) or (N, C, H, W) tensor, got {tuple(image.shape)}")
    _check_region(center, size, rotation)
    n = center.shape[0]
    if image.dim() == 4 and image.shape[0] != n:
        raise InvalidInputError(f"got {image.shape[0]} images for {n} crops; pass one image per crop or one image")
    out_h, out_w = (int(v) for v in output_size)
    if out_h <= 0 or out_w <= 0:
        raise InvalidInputError(f"output_size must be positive (H, W), got {output_size}")
    dtype = image.dtype if image.is_floating_point() else torch.float32
    if n == 0:
        return torch.zeros(0, image.shape[-3], out_h, out_w, dtype=dtype, device=image.device)
    img_h, img_w = image.shape[-2:]
    # theta = normalise_image @ crop_to_image @ denormalise_crop, all with align_corners=False:
    # normalised u_n = (2 u + 1) / W_out - 1  <=>  u = ((u_n + 1) W_out - 1) / 2, and likewise for the image.
    matrices = crop_to_image_matrix(center.to(dtype), size.to(dtype), (out_h, out_w), rotation)
    crop_from_norm = torch.tensor(
        [[out_w / 2, 0.0, (out_w - 1) / 2], [0.0, out_h / 2, (out_h - 1) / 2], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=image.device,
    )
    norm_from_image = torch.tensor(
        [[2 / img_w, 0.0, 1 / img_w - 1], [0.0, 2 / img_h, 1 / img_h - 1]], dtype=dtype, device=image.device
    )
    last_row = torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype, device=image.device).expand(n, 1, 3)
    theta = norm_from_image @ torch.cat((matrices.to(image.device), last_row), dim=1) @ crop_from_norm
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
