"""Multi-person training/evaluation dataset for single-stage models (DRSI-Net, YOLO-Pose): letterboxed images with
box + keypoint targets, mosaic, flip, translate and scale (the DRSI-Net paper's recipe, section 4.2).

All coordinates follow posezoo's pixel-centre convention (:mod:`posecommon.ops.geometry`): an ``S``-pixel input spans
``[-0.5, S - 0.5]``.

Evaluation (``train=False``): the image is letterboxed (:func:`posecommon.ops.letterbox.letterbox`: resized to fit
``S x S`` keeping its aspect ratio, padded at the bottom/right with ``pad_value``), exactly as at inference; the
sample carries the :class:`~posecommon.ops.letterbox.LetterboxInfo` so that predictions map back to original-image
pixels with :func:`~posecommon.ops.letterbox.unletterbox_points` / :func:`~posecommon.ops.letterbox.unletterbox_boxes`.

Training, as YOLO-Pose (branch ``yolo-pose`` of edgeai-yolov5, ``utils/datasets.py``): mosaic, scale and
translate, HSV gains on OpenCV's 8-bit HSV channels, flip; the geometry composes to one axis-aligned map per source
image, rendered in one antialiased resample (:mod:`posecommon.data.tiles`). Training keeps persons with at least one
labelled keypoint (``min_keypoints``), evaluation every non-crowd person. The steps with the official line numbers,
the target rules, the order of random draws and where posezoo differs from the official code on purpose are in
docs/design/drsinet.md ("Multi-person training data").

Images are **not normalised**: ``image`` is ``uint8`` ``(3, S, S)``; the model's
:class:`~posecommon.preprocess.PreprocessConfig` normalises. ``pad_value`` should equal that config's
``pad_value`` so that training and inference padding agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import BadImageError, DatasetError
from ..keypoints import COCO17, KeypointSpec
from ..ops.letterbox import LetterboxInfo, letterbox, letterbox_info, letterbox_points
from .augment import hflip_boxes, hflip_keypoints, mark_outside, rand_uniform
from .coco import CocoKeypoints, load_coco_keypoints
from .decode import read_bgr, rgb_planes
from .hsv import augment_hsv_, draw_hsv_gains
from .tiles import TilePlacement, compose_tiles

__all__ = ["MultiPersonCocoDataset"]


class _Targets:
    """Boxes ``(N, 4)`` xyxy, keypoints ``(N, K, 3)`` and unclipped box areas ``(N,)`` of one (partial) image, as
    float32 numpy arrays (a handful of rows: numpy's per-call cost is a fraction of torch's here)."""

    def __init__(self, boxes: np.ndarray, keypoints: np.ndarray, areas: np.ndarray) -> None:
        self.boxes = boxes
        self.keypoints = keypoints
        self.areas = areas

    @staticmethod
    def cat(parts: list[_Targets], num_joints: int) -> _Targets:
        if not parts:
            empty = np.zeros(0, dtype=np.float32)
            return _Targets(empty.reshape(0, 4), empty.reshape(0, num_joints, 3), empty)
        return _Targets(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.areas for p in parts]),
        )

    def affine(self, scale: tuple[float, float], offset: tuple[float, float]) -> _Targets:
        """``x' = x * scale_x + offset_x`` (per axis) for boxes and labelled keypoints; areas scale along."""
        factor = np.array(scale, dtype=np.float32)
        shift = np.array(offset, dtype=np.float32)
        corners = self.boxes.reshape(-1, 2, 2) * factor + shift
        keypoints = self.keypoints.copy()
        labelled = keypoints[..., 2] > 0
        keypoints[labelled, :2] = keypoints[labelled, :2] * factor + shift
        return _Targets(corners.reshape(-1, 4), keypoints, self.areas * np.float32(scale[0] * scale[1]))

    def clip(self, region: tuple[float, float, float, float]) -> _Targets:
        """Clip boxes to ``region`` = ``(x1, y1, x2, y2)`` and unlabel keypoints outside it."""
        x1, y1, x2, y2 = region
        boxes = np.clip(self.boxes, np.array((x1, y1, x1, y1), np.float32), np.array((x2, y2, x2, y2), np.float32))
        return _Targets(boxes, mark_outside(self.keypoints, region), self.areas)

    def flipped(self, width: int, flip_indices: tuple[int, ...]) -> _Targets:
        """Mirrored left-right in an image ``width`` pixels wide, left/right joints swapped."""
        keypoints = hflip_keypoints(self.keypoints, width, flip_indices)
        return _Targets(hflip_boxes(self.boxes, width), keypoints, self.areas)

    def select(self, keep: np.ndarray) -> _Targets:
        """The persons where ``keep`` ``(N,)`` is true."""
        return _Targets(self.boxes[keep], self.keypoints[keep], self.areas[keep])


