"""YOLO-Pose-format keypoint datasets (``images/`` + ``labels/`` trees of text files), converted to COCO JSON.

Layout, as YOLO-Pose (``utils/datasets.py:343-346`` on branch yolo-pose of TexasInstruments/edgeai-yolov5) and
the YOLO family's pose tools use it::

    ROOT/images/<split>/**/<name>.<jpg|jpeg|png|bmp|tif|tiff|webp>
    ROOT/labels/<split>/**/<name>.txt        # same relative path, extension .txt

Each non-blank line of a label file is one person: ``cls cx cy w h`` then, per joint, ``x y v`` (YOLO-Pose's
format, 5 + 3K values, ``datasets.py:496``) or ``x y`` (5 + 2K values). Every coordinate is normalised to
``[0, 1]`` by the image width (x) or height (y); ``cls`` must be 0 (person); ``v`` is COCO's flag 0, 1 or 2.
A joint is labelled when ``v > 0`` (three values) or when ``(x, y) != (0, 0)`` (two values, which then count as
visible, ``v = 2``). YOLO-Pose itself drops ``v`` and treats ``x != 0`` as labelled (``datasets.py:500-504``,
``utils/loss.py:143``); for files written from COCO (unlabelled joints ``0 0 0``) both readings agree.

:func:`yolo_split_to_coco` validates a split and writes it as a COCO keypoints file, so that training
(:class:`~posecommon.data.MultiPersonCocoDataset`) and pycocotools evaluation run unchanged:

- images: ids 1, 2, ... in sorted path order; ``file_name`` relative to ``images/<split>``; ``width`` and
  ``height`` read from the image header (PIL, no decoding; no EXIF rotation, as :func:`posecommon.load_image`).
- annotations: pixel coordinates are the normalised ones times the width/height, which inverts the usual
  COCO -> YOLO conversion exactly; ``bbox = [cx - w/2, cy - h/2, w, h]``; ``area = w * h`` (the box area: the
  format has no segmentation, so OKS uses the box area as its scale where COCO's own files use the segment area);
  unlabelled joints ``(0, 0, 0)``; ``num_keypoints`` the labelled count; ``iscrowd = 0``; ``category_id = 1``.

What is an error and what is kept:

- :class:`~posecommon.errors.DatasetError` naming the file, the line and what is wrong: a wrong number of values,
  a value that is not a finite number, a class other than 0, a coordinate outside ``[0, 1]``, a negative box
  side, a flag outside ``{0, 1, 2}``, a duplicated line (YOLO-Pose rejects those too, ``datasets.py:510``), an
  unreadable file; also an image whose header cannot be read, and a split with no images.
- Kept: an empty label file (an image without persons, ``datasets.py:511-513``) and an image with no label file
  at all (YOLO-Pose also keeps it as an image without persons, ``datasets.py:515-517``); the latter are counted and
  logged at WARNING, as are label files without an image (ignored).

:func:`prepare_yolo_splits` converts the train and validation splits into a cache directory (a training run's
``data/``), reusing earlier files while the dataset's file list, sizes and modification times are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from ..keypoints import KeypointSpec
from ..measure.progress import track

__all__ = [
    "IMAGE_SUFFIXES",
    "YOLO_PREFIX",
    "YoloSplits",
    "find_yolo_root",
    "prepare_yolo_splits",
    "read_yolo_label_file",
    "yolo_split_to_coco",
]

logger = logging.getLogger(__name__)

YOLO_PREFIX = "yolo:"
"""``--data yolo:DIR`` names a YOLO-format root explicitly."""
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
"""Image file suffixes looked for under ``images/<split>`` (case-insensitive; YOLO-Pose's list,
``utils/datasets.py:29``, without the camera-raw and multi-picture formats PIL does not decode)."""
_CONVERTER_VERSION = "1"


@dataclass(frozen=True)
class YoloSplits:
    """COCO files written for a YOLO-format dataset and the image directories they refer to."""

    train_ann: Path
    train_images: Path
    val_ann: Path
    val_images: Path


def find_yolo_root(data: str | Path) -> Path | None:
    """The YOLO-format root that ``--data`` names, or ``None`` for any other kind of data.

    ``"yolo:DIR"`` names one explicitly; a directory with ``images/`` and ``labels/`` subdirectories and no
    ``annotations/`` (which would make it a COCO root) is detected as one.

    Raises:
        DatasetError: ``"yolo:DIR"`` where DIR lacks ``images/`` or ``labels/``.
    """
    text = str(data)
    if text.startswith(YOLO_PREFIX):
        root = Path(text[len(YOLO_PREFIX) :])
        missing = [str(root / name) for name in ("images", "labels") if not (root / name).is_dir()]
        if missing:
            raise DatasetError(
                f"--data {text}: not a YOLO-format dataset, missing {missing}. Expected images/<split>/ and "
                "labels/<split>/ folders with one .txt label file per image"
            )
        return root
    root = Path(text)
    if (root / "images").is_dir() and (root / "labels").is_dir() and not (root / "annotations").is_dir():
        return root
    return None


def _parse_line(text: str, where: str, num_joints: int) -> tuple[list[float], list[list[float]]]:
    """``([cx, cy, w, h], [[x, y, v], ...])`` of one label line, all normalised."""
    fields = text.split()
    per_joint = {5 + 3 * num_joints: 3, 5 + 2 * num_joints: 2}.get(len(fields))
    if per_joint is None:
        raise DatasetError(
            f"{where}: {len(fields)} values, expected {5 + 3 * num_joints} (cls cx cy w h + {num_joints} x (x y v)) "
            f"or {5 + 2 * num_joints} (cls cx cy w h + {num_joints} x (x y))"
        )
    try:
        values = [float(field) for field in fields]
    except ValueError as err:
        raise DatasetError(f"{where}: not a number: {err}") from err
    if not all(math.isfinite(v) for v in values):
        raise DatasetError(f"{where}: NaN or infinite value")
    if values[0] != 0:
        raise DatasetError(f"{where}: class {fields[0]}: only class 0 (person) is supported")
    box = values[1:5]
    if box[2] < 0 or box[3] < 0:
        raise DatasetError(f"{where}: negative box width or height {box[2:]}")
    joints = [values[5 + per_joint * k : 5 + per_joint * (k + 1)] for k in range(num_joints)]
    coordinates = box + [c for joint in joints for c in joint[:2]]
    if not all(0.0 <= c <= 1.0 for c in coordinates):
        raise DatasetError(f"{where}: coordinates must be normalised to [0, 1] by the image size, got {coordinates}")
    if per_joint == 3:
        flags = sorted({joint[2] for joint in joints} - {0.0, 1.0, 2.0})
        if flags:
            raise DatasetError(f"{where}: visibility flags must be 0, 1 or 2, got {flags}")
        joints = [joint if joint[2] > 0 else [0.0, 0.0, 0.0] for joint in joints]
    else:
        joints = [[x, y, 2.0] if (x, y) != (0.0, 0.0) else [0.0, 0.0, 0.0] for x, y in joints]
    return box, joints


def read_yolo_label_file(path: str | Path, num_joints: int) -> list[tuple[list[float], list[list[float]]]]:
    """Parse and validate one label file (see the module docstring for the format).

    Args:
        path: The ``.txt`` file.
        num_joints: K.

    Returns:
        One ``([cx, cy, w, h], [[x, y, v]] * K)`` per person, normalised, unlabelled joints ``[0, 0, 0]``.

    Raises:
        DatasetError: the file cannot be read or a line is malformed (the message names file and line number).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read label file: {err}") from err
    persons = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        persons.append(_parse_line(line, where, num_joints))
        key = " ".join(line.split())
        if key in seen:
            raise DatasetError(f"{where}: duplicates line {seen[key]}")
        seen[key] = number
    return persons


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read the image header: {err}") from err


