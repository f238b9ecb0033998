import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posecommon import COCO17, KeypointSpec
from posecommon.data import generate_synthetic_coco, generate_synthetic_splits, load_coco_keypoints


def _files(result) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(result.image_dir.iterdir())}
    files["ann"] = result.ann_file.read_bytes()
    return files


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    kwargs = {"num_images": 4, "image_size": (96, 80), "max_people": 3}
    a = _files(generate_synthetic_coco(tmp_path / "a", seed=7, **kwargs))
    b = _files(generate_synthetic_coco(tmp_path / "b", seed=7, **kwargs))
    c = _files(generate_synthetic_coco(tmp_path / "c", seed=8, **kwargs))
    assert a == b
    assert a.keys() == c.keys() and a["ann"] != c["ann"]
    assert all(a[name] != c[name] for name in a if name != "ann")
    # image i depends only on (seed, split, i): a longer run starts with the same images
    longer = _files(generate_synthetic_coco(tmp_path / "d", seed=7, **{**kwargs, "num_images": 5}))
    assert all(longer[name] == a[name] for name in a if name != "ann")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return generate_synthetic_coco(
        root, 24, image_size=(128, 112), min_image_size=(96, 80), max_people=4, seed=3, image_format="png"
    )


def test_annotations_are_consistent(synthetic):
    dataset = json.loads(synthetic.ann_file.read_text())
    images = {im["id"]: im for im in dataset["images"]}
    assert len(images) == 24 and synthetic.num_annotations == len(dataset["annotations"]) >= 24
    assert dataset["categories"][0]["keypoints"] == list(COCO17.names)
    assert dataset["categories"][0]["skeleton"] == [[a + 1, b + 1] for a, b in COCO17.skeleton]
    assert {(im["width"], im["height"]) for im in images.values()} != {(112, 128)}  # sizes vary
    flags = []
    for ann in dataset["annotations"]:
        image = images[ann["image_id"]]
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        labelled = kpts[:, 2] > 0
        flags += kpts[:, 2].tolist()
        assert ann["num_keypoints"] == labelled.sum() and ann["iscrowd"] == 0
        assert 0 < ann["area"] <= w * h
        assert min(x, y) >= -0.5 and x + w <= image["width"] - 0.5 and y + h <= image["height"] - 0.5
        px, py = kpts[labelled, 0], kpts[labelled, 1]
        assert ((px >= x) & (px <= x + w) & (py >= y) & (py <= y + h)).all()  # labelled joints inside the box
        assert (np.floor(px + 0.5) >= 0).all() and (np.floor(px + 0.5) < image["width"]).all()
        assert (kpts[~labelled] == 0).all()
    counts = np.bincount(np.asarray(flags, dtype=int), minlength=3)
    assert counts[2] > counts[1] > 0 and counts[0] > 0  # visible, occluded by a later person, and cut off
    # every file exists and has its declared size: the loader accepts the split as real COCO data
    data = load_coco_keypoints(synthetic.ann_file, synthetic.image_dir)
    assert data.load_image(1).shape[1:] == (images[1]["height"], images[1]["width"])


def test_cocoeval_scores_ground_truth_as_perfect(synthetic):
    dataset = json.loads(synthetic.ann_file.read_text())
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in dataset["annotations"]
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(synthetic.ann_file))
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_custom_keypoint_subset_and_splits(tmp_path):
    spec = KeypointSpec.from_flip_pairs(
        "upper4", ("neck", "left_wrist", "right_wrist", "head_top"), ((0, 3),), ((1, 2),)
    )
    splits = generate_synthetic_splits(tmp_path, 2, 2, seed=0, keypoint_spec=spec, image_size=(64, 64))
    train = json.loads(splits["train"].ann_file.read_text())
    val = json.loads(splits["val"].ann_file.read_text())
    assert all(len(a["keypoints"]) == 12 for a in train["annotations"] + val["annotations"])
    assert train["categories"][0]["skeleton"] == [[1, 4]]
    assert splits["train"].image_dir.name == "train" and splits["val"].image_dir.name == "val"
    assert (splits["train"].image_dir / "000000000001.jpg").read_bytes() != (
        splits["val"].image_dir / "000000000001.jpg"
    ).read_bytes()
    load_coco_keypoints(splits["val"].ann_file, splits["val"].image_dir, spec)


def test_unknown_joint_name_is_rejected(tmp_path):
    spec = KeypointSpec("odd", ("nose", "tail"), (), (0, 1))
    with pytest.raises(ValueError, match=r"no points named \['tail'\]"):
        generate_synthetic_coco(tmp_path, 1, keypoint_spec=spec)
