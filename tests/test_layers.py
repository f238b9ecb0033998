import pytest
import torch
from torch import nn

from posecommon.layers import ConvNormAct, DepthwiseSeparableConv, LayerNorm2d, fold_bn_into_conv, fuse_model, get_act


def _randomise_bn(module: nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            if bn.affine:
                bn.weight.data.uniform_(0.5, 1.5)
                bn.bias.data.uniform_(-1, 1)


@pytest.mark.parametrize(("kernel", "stride", "groups"), [(1, 1, 1), (3, 2, 1), ((3, 1), 1, 1), (3, 1, 5)])
def test_conv_norm_act_shapes_and_fusion(kernel, stride, groups):
    layer = ConvNormAct(5, 15, kernel, stride, groups=groups, act="silu")
    _randomise_bn(layer)
    layer.eval()
    x = torch.randn(2, 5, 13, 10)
    y = layer(x)
    expected_h = (13 + stride - 1) // stride
    expected_w = (10 + stride - 1) // stride
    assert y.shape == (2, 15, expected_h, expected_w)
    fuse_model(layer)
    assert isinstance(layer.bn, nn.Identity)
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-5)


def test_fold_bn_into_conv_with_bias_and_without_affine():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
    bn = nn.BatchNorm2d(4, affine=False)
    _randomise_bn(bn)
    bn.eval()
    x = torch.randn(1, 3, 7, 9)
    fused = fold_bn_into_conv(conv, bn)
    torch.testing.assert_close(fused(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_fold_bn_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="output channels"):
        fold_bn_into_conv(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5))


@pytest.mark.parametrize("norm", [False, True])
def test_depthwise_separable_conv(norm):
    layer = DepthwiseSeparableConv(7, 3, kernel_size=3, stride=2, norm=norm, act="relu" if norm else None)
    y = layer(torch.randn(2, 7, 11, 6))
    assert y.shape == (2, 3, 6, 3)
    depthwise = layer.depthwise.conv if norm else layer.depthwise
    assert depthwise.groups == 7


def test_layer_norm_2d_matches_channels_last_layer_norm():
    norm = LayerNorm2d(6)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, 3)
    reference = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(norm(x), reference.permute(0, 3, 1, 2))
    assert norm(x).mean(dim=1).abs().max() < 1.5  # normalised over channels, per pixel


def test_get_act():
    assert isinstance(get_act("silu"), nn.SiLU)
    assert isinstance(get_act(None), nn.Identity)
    assert get_act("leaky_relu").negative_slope == pytest.approx(0.1)
    with pytest.raises(ValueError, match="choose one of"):
        get_act("swishy")