def _list_split(root: Path, split: str) -> tuple[Path, Path, list[Path], list[Path]]:
    """The image and label folders of ``split`` and their files (images sorted, relative to their folder)."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    images = sorted(
        p.relative_to(image_dir) for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    labels = sorted(p.relative_to(label_dir) for p in label_dir.rglob("*.txt")) if label_dir.is_dir() else []
    return image_dir, label_dir, images, labels


def yolo_split_to_coco(
    root: str | Path, split: str, keypoint_spec: KeypointSpec, out_file: str | Path, progress: bool = True
) -> Path:
    """Validate ``ROOT/images/<split>`` + ``ROOT/labels/<split>`` and write them as a COCO keypoints file.

    Args:
        root: The dataset root.
        split: Folder name of the split under ``images/`` and ``labels/``.
        keypoint_spec: Keypoint set: K, and the joint names and skeleton written to ``categories``.
        out_file: The COCO JSON to write (its directory is created).
        progress: Show a progress bar.

    Returns:
        ``out_file``; the images it lists are relative to ``ROOT/images/<split>``.

    Raises:
        DatasetError: see the module docstring.
    """
    root, out_file = Path(root), Path(out_file)
    image_dir, label_dir, image_paths, label_paths = _list_split(root, split)
    if not image_paths:
        raise DatasetError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found for split {split!r}")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    unlabelled = 0
    listed = track(image_paths, f"read YOLO labels of {split}", "image", disable=not progress)
    for image_id, relative in enumerate(listed, start=1):
        width, height = _image_size(image_dir / relative)
        images.append({"id": image_id, "file_name": relative.as_posix(), "width": width, "height": height})
        label_file = (label_dir / relative).with_suffix(".txt")
        if not label_file.is_file():
            unlabelled += 1
            continue
        for box, joints in read_yolo_label_file(label_file, keypoint_spec.num_joints):
            w, h = box[2] * width, box[3] * height
            keypoints = [c for x, y, v in joints for c in (x * width, y * height, v)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [box[0] * width - w / 2, box[1] * height - h / 2, w, h],
                    "area": w * h,
                    "keypoints": keypoints,
                    "num_keypoints": sum(1 for joint in joints if joint[2] > 0),
                    "iscrowd": 0,
                }
            )
    with_image = {p.with_suffix("") for p in image_paths}
    orphans = sum(1 for p in label_paths if p.with_suffix("") not in with_image)
    if unlabelled:
        logger.warning(
            "%s: %d of %d images have no label file; kept as images without persons",
            image_dir,
            unlabelled,
            len(image_paths),
        )
    if orphans:
        logger.warning("%s: %d label files have no image under %s; ignored", label_dir, orphans, image_dir)
    category = {
        "id": 1,
        "name": "person",
        "keypoints": list(keypoint_spec.names),
        "skeleton": [[a + 1, b + 1] for a, b in keypoint_spec.skeleton],
    }
    dataset = {
        "info": {"description": f"converted by posezoo from the YOLO-format split {image_dir}"},
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(dataset), encoding="utf-8")
    logger.info("%s: %d images, %d persons -> %s", image_dir, len(images), len(annotations), out_file)
    return out_file


def _fingerprint(root: Path, split: str, keypoint_spec: KeypointSpec) -> str:
    """Hash of the split's file list, sizes and modification times, K and the converter version."""
    digest = hashlib.sha256(f"{_CONVERTER_VERSION}|{keypoint_spec.names}|{root.resolve()}|{split}".encode())
    image_dir, label_dir, images, labels = _list_split(root, split)
    for folder, files in ((image_dir, images), (label_dir, labels)):
        for relative in files:
            stat = os.stat(folder / relative)
            digest.update(f"{folder.name}/{relative.as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _resolve_split(root: Path, split: str) -> str:
    """``split`` if ``images/<split>`` exists, else ``train``/``val`` for ``train2017``/``val2017``-style names."""
    candidates = [split] + ([split.removesuffix("2017")] if split.endswith("2017") else [])
    for candidate in candidates:
        if (root / "images" / candidate).is_dir():
            return candidate
    looked = ", ".join(str(root / "images" / c) for c in candidates)
    raise DatasetError(f"YOLO-format data under {root}: no split folder {looked} (pass --train-split/--val-split)")


def prepare_yolo_splits(
    root: str | Path,
    cache_dir: str | Path,
    keypoint_spec: KeypointSpec,
    train_split: str = "train2017",
    val_split: str = "val2017",
) -> YoloSplits:
    """Convert a YOLO-format dataset's train and validation splits to COCO files in ``cache_dir`` (or reuse them).

    A split named ``train2017`` / ``val2017`` (the COCO defaults) falls back to ``train`` / ``val`` when only those
    folders exist. The files are ``cache_dir/yolo_<split>.json``, each with a ``.fingerprint`` beside it; they are
    rewritten when the split's files change.

    Raises:
        DatasetError: a split folder is missing, or the data is malformed (see the module docstring).
    """
    root, cache_dir = Path(root), Path(cache_dir)
    paths = []
    for split in (train_split, val_split):
        split = _resolve_split(root, split)
        out_file = cache_dir / f"yolo_{split}.json"
        marker = out_file.with_suffix(".fingerprint")
        fingerprint = _fingerprint(root, split, keypoint_spec)
        if not (out_file.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == fingerprint):
            yolo_split_to_coco(root, split, keypoint_spec, out_file)
            marker.write_text(fingerprint, encoding="utf-8")
        paths += [out_file, root / "images" / split]
    return YoloSplits(*paths)
