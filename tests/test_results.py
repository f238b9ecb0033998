"""PoseResult as a results object: people indexing, serialisation, device moves, plot and save."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon import COCO17, InvalidInputError, PoseResult
from posecommon.keypoints import generic_keypoint_spec
from posecommon.media.image import load_image

PHOTO = Path(__file__).parent / "data" / "astronaut.jpg"


def _result(**image_fields) -> PoseResult:
    keypoints = torch.rand(3, 17, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([300.0, 300.0, 1.0])
    boxes = torch.tensor([[10.0, 20.0, 200.0, 400.0], [150.0, 30.0, 300.0, 480.0], [5.0, 5.0, 60.0, 90.0]])
    return PoseResult(boxes, torch.tensor([0.9, 0.6, 0.3]), keypoints, **image_fields)


def test_indexing_and_iteration_go_over_people():
    result = _result(image_path=str(PHOTO), image_size=(512, 512))
    first = result[0]
    assert isinstance(first, PoseResult) and len(first) == 1 and first.boxes.shape == (1, 4)
    torch.testing.assert_close(first.keypoints[0], result.keypoints[0])
    assert first.image_path == result.image_path and first.image_size == (512, 512)  # image fields travel along
    torch.testing.assert_close(result[-1].scores, result.scores[2:])
    torch.testing.assert_close(result[1:].scores, result.scores[1:])
    confident = result[result.scores > 0.5]
    assert len(confident) == 2 and confident.scores.min() > 0.5
    torch.testing.assert_close(result[[2, 0]].scores, result.scores[[2, 0]])
    torch.testing.assert_close(result[np.array([True, False, True])].scores, result.scores[[0, 2]])
    people = list(result)
    assert len(people) == 3 and [float(p.scores) for p in people] == pytest.approx([0.9, 0.6, 0.3])
    with pytest.raises(IndexError):
        result[3]
    assert list(PoseResult.empty(17)) == []


def test_to_dict_and_json_are_plain_and_complete():
    result = _result(image_path=str(PHOTO), image_size=(512, 640), frame_index=None)
    data = json.loads(result.to_json())
    assert data["image"] == {"path": str(PHOTO), "height": 512, "width": 640, "frame_index": None, "image_id": None}
    assert data["keypoint_names"] == list(COCO17.names)
    assert len(data["people"]) == 3
    person = data["people"][1]
    assert person["box"] == pytest.approx([150.0, 30.0, 300.0, 480.0])
    assert person["score"] == pytest.approx(0.6)
    assert np.allclose(person["keypoints"], result.keypoints[1].numpy())
    assert json.loads(json.dumps(result.to_dict())) == data  # nothing numpy-typed inside
    named = dataclasses.replace(result, keypoints=result.keypoints[:, :5], keypoint_spec=generic_keypoint_spec(5))
    assert json.loads(named.to_json())["keypoint_names"] == list(generic_keypoint_spec(5).names)


def test_to_coco_image_id_defaults():
    result = _result(image_path=str(PHOTO))
    assert {r["image_id"] for r in result.to_coco()} == {"astronaut.jpg"}
    assert {r["image_id"] for r in result.to_coco(image_id=7)} == {7}
    assert result.to_coco()[0]["bbox"] == pytest.approx([10.0, 20.0, 190.0, 380.0])
    assert dataclasses.replace(result, image_id=42).to_coco()[0]["image_id"] == 42
    assert dataclasses.replace(result, image_path="clip.mp4", frame_index=3).to_coco()[0]["image_id"] == "clip.mp4#3"
    json.dumps(result.to_coco())
    with pytest.raises(InvalidInputError, match="image_id"):
        _result().to_coco()


def test_device_moves_and_numpy():
    result = _result()
    moved = result.cpu()
    assert moved is not result and moved.boxes.device.type == "cpu"
    arrays = result.numpy()
    assert arrays["keypoints"].shape == (3, 17, 3) and arrays["keypoints"].dtype == np.float32
    with pytest.raises(ValueError, match="joints"):
        PoseResult(result.boxes, result.scores, result.keypoints, keypoint_spec=generic_keypoint_spec(5))


def test_plot_draws_on_the_kept_or_reread_image_and_save_writes_both_files(tmp_path):
    pixels = load_image(PHOTO)
    plain = np.asarray(Image.open(PHOTO).convert("RGB"))
    from_file = _result(image_path=str(PHOTO), image_size=(512, 512))
    drawn = np.asarray(from_file.plot())
    assert drawn.shape == plain.shape
    changed = (drawn != plain).any(axis=-1)
    assert changed[20, 100]  # the top edge of box 0
    assert not changed[490:, 320:].any()  # beyond every box and keypoint
    in_memory = dataclasses.replace(from_file, image_path=None, image=pixels)
    assert np.array_equal(np.asarray(in_memory.plot()), drawn)
    with pytest.raises(InvalidInputError, match="plot\\(image="):
        _result().plot()
    picture, record = from_file.save(tmp_path / "out")
    assert picture == tmp_path / "out" / "astronaut.png" and Image.open(picture).size == (512, 512)
    assert json.loads(record.read_text()) == from_file.to_dict()
    frame = dataclasses.replace(in_memory, image_path="clip.mp4", frame_index=12)
    assert frame.save(tmp_path / "out")[0].name == "clip_000012.png"
