"""YOLOv5's HSV colour augmentation on 8-bit images, in numpy (no OpenCV).

The official augmentation (YOLO-Pose, branch ``yolo-pose`` of edgeai-yolov5, ``utils/datasets.py:699-710``
``augment_hsv``) draws three gains ``r = uniform(-1, 1, 3) * (hsv_h, hsv_s, hsv_v) + 1``, converts the image to
OpenCV's 8-bit HSV (H in ``[0, 180)``, S and V in ``[0, 255]``), maps the channels through lookup tables built over
``x = 0..255``::

    hue = ((x * r[0]) % 180).astype(uint8)
    sat = clip(x * r[1], 0, 255).astype(uint8)
    val = clip(x * r[2], 0, 255).astype(uint8)

(``astype`` truncates) and converts back. The defaults ``hsv_h = 0.015``, ``hsv_s = 0.7``, ``hsv_v = 0.4`` are
``data/hyp.scratch.yaml:24-26``. The official ``__getitem__`` applies it after the mosaic and the random affine
and before the flips (``utils/datasets.py:583-595``); it is per pixel, so its place relative to the flip does not
matter.

The colour conversions follow OpenCV's definitions for 8-bit images, written here as exact integer formulas, each
result rounded half up (``round(x) = floor(x + 0.5)``):

- ``V = max(R, G, B)``, ``m = min(R, G, B)``, ``d = V - m``; ``S = round(255 d / V)`` (0 when ``V = 0``);
- ``h = G - B`` if ``V = R``, else ``B - R + 2d`` if ``V = G``, else ``R - G + 4d`` (OpenCV's order of the
  cases); ``H = round(30 h / d)``, plus 180 when negative (0 when ``d = 0``), so ``H`` is in ``[0, 180)``;
- back: with ``f = H mod 30`` and the sector ``H // 30``, each channel is ``round(V (7650 - S n) / 7650)``
  where ``n`` in ``{0, f, 30 - f, 30}`` is the channel's share of the sector (OpenCV's ``HSV2RGB`` table:
  ``v``, ``v (1 - s)``, ``v (1 - s f)``, ``v (1 - s (1 - f))`` with ``s = S / 255``, ``f`` in 30ths).

OpenCV evaluates the same formulas in fixed or floating point, so a value exactly halfway between two levels can
round the other way there; every other pixel is the same. The fast path evaluates the formulas with numpy array
operations on whole planes and three 256-entry lookups; floating-point steps are exact because every quotient is
at least ``1 / 7650`` away from a rounding boundary unless it lies exactly on it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["augment_hsv_", "draw_hsv_gains", "hsv_lookup_tables", "hsv_to_rgb", "rgb_to_hsv"]

_FULL_SECTOR = 30  # H levels per 60-degree sector in OpenCV's 8-bit hue (180 levels per turn)
_DENOMINATOR = 255 * _FULL_SECTOR  # 7650: V (1 - (S / 255) (n / 30)) = V (7650 - S n) / 7650


def _sector_shares() -> np.ndarray:
    """``(180, 3)`` int: each RGB channel's ``n`` in ``[0, 30]`` for every hue level (see the module docstring)."""
    table = np.zeros((180, 3), dtype=np.int64)
    for hue in range(180):
        sector, f = divmod(hue, _FULL_SECTOR)
        rising, falling = f, _FULL_SECTOR - f  # n of the channel that rises / falls through the sector
        table[hue] = [
            (0, falling, _FULL_SECTOR),
            (rising, 0, _FULL_SECTOR),
            (_FULL_SECTOR, 0, falling),
            (_FULL_SECTOR, rising, 0),
            (falling, _FULL_SECTOR, 0),
            (0, _FULL_SECTOR, rising),
        ][sector]
    return table


_SHARES = _sector_shares()


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


def _round_half_up(numerator: np.ndarray, denominator: np.ndarray | float) -> np.ndarray:
    """``floor(numerator / denominator + 0.5)`` for non-negative exact float32 integers (exact, see module)."""
    return np.floor(numerator / denominator + np.float32(0.5))


