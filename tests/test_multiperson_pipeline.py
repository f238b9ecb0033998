"""The fast multi-person training pipeline against the formulas of its module docstring.

The dataset's random draws are recorded by wrapping its ``_draw_augmentation`` (the real method still runs); every
output keypoint and box is then recomputed here from the source annotations with the documented maps (letterbox
resize, mosaic placement, scale and shift about the canvas centre, flip with swapped joints). The pipeline moves
each image's placement by at most half an output pixel onto the resampling grid (``TilePlacement.on_source_grid``);
the tests bound that move, check that it is unbiased, and check that pixels and targets follow the moved placement.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon import KeypointSpec
from posecommon.data import MultiPersonCocoDataset
from posecommon.data.hsv import augment_hsv_, draw_hsv_gains
from posecommon.data.tiles import TilePlacement, compose_tiles

SPEC4 = KeypointSpec.from_flip_pairs(
    "four", ("left_a", "right_a", "left_b", "right_b"), ((0, 1), (2, 3)), ((0, 1), (2, 3))
)
SIZE = 64
GRID_MOVE = 0.5  # the largest move of a placement onto the resampling grid, in output pixels


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Six small images of different shapes with two persons each, four labelled joints spread over the image."""
    root = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(1)
    images, annotations = [], []
    for image_id in range(1, 7):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for _ in range(2):
            kpts = np.zeros((4, 3))
            kpts[:, 0] = rng.uniform(2, w - 3, 4).round(2)
            kpts[:, 1] = rng.uniform(2, h - 3, 4).round(2)
            kpts[:, 2] = 2
            x1, y1 = kpts[:, :2].min(0) - 1
            x2, y2 = kpts[:, :2].max(0) + 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "keypoints": kpts.ravel().tolist(),
                }
            )
    ann = root / "people.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations}))
    return ann, root


