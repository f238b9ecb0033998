"""Geometry: box conversions, official centre/scale and box sanitisation, region crops and their exact inverse.

The official top-down transform (``topdown_affine``) is checked against an independent re-derivation of the official
formulas in ``tests/test_topdown_protocol.py``.
"""

from __future__ import annotations

import pytest
import torch

from posecommon import InvalidInputError
from posecommon.ops.geometry import (
    box_xywh_to_xyxy,
    box_xyxy_to_xywh,
    clean_coco_boxes,
    crop_images,
    crop_to_image,
    crop_to_image_matrix,
    image_to_crop,
    image_to_crop_matrix,
    topdown_affine,
    warp_affine,
    xywh_to_center_scale,
)

OUTPUT = (256, 192)


def test_box_conversions_round_trip():
    xyxy = torch.tensor([[1.0, 2.0, 11.0, 32.0], [0.0, 0.0, 0.0, 0.0]])
    xywh = box_xyxy_to_xywh(xyxy)
    assert xywh.tolist() == [[1.0, 2.0, 10.0, 30.0], [0.0, 0.0, 0.0, 0.0]]
    assert torch.equal(box_xywh_to_xyxy(xywh), xyxy)


def test_xywh_to_center_scale_is_the_official_xywh2cs():
    boxes = torch.tensor([[10.0, 20.0, 100.0, 40.0], [0.0, 0.0, 30.0, 200.0], [5.0, 5.0, 0.0, 0.0]])
    center, size = xywh_to_center_scale(boxes, aspect_ratio=0.75, padding=1.25)
    # centre x + (w - 1) / 2 (coco.py:217-218), half a pixel up-left of the geometric centre
    assert center.tolist() == [[59.5, 39.5], [14.5, 99.5], [4.5, 4.5]]
    # wide box: width kept, height = width / 0.75; tall box: height kept, width = 0.75 * height; point: min size
    torch.testing.assert_close(size, torch.tensor([[125.0, 125.0 / 0.75], [187.5, 250.0], [2.0, 2.0]]))
    for bad in ([[0.0, 0.0, float("nan"), 1.0]], [[10.0, 0.0, -5.0, 1.0]], [[0.0, 1.0, 2.0]]):
        with pytest.raises(InvalidInputError):
            xywh_to_center_scale(torch.tensor(bad), 0.75)


def test_clean_coco_boxes_is_the_official_sanitisation():
    boxes = torch.tensor(
        [[10.5, 20.0, 30.0, 40.0], [-5.0, -3.0, 20.0, 10.0], [90.0, 50.0, 40.0, 80.0], [120.0, 10.0, 5.0, 5.0]]
    )
    clean, valid = clean_coco_boxes(boxes, image_width=100, image_height=80)
    # x1 = max(0, x); x2 = min(W - 1, x1 + max(0, w - 1)); clean = [x1, y1, x2 - x1 + 1, y2 - y1 + 1]
    assert clean[:3].tolist() == [[10.5, 20.0, 30.0, 40.0], [0.0, 0.0, 20.0, 10.0], [90.0, 50.0, 10.0, 30.0]]
    assert valid.tolist() == [True, True, True, False]  # the last box starts right of the image


@pytest.mark.parametrize("rotation", [None, [0.0, 25.0, -40.0, 90.0, 180.0, 13.0]])
def test_points_round_trip_exactly(rotation):
    generator = torch.Generator().manual_seed(0)
    center = torch.rand(6, 2, generator=generator, dtype=torch.float64) * 500
    size = torch.rand(6, 2, generator=generator, dtype=torch.float64) * 300 + 1
    rot = None if rotation is None else torch.tensor(rotation, dtype=torch.float64)
    points = torch.rand(6, 17, 2, generator=generator, dtype=torch.float64) * 600 - 50
    crop = image_to_crop(points, center, size, OUTPUT, rot)
    torch.testing.assert_close(crop_to_image(crop, center, size, OUTPUT, rot), points, atol=1e-4, rtol=0)
    as_float = crop_to_image(crop.float(), center.float(), size.float(), OUTPUT, None if rot is None else rot.float())
    torch.testing.assert_close(as_float.double(), points, atol=1e-3, rtol=0)
    # the matrices are inverses of each other
    forward = crop_to_image_matrix(center, size, OUTPUT, rot)
    backward = image_to_crop_matrix(center, size, OUTPUT, rot)
    composed = backward[:, :, :2] @ forward[:, :, :2]
    torch.testing.assert_close(composed, torch.eye(2, dtype=torch.float64).expand(6, 2, 2))


def test_crop_region_maps_edges_to_edges():
    center = torch.tensor([[100.0, 50.0]])
    size = torch.tensor([[192.0, 256.0]])  # scale 1: crop pixel centres are image pixel centres
    corners = torch.tensor([[[0.0, 0.0], [191.0, 255.0]]])
    expected = torch.tensor([[[4.5, -77.5], [195.5, 177.5]]])
    torch.testing.assert_close(crop_to_image(corners, center, size, OUTPUT), expected)


