"""Heatmap functions and HeatmapCodec: Gaussian targets and weights, argmax + quarter shift, DARK, flip test."""

from __future__ import annotations

import pytest
import torch

from posecommon.codecs import (
    HeatmapCodec,
    decode_heatmaps,
    flip_average,
    flip_back,
    gaussian_blur_heatmaps,
    generate_gaussian_heatmaps,
    get_heatmap_maximum,
    refine_quarter_offset,
)

CODEC = HeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48))


def _random_points(n: int, k: int, heatmap_size: tuple[int, int], margin: float, seed: int) -> torch.Tensor:
    """``(n, k, 2)`` heatmap-pixel positions uniformly in ``[margin, size - 1 - margin]``."""
    generator = torch.Generator().manual_seed(seed)
    h, w = heatmap_size
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin])
    return torch.rand(n, k, 2, generator=generator) * span + margin


def test_gaussian_peak_and_official_weight_rule():
    # sigma 2 on a 48 x 64 map: the window [int(mu - 6), int(mu + 7)] must overlap [0, size) on both axes
    points = torch.tensor(
        [[[10.0, 25.0], [10.0, 25.0], [-7.5, 30.0], [-8.5, 30.0], [53.5, 30.0], [54.0, 30.0], [float("nan"), 3.0]]]
    )
    visible = torch.tensor([[2, 0, 1, 2, 2, 2, 2]])
    heatmaps, weights = generate_gaussian_heatmaps(points, visible, (64, 48), sigma=2.0)
    assert heatmaps.shape == (1, 7, 64, 48) and weights.shape == (1, 7)
    # int(-7.5 + 7) = int(-0.5) = 0 keeps joint 2 (truncation towards zero); int(-0.5 - 1) = -1 drops joint 3;
    # int(53.5 - 6) = 47 < 48 keeps joint 4, int(54 - 6) = 48 drops joint 5; invisible and NaN joints get 0
    assert weights.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]]
    assert heatmaps[0, 0, 25, 10] == pytest.approx(1.0)
    assert heatmaps[0, 0].argmax().item() == 25 * 48 + 10
    assert heatmaps[0, 0, 25, 12] == pytest.approx(torch.exp(torch.tensor(-4.0 / 8)).item())  # sigma 2
    assert heatmaps[0, [1, 3, 5, 6]].abs().sum() == 0
    assert 0 < heatmaps[0, 2].max() < 1e-3  # only a Gaussian tail reaches the map


def test_encode_any_joint_count_and_non_square_maps():
    points = torch.tensor([[[2.0, 5.0], [3.0, 20.0], [0.0, 0.0]]])
    heatmaps, weights = generate_gaussian_heatmaps(points, torch.ones(1, 3), (64, 24), sigma=1.5)
    assert heatmaps.shape == (1, 3, 64, 24) and weights.tolist() == [[1.0, 1.0, 1.0]]
    assert heatmaps[0, 0, 5, 2] == pytest.approx(1.0) and heatmaps[0, 1, 20, 3] == pytest.approx(1.0)


def test_codec_maps_input_to_heatmap_with_one_factor():
    # the official relation: centre to centre, one factor (w - 1) / (W - 1) on both axes, not 1 / 4
    assert CODEC.factor == pytest.approx(47 / 191)
    corners = torch.tensor([[[0.0, 0.0], [191.0, 255.0], [95.5, 127.5]]])
    mapped = CODEC.input_to_heatmap(corners)
    expected = torch.tensor([[[0.0, 31.5 - 127.5 * 47 / 191], [47.0, 31.5 + 127.5 * 47 / 191], [23.5, 31.5]]])
    torch.testing.assert_close(mapped, expected)
    torch.testing.assert_close(CODEC.heatmap_to_input(mapped), corners)


def test_round_trip_argmax_quarter_shift_below_half_pixel():
    truth = _random_points(200, 17, CODEC.heatmap_size, margin=0.0, seed=0)
    heatmaps, _ = CODEC.encode(CODEC.heatmap_to_input(truth))
    decoded, scores = CODEC.decode(heatmaps)
    error = (CODEC.input_to_heatmap(decoded) - truth).abs()
    assert error.max() < 0.5 + 1e-4
    interior = ((truth >= 1) & (truth <= torch.tensor([46.0, 62.0]))).all(-1)
    assert error[interior].max() <= 0.25 + 1e-4  # where both neighbours exist the shift halves the error
    assert scores.min() > 0.9 and scores.max() <= 1.0


def test_round_trip_dark_below_tenth_of_a_pixel():
    codec = HeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48), use_dark=True)
    # DARK's blur pads with zeros, which biases maxima within 3 px of the border (as in TransPose); stay inside
    truth = _random_points(200, 17, codec.heatmap_size, margin=3.0, seed=1)
    heatmaps, _ = codec.encode(codec.heatmap_to_input(truth))
    decoded, _ = codec.decode(heatmaps)
    error = (codec.input_to_heatmap(decoded) - truth).abs()
    assert error.max() < 0.1
    assert error.mean() < 0.01
    # and DARK clearly beats the quarter shift on the same heatmaps
    assert error.mean() < 0.1 * (CODEC.input_to_heatmap(CODEC.decode(heatmaps)[0]) - truth).abs().mean()


