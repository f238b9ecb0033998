"""VTTransPose family: entrypoints, config, sizes against the paper, other input sizes, fusion."""

import json

import pytest
import torch
from torch import nn

from posecommon import count_macs, count_params, create_model, get_model_info, list_models
from posecommon.keypoints import generic_keypoint_spec
from vttranspose import (
    VARIANTS,
    AsymmetricConv,
    AxialPositionEmbedding,
    VBlock,
    VTTransPose,
    VTTransPoseConfig,
    sine_position_table,
    transpose_h_s,
    transpose_h_s_twin,
    vttranspose_h_s,
)

NAMES = ("vttranspose_h_s", "transpose_h_s", "transpose_h_s_twin")


@pytest.fixture(scope="session")
def meta_sizes():
    """Parameters and MACs at 256x192 of the three models, built on the meta device (no compute)."""
    sizes = {}
    for name in NAMES:
        with torch.device("meta"):
            model = create_model(name)
        sizes[name] = (count_params(model), count_macs(model, (256, 192), device="meta"))
    return sizes


def test_registered_and_importable():
    assert set(NAMES) <= set(list_models("*transpose*"))
    for name, fn in zip(NAMES, (vttranspose_h_s, transpose_h_s, transpose_h_s_twin), strict=True):
        info = get_model_info(name)
        assert info.family == "vttranspose" and info.paper is not None and info.paper.input_size == (256, 192)
        assert fn.__name__ == name


@pytest.mark.parametrize("name", ["vttranspose_h_s", "transpose_h_s"])
def test_sizes_match_paper(meta_sizes, name):
    params, macs = meta_sizes[name]
    paper = get_model_info(name).paper
    assert abs(params / 1e6 - paper.params_m) / paper.params_m < 0.05, params
    assert abs(macs.giga - paper.macs_g) / paper.macs_g < 0.10, macs.giga


def test_transpose_h_s_sizes_equal_official_measurement(meta_sizes):
    params, macs = meta_sizes["transpose_h_s"]
    assert params == 8_019_281  # reference: official code, including the frozen sine table
    assert abs(macs.by_op["convolution"] / 1e9 - 4.694) < 0.001
    assert abs(macs.by_op["bmm"] / 1e9 - 4.832) < 0.001  # Q K^T and A V


def test_twin_variant_size_and_attention_saving(meta_sizes):
    params, macs = meta_sizes["transpose_h_s_twin"]
    assert abs(params / 1e6 - 8.0) / 8.0 < 0.05  # Table 5: 8M
    full_attention = meta_sizes["transpose_h_s"][1].by_op["bmm"]
    twin_attention = 4 * 2 * 64 * (48 * 64**2 + 64 * 48**2)  # 4 layers x (Q K^T + A V) over columns and rows
    assert abs(1 - twin_attention / full_attention - 0.96) < 0.01  # paper: ~96 % less at 64x48 tokens
    assert macs.giga < 0.6 * meta_sizes["transpose_h_s"][1].giga


def test_vblock_count_is_the_size_knob():
    config = VARIANTS["vttranspose_h_s"]
    assert config.num_vblocks == 8 and config.vblocks_per_module() == (2, 2, 2, 2)
    assert VTTransPoseConfig(num_vblocks=6, vblock_placement="first").vblocks_per_module() == (4, 2, 0, 0)
    assert VTTransPoseConfig(num_vblocks=6, vblock_placement="last").vblocks_per_module() == (0, 0, 2, 4)
    assert VTTransPoseConfig(num_vblocks=7).vblocks_per_module() == (2, 2, 2, 1)
    with torch.device("meta"):
        model = vttranspose_h_s()
    for m in range(4):
        kinds = [type(b).__name__ for b in model.stage3[m].branches[2]]
        assert kinds == ["BasicBlock", "BasicBlock", "VBlock", "VBlock"]
    assert sum(isinstance(m, VBlock) for m in model.modules()) == 8


