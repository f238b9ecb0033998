"""The top-down codec of the TransPose / VTTransPose family: image + boxes -> crops, keypoints -> targets,
heatmaps -> keypoints, all with the official TransPose geometry.

Shape key:
    - N: instances (person boxes), K: joints, C: image channels.
    - ``(H, W)`` = ``input_size`` (model input crop), ``(h, w)`` = ``heatmap_size`` (model output), height first.
    - Boxes ``(N, 4)`` in original-image pixels, ``xyxy`` or COCO ``xywh``. Keypoints ``(N, K, 2)`` ``(x, y)`` in
      original-image pixels (integer coordinates are pixel centres, :mod:`posecommon.ops.geometry`).
    - :class:`TopDownRegions`: per instance ``center`` ``(N, 2)``, ``size`` ``(N, 2)`` (pixels), ``rotation``
      ``(N,)`` degrees, ``flipped`` ``(N,)`` bool; together they *are* the transforms of the crops.

The three directions, each a method of :class:`TopDownCodec`:

1. :meth:`~TopDownCodec.regions` + :meth:`~TopDownCodec.crop`: boxes -> regions (the official ``_xywh2cs``:
   centre ``x + (w - 1) / 2``, aspect fixed to ``W / H`` by growing the short side, padded by 1.25; TransPose
   ``lib/dataset/coco.py:215-230``) -> ``(N, C, H, W)`` crops through the official transform at the input size
   (:func:`posecommon.ops.geometry.topdown_affine`, ``lib/utils/transforms.py:58-90``; ``JointsDataset.py:169-176``).
2. :meth:`~TopDownCodec.encode`: keypoints in the image -> ``(N, K, h, w)`` Gaussian targets and ``(N, K)``
   weights. The keypoints go through the *same* region's transform at the **heatmap** size and the Gaussian is
   drawn at those coordinates directly (``JointsDataset.py:170, 181-186``), not at input coordinates / 4.
3. :meth:`~TopDownCodec.decode`: heatmaps -> argmax + DARK in heatmap pixels -> the inverse heatmap-size
   transform straight back to the image (``get_final_preds`` and ``transform_preds``, ``lib/core/inference.py:90-
   112``, ``lib/utils/transforms.py:50-55``), plus the heatmap maxima as scores.

The flip test averages the heatmaps with :func:`~posecommon.codecs.flip_average` (``flip_back``, no shift) before
:meth:`~TopDownCodec.decode`; training flips are regions with ``flipped`` set (see :meth:`TopDownCodec.encode`).
The dataset (:class:`posecommon.data.TopDownCocoDataset`), ``vttranspose.predict_topdown`` and the evaluation of
top-down models all go through this class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from ..ops.geometry import (
    box_xyxy_to_xywh,
    invert_affine,
    topdown_affine,
    transform_points,
    warp_affine,
    xywh_to_center_scale,
)
from .heatmap import decode_heatmaps, generate_gaussian_heatmaps

__all__ = ["TopDownCodec", "TopDownRegions"]


@dataclass(frozen=True)
class TopDownRegions:
    """The crop regions of N instances: what :meth:`TopDownCodec.crop` cut and how.

    Args:
        center: ``(N, 2)`` region centres ``(x, y)`` in image pixels.
        size: ``(N, 2)`` region ``(width, height)`` in image pixels (the official ``scale * 200``).
        rotation: ``(N,)`` rotations in degrees (0 at inference).
        flipped: ``(N,)`` bool: the crop is mirrored horizontally after the transform (training only).
    """

    center: torch.Tensor
    size: torch.Tensor
    rotation: torch.Tensor
    flipped: torch.Tensor

    def __post_init__(self) -> None:
        n = self.center.shape[0] if self.center.dim() == 2 else -1
        if self.center.shape != (n, 2) or self.size.shape != (n, 2):
            raise InvalidInputError(
                f"center and size must both be (N, 2), got {tuple(self.center.shape)} and {tuple(self.size.shape)}"
            )
        if self.rotation.shape != (n,) or self.flipped.shape != (n,):
            raise InvalidInputError(
                f"rotation and flipped must be ({n},), got {tuple(self.rotation.shape)} and {tuple(self.flipped.shape)}"
            )

    @classmethod
    def create(
        cls,
        center: torch.Tensor,
        size: torch.Tensor,
        rotation: torch.Tensor | None = None,
        flipped: torch.Tensor | None = None,
    ) -> TopDownRegions:
        """Regions with zero rotation and no flip unless given."""
        n = center.shape[0]
        if rotation is None:
            rotation = torch.zeros(n, dtype=center.dtype if center.is_floating_point() else torch.float32)
        if flipped is None:
            flipped = torch.zeros(n, dtype=torch.bool)
        return cls(center, size, rotation.to(center.device), flipped.to(device=center.device, dtype=torch.bool))

    def __len__(self) -> int:
        return self.center.shape[0]

    def __getitem__(self, index: slice | int | torch.Tensor) -> TopDownRegions:
        """The regions selected by ``index`` (an int keeps the instance axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return TopDownRegions(self.center[index], self.size[index], self.rotation[index], self.flipped[index])

    @property
    def area(self) -> torch.Tensor:
        """``(N,)`` region areas ``width * height``: the instance area of OKS-NMS (``np.prod(s * 200, 1)``,
        TransPose ``lib/core/function.py:174``)."""
        return self.size[:, 0] * self.size[:, 1]

    def to(self, device: torch.device | str) -> TopDownRegions:
        """The same regions on ``device``."""
        return TopDownRegions(
            self.center.to(device), self.size.to(device), self.rotation.to(device), self.flipped.to(device)
        )


def _check_xyxy(boxes: torch.Tensor) -> None:
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
            "(were (x, y, w, h) boxes passed? use box_format='xywh')"
        )


