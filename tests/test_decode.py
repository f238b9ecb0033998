"""Training-pipeline decoding with OpenCV: the pixels of ``load_image``, in BGR, and clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from posecommon.data.decode import read_bgr, rgb_planes, single_threaded_opencv
from posecommon.errors import BadImageError
from posecommon.media.image import load_image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A smooth colour image (JPEG-friendly), 96x128."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((128, 96), Image.BICUBIC)


def _bgr_of_load_image(path) -> np.ndarray:
    return load_image(path).permute(1, 2, 0).numpy()[..., ::-1]


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("baseline.jpg", {"quality": 92}),
        ("progressive.jpg", {"quality": 85, "progressive": True}),
        ("full_chroma.jpg", {"quality": 75, "subsampling": 0}),
        ("rgb.png", {}),
    ],
)
def test_colour_files_decode_to_the_pixels_of_load_image(tmp_path, photo, name, save):
    path = tmp_path / name
    photo.save(path, **save)
    pixels = read_bgr(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (96, 128, 3)
    assert pixels.flags.c_contiguous and pixels.flags.writeable
    assert np.array_equal(pixels, _bgr_of_load_image(path))


@pytest.mark.parametrize(
    ("name", "convert"),
    [("grey.jpg", "L"), ("alpha.png", "RGBA"), ("palette.png", "P"), ("sixteen.png", "I;16")],
)
def test_other_layouts_follow_load_image_rules(tmp_path, photo, name, convert):
    """Grey replicated, alpha composited onto black, palette expanded, 16-bit scaled: as ``load_image``."""
    image = photo.convert(convert)
    if convert == "RGBA":
        alpha = np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1))
        image.putalpha(Image.fromarray(alpha))
    if convert == "I;16":
        image = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    path = tmp_path / name
    image.save(path)
    pixels = read_bgr(path)
    assert pixels.shape == (96, 128, 3) and pixels.flags.c_contiguous and pixels.flags.writeable
    assert np.array_equal(pixels, _bgr_of_load_image(path))


def test_cmyk_jpeg_is_within_one_level_of_load_image(tmp_path, photo):
    path = tmp_path / "cmyk.jpg"
    photo.convert("CMYK").save(path)
    difference = np.abs(read_bgr(path).astype(int) - _bgr_of_load_image(path))
    assert difference.max() <= 1


def test_exif_orientation_is_ignored_as_by_load_image_and_transpose(tmp_path, photo):
    """A JPEG tagged "rotate 90" keeps its stored layout (annotations refer to it): 96x128, not 128x96."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to display
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif)
    pixels = read_bgr(path)
    assert pixels.shape == (96, 128, 3)
    assert np.array_equal(pixels, _bgr_of_load_image(path))


def test_unusual_file_names_are_read(tmp_path, photo):
    path = tmp_path / "größe #1 (copy).jpg"
    photo.save(path)
    assert np.array_equal(read_bgr(path), _bgr_of_load_image(path))


@pytest.mark.parametrize(
    ("content", "match"), [(None, "not found"), (b"", "cannot read"), (b"not an image at all", "cannot read")]
)
def test_missing_empty_and_garbage_files_raise_bad_image(tmp_path, content, match):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadImageError, match=match):
        read_bgr(path)


@pytest.mark.parametrize("kept", [0.1, 0.7, 0.97])
def test_truncated_jpeg_is_an_error_not_a_partly_grey_image(tmp_path, photo, kept):
    path = tmp_path / "cut.jpg"
    photo.save(path, quality=92)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(BadImageError, match=r"truncated|cannot read"):
        read_bgr(path)


@pytest.mark.parametrize("flip", [False, True])
def test_rgb_planes_reorder_and_mirror(flip):
    bgr = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    expected = bgr[:, ::-1] if flip else bgr
    planes = rgb_planes(bgr, flip=flip)
    assert planes.shape == (3, 7, 9) and planes.dtype == torch.uint8 and planes.is_contiguous()
    assert np.array_equal(planes.numpy(), expected[..., ::-1].transpose(2, 0, 1))


def test_single_threaded_opencv_restores_the_pool():
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        with single_threaded_opencv():
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
