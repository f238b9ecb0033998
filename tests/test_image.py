"""load_image: grayscale, RGBA, 16-bit and tiny images load correctly; anything else is a BadImageError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon import BadImageError
from posecommon.media.image import load_image


def _check_rgb(tensor: torch.Tensor, expected_hwc) -> None:
    assert tensor.dtype == torch.uint8 and tensor.dim() == 3 and tensor.shape[0] == 3
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), np.asarray(expected_hwc, dtype=np.uint8))


def test_rgb_file_and_pil_agree(tmp_path):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    _check_rgb(load_image(path), pixels)
    _check_rgb(load_image(str(path)), pixels)
    _check_rgb(load_image(Image.open(path)), pixels)
    _check_rgb(load_image(pixels), pixels)
    assert torch.equal(load_image(torch.from_numpy(pixels).permute(2, 0, 1)), load_image(pixels))


def test_grayscale_is_replicated(tmp_path):
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    expected = np.repeat(gray[..., None], 3, axis=2)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "L"
    _check_rgb(load_image(path), expected)
    _check_rgb(load_image(gray), expected)
    _check_rgb(load_image(gray[..., None]), expected)
    _check_rgb(load_image(Image.new("1", (2, 1), 1)), [[[255] * 3] * 2])


def test_rgba_is_composited_on_black(tmp_path):
    rgba = Image.new("RGBA", (2, 1), (200, 100, 50, 128))
    path = tmp_path / "rgba.png"
    rgba.save(path)
    expected = [[[100, 50, 25]] * 2]
    _check_rgb(load_image(path), expected)
    _check_rgb(load_image(rgba), expected)
    _check_rgb(load_image(np.asarray(rgba)), expected)
    _check_rgb(load_image(Image.new("RGBA", (1, 1), (9, 9, 9, 0))), [[[0, 0, 0]]])
    _check_rgb(load_image(Image.new("LA", (1, 1), (200, 255))), [[[200, 200, 200]]])


def test_16_bit_images_are_scaled(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    expected = np.repeat(np.array([[0, 1, 128, 255]], dtype=np.uint8)[..., None], 3, axis=2)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    _check_rgb(load_image(path), expected)
    _check_rgb(load_image(values), expected)
    rgb16 = np.stack([values, values // 2, np.zeros_like(values)], axis=-1)
    _check_rgb(load_image(rgb16), np.stack([expected[..., 0], [[0, 0, 64, 127]], np.zeros((1, 4))], axis=-1))


def test_one_by_one_image(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (9, 8, 7)).save(path)
    _check_rgb(load_image(path), [[[9, 8, 7]]])
    _check_rgb(load_image(np.zeros((1, 1), dtype=np.uint8)), [[[0, 0, 0]]])


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(BadImageError, match="is a directory"):
        load_image(tmp_path)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"definitely not an image")
    with pytest.raises(BadImageError, match="cannot read"):
        load_image(garbage)
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(BadImageError, match="cannot read"):
        load_image(truncated)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(BadImageError):
        load_image(empty)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((4, 4, 3), 1.5, dtype=np.float32),
        np.full((4, 4, 3), np.nan, dtype=np.float32),
        np.zeros((4, 4), dtype=bool),
        np.zeros((4, 4, 3), dtype=np.int64),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((1, 4, 4, 3), dtype=np.uint8),
        np.zeros((0, 4, 3), dtype=np.uint8),
        torch.full((3, 4, 4), -0.5),
        torch.zeros(3, 4, 4, dtype=torch.int32),
        torch.zeros(4, 4, 3, dtype=torch.uint8),
        torch.zeros(3, 0, 4, dtype=torch.uint8),
        Image.new("F", (2, 2)),
        [[1, 2], [3, 4]],
    ],
    ids=[
        "float-above-one",
        "float-nan",
        "bool",
        "int64",
        "two-channels",
        "batched",
        "empty-array",
        "negative-float-tensor",
        "int32-tensor",
        "hwc-tensor",
        "empty-tensor",
        "float-pil",
        "list",
    ],
)
def test_wrong_dtype_shape_or_type_is_bad_image(bad):
    with pytest.raises(BadImageError):
        load_image(bad)
