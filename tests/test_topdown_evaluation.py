"""Top-down evaluation as TransPose's validate + evaluate: person boxes (GT or detection file), OKS-NMS, rescoring."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from posecommon import COCO17, DatasetError, InvalidInputError, PoseModel, PreprocessConfig
from posecommon.app import cli
from posecommon.app.cli import main
from posecommon.data import load_coco_keypoints
from posecommon.evaluation import evaluate_model, ground_truth_person_boxes, load_person_detections, oks_nms
from vttranspose.predict import TopDownKernel

INPUT, HEATMAP = (64, 48), (16, 12)
PEAKS = torch.tensor([[5.0 + k % 2, 5.0 + k % 6] for k in range(17)])  # heatmap (x, y) of each joint
PEAK_VALUE = 0.8


@dataclass(frozen=True)
class _Config:
    num_joints: int = 17


class _ConstantPose(PoseModel):
    """Outputs the same heatmaps for every crop: joint k peaks (value 0.8, sigma 2) at heatmap pixel PEAKS[k].

    So the keypoints of a box are known by hand: the region centre plus ``(PEAKS - heatmap centre)`` times the
    image pixels per heatmap pixel ``(size_w - 1) / (w - 1)``, and every confidence is 0.8.
    """

    def __init__(self) -> None:
        super().__init__(_Config(), COCO17)
        self.gain = nn.Parameter(torch.ones(()))

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(input_size=INPUT, resize="affine_crop")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(HEATMAP[0]).float(), torch.arange(HEATMAP[1]).float(), indexing="ij")
        maps = torch.exp(-((xs - PEAKS[:, 0, None, None]) ** 2 + (ys - PEAKS[:, 1, None, None]) ** 2) / 8.0)
        return (PEAK_VALUE * maps * self.gain).expand(x.shape[0], -1, -1, -1)

    def predict_kernel(self, **options):
        # no flip test: the flipped crop would give the same maps, which are not the mirror of these
        return TopDownKernel(self, **{"flip_test": False, **options})


def _expected_keypoints(box_xywh: tuple[float, float, float, float]) -> torch.Tensor:
    """Hand computation: official centre x + (w - 1) / 2, 3:4 aspect, x1.25, one scale from the widths."""
    x, y, w, h = box_xywh
    center = torch.tensor([x + (w - 1) / 2, y + (h - 1) / 2])
    width = max(w, h * 0.75) * 1.25
    per_heatmap_pixel = (width - 1) / (HEATMAP[1] - 1)
    heatmap_centre = torch.tensor([(HEATMAP[1] - 1) / 2, (HEATMAP[0] - 1) / 2])
    return center + (PEAKS - heatmap_centre) * per_heatmap_pixel


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    """Two 200x160 images with one annotated person each, and a detection file."""
    root = tmp_path_factory.mktemp("td_eval")
    images, annotations = [], []
    for image_id in (1, 2):
        Image.new("RGB", (200, 160), (90, 90, 90)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": 200, "height": 160})
        box = [40.0, 20.0, 60.0, 110.0] if image_id == 1 else [120.0, 30.0, 50.0, 100.0]
        keypoints = _expected_keypoints(tuple(box))
        annotations.append(
            {
                "id": image_id,
                "image_id": image_id,
                "category_id": 1,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
                "num_keypoints": 17,
                "keypoints": torch.cat((keypoints, torch.full((17, 1), 2.0)), dim=1).flatten().tolist(),
            }
        )
    ann = root / "ann.json"
    categories = [{"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []}]
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    box_a = [41.0, 22.0, 58.0, 108.0]
    detections = [
        {"image_id": 1, "category_id": 1, "bbox": box_a, "score": 0.9},  # A
        {"image_id": 1, "category_id": 1, "bbox": [42.0, 23.0, 58.0, 108.0], "score": 0.8},  # B: A moved by (1, 1)
        {"image_id": 2, "category_id": 1, "bbox": [118.0, 31.0, 52.0, 98.0], "score": 0.7},  # C
        {"image_id": 2, "category_id": 3, "bbox": [0.0, 0.0, 50.0, 50.0], "score": 0.99},  # not a person
        {"image_id": 2, "category_id": 1, "bbox": [0.0, 0.0, 50.0, 50.0], "score": -0.1},  # below IMAGE_THRE 0.0
    ]
    dets = root / "dets.json"
    dets.write_text(json.dumps(detections))
    return ann, root, dets, detections


def test_detection_file_boxes_oks_nms_and_rescoring(coco_set):
    ann, root, dets, detections = coco_set
    model = _ConstantPose()
    stats, results = evaluate_model(model, ann, root, detections=dets, progress=False)
    # hand-computed: A and B predict the same pose moved by exactly (1, 1) px, in equal regions (area = size_w *
    # size_h); OKS over all 17 joints with the mean area is far above 0.9, so B (lower score) is suppressed
    size_w = max(58.0, 108.0 * 0.75) * 1.25
    area = size_w * (size_w / 0.75)
    sigmas = torch.tensor(COCO17.sigmas, dtype=torch.float64)
    oks_ab = float(torch.exp(-2.0 / (2 * (2 * sigmas) ** 2 * (area + area) / 2)).mean())
    assert oks_ab > 0.9
    by_image = {r["image_id"]: r for r in results}
    assert len(results) == 2 and set(by_image) == {1, 2}
    # rescoring: box score x mean confidence above 0.2 (all 17 joints at 0.8)
    assert by_image[1]["score"] == pytest.approx(0.9 * PEAK_VALUE, abs=1e-5)
    assert by_image[2]["score"] == pytest.approx(0.7 * PEAK_VALUE, abs=1e-5)
    for image_id, box in ((1, detections[0]["bbox"]), (2, detections[2]["bbox"])):
        keypoints = torch.tensor(by_image[image_id]["keypoints"]).view(17, 3)
        torch.testing.assert_close(keypoints[:, :2], _expected_keypoints(tuple(box)), atol=0.01, rtol=0)
        assert torch.allclose(keypoints[:, 2], torch.full((17,), PEAK_VALUE), atol=1e-5)
    assert 0 < stats["AP"] <= 1  # detected boxes slightly off the ground truth
    # without OKS-NMS the duplicate B would be scored too
    _, everything = evaluate_model(model, ann, root, detections=dets, progress=False, oks_threshold=1)
    assert sorted(r["score"] for r in everything) == pytest.approx(sorted([0.72, 0.64, 0.56]), abs=1e-5)


def test_ground_truth_boxes_are_the_default(coco_set):
    ann, root, _, _ = coco_set
    stats, results = evaluate_model(_ConstantPose(), ann, root, progress=False)
    assert [r["score"] for r in results] == pytest.approx([PEAK_VALUE, PEAK_VALUE], abs=1e-5)  # box score 1
    # the annotation keypoints are exactly where the model puts them for the sanitised GT box (coco.py:165-171):
    # x2 = x1 + w - 1, clean w = x2 - x1 + 1 = w, so the same box
    assert stats["AP"] == pytest.approx(1.0)


def test_official_ground_truth_box_rules(coco_set, tmp_path):
    ann, root, _, _ = coco_set
    data = json.loads(ann.read_text())
    base = data["annotations"][0]
    data["annotations"] = [
        {**base, "id": 10, "bbox": [-5.0, -3.0, 250.0, 40.0]},  # moved to x1 = y1 = 0, then x2 = x1 + w - 1 clipped
        {**base, "id": 11, "iscrowd": 1},
        {**base, "id": 12, "area": 0.0},
        {**base, "id": 13, "keypoints": [0] * 51},
        {**base, "id": 14, "bbox": [210.0, 10.0, 20.0, 20.0]},  # starts right of the image
    ]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    boxes = ground_truth_person_boxes(load_coco_keypoints(path, root))
    np.testing.assert_array_equal(boxes.boxes[1], [[0.0, 0.0, 200.0, 40.0]])
    assert boxes.skipped == {"crowd": 1, "box_or_area": 2, "no_keypoints": 1}


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"image_id": 1}, "JSON list"),
        ([{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], r"detection #0: needs"),
        ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}], r"\[x, y, w, h\]"),
        ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}], "finite number"),
        ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}], "negative"),
        ([{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], r"not in the annotation file.*7"),
        ([{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}], "no person detection"),
    ],
)
def test_bad_detection_files_are_dataset_errors(coco_set, tmp_path, entries, match):
    ann, root, _, _ = coco_set
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=match):
        load_person_detections(path, load_coco_keypoints(ann, root))


def test_detector_and_detections_exclude_each_other(coco_set):
    ann, root, dets, _ = coco_set
    with pytest.raises(InvalidInputError, match="not both"):
        evaluate_model(_ConstantPose(), ann, root, detector=_ConstantPose(), detections=dets, progress=False)


def _official_oks_nms(keypoints, scores, areas, threshold, sigmas):
    """TransPose lib/nms/nms.py oks_iou + oks_nms with in_vis_thre=None, as loops."""
    variances = (sigmas * 2) ** 2
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        overlaps = []
        for j in order[1:]:
            e = (
                ((keypoints[j] - keypoints[i]) ** 2).sum(-1)
                / variances
                / ((areas[i] + areas[j]) / 2 + np.spacing(1))
                / 2
            )
            overlaps.append(np.sum(np.exp(-e)) / e.shape[0])
        order = order[np.where(np.array(overlaps) <= threshold)[0] + 1]
    return keep


def test_oks_nms_is_the_official_definition():
    sigmas = np.asarray(COCO17.sigmas)
    # a smaller kept instance and a larger candidate: OKS with the kept area alone is 0.88 (kept), with the
    # official mean area 0.92 (suppressed)
    base = np.random.default_rng(0).uniform(0, 100, (17, 2))
    keypoints = np.stack([base, base + 3.0])
    areas, scores = np.array([8000.0, 16000.0]), np.array([0.9, 0.8])
    own_area = np.mean(np.exp(-18.0 / (2 * (2 * sigmas) ** 2 * areas[0])))
    assert own_area < 0.9 < np.mean(np.exp(-18.0 / (2 * (2 * sigmas) ** 2 * areas.mean())))
    as_torch = torch.from_numpy(keypoints), torch.from_numpy(scores), torch.from_numpy(areas)
    assert oks_nms(*as_torch, threshold=0.9).tolist() == [0] == _official_oks_nms(keypoints, scores, areas, 0.9, sigmas)
    # random scenes with duplicates and varied areas agree with the official loop (distinct scores: the official
    # order of equal scores is numpy's, which is not stable on every platform)
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 12))
        centres = rng.uniform(0, 300, (n, 1, 2))
        keypoints = centres + rng.uniform(-40, 40, (1, 17, 2)) + rng.normal(0, rng.uniform(0.5, 15), (n, 17, 2))
        scores = rng.uniform(0, 1, n)
        areas = rng.uniform(500, 20000, n)
        ours = oks_nms(torch.from_numpy(keypoints), torch.from_numpy(scores), torch.from_numpy(areas), threshold=0.9)
        assert ours.tolist() == _official_oks_nms(keypoints, scores, areas, 0.9, sigmas)
    assert math.isfinite(own_area)


def test_cli_evaluate_with_detection_file(coco_set, tmp_path, capsys, monkeypatch):
    """``posezoo evaluate MODEL --weights W --det-json D``: the flags reach the evaluation (model loading is
    replaced by the hand-checkable stand-in; loading weights is tested in test_weights / test_hub)."""
    ann, root, dets, _ = coco_set
    loaded = []
    monkeypatch.setattr(cli, "load_model", lambda name, weights: loaded.append((name, weights)) or _ConstantPose())
    results = tmp_path / "results.json"
    common = ["evaluate", "vttranspose_h_s", "--weights", "w_dir", "--ann", str(ann), "--images", str(root)]
    assert main([*common, "--det-json", str(dets), "--results", str(results)]) == 0
    assert loaded == [("vttranspose_h_s", "w_dir")]
    written = json.loads(results.read_text())
    assert sorted(r["score"] for r in written) == pytest.approx([0.7 * PEAK_VALUE, 0.9 * PEAK_VALUE], abs=1e-5)
    assert "AP" in capsys.readouterr().out
    assert main([*common, "--use-gt-boxes", "--results", str(results)]) == 0
    assert [r["score"] for r in json.loads(results.read_text())] == pytest.approx([PEAK_VALUE] * 2, abs=1e-5)
    assert main([*common, "--det-json", str(dets), "--use-gt-boxes"]) == 2
    assert "only one" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]))
    assert main([*common, "--det-json", str(bad)]) == 2
    assert "not in the annotation file" in capsys.readouterr().err
