"""Tests of posecommon.ops.boxes: format round trips, IoU against brute force, CIoU against its hand-computed terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posecommon.ops.boxes import aligned_box_ciou, aligned_box_iou, box_cxcywh_to_xyxy, box_xyxy_to_cxcywh


def test_format_round_trip_and_values() -> None:
    xyxy = torch.tensor([[10.0, 20.0, 50.0, 40.0], [-3.0, 1.5, 2.0, 9.5]])
    cxcywh = box_xyxy_to_cxcywh(xyxy)
    torch.testing.assert_close(cxcywh, torch.tensor([[30.0, 30.0, 40.0, 20.0], [-0.5, 5.5, 5.0, 8.0]]))
    torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh), xyxy)
    batched = torch.rand(2, 3, 4)
    torch.testing.assert_close(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(batched)), batched)


def _raster_iou(a: np.ndarray, b: np.ndarray, size: int = 64) -> float:
    """IoU by counting the unit cells of an integer grid covered by each integer-cornered box."""
    grid_a = np.zeros((size, size), bool)
    grid_b = np.zeros((size, size), bool)
    grid_a[a[1] : a[3], a[0] : a[2]] = True
    grid_b[b[1] : b[3], b[0] : b[2]] = True
    union = (grid_a | grid_b).sum()
    return float((grid_a & grid_b).sum() / union) if union else 0.0


def test_iou_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 64, size=(200, 2, 4))
    boxes = np.concatenate(
        (np.minimum(corners[..., 0:2], corners[..., 2:4]), np.maximum(corners[..., 0:2], corners[..., 2:4])), axis=-1
    )  # (200, 2, 4) xyxy, possibly empty
    expected = np.array([_raster_iou(a, b) for a, b in boxes])
    got = aligned_box_iou(torch.as_tensor(boxes[:, 0], dtype=torch.float64), torch.as_tensor(boxes[:, 1]).double())
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    assert (expected > 0).sum() > 50 and (expected == 0).sum() > 5  # both overlapping and disjoint cases


def test_iou_broadcasts_over_leading_dims() -> None:
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([[[1.0, 1.0, 3.0, 3.0]], [[0.0, 0.0, 2.0, 2.0]]])  # (2, 1, 4)
    torch.testing.assert_close(aligned_box_iou(a, b), torch.tensor([[1 / 7], [1.0]]))


def test_ciou_concentric_same_aspect_is_iou() -> None:
    inner = torch.tensor([[10.0, 10.0, 30.0, 50.0]])  # 20 x 40, centre (20, 30)
    outer = torch.tensor([[5.0, 0.0, 35.0, 60.0]])  # 30 x 60, same centre and aspect
    iou = aligned_box_iou(inner, outer)
    torch.testing.assert_close(iou, torch.tensor([800.0 / 1800.0]))
    torch.testing.assert_close(aligned_box_ciou(inner, outer), iou)  # no distance, no aspect penalty
    torch.testing.assert_close(1 - aligned_box_ciou(inner, outer), torch.tensor([1 - 800.0 / 1800.0]))
    torch.testing.assert_close(aligned_box_ciou(outer, outer), torch.tensor([1.0]))


def test_ciou_penalty_terms_by_hand() -> None:
    pred = torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)  # 4 x 2, centre (2, 1)
    true = torch.tensor([[1.0, 1.0, 3.0, 5.0]], dtype=torch.float64)  # 2 x 4, centre (2, 3)
    iou = 2.0 / (8 + 8 - 2)  # intersection [1, 3] x [1, 2]
    rho_sq = 4.0  # centres 2 apart vertically
    c_sq = 4.0**2 + 5.0**2  # enclosing box [0, 4] x [0, 5]
    v = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2
    alpha = v / (1 - iou + v)
    expected = iou - rho_sq / c_sq - alpha * v
    torch.testing.assert_close(aligned_box_ciou(pred, true, eps=0.0), torch.tensor([expected], dtype=torch.float64))
    torch.testing.assert_close(aligned_box_ciou(pred, true), torch.tensor([expected], dtype=torch.float64))


def test_ciou_disjoint_is_negative_and_gradient_pulls_together() -> None:
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    true = torch.tensor([[10.0, 0.0, 12.0, 2.0]])
    ciou = aligned_box_ciou(pred, true)
    assert ciou.item() < 0  # IoU 0 minus a distance penalty
    (1 - ciou).sum().backward()
    grad = pred.grad[0]
    assert grad[0] + grad[2] < 0  # translating the box right (towards the target) lowers the loss
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_boxes_give_finite_zero_iou(dtype: torch.dtype) -> None:
    empty = torch.tensor([[5.0, 5.0, 5.0, 5.0]], dtype=dtype)
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=dtype)
    assert aligned_box_iou(empty, box).item() == 0.0
    assert torch.isfinite(aligned_box_ciou(empty, box)).all()
