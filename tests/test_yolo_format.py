"""YOLO-Pose-format datasets (images/ + labels/ text files): validation, conversion to COCO JSON, caching, training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posecommon.app.cli import main
from posecommon.data import load_coco_keypoints
from posecommon.data.synthetic import generate_synthetic_coco
from posecommon.data.yolo_format import find_yolo_root, prepare_yolo_splits, read_yolo_label_file, yolo_split_to_coco
from posecommon.errors import DatasetError
from posecommon.keypoints import COCO17

K = 17


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


def _line(box: tuple[float, ...], joints: list[tuple[float, ...]]) -> str:
    values = [0, *box] + [v for joint in joints for v in joint]
    return " ".join(f"{v:.6g}" for v in values)


def _label(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


JOINTS_A = [(0.5, 0.25, 2.0), (0.0, 0.0, 0.0)] + [(0.25, 0.75, 1.0)] * (K - 2)


def _tree(root: Path) -> None:
    """images/train: a.jpg (40 x 20) with two persons, b.png (16 x 16) with an empty label file, sub/c.jpg with no label
    file; a label file without image; images/val: v.jpg with one person in the two-value-per-joint format."""
    _image(root / "images" / "train" / "a.jpg", 40, 20)
    _image(root / "images" / "train" / "b.png", 16, 16)
    _image(root / "images" / "train" / "sub" / "c.jpg", 24, 24)
    _label(
        root / "labels" / "train" / "a.txt",
        [_line((0.5, 0.5, 0.5, 0.8), JOINTS_A), "", _line((0.25, 0.5, 0.1, 0.2), [(0.0, 0.0, 0.0)] * K)],
    )
    _label(root / "labels" / "train" / "b.txt", [])
    _label(root / "labels" / "train" / "orphan.txt", [_line((0.5, 0.5, 0.1, 0.1), [(0.0, 0.0, 0.0)] * K)])
    _image(root / "images" / "val" / "v.jpg", 32, 32)
    _label(root / "labels" / "val" / "v.txt", [_line((0.5, 0.5, 0.5, 0.5), [(0.5, 0.5)] + [(0.0, 0.0)] * (K - 1))])


def test_split_converts_to_coco_by_hand(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _tree(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = yolo_split_to_coco(tmp_path, "train", COCO17, tmp_path / "out" / "train.json", progress=False)
    assert "1 of 3 images have no label file" in caplog.text and "1 label files have no image" in caplog.text
    dataset = json.loads(out.read_text())
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in dataset["images"]] == [
        (1, "a.jpg", 40, 20),
        (2, "b.png", 16, 16),
        (3, "sub/c.jpg", 24, 24),
    ]
    first, second = dataset["annotations"]
    # a.jpg is 40 x 20: box (0.5, 0.5, 0.5, 0.8) -> centre (20, 10), size 20 x 16 -> [10, 2, 20, 16].
    assert first["bbox"] == [10.0, 2.0, 20.0, 16.0] and first["area"] == 320.0 and first["image_id"] == 1
    assert first["keypoints"][:9] == [20.0, 5.0, 2.0, 0.0, 0.0, 0.0, 10.0, 15.0, 1.0]
    assert first["num_keypoints"] == K - 1 and first["iscrowd"] == 0 and first["category_id"] == 1
    assert second["bbox"] == pytest.approx([8.0, 8.0, 4.0, 4.0]) and second["num_keypoints"] == 0
    assert dataset["categories"][0]["keypoints"] == list(COCO17.names)
    loaded = load_coco_keypoints(out, tmp_path / "images" / "train", COCO17, min_keypoints=0)
    assert [r.file_name for r in loaded.images] == ["a.jpg", "b.png", "sub/c.jpg"]
    assert len(loaded.persons[1]) == 2 and 2 not in loaded.persons


def test_two_values_per_joint_are_visible_when_non_zero(tmp_path: Path) -> None:
    _tree(tmp_path)
    dataset = json.loads(yolo_split_to_coco(tmp_path, "val", COCO17, tmp_path / "v.json", progress=False).read_text())
    (person,) = dataset["annotations"]
    assert person["keypoints"][:6] == [16.0, 16.0, 2.0, 0.0, 0.0, 0.0] and person["num_keypoints"] == 1


def test_coco_round_trip(tmp_path: Path) -> None:
    split = generate_synthetic_coco(tmp_path / "coco", 2, image_size=(48, 64), max_people=2, seed=1, split="s")
    coco = json.loads(split.ann_file.read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    for image in coco["images"]:
        stem = Path(image["file_name"])
        _image(tmp_path / "yolo" / "images" / "s" / stem, image["width"], image["height"])
        lines = []
        for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            w, h = sizes[ann["image_id"]]
            x, y, bw, bh = ann["bbox"]
            kpts = np.asarray(ann["keypoints"], dtype=float).reshape(K, 3)
            joints = [(kx / w, ky / h, v) for kx, ky, v in kpts]
            lines.append(_line(((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h), joints))
        _label((tmp_path / "yolo" / "labels" / "s" / stem).with_suffix(".txt"), lines)
    back = json.loads(
        yolo_split_to_coco(tmp_path / "yolo", "s", COCO17, tmp_path / "b.json", progress=False).read_text()
    )
    originals = sorted(coco["annotations"], key=lambda a: (a["image_id"], a["id"]))
    assert len(back["annotations"]) == len(originals) > 0
    for mine, original in zip(back["annotations"], originals, strict=True):
        np.testing.assert_allclose(mine["bbox"], original["bbox"], atol=1e-3)
        labelled = np.asarray(original["keypoints"]).reshape(K, 3)[:, 2] > 0
        np.testing.assert_allclose(
            np.asarray(mine["keypoints"]).reshape(K, 3)[labelled],
            np.asarray(original["keypoints"]).reshape(K, 3)[labelled],
            atol=1e-3,
        )


GOOD = _line((0.5, 0.5, 0.2, 0.2), [(0.5, 0.5, 2.0)] * K)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, "0 0.5 0.5 0.2"], ":2: 4 values, expected 56"),
        ([GOOD.replace("0.2", "abc", 1)], ":1: not a number"),
        ([GOOD.replace("0.2", "nan", 1)], ":1: NaN"),
        (["1" + GOOD[1:]], ":1: class 1: only class 0"),
        ([GOOD.replace("0.2", "1.5", 1)], ":1: coordinates must be normalised"),
        ([GOOD.replace("0.2", "-0.2", 1)], ":1: negative box"),
        ([GOOD.replace(" 2", " 3", 1)], ":1: visibility flags must be 0, 1 or 2, got [3.0]"),
        (["", GOOD, GOOD], ":3: duplicates line 2"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "x.txt"
    _label(path, lines)
    with pytest.raises(DatasetError) as raised:
        read_yolo_label_file(path, K)
    assert f"{path}{message}" in str(raised.value)


def test_find_yolo_root(tmp_path: Path) -> None:
    _tree(tmp_path / "y")
    assert find_yolo_root(f"yolo:{tmp_path / 'y'}") == tmp_path / "y"
    assert find_yolo_root(tmp_path / "y") == tmp_path / "y"
    (tmp_path / "y" / "annotations").mkdir()
    assert find_yolo_root(tmp_path / "y") is None  # a COCO root that also has YOLO labels stays COCO
    assert find_yolo_root("synthetic") is None
    with pytest.raises(DatasetError, match="missing"):
        find_yolo_root(f"yolo:{tmp_path}")


def test_prepare_splits_caches_until_the_data_changes(tmp_path: Path) -> None:
    _tree(tmp_path)
    splits = prepare_yolo_splits(tmp_path, tmp_path / "cache", COCO17)  # train2017/val2017 fall back to train/val
    assert splits.train_ann == tmp_path / "cache" / "yolo_train.json"
    assert splits.val_images == tmp_path / "images" / "val"
    splits.train_ann.write_text("{}")  # a cache hit leaves the (here clobbered) file alone
    prepare_yolo_splits(tmp_path, tmp_path / "cache", COCO17)
    assert splits.train_ann.read_text() == "{}"
    _label(tmp_path / "labels" / "train" / "b.txt", [GOOD])  # the data changed: converted again
    prepare_yolo_splits(tmp_path, tmp_path / "cache", COCO17)
    assert len(json.loads(splits.train_ann.read_text())["annotations"]) == 3
    with pytest.raises(DatasetError, match="no split folder"):
        prepare_yolo_splits(tmp_path, tmp_path / "cache", COCO17, train_split="nope")


@pytest.mark.slow
def test_train_command_on_a_yolo_dataset(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    args = ["train", "vttranspose_h_s", "--data", f"yolo:{tmp_path / 'data'}", "--out", str(tmp_path / "run")]
    args += ["--steps", "1", "--batch-size", "1", "--input-size", "64", "48"]  # one person with keypoints
    args += ["--backbone-weights", "none"]  # offline: no ImageNet download (the default on real data)
    assert main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["after"]["step"] == 1
    assert (tmp_path / "run" / "data" / "yolo_train.json").is_file()
