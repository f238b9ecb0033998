"""DRSIHead's two wirings: "official" (YOLO-Pose's concatenate-then-view) and "split", derived here independently.

The official ``Detect.forward`` (edgeai-yolov5 branch yolo-pose, ``models/yolo.py:67-70``) concatenates the box conv
output (A x 6 channels) and the keypoint branch output (A x 3K) on the channel axis and views the result as
``(B, A, 6 + 3K, H, W)``. ``_initialize_biases`` (``models/yolo.py:212-220``) adds the priors to the box conv bias
viewed as ``(A, 6)``. The expectations below are computed channel by channel from those two statements.
"""

from __future__ import annotations

import math

import pytest
import torch

from drsinet import HEAD_LAYOUTS, VARIANTS, DRSIHead, DRSILoss, decode_outputs, drsi_net_s
from posecommon.errors import ConfigError

A, K = 3, 17
PER_ANCHOR = 6 + 3 * K  # 57


def _branches(head: DRSIHead, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    return head.box[level](x), head.kpt_out[level](head.kpt[level](x))


def _official_value(det: torch.Tensor, joints: torch.Tensor, anchor: int, value: int) -> torch.Tensor:
    """Where anchor ``anchor``'s value ``value`` comes from: channel ``anchor * 57 + value`` of cat(box, kpt)."""
    channel = anchor * PER_ANCHOR + value
    box_channels = det.shape[1]  # A * 6 = 18
    return det[:, channel] if channel < box_channels else joints[:, channel - box_channels]


def _split_value(det: torch.Tensor, joints: torch.Tensor, anchor: int, value: int) -> torch.Tensor:
    return det[:, 6 * anchor + value] if value < 6 else joints[:, 3 * K * anchor + value - 6]


@pytest.mark.parametrize(("layout", "derive"), [("official", _official_value), ("split", _split_value)])
def test_each_layout_matches_its_channel_by_channel_derivation(layout, derive) -> None:
    torch.manual_seed(0)
    head = DRSIHead((8, 16), num_anchors=A, num_joints=K, strides=(8, 16), layout=layout).eval()
    features = [torch.randn(2, 8, 4, 5), torch.randn(2, 16, 2, 3)]
    with torch.no_grad():
        outputs = head(features)
        for level, (x, raw) in enumerate(zip(features, outputs, strict=True)):
            assert raw.shape == (2, A, *x.shape[2:], PER_ANCHOR)
            det, joints = _branches(head, x, level)
            for anchor in range(A):
                for value in range(PER_ANCHOR):
                    torch.testing.assert_close(raw[:, anchor, ..., value], derive(det, joints, anchor, value))


def test_official_anchors_1_and_2_read_nothing_from_the_box_conv() -> None:
    torch.manual_seed(0)
    head = DRSIHead((8,), num_anchors=A, num_joints=K, strides=(8,), layout="official").eval()
    x = torch.randn(1, 8, 3, 3)
    before = head([x])[0]
    with torch.no_grad():
        head.box[0].weight.add_(torch.randn_like(head.box[0].weight))
    after = head([x])[0]
    changed = (after != before).any(dim=(0, 2, 3))  # (A, 57)
    assert changed[0, :18].all() and not changed[0, 18:].any()  # anchor 0: exactly its first 18 values
    assert not changed[1:].any()  # anchors 1 and 2: none, their boxes included


def test_same_conv_weights_give_different_functions_in_the_two_layouts() -> None:
    torch.manual_seed(0)
    official = DRSIHead((8,), num_anchors=A, num_joints=K, strides=(8,), layout="official").eval()
    split = DRSIHead((8,), num_anchors=A, num_joints=K, strides=(8,), layout="split").eval()
    split.load_state_dict(official.state_dict())  # same parameter names and shapes: one checkpoint fits both
    x = [torch.randn(1, 8, 3, 3)]
    with torch.no_grad():
        a, b = official(x)[0], split(x)[0]
    torch.testing.assert_close(a[:, 0, ..., :6], b[:, 0, ..., :6])  # anchor 0's box is the box conv's in both
    assert not torch.allclose(a[:, 1:, ..., :6], b[:, 1:, ..., :6])  # anchors 1, 2: keypoint conv vs box conv


def test_official_bias_priors_land_where_initialize_biases_puts_them() -> None:
    # From scratch: _initialize_biases adds obj to b.view(A, -1)[:, 4] and cls to [:, 5] of the box conv's 18
    # biases, i.e. flat box channels 4 + 6a and 5 + 6a for a = 0, 1, 2. The box conv comes first in the
    # concatenation, so those are concatenated channels 4, 10, 16 (obj prior) and 5, 11, 17 (cls prior), all inside
    # anchor 0 (channels 0-56): its objectness (4), its class (5), and values 10, 11, 16, 17 = joint 1's y and
    # visibility and joint 3's y and visibility (value 6 + 3k + c).
    strides = (8, 32)
    obj_prior = {s: math.log(8 / (640 / s) ** 2) for s in strides}
    cls_prior = math.log(0.6 / (1 - 0.99))
    torch.manual_seed(0)
    head = DRSIHead((8, 16), num_anchors=A, num_joints=K, strides=strides, layout="official").eval()
    # The head's box convs are its first draws after the seed (they are built before the keypoint branches), so
    # two fresh convs drawn after the same seed hold the default biases the priors are added to.
    torch.manual_seed(0)
    defaults = [torch.nn.Conv2d(c, A * 6, 1).bias.detach().clone() for c in (8, 16)]
    zeros = [torch.zeros(1, 8, 1, 1), torch.zeros(1, 16, 1, 1)]
    with torch.no_grad():
        outputs = head(zeros)  # zero input: box conv output = its bias; keypoint branch output = kpt_out's bias
    for level, (raw, stride) in enumerate(zip(outputs, strides, strict=True)):
        expected = torch.cat((defaults[level], head.kpt_out[level].bias.detach())).clone()
        for channel in (4, 10, 16):
            expected[channel] += obj_prior[stride]
        for channel in (5, 11, 17):
            expected[channel] += cls_prior
        got = raw[0, :, 0, 0, :].reshape(-1)
        torch.testing.assert_close(got, expected)
        shifted = {(a, v) for a in range(A) for v in range(PER_ANCHOR)} - {(0, v) for v in (4, 5, 10, 11, 16, 17)}
        assert all(got[a * PER_ANCHOR + v] == expected[a * PER_ANCHOR + v] for a, v in shifted)
        # anchors 1 and 2 start without any prior: their objectness comes straight from kpt_out's default bias
        assert got[PER_ANCHOR + 4] == head.kpt_out[level].bias[PER_ANCHOR + 4 - A * 6]


def test_every_registered_detector_defaults_to_the_official_layout_and_split_stays_available() -> None:
    assert HEAD_LAYOUTS == ("official", "split")
    assert {config.head_layout for config in VARIANTS.values()} == {"official"}
    model = drsi_net_s(input_size=(64, 64), width_multiple=0.125, depth_multiple=0.2, head_layout="split")
    assert model.head.layout == "split" and model.config.head_layout == "split"
    with pytest.raises(ConfigError, match="head_layout"):
        drsi_net_s(head_layout="per_anchor")


@pytest.mark.parametrize("layout", HEAD_LAYOUTS)
def test_loss_and_decode_work_with_both_layouts(layout) -> None:
    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128), width_multiple=0.125, depth_multiple=0.2, head_layout=layout)
    images = torch.rand(2, 3, 128, 128)
    outputs = model(images)
    targets = torch.zeros(1, 6 + 2 * K)
    targets[0, 2:6] = torch.tensor([0.5, 0.5, 0.3, 0.6])
    targets[0, 6::2], targets[0, 7::2] = 0.45, 0.5
    total, terms = DRSILoss(model.config, sigmas=model.keypoint_spec)(outputs, targets)
    total.backward()
    assert torch.isfinite(total) and terms["box"] > 0 and terms["kpt"] > 0
    assert all(p.grad is not None for p in model.parameters())
    boxes, scores, keypoints = decode_outputs([o.detach() for o in outputs], model.anchor_tensor(), (8, 16, 32, 64))
    assert boxes.shape[:2] == scores.shape and keypoints.shape[-2:] == (K, 3)


@pytest.mark.slow
@pytest.mark.parametrize("layout", HEAD_LAYOUTS)
def test_export_with_decoding_matches_pytorch_in_both_layouts(tmp_path, layout) -> None:
    pytest.importorskip("onnxruntime")
    from posecommon.export import check_onnx, export_onnx

    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128), width_multiple=0.125, depth_multiple=0.2, head_layout=layout).eval()
    path = export_onnx(model, tmp_path / f"{layout}.onnx", include_decode=True)
    report = check_onnx(path, model, include_decode=True, batch_sizes=(1, 2))
    assert report.ok, report.max_abs_diff
