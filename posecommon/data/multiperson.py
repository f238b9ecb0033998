"""Multi-person training/evaluation dataset for single-stage models (DRSI-Net, YOLO-Pose): letterboxed images with
box + keypoint targets, mosaic, flip, translate and scale (the DRSI-Net paper's recipe, section 4.2).

All coordinates follow posezoo's pixel-centre convention (:mod:`posecommon.geometry`): an ``S``-pixel input spans
``[-0.5, S - 0.5]``.

Evaluation (``train=False``): the image is letterboxed (:func:`posecommon.letterbox.letterbox`: resized to fit
``S x S`` keeping its aspect ratio, padded at the bottom/right with ``pad_value``), exactly as at inference; the
sample carries the :class:`~posecommon.letterbox.LetterboxInfo` so that predictions map back to original-image
pixels with :func:`~posecommon.letterbox.unletterbox_points` / :func:`~posecommon.letterbox.unletterbox_boxes`.

Training, as YOLOv5:

1. *Mosaic* (probability ``mosaic``): the image and three others drawn at random are each resized so their long
   side is ``S`` and placed on a ``2S x 2S`` canvas filled with ``pad_value``, around a centre drawn uniformly in
   ``[S/2, 3S/2]^2`` (top-left image touching the centre with its bottom-right corner, and so on). Otherwise the
   letterboxed image is the ``S x S`` canvas.
2. *Scale and translate*: the canvas centre is mapped to the output centre, scaled by a factor uniform in
   ``scale`` and shifted by up to ``translate * S`` pixels per axis, through
   :func:`~posecommon.geometry.crop_images` (bilinear ``grid_sample``) and the same affine map for the targets.
3. *Flip* (probability ``flip``): mirror ``x -> S - 1 - x``, with left/right joints swapped through
   ``keypoint_spec.flip_indices``.

Targets after each step: boxes are clipped to the visible image region (the pasted image, then the output);
keypoints outside it become unlabelled ``(0, 0, 0)``; in training a person is dropped when its clipped box is
narrower or lower than ``min_box_size`` pixels or keeps less than ``min_area_ratio`` of its unclipped area (YOLOv5's
``box_candidates``); in evaluation only empty boxes are dropped. Persons with no labelled keypoint are kept as box
targets (their keypoint loss is masked).

Images are **not normalised**: ``image`` is ``uint8`` ``(3, S, S)``; the model's
:class:`~posecommon.preprocess.PreprocessConfig` normalises. ``pad_value`` should equal that config's
``pad_value`` so that training and inference padding agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..geometry import crop_images, image_to_crop
from ..keypoints import COCO17, KeypointSpec
from ..letterbox import LetterboxInfo, letterbox, letterbox_points
from .augment import hflip_boxes, hflip_keypoints, mark_outside, rand_uniform
from .coco import CocoKeypoints, load_coco_keypoints

__all__ = ["MultiPersonCocoDataset"]


class _Targets:
    """Boxes ``(N, 4)`` xyxy, keypoints ``(N, K, 3)`` and unclipped box areas ``(N,)`` of one (partial) image."""

    def __init__(self, boxes: torch.Tensor, keypoints: torch.Tensor, areas: torch.Tensor) -> None:
        self.boxes = boxes
        self.keypoints = keypoints
        self.areas = areas

    @staticmethod
    def cat(parts: list[_Targets], num_joints: int) -> _Targets:
        if not parts:
            return _Targets(torch.zeros(0, 4), torch.zeros(0, num_joints, 3), torch.zeros(0))
        return _Targets(
            torch.cat([p.boxes for p in parts]),
            torch.cat([p.keypoints for p in parts]),
            torch.cat([p.areas for p in parts]),
        )

    def shift_scale(self, scale: tuple[float, float], offset: tuple[float, float]) -> _Targets:
        """``x' = (x + 0.5) * scale_x - 0.5 + offset_x`` (a resize in the pixel-centre convention, then a shift)."""
        sx, sy = scale
        factor = torch.tensor((sx, sy))
        shift = torch.tensor(offset)
        corners = (self.boxes.view(-1, 2, 2) + 0.5) * factor - 0.5 + shift
        xy = (self.keypoints[..., :2] + 0.5) * factor - 0.5 + shift
        labelled = self.keypoints[..., 2:] > 0
        keypoints = torch.where(labelled, torch.cat((xy, self.keypoints[..., 2:]), -1), self.keypoints)
        return _Targets(corners.view(-1, 4), keypoints, self.areas * sx * sy)

    def clip(self, region: tuple[float, float, float, float]) -> _Targets:
        """Clip boxes to ``region`` = ``(x1, y1, x2, y2)`` and unlabel keypoints outside it."""
        x1, y1, x2, y2 = region
        low = torch.tensor((x1, y1, x1, y1))
        high = torch.tensor((x2, y2, x2, y2))
        boxes = torch.minimum(torch.maximum(self.boxes, low), high)
        return _Targets(boxes, mark_outside(self.keypoints, region), self.areas)


