"""Image files to pixels for the training pipelines, with OpenCV, as the official loaders read them.

Both official codebases decode with ``cv2.imread``: TransPose with ``IMREAD_IGNORE_ORIENTATION``
(``lib/dataset/JointsDataset.py:127-129``, converted to RGB at ``:132``), YOLO-Pose in BGR until the end
(``utils/datasets.py:685``), with OpenCV's thread pool off (``utils/general.py:31``). The training pipelines here
decode a file straight into a writable ``(H, W, 3)`` uint8 BGR array (no intermediate copy), compose and
colour-augment in BGR, and turn the result into RGB planes once (:func:`rgb_planes`).

Pixels equal :func:`posecommon.media.image.load_image`'s (in BGR order) for 8-bit colour files: JPEG (baseline and
progressive), PNG, palette PNG and the rest that OpenCV decodes to three 8-bit channels (both libraries decode JPEG
with libjpeg-turbo's default settings; checked in the tests). Other layouts (grayscale, alpha, 16-bit) and formats
OpenCV cannot decode go through :func:`~posecommon.media.image.load_image` and its rules (grayscale replicated, alpha
composited onto black, 16-bit scaled). One known difference: OpenCV converts CMYK JPEGs to colour with its own
formula, within one level of Pillow's. EXIF orientation is ignored, as by ``load_image`` and TransPose (COCO's
annotations are in the stored pixel layout).

OpenCV runs its own thread pool; training DataLoader workers switch it off, as they run torch with one thread
(:mod:`posecommon.train.loader`), and the data benchmark measures inside :func:`single_threaded_opencv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import BadImageError
from ..media.image import load_image

__all__ = ["read_bgr", "rgb_planes", "single_threaded_opencv"]

_FLAGS = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION


def read_bgr(path: str | Path) -> np.ndarray:
    """Decode an image file into a writable C-contiguous ``(H, W, 3)`` uint8 BGR array (see the module docstring).

    Raises:
        BadImageError: the file is missing or no decoder can read it.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(f"image file not found: {path}")
    encoded = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode: also for paths cv2.imread cannot open
    pixels = cv2.imdecode(encoded, _FLAGS) if encoded.size else None
    if pixels is not None and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    rgb = load_image(path)  # raises BadImageError when Pillow cannot read it either
    return np.ascontiguousarray(rgb.permute(1, 2, 0).numpy()[..., ::-1])


def rgb_planes(bgr: np.ndarray, flip: bool = False) -> torch.Tensor:
    """``(3, H, W)`` uint8 RGB planes of an ``(H, W, 3)`` uint8 BGR image, mirrored left-right when ``flip``
    (``x -> W - 1 - x``). OpenCV's ``split`` writes the planes in place (5x faster than a strided transpose copy)."""
    if flip:
        bgr = cv2.flip(bgr, 1)
    planes = np.empty((3, *bgr.shape[:2]), dtype=np.uint8)
    cv2.split(bgr, [planes[2], planes[1], planes[0]])
    return torch.from_numpy(planes)


@contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """Run OpenCV's functions sequentially inside the block (its thread pool off), as one DataLoader worker does."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(0)  # 0: OpenCV's parallel loops run sequentially in the calling thread
    try:
        yield
    finally:
        cv2.setNumThreads(previous)
