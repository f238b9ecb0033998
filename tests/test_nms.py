"""Box NMS in torch against a brute-force Python reference (random boxes, ties, empty input, groups)."""

import pytest
import torch

from posecommon.errors import InvalidInputError
from posecommon.ops import batched_nms, box_iou, nms


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference(boxes, scores, groups, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(groups[i] != groups[j] or _iou(boxes[i], boxes[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def _random_boxes(n, gen):
    xy = torch.randint(0, 40, (n, 2), generator=gen).double()
    wh = torch.randint(1, 25, (n, 2), generator=gen).double()
    return torch.cat((xy, xy + wh), dim=1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_bruteforce_with_ties(seed, thr):
    gen = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(60, gen)
    boxes[10] = boxes[3]  # identical boxes
    scores = torch.randint(0, 8, (60,), generator=gen).double() / 8  # many exact score ties
    expected = _reference(boxes.tolist(), scores.tolist(), [0] * 60, thr)
    assert nms(boxes, scores, thr).tolist() == expected


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_matches_per_group_reference(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    boxes = _random_boxes(80, gen)
    scores = torch.randint(0, 10, (80,), generator=gen).double() / 10
    groups = torch.randint(0, 3, (80,), generator=gen)
    expected = _reference(boxes.tolist(), scores.tolist(), groups.tolist(), 0.5)
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == expected


def test_empty_and_single_inputs():
    empty = torch.zeros(0, 4)
    assert nms(empty, torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).dtype == torch.long
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def test_iou_values_and_degenerate_boxes():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 0, 0]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 0, 0]])
    iou = box_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 7, 0.0], [0.0, 0.0]]))


def test_shape_errors():
    with pytest.raises(InvalidInputError):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(InvalidInputError):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(InvalidInputError):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)
