"""Fast uint8 image composition: each source image is resampled once, straight into its place in the output.

A training sample of the multi-person dataset (mosaic, scale, translate) is an axis-aligned map of up to four
source images into one ``S x S`` output. Instead of building a ``2S x 2S`` float canvas and resampling it, each
source image is resampled directly from its decoded pixels into the output pixels it covers, in uint8, with
PyTorch's antialiased bilinear kernel (:func:`torch.nn.functional.interpolate` with ``antialias=True`` on a
channels-last uint8 tensor, which PyTorch runs with SIMD; docs/benchmarks.md compares it with Pillow). The filter
is a triangle whose support grows with the reduction factor when shrinking, plain bilinear when enlarging, as
Pillow's ``BILINEAR``. Output pixels no source covers keep the pad value.

Coordinates follow posezoo's pixel-centre convention (:mod:`posecommon.ops.geometry`). A :class:`TilePlacement` maps
source pixels to output pixels as ``p = x * scale + offset`` per axis and owns the output pixels whose centres lie
in its ``region`` ``[x1, x2) x [y1, y2)``.

The kernel samples output pixel ``j`` of a crop that starts at source pixel ``c`` at source point
``c + (j + 0.5) / scale - 0.5``: it can only start a tile on the source pixel grid, at output offsets that are
whole pixels apart. :meth:`TilePlacement.on_source_grid` therefore moves a placement's offset to the nearest offset
the kernel samples exactly (by at most half an output pixel per axis; uniformly distributed and unbiased, since the
offsets drawn are continuous). The dataset computes its targets from the moved placement, so pixels and targets
agree exactly; the crop is taken with a margin of real neighbouring pixels wherever the source has them, so the
filter is cut only at the source image's own border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TilePlacement", "compose_tiles"]


@dataclass(frozen=True)
class TilePlacement:
    """Where one source image lands in the output.

    Args:
        scale: ``(a_x, a_y)``, output pixels per source pixel (positive).
        offset: ``(b_x, b_y)``: source point ``(x, y)`` lands at ``(a_x x + b_x, a_y y + b_y)``.
        region: ``(x1, y1, x2, y2)`` in output pixels: the part of the output this source covers (it must lie
            inside the mapped source image); output pixels with centres in ``[x1, x2) x [y1, y2)`` show it.
        grid: ``((start_x, skip_x), (start_y, skip_y))`` of an on-grid placement (set by :meth:`on_source_grid`
            for one output size): the first source pixel of the crop and the resampled samples skipped before the
            output box, per axis. Kept rather than re-derived: deriving it again from the moved offset can pick
            another crop start when shrinking, and with it another grid point.
    """

    scale: tuple[float, float]
    offset: tuple[float, float]
    region: tuple[float, float, float, float]
    grid: tuple[tuple[int, int], tuple[int, int]] | None = None

    def output_box(self, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """Output pixel columns/rows ``(left, top, right, bottom)`` (end exclusive) this source fills in an
        output of ``size`` ``(H, W)``, or ``None`` when it fills none."""
        x1, y1, x2, y2 = self.region
        height, width = size
        left, right = (min(max(math.ceil(v), 0), width) for v in (x1, x2))
        top, bottom = (min(max(math.ceil(v), 0), height) for v in (y1, y2))
        if right <= left or bottom <= top:
            return None
        return left, top, right, bottom

    def on_source_grid(self, size: tuple[int, int]) -> TilePlacement:
        """This placement with its offset moved to the nearest one the resampling kernel samples exactly.

        Each axis moves by at most half an output pixel (see the module docstring); the scale and the region do not
        change. A placement already on the grid is returned unchanged (up to float rounding).

        Args:
            size: Output ``(H, W)``.
        """
        box = self.output_box(size)
        if box is None:
            return self
        axes = [_grid_axis(a, b, first) for a, b, first in zip(self.scale, self.offset, box[:2], strict=True)]
        (start_x, skip_x, offset_x), (start_y, skip_y, offset_y) = axes
        return TilePlacement(self.scale, (offset_x, offset_y), self.region, ((start_x, skip_x), (start_y, skip_y)))


def _margin(a: float) -> int:
    """Source pixels of real neighbours taken beyond a tile's own pixels at scale ``a``, where the source has them:
    the filter's support (1 source pixel when enlarging, ``1 / a`` when shrinking) plus one."""
    return math.ceil(max(1.0, 1.0 / a)) + 1


