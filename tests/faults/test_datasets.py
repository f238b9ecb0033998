"""COCO- and YOLO-format data faults: ``posezoo evaluate`` on a tiny COCO split, ``posezoo train`` on broken roots.

Each case starts from a valid two-image COCO split (:func:`coco_split`) and breaks one thing; the refusal is one
line naming the file (and the record), before any image is predicted or any step is trained.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .http_faults import png_declaring


def _jpeg(size: tuple[int, int] = (48, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 90, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _person(annotation_id: int, image_id: int) -> dict[str, Any]:
    keypoints = []
    for joint in range(17):
        keypoints += [10.0 + joint, 12.0 + joint * 2, 2]
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [5.0, 5.0, 30.0, 50.0],
        "area": 1500.0,
        "num_keypoints": 17,
        "keypoints": keypoints,
    }


def coco_split(root: Path, split: str = "val") -> dict[str, Any]:
    """Two 48x64 images with one person each, under ``root/<split>/`` and ``root/annotations/``."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images = []
    for image_id in (1, 2):
        name = f"{image_id:03d}.jpg"
        (root / split / name).write_bytes(_jpeg())
        images.append({"id": image_id, "file_name": name, "width": 48, "height": 64})
    return {
        "images": images,
        "annotations": [_person(1, 1), _person(2, 2)],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}],
    }


def _evaluate(edit: Callable[[dict[str, Any], Path], Any] | None = None, text: str | bytes | None = None) -> Callable:
    """``posezoo evaluate`` of the tiny pose model on a split that ``edit(dataset, image_dir)`` (or ``text``)
    breaks."""

    def setup(ws: Workspace) -> list[str]:
        root = ws.path("coco")
        dataset = coco_split(root)
        replaced = edit(dataset, root / "val") if edit is not None else None
        ann = root / "annotations" / "person_keypoints_val.json"
        if isinstance(text, bytes):
            ann.write_bytes(text)
        elif text is not None:
            ann.write_text(text)
        elif replaced is not Ellipsis:
            ann.write_text(json.dumps(replaced if replaced is not None else dataset))
        results = ws.out / "results.json"
        return ["evaluate", "--weights", ws.extra["pose"], "--ann", ann, "--images", root / "val", "--results", results]

    return setup


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def edit(dataset: dict[str, Any], root: Path) -> None:
        *parents, last = path.split(".")
        target: Any = dataset
        for name in parents:
            target = target[int(name)] if name.isdigit() else target[name]
        target[int(last) if last.isdigit() else last] = value

    return edit


def _keypoint(value: Any) -> Callable[[dict[str, Any], Path], None]:
    def edit(dataset: dict[str, Any], root: Path) -> None:
        dataset["annotations"][0]["keypoints"][0] = value

    return edit


def _nan_keypoint(dataset: dict[str, Any], images: Path) -> Any:
    ann = images.parent / "annotations" / f"person_keypoints_{images.name}.json"
    ann.write_text(json.dumps(dataset).replace('"keypoints": [10.0', '"keypoints": [NaN', 1))
    return Ellipsis


def _corrupt_image(dataset: dict[str, Any], images: Path) -> None:
    (images / "001.jpg").write_bytes(b"\xff\xd8 broken")


def _huge_image(dataset: dict[str, Any], images: Path) -> None:
    (images / "001.jpg").write_bytes(png_declaring(12000, 12000))


def _missing_image(dataset: dict[str, Any], images: Path) -> None:
    (images / "002.jpg").unlink()


def _duplicate_image(dataset: dict[str, Any], root: Path) -> None:
    dataset["images"].append(dict(dataset["images"][0]))


def _orphan_annotation(dataset: dict[str, Any], root: Path) -> None:
    dataset["annotations"].append({**_person(3, 99)})


def _evaluate_images_missing(ws: Workspace) -> list[str]:
    argv = _evaluate()(ws)
    argv[argv.index("--images") + 1] = str(ws.path("no-images"))
    return argv


def _evaluate_det_json(text: str) -> Callable[[Workspace], list[str]]:
    def setup(ws: Workspace) -> list[str]:
        detections = ws.write("detections.json", text)
        return [*_evaluate()(ws), "--det-json", str(detections)]

    return setup


def _train_on(make: Callable[[Path], None]) -> Callable[[Workspace], list[str]]:
    """``posezoo train`` on a data root ``make`` builds, refused before any step."""

    def setup(ws: Workspace) -> list[str]:
        root = ws.path("data")
        make(root)
        return ["train", "vttranspose_h_s", "--data", root, "--out", ws.out, "--steps", "1", "--batch-size", "1",
                "--input-size", "32", "24", "--workers", "0", "--backbone-weights", "none"]  # fmt: skip

    return setup


def _coco_root(edit: Callable[[dict[str, Any], Path], None] | None = None) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        for split in ("train2017", "val2017"):
            dataset = coco_split(root, split)
            if edit is not None and split == "train2017":
                edit(dataset, root / "train2017")
            (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(dataset))

    return make


def _no_val(root: Path) -> None:
    _coco_root()(root)
    (root / "annotations" / "person_keypoints_val2017.json").unlink()