def test_decode_does_not_modify_inputs_and_handles_empty():
    heatmaps, _ = CODEC.encode(_random_points(4, 17, (256, 192), margin=10, seed=2))
    noisy = heatmaps + 0.01 * torch.randn(heatmaps.shape, generator=torch.Generator().manual_seed(0))
    before = noisy.clone()
    for codec in (CODEC, HeatmapCodec((256, 192), (64, 48), use_dark=True)):
        keypoints, scores = codec.decode(noisy)
        assert keypoints.shape == (4, 17, 2) and scores.shape == (4, 17)
        assert torch.equal(noisy, before)
        empty_kp, empty_scores = codec.decode(torch.zeros(0, 17, 64, 48))
        assert empty_kp.shape == (0, 17, 2) and empty_scores.shape == (0, 17)
    with pytest.raises(ValueError, match="heatmaps must be"):
        CODEC.decode(torch.zeros(1, 17, 32, 48))


def test_non_positive_maximum_decodes_to_the_origin():
    # get_max_preds sets the argmax to (0, 0) where the maximum is <= 0, and DARK then leaves it there
    heatmaps = -torch.ones(1, 2, 16, 12)
    heatmaps[0, 0, 7, 5] = -0.5  # the maximum, but negative
    heatmaps[0, 1, 7, 5] = 0.5
    for use_dark in (True, False):
        coords, maxvals = decode_heatmaps(heatmaps, use_dark=use_dark)
        assert coords[0, 0].tolist() == [0.0, 0.0] and maxvals[0, 0] == -0.5
        assert coords[0, 1].round().tolist() == [5.0, 7.0]


def test_quarter_shift_direction_and_borders():
    heatmaps = torch.zeros(1, 3, 5, 6)
    heatmaps[0, 0, 2, 3] = 1.0
    heatmaps[0, 0, 2, 4] = 0.5  # right neighbour higher -> +0.25 in x
    heatmaps[0, 0, 1, 3] = 0.2  # upper neighbour higher -> -0.25 in y
    heatmaps[0, 1, 0, 0] = 1.0  # corner: no neighbours on one side, no shift
    heatmaps[0, 1, 0, 1] = 0.5
    heatmaps[0, 2, 3, 2] = 1.0  # equal neighbours: no shift
    coords, maxvals = get_heatmap_maximum(heatmaps)
    refined = refine_quarter_offset(heatmaps, coords)
    assert refined.tolist() == [[[3.25, 1.75], [0.0, 0.0], [2.0, 3.0]]]
    assert maxvals.tolist() == [[1.0, 1.0, 1.0]]


def test_gaussian_blur_keeps_maximum():
    heatmaps, _ = generate_gaussian_heatmaps(torch.tensor([[[24.0, 32.0], [0.5, 0.5]]]), torch.ones(1, 2), (64, 48))
    blurred = gaussian_blur_heatmaps(heatmaps, 11)
    torch.testing.assert_close(blurred.amax(dim=(-2, -1)), heatmaps.amax(dim=(-2, -1)))
    assert (blurred[0, 0] > 0.5).sum() > (heatmaps[0, 0] > 0.5).sum()  # it did widen the peak
    with pytest.raises(ValueError):
        gaussian_blur_heatmaps(heatmaps, 4)


def test_flip_back_of_the_mirrored_crop_is_exact():
    flip_indices = [0, 2, 1]  # joints 1 and 2 are a left/right pair
    truth = torch.tensor([[[30.0, 40.0], [60.0, 100.0], [120.0, 200.0]]], dtype=torch.float64)
    width = CODEC.input_size[1]
    mirrored = torch.stack((width - 1 - truth[..., 0], truth[..., 1]), dim=-1)[:, flip_indices]
    back = flip_back(CODEC.encode(mirrored)[0], flip_indices)
    # under the official geometry mirroring the crop mirrors the heatmap exactly: no shift is needed
    torch.testing.assert_close(back, CODEC.encode(truth)[0], atol=1e-12, rtol=0)
    assert torch.equal(flip_back(back, flip_indices), CODEC.encode(mirrored)[0])  # an involution


def test_flip_average_recovers_the_keypoints():
    codec = HeatmapCodec((256, 192), (64, 48), use_dark=True)
    truth = torch.tensor([[[40.0, 60.0], [100.0, 180.0]]], dtype=torch.float64)
    mirrored = torch.stack((191 - truth[..., 0], truth[..., 1]), dim=-1)[:, [1, 0]]
    averaged = flip_average(codec.encode(truth)[0], codec.encode(mirrored)[0], [1, 0])
    decoded, _ = codec.decode(averaged)
    assert (decoded - truth).abs().max() < 0.01 / codec.factor  # 0.01 heatmap px
    with pytest.raises(ValueError):
        flip_back(averaged, [0, 1, 2])


def test_codec_validates_config():
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 0))
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 48), sigma=0)
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 48), blur_kernel_size=10)
