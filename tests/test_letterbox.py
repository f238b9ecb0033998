"""Letterbox geometry and its exact inverse (pixel-centre convention, pad bottom/right)."""

import pytest
import torch

from posecommon.errors import InvalidInputError
from posecommon.ops.letterbox import (
    letterbox,
    letterbox_info,
    letterbox_points,
    unletterbox_boxes,
    unletterbox_points,
)

SIZES = [(37, 91), (101, 53), (7, 5), (64, 64), (333, 129), (129, 333), (1000, 17)]


@pytest.mark.parametrize("image_size", SIZES)
@pytest.mark.parametrize("input_size", [(128, 128), (64, 192)])
def test_info_is_integer_and_fits(image_size, input_size):
    info = letterbox_info(image_size, input_size)
    (rh, rw), (big_h, big_w) = info.resized_size, input_size
    assert all(isinstance(v, int) for v in (*info.resized_size, *info.pad))
    assert rh <= big_h and rw <= big_w and (rh == big_h or rw == big_w)
    assert info.pad[:2] == (0, 0) and info.pad[2:] == (big_h - rh, big_w - rw)
    ratio = min(big_h / image_size[0], big_w / image_size[1])
    assert abs(rh - image_size[0] * ratio) <= 0.5 + 1e-9 or rh == 1
    assert abs(rw - image_size[1] * ratio) <= 0.5 + 1e-9 or rw == 1


@pytest.mark.parametrize("image_size", SIZES)
def test_points_round_trip(image_size):
    info = letterbox_info(image_size, (128, 128))
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(50, 3, generator=gen, dtype=torch.float64) * torch.tensor([image_size[1], image_size[0], 1.0])
    back = unletterbox_points(torch.cat((letterbox_points(pts, info), pts[:, 2:]), 1), info)
    torch.testing.assert_close(back, pts)
    boxes = torch.cat((pts[:, :2], pts[:, :2] + 3), dim=1)
    mapped = torch.cat((letterbox_points(boxes[:, :2], info), letterbox_points(boxes[:, 2:], info)), 1)
    torch.testing.assert_close(unletterbox_boxes(mapped, info), boxes)


@pytest.mark.parametrize(
    ("image_size", "center"),
    [((37, 91), (60.0, 17.0)), ((101, 53), (21.0, 70.0)), ((333, 129), (77.0, 201.0)), ((45, 29), (13.0, 30.0))],
)
def test_blob_in_letterboxed_image_maps_back_within_half_pixel(image_size, center):
    h, w = image_size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    sigma = max(h, w) / 40 + 1.5
    blob = torch.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2)) * 250
    image = blob.to(torch.float32).expand(3, h, w)
    padded, info = letterbox(image, (128, 128), pad_value=0.0)
    assert padded.shape == (3, 128, 128)
    m = padded[0].double()
    gy, gx = torch.meshgrid(
        torch.arange(128.0, dtype=torch.float64), torch.arange(128.0, dtype=torch.float64), indexing="ij"
    )
    found = torch.tensor([[(m * gx).sum() / m.sum(), (m * gy).sum() / m.sum()]])
    back = unletterbox_points(found, info)[0]
    assert (back - torch.tensor(center, dtype=torch.float64)).abs().max() < 0.5


def test_padding_value_and_uint8_input():
    image = torch.full((3, 10, 20), 7, dtype=torch.uint8)
    padded, info = letterbox(image, (64, 64), pad_value=114)
    assert info.resized_size == (32, 64)
    assert padded.dtype == torch.float32
    assert (padded[:, 32:, :] == 114).all() and torch.allclose(padded[:, :32, :], torch.tensor(7.0))


def test_errors():
    with pytest.raises(InvalidInputError):
        letterbox_info((0, 10), (64, 64))
    with pytest.raises(InvalidInputError):
        letterbox(torch.zeros(10, 10), (64, 64))
