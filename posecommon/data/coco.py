"""Loading and validating COCO-format keypoint annotation files (shared by both training datasets).

A COCO keypoints file is a JSON object with ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox`` = ``[x, y, w, h]``, ``keypoints`` =
``[x, y, v] * K``, optional ``iscrowd``, ``area``, ``num_keypoints``) and optionally ``categories``.
:func:`load_coco_keypoints` checks every record it uses and raises :class:`~posecommon.errors.DatasetError`
naming the file and the record (image id or annotation id) for anything malformed, then indexes the records with
pycocotools' ``COCO``.

What is an error and what is skipped:

- Errors (the file cannot be trusted): unreadable or malformed JSON; a missing or mistyped key; ``keypoints``
  whose length is not ``3 * K``; a visibility flag outside ``{0, 1, 2}``; a non-finite number; a negative box side;
  an annotation whose ``image_id`` has no image record; a duplicate image or annotation id; a category whose
  ``keypoints`` list has a length other than K; a ``file_name`` that would leave ``image_dir`` (an absolute path, a
  ``..`` component, a drive or an empty name: annotation files are data from elsewhere, and must not make posezoo
  read arbitrary files); (with ``check_files=True``, the default) an image record whose file does not exist under
  ``image_dir``; and a file in which no person annotation is left after the skips below (unless
  ``allow_empty=True``), since it has nothing to train or evaluate on; the message gives the skip counts. All
  files are checked at construction so that a training run fails before its first step, not hours into it. A
  file that exists but cannot be decoded, or whose size disagrees with its record, raises when it is loaded
  (:meth:`CocoKeypoints.load_image`).
- Skipped, counted in :attr:`CocoKeypoints.skipped` and logged at WARNING level with the reasons (the CLI shows
  WARNING and above): crowd annotations (``iscrowd = 1``), annotations of another category than ``category_id``
  (when one is given), boxes with zero width or height after clipping to the image, and annotations with fewer
  than ``min_keypoints`` labelled keypoints (``v > 0``). The top-down dataset uses ``min_keypoints = 1`` (a crop
  with no labelled joint teaches nothing); the multi-person dataset uses 1 in training too (YOLO-Pose trains on
  the persons having keypoint annotation, ``README.md:66`` of edgeai-yolov5 branch yolo-pose) and 0 in
  evaluation.

Coordinates follow posezoo's pixel-centre convention (see :mod:`posecommon.ops.geometry`): keypoints and boxes are used
as written in the file, in original-image pixels; boxes are clipped to the image area ``[-0.5, W - 0.5] x [-0.5,
H - 0.5]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from ..errors import BadImageError, DatasetError
from ..keypoints import COCO17, KeypointSpec
from .decode import read_bgr, rgb_planes

__all__ = ["CocoKeypoints", "ImageRecord", "PersonRecord", "load_coco_keypoints", "split_coco_file"]

logger = logging.getLogger(__name__)

SKIP_REASONS: dict[str, str] = {
    "crowd": "crowd regions (iscrowd=1)",
    "category": "another category",
    "empty_box": "box empty after clipping to the image",
    "too_few_keypoints": "fewer labelled keypoints than min_keypoints",
}
"""What each key of :attr:`CocoKeypoints.skipped` means (used in the logged and raised messages)."""


@dataclass(frozen=True)
class ImageRecord:
    """One ``images`` entry.

    Args:
        image_id: COCO image id.
        file_name: ``file_name`` as written in the annotation file.
        path: ``image_dir / file_name``.
        width: Declared width in pixels.
        height: Declared height in pixels.
    """

    image_id: int
    file_name: str
    path: Path
    width: int
    height: int


@dataclass(frozen=True, eq=False)
class PersonRecord:
    """One kept person annotation, in original-image pixels.

    Args:
        annotation_id: COCO annotation id.
        image_id: Id of the image the person is in.
        bbox: ``(x, y, w, h)`` box clipped to the image area.
        keypoints: ``(K, 3)`` float32 array of ``(x, y, v)``; ``v`` is COCO's flag (0 unlabelled, 1 labelled but
            occluded, 2 labelled and visible).
        area: The annotation's ``area`` (segment area, used as OKS scale), or ``w * h`` of the box when absent.
    """

    annotation_id: int
    image_id: int
    bbox: tuple[float, float, float, float]
    keypoints: np.ndarray
    area: float

    @property
    def num_labelled(self) -> int:
        """Number of keypoints with ``v > 0``."""
        return int((self.keypoints[:, 2] > 0).sum())

    @property
    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)`` of :attr:`bbox`."""
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)


