"""VTTransPose blocks and HRNet-S pieces: odd channel counts, non-square sizes, gradients, fusion, receptive fields."""

import math

import pytest
import torch
from torch import nn

from posecommon.layers import fuse_model
from vttranspose import (
    AsymmetricConv,
    AxialPositionEmbedding,
    BasicBlock,
    Bottleneck,
    ConvBN,
    DWSeparableFFN,
    HRModule,
    HRNetS,
    TwinAttention,
    TwinEncoderLayer,
    VBlock,
)


def randomize_bn_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters so fusion is really exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return module


def assert_all_params_get_grad(module: nn.Module, out: torch.Tensor) -> None:
    out.square().mean().backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize(("cin", "cout"), [(5, 7), (3, 1), (16, 16)])
def test_asymmetric_conv_shapes_grads_and_exact_fusion(cin, cout):
    block = AsymmetricConv(cin, cout)
    x = torch.randn(2, cin, 9, 6)
    out = block(x)
    assert out.shape == (2, cout, 9, 6)
    assert_all_params_get_grad(block, out)
    randomize_bn_(block).eval()
    with torch.no_grad():
        before = block(x)
        block.fuse_()
        after = block(x)
    assert isinstance(block.conv_v, nn.Conv2d) and block.conv_v.kernel_size == (3, 3)
    assert isinstance(block.conv_h, nn.Identity) and isinstance(block.bn, nn.Identity)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_asymmetric_conv_pair_is_a_rank_one_3x3_per_channel_pair():
    block = AsymmetricConv(1, 1).eval()
    block.conv_v.weight.data = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1)
    block.conv_h.weight.data = torch.tensor([4.0, 5.0, 6.0]).view(1, 1, 1, 3)
    block.fuse_()
    scale = 1 / math.sqrt(1 + 1e-5)  # fresh BatchNorm: mean 0, var 1, weight 1, bias 0, eps 1e-5
    expected = torch.outer(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])) * scale
    torch.testing.assert_close(block.conv_v.weight[0, 0], expected)


@pytest.mark.parametrize("channels", [4, 7, 13, 128])
def test_vblock_any_channel_count(channels):
    block = VBlock(channels)
    x = torch.randn(2, channels, 5, 7)
    out = block(x)
    assert out.shape == x.shape
    assert sum(block.split_sizes) == channels and max(block.split_sizes) - min(block.split_sizes) <= 1
    assert_all_params_get_grad(block, out)


def test_vblock_rejects_too_few_channels():
    with pytest.raises(ValueError, match="channels >= scales"):
        VBlock(3)


def _extent(grad: torch.Tensor) -> int:
    rows = grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_vblock_receptive_fields_match_table_1():
    """Table 1: forward features see 3, 5, 7, 9 pixels; y_1..y_4 see 15, 13, 11, 9 (along each axis)."""
    block = VBlock(8).eval()
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)  # positive weights and inputs: ReLUs never cut a path
    x = torch.rand(1, 8, 31, 31, requires_grad=True)
    forward_feats, ys = block.cascade(x)
    measured = []
    for feat in [*forward_feats, *ys]:
        (grad,) = torch.autograd.grad(feat[:, :, 15, 15].sum(), x, retain_graph=True)
        measured.append(_extent(grad))
    assert measured == [3, 5, 7, 9, 15, 13, 11, 9]


def test_vblock_fusion_is_exact():
    block = randomize_bn_(VBlock(13)).eval()
    x = torch.randn(2, 13, 6, 5)
    with torch.no_grad():
        before = block(x)
        fuse_model(block)
        after = block(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def naive_axis_attention(x, qkv, proj, heads, axis):
    """Reference: loop over columns (axis=2 sequences over H) or rows (axis=3 sequences over W)."""
    b, c, h, w = x.shape
    hd = c // heads
    out = torch.empty_like(x)
    n_seq = w if axis == 2 else h
    for bi in range(b):
        for s in range(n_seq):
            seq = x[bi, :, :, s].T if axis == 2 else x[bi, :, s, :].T  # (L, C)
            q, k, v = qkv(seq).split(c, dim=-1)
            heads_out = []
            for hi in range(heads):
                sl = slice(hi * hd, (hi + 1) * hd)
                attn = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(hd), dim=-1)
                heads_out.append(attn @ v[:, sl])
            res = proj(torch.cat(heads_out, dim=-1)).T  # (C, L)
            if axis == 2:
                out[bi, :, :, s] = res
            else:
                out[bi, :, s, :] = res
    return out


@pytest.mark.parametrize(("dim", "heads"), [(6, 2), (9, 3), (5, 1)])
def test_twin_attention_is_column_then_row_attention(dim, heads):
    torch.manual_seed(0)
    attn = TwinAttention(dim, heads).eval()
    x = torch.randn(2, dim, 5, 7)
    with torch.no_grad():
        expected = naive_axis_attention(x, attn.column_qkv, attn.column_proj, heads, axis=2)
        expected = naive_axis_attention(expected, attn.row_qkv, attn.row_proj, heads, axis=3)
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    attn.train()
    out = attn(x)
    assert out.shape == x.shape
    assert_all_params_get_grad(attn, out)


def test_twin_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        TwinAttention(7, 2)


def test_dwseparable_ffn_structure_and_grads():
    ffn = DWSeparableFFN(7)
    x = torch.randn(2, 7, 4, 9)
    out = ffn(x)
    assert out.shape == x.shape
    assert sum(p.numel() for p in ffn.parameters()) == 2 * (7 * 9 + 7 + 7 * 7 + 7)
    assert ffn.conv1.depthwise.groups == 7 and ffn.conv1.depthwise.kernel_size == (3, 3)
    assert_all_params_get_grad(ffn, out)