def _bright_point_case(image_hw, point, boxes, rotation):
    image = torch.zeros(3, *image_hw)
    image[:, point[1], point[0]] = 255.0
    center, size = xywh_to_center_scale(box_xyxy_to_xywh(torch.tensor(boxes)), aspect_ratio=OUTPUT[1] / OUTPUT[0])
    rot = None if rotation is None else torch.tensor(rotation)
    crops = crop_images(image, center, size, OUTPUT, rot)
    flat = crops[:, 0].flatten(1)
    index = flat.argmax(dim=1)
    found = torch.stack((index % OUTPUT[1], index // OUTPUT[1]), dim=-1).float()[:, None]
    assert (flat.amax(dim=1) > 50).all()
    return crop_to_image(found, center, size, OUTPUT, rot)[:, 0]


@pytest.mark.parametrize("rotation", [None, [0.0, 30.0, -45.0, 90.0, 170.0]])
def test_bright_pixel_found_after_crop_and_inverse(rotation):
    point = (70, 40)
    boxes = [[50.0, 20.0, 100.0, 80.0], [60.0, 30.0, 80.0, 50.0], [65.0, 35.0, 75.0, 45.0], [55.0, 38.0, 95.0, 44.0]]
    boxes.append([68.0, 10.0, 72.0, 140.0])  # tall and thin, reaching outside the image
    recovered = _bright_point_case((100, 150), point, boxes, rotation)
    assert (recovered - torch.tensor(point, dtype=torch.float32)).abs().max() < 0.5


def test_crop_batched_images_pad_value_and_uint8():
    images = torch.stack([torch.full((3, 20, 30), value, dtype=torch.uint8) for value in (10, 200)])
    center = torch.tensor([[15.0, 10.0], [1000.0, 1000.0]])  # second region wholly outside its image
    size = torch.tensor([[10.0, 10.0], [10.0, 10.0]])
    crops = crop_images(images, center, size, (8, 6), pad_value=77.0)
    assert crops.shape == (2, 3, 8, 6) and crops.dtype == torch.float32
    assert torch.all(crops[0] == 10) and torch.all(crops[1] == 77)
    # a region partly outside: inside pixels keep the image value, outside ones get the pad value
    half = crop_images(images[0], torch.tensor([[0.0, 10.0]]), torch.tensor([[20.0, 20.0]]), (4, 4), pad_value=255)
    assert torch.all(half[0, :, :, :2] == 255) and torch.all(half[0, :, :, 2:] == 10)
    with pytest.raises(InvalidInputError):
        crop_images(images, center[:1], size[:1], (8, 6))


def test_crop_shared_image_equals_per_crop_images_and_does_not_modify_input():
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(3, 40, 50, generator=generator) * 255
    before = image.clone()
    center = torch.tensor([[10.0, 10.0], [25.0, 30.0], [40.0, 5.0]])
    size = torch.tensor([[12.0, 16.0], [30.0, 40.0], [8.0, 8.0]])
    rotation = torch.tensor([0.0, 15.0, -60.0])
    shared = crop_images(image, center, size, (16, 12), rotation)
    per_crop = crop_images(image.expand(3, -1, -1, -1), center, size, (16, 12), rotation)
    torch.testing.assert_close(shared, per_crop)
    assert torch.equal(image, before)
    # identity crop at scale 1 reproduces the image exactly
    identity = crop_images(image, torch.tensor([[24.5, 19.5]]), torch.tensor([[50.0, 40.0]]), (40, 50))
    torch.testing.assert_close(identity[0], image, atol=5e-3, rtol=0)


def test_crop_one_by_one_image_and_zero_boxes():
    image = torch.full((3, 1, 1), 128, dtype=torch.uint8)
    crops = crop_images(image, torch.tensor([[0.5, 0.5]]), torch.tensor([[1.25, 5 / 3]]), OUTPUT)
    assert crops.shape == (1, 3, *OUTPUT) and torch.isfinite(crops).all()
    assert 120 < crops.max() <= 128 and crops.min() == 0  # the pixel in the middle, padding around it
    empty = crop_images(image, torch.zeros(0, 2), torch.zeros(0, 2), OUTPUT)
    assert empty.shape == (0, 3, *OUTPUT)


def test_crop_rejects_bad_regions():
    image = torch.zeros(3, 10, 10)
    with pytest.raises(InvalidInputError, match="positive"):
        crop_images(image, torch.zeros(1, 2), torch.zeros(1, 2), (4, 4))
    with pytest.raises(InvalidInputError, match="finite"):
        crop_images(image, torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2), (4, 4))
    with pytest.raises(InvalidInputError, match="non-empty"):
        crop_images(torch.zeros(3, 0, 5), torch.zeros(1, 2), torch.ones(1, 2), (4, 4))


def test_warp_affine_with_the_topdown_transform_finds_a_bright_pixel():
    image = torch.zeros(3, 100, 150)
    image[:, 40, 70] = 255.0
    center = torch.tensor([[72.0, 45.0], [68.3, 43.1], [66.0, 36.0]])
    size = torch.tensor([[60.0, 80.0], [30.0, 40.0], [48.0, 64.0]])
    rotation = torch.tensor([0.0, 30.0, -45.0])
    flip = torch.tensor([False, True, True])
    matrices = topdown_affine(center, size, OUTPUT, rotation, flip)
    crops = warp_affine(image, matrices, OUTPUT)
    index = crops[:, 0].flatten(1).argmax(dim=1)
    found = torch.stack((index % OUTPUT[1], index // OUTPUT[1]), dim=-1).float()
    expected = matrices[:, :, :2] @ torch.tensor([70.0, 40.0]) + matrices[:, :, 2]
    assert ((found - expected).abs() <= 0.5 + 1e-4).all(), (found, expected)
    with pytest.raises(InvalidInputError, match="more than 1 pixel"):
        topdown_affine(center, torch.ones(3, 2), OUTPUT)
