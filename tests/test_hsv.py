"""HSV augmentation: the official OpenCV recipe (split, three lookups, merge), one lookup call faster."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from posecommon.data.hsv import augment_hsv_, draw_hsv_gains, hsv_lookup_tables

GAINS = [(1.0, 1.0, 1.0), (1.013, 0.42, 1.31), (0.985, 1.7, 0.6), (1.015, 1.7, 1.4)]


def _official_tables(gains: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official tables, written out here (``utils/datasets.py:700-707``): ``r`` is a float64 array (the official
    ``np.random.uniform(-1, 1, 3) * [h, s, v] + 1``), ``x`` int16 levels, products truncated to uint8."""
    r = np.asarray(gains, dtype=np.float64)
    x = np.arange(0, 256, dtype=np.int16)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    return lut_hue, lut_sat, lut_val


def _official(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """YOLO-Pose's ``augment_hsv`` body (``utils/datasets.py:699-710``) with the gains given, on a copy; its tables
    are this file's :func:`_official_tables`, not the library's."""
    out = image.copy()
    hue, sat, val = cv2.split(cv2.cvtColor(out, cv2.COLOR_BGR2HSV))
    lut_hue, lut_sat, lut_val = _official_tables(gains)
    merged = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    cv2.cvtColor(merged, cv2.COLOR_HSV2BGR, dst=out)
    return out


def _every_colour() -> np.ndarray:
    """All 2^24 colours as a ``(4096, 4096, 3)`` BGR image."""
    b, g, r = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
    return np.ascontiguousarray(np.stack((b, g, r), -1).astype(np.uint8).reshape(4096, 4096, 3))


@pytest.mark.parametrize("gains", GAINS)
def test_augment_hsv_equals_the_official_recipe_on_every_colour(gains):
    image = _every_colour()
    expected = _official(image, gains)
    augment_hsv_(image, gains)
    assert np.array_equal(image, expected)


def test_augment_hsv_changes_what_each_gain_names():
    """Grey pixels (no saturation) only scale with the value gain; the hue gain turns pure red towards yellow."""
    grey = np.repeat(np.arange(0, 256, 5, dtype=np.uint8)[:, None, None], 3, axis=2).reshape(-1, 1, 3).copy()
    levels = grey[:, 0, 0].astype(np.int64)
    augment_hsv_(grey, (1.1, 1.6, 0.5))
    assert (grey == (levels * 0.5).astype(np.uint8)[:, None, None]).all()
    red = np.array([[[0, 0, 255]]], dtype=np.uint8)  # BGR
    augment_hsv_(red, (1.0 + 10 / 255, 1.0, 1.0))  # hue 0 stays 0: 0 * gain
    assert red.tolist() == [[[0, 0, 255]]]
    orange = np.array([[[0, 128, 255]]], dtype=np.uint8)  # hue 15 (30 degrees)
    augment_hsv_(orange, (1.2, 1.0, 1.0))  # hue 18: green rises
    assert orange[0, 0, 2] == 255 and orange[0, 0, 1] > 140 and orange[0, 0, 0] == 0


def test_opencv_hsv_is_the_textbook_definition_to_one_level():
    """OpenCV's 8-bit HSV (what the official code and this one use): ``V = max`` exactly, ``S = round(255 d / V)`` and
    ``H = round(30 h / d)`` (mod 180) up to one level (OpenCV divides with fixed-point reciprocal tables; OpenCV
    4.5.5, of the official code's time, and 5.1 give the same pixels on every colour)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4000, 3)).astype(np.int64)
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[:, ::-1].astype(np.uint8)[None]), cv2.COLOR_BGR2HSV)[0].astype(int)
    r, g, b = rgb.T
    v = rgb.max(1)
    d = v - rgb.min(1)
    assert (hsv[:, 2] == v).all()
    assert (np.abs(hsv[:, 1] - (2 * 255 * d + v) // np.maximum(2 * v, 1)) <= 1).all()
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * d, r - g + 4 * d))
    hue = ((60 * h + d) // np.maximum(2 * d, 1)) % 180
    off = np.abs(hsv[:, 0] - hue)
    assert (np.minimum(off, 180 - off) <= 1).all()
    assert (off != 0).any()  # the fixed point shows: a bit-exact formula would be the wrong reference


def test_lookup_tables_are_the_official_ones():
    hue, sat, val = hsv_lookup_tables((1.0, 1.0, 1.0))
    assert hue.tolist() == [x % 180 for x in range(256)]
    assert sat.tolist() == list(range(256)) == val.tolist()
    hue, sat, val = hsv_lookup_tables((1.01, 0.5, 1.5))
    assert hue[179] == int((179 * 1.01) % 180) == 0 and hue[100] == 101
    assert sat[255] == 127 and val[100] == 150 and val[200] == 255


def _gain_sets() -> list[tuple[float, float, float]]:
    """Gains on the official ranges (hyp h 0.015, s 0.7, v 0.4): a grid of round values, where x * gain lands on or
    next to an integer and the truncation is decided by float rounding, and 2000 uniform draws as the official."""
    hue = np.round(np.arange(0.985, 1.0151, 0.001), 3)
    sat = np.round(np.arange(0.30, 1.7001, 0.01), 2)
    val = np.round(np.arange(0.60, 1.4001, 0.01), 2)
    grid = [(float(hue[i % len(hue)]), float(sat[i]), float(val[i % len(val)])) for i in range(len(sat))]
    grid += [(float(h), 1.0, 1.0) for h in hue] + [(1.0, 1.0, float(v)) for v in val]
    rng = np.random.default_rng(0)
    draws = rng.uniform(-1, 1, (2000, 3)) * [0.015, 0.7, 0.4] + 1
    return grid + [tuple(float(g) for g in row) for row in draws]


def test_lookup_tables_equal_the_official_formula_over_many_gain_sets():
    sets = _gain_sets()
    assert len(sets) > 2200
    for gains in sets:
        for ours, official in zip(hsv_lookup_tables(gains), _official_tables(gains), strict=True):
            assert ours.dtype == np.uint8 and np.array_equal(ours, official), gains


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((3, 8, 8), dtype=np.uint8),  # planar
        np.zeros((8, 8, 3), dtype=np.float32),
        np.zeros((8, 16, 3), dtype=np.uint8)[:, ::2],  # strided view
    ],
)
def test_augment_hsv_rejects_what_is_not_a_contiguous_bgr_image(image):
    with pytest.raises(ValueError, match=r"C-contiguous \(H, W, 3\) uint8 BGR"):
        augment_hsv_(image, (1.0, 1.0, 1.0))


def test_gains_are_uniform_in_the_official_ranges():
    torch.manual_seed(0)
    gains = np.array([draw_hsv_gains(0.015, 0.7, 0.4) for _ in range(2000)])
    for column, half_width in enumerate((0.015, 0.7, 0.4)):
        values = gains[:, column]
        assert values.min() >= 1 - half_width and values.max() <= 1 + half_width
        assert values.min() < 1 - 0.95 * half_width and values.max() > 1 + 0.95 * half_width
        assert abs(values.mean() - 1) < 0.05 * half_width  # uniform: mean 1, std w / sqrt(3) / sqrt(2000)