@pytest.mark.parametrize("ffn", ["dwsep", "mlp"])
def test_twin_encoder_layer(ffn):
    layer = TwinEncoderLayer(10, num_heads=2, ffn=ffn, dim_feedforward=12, dropout=0.0)
    x = torch.randn(2, 10, 5, 3)
    out = layer(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 5, 3), atol=1e-5, rtol=0)  # post-norm (LN last)
    assert_all_params_get_grad(layer, out)


def test_axial_position_embedding_interpolates():
    embed = AxialPositionEmbedding(6, 8, 6)
    x = torch.zeros(1, 6, 8, 6)
    out = embed(x)
    torch.testing.assert_close(out, embed.embed_h + embed.embed_w + x)
    bigger = embed(torch.zeros(2, 6, 12, 9))
    assert bigger.shape == (2, 6, 12, 9)
    embed_h, embed_w = embed.tables(12, 9)
    assert embed_h.shape == (1, 6, 12, 1) and embed_w.shape == (1, 6, 1, 9)
    with torch.no_grad():
        embed.embed_h.fill_(0.5)
        embed.embed_w.fill_(0.25)
    torch.testing.assert_close(embed(torch.zeros(1, 6, 5, 11)), torch.full((1, 6, 5, 11), 0.75))
    assert_all_params_get_grad(embed, embed(torch.randn(1, 6, 12, 9)))


def test_hrnet_blocks_odd_channels_and_fusion():
    for block, x in (
        (BasicBlock(5), torch.randn(2, 5, 7, 4)),
        (Bottleneck(5, 3), torch.randn(2, 5, 7, 4)),
        (ConvBN(5, 3, 3, stride=2, relu=True), torch.randn(2, 5, 7, 4)),
    ):
        out = block(x)
        assert_all_params_get_grad(block, out)
        randomize_bn_(block).eval()
        with torch.no_grad():
            before = block(x)
            fuse_model(block)
            block.fuse_()
            after = block(x)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert Bottleneck(5, 3)(torch.randn(1, 5, 3, 3)).shape == (1, 12, 3, 3)


def test_hr_module_odd_sizes_and_vblocks():
    module = HRModule((5, 10, 20), num_blocks=2, num_vblocks=(0, 1, 2))
    assert isinstance(module.branches[2][0], VBlock) and isinstance(module.branches[1][0], BasicBlock)
    xs = [torch.randn(2, 5, 9, 7), torch.randn(2, 10, 5, 4), torch.randn(2, 20, 3, 2)]
    outs = module(xs)
    assert [tuple(o.shape) for o in outs] == [tuple(x.shape) for x in xs]
    assert_all_params_get_grad(module, sum(o.mean() for o in outs))
    single = HRModule((5, 10, 20), num_blocks=1, multi_scale_output=False)
    assert [tuple(o.shape) for o in single(xs)] == [(2, 5, 9, 7)]


def test_hrnet_s_backbone_non_square_and_fusion():
    net = HRNetS(width=8, stage3_modules=2, blocks_per_branch=1, vblocks_per_module=(1, 0))
    x = torch.randn(2, 3, 36, 20)
    out = net(x)
    assert out.shape == (2, 8, 9, 5)
    assert_all_params_get_grad(net, out)
    randomize_bn_(net).eval()
    with torch.no_grad():
        before = net(x)
        fuse_model(net)
        net.fuse_()
        after = net(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_official_encoder_layer_for_inference_skips_the_attention_weights_with_equal_outputs():
    """``fuse()`` switches the official layer to ``need_weights=False``: same outputs, and the (L x L) weights are
    no longer computed (a hook on the attention module sees ``None`` instead of them)."""
    from vttranspose import TransformerEncoderLayer, transpose_h_s

    torch.manual_seed(0)
    layer = TransformerEncoderLayer(16, num_heads=2, dim_feedforward=32).eval()
    src, pos = torch.randn(48, 3, 16), torch.randn(48, 1, 16)
    seen = []
    layer.self_attn.register_forward_hook(lambda module, args, out: seen.append(out[1]))
    with torch.no_grad():
        official = layer(src, pos)
        assert seen[-1] is not None and seen[-1].shape == (3, 48, 48)
        fast = layer.for_inference_()(src, pos)
    assert seen[-1] is None
    torch.testing.assert_close(fast, official, rtol=1e-5, atol=1e-5)

    model = transpose_h_s().eval()
    fused = transpose_h_s().eval()
    fused.load_state_dict(model.state_dict())
    fused.fuse()
    assert all(not m.need_weights for m in fused.modules() if isinstance(m, TransformerEncoderLayer))
    assert all(m.need_weights for m in model.modules() if isinstance(m, TransformerEncoderLayer))
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)


def test_predict_runs_the_official_full_attention_one_crop_per_call_on_cpu():
    """``inference_module`` takes the model's ``cpu_chunk_pixels``: one crop per call for TransPose-H-S (its
    per-image time grows with the batch), the default budget for twin attention; outputs equal one call's."""
    from posecommon.predict.inference import CPU_CHUNK_PIXELS, inference_module
    from vttranspose import transpose_h_s, vttranspose_h_s

    torch.manual_seed(0)
    x = torch.randn(3, 3, 64, 48)
    for factory, budget, calls in ((transpose_h_s, 1, [1, 1, 1]), (vttranspose_h_s, CPU_CHUNK_PIXELS, [3])):
        model = factory().eval()
        net = inference_module(model, channels_last=True)
        assert net.max_pixels == budget
        seen: list[int] = []
        handle = net.module.register_forward_pre_hook(lambda module, args, seen=seen: seen.append(args[0].shape[0]))
        with torch.no_grad():
            chunked = net(x)
            handle.remove()
            whole = net.module(x.contiguous(memory_format=torch.channels_last))
        assert seen == calls
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
