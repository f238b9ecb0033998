"""OKS against pycocotools' COCOeval, OKS-NMS, COCO results writer and evaluate_coco."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posecommon import COCO17, DatasetError, InvalidInputError, KeypointSpec
from posecommon.evaluation import (
    COCO_STAT_NAMES,
    evaluate_coco,
    instance_scores,
    oks,
    oks_nms,
    results_to_coco,
    write_coco_results,
)
from posecommon.structures import PoseResult


def _make_dataset(rng: np.random.Generator, num_joints: int, num_images: int = 4):
    """Ground truth with invisible joints, a gt without labelled joints, crowd, tiny and huge boxes; detections."""
    images, annotations, detections = [], [], []
    ann_id = 1
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 2000, "height": 2000, "file_name": f"{image_id}.jpg"})
        kinds = ["normal", "normal", "occluded", "no_labels", "crowd", "tiny", "huge"]
        gts = []
        for kind in kinds:
            w, h = {"tiny": (1.5, 1.0), "huge": (1500.0, 1800.0)}.get(kind, tuple(rng.uniform(40, 300, 2)))
            x, y = rng.uniform(0, 2000 - w), rng.uniform(0, 2000 - h)
            xs = rng.uniform(x, x + w, num_joints)
            ys = rng.uniform(y, y + h, num_joints)
            v = rng.choice([1, 2], num_joints)
            if kind == "occluded":
                v[rng.random(num_joints) < 0.5] = 0
                v[0] = 2
            if kind == "no_labels":
                v[:] = 0
            xs, ys = np.where(v > 0, xs, 0.0), np.where(v > 0, ys, 0.0)
            keypoints = np.stack([xs, ys, v], axis=1)
            area = w * h * (0.5 if kind != "tiny" else 1.0)
            ann = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "keypoints": keypoints.reshape(-1).tolist(),
                "num_keypoints": int((v > 0).sum()),
                "area": float(area),
                "bbox": [float(x), float(y), float(w), float(h)],
                "iscrowd": int(kind == "crowd"),
            }
            ann_id += 1
            annotations.append(ann)
            gts.append((keypoints, w, h))
        for keypoints, w, h in gts:  # a near-hit and a sloppy detection for every gt
            for noise in (0.01, 0.1):
                kp = keypoints.copy()
                kp[:, 0] += rng.normal(0, noise * w, num_joints)
                kp[:, 1] += rng.normal(0, noise * h, num_joints)
                kp[:, 2] = rng.uniform(0, 1, num_joints)
                detections.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "keypoints": kp.reshape(-1).tolist(),
                        "score": float(rng.uniform()),
                    }
                )
        for _ in range(3):  # background detections far from everything
            kp = np.stack([rng.uniform(0, 2000, num_joints), rng.uniform(0, 2000, num_joints), np.ones(num_joints)], 1)
            detections.append(
                {"image_id": image_id, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 0.01}
            )
    names = tuple(f"j{i}" for i in range(num_joints))
    dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(names), "skeleton": []}],
    }
    return dataset, detections


def _cocoeval_ious(dataset, detections, sigmas):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(dataset)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas)
        coco_eval.evaluate()
    return coco_eval


@pytest.mark.parametrize("num_joints", [17, 5])
def test_oks_matches_cocoeval(num_joints):
    rng = np.random.default_rng(num_joints)
    dataset, detections = _make_dataset(rng, num_joints)
    sigmas = COCO17.sigmas if num_joints == 17 else tuple(rng.uniform(0.02, 0.1, num_joints))
    names = tuple(f"j{i}" for i in range(num_joints))
    spec = COCO17 if num_joints == 17 else KeypointSpec("custom", names, (), range(num_joints), sigmas)
    coco_eval = _cocoeval_ious(dataset, detections, sigmas)
    values = []
    for image in dataset["images"]:
        reference = coco_eval.ious[(image["id"], 1)]
        gts = coco_eval._gts[image["id"], 1]
        dts = coco_eval._dts[image["id"], 1]
        dts = [dts[i] for i in np.argsort([-d["score"] for d in dts], kind="mergesort")]
        assert any(g["num_keypoints"] == 0 for g in gts) and any(g["iscrowd"] for g in gts)
        pred = torch.tensor([d["keypoints"] for d in dts], dtype=torch.float64).view(len(dts), num_joints, 3)
        gt = torch.tensor([g["keypoints"] for g in gts], dtype=torch.float64).view(len(gts), num_joints, 3)
        areas = torch.tensor([g["area"] for g in gts], dtype=torch.float64)
        boxes = torch.tensor([g["bbox"] for g in gts], dtype=torch.float64)
        ours = oks(pred, gt, areas, spec, gt_boxes=boxes)
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-6)
        values.append(reference.ravel())
    values = np.concatenate(values)
    # the comparison is not vacuous: high, low and intermediate values all occur
    assert values.size > 100 and values.max() > 0.9 and values.min() < 0.01
    assert ((values > 0.2) & (values < 0.8)).sum() >= 5


def test_oks_float32_and_numpy_inputs_agree_with_float64():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 100, (6, 17, 3))
    gt = np.concatenate([rng.uniform(0, 100, (4, 17, 2)), rng.integers(0, 3, (4, 17, 1))], axis=-1)
    gt[:, 0, 2] = 2
    areas = rng.uniform(100, 5000, 4)
    reference = oks(pred, gt, areas)
    assert reference.dtype == torch.float64
    single = oks(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32), areas)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), reference, rtol=0, atol=1e-6)
    # pred with or without the confidence column gives the same result
    torch.testing.assert_close(oks(pred[..., :2], gt, areas), reference)


def test_oks_is_differentiable_for_losses():
    gt = torch.tensor([[[10.0, 10.0, 2.0], [20.0, 30.0, 2.0]]])
    pred = torch.tensor([[[12.0, 11.0], [19.0, 33.0]]], requires_grad=True)
    value = oks(pred, gt, torch.tensor([400.0]), sigmas=[0.05, 0.08])
    (1 - value).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # moving towards the ground truth decreases the loss: the gradient points away from it
    assert pred.grad[0, 0, 0] > 0 and pred.grad[0, 1, 1] > 0


def test_oks_requires_sigmas_and_boxes():
    pred = torch.zeros(2, 5, 2)
    gt = torch.ones(1, 5, 3)
    with pytest.raises(InvalidInputError, match="sigmas"):
        oks(pred, gt, torch.ones(1))
    with pytest.raises(InvalidInputError, match="no OKS sigmas"):
        oks(pred, gt, torch.ones(1), sigmas=KeypointSpec("five", tuple("abcde"), (), range(5)))
    with pytest.raises(InvalidInputError, match="expected 5"):
        oks(pred, gt, torch.ones(1), sigmas=[0.1] * 4)
    unlabelled = torch.zeros(1, 5, 3)
    with pytest.raises(InvalidInputError, match="gt_boxes"):
        oks(pred, unlabelled, torch.ones(1), sigmas=[0.1] * 5)
    assert oks(torch.zeros(0, 17, 3), torch.ones(3, 17, 3), torch.ones(3)).shape == (0, 3)


def test_oks_nms_suppresses_duplicates_and_keeps_distinct():
    rng = np.random.default_rng(1)
    base = torch.tensor(rng.uniform(0, 100, (17, 2)))
    other = base + 300.0
    keypoints = torch.stack([base, base + 0.5, other, base + 40.0, other + 0.2])
    scores = torch.tensor([0.5, 0.9, 0.7, 0.8, 0.7])
    areas = torch.full((5,), 10000.0, dtype=torch.float64)
    keep = oks_nms(keypoints, scores, areas, threshold=0.9)
    # 1 beats its duplicate 0; 3 is far enough (OKS < 0.9) to stay; 2 and 4 tie, the lower index wins
    assert keep.tolist() == [1, 3, 2]
    assert oks_nms(keypoints, scores, areas, threshold=1.0).tolist() == [1, 3, 2, 4, 0]
    assert oks_nms(torch.zeros(0, 17, 3), torch.zeros(0), torch.zeros(0)).tolist() == []
    with pytest.raises(InvalidInputError, match="sigmas"):
        oks_nms(torch.zeros(2, 4, 2), torch.ones(2), torch.ones(2))


def test_instance_scores_follow_hrnet_rescoring():
    box = torch.tensor([0.9, 0.5, 1.0])
    kpts = torch.tensor([[0.1, 0.5, 0.7], [0.1, 0.2, 0.05], [1.0, 1.0, 0.3]])
    expected = torch.tensor([0.9 * 0.6, 0.0, (1.0 + 1.0 + 0.3) / 3])
    torch.testing.assert_close(instance_scores(box, kpts), expected)


def test_results_to_coco_and_writer(tmp_path):
    result = PoseResult(
        torch.tensor([[10.0, 20.0, 50.0, 100.0]]), torch.tensor([0.75]), torch.arange(51.0).view(1, 17, 3) / 7
    )
    coco = results_to_coco([result, PoseResult.empty(17)], [42, 43], bbox=True)
    assert len(coco) == 1
    entry = coco[0]
    assert entry["image_id"] == 42 and entry["category_id"] == 1
    assert entry["score"] == pytest.approx(0.75)
    assert all(isinstance(v, float) for v in entry["keypoints"]) and len(entry["keypoints"]) == 51
    assert entry["keypoints"][4] == pytest.approx(4 / 7)
    assert entry["bbox"] == pytest.approx([10.0, 20.0, 40.0, 80.0])
    path = write_coco_results(tmp_path / "sub" / "results.json", coco)
    assert json.loads(path.read_text()) == coco
    with pytest.raises(InvalidInputError):
        results_to_coco([result], [1, 2])


def _perfect_dataset():
    rng = np.random.default_rng(3)
    dataset, _ = _make_dataset(rng, 17, num_images=2)
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in dataset["annotations"]
        if a["num_keypoints"] > 0 and not a["iscrowd"]
    ]
    return dataset, perfect


def test_evaluate_coco_perfect_and_matches_direct_cocoeval(tmp_path):
    dataset, perfect = _perfect_dataset()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(dataset))
    pristine = copy.deepcopy((dataset, perfect))
    stats = evaluate_coco(path, perfect)
    assert tuple(stats) == COCO_STAT_NAMES
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    # inputs untouched (pycocotools writes into them), dict and COCO inputs give the same numbers
    assert evaluate_coco(dataset, perfect) == stats
    assert (dataset, perfect) == pristine
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert evaluate_coco(coco, perfect) == stats

    rng = np.random.default_rng(4)
    noisy = []
    for result in perfect:
        kp = np.asarray(result["keypoints"]).reshape(17, 3)
        kp[:, :2] += rng.normal(0, rng.uniform(1, 30), (17, 2))
        noisy.append({**result, "keypoints": kp.reshape(-1).tolist(), "score": float(rng.uniform())})
    ours = evaluate_coco(dataset, noisy)
    reference = _cocoeval_ious(dataset, noisy, COCO17.sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        reference.accumulate()
        reference.summarize()
    np.testing.assert_allclose([ours[k] for k in COCO_STAT_NAMES], reference.stats, atol=1e-12)
    assert 0 < ours["AP"] < 1


def test_evaluate_coco_is_silent(capsys):
    dataset, perfect = _perfect_dataset()
    evaluate_coco(dataset, perfect)
    assert capsys.readouterr().out == ""


def test_evaluate_coco_empty_results_gives_zeros():
    dataset, _ = _perfect_dataset()
    stats = evaluate_coco(dataset, [])
    assert stats["AP"] == 0.0 and stats["AR"] == 0.0
    assert all(value in (0.0, -1.0) for value in stats.values())


def test_evaluate_coco_custom_keypoint_set_needs_sigmas():
    rng = np.random.default_rng(5)
    dataset, detections = _make_dataset(rng, 5, num_images=1)
    with pytest.raises(InvalidInputError, match="sigmas"):
        evaluate_coco(dataset, detections)
    stats = evaluate_coco(dataset, detections, sigmas=[0.05] * 5)
    assert 0 <= stats["AP"] <= 1


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"images": [], "annotations": [], "categories": []}', "no annotations"),
        ('{"images": [{"id": 1}], "categories": [], "annotations": [{"id": 1, "image_id": 1}]}', "lacks"),
    ],
)
def test_evaluate_coco_bad_annotation_files(tmp_path, content, match):
    path = tmp_path / "ann.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=match):
        evaluate_coco(path, [])


def test_evaluate_coco_missing_file_and_bad_results(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        evaluate_coco(tmp_path / "missing.json", [])
    dataset, perfect = _perfect_dataset()
    with pytest.raises(InvalidInputError, match="not in the ground truth"):
        evaluate_coco(dataset, [{**perfect[0], "image_id": 999}])
    with pytest.raises(InvalidInputError, match="keypoint values"):
        evaluate_coco(dataset, [{**perfect[0], "keypoints": [1.0, 2.0, 3.0]}])
    with pytest.raises(InvalidInputError, match="lacks"):
        evaluate_coco(dataset, [{"image_id": 1}])


def _with_boxes(detections, grow: float):
    """The detections with a ``bbox``: their keypoints' extent grown by ``grow`` about its centre (a person box is
    wider than the joints it holds)."""
    boxed = []
    for d in detections:
        kp = np.asarray(d["keypoints"]).reshape(-1, 3)
        (x0, y0), (x1, y1) = kp[:, :2].min(0), kp[:, :2].max(0)
        w, h = (x1 - x0) * grow, (y1 - y0) * grow
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        boxed.append({**d, "bbox": [float(cx - w / 2), float(cy - h / 2), float(w), float(h)]})
    return boxed


def _pycocotools_stats(dataset, detections):
    coco_eval = _cocoeval_ious(dataset, detections, COCO17.sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.accumulate()
        coco_eval.summarize()
    return dict(zip(COCO_STAT_NAMES, coco_eval.stats, strict=True))


def test_results_are_scored_as_the_official_evaluators_write_them_without_bbox():
    # TransPose (lib/dataset/coco.py:417-426) and YOLO-Pose (test.py:212-218) write no bbox, so pycocotools takes a
    # result's area from its keypoints; with a bbox it takes the box area, which moves the medium/large columns.
    dataset, detections = _make_dataset(np.random.default_rng(7), 17, num_images=6)
    boxed = _with_boxes(detections, grow=1.5)
    official = _pycocotools_stats(dataset, detections)
    with_bbox = _pycocotools_stats(dataset, boxed)
    assert with_bbox["AP"] == pytest.approx(official["AP"], abs=1e-12)  # the "all" range ignores areas
    assert abs(with_bbox["APM"] - official["APM"]) > 0.01 and abs(with_bbox["APL"] - official["APL"]) > 0.01
    # recall counts matched ground truth only; a result's area decides only whether an *unmatched* result is
    # ignored in a range (COCOeval.evaluateImg), so ARM / ARL do not depend on it
    assert (with_bbox["ARM"], with_bbox["ARL"]) == (official["ARM"], official["ARL"])
    ours = evaluate_coco(dataset, boxed)  # a bbox in the results does not change posezoo's numbers
    np.testing.assert_allclose([ours[k] for k in COCO_STAT_NAMES], [official[k] for k in COCO_STAT_NAMES], atol=1e-12)
    assert all("area" not in d for d in boxed)  # the inputs stay untouched

    result = PoseResult(torch.tensor([[10.0, 20.0, 50.0, 100.0]]), torch.tensor([0.75]), torch.ones(1, 17, 3))
    assert set(results_to_coco(result, 3)[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert "bbox" in result.to_coco(3)[0]  # predict's predictions.json keeps its boxes