def _swap_flipped(values: torch.Tensor, flipped: torch.Tensor, flip_indices: Sequence[int] | None) -> torch.Tensor:
    """Joint ``k`` of a flipped instance becomes its mirror joint ``flip_indices[k]`` (``(N, K, ...)`` values)."""
    if not bool(flipped.any()):
        return values
    if flip_indices is None:
        raise InvalidInputError("flipped regions need flip_indices (KeypointSpec.flip_indices) to swap left/right")
    index = torch.as_tensor(flip_indices, dtype=torch.long, device=values.device)
    if index.shape != (values.shape[1],):
        raise InvalidInputError(f"flip_indices must have {values.shape[1]} entries, got {tuple(index.shape)}")
    mask = flipped.to(values.device).view(-1, *([1] * (values.dim() - 1)))
    return torch.where(mask, values.index_select(1, index), values)


@dataclass(frozen=True)
class TopDownCodec:
    """Crops, training targets and decoding of the TransPose / VTTransPose family (see the module docstring).

    Args:
        input_size: Model input ``(H, W)``, e.g. ``(256, 192)`` (TP-H-S yaml ``IMAGE_SIZE``, lines 39-41).
        heatmap_size: Model output ``(h, w)``, e.g. ``(64, 48)`` (``HEATMAP_SIZE``, lines 42-44).
        sigma: Gaussian standard deviation of the targets in heatmap pixels (``SIGMA: 2``, line 45).
        use_dark: Decode with DARK (TransPose always does); otherwise argmax + quarter-pixel shift.
        blur_kernel_size: DARK's blur kernel (``TEST.BLUR_KERNEL: 11``, line 104).
        padding: Box padding factor of :meth:`regions` (``_xywh2cs``, ``coco.py:228``).

    Example:
        >>> codec = TopDownCodec((256, 192), (64, 48))
        >>> regions = codec.regions(torch.tensor([[100.0, 50.0, 244.0, 370.0]]))
        >>> crops = codec.crop(image, regions)  # (1, 3, 256, 192)
        >>> keypoints, scores = codec.decode(model(normalize(crops)), regions)  # image pixels
    """

    input_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] = (64, 48)
    sigma: float = 2.0
    use_dark: bool = True
    blur_kernel_size: int = 11
    padding: float = 1.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(v) for v in self.heatmap_size))
        if len(self.input_size) != 2 or min(self.input_size) <= 1:
            raise InvalidInputError(f"input_size must be an (H, W) pair larger than 1, got {self.input_size}")
        if len(self.heatmap_size) != 2 or min(self.heatmap_size) <= 1:
            raise InvalidInputError(f"heatmap_size must be an (h, w) pair larger than 1, got {self.heatmap_size}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise InvalidInputError(f"sigma must be positive, got {self.sigma}")
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise InvalidInputError(f"blur_kernel_size must be a positive odd integer, got {self.blur_kernel_size}")
        if not self.padding > 0:
            raise InvalidInputError(f"padding must be positive, got {self.padding}")

    @property
    def aspect_ratio(self) -> float:
        """Crop ``W / H``."""
        return self.input_size[1] / self.input_size[0]

    def regions(self, boxes: torch.Tensor, box_format: str = "xyxy") -> TopDownRegions:
        """Crop regions of person boxes, as the official ``_xywh2cs`` (no rotation, no flip).

        ``xyxy`` boxes are read as COCO ``(x1, y1, x2 - x1, y2 - y1)``, so their centre is
        ``((x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2)``: exactly what the official code does with the same box written
        in a COCO detection file.

        Args:
            boxes: ``(N, 4)`` boxes in image pixels.
            box_format: ``"xyxy"`` or ``"xywh"`` (COCO).

        Returns:
            The regions (float32, or the boxes' floating dtype).

        Raises:
            InvalidInputError: malformed, non-finite or inverted boxes, or an unknown ``box_format``.
        """
        if box_format == "xyxy":
            _check_xyxy(boxes)
            boxes = box_xyxy_to_xywh(boxes if boxes.is_floating_point() else boxes.float())
        elif box_format != "xywh":
            raise InvalidInputError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
        center, size = xywh_to_center_scale(boxes, self.aspect_ratio, self.padding)
        return TopDownRegions.create(center, size)

    def input_transform(self, regions: TopDownRegions) -> torch.Tensor:
        """``(N, 2, 3)`` float64 image-to-input-crop matrices (flips included)."""
        center, size = regions.center.double(), regions.size.double()
        return topdown_affine(center, size, self.input_size, regions.rotation, regions.flipped)

    def heatmap_transform(self, regions: TopDownRegions) -> torch.Tensor:
        """``(N, 2, 3)`` float64 image-to-heatmap matrices: the same regions at the heatmap size (flips included)."""
        center, size = regions.center.double(), regions.size.double()
        return topdown_affine(center, size, self.heatmap_size, regions.rotation, regions.flipped)

    def crop(self, image: torch.Tensor, regions: TopDownRegions, pad_value: float = 0.0) -> torch.Tensor:
        """Model-input crops of the regions (bilinear, ``pad_value`` outside the image).

        Args:
            image: One ``(C, H_img, W_img)`` image for all regions or ``(N, C, H_img, W_img)``, any dtype.
            regions: The N regions.
            pad_value: Pixel value outside the image (in the image's value range).

        Returns:
            ``(N, C, H, W)`` floating crops in the image's value range (not normalised).
        """
        return warp_affine(image, self.input_transform(regions), self.input_size, pad_value=pad_value)

    def keypoints_to_input(
        self, keypoints: torch.Tensor, regions: TopDownRegions, flip_indices: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Image keypoints ``(N, K, 2)`` -> model-input crop pixels (left/right swapped in flipped regions)."""
        points = transform_points(keypoints.double(), self.input_transform(regions).to(keypoints.device))
        points = points.to(keypoints.dtype if keypoints.is_floating_point() else torch.float32)
        return _swap_flipped(points, regions.flipped, flip_indices)

    def encode(
        self,
        keypoints: torch.Tensor,
        visible: torch.Tensor | None,
        regions: TopDownRegions,
        flip_indices: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian heatmap targets for keypoints given in the original image.

        The keypoints are mapped with the region's transform at the heatmap size and drawn there
        (:func:`~posecommon.codecs.generate_gaussian_heatmaps`: sigma, weight rules). In a flipped region joint
        ``k`` of the target is the mirrored joint ``flip_indices[k]`` (``fliplr_joints``,
        ``lib/utils/transforms.py:33-47``), and its weight is judged at the mirrored position, as in the official
        code.

        Args:
            keypoints: ``(N, K, 2)`` keypoints in image pixels.
            visible: ``(N, K)`` visibility (``> 0`` = labelled); all visible when ``None``.
            regions: The N regions the crops were (or will be) cut from.
            flip_indices: Joint permutation (:attr:`~posecommon.KeypointSpec.flip_indices`); needed when a region
                is flipped.

        Returns:
            ``(heatmaps, weights)``: ``(N, K, h, w)`` targets (peak 1) and ``(N, K)`` weights in ``{0, 1}``,
            float32 or the keypoints' floating dtype.
        """
        if keypoints.dim() != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] != len(regions):
            raise InvalidInputError(f"keypoints must be ({len(regions)}, K, 2), got {tuple(keypoints.shape)}")
        dtype = keypoints.dtype if keypoints.is_floating_point() else torch.float32
        if visible is None:
            visible = torch.ones(keypoints.shape[:2], device=keypoints.device)
        matrices = self.heatmap_transform(regions).to(keypoints.device)
        points = transform_points(keypoints.double(), matrices).to(dtype)
        points = _swap_flipped(points, regions.flipped, flip_indices)
        visible = _swap_flipped(visible, regions.flipped, flip_indices)
        return generate_gaussian_heatmaps(points, visible, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: torch.Tensor, regions: TopDownRegions) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in the original image and their scores.

        Args:
            heatmaps: ``(N, K, h, w)`` heatmaps of the unflipped crops (flip-test averaged, if any).
            regions: The N regions the crops were cut from (rotations allowed; not flipped).

        Returns:
            ``(keypoints, scores)``: ``(N, K, 2)`` ``(x, y)`` in image pixels and ``(N, K)`` heatmap maxima, float32
            or the heatmaps' dtype if wider (the transform is computed in float64).

        Raises:
            InvalidInputError: wrong heatmap size or count, or a flipped region (merge flipped heatmaps with
                :func:`~posecommon.codecs.flip_average` first).
        """
        if heatmaps.dim() != 4 or tuple(heatmaps.shape[-2:]) != self.heatmap_size or heatmaps.shape[0] != len(regions):
            raise InvalidInputError(
                f"heatmaps must be ({len(regions)}, K, {self.heatmap_size[0]}, {self.heatmap_size[1]}), got "
                f"{tuple(heatmaps.shape)}"
            )
        if bool(regions.flipped.any()):
            raise InvalidInputError(
                "decode takes heatmaps of unflipped crops; average the flipped crops' heatmaps in with "
                "flip_average first"
            )
        coords, scores = decode_heatmaps(heatmaps, self.use_dark, self.blur_kernel_size)
        inverse = invert_affine(self.heatmap_transform(regions)).to(coords.device)
        return transform_points(coords.double(), inverse).to(coords.dtype), scores
