"""The memory-lean training forward of DRSI-Net's gated blocks equals a plain reference and keeps less memory.

The references below are written out from the paper's equations (SPEC's Res-gnConv reading, eq. 7-8 for the DRSI
block, HorNet's gnConv) with the modules' own parameters, and run with autograd keeping every intermediate.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import drsinet.blocks
import drsinet.gnconv
from drsinet import C3DR, DRSIBlock, GnConv, ResGnConv
from drsinet.blocks import HorBlock
from posecommon.app.bench.train_worker import peak_tensor_bytes


def reference_gnconv(m: GnConv, x: torch.Tensor) -> torch.Tensor:
    p, q = m.proj_in(x).split([m.widths[0], sum(m.widths)], dim=1)
    fq = (m.dwconv(q) * m.scale).split(m.widths, dim=1)
    p = p * fq[0]
    for k, pw in enumerate(m.pws, start=1):
        p = pw(p) * fq[k]
    return m.proj_out(p)


def reference_resgnconv(m: ResGnConv, x: torch.Tensor) -> torch.Tensor:
    p0, q = m.proj_in(x).split([m.widths[0], sum(m.widths)], dim=1)
    fq = m.dwconv(q).split(m.widths, dim=1)
    a, u_prev = p0 * fq[0], p0
    for k, gate in enumerate(m.gates, start=1):
        u = gate(a)
        a = (torch.cat((u_prev, fq[k - 1]), dim=1) + u * fq[k]) / m.lam
        u_prev = u
    return m.proj_out(a)


def reference_drsi_block(m: DRSIBlock, x: torch.Tensor) -> torch.Tensor:
    h = F.gelu(m.bn1(m.pw1(m.bn0(x))))
    i = x + m.pw2(F.gelu(m.bn2(m.dw(h))))
    return i + reference_resgnconv(m.gnconv, m.norm(i))


def reference_hor_block(m: HorBlock, x: torch.Tensor) -> torch.Tensor:
    mixer = reference_gnconv if isinstance(m.mixer, GnConv) else reference_resgnconv
    x = x + m.gamma1 * mixer(m.mixer, m.norm1(x))
    return x + m.gamma2 * m.mlp(m.norm2(x))


REFERENCES = {GnConv: reference_gnconv, ResGnConv: reference_resgnconv, DRSIBlock: reference_drsi_block}
REFERENCES[HorBlock] = reference_hor_block


def _build(kind: str, channels: int, order: int) -> torch.nn.Module:
    if kind == "gnconv":
        return GnConv(channels, order)
    if kind == "resgnconv":
        return ResGnConv(channels, order)
    if kind == "drsi":
        return DRSIBlock(channels, order=order)
    return HorBlock(channels, "resgnconv" if kind == "rhor" else "gnconv", order=order, layer_scale=0.5)


def _run(module, reference, x, grad_out):
    """Forward + backward of ``module`` (lean) and of the reference on a deep copy; returns both sides."""
    twin = copy.deepcopy(module)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = module(xa), reference(twin, xb)
    ya.backward(grad_out)
    yb.backward(grad_out)
    return (ya, xa.grad, module), (yb, xb.grad, twin)


def _assert_same(lean, plain, atol=1e-5, rtol=1e-5):
    (ya, ga, ma), (yb, gb, mb) = lean, plain
    torch.testing.assert_close(ya, yb, atol=atol, rtol=rtol)
    torch.testing.assert_close(ga, gb, atol=atol, rtol=rtol)
    for (name, pa), pb in zip(ma.named_parameters(), mb.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")
    for (name, ba), bb in zip(ma.named_buffers(), mb.buffers(), strict=True):  # BatchNorm statistics updated once
        torch.testing.assert_close(ba, bb, atol=0, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("kind", ["gnconv", "resgnconv", "drsi", "hor", "rhor"])
@pytest.mark.parametrize(
    ("channels", "order", "size"), [(8, 1, (5, 7)), (16, 2, (9, 6)), (12, 3, (8, 8)), (16, 4, (4, 5))]
)
def test_lean_training_equals_the_plain_reference(kind, channels, order, size):
    torch.manual_seed(order)
    module = _build(kind, channels, order).train()
    assert module.memory_lean
    x = torch.randn(2, channels, *size)
    grad_out = torch.randn(2, channels, *size)
    lean, plain = _run(module, REFERENCES[type(module)], x, grad_out)
    _assert_same(lean, plain)


def test_lean_training_keeps_less_memory():
    """A stack of blocks holds about 10 instead of 36 maps per block; one block's intermediates are rebuilt at a
    time in backward."""
    torch.manual_seed(0)
    blocks = torch.nn.Sequential(*(DRSIBlock(32) for _ in range(6))).train()
    x = torch.randn(2, 32, 32, 32, requires_grad=True)

    def peak() -> int:
        blocks.zero_grad(set_to_none=True)  # outside the measured step (see peak_tensor_bytes)
        x.grad = None
        return peak_tensor_bytes(lambda: blocks(x).square().mean().backward())

    lean = peak()
    for module in blocks.modules():
        if hasattr(module, "memory_lean"):
            module.memory_lean = False
    plain = peak()
    assert lean < 0.6 * plain, (lean, plain)


def test_inference_runs_the_plain_forward(monkeypatch):
    """Eval mode and no_grad never enter the recomputation (ONNX export and predict trace this path)."""

    def refuse(*args, **kwargs):
        raise AssertionError("recomputation entered outside training")

    monkeypatch.setattr(drsinet.blocks, "checkpoint_dense_convolutions", refuse)
    monkeypatch.setattr(drsinet.gnconv, "checkpoint_dense_convolutions", refuse)
    block = C3DR(16, 16, 2).train()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        train_no_grad = block(x)
    block.eval()
    eval_grad = block(x)
    with torch.no_grad():
        torch.testing.assert_close(block(x), eval_grad)
    assert train_no_grad.shape == eval_grad.shape


def test_lean_training_under_bf16_autocast_matches_plain():
    torch.manual_seed(0)
    block = DRSIBlock(16).train()
    twin = copy.deepcopy(block)
    twin.memory_lean = False
    x = torch.randn(2, 16, 8, 8)
    outs = []
    for m in (block, twin):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(xi)
        y.float().square().mean().backward()
        outs.append((y, xi.grad, [p.grad for p in m.parameters()]))
    (ya, ga, pa), (yb, gb, pb) = outs
    assert ya.dtype == yb.dtype
    torch.testing.assert_close(ya, yb, atol=0, rtol=0)
    torch.testing.assert_close(ga, gb, atol=0, rtol=0)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.slow
def test_lean_block_under_torch_compile_matches_eager():
    """Under torch.compile the block runs its plain forward (the compiler chooses what to recompute)."""
    torch.manual_seed(0)
    block = DRSIBlock(16).train()
    twin = copy.deepcopy(block)
    x, grad_out = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = torch.compile(block)(xa), twin.forward_plain(xb)
    ya.backward(grad_out)
    yb.backward(grad_out)
    torch.testing.assert_close(ya, yb, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-4, rtol=1e-4)
    for pa, pb in zip(block.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-4, rtol=1e-4)
    for ba, bb in zip(block.buffers(), twin.buffers(), strict=True):
        torch.testing.assert_close(ba, bb, atol=1e-5, rtol=1e-5)