def _yolo_root(line: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        for split in ("train", "val"):
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
            (root / "images" / split / "a.jpg").write_bytes(_jpeg())
            good = "0 0.5 0.5 0.5 0.5 " + " ".join("0.5 0.5 2" for _ in range(17))
            (root / "labels" / split / "a.txt").write_text((line if split == "train" else good) + "\n")

    return make


GOOD_JOINTS = " ".join("0.5 0.5 2" for _ in range(17))

CASES = [
    fault_case("ann-empty", _evaluate(text=""), 2, "is empty"),
    fault_case("ann-not-json", _evaluate(text="{images: ["), 2, "malformed JSON"),
    fault_case("ann-nested-100000", _evaluate(text="[" * 100000 + "]" * 100000), 2, "nested too deeply"),
    fault_case("ann-a-list", _evaluate(text="[]"), 2, "must be a JSON object"),
    fault_case("ann-binary", _evaluate(text=b"\xff\xfe\x00garbage"), 2, "cannot read annotation file"),
    fault_case("no-images-key", _evaluate(lambda d, r: d.pop("images") and None), 2, "images"),
    fault_case("image-without-id", _evaluate(lambda d, r: d["images"][0].pop("id") and None), 2, "id"),
    fault_case("image-width-text", _evaluate(_set("images.0.width", "wide")), 2, "width"),
    fault_case("image-width-zero", _evaluate(_set("images.0.width", 0)), 2, "width"),
    fault_case("file-name-absolute", _evaluate(_set("images.0.file_name", "/etc/passwd")), 2, "leaves the image"),
    fault_case("file-name-dotdot", _evaluate(_set("images.0.file_name", "../../x.jpg")), 2, "leaves the image"),
    fault_case("image-file-missing", _evaluate(_missing_image), 2, "missing"),
    fault_case("duplicate-image-id", _evaluate(_duplicate_image), 2, "duplicate"),
    fault_case("annotation-of-unknown-image", _evaluate(_orphan_annotation), 2, "99"),
    fault_case("keypoints-too-few", _evaluate(_set("annotations.0.keypoints", [1, 2, 2])), 2, "keypoints"),
    fault_case("keypoint-1e308", _evaluate(_keypoint(1e308)), 2, "beyond"),
    fault_case("keypoint-nan", _evaluate(_nan_keypoint), 2, "NaN"),
    fault_case("keypoint-text", _evaluate(_keypoint("x")), 2, "keypoints"),
    fault_case("visibility-3", _evaluate(_set("annotations.0.keypoints.2", 3)), 2, "visibility"),
    fault_case("bbox-negative", _evaluate(_set("annotations.0.bbox", [1, 1, -5, 5])), 2, "bbox"),
    fault_case("bbox-three-values", _evaluate(_set("annotations.0.bbox", [1, 1, 5])), 2, "bbox"),
    fault_case("category-joint-count", _evaluate(_set("categories.0.keypoints", ["a"])), 2, "keypoint names"),
    fault_case("images-dir-missing", _evaluate_images_missing, 2, "no-images"),
    fault_case("det-json-not-json", _evaluate_det_json("[{"), 2, "detection"),
    fault_case("det-json-nested", _evaluate_det_json("[" * 100000 + "]" * 100000), 2, "nested too deeply"),
    fault_case("det-json-object", _evaluate_det_json("{}"), 2, "JSON list"),
    fault_case("image-corrupt", _evaluate(_corrupt_image), 2, "001.jpg"),
    fault_case("image-12000x12000", _evaluate(_huge_image), 2, "over posezoo's limit"),
    # training data, refused before the first step
    fault_case("train-root-missing", lambda ws: _train_on(lambda r: None)(ws), 2, "no such directory"),
    fault_case("train-no-val-split", _train_on(_no_val), 2, "incomplete"),
    fault_case("train-keypoint-1e308", _train_on(_coco_root(_keypoint(1e308))), 2, "beyond"),
    fault_case("train-image-missing", _train_on(_coco_root(_missing_image)), 2, "missing"),
    fault_case("train-not-coco", _train_on(lambda r: r.mkdir()), 2, "incomplete"),
    fault_case("yolo-too-few-values", _train_on(_yolo_root("0 0.5 0.5")), 2, "values, expected"),
    fault_case("yolo-outside-image", _train_on(_yolo_root("0 1.5 0.5 0.5 0.5 " + GOOD_JOINTS)), 2, "normalised"),
    fault_case("yolo-class-1", _train_on(_yolo_root("1 0.5 0.5 0.5 0.5 " + GOOD_JOINTS)), 2, "class"),
    fault_case("yolo-nan", _train_on(_yolo_root("0 nan 0.5 0.5 0.5 " + GOOD_JOINTS)), 2, "NaN"),
    fault_case("yolo-visibility-5", _train_on(_yolo_root("0 0.5 0.5 0.5 0.5 " + "0.5 0.5 5 " * 17)), 2, "visibility"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_dataset_fault(setup, code, message, lines, unchanged, workspace, models):
    workspace.extra.update({name: str(path) for name, path in models.items()})
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command=argv[0], lines=lines, unchanged=unchanged)
    assert not (workspace.out / "checkpoints").exists()  # refused before the first step
