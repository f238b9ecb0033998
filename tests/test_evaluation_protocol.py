"""Evaluation as the official evaluators run it: single-stage keypoints clamped to the image (YOLO-Pose ``test.py:176``
through ``scale_coords`` / ``clip_coords``, ``utils/general.py:391-404``), results without ``bbox``, and results for
image-info files without annotations (test-dev, TransPose ``lib/dataset/coco.py:113-121, 359-367``)."""

import json
from types import SimpleNamespace

import pytest
import torch

from posecommon import COCO17, DatasetError, InvalidInputError, PoseResult
from posecommon.data import generate_synthetic_coco
from posecommon.evaluation import evaluate_coco, evaluate_model, predict_coco_results
from posecommon.ops import clip_points


def test_clip_points_clamps_to_the_pixel_centre_image_area_and_keeps_confidences():
    # official clip_coords: x to [0, W], y to [0, H] in pixel-edge coordinates = [-0.5, W - 0.5] with pixel centres
    points = torch.tensor([[[-3.0, 5.0, 0.7], [10.0, -0.6, 0.2], [64.2, 79.4, 0.9], [12.0, 90.0, 0.1]]])
    clipped = clip_points(points, (80, 64))
    expected = torch.tensor([[[-0.5, 5.0, 0.7], [10.0, -0.5, 0.2], [63.5, 79.4, 0.9], [12.0, 79.5, 0.1]]])
    torch.testing.assert_close(clipped, expected)
    assert points[0, 0, 0] == -3.0  # the input is not modified


class _GroundTruthEcho:
    """A single-stage "model" whose kernel returns each image's ground-truth persons, with joint 0 moved out of the
    image to the left and joint 1 below it (as a YOLO-Pose head can predict for people at the border)."""

    keypoint_spec = COCO17
    preprocess = SimpleNamespace(resize="letterbox")

    def __init__(self, ann_file) -> None:
        dataset = json.loads(ann_file.read_text())
        self.sizes = {image["id"]: (image["height"], image["width"]) for image in dataset["images"]}
        self.persons: dict[int, list[list[float]]] = {}
        for ann in dataset["annotations"]:
            self.persons.setdefault(ann["image_id"], []).append(ann["keypoints"])
        self.order = sorted(self.sizes)
        self.calls = 0

    def predict_kernel(self, score_threshold: float, iou_threshold: float, max_people: int):
        def kernel(images, inputs, run):
            (pixels,) = images
            image_id = self.order[self.calls]
            self.calls += 1
            height, width = self.sizes[image_id]
            assert tuple(pixels.shape[1:]) == (height, width)
            kpts = torch.tensor(self.persons[image_id], dtype=torch.float32).view(-1, 17, 3)
            kpts[..., 2] = 0.9
            kpts[:, 0, 0] = -25.0
            kpts[:, 1, 1] = height + 30.0
            boxes = torch.tensor([[0.0, 0.0, width - 1.0, height - 1.0]]).expand(len(kpts), 4)
            return [PoseResult(boxes, torch.full((len(kpts),), 0.9), kpts)]

        return kernel


def test_single_stage_evaluation_clamps_keypoints_to_the_image_and_writes_no_bbox(tmp_path):
    split = generate_synthetic_coco(tmp_path, 3, image_size=(96, 80), seed=4, split="val")
    stats, results = evaluate_model(_GroundTruthEcho(split.ann_file), split.ann_file, split.image_dir, progress=False)
    dataset = json.loads(split.ann_file.read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in dataset["images"]}
    assert len(results) == split.num_annotations
    for result in results:
        assert set(result) == {"image_id", "category_id", "keypoints", "score"}  # test.py:212-218: no bbox
        height, width = sizes[result["image_id"]]
        kpts = torch.tensor(result["keypoints"]).view(17, 3)
        assert kpts[0, 0] == -0.5 and kpts[1, 1] == height - 0.5  # clamped, as clip_coords does
        assert (kpts[:, 0] >= -0.5).all() and (kpts[:, 0] <= width - 0.5).all()
    assert stats == evaluate_coco(split.ann_file, results)  # the scored results are the clamped ones


def _image_info_file(split, path):
    """The split as a COCO image-info file: images and categories, no annotations (as image_info_test-dev2017)."""
    dataset = json.loads(split.ann_file.read_text())
    path.write_text(json.dumps({"images": dataset["images"], "categories": dataset["categories"]}))
    return dataset


class _TopDownEcho:
    """A top-down "model" whose kernel returns one pose per given box (joints along its diagonal)."""

    keypoint_spec = COCO17
    preprocess = SimpleNamespace(resize="affine_crop")

    def predict_kernel(self, **options):
        def kernel(images, inputs, run):
            (given,) = inputs
            boxes = given["boxes"]
            t = torch.linspace(0, 1, 17)[None, :, None]
            xy = boxes[:, None, :2] + t * (boxes[:, None, 2:] - boxes[:, None, :2])
            kpts = torch.cat((xy, torch.full_like(xy[..., :1], 0.5)), dim=-1)
            return [PoseResult(boxes, given["box_scores"] * 0.5, kpts)]

        kernel.input_size, kernel.padding, kernel.keypoint_spec = (256, 192), 1.25, COCO17
        return kernel


def test_image_info_files_give_results_for_the_server_and_are_refused_for_scoring(tmp_path):
    split = generate_synthetic_coco(tmp_path, 2, image_size=(96, 80), seed=5, split="val")
    info = tmp_path / "image_info_test.json"
    dataset = _image_info_file(split, info)
    detections = [
        {"image_id": ann["image_id"], "category_id": 1, "bbox": ann["bbox"], "score": 0.8}
        for ann in dataset["annotations"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(detections))

    dets = tmp_path / "dets.json"
    results = predict_coco_results(_TopDownEcho(), info, split.image_dir, detections=dets, oks_threshold=1.0)
    assert sorted(r["image_id"] for r in results) == sorted(d["image_id"] for d in detections)
    assert all("bbox" not in r and r["score"] == pytest.approx(0.4) for r in results)
    with pytest.raises(InvalidInputError, match=r"no annotations.*--det-json"):
        predict_coco_results(_TopDownEcho(), info, split.image_dir)  # no ground-truth boxes to fall back on
    with pytest.raises(DatasetError, match=r"image-info file.*--results"):
        evaluate_model(_TopDownEcho(), info, split.image_dir, detections=dets)
    images_only = json.loads(info.read_text())
    del images_only["categories"]  # COCO's file may come without them too
    info.write_text(json.dumps(images_only))
    assert predict_coco_results(_TopDownEcho(), info, split.image_dir, detections=dets, oks_threshold=1.0) == results