@dataclass
class CocoKeypoints:
    """A validated COCO keypoints file: image records, person records per image and skip counts.

    Build it with :func:`load_coco_keypoints`.

    Args:
        ann_file: The annotation file.
        image_dir: Directory the ``file_name`` entries are relative to.
        keypoint_spec: Keypoint set of the annotations.
        coco: pycocotools index over the whole file (also usable as COCOeval ground truth).
        images: Image records, sorted by id (all images, including those without kept persons).
        persons: Kept person annotations per image id, in file order.
        skipped: Counts of skipped annotations by reason (``"crowd"``, ``"category"``, ``"empty_box"``,
            ``"too_few_keypoints"``).
        annotated: False for an image-info file (``images`` only, no ``annotations`` key, such as COCO's
            ``image_info_test-dev2017.json``), read with ``require_annotations=False``.
    """

    ann_file: Path
    image_dir: Path
    keypoint_spec: KeypointSpec
    coco: COCO
    images: list[ImageRecord]
    persons: dict[int, list[PersonRecord]]
    skipped: dict[str, int] = field(default_factory=dict)
    annotated: bool = True

    def __post_init__(self) -> None:
        self._by_id = {record.image_id: record for record in self.images}

    def image(self, image_id: int) -> ImageRecord:
        """The record of ``image_id``."""
        return self._by_id[image_id]

    def all_persons(self) -> list[PersonRecord]:
        """Every kept person, ordered by image (as in :attr:`images`) then file order."""
        return [person for record in self.images for person in self.persons.get(record.image_id, [])]

    def load_image(self, image_id: int) -> torch.Tensor:
        """Read an image file as an RGB ``uint8`` tensor (decoded with OpenCV as the official loaders,
        :func:`~posecommon.data.decode.read_bgr`).

        Args:
            image_id: Id of the image record.

        Returns:
            ``(3, H, W)`` uint8 tensor with ``H, W`` equal to the record's ``height, width``.

        Raises:
            DatasetError: the file is missing or cannot be decoded, or its size disagrees with the record.
        """
        record = self._by_id[image_id]
        try:
            image = rgb_planes(read_bgr(record.path))
        except BadImageError as err:
            raise DatasetError(f"{self.ann_file}: image id {image_id} ({record.path}): {err}") from err
        if tuple(image.shape[1:]) != (record.height, record.width):
            raise DatasetError(
                f"{self.ann_file}: image id {image_id}: {record.path} is {image.shape[2]}x{image.shape[1]} (WxH) but "
                f"the record says {record.width}x{record.height}"
            )
        return image


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: the annotation file is empty (0 bytes); expected a COCO keypoints JSON object")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except (UnicodeDecodeError, OSError) as err:
        raise DatasetError(f"{path}: cannot read annotation file: {err}") from err