@dataclass(frozen=True)
class _Augmentation:
    """The random draws of one training sample (see the module docstring for their distributions).

    Args:
        indices: Dataset indices of the images: 4 for a mosaic (quadrants top-left, top-right, bottom-left,
            bottom-right), else 1.
        centre: Mosaic centre ``(x, y)`` on the ``2S x 2S`` canvas, ``None`` without mosaic.
        factor: Scale factor.
        shift: ``(x, y)`` shift of the output in pixels.
        flip: Mirror the output left-right.
        hsv: HSV gains ``(r_h, r_s, r_v)``, ``None`` when HSV augmentation is off.
    """

    indices: tuple[int, ...]
    centre: tuple[int, int] | None
    factor: float
    shift: tuple[float, float]
    flip: bool
    hsv: tuple[float, float, float] | None


class MultiPersonCocoDataset(Dataset):
    """Letterboxed whole images with all their persons as targets (see the module docstring).

    Shape key: N persons in the sample, K joints, ``S`` = ``input_size``.

    Each sample is a dict:

    - ``image``: ``(3, S, S)`` uint8 RGB, not normalised.
    - ``boxes``: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in input pixels, inside ``[-0.5, S - 0.5]``.
    - ``keypoints``: ``(N, K, 3)`` float32 ``(x, y, v)`` in input pixels, ``v`` the COCO flag; unlabelled or
      cropped-away joints are ``(0, 0, 0)``.
    - ``image_id``: int64 scalar (of the main image for a mosaic).
    - ``letterbox``: the :class:`~posecommon.ops.letterbox.LetterboxInfo` in evaluation mode, ``None`` in training.

    Batch with :meth:`collate` (pass it as ``collate_fn``).

    Args:
        ann_file: COCO keypoints JSON.
        image_dir: Directory of the images.
        input_size: Side ``S`` of the square model input.
        keypoint_spec: Keypoint set of the annotations.
        train: Apply random augmentation (else the plain letterbox).
        mosaic: Probability of a 4-image mosaic.
        flip: Probability of a horizontal flip.
        translate: Largest shift as a fraction of ``S``, per axis.
        scale: Range of the random scale factor.
        hsv_h: Hue gain range of the HSV augmentation (YOLO-Pose ``hsv_h``), in ``[0, 1]``.
        hsv_s: Saturation gain range (``hsv_s``), in ``[0, 1]``.
        hsv_v: Value gain range (``hsv_v``), in ``[0, 1]``.
        pad_value: Pixel value (0-255) of the canvas and letterbox padding.
        min_box_size: Smallest kept box side after augmentation, in input pixels.
        min_area_ratio: Smallest kept fraction of a box's area after clipping.
        check_files: Check that all image files exist at construction.
        min_keypoints: Persons with fewer labelled keypoints are not targets (skipped and counted by
            :func:`~posecommon.data.coco.load_coco_keypoints`); None: 1 in training, 0 in evaluation.

    Raises:
        DatasetError: the annotation file is malformed or names a missing image.
        ValueError: an augmentation parameter is out of range.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        input_size: int = 640,
        keypoint_spec: KeypointSpec = COCO17,
        train: bool = True,
        mosaic: float = 1.0,
        flip: float = 0.5,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.5, 1.5),
        hsv_h: float = 0.015,
        hsv_s: float = 0.7,
        hsv_v: float = 0.4,
        pad_value: float = 114.0,
        min_box_size: float = 2.0,
        min_area_ratio: float = 0.1,
        check_files: bool = True,
        min_keypoints: int | None = None,
    ) -> None:
        if input_size <= 0:
            raise ValueError(f"input_size must be positive, got {input_size}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be an increasing pair of positive factors, got {scale}")
        gains = {"hsv_h": hsv_h, "hsv_s": hsv_s, "hsv_v": hsv_v}
        bad = {name: value for name, value in gains.items() if not 0 <= value <= 1}
        if bad:
            raise ValueError(f"HSV gains must be in [0, 1] (the gain 1 + uniform(-1, 1) * g must stay >= 0), got {bad}")
        if not 0 <= pad_value <= 255:
            raise ValueError(f"pad_value must be in [0, 255], got {pad_value}")
        if min_keypoints is None:
            min_keypoints = 1 if train else 0
        if min_keypoints < 0 or min_keypoints != int(min_keypoints):
            raise ValueError(f"min_keypoints must be a non-negative integer, got {min_keypoints}")
        self.min_keypoints = int(min_keypoints)
        self.data: CocoKeypoints = load_coco_keypoints(
            ann_file, image_dir, keypoint_spec, min_keypoints=self.min_keypoints, check_files=check_files
        )
        self.keypoint_spec = keypoint_spec
        self.input_size = int(input_size)
        self.train = train
        self.mosaic = mosaic
        self.flip = flip
        self.translate = translate
        self.scale = scale
        self.hsv_gains = (hsv_h, hsv_s, hsv_v)
        self.pad_value = pad_value
        self.min_box_size = min_box_size
        self.min_area_ratio = min_area_ratio
        self.image_ids = [record.image_id for record in self.data.images]
        self._targets_cache: dict[int, _Targets] = {}

    def __len__(self) -> int:
        return len(self.image_ids)

    def _source_targets(self, image_id: int) -> _Targets:
        """The persons of ``image_id`` in original-image pixels (areas: unclipped box areas); cached per image."""
        cached = self._targets_cache.get(image_id)
        if cached is None:
            persons = self.data.persons.get(image_id, [])
            k = self.keypoint_spec.num_joints
            boxes = np.array([p.bbox_xyxy for p in persons], dtype=np.float32).reshape(-1, 4)
            keypoints = np.stack([p.keypoints for p in persons]) if persons else np.zeros((0, k, 3))
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            cached = self._targets_cache[image_id] = _Targets(boxes, keypoints.astype(np.float32), areas)
        return cached

    def _letterboxed(self, index: int) -> tuple[torch.Tensor, _Targets, LetterboxInfo]:
        """Image ``index`` resized to fit ``S x S`` (padded, float32) with its targets in input pixels."""
        image_id = self.image_ids[index]
        image, info = letterbox(self.data.load_image(image_id), (self.input_size, self.input_size), self.pad_value)
        targets = self._source_targets(image_id)
        corners = letterbox_points(torch.from_numpy(targets.boxes).view(-1, 2, 2), info).view(-1, 4).numpy()
        keypoints = targets.keypoints.copy()
        labelled = keypoints[..., 2] > 0
        moved = letterbox_points(torch.from_numpy(keypoints[..., :2]), info).numpy()
        keypoints[..., :2] = np.where(labelled[..., None], moved, keypoints[..., :2])
        sx, sy = info.scale
        new_h, new_w = info.resized_size
        letterboxed = _Targets(corners, keypoints, targets.areas * np.float32(sx * sy))
        return image, letterboxed.clip((-0.5, -0.5, new_w - 0.5, new_h - 0.5)), info

    def _draw_augmentation(self, index: int) -> _Augmentation:
        """Draw the random parameters of one training sample (in the documented order)."""
        s = self.input_size
        centre = None
        indices: tuple[int, ...] = (index,)
        if float(torch.rand(())) < self.mosaic:
            centre = (int(rand_uniform(s / 2, 3 * s / 2)), int(rand_uniform(s / 2, 3 * s / 2)))
            indices = (index, *torch.randint(0, len(self), (3,)).tolist())
        factor = rand_uniform(*self.scale)
        shift = (rand_uniform(-self.translate, self.translate) * s, rand_uniform(-self.translate, self.translate) * s)
        flip = float(torch.rand(())) < self.flip
        hsv = draw_hsv_gains(*self.hsv_gains) if any(self.hsv_gains) else None
        return _Augmentation(indices, centre, factor, shift, flip, hsv)

    def _placements(self, aug: _Augmentation) -> list[TilePlacement]:
        """Each image's composed map (letterbox resize, canvas position, scale and shift) into the output, moved onto
        the resampling grid (:meth:`~posecommon.data.tiles.TilePlacement.on_source_grid`: at most half an output
        pixel per axis)."""
        s = self.input_size
        canvas = 2 * s if aug.centre is not None else s
        f = aug.factor

        def to_output(c: float, shift: float) -> float:  # canvas coordinate -> output coordinate
            return (c - (canvas - 1) / 2) * f + shift + (s - 1) / 2

        placements = []
        for quadrant, i in enumerate(aug.indices):
            record = self.data.image(self.image_ids[i])
            info = letterbox_info((record.height, record.width), (s, s))
            h, w = info.resized_size
            sx, sy = info.scale
            left = top = 0
            if aug.centre is not None:  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
                xc, yc = aug.centre
                left = xc - w if quadrant in (0, 2) else xc
                top = yc - h if quadrant in (0, 1) else yc
            x1, y1 = max(left, 0), max(top, 0)
            x2, y2 = min(left + w, canvas), min(top + h, canvas)
            # source x -> letterboxed (x + 0.5) * sx - 0.5 -> canvas + left -> output
            offset = (to_output(0.5 * sx - 0.5 + left, aug.shift[0]), to_output(0.5 * sy - 0.5 + top, aug.shift[1]))
            region = (
                to_output(x1 - 0.5, aug.shift[0]),
                to_output(y1 - 0.5, aug.shift[1]),
                to_output(x2 - 0.5, aug.shift[0]),
                to_output(y2 - 0.5, aug.shift[1]),
            )
            placements.append(TilePlacement((sx * f, sy * f), offset, region).on_source_grid((s, s)))
        return placements

    def _open(self, image_id: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR pixels of ``image_id`` (:func:`~posecommon.data.decode.read_bgr`), checked against
        its record."""
        record = self.data.image(image_id)
        try:
            pixels = read_bgr(record.path)
        except BadImageError as err:
            raise DatasetError(f"{self.data.ann_file}: image id {image_id} ({record.path}): {err}") from err
        if pixels.shape[:2] != (record.height, record.width):
            raise DatasetError(
                f"{self.data.ann_file}: image id {image_id}: {record.path} is {pixels.shape[1]}x{pixels.shape[0]} "
                f"(WxH) but the record says {record.width}x{record.height}"
            )
        return pixels

    def _augment(self, index: int) -> tuple[torch.Tensor, _Targets]:
        s = self.input_size
        aug = self._draw_augmentation(index)
        placements = self._placements(aug)
        image_ids = [self.image_ids[i] for i in aug.indices]
        sources = [
            self._open(image_id) if p.output_box((s, s)) is not None else None
            for image_id, p in zip(image_ids, placements, strict=True)
        ]
        rendered = compose_tiles(sources, placements, (s, s), round(self.pad_value))  # BGR
        if aug.hsv is not None:
            augment_hsv_(rendered, aug.hsv)
        planes = rgb_planes(rendered, flip=aug.flip)
        parts = [
            self._source_targets(image_id).affine(p.scale, p.offset).clip(p.region)
            for image_id, p in zip(image_ids, placements, strict=True)
        ]
        targets = _Targets.cat(parts, self.keypoint_spec.num_joints).clip((-0.5, -0.5, s - 0.5, s - 0.5))
        if aug.flip:
            targets = targets.flipped(s, self.keypoint_spec.flip_indices)
        return planes, targets

    def _filter(self, targets: _Targets) -> _Targets:
        w = targets.boxes[:, 2] - targets.boxes[:, 0]
        h = targets.boxes[:, 3] - targets.boxes[:, 1]
        if self.train:
            keep = (w > self.min_box_size) & (h > self.min_box_size) & (w * h >= self.min_area_ratio * targets.areas)
        else:
            keep = (w > 0) & (h > 0)
        return targets.select(keep)

    def __getitem__(self, index: int) -> dict[str, Any]:
        info: LetterboxInfo | None = None
        if self.train:
            image, targets = self._augment(index)
        else:
            letterboxed, targets, info = self._letterboxed(index)
            image = letterboxed.round().clamp(0, 255).to(torch.uint8)
        targets = self._filter(targets)
        return {
            "image": image,
            "boxes": torch.from_numpy(targets.boxes),
            "keypoints": torch.from_numpy(targets.keypoints),
            "image_id": torch.tensor(self.image_ids[index]),
            "letterbox": info,
        }

    @staticmethod
    def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Batch samples YOLO-style: all persons of the batch in one target tensor.

        Args:
            samples: Samples of this dataset (same ``S`` and K).

        Returns:
            A dict with ``images``: ``(B, 3, S, S)`` uint8; ``targets``: ``(M, 1 + 4 + 3K)`` float32, one row per
            person of the batch: column 0 the sample's index in the batch, columns 1-4 the box ``(x1, y1, x2,
            y2)`` in input pixels, then ``(x, y, v)`` for each of the K joints in input pixels; ``image_ids``:
            ``(B,)`` int64; ``letterbox``: the list of the samples' ``letterbox`` entries.
        """
        rows = []
        for b, sample in enumerate(samples):
            n = sample["boxes"].shape[0]
            batch_index = torch.full((n, 1), float(b))
            rows.append(torch.cat((batch_index, sample["boxes"], sample["keypoints"].flatten(1)), dim=1))
        return {
            "images": torch.stack([s["image"] for s in samples]),
            "targets": torch.cat(rows),
            "image_ids": torch.stack([s["image_id"] for s in samples]),
            "letterbox": [s["letterbox"] for s in samples],
        }
