"""Top-down training/evaluation dataset: one affine person crop per COCO person annotation, with heatmap targets.

The pipeline is the official TransPose one (``lib/dataset/JointsDataset.py:114-203``, ``lib/dataset/coco.py``),
with every geometric step done by :class:`~posecommon.codecs.TopDownCodec`:

1. The annotation box is sanitised as the official loader does (:func:`~posecommon.ops.geometry.clean_coco_boxes`,
   ``coco.py:162-173``) and becomes a region (``_xywh2cs``: centre ``x + (w - 1) / 2``, aspect ratio of the input,
   padding 1.25).
2. Training only, in the official order (:class:`TopDownAugmentation` holds the probabilities and spreads): *half
   body*, *scale*, *rotation*, *flip*. A flipped sample is the official one exactly: mirroring the image and
   rotating by ``r`` (official) equals rotating by ``-r`` and mirroring the crop (ours), so the sample records
   ``rotation = -r`` and ``flipped = True``.
3. The crop and the targets come from the same region: :meth:`TopDownCodec.crop` at the input size,
   :meth:`TopDownCodec.encode` at the heatmap size (Gaussian sigma 2, official target weights).

Images are **not normalised** here: ``image`` is ``uint8`` ``(3, H, W)`` RGB in ``[0, 255]``; the model's
:class:`~posecommon.preprocess.PreprocessConfig` normalises (on the GPU, after the transfer of compact uint8 data).

Samples: every person annotation that is not crowd, has at least one labelled keypoint (others are skipped, counted
and logged by :func:`~posecommon.data.coco.load_coco_keypoints`), and passes the official box sanitisation with a
positive ``area`` (others are counted in :attr:`TopDownCocoDataset.skipped` and logged at WARNING). The official
loader keeps annotations whose keypoint values are not all zero; an annotation with coordinates but no labelled
joint (all ``v = 0``) is kept there and skipped here; it carries no target (all weights 0) either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..codecs import TopDownCodec, TopDownRegions
from ..config import replace_config
from ..keypoints import COCO17, KeypointSpec
from ..ops.geometry import clean_coco_boxes, xywh_to_center_scale
from .coco import CocoKeypoints, PersonRecord, load_coco_keypoints

__all__ = ["TopDownAugmentation", "TopDownCocoDataset", "default_lower_body_joints"]

logger = logging.getLogger(__name__)

_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "foot", "heel", "toe", "pelvis")


def default_lower_body_joints(keypoint_spec: KeypointSpec) -> tuple[int, ...]:
    """Joints whose name contains hip, knee, ankle, foot, heel, toe or pelvis (for COCO: joints 11-16).

    For COCO this is the official split: ``upper_body_ids = 0..10``, ``lower_body_ids = 11..16``
    (TransPose ``lib/dataset/coco.py:95-96``).
    """
    return tuple(k for k, name in enumerate(keypoint_spec.names) if any(w in name.lower() for w in _LOWER_BODY_WORDS))


@dataclass(frozen=True)
class TopDownAugmentation:
    """Training augmentation of the TransPose / VTTransPose family: the TP-H-S recipe, in one place.

    Defaults are the official values: the yaml is ``experiments/coco/transpose_h/
    TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1.yaml`` and the code ``lib/dataset/JointsDataset.py``
    (``__getitem__``, lines 146-166, and ``half_body_transform``, lines 66-109), both in TransPose. ``posezoo train
    --augment name=value`` overrides them by name.

    Per sample, in this order (each draw from torch's global RNG, seeded per sample by the trainer):

    1. Half body, when more than ``half_body_min_joints`` joints are labelled and ``U < half_body``: the upper
       body if ``N(0, 1) < 0.5`` (a normal draw, as the official ``np.random.randn() < 0.5``: upper first with
       probability 0.69) and it has more than 2 labelled joints, else the lower body if it has more than 2, else
       the upper; no change when the choice has fewer than 2. Region: centre = mean of the chosen joints, size =
       their extent + 1, grown to the input aspect ratio, times ``half_body_padding``.
    2. Scale: size times ``clip(N(0, 1) * scale + 1, 1 - scale, 1 + scale)``.
    3. Rotation: ``clip(N(0, 1) * rotation, -2 rotation, 2 rotation)`` degrees when ``U <= rotation_prob``, else 0.
    4. Flip: when ``U <= flip``.

    Args:
        rotation: Rotation spread in degrees (``ROT_FACTOR: 45``, yaml line 21); clipped at twice this.
        rotation_prob: Probability of a rotation (``random.random() <= 0.6``, ``JointsDataset.py:159-160``).
        scale: Scale spread (``SCALE_FACTOR: 0.35``, yaml line 22).
        flip: Probability of a horizontal flip (``FLIP: true``, yaml line 17, with ``random.random() <= 0.5``,
            ``JointsDataset.py:162``).
        half_body: Probability of a half-body crop (``PROB_HALF_BODY: 0.3``, yaml line 19).
        half_body_min_joints: More labelled joints than this are needed (``NUM_JOINTS_HALF_BODY: 8``, line 18).
        half_body_padding: Padding of the half-body region (``scale * 1.5``, ``JointsDataset.py:107``).
    """

    rotation: float = 45.0
    rotation_prob: float = 0.6
    scale: float = 0.35
    flip: float = 0.5
    half_body: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "flip", "half_body"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} is a probability in [0, 1], got {value}")
        if self.rotation < 0 or not 0.0 <= self.scale < 1.0 or self.half_body_padding <= 0:
            raise ValueError(
                f"augmentation rotation must be >= 0, scale in [0, 1) and half_body_padding > 0, got {self.rotation}, "
                f"{self.scale} and {self.half_body_padding}"
            )
        object.__setattr__(self, "half_body_min_joints", int(self.half_body_min_joints))

    def half_body_region(
        self, keypoints: torch.Tensor, lower_body: torch.Tensor, aspect_ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Region of the labelled upper- or lower-body joints (``half_body_transform``), or ``None``.

        Args:
            keypoints: ``(K, 3)`` ``(x, y, v)`` in image pixels.
            lower_body: ``(K,)`` bool, the lower-body joints (the others are the upper body).
            aspect_ratio: Crop ``W / H``.

        Returns:
            ``(center, size)``, ``(2,)`` each in image pixels, or ``None`` when fewer than 2 joints are chosen.
        """
        labelled = keypoints[:, 2] > 0
        upper = labelled & ~lower_body
        lower = labelled & lower_body
        if float(torch.randn(())) < 0.5 and int(upper.sum()) > 2:
            chosen = upper
        else:
            chosen = lower if int(lower.sum()) > 2 else upper
        if int(chosen.sum()) < 2:
            return None
        points = keypoints[chosen, :2].double()
        extent = points.amax(dim=0) - points.amin(dim=0) + 1
        w, h = float(extent[0]), float(extent[1])
        if w > aspect_ratio * h:
            h = w / aspect_ratio
        elif w < aspect_ratio * h:
            w = h * aspect_ratio
        size = torch.tensor([w, h]) * self.half_body_padding
        return points.mean(dim=0).float(), size.float()

    def sample(
        self,
        keypoints: torch.Tensor,
        center: torch.Tensor,
        size: torch.Tensor,
        lower_body: torch.Tensor,
        aspect_ratio: float,
    ) -> TopDownRegions:
        """One random training region: the official draws in the official order (see the class docstring).

        Args:
            keypoints: ``(K, 3)`` ``(x, y, v)`` in image pixels.
            center: ``(2,)`` centre of the box region in image pixels.
            size: ``(2,)`` size of the box region in image pixels.
            lower_body: ``(K,)`` bool, the lower-body joints.
            aspect_ratio: Crop ``W / H``.

        Returns:
            One region (``N = 1``); a flipped one records ``rotation = -r`` (see the module docstring).
        """
        if int((keypoints[:, 2] > 0).sum()) > self.half_body_min_joints and float(torch.rand(())) < self.half_body:
            region = self.half_body_region(keypoints, lower_body, aspect_ratio)
            if region is not None:
                center, size = region
        factor = min(max(float(torch.randn(())) * self.scale + 1.0, 1.0 - self.scale), 1.0 + self.scale)
        size = size * factor
        rotation = 0.0
        if float(torch.rand(())) <= self.rotation_prob:
            rotation = min(max(float(torch.randn(())) * self.rotation, -2 * self.rotation), 2 * self.rotation)
        flipped = float(torch.rand(())) <= self.flip
        return TopDownRegions(
            center[None], size[None], torch.tensor([-rotation if flipped else rotation]), torch.tensor([flipped])
        )


class TopDownCocoDataset(Dataset):
    """Person crops with Gaussian heatmap targets from a COCO keypoints file (see the module docstring).

    Shape key: K joints; ``(H, W)`` = ``input_size``; ``(h, w)`` = ``(H // stride, W // stride)``.

    Each sample is a dict:

    - ``image``: ``(3, H, W)`` uint8 RGB crop, not normalised.
    - ``heatmaps``: ``(K, h, w)`` float32 targets (peak 1).
    - ``target_weight``: ``(K,)`` float32 in ``{0, 1}``.
    - ``keypoints``: ``(K, 3)`` float32 ``(x, y, v)`` in input (crop) pixels after all augmentation (unlabelled
      joints ``(0, 0, 0)``).
    - ``image_id``, ``annotation_id``: int64 scalars.
    - ``center``, ``size``: ``(2,)`` float32 region in original-image pixels, ``rotation``: float32 scalar in
      degrees and ``flipped``: bool scalar; :class:`~posecommon.codecs.TopDownRegions` of these maps the crop back
      to the image (:meth:`TopDownCodec.input_transform`).
    - ``score``: float32 scalar box score, 1 for ground-truth boxes; ``area``: float32 annotation area (OKS scale).

    Args:
        ann_file: COCO keypoints JSON.
        image_dir: Directory of the images.
        input_size: Crop ``(H, W)``.
        keypoint_spec: Keypoint set of the annotations.
        train: Apply random augmentation (else the plain padded box crop).
        augmentation: A :class:`TopDownAugmentation`, or a mapping of overrides of its defaults (e.g.
            ``{"rotation": 15}``); ``None`` for the defaults.
        sigma: Gaussian standard deviation of the targets, in heatmap pixels.
        stride: Input pixels per heatmap pixel (heatmap size ``input_size // stride``).
        padding: Box padding factor.
        pad_value: Pixel value (0-255) of crop areas outside the image (the official ``warpAffine`` border is 0).
        lower_body_joints: Joints of the lower half for half-body crops; default
            :func:`default_lower_body_joints`.
        check_files: Check that all image files exist at construction.

    Raises:
        DatasetError: the annotation file is malformed or names a missing image.
        ValueError: ``input_size`` is not divisible by ``stride``.
        TypeError: an augmentation override names no field of :class:`TopDownAugmentation`.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        input_size: tuple[int, int] = (256, 192),
        keypoint_spec: KeypointSpec = COCO17,
        train: bool = True,
        augmentation: TopDownAugmentation | Mapping[str, float] | None = None,
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
        if not isinstance(augmentation, TopDownAugmentation):
            augmentation = replace_config(TopDownAugmentation(), **dict(augmentation or {}))
        self.augmentation = augmentation
        self.data: CocoKeypoints = load_coco_keypoints(
            ann_file, image_dir, keypoint_spec, min_keypoints=1, check_files=check_files
        )
        self.keypoint_spec = keypoint_spec
        self.input_size = (height, width)
        self.train = train
        self.pad_value = pad_value
        self.codec = TopDownCodec(self.input_size, (height // stride, width // stride), sigma=sigma, padding=padding)
        lower = default_lower_body_joints(keypoint_spec) if lower_body_joints is None else tuple(lower_body_joints)
        self.lower_body_joints = torch.zeros(keypoint_spec.num_joints, dtype=torch.bool)
        self.lower_body_joints[list(lower)] = True
        self.persons, self.centers, self.sizes = self._sanitised_persons()
        self.skipped = {"box_or_area": len(self.data.all_persons()) - len(self.persons)}
        if self.skipped["box_or_area"]:
            logger.warning(
                "%s: %d person annotation(s) skipped: empty box after the official sanitisation, or area <= 0",
                ann_file,
                self.skipped["box_or_area"],
            )

    def _sanitised_persons(self) -> tuple[list[PersonRecord], torch.Tensor, torch.Tensor]:
        """Persons whose raw box survives the official sanitisation, and their regions ``(P, 2)``, ``(P, 2)``."""
        persons, boxes = [], []
        for person in self.data.all_persons():
            record = self.data.image(person.image_id)
            raw = torch.tensor([self.data.coco.anns[person.annotation_id]["bbox"]], dtype=torch.float64)
            clean, valid = clean_coco_boxes(raw, record.width, record.height)
            if bool(valid[0]) and person.area > 0:
                persons.append(person)
                boxes.append(clean[0])
        if not persons:
            return persons, torch.zeros(0, 2), torch.zeros(0, 2)
        center, size = xywh_to_center_scale(torch.stack(boxes), self.codec.aspect_ratio, self.codec.padding)
        return persons, center.float(), size.float()

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, index: int) -> dict[str, Any]:
        person = self.persons[index]
        image = self.data.load_image(person.image_id)
        keypoints = torch.from_numpy(person.keypoints.copy())  # (K, 3) image pixels
        center, size = self.centers[index], self.sizes[index]
        if self.train:
            regions = self.augmentation.sample(keypoints, center, size, self.lower_body_joints, self.codec.aspect_ratio)
        else:
            regions = TopDownRegions.create(center[None], size[None])
        flip_indices = self.keypoint_spec.flip_indices
        crop = self.codec.crop(image, regions, pad_value=self.pad_value)[0]
        heatmaps, weights = self.codec.encode(keypoints[None, :, :2], keypoints[None, :, 2], regions, flip_indices)
        crop_xy = self.codec.keypoints_to_input(keypoints[None, :, :2], regions, flip_indices)[0]
        visibility = keypoints[list(flip_indices), 2:] if bool(regions.flipped[0]) else keypoints[:, 2:]
        crop_keypoints = torch.where(visibility > 0, torch.cat((crop_xy, visibility), dim=-1), 0.0)
        return {
            "image": crop.round().clamp(0, 255).to(torch.uint8),
            "heatmaps": heatmaps[0],
            "target_weight": weights[0],
            "keypoints": crop_keypoints,
            "image_id": torch.tensor(person.image_id),
            "annotation_id": torch.tensor(person.annotation_id),
            "center": regions.center[0],
            "size": regions.size[0],
            "rotation": regions.rotation[0].float(),
            "flipped": regions.flipped[0],
            "score": torch.tensor(1.0),
            "area": torch.tensor(person.area, dtype=torch.float32),
        }
