"""YOLOv5's HSV colour augmentation on 8-bit BGR images, with OpenCV as the official code.

The official augmentation (YOLO-Pose, branch ``yolo-pose`` of edgeai-yolov5, ``utils/datasets.py:699-710``
``augment_hsv``) draws three gains ``r = uniform(-1, 1, 3) * (hsv_h, hsv_s, hsv_v) + 1``, converts the image to
OpenCV's 8-bit HSV (``cv2.COLOR_BGR2HSV``: H in ``[0, 180)``, S and V in ``[0, 255]``), maps the channels through
lookup tables built over ``x = 0..255``::

    hue = ((x * r[0]) % 180).astype(uint8)
    sat = clip(x * r[1], 0, 255).astype(uint8)
    val = clip(x * r[2], 0, 255).astype(uint8)

(``astype`` truncates) and converts back (``cv2.COLOR_HSV2BGR``). The defaults ``hsv_h = 0.015``, ``hsv_s = 0.7``,
``hsv_v = 0.4`` are ``data/hyp.scratch.yaml:24-26``. The official ``__getitem__`` applies it after the mosaic and
the random affine and before the flips (``utils/datasets.py:583-595``); it is per pixel, so its place relative to
the flip does not matter.

:func:`augment_hsv_` makes the same OpenCV calls, except that the three per-channel lookups (official: ``split``,
three ``LUT`` calls, ``merge``) are one ``LUT`` call with a three-channel table: the same pixels (tested), two copies
fewer.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["augment_hsv_", "draw_hsv_gains", "hsv_lookup_tables"]


def draw_hsv_gains(hsv_h: float, hsv_s: float, hsv_v: float) -> tuple[float, float, float]:
    """The official random gains ``uniform(-1, 1) * gain + 1`` per channel (torch's global RNG, three draws)."""
    u = torch.rand(3, dtype=torch.float64) * 2 - 1
    return 1 + float(u[0]) * hsv_h, 1 + float(u[1]) * hsv_s, 1 + float(u[2]) * hsv_v


def hsv_lookup_tables(gains: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official hue, saturation and value tables ``(256,)`` uint8 for gains ``(r_h, r_s, r_v)``.

    Computed as the official code does (``int16`` levels times ``float64`` gains, truncated to ``uint8``).
    """
    x = np.arange(256, dtype=np.int16)
    hue = ((x * gains[0]) % 180).astype(np.uint8)
    sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    return hue, sat, val


def augment_hsv_(image: np.ndarray, gains: tuple[float, float, float]) -> None:
    """Apply the official HSV gains to an 8-bit BGR image in place (see the module docstring).

    Args:
        image: ``(H, W, 3)`` uint8 C-contiguous B, G, R pixels (OpenCV's order), modified in place.
        gains: ``(r_h, r_s, r_v)``, e.g. from :func:`draw_hsv_gains`.

    Raises:
        ValueError: ``image`` is not a C-contiguous ``(H, W, 3)`` uint8 array.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not image.flags.c_contiguous:
        raise ValueError(
            f"expected a C-contiguous (H, W, 3) uint8 BGR image, got shape {image.shape}, dtype {image.dtype}"
        )
    table = np.stack(hsv_lookup_tables(gains), axis=-1)[None]  # (1, 256, 3): channel c looks up table c
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    cv2.LUT(hsv, table, dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=image)