def _require(record: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in record:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise DatasetError(f"{where}: {key!r} has the wrong type ({type(value).__name__}: {value!r:.60})")
    return value


def _numbers(values: Any, length: int | None, key: str, where: str) -> np.ndarray:
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise DatasetError(f"{where}: {key!r} must be a list of numbers")
    if length is not None and len(values) != length:
        raise DatasetError(f"{where}: {key!r} has {len(values)} values, expected {length}")
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise DatasetError(f"{where}: {key!r} contains NaN or infinite values")
    return array


def _contained_path(image_dir: Path, file_name: str, where: str) -> Path:
    """``image_dir / file_name``, refusing names that would leave ``image_dir`` (checked on the name, not on disk).

    The check is lexical, so an image directory that is itself a symbolic link (or holds links), as is common for
    shared dataset storage, keeps working.
    """
    posix, windows = PurePosixPath(file_name), PureWindowsPath(file_name)
    if (
        not file_name.strip()
        or "\x00" in file_name
        or posix.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or windows.root
        or ".." in windows.parts
    ):
        raise DatasetError(
            f"{where}: file_name {file_name!r} leaves the image directory (absolute path, drive, '..' or empty "
            "name); file names must be relative paths inside the image directory"
        )
    return image_dir / file_name


def _validate_images(dataset: dict[str, Any], path: Path, image_dir: Path, check_files: bool) -> list[ImageRecord]:
    images = _require(dataset, "images", list, f"{path}: top level")
    records: dict[int, ImageRecord] = {}
    missing: list[ImageRecord] = []
    for index, raw in enumerate(images):
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: images[{index}] is not an object")
        image_id = _require(raw, "id", int, f"{path}: images[{index}]")
        where = f"{path}: image id {image_id}"
        file_name = _require(raw, "file_name", str, where)
        width = _require(raw, "width", int, where)
        height = _require(raw, "height", int, where)
        if width <= 0 or height <= 0:
            raise DatasetError(f"{where}: width and height must be positive, got {width}x{height}")
        if image_id in records:
            raise DatasetError(f"{where}: duplicate image id")
        record = ImageRecord(image_id, file_name, _contained_path(image_dir, file_name, where), width, height)
        records[image_id] = record
        if check_files and not record.path.is_file():
            missing.append(record)
    if missing:
        listed = ", ".join(f"{r.path} (image id {r.image_id})" for r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{path}: {len(missing)} image file(s) missing: {listed}{more}")
    return sorted(records.values(), key=lambda r: r.image_id)


def _validate_categories(dataset: dict[str, Any], path: Path, num_joints: int) -> None:
    categories = dataset.get("categories", [])
    if not isinstance(categories, list):
        raise DatasetError(f"{path}: 'categories' must be a list")
    for index, raw in enumerate(categories):
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: categories[{index}] is not an object")
        category_id = _require(raw, "id", int, f"{path}: categories[{index}]")
        names = raw.get("keypoints")
        if names is not None and (not isinstance(names, list) or len(names) != num_joints):
            count = len(names) if isinstance(names, list) else type(names).__name__
            raise DatasetError(
                f"{path}: category id {category_id} declares {count} keypoint names, but the keypoint spec has "
                f"{num_joints} joints"
            )


def _parse_person(
    raw: dict[str, Any], where: str, image: ImageRecord, num_joints: int
) -> tuple[PersonRecord | None, str | None]:
    """A person record, or ``None`` with the skip reason for an empty box (other checks are done by the caller)."""
    bbox = _numbers(_require(raw, "bbox", list, where), 4, "bbox", where)
    if bbox[2] < 0 or bbox[3] < 0:
        raise DatasetError(f"{where}: bbox {bbox.tolist()} has a negative width or height")
    keypoints = _numbers(_require(raw, "keypoints", list, where), 3 * num_joints, "keypoints", where)
    keypoints = keypoints.reshape(num_joints, 3)
    flags = keypoints[:, 2]
    if not np.isin(flags, (0, 1, 2)).all():
        raise DatasetError(f"{where}: keypoint visibility flags must be 0, 1 or 2, got {sorted(set(flags.tolist()))}")
    x1 = max(bbox[0], -0.5)
    y1 = max(bbox[1], -0.5)
    x2 = min(bbox[0] + bbox[2], image.width - 0.5)
    y2 = min(bbox[1] + bbox[3], image.height - 0.5)
    if x2 <= x1 or y2 <= y1:
        return None, "empty_box"
    area = raw.get("area")
    if area is None:
        area = bbox[2] * bbox[3]
    elif isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
        raise DatasetError(f"{where}: 'area' must be a non-negative number, got {area!r:.60}")
    record = PersonRecord(
        annotation_id=raw["id"],
        image_id=image.image_id,
        bbox=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
        keypoints=keypoints.astype(np.float32),
        area=float(area),
    )
    return record, None


def load_coco_keypoints(
    ann_file: str | Path,
    image_dir: str | Path,
    keypoint_spec: KeypointSpec = COCO17,
    min_keypoints: int = 1,
    category_id: int | None = None,
    check_files: bool = True,
    allow_empty: bool = False,
    require_annotations: bool = True,
) -> CocoKeypoints:
    """Read, validate and index a COCO keypoints annotation file (see the module docstring for the rules).

    Args:
        ann_file: Path of the JSON annotation file.
        image_dir: Directory holding the images named by ``file_name``.
        keypoint_spec: Keypoint set; every annotation must have ``3 * K`` keypoint values.
        min_keypoints: Annotations with fewer labelled keypoints (``v > 0``) are skipped and counted.
        category_id: Keep only annotations of this category (COCO keypoint files hold one, ``person``); ``None``
            keeps all.
        check_files: Check at construction that every image file exists.
        allow_empty: Accept a file in which no person annotation is kept (otherwise an error that gives the skip
            counts).
        require_annotations: With False, an image-info file (``images`` but no ``annotations`` key; ``categories``
            optional), such as COCO's ``image_info_test-dev2017.json``, is accepted as images without persons
            (:attr:`CocoKeypoints.annotated` is False). That is enough to predict on its images (TransPose reads
            the test-dev image-info file the same way, ``lib/dataset/coco.py:113-121``, and skips the evaluation,
            ``:361-367``); training and evaluation need annotations.

    Returns:
        The validated records.

    Raises:
        DatasetError: the file or a record is malformed, a ``file_name`` leaves ``image_dir``, an image file is
            missing, no person annotation is left, or (with ``require_annotations``) the file has no
            ``annotations``; the message names the file and the record.
    """
    path = Path(ann_file)
    image_dir = Path(image_dir)
    dataset = _read_json(path)
    if not isinstance(dataset, dict):
        raise DatasetError(f"{path}: top level must be a JSON object, got {type(dataset).__name__}")
    num_joints = keypoint_spec.num_joints
    images = _validate_images(dataset, path, image_dir, check_files)
    by_id = {record.image_id: record for record in images}
    _validate_categories(dataset, path, num_joints)
    annotated = "annotations" in dataset
    if not annotated and require_annotations:
        raise DatasetError(
            f"{path} has no 'annotations': an image-info file (such as image_info_test-dev2017.json) holds images "
            "only, so there is nothing to train on or to score against. To write results for its images (e.g. for "
            "the COCO evaluation server) use `posezoo evaluate ... --results FILE` (with --det-json for a top-down "
            "model) or posecommon.evaluation.predict_coco_results."
        )
    annotations = _require(dataset, "annotations", list, f"{path}: top level") if annotated else []

    persons: dict[int, list[PersonRecord]] = {}
    skipped: Counter[str] = Counter()
    seen_ids: set[int] = set()
    for index, raw in enumerate(annotations):
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: annotations[{index}] is not an object")
        annotation_id = _require(raw, "id", int, f"{path}: annotations[{index}]")
        where = f"{path}: annotation id {annotation_id}"
        if annotation_id in seen_ids:
            raise DatasetError(f"{where}: duplicate annotation id")
        seen_ids.add(annotation_id)
        image_id = _require(raw, "image_id", int, where)
        if image_id not in by_id:
            raise DatasetError(f"{where}: image id {image_id} has no record in 'images'")
        where = f"{where} (image id {image_id})"
        crowd = raw.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise DatasetError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r:.60}")
        category = _require(raw, "category_id", int, where)
        if category_id is not None and category != category_id:
            skipped["category"] += 1
            continue
        if crowd:  # crowd regions carry no per-person keypoints; COCOeval ignores them too
            skipped["crowd"] += 1
            continue
        record, reason = _parse_person(raw, where, by_id[image_id], num_joints)
        if record is None:
            skipped[str(reason)] += 1
        elif record.num_labelled < min_keypoints:
            skipped["too_few_keypoints"] += 1
        else:
            persons.setdefault(image_id, []).append(record)

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress messages
        coco.createIndex()
    kept = sum(len(v) for v in persons.values())
    if not annotated:
        logger.info("%s: an image-info file, %d images without annotations", path, len(images))
        return CocoKeypoints(path, image_dir, keypoint_spec, coco, images, {}, {}, annotated=False)
    _report(path, len(images), len(annotations), kept, skipped, min_keypoints, allow_empty)
    return CocoKeypoints(path, image_dir, keypoint_spec, coco, images, persons, dict(skipped))


def _describe_skips(skipped: Mapping[str, int], min_keypoints: int) -> str:
    reasons = dict(SKIP_REASONS, too_few_keypoints=f"fewer than {min_keypoints} labelled keypoint(s)")
    return ", ".join(f"{count} {key} ({reasons.get(key, key)})" for key, count in sorted(skipped.items()))


def _report(
    path: Path,
    num_images: int,
    num_annotations: int,
    kept: int,
    skipped: Mapping[str, int],
    min_keypoints: int,
    allow_empty: bool,
) -> None:
    """Log the skip counts (WARNING when anything was skipped) and refuse a file with no person left."""
    if kept == 0 and not allow_empty:
        why = (
            f"all {num_annotations} annotation(s) were skipped: {_describe_skips(skipped, min_keypoints)}"
            if num_annotations
            else "it has no annotations"
        )
        raise DatasetError(
            f"{path}: no usable person annotation ({num_images} image(s)): {why}. Check the file, the keypoint "
            "spec and the category filter."
        )
    if skipped:
        logger.warning(
            "%s: %d images, kept %d of %d person annotations; skipped %s",
            path,
            num_images,
            kept,
            num_annotations,
            _describe_skips(skipped, min_keypoints),
        )
    else:
        logger.info("%s: %d images, kept all %d person annotations", path, num_images, kept)


def split_coco_file(
    ann_file: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.1,
    seed: int = 0,
    names: Sequence[str] = ("train", "val"),
) -> tuple[Path, Path]:
    """Split a COCO annotation file by image into two files that share the original image directory.

    Images are shuffled with a seeded permutation; the first ``round(val_fraction * num_images)`` (at least one,
    at most all but one) go to the second split. Each annotation follows its image; every other top-level key
    (``info``, ``categories``, ...) is copied to both files.

    Args:
        ann_file: COCO annotation file to split.
        out_dir: Directory for the two new files, named ``person_keypoints_{name}.json``.
        val_fraction: Fraction of images in the second split.
        seed: Seed of the permutation.
        names: Names of the two splits.

    Returns:
        Paths of the first (train) and second (val) annotation files.

    Raises:
        DatasetError: the file is malformed or has fewer than two images.
        ValueError: ``val_fraction`` is not in ``(0, 1)``.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    path = Path(ann_file)
    dataset = _read_json(path)
    if not isinstance(dataset, dict):
        raise DatasetError(f"{path}: top level must be a JSON object, got {type(dataset).__name__}")
    images = _require(dataset, "images", list, f"{path}: top level")
    annotations = _require(dataset, "annotations", list, f"{path}: top level")
    if len(images) < 2:
        raise DatasetError(f"{path}: needs at least two images to split, has {len(images)}")
    num_val = min(max(round(val_fraction * len(images)), 1), len(images) - 1)
    order = np.random.default_rng(seed).permutation(len(images))
    val_ids = {images[i]["id"] for i in order[:num_val].tolist()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, in_val in zip(names, (False, True), strict=True):
        part = dict(dataset)
        part["images"] = [image for image in images if (image["id"] in val_ids) == in_val]
        part["annotations"] = [ann for ann in annotations if (ann.get("image_id") in val_ids) == in_val]
        target = out / f"person_keypoints_{name}.json"
        target.write_text(json.dumps(part), encoding="utf-8")
        written.append(target)
    return written[0], written[1]
