import numpy as np
import pytest
import torch

from posecommon.structures import PoseResult


def test_pose_result_to_coco_and_numpy():
    keypoints = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 3, 3)
    result = PoseResult(torch.tensor([[1.0, 2.0, 11.0, 22.0], [0, 0, 4, 4]]), torch.tensor([0.9, 0.5]), keypoints)
    coco = result.to_coco(image_id=7)
    assert len(result) == 2 and result.num_joints == 3
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == 1
    assert coco[0]["bbox"] == [1.0, 2.0, 10.0, 20.0]
    assert coco[1]["keypoints"] == keypoints[1].reshape(-1).tolist()
    assert coco[0]["score"] == pytest.approx(0.9)
    arrays = result.numpy()
    assert isinstance(arrays, PoseResult)
    assert arrays.keypoints.shape == (2, 3, 3) and arrays.keypoints.dtype == np.float32


def test_empty_result():
    result = PoseResult.no_people(5)
    assert len(result) == 0 and result.keypoints.shape == (0, 5, 3) and result.to_coco(1) == []


def test_inconsistent_shapes_are_rejected():
    with pytest.raises(ValueError, match="scores"):
        PoseResult(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="keypoints"):
        PoseResult(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match="boxes"):
        PoseResult(torch.zeros(2, 5), torch.zeros(2), torch.zeros(2, 17, 3))
