"""Fast uint8 image composition: each source image is resampled once, straight into its place in the output.

A training sample of the multi-person dataset (mosaic, scale, translate) is an axis-aligned map of up to four
source images into one ``S x S`` output. Instead of building a ``2S x 2S`` float canvas and resampling it, each
source image is resampled directly from its decoded pixels into the output pixels it covers, in uint8, with
Pillow's ``Image.resize(size, box=...)`` (bilinear, antialiased when shrinking: the filter support grows with the
reduction factor, as :func:`torch.nn.functional.interpolate` with ``antialias=True``). Output pixels no source
covers keep the pad value.

Coordinates follow posezoo's pixel-centre convention (:mod:`posecommon.geometry`). A :class:`TilePlacement` maps
source pixels to output pixels as ``p = x * scale + offset`` per axis and owns the output pixels whose centres lie
in its ``region`` ``[x1, x2) x [y1, y2)``. Pillow's ``box`` is given in pixel-edge coordinates (pixel ``i`` spans
``[i, i + 1]``) and samples output pixel ``j`` of a ``n``-pixel-wide result at box edge ``x0 + (j + 0.5) (x1 - x0)
/ n``, which is exactly the pixel-centre map above, so pixels and targets agree to Pillow's 8-bit weight rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BadImageError
from ..image import load_image

__all__ = ["TilePlacement", "compose_tiles", "open_rgb", "planes_from_image"]


@dataclass(frozen=True)
class TilePlacement:
    """Where one source image lands in the output.

    Args:
        scale: ``(a_x, a_y)``, output pixels per source pixel (positive).
        offset: ``(b_x, b_y)``: source point ``(x, y)`` lands at ``(a_x x + b_x, a_y y + b_y)``.
        region: ``(x1, y1, x2, y2)`` in output pixels: the part of the output this source covers (it must lie
            inside the mapped source image); output pixels with centres in ``[x1, x2) x [y1, y2)`` show it.
    """

    scale: tuple[float, float]
    offset: tuple[float, float]
    region: tuple[float, float, float, float]

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

    def source_box(self, output_box: tuple[int, int, int, int], source_size: tuple[int, int]) -> tuple[float, ...]:
        """Pillow's ``box`` (pixel-edge coordinates in the source) that maps onto ``output_box`` exactly."""
        (a_x, a_y), (b_x, b_y) = self.scale, self.offset
        height, width = source_size
        left, top, right, bottom = output_box
        # output edge e (pixel-edge coordinates) is the centre coordinate e - 0.5; invert p = a x + b there
        x0, x1 = ((e - 0.5 - b_x) / a_x + 0.5 for e in (left, right))
        y0, y1 = ((e - 0.5 - b_y) / a_y + 0.5 for e in (top, bottom))
        return max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))


def open_rgb(path: str | Path) -> Image.Image:
    """Decode an image file into an RGB Pillow image with the pixels :func:`posecommon.image.load_image` gives.

    RGB files are used as decoded; any other mode goes through :func:`~posecommon.image.load_image`'s rules
    (grayscale replicated, alpha composited onto black, 16-bit scaled).

    Raises:
        BadImageError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(f"image file not found: {path}")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise BadImageError(f"cannot read image {path}: {err}") from err
    if image.mode == "RGB":
        return image
    pixels = load_image(image).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(pixels, mode="RGB")


def compose_tiles(
    sources: Sequence[Image.Image | None],
    placements: Sequence[TilePlacement],
    size: tuple[int, int],
    pad_value: int,
) -> Image.Image:
    """Resample each source into its placement's output pixels (one uint8 resize per source).

    Args:
        sources: RGB images, one per placement; ``None`` only for a placement that fills no output pixel.
        placements: Where each source goes; later placements overwrite earlier ones where regions overlap.
        size: Output ``(H, W)``.
        pad_value: Value (0-255) of the pixels no source fills.

    Returns:
        The ``W x H`` RGB image.
    """
    height, width = size
    out = Image.new("RGB", (width, height), (pad_value,) * 3)
    for source, placement in zip(sources, placements, strict=True):
        box = placement.output_box(size)
        if box is None:
            continue
        if source is None:
            raise ValueError("a placement that fills output pixels needs its source image")
        left, top, right, bottom = box
        src_box = placement.source_box(box, (source.height, source.width))
        tile = source.resize((right - left, bottom - top), Image.Resampling.BILINEAR, box=src_box)
        out.paste(tile, (left, top))
    return out


def planes_from_image(image: Image.Image, flip: bool = False) -> np.ndarray:
    """``(3, H, W)`` uint8 C-contiguous planes of an RGB image, mirrored left-right when ``flip``."""
    pixels = np.asarray(image).transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[:, :, ::-1] if flip else pixels)
