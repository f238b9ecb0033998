import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posecommon import DatasetError, KeypointSpec
from posecommon.data import load_coco_keypoints, split_coco_file

SPEC3 = KeypointSpec.from_flip_pairs("toy3", ("left_hand", "right_hand", "head"), ((0, 2), (1, 2)), ((0, 1),))


def _dataset() -> dict:
    dataset = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 32, "height": 24},
            {"id": 2, "file_name": "b.png", "width": 20, "height": 16},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "bbox": [2, 3, 10, 12], "keypoints": [4, 5, 2, 8, 9, 1, 0, 0, 0], "iscrowd": 0},
            {"id": 11, "image_id": 1, "bbox": [20, 2, 30, 30], "keypoints": [25, 6, 2, 0, 0, 0, 22, 3, 2]},
            {"id": 12, "image_id": 2, "bbox": [1, 1, 5, 5], "keypoints": [0] * 9, "iscrowd": 0},
            {"id": 13, "image_id": 2, "bbox": [0, 0, 20, 16], "keypoints": [3, 3, 2] * 3, "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": ["left_hand", "right_hand", "head"]}],
    }
    for ann in dataset["annotations"]:
        ann["category_id"] = 1
    return dataset


def _write(tmp_path: Path, dataset: dict | str, images: bool = True) -> Path:
    ann = tmp_path / "ann.json"
    ann.write_text(dataset if isinstance(dataset, str) else json.dumps(dataset))
    if images:
        for record in json.loads(ann.read_text()).get("images", []):
            size = (record.get("width", 8), record.get("height", 8))
            Image.new("RGB", size, (10, 20, 30)).save(tmp_path / record["file_name"])
    return ann


def test_valid_file_records_and_skips(tmp_path, caplog):
    ann = _write(tmp_path, _dataset())
    with caplog.at_level(logging.WARNING, logger="posecommon.data.coco"):  # what the CLI shows
        data = load_coco_keypoints(ann, tmp_path, SPEC3)
    assert [r.image_id for r in data.images] == [1, 2]
    persons = data.all_persons()
    assert [p.annotation_id for p in persons] == [10, 11]
    assert data.skipped == {"too_few_keypoints": 1, "crowd": 1}
    [record] = caplog.records
    assert record.levelno == logging.WARNING and str(ann) in record.getMessage()
    assert record.getMessage().endswith(
        "kept 2 of 4 person annotations; skipped 1 crowd (crowd regions (iscrowd=1)), 1 too_few_keypoints (fewer "
        "than 1 labelled keypoint(s))"
    )
    first = persons[0]
    assert first.keypoints.shape == (3, 3) and first.keypoints.dtype == np.float32
    assert first.keypoints[1].tolist() == [8, 9, 1]
    assert first.bbox == (2.0, 3.0, 10.0, 12.0) and first.area == 120.0
    # the second box sticks out of the 32x24 image and is clipped to its area [-0.5, 31.5] x [-0.5, 23.5]
    assert persons[1].bbox_xyxy == (20.0, 2.0, 31.5, 23.5)
    assert data.coco.getAnnIds(imgIds=[1]) == [10, 11]  # the pycocotools index covers the whole file
    image = data.load_image(1)
    assert image.shape == (3, 24, 32) and image[:, 0, 0].tolist() == [10, 20, 30]


def test_min_keypoints_zero_keeps_boxes_without_keypoints(tmp_path):
    data = load_coco_keypoints(_write(tmp_path, _dataset()), tmp_path, SPEC3, min_keypoints=0)
    assert [p.annotation_id for p in data.all_persons()] == [10, 11, 12]
    assert data.skipped == {"crowd": 1}