def _grid_axis(a: float, b: float, first: int) -> tuple[int, int, float]:
    """On-grid plan of one axis for output pixels from ``first`` on, under ``p = a x + b``.

    Returns:
        ``(start, skip, offset)``: the crop's first source pixel (:func:`_margin` before the tile's own pixels, or 0),
        the resampled samples to skip before ``first``, and the offset ``b'`` this realises, within half an output
        pixel of ``b``.
    """
    edge = (first - 0.5 - b) / a + 0.5  # source pixel-edge coordinate of output pixel `first`'s left edge
    start = max(math.floor(edge) - _margin(a), 0)
    skip = max(round(a * (edge - start)), 0)
    return start, skip, a * (0.5 - start) - 0.5 + first - skip


def compose_tiles(
    sources: Sequence[np.ndarray | None],
    placements: Sequence[TilePlacement],
    size: tuple[int, int],
    pad_value: int,
) -> np.ndarray:
    """Resample each source into its placement's output pixels (one uint8 resample per source).

    Placements should be on the source grid (:meth:`TilePlacement.on_source_grid`): the kernel samples exactly
    where an on-grid placement says; for another one, it samples where the on-grid version says.

    Args:
        sources: ``(H_i, W_i, 3)`` uint8 arrays (any channel order, e.g. BGR from
            :func:`~posecommon.data.decode.read_bgr`; read-only is fine), one per placement; ``None`` only for a
            placement that fills no output pixel.
        placements: Where each source goes; later placements overwrite earlier ones where regions overlap.
        size: Output ``(H, W)``.
        pad_value: Value (0-255) of the pixels no source fills.

    Returns:
        ``(H, W, 3)`` uint8 C-contiguous writable array, channels in the sources' order.
    """
    height, width = size
    out = torch.full((height, width, 3), pad_value, dtype=torch.uint8)
    for source, placement in zip(sources, placements, strict=True):
        box = placement.output_box(size)
        if box is None:
            continue
        if source is None:
            raise ValueError("a placement that fills output pixels needs its source image")
        left, top, right, bottom = box
        (a_x, a_y) = placement.scale
        (x0, skip_x), (y0, skip_y) = placement.grid or placement.on_source_grid(size).grid  # type: ignore[misc]
        x1 = min(source.shape[1], x0 + math.ceil((skip_x + right - left) / a_x) + _margin(a_x))
        y1 = min(source.shape[0], y0 + math.ceil((skip_y + bottom - top) / a_y) + _margin(a_y))
        tile = _resample(source[y0:y1, x0:x1], (a_y, a_x), (skip_y, skip_x), (bottom - top, right - left))
        height_got, width_got = tile.shape[:2]
        out[top : top + height_got, left : left + width_got] = tile
        # samples past the crop's end (within half a source pixel of the source border) repeat its last one
        out[top : top + height_got, left + width_got : right] = tile[:, width_got - 1 : width_got]
        out[top + height_got : bottom, left:right] = out[top + height_got - 1 : top + height_got, left:right]
    return out.numpy()


def _resample(
    crop: np.ndarray, scale: tuple[float, float], skip: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """``(h, w, 3)`` uint8 samples of the ``(H, W, 3)`` uint8 ``crop`` at ``scale`` ``(a_y, a_x)``, from sample
    ``skip`` ``(row, column)`` on: ``size`` ``(h, w)``, or fewer where the crop ends first (at the source border;
    at least its last sample, which the caller repeats)."""
    # a writable channels-last copy with batch stride h * w * 3 (a [None] view's stride 3 takes the slow path)
    batch = torch.from_numpy(crop[None].copy()).permute(0, 3, 1, 2)
    if scale != (1.0, 1.0):
        batch = F.interpolate(batch, scale_factor=scale, mode="bilinear", antialias=True, recompute_scale_factor=False)
    pixels = batch[0].permute(1, 2, 0)
    row, column = (min(first, count - 1) for first, count in zip(skip, pixels.shape[:2], strict=True))
    return pixels[row : skip[0] + size[0], column : skip[1] + size[1]]
