"""DRSI-Net models: registry, sizes vs the paper, forward/backward, ablation layouts, fusion and predict."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import drsinet
from drsinet import VARIANTS, DRSINet, DRSINetConfig
from posecommon import PoseResult, create_model, get_model_info, list_models
from posecommon.errors import BadImageError, InvalidInputError
from posecommon.measure.flops import count_macs, count_params
from posecommon.ops.letterbox import letterbox_info

ENTRYPOINTS = ["drsi_net_s", "drsi_net_m", "drsi_net_l", "yolo_pose_s6", "yolo_pose_m6", "yolo_pose_l6"]


def _meta(config: DRSINetConfig) -> DRSINet:
    with torch.device("meta"):
        return DRSINet(config)


@pytest.fixture(scope="session")
def meta_sizes():
    sizes = {}
    for name in ENTRYPOINTS:
        model = _meta(VARIANTS[name])
        sizes[name] = {
            "params": count_params(model) / 1e6,
            960: count_macs(model, (960, 960), device="meta").giga,
            640: count_macs(model, (640, 640), device="meta").giga,
        }
    return sizes


def test_entrypoints_registered_and_exported():
    assert set(ENTRYPOINTS) <= set(list_models())
    for name in ENTRYPOINTS:
        assert name in drsinet.__all__ and callable(getattr(drsinet, name))
        assert get_model_info(name).family == "drsinet"
    for name in drsinet.__all__:
        assert hasattr(drsinet, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENTRYPOINTS)
def test_sizes_match_paper(meta_sizes, name):
    info = get_model_info(name)
    measured = meta_sizes[name]
    assert abs(measured["params"] / info.paper.params_m - 1) <= 0.05
    assert abs(measured[960] / info.paper.macs_g - 1) <= 0.10
    for extra in info.extra_figures:
        assert abs(measured[extra.input_size[0]] / extra.macs_g - 1) <= 0.10


@pytest.mark.slow
def test_drsi_s_at_640_close_to_table_3(meta_sizes):
    assert abs(meta_sizes["drsi_net_s"][640] - 10.9) <= 0.5
    assert meta_sizes["drsi_net_s"][640] > meta_sizes["yolo_pose_s6"][640]


TABLE_640 = [  # (backbone_block, block, neck) -> paper GMACs at 640 (Tables 3 and 4)
    (("c3", "drsi", "pan"), 10.3),
    (("c3", "drsi", "cbam_pan"), 10.2),
    (("c3", "drsi", "asi_pan"), 11.1),
    (("c3dr", "drsi", "pan"), 10.9),
    (("c3dr", "drsi", "cbam_pan"), 10.9),
    (("c3dr", "drsi", "asi_pan"), 11.8),
    (("c3dr", "hor", "pan"), 10.8),
    (("c3dr", "rhor", "pan"), 10.8),
]


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "paper_macs"), TABLE_640, ids=["-".join(r[0]) for r in TABLE_640])
def test_ablation_layouts_build_and_match_tables(layout, paper_macs):
    backbone_block, block, neck = layout
    model = _meta(dataclasses.replace(VARIANTS["drsi_net_s"], backbone_block=backbone_block, block=block, neck=neck))
    assert abs(count_macs(model, (640, 640), device="meta").giga / paper_macs - 1) <= 0.10


def test_config_validation_and_unknown_kwargs():
    with pytest.raises(TypeError, match="valid fields"):
        drsinet.drsi_net_s(not_a_field=1)
    with pytest.raises(ValueError, match="neck"):
        DRSINetConfig(neck="fpn")
    with pytest.raises(ValueError, match="multiples of 64"):
        DRSINetConfig(input_size=(960, 900))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return drsinet.drsi_net_s()


@pytest.mark.slow
def test_forward_backward_same_type_train_eval(small_model):
    x = torch.randn(1, 3, 128, 192)
    small_model.train()
    outputs = small_model(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [
        (1, 3, 16, 24, 57),
        (1, 3, 8, 12, 57),
        (1, 3, 4, 6, 57),
        (1, 3, 2, 3, 57),
    ]
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in small_model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    small_model.zero_grad(set_to_none=True)
    assert not missing
    small_model.eval()
    with torch.no_grad():
        eval_outputs = small_model(x)
    assert isinstance(eval_outputs, list) and [o.shape for o in eval_outputs] == [o.shape for o in outputs]


def test_num_joints_changes_only_head_prefixes():
    with torch.device("meta"):
        k17 = drsinet.drsi_net_s()
        k5 = drsinet.drsi_net_s(num_joints=5)
    assert k5.keypoint_spec.num_joints == 5
    s17, s5 = k17.state_dict(), k5.state_dict()
    assert s17.keys() == s5.keys()
    differing = {k for k in s17 if s17[k].shape != s5[k].shape}
    assert differing and all(k.startswith(DRSINet.head_prefixes) for k in differing)
    assert s5["head.kpt_out.0.weight"].shape[0] == 3 * 3 * 5


def test_preprocess_is_letterbox_unit_scale():
    pre = _meta(VARIANTS["drsi_net_s"]).preprocess
    assert pre.resize == "letterbox" and pre.mean == (0, 0, 0) and pre.std == (1, 1, 1) and pre.pad_value == 114
    assert pre.input_size == (960, 960)


@pytest.mark.slow
@pytest.mark.parametrize("neck", ["cbam_pan", "asi_pan"])
def test_fusion_equal(neck):
    torch.manual_seed(0)
    model = create_model("drsi_net_s", neck=neck).eval()
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = model(x)
        model.fuse()
        after = model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


class _FixedHead(nn.Module):
    """Fake head: one confident detection at level 0, anchor 0, cell (row 3, col 5) with known raw keypoints."""

    def __init__(self, num_joints):
        super().__init__()
        self.num_joints = num_joints

    def forward(self, features):
        outs = []
        for f in features:
            b, _, h, w = f.shape
            out = torch.full((b, 3, h, w, 6 + 3 * self.num_joints), -20.0)
            outs.append(out)
        outs[0][:, 0, 3, 5, :6] = torch.tensor([0.0, 0.0, 0.0, 0.0, 20.0, 20.0])
        kpt = outs[0][:, 0, 3, 5, 6:].view(b, self.num_joints, 3)
        kpt[..., 0] = 0.25
        kpt[..., 1] = 0.75
        kpt[..., 2] = 20.0
        return outs


def test_predict_maps_back_to_original_pixels(small_model):
    small_model.head, original_head = _FixedHead(17), small_model.head
    try:
        image = np.zeros((50, 77, 3), dtype=np.uint8)
        (result,) = small_model.predict(image, input_size=(128, 128))
    finally:
        small_model.head = original_head
    info = letterbox_info((50, 77), (128, 128))
    sx, sy = info.scale
    # input pixels: box centre (0.5 + 5) * 8 = 44, (0.5 + 3) * 8 = 28, size = anchor (19, 27); keypoint (5, 3) * 8
    cx, cy = (44 + 0.5) / sx - 0.5, (28 + 0.5) / sy - 0.5
    kx, ky = (2 * 0.25 - 0.5 + 5) * 8, (2 * 0.75 - 0.5 + 3) * 8
    assert len(result) == 1
    expected_box = torch.tensor(
        [
            (44 - 9.5 + 0.5) / sx - 0.5,
            (28 - 13.5 + 0.5) / sy - 0.5,
            (44 + 9.5 + 0.5) / sx - 0.5,
            (28 + 13.5 + 0.5) / sy - 0.5,
        ]
    )
    torch.testing.assert_close(result.boxes[0], expected_box)
    assert abs((result.boxes[0, 0] + result.boxes[0, 2]).item() / 2 - cx) < 1e-4
    assert abs((result.boxes[0, 1] + result.boxes[0, 3]).item() / 2 - cy) < 1e-4
    torch.testing.assert_close(result.keypoints[0, :, 0], torch.full((17,), (kx + 0.5) / sx - 0.5))
    torch.testing.assert_close(result.keypoints[0, :, 1], torch.full((17,), (ky + 0.5) / sy - 0.5))
    assert (result.keypoints[0, :, 2] > 0.99).all()


def test_predict_accepts_all_input_kinds(small_model, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    inputs = [
        str(path),
        Image.fromarray(rgb),
        rgb,
        Image.fromarray(rgb).convert("L"),
        Image.fromarray(rgb).convert("RGBA"),
        torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
    ]
    small_model.train()
    results = small_model.predict(inputs, score_threshold=0.0, input_size=(64, 128))
    assert small_model.training  # mode restored
    assert len(results) == len(inputs)
    for r in results:
        assert r.keypoints.shape[1:] == (17, 3) and r.boxes.shape[1] == 4
    torch.testing.assert_close(results[0].boxes, results[2].boxes)
    single = small_model.predict(rgb, score_threshold=0.0, input_size=(64, 128))
    assert isinstance(single, PoseResult)  # one image in, one result out
    torch.testing.assert_close(single.boxes, results[2].boxes)
    assert small_model.predict([], input_size=(64, 128)) == []


@pytest.mark.parametrize("bad", [42, np.full((10, 10, 3), 2.0, dtype=np.float32), "/does/not/exist.png", [1.5]])
def test_predict_rejects_bad_images(small_model, bad):
    with pytest.raises(BadImageError):
        small_model.predict(bad, input_size=(64, 64))


def test_predict_rejects_bad_arguments(small_model):
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(InvalidInputError):
        small_model.predict(image, input_size=(100, 64))
    with pytest.raises(InvalidInputError):
        small_model.predict(image, score_threshold=1.5, input_size=(64, 64))