def test_malformed_json_names_file_and_position(tmp_path):
    ann = _write(tmp_path, '{"images": [], "annotations": [}', images=False)
    with pytest.raises(DatasetError, match=r"ann\.json: malformed JSON at line 1, column 32"):
        load_coco_keypoints(ann, tmp_path, SPEC3)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match=r"annotation file not found: .*nope\.json"):
        load_coco_keypoints(tmp_path / "nope.json", tmp_path, SPEC3)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("annotations"), r"has no 'annotations': an image-info file .*predict_coco_results"),
        (lambda d: d["images"][1].pop("width"), r"image id 2: missing key 'width'"),
        (lambda d: d["annotations"][1].pop("keypoints"), r"annotation id 11 \(image id 1\): missing key 'keypoints'"),
        (lambda d: d["annotations"][2].pop("category_id"), r"annotation id 12 \(image id 2\): missing key 'category_"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"annotation id 10 .*negative width"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2, 5] * 3), r"annotation id 10 .*flags must be 0, 1 or 2"),
        (lambda d: d["annotations"][0].update(id=11), r"annotation id 11: duplicate annotation id"),
        (lambda d: d["categories"][0].update(keypoints=["a", "b"]), r"category id 1 declares 2 keypoint names"),
    ],
)
def test_malformed_records_name_the_record(tmp_path, mutate, message):
    dataset = _dataset()
    mutate(dataset)
    with pytest.raises(DatasetError, match=message) as info:
        load_coco_keypoints(_write(tmp_path, dataset), tmp_path, SPEC3)
    assert "ann.json" in str(info.value)


def test_wrong_keypoints_length(tmp_path):
    dataset = _dataset()
    dataset["annotations"][1]["keypoints"] = [1, 2, 2] * 17  # a COCO-17 record in a 3-joint file
    with pytest.raises(DatasetError, match=r"ann\.json: annotation id 11 \(image id 1\): 'keypoints' has 51 values, "):
        load_coco_keypoints(_write(tmp_path, dataset), tmp_path, SPEC3)


def test_annotation_pointing_at_missing_image_record(tmp_path):
    dataset = _dataset()
    dataset["annotations"][0]["image_id"] = 99
    with pytest.raises(DatasetError, match=r"ann\.json: annotation id 10: image id 99 has no record in 'images'"):
        load_coco_keypoints(_write(tmp_path, dataset), tmp_path, SPEC3)


def test_missing_image_file_is_reported_at_construction(tmp_path):
    ann = _write(tmp_path, _dataset())
    (tmp_path / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image file\(s\) missing: .*b\.png \(image id 2\)"):
        load_coco_keypoints(ann, tmp_path, SPEC3)
    # without the construction-time check, the error comes when the image is read, naming file and record
    data = load_coco_keypoints(ann, tmp_path, SPEC3, check_files=False)
    with pytest.raises(DatasetError, match=r"ann\.json: image id 2 \(.*b\.png\): image file not found"):
        data.load_image(2)


def test_image_size_disagreeing_with_record(tmp_path):
    ann = _write(tmp_path, _dataset())
    Image.new("RGB", (21, 16)).save(tmp_path / "b.png")
    data = load_coco_keypoints(ann, tmp_path, SPEC3)
    with pytest.raises(DatasetError, match=r"image id 2: .*b\.png is 21x16 \(WxH\) but the record says 20x16"):
        data.load_image(2)


def test_category_filter(tmp_path):
    dataset = _dataset()
    dataset["annotations"][1]["category_id"] = 2
    data = load_coco_keypoints(_write(tmp_path, dataset), tmp_path, SPEC3, category_id=1)
    assert [p.annotation_id for p in data.all_persons()] == [10]
    assert data.skipped["category"] == 1


def test_split_coco_file(tmp_path):
    dataset = _dataset()
    dataset["images"] += [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in range(3, 11)]
    ann = _write(tmp_path, dataset, images=False)
    train, val = split_coco_file(ann, tmp_path / "split", val_fraction=0.3, seed=1)
    train_data, val_data = json.loads(train.read_text()), json.loads(val.read_text())
    train_ids = {im["id"] for im in train_data["images"]}
    val_ids = {im["id"] for im in val_data["images"]}
    assert len(val_ids) == 3 and train_ids | val_ids == set(range(1, 11)) and not train_ids & val_ids
    assert all(a["image_id"] in train_ids for a in train_data["annotations"])
    assert all(a["image_id"] in val_ids for a in val_data["annotations"])
    assert len(train_data["annotations"]) + len(val_data["annotations"]) == 4
    assert train_data["categories"] == val_data["categories"] == dataset["categories"]
    assert split_coco_file(ann, tmp_path / "again", val_fraction=0.3, seed=1)[1].read_text() == val.read_text()


@pytest.mark.parametrize("file_name", ["../outside.png", "sub/../../outside.png", "ABSOLUTE", "", "C:/outside.png"])
def test_file_names_must_stay_inside_the_image_directory(tmp_path, file_name):
    images = tmp_path / "images"
    images.mkdir()
    outside = tmp_path / "outside.png"
    Image.new("RGB", (32, 24)).save(outside)  # exists: only the containment check can refuse it
    dataset = _dataset()
    dataset["images"][0]["file_name"] = str(outside) if file_name == "ABSOLUTE" else file_name
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(dataset))
    Image.new("RGB", (20, 16)).save(images / "b.png")
    with pytest.raises(DatasetError, match=r"ann\.json: image id 1: file_name .* leaves the image directory"):
        load_coco_keypoints(ann, images, SPEC3, check_files=False)


