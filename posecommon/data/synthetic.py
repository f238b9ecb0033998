"""Deterministic synthetic COCO-format keypoint dataset: procedurally drawn people with exact keypoints.

The embedded default dataset of posezoo, written as a real COCO keypoints JSON plus an image directory so that
training, evaluation and prediction on it run through exactly the code that reads real COCO.

Each image has a cluttered background (a two-colour gradient, random rectangles, ellipses, polygons and thick
lines) and 1 to ``max_people`` people facing the camera. A person is a 2-D stick figure with human proportions
(jittered per person) and random joint angles: torso lean, shoulder and hip abduction, elbow and knee bends and
limb foreshortening, which gives standing, waving, crouching and kicking poses at scales from
``person_scale[0]`` to ``person_scale[1]`` of the image height. Limbs are thick capsules of varied width in the
person's shirt, trouser and skin colours; the head is a skin-coloured circle with hair on top, dark eyes, a nose
dot and ears; every body joint carries a small disc in a lighter (or, on light colours, darker) shade of its limb
so that small models can learn joint positions in minutes. Because everyone faces the camera, a person's left side
appears on the image's right, as for a real person seen from the front. People are drawn one after another, so
later people occlude earlier ones. Images are rendered at twice the resolution and box-filtered down (anti-aliased,
so joint markers are positioned to about a quarter pixel), then get mild Gaussian noise.

Annotations (posezoo's pixel-centre convention, :mod:`posecommon.ops.geometry`: integer coordinates are pixel
centres and a ``W``-pixel-wide image spans ``[-0.5, W - 0.5]``):

- ``keypoints``: the exact positions the figure was drawn from, rounded to 0.01 px before drawing.
- Visibility: ``v = 0`` (stored as ``[0, 0, 0]``) when the keypoint lies outside the image area, i.e. its pixel
  ``(floor(x + 0.5), floor(y + 0.5))`` is not in the image; ``v = 1`` when that pixel is covered by a person
  drawn later (occluded by another person); ``v = 2`` otherwise. Self-occlusion is not modelled (arms are drawn in
  front of the torso, and every joint disc is drawn on top of its own limbs).
- ``bbox``: the tight box of the person's rendered silhouette inside the image (including the parts later covered
  by other people), ``[x1 - 0.5, y1 - 0.5, x2 - x1 + 1, y2 - y1 + 1]`` for silhouette pixel columns ``x1..x2`` and
  rows ``y1..y2``; every labelled keypoint lies inside it.
- ``area``: the number of silhouette pixels inside the image (the OKS scale), again before occlusion.
- ``num_keypoints``: the number of keypoints with ``v > 0``; ``iscrowd`` is 0; people whose silhouette does not
  reach into the image are not annotated.

Any :class:`~posecommon.keypoints.KeypointSpec` whose joint names are among the figure's named points
(:data:`BODY_POINTS`: the 17 COCO names plus ``neck``, ``pelvis`` and ``head_top``) can be annotated. Image ``i`` of
a split is drawn from a random generator seeded by ``(seed, split, i)`` only, so the same seed gives byte-identical
files, and growing ``num_images`` keeps the earlier images unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..keypoints import COCO17, KeypointSpec

__all__ = ["BODY_POINTS", "SyntheticCoco", "generate_synthetic_coco", "generate_synthetic_splits"]

logger = logging.getLogger(__name__)

BODY_POINTS: tuple[str, ...] = (*COCO17.names, "neck", "pelvis", "head_top")
"""Names of the points the synthetic figure defines; a keypoint spec may use any subset, in any order."""

_SUPERSAMPLE = 2  # people are drawn at this multiple of the output resolution, then box-filtered down

Point = np.ndarray  # (2,) float (x, y) in output-image pixels
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class SyntheticCoco:
    """Where a generated split was written.

    Args:
        ann_file: COCO keypoints JSON file.
        image_dir: Directory of the images (``file_name`` entries are relative to it).
        num_images: Number of images.
        num_annotations: Number of person annotations.
    """

    ann_file: Path
    image_dir: Path
    num_images: int
    num_annotations: int


class _Painter:
    """Draws shapes at the supersampled resolution onto an RGB canvas and a person's silhouette mask at once."""

    def __init__(self, canvas: Image.Image, mask: Image.Image) -> None:
        self._rgb = ImageDraw.Draw(canvas)
        self._mask = ImageDraw.Draw(mask)

    @staticmethod
    def _xy(point: Point) -> tuple[float, float]:
        # pixel i of the output covers supersampled pixels s*i .. s*i + s - 1, whose centre is s*i + (s - 1) / 2
        return (
            float(point[0]) * _SUPERSAMPLE + (_SUPERSAMPLE - 1) / 2,
            float(point[1]) * _SUPERSAMPLE + (_SUPERSAMPLE - 1) / 2,
        )

    def disc(self, centre: Point, radius: float, colour: Colour) -> None:
        x, y = self._xy(centre)
        r = max(radius * _SUPERSAMPLE, 0.5)
        box = (x - r, y - r, x + r, y + r)
        self._rgb.ellipse(box, fill=colour)
        self._mask.ellipse(box, fill=255)

    def capsule(self, start: Point, end: Point, width: float, colour: Colour) -> None:
        """A thick segment with round ends."""
        w = max(round(width * _SUPERSAMPLE), 1)
        self._rgb.line((self._xy(start), self._xy(end)), fill=colour, width=w)
        self._mask.line((self._xy(start), self._xy(end)), fill=255, width=w)
        self.disc(start, width / 2, colour)
        self.disc(end, width / 2, colour)

    def polygon(self, points: Sequence[Point], colour: Colour) -> None:
        xy = [self._xy(p) for p in points]
        self._rgb.polygon(xy, fill=colour)
        self._mask.polygon(xy, fill=255)