def _expected_persons(dataset: MultiPersonCocoDataset, aug) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every source person mapped to the output by the documented formulas: keypoints (K, 2), which of them
    stay labelled (inside the visible part of their image and the output), and the box clipped to that part."""
    s = SIZE
    canvas = 2 * s if aug.centre is not None else s
    out = []
    for quadrant, index in enumerate(aug.indices):
        record = dataset.data.image(dataset.image_ids[index])
        ratio = s / max(record.height, record.width)
        new_w, new_h = round(record.width * ratio), round(record.height * ratio)
        sx, sy = new_w / record.width, new_h / record.height
        left = top = 0
        if aug.centre is not None:
            xc, yc = aug.centre
            left = xc - new_w if quadrant in (0, 2) else xc
            top = yc - new_h if quadrant in (0, 1) else yc

        def canvas_to_output(cx, cy):
            px = (cx - (canvas - 1) / 2) * aug.factor + aug.shift[0] + (s - 1) / 2
            py = (cy - (canvas - 1) / 2) * aug.factor + aug.shift[1] + (s - 1) / 2
            return px, py

        # the pasted image's visible canvas pixels, as a region in output pixels, cut by the output
        rx1, ry1 = canvas_to_output(max(left, 0) - 0.5, max(top, 0) - 0.5)
        rx2, ry2 = canvas_to_output(min(left + new_w, canvas) - 0.5, min(top + new_h, canvas) - 0.5)
        rx1, ry1, rx2, ry2 = max(rx1, -0.5), max(ry1, -0.5), min(rx2, s - 0.5), min(ry2, s - 0.5)
        for person in dataset.data.persons[record.image_id]:
            xy = person.keypoints[:, :2].astype(np.float64)
            kx, ky = canvas_to_output((xy[:, 0] + 0.5) * sx - 0.5 + left, (xy[:, 1] + 0.5) * sy - 0.5 + top)
            visible = (kx >= rx1) & (kx < rx2) & (ky >= ry1) & (ky < ry2)
            # within half a pixel of the region's border the on-grid move may decide either way
            edge_distance = np.minimum.reduce([np.abs(kx - rx1), np.abs(kx - rx2), np.abs(ky - ry1), np.abs(ky - ry2)])
            certain = edge_distance > GRID_MOVE + 1e-6
            x1, y1, x2, y2 = person.bbox_xyxy
            bx, by = canvas_to_output(
                (np.array([x1, x2]) + 0.5) * sx - 0.5 + left, (np.array([y1, y2]) + 0.5) * sy - 0.5 + top
            )
            box = np.array(
                [np.clip(bx[0], rx1, rx2), np.clip(by[0], ry1, ry2), np.clip(bx[1], rx1, rx2), np.clip(by[1], ry1, ry2)]
            )
            keypoints = np.stack((kx, ky), -1)
            if aug.flip:
                keypoints[:, 0] = s - 1 - keypoints[:, 0]
                flip = list(SPEC4.flip_indices)
                keypoints, visible, certain = keypoints[flip], visible[flip], certain[flip]
                box = np.array([s - 1 - box[2], box[1], s - 1 - box[0], box[3]])
            out.append((keypoints, visible, certain, box))
    return out


def test_targets_follow_the_analytic_map_and_draws_have_the_documented_ranges(people, monkeypatch):
    dataset = MultiPersonCocoDataset(*people, input_size=SIZE, keypoint_spec=SPEC4, mosaic=0.8, translate=0.1)
    draws = []
    original = dataset._draw_augmentation

    def recording(index):
        aug = original(index)
        draws.append(aug)
        return aug

    monkeypatch.setattr(dataset, "_draw_augmentation", recording)
    torch.manual_seed(0)
    matched = 0
    moves = []
    for step in range(240):
        sample = dataset[step % len(dataset)]
        candidates = _expected_persons(dataset, draws[-1])
        for keypoints, box in zip(sample["keypoints"].double().numpy(), sample["boxes"].double().numpy(), strict=True):
            # the source person whose expected box is nearest; every coordinate must agree to 0.5 px (the issue's
            # bound; the on-grid move is at most 0.5 px and float rounding adds 1e-4)
            best = min(candidates, key=lambda c: np.abs(c[3] - box).max())
            exp_kpts, visible, certain, exp_box = best
            assert np.abs(exp_box - box).max() <= GRID_MOVE + 1e-3, (step, exp_box, box)
            labelled = keypoints[:, 2] > 0
            assert (labelled == visible)[certain].all(), (step, labelled, visible)
            both = labelled & visible
            move = keypoints[both, :2] - exp_kpts[both]
            assert np.abs(move).max(initial=0) <= GRID_MOVE + 1e-3, step
            moves.append(move)
            assert (keypoints[~labelled] == 0).all()
            matched += 1
    assert matched > 300
    moves = np.concatenate(moves)
    assert len(moves) > 500
    assert np.abs(moves.mean(0)).max() < 0.05  # unbiased: each axis's move is uniform on [-0.5, 0.5] (sd 0.29)
    assert np.abs(moves).mean() > 0.1  # the comparison above sees the move (no move would be 0)
    factors = np.array([a.factor for a in draws])
    shifts = np.array([a.shift for a in draws])
    centres = np.array([a.centre for a in draws if a.centre is not None])
    flips = np.array([a.flip for a in draws])
    assert factors.min() >= 0.5 and factors.max() < 1.5 and factors.min() < 0.55 and factors.max() > 1.45
    assert abs(factors.mean() - 1.0) < 0.06  # uniform on [0.5, 1.5]: sd of the mean 0.019
    assert np.abs(shifts).max() <= 0.1 * SIZE and np.abs(shifts).max() > 0.095 * SIZE
    assert abs(shifts.mean()) < 0.6  # sd of the mean of U(-6.4, 6.4) over 480 draws: 0.17
    assert centres.min() >= SIZE // 2 and centres.max() < 3 * SIZE // 2
    assert abs(centres.mean() - (SIZE - 0.5)) < 2.0  # int(U(32, 96)): mean 63.5, sd of the mean about 0.9
    assert 0.4 < len(centres) / len(draws) < 0.9 and 0.38 < flips.mean() < 0.62
    gains = np.array([a.hsv for a in draws])
    assert (np.abs(gains - 1) <= np.array([0.015, 0.7, 0.4])).all()


def test_hsv_is_the_last_draw_and_applies_to_the_finished_image(people):
    """The HSV gains are drawn after every geometric draw, so the HSV-off sample plus those gains is the sample."""
    plain = MultiPersonCocoDataset(*people, input_size=SIZE, keypoint_spec=SPEC4, hsv_h=0, hsv_s=0, hsv_v=0)
    coloured = MultiPersonCocoDataset(*people, input_size=SIZE, keypoint_spec=SPEC4, hsv_h=0.1, hsv_s=0.7, hsv_v=0.4)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = plain[seed]
        gains = draw_hsv_gains(0.1, 0.7, 0.4)
        bgr = np.ascontiguousarray(expected["image"].permute(1, 2, 0).numpy()[..., ::-1])
        augment_hsv_(bgr, gains)  # per pixel: the flip the sample may carry does not matter
        planes = bgr[..., ::-1].transpose(2, 0, 1)
        torch.manual_seed(seed)
        got = coloured[seed]
        assert np.array_equal(got["image"].numpy(), planes)
        assert not np.array_equal(planes, expected["image"].numpy())
        torch.testing.assert_close(got["keypoints"], expected["keypoints"])


@pytest.mark.parametrize("bad", [{"hsv_h": -0.1}, {"hsv_s": 1.5}, {"pad_value": 300.0}])
def test_bad_augmentation_parameters_are_rejected(people, bad):
    with pytest.raises(ValueError, match=r"HSV|pad_value"):
        MultiPersonCocoDataset(*people, input_size=SIZE, keypoint_spec=SPEC4, **bad)


@pytest.mark.parametrize(("scale", "offset"), [((2.5, 1.75), (3.3, -7.6)), ((0.45, 0.6), (10.2, 4.9))])
def test_compose_tiles_samples_where_the_placement_says(scale, offset):
    """On linear ramps, each output pixel's value is the ramp at the mapped source point (half a pixel = 1 level).

    Tolerance: half a level of uint8 rounding, plus up to 0.17 level (0.08 source pixel) of the sampled triangle's
    off-centre weight when shrinking by a non-integer factor (Pillow's ``BILINEAR`` filter has the same); an output
    pixel misplaced by half a pixel is off by at least 1.6 levels here."""
    xs, ys = np.meshgrid(np.arange(120), np.arange(100))
    ramp = np.stack((2 * xs + 5, 2 * ys + 5, np.full_like(xs, 77)), -1).astype(np.uint8)
    region = (offset[0] - 0.5 * scale[0] + 0.3, offset[1] - 0.5 * scale[1] + 0.2, 60.4, 50.7)
    placement = TilePlacement(scale, offset, region).on_source_grid((56, 64))
    assert np.abs(np.subtract(placement.offset, offset)).max() <= GRID_MOVE + 1e-9
    offset = placement.offset  # pixels follow the on-grid placement exactly
    out = compose_tiles([ramp], [placement], (56, 64), 114).astype(np.float64)
    left, top, right, bottom = placement.output_box((56, 64))
    assert (out[:top] == 114).all() and (out[:, :left] == 114).all()
    assert (out[bottom:] == 114).all() and (out[:, right:] == 114).all()
    px, py = np.meshgrid(np.arange(left, right), np.arange(top, bottom))
    src_x = (px - offset[0]) / scale[0]
    src_y = (py - offset[1]) / scale[1]
    support = max(1.0, 1 / scale[0]) + 1  # keep away from the source border, where the filter is cut
    interior = (src_x > support) & (src_x < 119 - support) & (src_y > support) & (src_y < 99 - support)
    assert interior.sum() > 100
    got = out[top:bottom, left:right]
    assert np.abs(got[..., 0] - (2 * src_x + 5))[interior].max() < 0.7
    assert np.abs(got[..., 1] - (2 * src_y + 5))[interior].max() < 0.7
    assert (got[..., 2] == 77).all()
