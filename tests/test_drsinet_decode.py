"""YOLO-Pose decoding formulas, score filtering and NMS into PoseResult."""

import math

import pytest
import torch

from drsinet import decode_outputs, make_grid, postprocess
from posecommon.errors import InvalidInputError


def test_make_grid_is_column_row():
    grid = make_grid(2, 3)
    assert grid.shape == (2, 3, 2)
    assert grid[1, 2].tolist() == [2.0, 1.0]


def test_decode_matches_scalar_formulas():
    gen = torch.Generator().manual_seed(0)
    k = 5
    outputs = [torch.randn(2, 3, 4, 6, 6 + 3 * k, generator=gen), torch.randn(2, 3, 2, 3, 6 + 3 * k, generator=gen)]
    anchors = torch.tensor([[[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]]])
    strides = (8, 16)
    boxes, scores, kpts = decode_outputs(outputs, anchors, strides)
    assert boxes.shape == (2, 3 * 24 + 3 * 6, 4) and scores.shape == (2, 90) and kpts.shape == (2, 90, k, 3)

    def sig(v):
        return 1 / (1 + math.exp(-v))

    # level 1, image 1, anchor 2, row 1, column 2 -> flat index 72 + 2 * 6 + 1 * 3 + 2
    raw = outputs[1][1, 2, 1, 2].tolist()
    n = 72 + 2 * 6 + 1 * 3 + 2
    cx, cy = (2 * sig(raw[0]) - 0.5 + 2) * 16, (2 * sig(raw[1]) - 0.5 + 1) * 16
    bw, bh = (2 * sig(raw[2])) ** 2 * 59, (2 * sig(raw[3])) ** 2 * 119
    expected_box = torch.tensor([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    torch.testing.assert_close(boxes[1, n], expected_box)
    torch.testing.assert_close(scores[1, n], torch.tensor(sig(raw[4]) * sig(raw[5])))
    j = 3
    expected_kpt = torch.tensor(
        [(2 * raw[6 + 3 * j] - 0.5 + 2) * 16, (2 * raw[7 + 3 * j] - 0.5 + 1) * 16, sig(raw[8 + 3 * j])]
    )
    torch.testing.assert_close(kpts[1, n, j], expected_kpt)


def test_decode_rejects_mismatched_levels():
    with pytest.raises(InvalidInputError):
        decode_outputs([torch.zeros(1, 3, 2, 2, 57)], torch.ones(2, 3, 2), (8, 16))
    with pytest.raises(InvalidInputError):
        decode_outputs([torch.zeros(1, 3, 2, 2, 58)], torch.ones(1, 3, 2), (8,))


def test_postprocess_threshold_nms_and_empty():
    boxes = torch.tensor(
        [
            [[0.0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 5, 5]],
            [[0.0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 5, 5]],
        ]
    )
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.1, 0.2, 0.05]])
    kpts = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).view(2, 4, 2, 3)
    results = postprocess(boxes, scores, kpts, score_threshold=0.25, iou_threshold=0.5)
    assert len(results) == 2
    assert results[0].scores.tolist() == pytest.approx([0.9, 0.7])
    torch.testing.assert_close(results[0].keypoints, kpts[0, [0, 2]])
    assert len(results[1]) == 0 and results[1].keypoints.shape == (0, 2, 3)
    capped = postprocess(boxes, scores, kpts, score_threshold=0.0, iou_threshold=0.5, max_people=1)
    assert [len(r) for r in capped] == [1, 1]


def test_predicted_boxes_are_clipped_to_the_image():
    import numpy as np

    from drsinet import drsi_net_s

    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128)).eval()
    result = model.predict(np.zeros((50, 90, 3), dtype=np.uint8), score_threshold=0.0)[0]
    assert len(result) > 0
    assert result.boxes[:, 0::2].min() >= -0.5 and result.boxes[:, 0::2].max() <= 89.5
    assert result.boxes[:, 1::2].min() >= -0.5 and result.boxes[:, 1::2].max() <= 49.5