def _shade(colour: Colour, amount: float = 0.35) -> Colour:
    """A lighter shade of a dark colour, or a darker shade of a light one (the joint-marker colour)."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    target = 255.0 if luminance < 140 else 0.0
    return tuple(round(c + (target - c) * amount) for c in colour)  # type: ignore[return-value]


def _random_colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> Colour:
    return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]


def _rotate(vector: Point, degrees: float) -> Point:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array((c * vector[0] - s * vector[1], s * vector[0] + c * vector[1]))


@dataclass
class _Figure:
    """A posed person: named points (output-image pixels) plus the drawing parameters."""

    points: dict[str, Point]
    head_radius: float
    arm_width: float
    leg_width: float
    skin: Colour
    hair: Colour
    shirt: Colour
    trousers: Colour
    shoes: Colour
    long_sleeves: bool
    arm_order: tuple[str, str]

    def shifted(self, offset: Point) -> _Figure:
        return replace(self, points={name: np.round(p + offset, 2) for name, p in self.points.items()})

    def extent(self) -> tuple[float, float, float, float]:
        """Rough ``(x1, y1, x2, y2)`` of the drawn figure (points grown by the widest part)."""
        xy = np.stack(list(self.points.values()))
        pad = max(self.head_radius * 1.1, self.leg_width)
        return (xy[:, 0].min() - pad, xy[:, 1].min() - pad, xy[:, 0].max() + pad, xy[:, 1].max() + pad)


def _pose_figure(rng: np.random.Generator, height: float) -> _Figure:
    """A random pose with the pelvis at the origin, for a person ``height`` pixels tall when standing."""
    jitter = lambda: rng.uniform(0.9, 1.1)  # noqa: E731
    head_r = 0.065 * height * jitter()
    torso = 0.30 * height * jitter()
    shoulder = 0.11 * height * jitter()
    hip = 0.075 * height * jitter()
    upper_arm, forearm = 0.17 * height * jitter(), 0.15 * height * jitter()
    thigh, shin = 0.24 * height * jitter(), 0.23 * height * jitter()
    lean = float(np.clip(rng.normal(0.0, 12.0), -35.0, 35.0))
    down = _rotate(np.array((0.0, 1.0)), lean)  # torso axis, pelvis -> feet
    right = np.array((down[1], -down[0]))  # image-right when upright; the person's left (they face the camera)
    pelvis = np.zeros(2)
    neck = pelvis - down * torso
    head = neck - down * (0.045 * height + head_r)
    points: dict[str, Point] = {"pelvis": pelvis, "neck": neck, "head_top": head - down * head_r}

    def limb_direction(side: float, outward_degrees: float) -> Point:
        # rotate the downward axis towards the person's ``side`` (+1 left = image right, -1 right)
        return _rotate(down, -side * outward_degrees)

    for side_name, side in (("left", 1.0), ("right", -1.0)):
        sh = neck + right * side * shoulder
        raise_angle = rng.uniform(-30.0, 170.0)
        elbow = sh + limb_direction(side, raise_angle) * upper_arm * rng.uniform(0.6, 1.0)
        bend = rng.uniform(-140.0, 140.0) * rng.uniform(0.3, 1.0)
        wrist = elbow + limb_direction(side, raise_angle + bend) * forearm * rng.uniform(0.6, 1.0)
        hp = pelvis + right * side * hip
        spread = rng.uniform(-12.0, 35.0) if rng.random() < 0.85 else rng.uniform(35.0, 90.0)
        knee = hp + limb_direction(side, spread) * thigh * rng.uniform(0.45, 1.0)
        knee_bend = rng.uniform(-60.0, 60.0) * rng.uniform(0.2, 1.0)
        ankle = knee + limb_direction(side, spread + knee_bend) * shin * rng.uniform(0.6, 1.0)
        points.update(
            {
                f"{side_name}_shoulder": sh,
                f"{side_name}_elbow": elbow,
                f"{side_name}_wrist": wrist,
                f"{side_name}_hip": hp,
                f"{side_name}_knee": knee,
                f"{side_name}_ankle": ankle,
            }
        )
    yaw = rng.uniform(-0.5, 0.5)  # face turned towards image right (> 0) or left (< 0), in head radii
    face = head + right * (0.45 * yaw * head_r)
    points["nose"] = face + down * (0.15 * head_r)
    for side_name, side in (("left", 1.0), ("right", -1.0)):
        points[f"{side_name}_eye"] = face + right * (side * 0.35 * head_r) - down * (0.2 * head_r)
        points[f"{side_name}_ear"] = head + right * (side * (0.9 - 0.25 * side * yaw) * head_r) - down * (0.1 * head_r)
    skin_tone = float(rng.uniform(0.0, 1.0))
    skin = tuple(round(a + (b - a) * skin_tone) for a, b in zip((245, 205, 180), (95, 60, 40), strict=True))
    arm_width = 0.055 * height * rng.uniform(0.7, 1.3)
    return _Figure(
        points={name: np.asarray(p, dtype=np.float64) for name, p in points.items()},
        head_radius=head_r,
        arm_width=arm_width,
        leg_width=arm_width * rng.uniform(1.1, 1.6),
        skin=skin,  # type: ignore[arg-type]
        hair=_random_colour(rng, 0, 120),
        shirt=_random_colour(rng),
        trousers=_random_colour(rng, 0, 200),
        shoes=_random_colour(rng, 0, 90),
        long_sleeves=bool(rng.random() < 0.5),
        arm_order=("left", "right") if rng.random() < 0.5 else ("right", "left"),
    )


def _draw_figure(painter: _Painter, figure: _Figure) -> None:
    """Legs, torso, head and arms, each limb followed by the markers of the joints it ends in."""
    p = figure.points
    for side in ("left", "right"):
        painter.capsule(p[f"{side}_hip"], p[f"{side}_knee"], figure.leg_width, figure.trousers)
        painter.capsule(p[f"{side}_knee"], p[f"{side}_ankle"], figure.leg_width * 0.85, figure.trousers)
        foot_dir = p[f"{side}_ankle"] - p[f"{side}_knee"]
        foot_dir = foot_dir / max(float(np.linalg.norm(foot_dir)), 1e-6)
        painter.disc(p[f"{side}_ankle"] + foot_dir * figure.leg_width * 0.4, figure.leg_width * 0.55, figure.shoes)
        painter.disc(p[f"{side}_knee"], figure.leg_width * 0.3, _shade(figure.trousers))
        painter.disc(p[f"{side}_ankle"], figure.leg_width * 0.3, _shade(figure.shoes))
    grow = figure.arm_width * 0.5
    across = p["left_shoulder"] - p["right_shoulder"]
    across = across / max(float(np.linalg.norm(across)), 1e-6) * grow
    painter.polygon(
        (p["left_shoulder"] + across, p["right_shoulder"] - across, p["right_hip"] - across, p["left_hip"] + across),
        figure.shirt,
    )
    for side in ("left", "right"):
        painter.disc(p[f"{side}_hip"], figure.leg_width * 0.3, _shade(figure.trousers))
    head = (p["left_ear"] + p["right_ear"]) / 2
    painter.capsule(p["neck"], head, figure.head_radius * 0.7, figure.skin)
    up = (p["head_top"] - head) / max(float(np.linalg.norm(p["head_top"] - head)), 1e-6)
    painter.disc(head + up * figure.head_radius * 0.12, figure.head_radius * 1.02, figure.hair)
    painter.disc(head - up * figure.head_radius * 0.08, figure.head_radius * 0.9, figure.skin)
    for side in ("left", "right"):
        painter.disc(p[f"{side}_ear"], figure.head_radius * 0.2, _shade(figure.skin, 0.25))
        painter.disc(p[f"{side}_eye"], figure.head_radius * 0.12, (20, 20, 30))
    painter.disc(p["nose"], figure.head_radius * 0.12, _shade(figure.skin, 0.45))
    forearm_colour = figure.shirt if figure.long_sleeves else figure.skin
    for side in figure.arm_order:
        painter.capsule(p[f"{side}_shoulder"], p[f"{side}_elbow"], figure.arm_width, figure.shirt)
        painter.capsule(p[f"{side}_elbow"], p[f"{side}_wrist"], figure.arm_width * 0.85, forearm_colour)
        painter.disc(p[f"{side}_wrist"], figure.arm_width * 0.6, figure.skin)
        painter.disc(p[f"{side}_shoulder"], figure.arm_width * 0.3, _shade(figure.shirt))
        painter.disc(p[f"{side}_elbow"], figure.arm_width * 0.3, _shade(forearm_colour))
        painter.disc(p[f"{side}_wrist"], figure.arm_width * 0.3, _shade(figure.skin))


def _background(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A gradient with random clutter, at the output resolution."""
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c1 = np.asarray(_random_colour(rng), dtype=np.float32)
    c2 = np.asarray(_random_colour(rng), dtype=np.float32)
    array = c1 + (c2 - c1) * t[..., None]
    image = Image.fromarray(array.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    side = min(height, width)
    for _ in range(int(rng.integers(4, 16))):
        kind = int(rng.integers(0, 4))
        colour = _random_colour(rng)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.03, 0.4, size=2) * side
        if kind == 0:
            draw.rectangle((x - w / 2, y - h / 2, x + w / 2, y + h / 2), fill=colour)
        elif kind == 1:
            draw.ellipse((x - w / 2, y - h / 2, x + w / 2, y + h / 2), fill=colour)
        elif kind == 2:
            corners = rng.uniform(-1, 1, size=(int(rng.integers(3, 6)), 2)) * (w, h) + (x, y)
            draw.polygon([tuple(c) for c in corners.tolist()], fill=colour)
        else:
            angle = rng.uniform(0, math.pi)
            dx, dy = math.cos(angle) * w, math.sin(angle) * w
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=colour, width=max(int(rng.uniform(0.005, 0.03) * side), 1))
    return image