class MultiPersonCocoDataset(Dataset):
    """Letterboxed whole images with all their persons as targets (see the module docstring).

    Shape key: N persons in the sample, K joints, ``S`` = ``input_size``.

    Each sample is a dict:

    - ``image``: ``(3, S, S)`` uint8 RGB, not normalised.
    - ``boxes``: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in input pixels, inside ``[-0.5, S - 0.5]``.
    - ``keypoints``: ``(N, K, 3)`` float32 ``(x, y, v)`` in input pixels, ``v`` the COCO flag; unlabelled or
      cropped-away joints are ``(0, 0, 0)``.
    - ``image_id``: int64 scalar (of the main image for a mosaic).
    - ``letterbox``: the :class:`~posecommon.letterbox.LetterboxInfo` in evaluation mode, ``None`` in training.

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
        pad_value: Pixel value (0-255) of the canvas and letterbox padding.
        min_box_size: Smallest kept box side after augmentation, in input pixels.
        min_area_ratio: Smallest kept fraction of a box's area after clipping.
        check_files: Check that all image files exist at construction.

    Raises:
        DatasetError: the annotation file is malformed or names a missing image.
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
        pad_value: float = 114.0,
        min_box_size: float = 2.0,
        min_area_ratio: float = 0.1,
        check_files: bool = True,
    ) -> None:
        if input_size <= 0:
            raise ValueError(f"input_size must be positive, got {input_size}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be an increasing pair of positive factors, got {scale}")
        self.data: CocoKeypoints = load_coco_keypoints(
            ann_file, image_dir, keypoint_spec, min_keypoints=0, check_files=check_files
        )
        self.keypoint_spec = keypoint_spec
        self.input_size = int(input_size)
        self.train = train
        self.mosaic = mosaic
        self.flip = flip
        self.translate = translate
        self.scale = scale
        self.pad_value = pad_value
        self.min_box_size = min_box_size
        self.min_area_ratio = min_area_ratio
        self.image_ids = [record.image_id for record in self.data.images]

    def __len__(self) -> int:
        return len(self.image_ids)

    def _letterboxed(self, index: int) -> tuple[torch.Tensor, _Targets, LetterboxInfo]:
        """Image ``index`` resized to fit ``S x S`` (padded, float32) with its targets in input pixels."""
        image_id = self.image_ids[index]
        image, info = letterbox(self.data.load_image(image_id), (self.input_size, self.input_size), self.pad_value)
        persons = self.data.persons.get(image_id, [])
        k = self.keypoint_spec.num_joints
        boxes = torch.tensor([p.bbox_xyxy for p in persons], dtype=torch.float32).view(-1, 4)
        keypoints = torch.stack([torch.from_numpy(p.keypoints) for p in persons]) if persons else torch.zeros(0, k, 3)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        corners = letterbox_points(boxes.view(-1, 2, 2), info).view(-1, 4)
        xy = letterbox_points(keypoints[..., :2], info)
        keypoints = torch.where(keypoints[..., 2:] > 0, torch.cat((xy, keypoints[..., 2:]), -1), keypoints)
        sx, sy = info.scale
        targets = _Targets(corners, keypoints, areas * sx * sy)
        new_h, new_w = info.resized_size
        return image, targets.clip((-0.5, -0.5, new_w - 0.5, new_h - 0.5)), info

    def _mosaic(self, index: int) -> tuple[torch.Tensor, _Targets]:
        """A ``2S x 2S`` canvas holding image ``index`` and three random others, with their targets."""
        s = self.input_size
        canvas = torch.full((3, 2 * s, 2 * s), float(self.pad_value))
        xc = int(rand_uniform(s / 2, 3 * s / 2))
        yc = int(rand_uniform(s / 2, 3 * s / 2))
        others = torch.randint(0, len(self), (3,)).tolist()
        parts = []
        for quadrant, i in enumerate([index, *others]):
            image, targets, info = self._letterboxed(i)
            h, w = info.resized_size
            left = xc - w if quadrant in (0, 2) else xc  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
            top = yc - h if quadrant in (0, 1) else yc
            x1, y1 = max(left, 0), max(top, 0)
            x2, y2 = min(left + w, 2 * s), min(top + h, 2 * s)
            canvas[:, y1:y2, x1:x2] = image[:, y1 - top : y2 - top, x1 - left : x2 - left]
            moved = targets.shift_scale((1.0, 1.0), (float(left), float(top)))
            parts.append(moved.clip((x1 - 0.5, y1 - 0.5, x2 - 0.5, y2 - 0.5)))
        return canvas, _Targets.cat(parts, self.keypoint_spec.num_joints)

    def _augment(self, index: int) -> tuple[torch.Tensor, _Targets]:
        s = self.input_size
        if float(torch.rand(())) < self.mosaic:
            canvas, targets = self._mosaic(index)
        else:
            canvas, targets, _ = self._letterboxed(index)
        # output pixel p shows canvas point centre + (p - (S - 1) / 2) / factor, with the canvas centre shifted
        factor = rand_uniform(*self.scale)
        shift_x = rand_uniform(-self.translate, self.translate) * s
        shift_y = rand_uniform(-self.translate, self.translate) * s
        canvas_h, canvas_w = canvas.shape[1:]
        center = torch.tensor([[(canvas_w - 1) / 2 - shift_x / factor, (canvas_h - 1) / 2 - shift_y / factor]])
        size = torch.tensor([[s / factor, s / factor]])
        image = crop_images(canvas, center, size, (s, s), pad_value=self.pad_value)[0]
        corners = image_to_crop(targets.boxes.view(1, -1, 2), center, size, (s, s))[0].view(-1, 4)
        xy = image_to_crop(targets.keypoints[..., :2].reshape(1, -1, 2), center, size, (s, s))[0]
        labelled = targets.keypoints[..., 2:] > 0
        keypoints = torch.where(
            labelled, torch.cat((xy.view_as(targets.keypoints[..., :2]), targets.keypoints[..., 2:]), -1), 0.0
        )
        targets = _Targets(corners, keypoints, targets.areas * factor**2).clip((-0.5, -0.5, s - 0.5, s - 0.5))
        if float(torch.rand(())) < self.flip:
            image = image.flip(-1)
            targets = _Targets(
                hflip_boxes(targets.boxes, s),
                hflip_keypoints(targets.keypoints, s, self.keypoint_spec.flip_indices),
                targets.areas,
            )
        return image, targets

    def _filter(self, targets: _Targets) -> _Targets:
        w = targets.boxes[:, 2] - targets.boxes[:, 0]
        h = targets.boxes[:, 3] - targets.boxes[:, 1]
        if self.train:
            keep = (w > self.min_box_size) & (h > self.min_box_size) & (w * h >= self.min_area_ratio * targets.areas)
        else:
            keep = (w > 0) & (h > 0)
        return _Targets(targets.boxes[keep], targets.keypoints[keep], targets.areas[keep])

    def __getitem__(self, index: int) -> dict[str, Any]:
        info: LetterboxInfo | None = None
        if self.train:
            image, targets = self._augment(index)
        else:
            image, targets, info = self._letterboxed(index)
        targets = self._filter(targets)
        return {
            "image": image.round().clamp(0, 255).to(torch.uint8),
            "boxes": targets.boxes.float(),
            "keypoints": targets.keypoints.float(),
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