def rgb_to_hsv(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit RGB to OpenCV's 8-bit HSV.

    Args:
        planes: ``(3, ...)`` uint8 R, G, B planes.

    Returns:
        ``H``, ``S``, ``V`` uint8 arrays of shape ``planes.shape[1:]`` (``H`` in ``[0, 180)``).
    """
    hue, sat, val, _ = _hsv_parts(planes)
    return hue, sat, val


def _hsv_parts(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = planes[0], planes[1], planes[2]
    val = np.maximum(np.maximum(r, g), b)
    diff = val - np.minimum(np.minimum(r, g), b)
    ri, gi, bi, di = (c.astype(np.int16) for c in (r, g, b, diff))
    from_g = np.where(val == g, bi - ri + 2 * di, ri - gi + 4 * di)
    h = np.where(val == r, gi - bi, from_g).astype(np.float32)
    d = np.maximum(di, 1).astype(np.float32)  # d = 0 only for grey pixels, where h = 0 too
    hue = np.floor(h * np.float32(_FULL_SECTOR) / d + np.float32(0.5))
    hue = np.where(hue < 0, hue + 180, hue).astype(np.uint8)
    sat = _round_half_up(di.astype(np.float32) * np.float32(255), np.maximum(val, 1).astype(np.float32))
    return hue, sat.astype(np.uint8), val, diff


def hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit HSV back to RGB.

    Args:
        hue: uint8 ``H`` in ``[0, 180)``.
        sat: uint8 ``S``.
        val: uint8 ``V``.

    Returns:
        ``(3, ...)`` uint8 R, G, B planes.
    """
    return _shares_to_rgb(_SHARES[hue], sat, val)


def _shares_to_rgb(shares: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """``round(V (7650 - S n_k) / 7650)`` per channel; ``shares`` is ``(..., 3)`` of ``n_k``."""
    s = sat.astype(np.float32)
    v = val.astype(np.float32)
    out = np.empty((3, *val.shape), dtype=np.uint8)
    for k in range(3):
        numerator = v * (np.float32(_DENOMINATOR) - s * shares[..., k].astype(np.float32))
        out[k] = _round_half_up(numerator, np.float32(_DENOMINATOR))
    return out


def _hue_table() -> np.ndarray:
    """``H`` for every ``(R - G, G - B)`` pair, ``(511 * 511,)`` uint8, index ``(R - G + 255) * 511 + G - B + 255``.

    Hue and ``d = max - min`` depend on the two differences only; exact integer arithmetic.
    """
    rg, gb = np.meshgrid(np.arange(-255, 256), np.arange(-255, 256), indexing="ij")
    # choose R, G, B >= 0 with these differences (the offset cancels in every difference)
    g = np.maximum(0, np.maximum(-rg, gb))
    r, b = g + rg, g - gb
    val = np.maximum(np.maximum(r, g), b)
    diff = val - np.minimum(np.minimum(r, g), b)
    h = np.where(val == r, g - b, np.where(val == g, b - r + 2 * diff, r - g + 4 * diff))
    hue = (2 * _FULL_SECTOR * h + diff) // np.maximum(2 * diff, 1)  # floor(30 h / d + 1/2)
    return np.where(hue < 0, hue + 180, hue).astype(np.uint8).ravel()


def _saturation_table() -> np.ndarray:
    """``S`` for every ``(V, d)``, ``(256, 256)`` int64 (entries with ``d > V`` never occur)."""
    val, diff = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    return np.minimum((2 * 255 * diff + val) // np.maximum(2 * val, 1), 255)


_HUE = _hue_table()
_HUE_INDEX = torch.from_numpy(_HUE.astype(np.int64))  # torch's index_select gathers twice as fast as numpy
_SATURATION = _saturation_table()
_ROUNDING = 0.5 + 6.5e-5
"""Added before truncating in the fast output formula: ties (exact halves) round up, and the float32 error
(below 5.2e-5) never crosses a level, since exact values lie on a grid of 1 / 7650 (checked exhaustively in the
tests)."""
_CHUNK = 65536  # pixels per step: few numpy calls per image (16384 was 12-18 % slower at 640x640, 98304 no faster)


def _output_tables(gains: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-gain tables of the fast path: ``A[V, d]``, ``B[V, d]`` (flattened ``(65536,)`` float32) and the packed
    channel shares of the new hue per ``(R - G, G - B)`` (int16, ``n_r | n_g << 5 | n_b << 10``).

    Each output channel is ``trunc(A - B n_k)`` with ``A = V' + 1/2 + eps`` and ``B = V' S' / 7650``, i.e.
    ``round(V' (7650 - S' n_k) / 7650)`` (see :data:`_ROUNDING`).
    """
    hue_lut, sat_lut, val_lut = hsv_lookup_tables(gains)
    new_val = val_lut.astype(np.float64)[:, None]
    new_sat = sat_lut[_SATURATION].astype(np.float64)
    a = np.broadcast_to(new_val + _ROUNDING, (256, 256)).astype(np.float32).ravel()
    b = (new_val * new_sat / _DENOMINATOR).astype(np.float32).ravel()
    shares = _SHARES[hue_lut[:180]]
    packed = (shares[:, 0] | shares[:, 1] << 5 | shares[:, 2] << 10).astype(np.int16)
    return a, b, torch.from_numpy(packed).index_select(0, _HUE_INDEX).numpy()


def augment_hsv_(planes: np.ndarray, gains: tuple[float, float, float]) -> None:
    """Apply the official HSV gains to an 8-bit RGB image in place (see the module docstring).

    Equal, pixel for pixel, to ``hsv_to_rgb`` of the official lookup tables applied to :func:`rgb_to_hsv`.

    Args:
        planes: ``(3, H, W)`` uint8 C-contiguous R, G, B planes, modified in place.
        gains: ``(r_h, r_s, r_v)``, e.g. from :func:`draw_hsv_gains`.
    """
    if planes.dtype != np.uint8 or planes.ndim != 3 or planes.shape[0] != 3 or not planes.flags.c_contiguous:
        raise ValueError(f"expected C-contiguous (3, H, W) uint8 planes, got {planes.shape} {planes.dtype}")
    table_a, table_b, table_code = _output_tables(gains)
    flat = planes.reshape(3, -1)
    for start in range(0, flat.shape[1], _CHUNK):
        r, g, b = flat[:, start : start + _CHUNK]
        val = np.maximum(np.maximum(r, g), b)
        diff = val - np.minimum(np.minimum(r, g), b)
        index = val.astype(np.uint16) << 8
        index |= diff
        a = np.take(table_a, index)
        bb = np.take(table_b, index)
        hue_index = r.astype(np.int32) * 511
        hue_index -= g * np.int32(510)
        hue_index -= b
        hue_index += 255 * 511 + 255
        code = np.take(table_code, hue_index)
        for k, channel in enumerate((r, g, b)):
            shares = (code >> (5 * k)) & 31 if k else code & 31
            channel[...] = a - bb * shares
