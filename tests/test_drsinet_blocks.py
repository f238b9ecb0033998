"""DRSI-Net blocks: shapes on odd channel counts / non-square maps, gradients, reference maths, fusion."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from drsinet import (
    C3,
    C3DR,
    CBAM,
    PAN,
    SPP,
    SPPF,
    Bottleneck,
    DRSIBlock,
    DRSIHead,
    Focus,
    GnConv,
    HorBlock,
    ResGnConv,
    fold_bn_before_conv,
    interaction_widths,
)
from posecommon.layers import LayerNorm2d, fuse_model

B, H, W = 2, 9, 14  # non-square, odd height


def _randomize_bn(module: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)


CASES = [
    ("focus", lambda: Focus(3, 13), (B, 3, H, W), (B, 13, 5, 7)),
    ("bottleneck", lambda: Bottleneck(13, 13), (B, 13, H, W), (B, 13, H, W)),
    ("c3", lambda: C3(11, 13, 2), (B, 11, H, W), (B, 13, H, W)),
    ("spp", lambda: SPP(13, 11, (3, 5, 7)), (B, 13, H, W), (B, 11, H, W)),
    ("sppf", lambda: SPPF(13, 11), (B, 13, H, W), (B, 11, H, W)),
    ("cbam", lambda: CBAM(13, 4), (B, 13, H, W), (B, 13, H, W)),
    ("drsi", lambda: DRSIBlock(13), (B, 13, H, W), (B, 13, H, W)),
    ("hor", lambda: HorBlock(13, "gnconv", layer_scale=0.5), (B, 13, H, W), (B, 13, H, W)),
    ("rhor", lambda: HorBlock(13, "resgnconv", layer_scale=0.0), (B, 13, H, W), (B, 13, H, W)),
    ("c3dr_drsi", lambda: C3DR(11, 13, 2, "drsi"), (B, 11, H, W), (B, 13, H, W)),
    ("c3dr_hor", lambda: C3DR(11, 13, 1, "hor"), (B, 11, H, W), (B, 13, H, W)),
    ("c3dr_rhor", lambda: C3DR(11, 13, 1, "rhor", order=3), (B, 11, H, W), (B, 13, H, W)),
    *[(f"gnconv{n}", (lambda n=n: GnConv(13, n)), (B, 13, H, W), (B, 13, H, W)) for n in (1, 2, 3, 4)],
    *[(f"resgnconv{n}", (lambda n=n: ResGnConv(13, n)), (B, 13, H, W), (B, 13, H, W)) for n in (1, 2, 3, 4)],
]


@pytest.mark.parametrize(("name", "factory", "in_shape", "out_shape"), CASES, ids=[c[0] for c in CASES])
def test_block_shapes_and_gradients(name, factory, in_shape, out_shape):
    torch.manual_seed(0)
    block = factory()
    x = torch.randn(in_shape, requires_grad=True)
    y = block(x)
    assert y.shape == out_shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    missing = [n for n, p in block.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"


@pytest.mark.parametrize(("channels", "order"), [(13, 1), (13, 2), (16, 3), (10, 4), (64, 2)])
def test_interaction_widths(channels, order):
    inner, widths = interaction_widths(channels, order)
    assert inner >= channels and inner % 2 ** (order - 1) == 0 and inner - channels < 2 ** (order - 1)
    assert widths[-1] == inner and all(2 * widths[k - 1] == widths[k] for k in range(1, order))
    assert widths[0] + sum(widths) == 2 * inner


def test_resgnconv_order1_is_gated_convolution():
    torch.manual_seed(0)
    block = ResGnConv(13, order=1).eval()
    assert len(block.gates) == 0
    x = torch.randn(B, 13, H, W)
    projected = F.conv2d(x, block.proj_in.weight, block.proj_in.bias)
    p0, q0 = projected[:, :13], projected[:, 13:]
    gated = p0 * F.conv2d(q0, block.dwconv.weight, block.dwconv.bias, padding=3, groups=13)
    expected = F.conv2d(gated, block.proj_out.weight, block.proj_out.bias)  # eq. 1
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_resgnconv_order3_matches_spec_formula():
    torch.manual_seed(0)
    block = ResGnConv(16, order=3, lam=1.7).eval()
    _randomize_bn(block)
    x = torch.randn(B, 16, H, W)
    c0, c1, c2 = 4, 8, 16
    proj = block.proj_in(x)
    p0, q = proj[:, :c0], proj[:, c0:]
    fq = block.dwconv(q)
    f0, f1, f2 = fq[:, :c0], fq[:, c0 : c0 + c1], fq[:, c0 + c1 :]
    a0 = p0 * f0
    u1 = F.silu(block.gates[0].bn(block.gates[0].conv(a0)))
    a1 = (torch.cat((p0, f0), 1) + u1 * f1) / 1.7
    u2 = F.silu(block.gates[1].bn(block.gates[1].conv(a1)))
    a2 = (torch.cat((u1, f1), 1) + u2 * f2) / 1.7
    assert a2.shape[1] == c2
    torch.testing.assert_close(block(x), block.proj_out(a2), rtol=1e-5, atol=1e-5)


def test_gnconv_matches_hornet_recursion():
    torch.manual_seed(0)
    block = GnConv(16, order=3, scale=0.5)
    x = torch.randn(B, 16, H, W)
    proj = block.proj_in(x)
    p, q = proj[:, :4], proj[:, 4:]
    fq = block.dwconv(q) * 0.5
    p = p * fq[:, :4]
    p = block.pws[0](p) * fq[:, 4:12]
    p = block.pws[1](p) * fq[:, 12:]
    torch.testing.assert_close(block(x), block.proj_out(p))


def test_sppf_equals_spp_with_chained_kernels():
    torch.manual_seed(0)
    spp, sppf = SPP(13, 11, (5, 9, 13)).eval(), SPPF(13, 11, 5).eval()
    sppf.load_state_dict(spp.state_dict(), strict=False)
    sppf.cv1.load_state_dict(spp.cv1.state_dict())
    sppf.cv2.load_state_dict(spp.cv2.state_dict())
    x = torch.randn(B, 13, H, W)
    torch.testing.assert_close(sppf(x), spp(x))


def test_focus_is_space_to_depth():
    focus = Focus(1, 4, kernel_size=1)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    focus.conv.conv.weight.data = torch.eye(4).view(4, 4, 1, 1)
    focus.conv.bn = nn.Identity()
    focus.conv.act = nn.Identity()
    y = focus(x)
    assert y[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]


def test_cbam_identity_when_attention_saturates():
    cbam = CBAM(13, 4)
    nn.init.zeros_(cbam.channel.mlp[2].weight)
    nn.init.constant_(cbam.channel.mlp[2].bias, 50.0)
    nn.init.zeros_(cbam.spatial.conv.weight)
    nn.init.constant_(cbam.spatial.conv.bias, 50.0)
    x = torch.randn(B, 13, H, W)
    torch.testing.assert_close(cbam(x), x)


def test_fold_bn_before_conv_exact():
    torch.manual_seed(0)
    bn, conv = nn.BatchNorm2d(7).eval(), nn.Conv2d(7, 5, 1)
    _randomize_bn(bn)
    x = torch.randn(B, 7, H, W)
    torch.testing.assert_close(fold_bn_before_conv(bn, conv)(x), conv(bn(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="1x1"):
        fold_bn_before_conv(bn, nn.Conv2d(7, 5, 3, padding=1))


@pytest.mark.parametrize("block", ["drsi", "rhor"])
def test_c3dr_fusion_equal(block):
    torch.manual_seed(0)
    module = C3DR(11, 16, 2, block).eval()
    _randomize_bn(module)
    x = torch.randn(B, 11, H, W)
    with torch.no_grad():
        before = module(x)
        fuse_model(module)
        after = module(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("make", "channels"),
    [
        (lambda: ResGnConv(13, order=3, lam=1.7), 13),
        (lambda: ResGnConv(16, order=2), 16),
        (lambda: GnConv(13, order=3, scale=0.5), 13),
        (lambda: DRSIBlock(13), 13),
    ],
    ids=["resgnconv3_odd", "resgnconv2", "gnconv3_odd", "drsi_odd"],
)
def test_fused_and_channels_last_equal_eager(make, channels):
    """Fusion (BN and 1/lambda or scale folding) and channels_last give the eager eval output; fusing is idempotent."""
    torch.manual_seed(0)
    module = make().eval()
    _randomize_bn(module)
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(B, channels, H, W)
    with torch.no_grad():
        before = module(x)
        before_cl = module.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        fuse_model(module)
        fuse_model(module)
        after = module(x)
        after_cl = module(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(before_cl, before, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after_cl, before, rtol=1e-4, atol=1e-4)


def test_resgnconv_gradients_match_concat_formula():
    """The in-place residual sum of the forward pass has the concat formula's gradients (docs/design/drsinet.md)."""
    torch.manual_seed(0)
    block = ResGnConv(13, order=3, lam=1.7)
    x = torch.randn(B, 13, H, W, requires_grad=True)
    block(x).square().sum().backward()
    grads = [x.grad.clone(), *(p.grad.clone() for p in block.parameters())]
    block.zero_grad()
    x.grad = None
    widths = block.widths
    p0, q = torch.split(block.proj_in(x), [widths[0], sum(widths)], dim=1)
    fq = torch.split(block.dwconv(q), widths, dim=1)
    a, u_prev = p0 * fq[0], p0
    for k, gate in enumerate(block.gates, start=1):
        u = gate(a)
        a = (torch.cat((u_prev, fq[k - 1]), dim=1) + u * fq[k]) / 1.7
        u_prev = u
    block.proj_out(a).square().sum().backward()
    expected = [x.grad, *(p.grad for p in block.parameters())]
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["pan", "cbam_pan", "asi_pan"])
def test_pan_shapes(kind):
    channels = (11, 13, 17, 24)
    neck = PAN(channels, 1, kind, cbam_reduction=4)
    feats = [torch.randn(2, c, 16 // 2**i, 24 // 2**i) for i, c in enumerate(channels)]
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [tuple(f.shape) for f in feats]
    has_cbam = any(isinstance(m, CBAM) for m in neck.modules())
    has_res = any(isinstance(m, ResGnConv) for m in neck.modules())
    assert (has_cbam, has_res) == {"pan": (False, False), "cbam_pan": (True, False), "asi_pan": (True, True)}[kind]


def test_head_shapes_and_branch_layout():
    head = DRSIHead((11, 13), num_anchors=3, num_joints=5, strides=(8, 16))
    dw = [m for m in head.kpt[0] if m.conv.groups > 1]
    pw = [m for m in head.kpt[0] if m.conv.groups == 1]
    assert len(dw) == 6 and len(pw) == 5
    outs = head([torch.randn(2, 11, 6, 10), torch.randn(2, 13, 3, 5)])
    assert [tuple(o.shape) for o in outs] == [(2, 3, 6, 10, 21), (2, 3, 3, 5, 21)]
    bias = head.box[0].bias.detach().view(3, 6)  # YOLOv5 prior on top of the default init (|b| <= 1/sqrt(11))
    assert (bias[:, 4] - math.log(8 / 80**2)).abs().max() <= 1 / math.sqrt(11) + 1e-6
    assert (bias[:, 5] - math.log(0.6 / (1 - 0.99))).abs().max() <= 1 / math.sqrt(11) + 1e-6  # nc = 1


@pytest.mark.parametrize("channels_last", [False, True])
def test_layer_norm_2d_both_layouts_match_layer_norm(channels_last):
    """LayerNorm2d computes torch's LayerNorm over C in either memory format, with the same gradients.

    A channels_last input must stay channels_last without copies (the whole-model channels_last mode relies on it).
    """
    torch.manual_seed(0)
    norm = LayerNorm2d(13)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-1, 1)
    x = (torch.randn(B, 13, H, W) * 3 + 1).requires_grad_(True)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = norm(xin)
    if channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, norm.weight, norm.bias), grad_out)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (13,), norm.weight, norm.bias, norm.eps).permute(0, 3, 1, 2)
    want = torch.autograd.grad(ref, (x, norm.weight, norm.bias), grad_out)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
