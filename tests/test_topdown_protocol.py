"""The top-down codec against the official TransPose formulas, re-derived here in numpy (not imported).

The helpers below restate, from TransPose's code, ``get_affine_transform`` / ``get_3rd_point`` / ``get_dir``
(``lib/utils/transforms.py:58-111``, solved from three point pairs like ``cv2.getAffineTransform``), ``_xywh2cs``
(``lib/dataset/coco.py:215-230``), ``generate_target`` / ``adjust_target_weight`` (``lib/dataset/JointsDataset.py:
239-295``) and ``get_final_preds`` with ``get_max_preds``, ``gaussian_blur``, ``taylor`` and ``transform_preds``
(``lib/core/inference.py:20-112``), as Python loops in float64. The official code feeds float32 points to OpenCV;
we compare the formulas, so the re-derivation stays in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posecommon import COCO17, TopDownCodec
from posecommon.codecs import TopDownRegions, flip_average
from posecommon.data import TopDownAugmentation, default_lower_body_joints

SIGMA = 2.0
FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]  # coco.py:92-93


# ------------------------------------------------------------------------------------ official formulas, in numpy


def _get_dir(point, rot_rad):
    sn, cs = math.sin(rot_rad), math.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs])


def _third_point(a, b):
    direct = a - b
    return b + np.array([-direct[1], direct[0]])


def official_affine(center, scale_px, rot, output_wh, inv=False):
    """``get_affine_transform`` with ``scale * 200 = scale_px``, from three point pairs."""
    src_w = scale_px[0]
    dst_w, dst_h = output_wh
    rot_rad = np.pi * rot / 180
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center
    src[1] = center + _get_dir([0, (src_w - 1) * -0.5], rot_rad)
    dst[0] = [(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]
    dst[1] = dst[0] + np.array([0, (dst_w - 1) * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        src, dst = dst, src
    # the 2x3 matrix M with M @ [x, y, 1] = dst for the three pairs
    return np.linalg.solve(np.hstack((src, np.ones((3, 1)))), dst).T


def _apply(matrix, point):
    return matrix @ np.array([point[0], point[1], 1.0])


def official_xywh2cs(box, aspect_ratio):
    x, y, w, h = box
    center = np.array([x + (w - 1) * 0.5, y + (h - 1) * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * 1.25  # pixels (scale * 200)


def official_targets(joints_hm, joints_vis, heatmap_wh):
    w, h = heatmap_wh
    target = np.zeros((len(joints_hm), h, w))
    weight = np.array([min(v, 1) for v in joints_vis], dtype=np.float64)
    for k, (mu_x, mu_y) in enumerate(joints_hm):
        ul = [int(mu_x - 3 * SIGMA), int(mu_y - 3 * SIGMA)]
        br = [int(mu_x + 3 * SIGMA + 1), int(mu_y + 3 * SIGMA + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[k] = 0
        if weight[k] > 0.5:
            x = np.arange(w)[None, :]
            y = np.arange(h)[:, None]
            target[k] = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * SIGMA**2))
    return target, weight


def _blur(heatmap, kernel=11):
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for sigma = 0
    taps = np.exp(-((np.arange(kernel) - (kernel - 1) / 2) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    border = (kernel - 1) // 2
    padded = np.pad(heatmap, border)
    rows = np.array(
        [[padded[i, j : j + kernel] @ taps for j in range(heatmap.shape[1])] for i in range(padded.shape[0])]
    )
    return np.array(
        [[rows[i : i + kernel, j] @ taps for j in range(heatmap.shape[1])] for i in range(heatmap.shape[0])]
    )


def official_decode(heatmaps, center, scale_px):
    """``get_final_preds`` for one instance: ``(K, 2)`` image points and ``(K,)`` maxima."""
    num_joints, h, w = heatmaps.shape
    preds = np.zeros((num_joints, 2))
    maxvals = heatmaps.reshape(num_joints, -1).max(axis=1)
    for k in range(num_joints):
        index = int(np.argmax(heatmaps[k]))
        coord = np.array([index % w, index // w], dtype=np.float64) * (maxvals[k] > 0)
        blurred = _blur(heatmaps[k])
        blurred *= heatmaps[k].max() / blurred.max()
        hm = np.log(np.maximum(blurred, 1e-10))
        px, py = int(coord[0]), int(coord[1])
        if 1 < px < w - 2 and 1 < py < h - 2:
            dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
            dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
            dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
            dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
            dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
            hessian = np.array([[dxx, dxy], [dxy, dyy]])
            if dxx * dyy - dxy**2 != 0:
                coord = coord - np.linalg.inv(hessian) @ np.array([dx, dy])
        preds[k] = _apply(official_affine(center, scale_px, 0, (w, h), inv=True), coord)
    return preds, maxvals


# --------------------------------------------------------------------------------------------------------- cases

BOXES_XYWH = [(100.0, 50.0, 144.0, 320.0), (30.0, 200.0, 300.0, 100.0), (400.0, 10.0, 50.0, 50.0)]
SIZES = [(256, 192), (384, 288)]


def _heatmap_size(input_size):
    return (input_size[0] // 4, input_size[1] // 4)


def _joints_inside(codec, regions, num_joints, margin, seed):
    """Image joints whose heatmap positions are uniform in ``[margin, size - 1 - margin]`` (official inverse)."""
    rng = np.random.default_rng(seed)
    h, w = codec.heatmap_size
    joints = np.zeros((len(regions), num_joints, 2))
    for n in range(len(regions)):
        inverse = official_affine(regions.center[n].numpy(), regions.size[n].numpy(), 0, (w, h), inv=True)
        on_map = rng.uniform([margin, margin], [w - 1 - margin, h - 1 - margin], (num_joints, 2))
        joints[n] = [_apply(inverse, p) for p in on_map]
    return torch.from_numpy(joints)


@pytest.mark.parametrize("input_size", SIZES)
def test_regions_and_transforms_equal_the_official_ones(input_size):
    codec = TopDownCodec(input_size, _heatmap_size(input_size))
    aspect = input_size[1] / input_size[0]
    regions = codec.regions(torch.tensor(BOXES_XYWH, dtype=torch.float64), box_format="xywh")
    rotations = torch.tensor([0.0, 30.0, -72.5], dtype=torch.float64)
    regions = TopDownRegions(regions.center, regions.size, rotations, regions.flipped)
    inputs, heatmaps = codec.input_transform(regions), codec.heatmap_transform(regions)
    for n, box in enumerate(BOXES_XYWH):
        center, scale_px = official_xywh2cs(box, aspect)
        np.testing.assert_allclose(regions.center[n].numpy(), center, atol=1e-12)
        np.testing.assert_allclose(regions.size[n].numpy(), scale_px, atol=1e-12)
        for matrix, (out_h, out_w) in ((inputs[n], input_size), (heatmaps[n], codec.heatmap_size)):
            official = official_affine(center, scale_px, float(rotations[n]), (out_w, out_h))
            np.testing.assert_allclose(matrix.numpy(), official, atol=1e-9)
    # xyxy boxes are the same boxes written as COCO (x, y, w, h)
    xyxy = torch.tensor([(x, y, x + w, y + h) for x, y, w, h in BOXES_XYWH], dtype=torch.float64)
    torch.testing.assert_close(codec.regions(xyxy).center, regions.center)


@pytest.mark.parametrize("input_size", SIZES)
def test_targets_and_weights_equal_the_official_ones(input_size):
    codec = TopDownCodec(input_size, _heatmap_size(input_size))
    h, w = codec.heatmap_size
    regions = codec.regions(torch.tensor(BOXES_XYWH, dtype=torch.float64), box_format="xywh")
    joints = _joints_inside(codec, regions, 17, margin=-12.0, seed=0)  # some joints far outside the heatmap
    rng = np.random.default_rng(1)
    visible = torch.from_numpy(rng.choice([0, 1, 2], (3, 17), p=[0.2, 0.3, 0.5]))
    heatmaps, weights = codec.encode(joints, visible, regions)
    for n in range(3):
        matrix = official_affine(regions.center[n].numpy(), regions.size[n].numpy(), 0, (w, h))
        on_map = [_apply(matrix, p) for p in joints[n].numpy()]
        target, weight = official_targets(on_map, visible[n].tolist(), (w, h))
        np.testing.assert_array_equal(weights[n].numpy(), weight)
        np.testing.assert_allclose(heatmaps[n].numpy(), target, atol=1e-12)
    assert 0 < weights.sum() < (visible > 0).sum()  # both weight rules were exercised


def test_decode_equals_the_official_get_final_preds():
    input_size = (256, 192)
    codec = TopDownCodec(input_size, _heatmap_size(input_size))
    h, w = codec.heatmap_size
    regions = codec.regions(torch.tensor(BOXES_XYWH[:2], dtype=torch.float64), box_format="xywh")
    # smooth maps with a noisy peak anywhere, borders included, and one map whose maximum is negative
    generator = torch.Generator().manual_seed(0)
    peaks = torch.rand(2, 5, 2, generator=generator, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    maps = torch.exp(-((xs - peaks[..., 0, None, None]) ** 2 + (ys - peaks[..., 1, None, None]) ** 2) / 6.0)
    maps = maps + 0.02 * torch.rand(maps.shape, generator=generator, dtype=torch.float64)
    maps[1, 4] -= 2.0
    keypoints, scores = codec.decode(maps, regions)
    for n in range(2):
        preds, maxvals = official_decode(maps[n].numpy(), regions.center[n].numpy(), regions.size[n].numpy())
        np.testing.assert_allclose(keypoints[n].numpy(), preds, atol=1e-8)
        np.testing.assert_allclose(scores[n].numpy(), maxvals, atol=1e-12)


@pytest.mark.parametrize("input_size", SIZES)
@pytest.mark.parametrize("flip_test", [False, True])
def test_perfect_model_round_trip_within_a_hundredth_of_an_image_pixel(input_size, flip_test):
    """Targets of known image joints, as a perfect model would output them, decode back to the joints."""
    codec = TopDownCodec(input_size, _heatmap_size(input_size))
    boxes = torch.tensor([*BOXES_XYWH, (5.0, 5.0, 20.0, 60.0)], dtype=torch.float64)
    regions = codec.regions(boxes, box_format="xywh")
    # DARK's zero-padded blur biases the peak near the border (max error over 400 sigma-2 Gaussians, heatmap px:
    # 0.049 at 3 px from it, 0.0073 at 4, 0.00058 at 5, 0.00035 from 6 on); at 8 image px per heatmap px (the
    # 300-px box) 0.01 image px needs joints 5 heatmap px inside
    joints = _joints_inside(codec, regions, 17, margin=5.0, seed=2)
    heatmaps, _ = codec.encode(joints, None, regions)
    if flip_test:  # the mirrored crop's output is the target of the mirrored instance
        flip_indices = COCO17.flip_indices
        mirrored = TopDownRegions(regions.center, regions.size, regions.rotation, torch.ones(len(regions), dtype=bool))
        flipped_heatmaps, _ = codec.encode(joints, None, mirrored, flip_indices)
        assert not torch.allclose(flipped_heatmaps, heatmaps)
        heatmaps = flip_average(heatmaps, flipped_heatmaps, flip_indices)
    decoded, scores = codec.decode(heatmaps, regions)
    assert (decoded - joints).abs().max() < 0.01
    assert scores.min() > 0.9


def test_a_flipped_sample_is_the_official_flipped_sample():
    """Official: mirror the image, its centre and joints (swapping pairs), rotate by r. Ours: rotate by -r, mirror."""
    input_size, image_width = (256, 192), 640
    codec = TopDownCodec(input_size, _heatmap_size(input_size))
    h, w = codec.heatmap_size
    center, scale_px, rot = np.array([300.0, 210.0]), np.array([180.0, 240.0]), 33.0
    rng = np.random.default_rng(3)
    joints = rng.uniform([150, 40], [450, 380], (17, 2))
    joints[2] = [420.0, 150.0]  # far to one side: its weight is judged at the mirrored position
    visible = rng.choice([0, 1, 2], 17, p=[0.2, 0.3, 0.5])
    # official
    flipped_joints, flipped_vis = joints.copy(), visible.copy()
    flipped_joints[:, 0] = image_width - flipped_joints[:, 0] - 1
    for a, b in FLIP_PAIRS:
        flipped_joints[[a, b]] = flipped_joints[[b, a]]
        flipped_vis[[a, b]] = flipped_vis[[b, a]]
    flipped_center = np.array([image_width - center[0] - 1, center[1]])
    matrix = official_affine(flipped_center, scale_px, rot, (w, h))
    target, weight = official_targets([_apply(matrix, p) for p in flipped_joints], flipped_vis.tolist(), (w, h))
    # ours
    regions = TopDownRegions(
        torch.from_numpy(center)[None], torch.from_numpy(scale_px)[None], torch.tensor([-rot]), torch.tensor([True])
    )
    heatmaps, weights = codec.encode(
        torch.tensor(joints)[None], torch.tensor(visible)[None], regions, COCO17.flip_indices
    )
    np.testing.assert_array_equal(weights[0].numpy(), weight)
    np.testing.assert_allclose(heatmaps[0].numpy(), target, atol=1e-12)
    # and the crop: our image -> crop map equals the official one applied to the mirrored image
    official_input = official_affine(flipped_center, scale_px, rot, input_size[::-1])
    points = rng.uniform(0, 600, (5, 2))
    ours = codec.input_transform(regions)[0].numpy()
    for q in points:
        np.testing.assert_allclose(_apply(ours, q), _apply(official_input, (image_width - 1 - q[0], q[1])), atol=1e-9)


def test_augmentation_follows_the_official_distributions():
    """Rotation probability and clip, scale clip, half-body frequency and upper/lower split, flip rate."""
    augmentation = TopDownAugmentation()
    lower = torch.zeros(17, dtype=torch.bool)
    lower[list(default_lower_body_joints(COCO17))] = True
    keypoints = torch.zeros(17, 3)
    keypoints[:, 2] = 2
    keypoints[:11, :2] = torch.tensor([100.0, 50.0]) + torch.arange(11.0)[:, None]  # upper body, near y = 55
    keypoints[11:, :2] = torch.tensor([100.0, 150.0]) + torch.arange(6.0)[:, None]  # lower body, near y = 152.5
    center, size = torch.tensor([105.0, 100.0]), torch.tensor([90.0, 120.0])
    torch.manual_seed(0)
    draws = 6000
    rotations, scales, flips, halves = [], [], [], []
    for _ in range(draws):
        region = augmentation.sample(keypoints, center, size, lower, 0.75)
        rotations.append(float(region.rotation[0]))
        flips.append(bool(region.flipped[0]))
        y = float(region.center[0, 1])
        halves.append("upper" if y < 60 else "lower" if y > 140 else "none")
        if halves[-1] == "none":
            scales.append(float(region.size[0, 0]) / 90.0)
    rotations, scales = np.abs(np.array(rotations)), np.array(scales)

    def close(value, expected, n):  # within 4 standard deviations of a binomial proportion
        assert abs(value - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-9, (value, expected)

    close(np.mean(rotations > 0), 0.6, draws)
    assert rotations.max() == pytest.approx(90.0)  # clipped at 2 x 45
    close(np.mean(rotations == 90.0), 0.6 * math.erfc(2 / math.sqrt(2)), draws)  # P(|N| > 2) = 4.6 %
    assert scales.min() == pytest.approx(0.65) and scales.max() == pytest.approx(1.35)
    close(
        np.mean(np.isclose(scales, 0.65) | np.isclose(scales, 1.35)),
        math.erfc(1 / math.sqrt(2)),
        len(scales),
    )
    close(np.mean(flips), 0.5, draws)
    half = np.array([h != "none" for h in halves])
    close(half.mean(), 0.3, draws)
    upper_first = 0.5 * (1 + math.erf(0.5 / math.sqrt(2)))  # P(N(0, 1) < 0.5) = 0.69
    close(np.mean([h == "upper" for h in halves if h != "none"]), upper_first, int(half.sum()))
    # too few labelled joints (8, not more than 8): never a half-body crop
    keypoints[8:, 2] = 0
    torch.manual_seed(1)
    centres = [float(augmentation.sample(keypoints, center, size, lower, 0.75).center[0, 1]) for _ in range(200)]
    assert centres == [100.0] * 200


def test_augmentation_draws_in_the_official_order_and_records_the_flip_as_minus_r():
    """Same draws as ``JointsDataset.__getitem__`` (half-body gate, scale, rotation gate, rotation, flip); a flipped
    sample is the official one: image mirrored and rotated by r == crop rotated by -r and mirrored."""
    augmentation = TopDownAugmentation()
    keypoints = torch.zeros(17, 3)
    keypoints[:9] = torch.tensor([50.0, 60.0, 2.0])  # 9 labelled joints (> 8): the half-body gate is drawn
    center, size = torch.tensor([50.0, 60.0]), torch.tensor([90.0, 120.0])
    lower = torch.zeros(17, dtype=torch.bool)
    for seed in range(40):
        torch.manual_seed(seed)
        half_body = float(torch.rand(())) < 0.3
        if half_body:
            continue  # its joint choice draws more; covered by the distribution test
        factor = min(max(float(torch.randn(())) * 0.35 + 1, 0.65), 1.35)
        rotation = min(max(float(torch.randn(())) * 45, -90), 90) if float(torch.rand(())) <= 0.6 else 0.0
        flipped = float(torch.rand(())) <= 0.5
        torch.manual_seed(seed)
        region = augmentation.sample(keypoints, center, size, lower, 0.75)
        assert float(region.size[0, 0]) == pytest.approx(90.0 * factor)
        assert bool(region.flipped[0]) == flipped
        assert float(region.rotation[0]) == pytest.approx(-rotation if flipped else rotation)
