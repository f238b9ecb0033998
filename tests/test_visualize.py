"""draw_pose: pixels change where keypoints, limbs and boxes are drawn, and nowhere else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon import COCO17, InvalidInputError
from posecommon.structures import PoseResult
from posecommon.visualize import draw_pose


def _result(keypoints: torch.Tensor, box=(10.0, 10.0, 90.0, 90.0)) -> PoseResult:
    return PoseResult(torch.tensor([box]), torch.tensor([0.9]), keypoints[None])


def _changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    return (np.asarray(before.convert("RGB")) != np.asarray(after)).any(axis=-1)


def test_keypoint_drawn_locally_and_low_confidence_skipped():
    image = Image.new("RGB", (120, 100), (40, 40, 40))
    keypoints = torch.zeros(17, 3)
    keypoints[:, 0] = torch.linspace(5, 110, 17)
    keypoints[:, 1] = 80.0
    keypoints[:, 2] = 0.29  # below the 0.3 threshold
    keypoints[0] = torch.tensor([50.0, 30.0, 0.9])
    drawn = draw_pose(image, _result(keypoints), COCO17, keypoint_threshold=0.3, draw_boxes=False, radius=3)
    changed = _changed(image, drawn)
    ys, xs = np.nonzero(changed)
    assert changed[30, 50] and len(xs) >= 9
    assert np.all(np.hypot(xs - 50, ys - 30) <= 3 + 1.5)  # nothing drawn away from the keypoint
    assert np.asarray(image).max() == 40  # input untouched


def test_nothing_drawn_below_threshold():
    image = Image.new("L", (60, 60), 0)
    keypoints = torch.rand(17, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([60.0, 60.0, 0.2])
    drawn = draw_pose(image, _result(keypoints), keypoint_threshold=0.3, draw_boxes=False)
    assert drawn.mode == "RGB" and not _changed(image, drawn).any()


def test_limbs_and_boxes_are_drawn():
    image = Image.new("RGB", (100, 100))
    keypoints = torch.zeros(17, 3)
    keypoints[5] = torch.tensor([20.0, 50.0, 1.0])  # left shoulder
    keypoints[6] = torch.tensor([80.0, 50.0, 1.0])  # right shoulder: (5, 6) is a COCO limb
    drawn = draw_pose(image, _result(keypoints, box=(5.0, 5.0, 95.0, 95.0)), radius=2, line_width=1)
    changed = _changed(image, drawn)
    assert changed[50, 50]  # the limb's middle, far from both keypoints
    assert changed[5, 50] and changed[95, 50] and changed[50, 5]  # box edges
    assert not changed[30, 50] and not changed[70, 30]  # empty areas stay empty
    # left and right joints get different colours
    pixels = np.asarray(drawn)
    assert tuple(pixels[50, 19]) != tuple(pixels[50, 81])


def test_joint_count_mismatch_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="joints"):
        draw_pose(Image.new("RGB", (10, 10)), PoseResult.no_people(5), COCO17)
    assert draw_pose(Image.new("RGB", (10, 10)), PoseResult.no_people(5)).size == (10, 10)


def test_paths_arrays_and_tensors_draw_like_pil(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    keypoints = torch.zeros(17, 3)
    keypoints[5] = torch.tensor([20.0, 30.0, 1.0])
    result = _result(keypoints, box=(5.0, 20.0, 70.0, 55.0))
    expected = np.asarray(draw_pose(Image.fromarray(pixels), result))
    for image in (path, str(path), pixels, torch.from_numpy(pixels).permute(2, 0, 1)):
        assert np.array_equal(np.asarray(draw_pose(image, result)), expected)


def test_box_scores_are_written_above_the_box():
    image = Image.new("RGB", (120, 100))
    result = _result(torch.zeros(17, 3), box=(20.0, 40.0, 100.0, 90.0))
    with_score = np.asarray(draw_pose(image, result, line_width=1))
    without = np.asarray(draw_pose(image, result, line_width=1, show_scores=False))
    label = (with_score != without).any(axis=-1)
    ys, xs = np.nonzero(label)
    assert len(ys) > 50 and ys.max() < 41 and xs.min() >= 20  # a label just above the box's top-left corner
    other = _result(torch.zeros(17, 3), box=(20.0, 40.0, 100.0, 90.0))
    other = PoseResult(other.boxes, torch.tensor([0.1]), other.keypoints)
    assert not np.array_equal(np.asarray(draw_pose(image, other, line_width=1)), with_score)  # the text differs