def test_nested_relative_file_names_are_fine(tmp_path):
    dataset = _dataset()
    dataset["images"][0]["file_name"] = "train/a.png"
    (tmp_path / "train").mkdir()
    Image.new("RGB", (32, 24)).save(tmp_path / "train" / "a.png")
    data = load_coco_keypoints(_write(tmp_path, dataset, images=False), tmp_path, SPEC3, check_files=False)
    assert data.image(1).path == tmp_path / "train" / "a.png"


def test_a_dataset_with_nothing_left_is_an_error_that_says_why(tmp_path):
    dataset = _dataset()
    for ann in dataset["annotations"]:
        ann["iscrowd"] = 1
    dataset["annotations"][0]["iscrowd"] = 0
    dataset["annotations"][0]["keypoints"] = [0] * 9
    ann = _write(tmp_path, dataset)
    with pytest.raises(DatasetError) as info:
        load_coco_keypoints(ann, tmp_path, SPEC3)
    assert str(info.value) == (
        f"{ann}: no usable person annotation (2 image(s)): all 4 annotation(s) were skipped: 3 crowd (crowd regions "
        "(iscrowd=1)), 1 too_few_keypoints (fewer than 1 labelled keypoint(s)). Check the file, the keypoint spec and "
        "the category filter."
    )
    assert load_coco_keypoints(ann, tmp_path, SPEC3, allow_empty=True).all_persons() == []
    dataset["annotations"] = []
    with pytest.raises(DatasetError, match=r"no usable person annotation \(2 image\(s\)\): it has no annotations"):
        load_coco_keypoints(_write(tmp_path, dataset), tmp_path, SPEC3)


def test_training_datasets_get_the_typed_error(tmp_path):
    from posecommon.data import MultiPersonCocoDataset, TopDownCocoDataset

    dataset = _dataset()
    for ann in dataset["annotations"]:
        ann["keypoints"] = [0] * 9
    with pytest.raises(DatasetError, match="no usable person annotation"):
        TopDownCocoDataset(_write(tmp_path, dataset), tmp_path, (64, 48), SPEC3)
    dataset["annotations"] = []
    with pytest.raises(DatasetError, match="it has no annotations"):
        MultiPersonCocoDataset(_write(tmp_path, dataset), tmp_path, 64, SPEC3)


def test_an_empty_annotation_file_says_so(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text("")
    with pytest.raises(DatasetError, match=r"ann\.json: the annotation file is empty \(0 bytes\)"):
        load_coco_keypoints(ann, tmp_path, SPEC3)