def test_config_validation_and_overrides():
    with pytest.raises(TypeError, match="valid fields"):
        vttranspose_h_s(not_a_field=1)
    with pytest.raises(ValueError, match="attention"):
        VTTransPoseConfig(attention="window")
    with pytest.raises(ValueError, match="ffn='mlp'"):
        VTTransPoseConfig(attention="full", ffn="dwsep")
    with pytest.raises(ValueError, match="num_vblocks"):
        VTTransPoseConfig(num_vblocks=17)
    model = transpose_h_s_twin(num_joints=5, input_size=(128, 96), keypoint_spec=generic_keypoint_spec(5))
    assert model.preprocess.input_size == (128, 96) and model.preprocess.resize == "affine_crop"
    assert model.preprocess.mean == (0.485, 0.456, 0.406)
    assert model.final_layer.out_channels == 5 and model.keypoint_spec.num_joints == 5
    json.dumps(model.config_dict())
    assert all(any(k.startswith(p) for p in VTTransPose.head_prefixes) for k in ("final_layer.weight",))
    assert {k for k in model.state_dict() if k.startswith(VTTransPose.head_prefixes)} == {
        "final_layer.weight",
        "final_layer.bias",
    }


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_tiny(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(2, 3, 64, 48)
    out = model(x)
    assert out.shape == (2, 17, 16, 12)
    out.square().mean().backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), pname
        else:
            assert pname == "pos_embedding" and param.grad is None
    model.eval()
    with torch.no_grad():
        assert model(x).shape == out.shape  # same raw output in eval mode


def test_other_input_size_interpolates_axial_embedding():
    model = vttranspose_h_s().eval()
    assert isinstance(model.pos_embedding, AxialPositionEmbedding)
    assert model.pos_embedding.embed_h.shape == (1, 64, 64, 1)
    embed_h, embed_w = model.pos_embedding.tables(96, 72)
    assert embed_h.shape == (1, 64, 96, 1) and embed_w.shape == (1, 64, 1, 72)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 384, 288)).shape == (1, 17, 96, 72)


@pytest.mark.slow
def test_transpose_h_s_at_384x288_rebuilds_sine_table():
    model = transpose_h_s().eval()
    x = torch.randn(1, 64, 96, 72)
    torch.testing.assert_close(model._sine_table(96, 72, x), transpose_h_s(input_size=(384, 288)).pos_embedding)
    assert model._sine_table(64, 48, x) is model.pos_embedding
    torch.testing.assert_close(model.pos_embedding, sine_position_table(64, 48, 64))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 384, 288)).shape == (1, 17, 96, 72)


def _make_outputs_large_(model: nn.Module) -> None:
    """Re-initialise so heatmaps are O(1) (the official N(0, 0.001) init makes them ~1e-2) and BN is non-trivial."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (0.5 / fan_in) ** 0.5
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)


@pytest.mark.parametrize("name", NAMES)
def test_fuse_keeps_outputs(name):
    model = create_model(name)
    _make_outputs_large_(model)
    model.eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        before = model(x)
        assert before.abs().max() > 0.1
        fused = model.fuse()
        after = fused(x)
    assert fused is model and not model.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for m in model.modules():
        if isinstance(m, AsymmetricConv):
            assert m.conv_v.kernel_size == (3, 3) and isinstance(m.conv_h, nn.Identity)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("attention", "ffn", "pos_embed"),
    [("twin", "mlp", "sine"), ("twin", "dwsep", "sine"), ("full", "mlp", "axial")],
)
def test_other_config_combinations_run(attention, ffn, pos_embed):
    model = vttranspose_h_s(
        attention=attention, ffn=ffn, pos_embed=pos_embed, num_layers=1, num_vblocks=1, input_size=(64, 48)
    )
    out = model(torch.randn(1, 3, 64, 48))
    assert out.shape == (1, 17, 16, 12)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
