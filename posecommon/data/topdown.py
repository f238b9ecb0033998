"""Top-down training/evaluation dataset: one affine person crop per COCO person annotation, with heatmap targets.

The pipeline follows HRNet/TransPose training, with posezoo's exact geometry (:mod:`posecommon.geometry`, pixel
centres at integer coordinates) and codec (:class:`~posecommon.codecs.HeatmapCodec`):

1. The annotation box becomes a crop region: centre and size grown to the input aspect ratio and padded by
   ``padding`` (1.25), :func:`~posecommon.geometry.box_to_center_scale`.
2. Training only, each with its own probability: *half body* (with probability ``half_body``, when more than
   ``K // 2`` joints are labelled, the region is replaced by the box of the labelled upper-body or lower-body
   joints, chosen at random, grown to the aspect ratio and padded by 1.5); *scale* (size multiplied by
   ``clip(1 + scale * N(0, 1), 1 - scale, 1 + scale)``); *rotation* (with probability ``rotation_prob``, angle
   ``clip(rotation * N(0, 1), -2 rotation, 2 rotation)`` degrees, else 0).
3. The region is cropped with ``grid_sample`` (:func:`~posecommon.geometry.crop_images`); keypoints are mapped
   with the same affine map (:func:`~posecommon.geometry.image_to_crop`).
4. Training only, with probability ``flip``: the crop is mirrored, keypoints ``x -> W - 1 - x`` and left/right
   joints swapped through ``keypoint_spec.flip_indices``.
5. Targets: :meth:`HeatmapCodec.encode` at stride ``stride`` with Gaussian ``sigma`` (heatmap pixels); the target
   weight of a joint is 1 when it is labelled (``v > 0``) and its Gaussian overlaps the heatmap, else 0.

Images are **not normalised** here: ``image`` is ``uint8`` ``(3, H, W)`` RGB in ``[0, 255]``; the model's
:class:`~posecommon.preprocess.PreprocessConfig` normalises (on the GPU, after the transfer of compact uint8 data).

Samples: every person annotation that is not crowd and has at least one labelled keypoint (others are skipped,
counted and logged by :func:`~posecommon.data.coco.load_coco_keypoints`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..codecs import HeatmapCodec
from ..geometry import box_to_center_scale, crop_images, image_to_crop
from ..keypoints import COCO17, KeypointSpec
from .augment import hflip_keypoints
from .coco import CocoKeypoints, load_coco_keypoints

__all__ = ["TopDownCocoDataset", "default_lower_body_joints"]

_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "foot", "heel", "toe", "pelvis")


def default_lower_body_joints(keypoint_spec: KeypointSpec) -> tuple[int, ...]:
    """Joints whose name contains hip, knee, ankle, foot, heel, toe or pelvis (for COCO: joints 11-16)."""
    return tuple(k for k, name in enumerate(keypoint_spec.names) if any(w in name.lower() for w in _LOWER_BODY_WORDS))


class TopDownCocoDataset(Dataset):
    """Person crops with Gaussian heatmap targets from a COCO keypoints file (see the module docstring).

    Shape key: K joints; ``(H, W)`` = ``input_size``; ``(h, w)`` = ``(H // stride, W // stride)``.

    Each sample is a dict:

    - ``image``: ``(3, H, W)`` uint8 RGB crop, not normalised.
    - ``heatmaps``: ``(K, h, w)`` float32 targets (peak 1).
    - ``target_weight``: ``(K,)`` float32 in ``{0, 1}``.
    - ``keypoints``: ``(K, 3)`` float32 ``(x, y, v)`` in input (crop) pixels after all augmentation.
    - ``image_id``, ``annotation_id``: int64 scalars.
    - ``center``, ``size``: ``(2,)`` float32 crop region in original-image pixels, and ``rotation``: float32
      scalar in degrees, so that :func:`~posecommon.geometry.crop_to_image` maps crop pixels back to the image
      (exactly so for unflipped samples; with ``flipped`` true, mirror ``x -> W - 1 - x`` first).
    - ``flipped``: bool scalar; ``score``: float32 scalar box score, 1 for ground-truth boxes; ``area``: float32
      annotation area (OKS scale).

    Args:
        ann_file: COCO keypoints JSON.
        image_dir: Directory of the images.
        input_size: Crop ``(H, W)``.
        keypoint_spec: Keypoint set of the annotations.
        train: Apply random augmentation (else the plain padded box crop).
        flip: Probability of a horizontal flip.
        rotation: Rotation spread in degrees (standard deviation; clipped at twice this).
        rotation_prob: Probability that a sample is rotated at all.
        scale: Scale spread: the crop size is multiplied by ``clip(1 + scale * N(0, 1), 1 - scale, 1 + scale)``.
        half_body: Probability of a half-body crop.
        sigma: Gaussian standard deviation of the targets, in heatmap pixels.
        stride: Input pixels per heatmap pixel.
        padding: Box padding factor.
        pad_value: Pixel value (0-255) of crop areas outside the image.
        lower_body_joints: Joints of the lower half for half-body crops; default
            :func:`default_lower_body_joints`.
        check_files: Check that all image files exist at construction.

    Raises:
        DatasetError: the annotation file is malformed or names a missing image.
        ValueError: ``input_size`` is not divisible by ``stride``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        input_size: tuple[int, int] = (256, 192),
        keypoint_spec: KeypointSpec = COCO17,
        train: bool = True,
        flip: float = 0.5,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        scale: float = 0.35,
        half_body: float = 0.3,
        sigma: float = 2.0,
        stride: int = 4,
        padding: float = 1.25,
        pad_value: float = 0.0,
        lower_body_joints: Sequence[int] | None = None,
        check_files: bool = True,
    ) -> None:
        height, width = (int(v) for v in input_size)
        if height % stride or width % stride:
            raise ValueError(f"input_size {input_size} must be divisible by stride {stride}")
        self.data: CocoKeypoints = load_coco_keypoints(
            ann_file, image_dir, keypoint_spec, min_keypoints=1, check_files=check_files
        )
        self.keypoint_spec = keypoint_spec
        self.input_size = (height, width)
        self.train = train
        self.flip = flip
        self.rotation = rotation
        self.rotation_prob = rotation_prob
        self.scale = scale
        self.half_body = half_body
        self.padding = padding
        self.pad_value = pad_value
        self.codec = HeatmapCodec(self.input_size, (height // stride, width // stride), sigma=sigma)
        lower = default_lower_body_joints(keypoint_spec) if lower_body_joints is None else tuple(lower_body_joints)
        self.lower_body_joints = torch.zeros(keypoint_spec.num_joints, dtype=torch.bool)
        self.lower_body_joints[list(lower)] = True
        self.persons = self.data.all_persons()

    def __len__(self) -> int:
        return len(self.persons)

    def _half_body_region(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Crop region of the labelled upper- or lower-body joints, or ``None`` when too few are labelled."""
        labelled = keypoints[:, 2] > 0
        upper = labelled & ~self.lower_body_joints
        lower = labelled & self.lower_body_joints
        first, second = (upper, lower) if float(torch.rand(())) < 0.5 else (lower, upper)
        chosen = first if int(first.sum()) > 2 else second
        if int(chosen.sum()) < 2:
            return None
        points = keypoints[chosen, :2]
        box = torch.cat((points.amin(dim=0), points.amax(dim=0)))[None]
        return box_to_center_scale(box, self.input_size[1] / self.input_size[0], padding=1.5)

    def __getitem__(self, index: int) -> dict[str, Any]:
        person = self.persons[index]
        image = self.data.load_image(person.image_id)
        keypoints = torch.from_numpy(person.keypoints.copy())  # (K, 3) image pixels
        box = torch.tensor(person.bbox_xyxy, dtype=torch.float32)[None]
        center, size = box_to_center_scale(box, self.input_size[1] / self.input_size[0], padding=self.padding)
        rotation = torch.zeros(1)
        flipped = False
        if self.train:
            labelled = int((keypoints[:, 2] > 0).sum())
            if labelled > self.keypoint_spec.num_joints // 2 and float(torch.rand(())) < self.half_body:
                region = self._half_body_region(keypoints)
                if region is not None:
                    center, size = region
            factor = float(torch.randn(())) * self.scale + 1.0
            size = size * min(max(factor, 1.0 - self.scale), 1.0 + self.scale)
            if float(torch.rand(())) < self.rotation_prob:
                angle = float(torch.randn(())) * self.rotation
                rotation = torch.tensor([min(max(angle, -2 * self.rotation), 2 * self.rotation)])
            flipped = float(torch.rand(())) < self.flip

        crop = crop_images(image, center, size, self.input_size, rotation, pad_value=self.pad_value)[0]
        crop_xy = image_to_crop(keypoints[None, :, :2], center, size, self.input_size, rotation)[0]
        labelled = keypoints[:, 2:] > 0
        keypoints = torch.where(labelled, torch.cat((crop_xy, keypoints[:, 2:]), dim=-1), torch.zeros_like(keypoints))
        if flipped:
            crop = crop.flip(-1)
            keypoints = hflip_keypoints(keypoints, self.input_size[1], self.keypoint_spec.flip_indices)
        heatmaps, weights = self.codec.encode(keypoints[None, :, :2], keypoints[None, :, 2])
        return {
            "image": crop.round().clamp(0, 255).to(torch.uint8),
            "heatmaps": heatmaps[0],
            "target_weight": weights[0],
            "keypoints": keypoints,
            "image_id": torch.tensor(person.image_id),
            "annotation_id": torch.tensor(person.annotation_id),
            "center": center[0],
            "size": size[0],
            "rotation": rotation[0],
            "flipped": torch.tensor(flipped),
            "score": torch.tensor(1.0),
            "area": torch.tensor(person.area, dtype=torch.float32),
        }
