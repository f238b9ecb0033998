"""Inference-time rewrites for batch scaling: exact convolution splits, dense per-map Res-gnConv, in-place GELU, and
predict's chunked channels-last batches (same outputs as one call)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from drsinet import drsi_net_s
from drsinet.blocks import DRSIBlock
from drsinet.gnconv import ResGnConv
from posecommon.layers import fuse_model, split_conv_outputs
from posecommon.predict.inference import ChannelsLastInput, _cat_outputs


@pytest.mark.parametrize(("groups", "sizes"), [(1, [3, 5, 4]), (12, [4, 8]), (4, [3, 9])])
def test_split_conv_outputs_concatenate_to_the_original(groups, sizes):
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 12, 3, padding=1, groups=groups)
    parts = split_conv_outputs(conv, sizes)
    assert [p.out_channels for p in parts] == sizes
    x = torch.randn(2, 12, 7, 9)
    if groups == 1:
        got = torch.cat([p(x) for p in parts], dim=1)
    else:  # each part reads the input channels of its own groups
        per_group = 12 // groups
        inputs = torch.split(x, [size // (12 // groups) * per_group for size in sizes], dim=1)
        got = torch.cat([p(i) for p, i in zip(parts, inputs, strict=True)], dim=1)
    torch.testing.assert_close(got, conv(x), rtol=1e-5, atol=1e-6)


def test_split_conv_outputs_rejects_bad_sizes():
    with pytest.raises(ValueError, match="sum"):
        split_conv_outputs(nn.Conv2d(4, 6, 1), [2, 3])
    with pytest.raises(ValueError, match="multiples"):
        split_conv_outputs(nn.Conv2d(4, 6, 1, groups=2), [2, 4])


def _ops(module: nn.Module, x: torch.Tensor) -> set[str]:
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        module(x)
    return {event.name for event in prof.events()}


@pytest.mark.parametrize("order", [2, 3])
def test_fused_resgnconv_reads_no_channel_slice(order):
    """After fuse_, p_0 and every f(q_k) come from their own convolution: no split/slice/contiguous copy remains,
    and the output equals the unfused module's in channels-last layout."""
    torch.manual_seed(0)
    block = ResGnConv(16, order=order, lam=1.7).eval()
    x = torch.randn(2, 16, 9, 14).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        before = block(x)
    assert {"aten::split_with_sizes", "aten::slice"} <= _ops(block, x)
    fuse_model(block)
    block = block.to(memory_format=torch.channels_last)
    assert block.split_parts is not None and not hasattr(block, "proj_in")
    ops = _ops(block, x)
    assert not ops & {"aten::split", "aten::split_with_sizes", "aten::slice", "aten::contiguous"}, ops
    with torch.no_grad():
        torch.testing.assert_close(block(x), before, rtol=1e-5, atol=1e-5)


def test_drsi_block_gelu_is_in_place_only_without_gradients():
    torch.manual_seed(0)
    block = DRSIBlock(8).eval()
    x = torch.randn(2, 8, 6, 7, requires_grad=True)
    out = block(x)  # gradients flow: out-of-place GELU
    with torch.no_grad():
        inference = block(x)
    torch.testing.assert_close(inference, out.detach(), rtol=0, atol=0)
    assert "aten::gelu_" in _ops(block, x.detach()) and "aten::gelu" not in _ops(block, x.detach())
    with profile(activities=[ProfilerActivity.CPU]) as prof:  # training keeps the usual out-of-place GELU
        block(x)
    assert {"aten::gelu"} == {e.name for e in prof.events() if e.name.startswith("aten::gelu")}
    grad_out = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, x, grad_out)

    def reference(inp: torch.Tensor) -> torch.Tensor:  # the block's formula with out-of-place ops only
        h = F.gelu(block.bn1(block.pw1(block.bn0(inp))))
        h = F.gelu(block.bn2(block.dw(h)))
        mid = inp + block.pw2(h)
        return mid + block.gnconv(block.norm(mid))

    (want,) = torch.autograd.grad(reference(x), x, grad_out)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


class _Recorder(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> object:
        self.batches.append(x.shape[0])
        return self.module(x)


@pytest.fixture
def fused_small_drsi() -> nn.Module:
    torch.manual_seed(0)
    model = drsi_net_s(input_size=(64, 64), width_multiple=0.25, depth_multiple=0.2).eval()
    return model.fuse().to(memory_format=torch.channels_last)


def test_channels_last_input_runs_chunks_with_the_same_outputs(fused_small_drsi):
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        whole = fused_small_drsi(x.contiguous(memory_format=torch.channels_last))
        for max_pixels, calls in [(64 * 64, [1, 1, 1]), (2 * 64 * 64 + 5, [2, 1]), (None, [3])]:
            recorder = _Recorder(fused_small_drsi)
            chunked = ChannelsLastInput(recorder, max_pixels=max_pixels)(x)
            assert recorder.batches == calls
            assert isinstance(chunked, list) and len(chunked) == len(whole)
            for got, want in zip(chunked, whole, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_cat_outputs_keeps_the_structure():
    a = {"x": torch.zeros(1, 2), "y": (torch.zeros(1), [torch.zeros(1, 3)])}
    b = {"x": torch.ones(2, 2), "y": (torch.ones(2), [torch.ones(2, 3)])}
    merged = _cat_outputs([a, b])
    assert merged["x"].shape == (3, 2) and isinstance(merged["y"], tuple) and isinstance(merged["y"][1], list)
    assert merged["y"][1][0].tolist() == [[0, 0, 0], [1, 1, 1], [1, 1, 1]]
    with pytest.raises(TypeError, match="concatenate"):
        _cat_outputs([object(), object()])
