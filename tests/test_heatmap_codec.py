"""HeatmapCodec: Gaussian targets, argmax + quarter shift, DARK, flip test; round trips on many random keypoints."""

from __future__ import annotations

import pytest
import torch

from posecommon.codecs import (
    HeatmapCodec,
    flip_average,
    flip_back,
    gaussian_blur_heatmaps,
    get_heatmap_maximum,
    refine_quarter_offset,
    shift_heatmaps,
)

CODEC = HeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48))


def _random_keypoints(n: int, k: int, heatmap_size: tuple[int, int], margin: float, seed: int) -> torch.Tensor:
    """``(n, k, 2)`` heatmap-pixel positions uniformly in ``[margin, size - 1 - margin]``."""
    generator = torch.Generator().manual_seed(seed)
    h, w = heatmap_size
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin])
    return torch.rand(n, k, 2, generator=generator) * span + margin


def test_encode_peak_weights_and_shapes():
    keypoints = torch.tensor([[[40.0, 100.0], [40.0, 100.0], [-100.0, 50.0], [-10.0, 50.0], [float("nan"), 3.0]]])
    visible = torch.tensor([[2, 0, 2, 1, 2]])
    heatmaps, weights = CODEC.encode(keypoints, visible)
    assert heatmaps.shape == (1, 5, 64, 48) and weights.shape == (1, 5)
    # visible, invisible, far outside (window misses the heatmap), just outside (tail inside), non-finite
    assert weights.tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0]]
    assert heatmaps[0, 0, 25, 10] == pytest.approx(1.0)  # (40, 100) / stride 4 = (10, 25), peak exactly 1
    assert heatmaps[0, 0].argmax().item() == 25 * 48 + 10
    assert heatmaps[0, 0, 25, 12] == pytest.approx(torch.exp(torch.tensor(-4.0 / 8)).item())  # sigma 2
    assert heatmaps[0, [1, 2, 4]].abs().sum() == 0
    assert 0 < heatmaps[0, 3].max() < 0.5  # a Gaussian tail from outside the heatmap
    assert CODEC.encode(keypoints)[1].tolist() == [[1.0, 1.0, 0.0, 1.0, 0.0]]  # default: all visible


def test_encode_any_joint_count_and_anisotropic_stride():
    codec = HeatmapCodec(input_size=(128, 96), heatmap_size=(64, 24), sigma=1.5)
    assert codec.stride == (4.0, 2.0)
    heatmaps, weights = codec.encode(torch.tensor([[[8.0, 10.0], [12.0, 40.0], [0.0, 0.0]]]))
    assert heatmaps.shape == (1, 3, 64, 24) and weights.shape == (1, 3)
    assert heatmaps[0, 0, 5, 2] == pytest.approx(1.0)  # x 8 / 4, y 10 / 2
    assert heatmaps[0, 1, 20, 3] == pytest.approx(1.0)


def test_round_trip_argmax_quarter_shift_below_half_pixel():
    truth = _random_keypoints(200, 17, CODEC.heatmap_size, margin=0.0, seed=0)
    stride = torch.tensor(CODEC.stride)
    heatmaps, _ = CODEC.encode(truth * stride)
    decoded, scores = CODEC.decode(heatmaps)
    error = (decoded / stride - truth).abs()
    assert error.max() < 0.5
    interior = ((truth >= 1) & (truth <= torch.tensor([46.0, 62.0]))).all(-1)
    assert error[interior].max() <= 0.25 + 1e-4  # where both neighbours exist the shift halves the error
    assert scores.min() > 0.9 and scores.max() <= 1.0


def test_round_trip_dark_below_tenth_of_a_pixel():
    codec = HeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48), use_dark=True)
    # DARK's blur pads with zeros, which biases maxima within 3 px of the border (as in TransPose); stay inside
    truth = _random_keypoints(200, 17, codec.heatmap_size, margin=3.0, seed=1)
    stride = torch.tensor(codec.stride)
    heatmaps, _ = codec.encode(truth * stride)
    decoded, _ = codec.decode(heatmaps)
    error = (decoded / stride - truth).abs()
    assert error.max() < 0.1
    assert error.mean() < 0.01
    # and DARK clearly beats the quarter shift on the same heatmaps
    assert error.mean() < 0.1 * (CODEC.decode(heatmaps)[0] / stride - truth).abs().mean()


def test_decode_does_not_modify_inputs_and_handles_empty():
    heatmaps, _ = CODEC.encode(_random_keypoints(4, 17, (256, 192), margin=10, seed=2))
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
    heatmaps, _ = CODEC.encode(torch.tensor([[[96.0, 128.0], [2.0, 2.0]]]))
    blurred = gaussian_blur_heatmaps(heatmaps, 11)
    torch.testing.assert_close(blurred.amax(dim=(-2, -1)), heatmaps.amax(dim=(-2, -1)))
    assert (blurred[0, 0] > 0.5).sum() > (heatmaps[0, 0] > 0.5).sum()  # it did widen the peak
    with pytest.raises(ValueError):
        gaussian_blur_heatmaps(heatmaps, 4)


def test_flip_back_swaps_joints_and_matches_documented_offset():
    flip_indices = [0, 2, 1]  # joints 1 and 2 are a left/right pair
    truth = torch.tensor([[[30.0, 40.0], [60.0, 100.0], [120.0, 200.0]]])
    width = CODEC.input_size[1]
    mirrored = torch.stack((width - 1 - truth[..., 0], truth[..., 1]), dim=-1)[:, flip_indices]
    back = flip_back(CODEC.encode(mirrored)[0], flip_indices)
    # heatmaps of the mirrored crop, flipped back, sit 1 - 1 / stride heatmap px (= 3 input px) left of the truth
    expected, _ = CODEC.encode(truth - torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(back, expected, atol=1e-6, rtol=0)
    assert torch.equal(flip_back(back, flip_indices), CODEC.encode(mirrored)[0])  # an involution


def test_shift_and_flip_average():
    heatmaps = torch.arange(2 * 3 * 4.0).view(1, 2, 3, 4)
    shifted = shift_heatmaps(heatmaps)
    assert torch.equal(shifted[..., 1:], heatmaps[..., :-1]) and torch.equal(shifted[..., 0], heatmaps[..., 0])
    truth = torch.tensor([[[40.0, 60.0], [100.0, 180.0]]])
    mirrored = torch.stack((191 - truth[..., 0], truth[..., 1]), dim=-1)[:, [1, 0]]
    averaged = flip_average(CODEC.encode(truth)[0], CODEC.encode(mirrored)[0], [1, 0])
    decoded, _ = CODEC.decode(averaged)
    assert (decoded - truth).abs().max() <= 0.25 * 4  # within a quarter heatmap pixel after the 1-px shift
    unshifted = flip_average(CODEC.encode(truth)[0], CODEC.encode(mirrored)[0], [1, 0], shift=False)
    assert not torch.equal(unshifted, averaged)
    with pytest.raises(ValueError):
        flip_back(heatmaps, [0, 1, 2])


def test_codec_validates_config():
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 0))
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 48), sigma=0)
    with pytest.raises(ValueError):
        HeatmapCodec((256, 192), (64, 48), blur_kernel_size=10)
