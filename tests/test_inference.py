"""predict's fused inference copy: same results as the model itself, cached, rebuilt when the weights change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drsinet import drsi_net_s
from posecommon import inference_module, running_for_inference
from posecommon.predict.inference import ChannelsLastInput, weights_key
from vttranspose import vttranspose_h_s


def _train_batch_norm_statistics(model: torch.nn.Module, x: torch.Tensor) -> None:
    """A few train-mode forwards so BatchNorm statistics (and thus fusion) are not the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)


@pytest.fixture(scope="module")
def small_drsi() -> torch.nn.Module:
    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128), width_multiple=0.25, depth_multiple=0.2)
    _train_batch_norm_statistics(model, torch.rand(2, 3, 128, 128))
    return model.eval()


@pytest.mark.parametrize("channels_last", [False, True])
def test_drsi_predict_fused_equals_unfused(small_drsi: torch.nn.Module, channels_last: bool) -> None:
    image = np.random.default_rng(0).integers(0, 256, (100, 140, 3), dtype=np.uint8)
    plain = small_drsi.predict(image, score_threshold=0.0, fuse=False, channels_last=False)[0]
    fused = small_drsi.predict(image, score_threshold=0.0, fuse=True, channels_last=channels_last)[0]
    assert len(plain) > 0 and len(plain) == len(fused)
    torch.testing.assert_close(fused.boxes, plain.boxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fused.keypoints, plain.keypoints, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fused.scores, plain.scores, atol=1e-5, rtol=1e-4)


def test_vttranspose_predict_fused_equals_unfused() -> None:
    torch.manual_seed(0)
    model = vttranspose_h_s(input_size=(64, 48))
    _train_batch_norm_statistics(model, torch.rand(2, 3, 64, 48))
    model.train()
    image = np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    boxes = torch.tensor([[5.0, 4.0, 50.0, 80.0], [20.0, 10.0, 60.0, 70.0]])
    plain = model.predict(image, boxes, fuse=False, channels_last=False)
    fused = model.predict(image, boxes)
    # An untrained model's heatmaps are nearly flat, so a rounding-level change may move an argmax: compare the
    # heatmaps and the per-joint maxima, and require nearly all locations to agree.
    torch.testing.assert_close(fused.keypoints[..., 2], plain.keypoints[..., 2], atol=1e-4, rtol=1e-4)
    same = (fused.keypoints[..., :2] - plain.keypoints[..., :2]).abs().amax(dim=-1) < 1e-2
    assert same.float().mean() >= 0.9
    x = torch.rand(2, 3, 64, 48)
    with running_for_inference(model) as net, torch.no_grad():
        fused_heatmaps = net(x)
        model.eval()
        plain_heatmaps = model(x)
        model.train()
    torch.testing.assert_close(fused_heatmaps, plain_heatmaps, atol=1e-4, rtol=1e-4)
    assert model.training, "predict must leave the model's own mode alone"
    assert any(name.endswith("running_var") for name, _ in model.named_buffers()), "the model itself stays unfused"


def test_copy_is_cached_until_the_weights_change(small_drsi: torch.nn.Module) -> None:
    first = inference_module(small_drsi)
    assert inference_module(small_drsi) is first
    assert isinstance(first, ChannelsLastInput), "CPU default is channels-last"
    assert inference_module(small_drsi, channels_last=False) is not first
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = inference_module(small_drsi)(x)[0]
        weight = small_drsi.head.box[0].bias
        weight.add_(1.0)  # in place under no_grad, as an optimiser step does
        try:
            rebuilt = inference_module(small_drsi)
            assert rebuilt is not first
            after = rebuilt(x)[0]
            expected = small_drsi(x)[0]
        finally:
            weight.sub_(1.0)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, expected, atol=1e-4, rtol=1e-4)


def test_no_copy_when_both_options_are_off(small_drsi: torch.nn.Module) -> None:
    assert inference_module(small_drsi, fuse=False, channels_last=False) is small_drsi


def test_running_for_inference_restores_the_mode(small_drsi: torch.nn.Module) -> None:
    small_drsi.train()
    try:
        with running_for_inference(small_drsi, fuse=False, channels_last=False) as net:
            assert net is small_drsi and not small_drsi.training
        assert small_drsi.training
    finally:
        small_drsi.eval()


def test_weights_key_tracks_in_place_changes_and_replacements() -> None:
    layer = torch.nn.Linear(3, 2)
    key = weights_key(layer)
    assert weights_key(layer) == key
    with torch.no_grad():
        layer.weight.mul_(2.0)
    assert weights_key(layer) != key
    key = weights_key(layer)
    layer.bias = torch.nn.Parameter(torch.zeros(2))
    assert weights_key(layer) != key


def test_inference_tensors_are_not_cached() -> None:
    with torch.inference_mode():
        layer = torch.nn.Linear(3, 2)
    assert weights_key(layer) is None
    assert inference_module(layer, fuse=True, channels_last=False) is not inference_module(
        layer, fuse=True, channels_last=False
    )
