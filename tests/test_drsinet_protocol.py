"""DRSI-Net's YOLO-Pose protocol constants: head bias priors, BatchNorm settings, ASI-PAN placement, evaluation NMS."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drsinet import VARIANTS, DRSINet
from drsinet.blocks import DRSIBlock
from drsinet.head import DRSIHead
from drsinet.neck import PAN
from posecommon.data.synthetic import generate_synthetic_coco
from posecommon.evaluation.runner import evaluate_model
from posecommon.keypoints import COCO17
from posecommon.layers import fuse_model
from posecommon.measure.flops import count_macs
from posecommon.preprocess import PreprocessConfig
from posecommon.structures import PoseResult


def test_head_bias_priors_as_yolov5() -> None:
    strides = (8, 64)
    torch.manual_seed(0)
    head = DRSIHead((32, 48), num_anchors=3, num_joints=2, strides=strides)
    torch.manual_seed(0)
    defaults = [nn.Conv2d(c, 3 * 6, 1).bias.view(3, 6) for c in (32, 48)]  # same draws as the head's box convs
    for conv, default, stride in zip(head.box, defaults, strides, strict=True):
        bias = conv.bias.detach().view(3, 6)
        # models/yolo.py:218-219 of yolo-pose: obj += log(8 / (640 / s)^2), cls += log(0.6 / (nc - 0.99)), nc = 1.
        torch.testing.assert_close(bias[:, 4], default[:, 4] + math.log(8 / (640 / stride) ** 2))
        torch.testing.assert_close(bias[:, 5], default[:, 5] + math.log(60.0))
        torch.testing.assert_close(bias[:, :4], default[:, :4])


def test_every_batchnorm_of_the_family_has_yolov5_eps_and_momentum() -> None:
    configs = [VARIANTS["drsi_net_s"], VARIANTS["yolo_pose_s6"]]
    configs += [dataclasses.replace(VARIANTS["drsi_net_s"], neck="asi_pan", block=b) for b in ("drsi", "rhor")]
    for config in configs:
        with torch.device("meta"):
            model = DRSINet(dataclasses.replace(config, depth_multiple=0.2, width_multiple=0.125))
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert norms
        assert {(m.eps, m.momentum) for m in norms} == {(1e-3, 0.03)}, config


def test_drsi_block_fusion_uses_its_batchnorm_eps() -> None:
    # Running variances of the order of eps: folding with any other eps than the BatchNorms' own changes the output.
    torch.manual_seed(0)
    block = DRSIBlock(8, expansion_ratio=2.0).eval()
    for bn in (block.bn0, block.bn1, block.bn2):
        bn.running_var.uniform_(5e-4, 2e-3)
        bn.running_mean.uniform_(-0.1, 0.1)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        reference = block(x)
        fused = fuse_model(block)(x)
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-5)


def test_asi_pan_runs_res_gnconv_after_each_upsample() -> None:
    widths = (16, 32, 48, 64)
    sizes = (16, 8, 4, 2)
    features = [torch.randn(1, c, s, s) for c, s in zip(widths, sizes, strict=True)]
    neck = PAN(widths, kind="asi_pan")
    seen: list[tuple[int, ...]] = []
    for module in neck.upsampled_gnconv:
        module.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    neck(features)
    # The Res-gnConv of top-down step l sees the lateral output of the coarser level upsampled to level l's grid.
    assert seen == [(1, 48, 4, 4), (1, 32, 8, 8), (1, 16, 16, 16)]
    assert not PAN(widths, kind="cbam_pan").upsampled_gnconv


def test_asi_pan_costs_table_4s_extra_macs() -> None:
    # DRSI-Net-s widths (P3-P6: 128, 256, 384, 512) at 640: Table 4 gives ASI-PAN 0.9 GMACs over CBAM-PAN
    # (10.2 -> 11.1 and 10.9 -> 11.8, each rounded to 0.1). Res-gnConv before the upsample would add 0.26.
    config = VARIANTS["drsi_net_s"]
    widths = tuple(config.width(c) for c in config.stage_channels[1:])
    inputs = [
        torch.zeros(1, c, 640 // s, 640 // s, device="meta") for c, s in zip(widths, (8, 16, 32, 64), strict=True)
    ]
    macs = {}
    for kind in ("cbam_pan", "asi_pan"):
        with torch.device("meta"):
            neck = PAN(widths, num_blocks=config.depth(config.neck_blocks), kind=kind)
        macs[kind] = count_macs(neck, inputs=(inputs,)).giga
    assert 0.8 <= macs["asi_pan"] - macs["cbam_pan"] <= 1.1


class _RecordingModel:
    """A single-stage stand-in that records the prediction options it is asked for."""

    preprocess = PreprocessConfig(input_size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1), resize="letterbox")
    keypoint_spec = COCO17

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def predict_kernel(self, **options: Any) -> Callable[..., list[PoseResult]]:
        self.calls.append(options)
        return lambda images, inputs, run: [PoseResult.empty(17) for _ in images]


def test_single_stage_evaluation_uses_yolo_pose_nms_settings(tmp_path: Path) -> None:
    generate_synthetic_coco(tmp_path, 1, image_size=(64, 64), max_people=1, seed=0, split="val")
    ann = tmp_path / "annotations" / "person_keypoints_val.json"
    model = _RecordingModel()
    evaluate_model(model, ann, tmp_path / "val", progress=False)
    evaluate_model(model, ann, tmp_path / "val", progress=False, iou_threshold=0.5)
    assert model.calls == [
        {"score_threshold": 0.001, "iou_threshold": 0.65, "max_people": 300},
        {"score_threshold": 0.001, "iou_threshold": 0.5, "max_people": 300},
    ]
    defaults = inspect.signature(DRSINet.predict_kernel).parameters
    assert (defaults["score_threshold"].default, defaults["iou_threshold"].default) == (0.25, 0.45)