def _overlaps(box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]) -> bool:
    """Whether ``box`` covers more than 40 % of an earlier box or vice versa (avoids hiding people entirely)."""
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    for ox1, oy1, ox2, oy2 in others:
        inter = max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1))
        if inter > 0.4 * min(area, (ox2 - ox1) * (oy2 - oy1)):
            return True
    return False


def _render_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_people: int,
    person_scale: tuple[float, float],
    keypoint_names: Sequence[str],
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One image and its people: ``[{"keypoints": (K, 3), "bbox": [x, y, w, h], "area": int}]``."""
    background = _background(rng, height, width)
    size_ss = (width * _SUPERSAMPLE, height * _SUPERSAMPLE)
    canvas = background.resize(size_ss, Image.Resampling.NEAREST)
    id_map = Image.new("L", (width, height), 0)
    figures: list[_Figure] = []
    masks: list[Image.Image] = []
    placed: list[tuple[float, float, float, float]] = []
    for _ in range(num_people):
        figure = None
        for _attempt in range(10):
            candidate = _pose_figure(rng, height * rng.uniform(*person_scale))
            x1, y1, x2, y2 = candidate.extent()
            bw, bh = x2 - x1, y2 - y1
            cx = rng.uniform(min(0.3 * bw, width / 2), max(width - 0.3 * bw, width / 2))
            cy = rng.uniform(min(0.3 * bh, height / 2), max(height - 0.3 * bh, height / 2))
            shifted = candidate.shifted(np.array((cx - (x1 + x2) / 2, cy - (y1 + y2) / 2)))
            if not _overlaps(shifted.extent(), placed):
                figure = shifted
                break
        if figure is None:
            continue
        mask_ss = Image.new("L", size_ss, 0)
        _draw_figure(_Painter(canvas, mask_ss), figure)
        mask = mask_ss.reduce(_SUPERSAMPLE).point(lambda v: 255 if v > 100 else 0)  # >= 2 of 4 subpixels
        id_map.paste(len(figures) + 1, mask=mask)
        figures.append(figure)
        masks.append(mask)
        placed.append(figure.extent())

    image = np.asarray(canvas.reduce(_SUPERSAMPLE), dtype=np.float32)
    image = image + rng.normal(0.0, rng.uniform(0.0, 8.0), size=image.shape).astype(np.float32)
    image = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), "RGB")

    ids = np.asarray(id_map)
    people = []
    for index, (figure, mask) in enumerate(zip(figures, masks, strict=True)):
        box = mask.getbbox()
        if box is None:  # entirely outside the image
            continue
        left, top, right, bottom = box  # PIL: right/bottom are exclusive pixel indices
        keypoints = np.zeros((len(keypoint_names), 3), dtype=np.float64)
        for k, name in enumerate(keypoint_names):
            x, y = figure.points[name]
            px, py = math.floor(x + 0.5), math.floor(y + 0.5)
            if 0 <= px < width and 0 <= py < height:
                keypoints[k] = (x, y, 1 if ids[py, px] > index + 1 else 2)
                # a joint of a tiny figure may fall just off its thresholded silhouette: keep it inside the box
                left, top, right, bottom = min(left, px), min(top, py), max(right, px + 1), max(bottom, py + 1)
        people.append(
            {
                "keypoints": keypoints,
                "bbox": [left - 0.5, top - 0.5, float(right - left), float(bottom - top)],
                "area": int(np.count_nonzero(np.asarray(mask))),
            }
        )
    return image, people


def _split_key(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def generate_synthetic_coco(
    out_dir: str | Path,
    num_images: int,
    image_size: tuple[int, int] = (256, 256),
    max_people: int = 3,
    seed: int = 0,
    keypoint_spec: KeypointSpec = COCO17,
    split: str = "train",
    min_image_size: tuple[int, int] | None = None,
    person_scale: tuple[float, float] = (0.35, 0.9),
    image_format: str = "jpg",
) -> SyntheticCoco:
    """Generate a synthetic COCO keypoints split (see the module docstring for what is drawn and annotated).

    Files written, following COCO's own layout::

        out_dir/annotations/person_keypoints_{split}.json
        out_dir/{split}/{image_id:012d}.{image_format}

    Args:
        out_dir: Dataset root (created if needed).
        num_images: Number of images.
        image_size: Image ``(H, W)``; with ``min_image_size`` the largest size.
        max_people: Each image has between 1 and ``max_people`` people (fewer when no free spot was found).
        seed: Random seed; the same seed and arguments give byte-identical files.
        keypoint_spec: Keypoints to annotate; its names must be in :data:`BODY_POINTS`.
        split: Split name (part of the file names and of the random seed).
        min_image_size: If given, each image's height and width are drawn uniformly between this ``(H, W)`` and
            ``image_size``.
        person_scale: Range of a standing person's height as a fraction of the image height.
        image_format: ``"jpg"`` (quality 92, small files) or ``"png"`` (lossless).

    Returns:
        The paths and counts of the written split.

    Raises:
        ValueError: a joint name of ``keypoint_spec`` is not a synthetic body point, or an argument is out of range.
    """
    unknown = [name for name in keypoint_spec.names if name not in BODY_POINTS]
    if unknown:
        raise ValueError(f"the synthetic figure has no points named {unknown}; available: {list(BODY_POINTS)}")
    if num_images < 1 or not 1 <= max_people <= 250:
        raise ValueError(f"need num_images >= 1 and 1 <= max_people <= 250, got {num_images}, {max_people}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    low_size = image_size if min_image_size is None else min_image_size
    if min(*low_size, *image_size) < 16 or low_size[0] > image_size[0] or low_size[1] > image_size[1]:
        raise ValueError(f"image sizes must be >= 16 px and min_image_size <= image_size, got {low_size}, {image_size}")
    if not 0 < person_scale[0] <= person_scale[1]:
        raise ValueError(f"person_scale must be an increasing pair of positive fractions, got {person_scale}")

    root = Path(out_dir)
    image_dir = root / split
    ann_dir = root / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng((seed, _split_key(split), index))
        height = int(rng.integers(low_size[0], image_size[0] + 1))
        width = int(rng.integers(low_size[1], image_size[1] + 1))
        num_people = int(rng.integers(1, max_people + 1))
        image, people = _render_image(rng, height, width, num_people, person_scale, keypoint_spec.names)
        image_id = index + 1
        file_name = f"{image_id:012d}.{image_format}"
        if image_format == "jpg":
            image.save(image_dir / file_name, format="JPEG", quality=92)
        else:
            image.save(image_dir / file_name, format="PNG")
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for person in people:
            keypoints = person["keypoints"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [round(float(v), 2) for v in person["bbox"]],
                    "area": person["area"],
                    "num_keypoints": int((keypoints[:, 2] > 0).sum()),
                    "keypoints": [round(float(v), 2) if j % 3 < 2 else int(v) for j, v in enumerate(keypoints.ravel())],
                }
            )
    dataset = {
        "info": {"description": f"posezoo synthetic people, split {split!r}, seed {seed}", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(keypoint_spec.names),
                "skeleton": [[a + 1, b + 1] for a, b in keypoint_spec.skeleton],
            }
        ],
    }
    ann_file = ann_dir / f"person_keypoints_{split}.json"
    ann_file.write_text(json.dumps(dataset, separators=(",", ":")), encoding="utf-8")
    logger.info("wrote %d synthetic images with %d people to %s", len(images), len(annotations), image_dir)
    return SyntheticCoco(ann_file, image_dir, len(images), len(annotations))


def generate_synthetic_splits(
    out_dir: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, SyntheticCoco]:
    """Generate a ``train`` and a ``val`` split under one root (disjoint images: the split name enters the seed).

    Args:
        out_dir: Dataset root, laid out like COCO (see :func:`generate_synthetic_coco`).
        num_train: Training images.
        num_val: Validation images.
        seed: Random seed shared by both splits.
        **kwargs: Any other argument of :func:`generate_synthetic_coco`.

    Returns:
        ``{"train": ..., "val": ...}``.
    """
    return {
        split: generate_synthetic_coco(out_dir, count, seed=seed, split=split, **kwargs)
        for split, count in (("train", num_train), ("val", num_val))
    }
