"""HSV augmentation: the fast numpy path equals slow reference formulas (OpenCV's 8-bit HSV) pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecommon.data.hsv import augment_hsv_, draw_hsv_gains, hsv_lookup_tables, hsv_to_rgb, rgb_to_hsv


def _round_half_up(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)


def _reference_rgb_to_hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """OpenCV's 8-bit RGB -> HSV definition, one pixel, exact integers (H in [0, 180))."""
    v = max(r, g, b)
    d = v - min(r, g, b)
    s = _round_half_up(255 * d, v) if v else 0
    if d == 0:
        return 0, s, v
    if v == r:  # OpenCV's case order; hue in degrees is 60 * n / d, halved for 8 bits
        n = g - b
    elif v == g:
        n = b - r + 2 * d
    else:
        n = r - g + 4 * d
    hue = (60 * n + d) // (2 * d)  # round(30 n / d), half up (floor division also for negative n)
    return hue + 180 if hue < 0 else hue, s, v


def _reference_hsv_to_rgb(hue: int, sat: int, val: int) -> tuple[int, int, int]:
    """OpenCV's 8-bit HSV -> RGB: sector table, v, v(1-s), v(1-s f), v(1-s(1-f)), rounded half up."""
    sector, f = divmod(hue, 30)
    full = val * 7650  # v, scaled by 255 * 30
    tab = (full, val * (7650 - sat * 30), val * (7650 - sat * f), val * (7650 - sat * (30 - f)))
    b_i, g_i, r_i = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))[sector]  # OpenCV's order
    return tuple(_round_half_up(tab[i], 7650) for i in (r_i, g_i, b_i))


def _test_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    special = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (255, 0, 1)]
    special += [(1, 0, 0), (200, 100, 100), (100, 200, 200), (255, 254, 0), (3, 1, 2), (250, 5, 249)]
    for i, rgb in enumerate(special):
        image[:, 0, i] = rgb
    return image


def test_rgb_to_hsv_and_back_match_the_reference_formulas():
    image = _test_image()
    hue, sat, val = rgb_to_hsv(image)
    back = hsv_to_rgb(hue, sat, val)
    for y in range(image.shape[1]):
        for x in range(image.shape[2]):
            expected = _reference_rgb_to_hsv(*(int(c) for c in image[:, y, x]))
            assert (int(hue[y, x]), int(sat[y, x]), int(val[y, x])) == expected, (y, x)
            assert tuple(int(c) for c in back[:, y, x]) == _reference_hsv_to_rgb(*expected), (y, x)
    assert hue.max() < 180
    assert tuple(hue[0, 2:5]) == (0, 60, 120)  # red, green, blue


def test_lookup_tables_are_the_official_ones():
    hue, sat, val = hsv_lookup_tables((1.0, 1.0, 1.0))
    assert hue.tolist() == [x % 180 for x in range(256)]
    assert sat.tolist() == list(range(256)) == val.tolist()
    hue, sat, val = hsv_lookup_tables((1.01, 0.5, 1.5))
    assert hue[179] == int((179 * 1.01) % 180) == 0 and hue[100] == 101
    assert sat[255] == 127 and val[100] == 150 and val[200] == 255


@pytest.mark.parametrize("gains", [(1.0, 1.0, 1.0), (1.013, 0.42, 1.31), (0.985, 1.7, 0.6)])
def test_augment_hsv_equals_reference_on_sample_pixels(gains):
    image = _test_image()
    out = image.copy()
    augment_hsv_(out, gains)
    hue_lut, sat_lut, val_lut = hsv_lookup_tables(gains)
    for y in range(image.shape[1]):
        for x in range(image.shape[2]):
            hue, sat, val = _reference_rgb_to_hsv(*(int(c) for c in image[:, y, x]))
            expected = _reference_hsv_to_rgb(int(hue_lut[hue]), int(sat_lut[sat]), int(val_lut[val]))
            assert tuple(int(c) for c in out[:, y, x]) == expected, (y, x, gains)


def _vectorised_reference(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """The reference formulas in exact integer numpy arithmetic (for every colour at once)."""
    r, g, b = (c.astype(np.int32) for c in image)
    v = np.maximum(np.maximum(r, g), b)
    d = v - np.minimum(np.minimum(r, g), b)
    s = (2 * 255 * d + v) // np.maximum(2 * v, 1)
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * d, r - g + 4 * d))
    hue = (60 * h + d) // np.maximum(2 * d, 1)
    hue = np.where(hue < 0, hue + 180, hue)
    hue_lut, sat_lut, val_lut = hsv_lookup_tables(gains)
    hue, s, v = hue_lut[hue].astype(np.int32), sat_lut[s].astype(np.int32), val_lut[v].astype(np.int32)
    out = np.empty((3, *hue.shape), dtype=np.uint8)
    for k in range(3):
        n = _CHANNEL_SHARES[hue, k]
        out[k] = (2 * v * (7650 - s * n) + 7650) // (2 * 7650)
    return out


def _channel_shares() -> np.ndarray:
    """``(180, 3)``: n of each (r, g, b) channel per hue, from :func:`_reference_hsv_to_rgb`'s table."""
    table = np.zeros((180, 3), dtype=np.int32)
    shares = (0, 30, None, None)  # tab 0: v, tab 1: v (1 - s), tab 2: n = f, tab 3: n = 30 - f
    for hue in range(180):
        sector, f = divmod(hue, 30)
        b_i, g_i, r_i = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))[sector]
        for k, tab in enumerate((r_i, g_i, b_i)):
            table[hue, k] = {2: f, 3: 30 - f}.get(tab, shares[tab])
    return table


_CHANNEL_SHARES = _channel_shares()


@pytest.mark.parametrize("gains", [(1.015, 1.7, 1.4), (0.985, 0.3, 0.6)])
def test_augment_hsv_equals_reference_on_every_colour(gains):
    """All 2^24 RGB colours, in slices of 16 red values: the float32 shortcuts never round differently."""
    r, g, b = np.meshgrid(np.arange(16), np.arange(256), np.arange(256), indexing="ij")
    for red in range(0, 256, 16):
        image = np.stack((r + red, g, b)).astype(np.uint8).reshape(3, 16 * 256, 256)
        fast = image.copy()
        augment_hsv_(fast, gains)
        expected = _vectorised_reference(image, gains)
        assert np.array_equal(fast, expected), (red, gains)


def test_augment_hsv_rejects_non_planar_input():
    with pytest.raises(ValueError, match="planes"):
        augment_hsv_(np.zeros((8, 8, 3), dtype=np.uint8), (1.0, 1.0, 1.0))


def test_gains_are_uniform_in_the_official_ranges():
    torch.manual_seed(0)
    gains = np.array([draw_hsv_gains(0.015, 0.7, 0.4) for _ in range(2000)])
    for column, half_width in enumerate((0.015, 0.7, 0.4)):
        values = gains[:, column]
        assert values.min() >= 1 - half_width and values.max() <= 1 + half_width
        assert values.min() < 1 - 0.95 * half_width and values.max() > 1 + 0.95 * half_width
        assert abs(values.mean() - 1) < 0.05 * half_width  # uniform: mean 1, std w / sqrt(3) / sqrt(2000)
