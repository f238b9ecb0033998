"""Backbones reusable in other networks, as timm's are (issue 26): every entrypoint takes ``features_only=True``,
every model has ``feature_info``, ``forward_features`` and ``forward_intermediates``; shapes, channels and strides
agree with ``feature_info``, and full pretrained weights load into a features-only model (head ignored, the rest
strict)."""

from __future__ import annotations

import pytest
import torch

from drsinet import PAN, CSDRNet, drsi_net_s
from posecommon import IncompatibleWeightsError, InvalidInputError, create_model, list_models
from posecommon.layers import FeatureInfo, FeatureListNet, take_indices
from vttranspose import HRNetS, vttranspose_h_s

FAST = {"drsi_net_s", "vttranspose_h_s", "transpose_h_s", "transpose_h_s_twin", "yolo_pose_s6"}


def _size(name: str) -> tuple[int, int]:
    return (128, 128) if name.startswith(("drsi", "yolo")) else (64, 48)


def _check_maps(maps: list[torch.Tensor], info: FeatureInfo, size: tuple[int, int], batch: int = 2) -> None:
    assert len(maps) == len(info)
    for tensor, channels, stride in zip(maps, info.channels(), info.reduction(), strict=True):
        expected = (batch, channels, -(-size[0] // stride), -(-size[1] // stride))
        assert tuple(tensor.shape) == expected, (tuple(tensor.shape), expected)


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(list_models())]
)
def test_every_entrypoint_builds_a_features_only_model_that_matches_feature_info(name):
    size = _size(name)
    torch.manual_seed(0)
    features = create_model(name, features_only=True, input_size=size).eval()
    assert isinstance(features, FeatureListNet)
    assert not any(key.startswith(features.head_prefixes) for key in features.state_dict())
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        maps = features(x)
    _check_maps(maps, features.feature_info, size)
    assert features.feature_info.module_name()  # every map names its module
    for entry in features.feature_info:
        assert features.get_submodule(entry["module"]) is not None


@pytest.mark.parametrize("name", sorted(FAST))
def test_full_models_offer_forward_features_and_forward_intermediates(name):
    size = _size(name)
    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        _check_maps(maps, model.feature_info, size)
        features = model.forward_features(x)
        head = getattr(model, model.head_modules[0])
        out = model(x)
        torch.testing.assert_close(head(features), out, rtol=0, atol=0)  # forward = head(forward_features)
        if isinstance(final, list):
            for a, b in zip(final, features, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:
            torch.testing.assert_close(final, features, rtol=0, atol=0)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        picked = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        early = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    for got, want in zip(last_two, maps[-2:], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(picked[0], maps[0], rtol=0, atol=0)
    torch.testing.assert_close(picked[1], maps[-1], rtol=0, atol=0)
    torch.testing.assert_close(early[0], maps[1], rtol=0, atol=0)


def test_drsinet_feature_info_is_the_backbone_then_the_neck():
    model = drsi_net_s(input_size=(128, 128))
    info = model.feature_info
    assert info.reduction() == [8, 16, 32, 64, 8, 16, 32, 64]
    assert info.channels()[:4] == list(model.backbone.out_channels)
    assert info.channels()[4:] == list(model.neck.out_channels)
    assert info.module_name()[0] == "backbone.stages.1" and info.module_name()[4] == "neck.td_csp.2"
    features = drsi_net_s(features_only=True, out_indices=(4, 5, 6), input_size=(128, 128))
    assert features.feature_info.reduction() == [8, 16, 32] and features.out_indices == [4, 5, 6]


def test_vttranspose_feature_info_is_hrnet_branches_then_the_encoder():
    info = vttranspose_h_s().feature_info
    assert info.channels() == [32, 64, 128, 64] and info.reduction() == [4, 8, 16, 4]
    assert info.module_name() == ["stage3", "stage3.3.branches.1", "stage3.3.branches.2", "global_encoder"]


def test_standalone_backbones_and_the_neck_have_feature_info():
    torch.manual_seed(0)
    backbone = CSDRNet(16, (16, 32, 48, 64, 80), (1, 1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        maps = backbone.forward_intermediates(x, intermediates_only=True)
        _check_maps(maps, backbone.feature_info, (128, 128), batch=1)
        only_p3 = backbone.forward_intermediates(x, indices=[0], intermediates_only=True)
        torch.testing.assert_close(only_p3[0], maps[0], rtol=0, atol=0)
        neck = PAN(tuple(backbone.feature_info.channels()), kind="asi_pan").eval()
        _check_maps(neck(maps), neck.feature_info, (128, 128), batch=1)
        hrnet = HRNetS(width=16, stage3_modules=1, blocks_per_branch=1, vblocks_per_module=(1,)).eval()
        y = torch.randn(1, 3, 64, 48)
        final, branches = hrnet.forward_intermediates(y)
        _check_maps(branches, hrnet.feature_info, (64, 48), batch=1)
        torch.testing.assert_close(final, hrnet(y), rtol=0, atol=0)


def test_pretrained_full_weights_load_into_a_features_only_model(tmp_path):
    torch.manual_seed(0)
    full = drsi_net_s(input_size=(128, 128)).eval()
    saved = full.save_pretrained(tmp_path / "full")
    features = drsi_net_s(pretrained=str(saved), features_only=True, input_size=(128, 128)).eval()
    trunk = {k: v for k, v in full.state_dict().items() if not k.startswith("head.")}
    assert set(features.state_dict()) == set(trunk)
    for key, value in features.state_dict().items():
        torch.testing.assert_close(value, trunk[key], rtol=0, atol=0)
    assert features.pretrained_report is not None and not features.pretrained_report.skipped
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(features(x), full.forward_intermediates(x, intermediates_only=True), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the features' own state dict loads back into a full model (same names)
    other = drsi_net_s(input_size=(128, 128))
    missing, unexpected = other.load_state_dict(features.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)


def test_features_only_loading_stays_strict_outside_the_head(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    saved = vttranspose_h_s(input_size=(64, 48)).save_pretrained(tmp_path / "vt")
    state = load_file(str(saved / "model.safetensors"))
    assert vttranspose_h_s(pretrained=str(saved / "model.safetensors"), features_only=True, input_size=(64, 48))
    state.pop("reduce.weight")
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match=r"reduce\.weight"):
        vttranspose_h_s(pretrained=str(tmp_path / "broken.safetensors"), features_only=True, input_size=(64, 48))


def test_out_indices_needs_features_only_and_valid_indices():
    with pytest.raises(InvalidInputError, match="features_only"):
        drsi_net_s(out_indices=(1,), input_size=(128, 128))
    with pytest.raises(IndexError):
        drsi_net_s(features_only=True, out_indices=(8,), input_size=(128, 128))
    assert take_indices(4, None) == ([0, 1, 2, 3], 3)
    assert take_indices(4, 2) == ([2, 3], 3)
    assert take_indices(4, [-1, 0]) == ([3, 0], 3)
    with pytest.raises(IndexError):
        take_indices(4, 0)
