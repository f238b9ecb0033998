"""``set_grad_checkpointing`` on every registered model: same gradients and statistics, less memory kept."""

import copy

import pytest
import torch

from posecommon import create_model, list_models
from posecommon.app.bench.train_worker import peak_tensor_bytes
from posecommon.registry import get_model_info

TINY = {"drsinet": (128, 128), "vttranspose": (64, 48)}
LARGE = {"drsi_net_m", "drsi_net_l"}


def _loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else out
    return sum(o.square().mean() for o in outs)


def _step(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(1)  # the same dropout masks in both runs
    x = x.clone().requires_grad_()
    _loss(model, x).backward()
    return x.grad, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in list_models()])
def test_gradients_equal_with_and_without_checkpointing(name):
    size = TINY[get_model_info(name).family]
    torch.manual_seed(0)
    model = create_model(name, input_size=size).train()
    twin = copy.deepcopy(model)
    twin.set_grad_checkpointing(True)
    x = torch.randn(2, 3, *size)
    grad_x, grads = _step(model, x)
    grad_x_ckpt, grads_ckpt = _step(twin, x)
    torch.testing.assert_close(grad_x_ckpt, grad_x, atol=1e-6, rtol=1e-4)
    for key, grad in grads.items():
        assert grad is not None and grads_ckpt[key] is not None, key
        torch.testing.assert_close(grads_ckpt[key], grad, atol=1e-6, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
    for (key, buffer), other in zip(model.named_buffers(), twin.buffers(), strict=True):
        torch.testing.assert_close(other, buffer, atol=0, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("name", ["drsi_net_s", "vttranspose_h_s"])
def test_checkpointing_keeps_less_memory(name):
    size = TINY[get_model_info(name).family]
    torch.manual_seed(0)
    model = create_model(name, input_size=size).train()
    x = torch.randn(2, 3, *size)

    def peak() -> int:
        """Peak tensor memory of the forward and loss, whose graph (the activations kept for backward) is held."""
        kept = []
        peak = peak_tensor_bytes(lambda: kept.append(_loss(model, x)))
        kept.pop().backward()
        return peak

    plain = peak()
    model.set_grad_checkpointing(True)
    checkpointed = peak()
    model.set_grad_checkpointing(False)
    assert peak() > 0.9 * plain  # switched off again
    assert checkpointed < 0.75 * plain, (checkpointed, plain)


def test_model_without_segments_says_so():
    from posecommon.model import PoseModel

    class Bare(PoseModel):
        def __init__(self) -> None:
            super().__init__(type("Config", (), {"num_joints": 17})())
            self.conv = torch.nn.Conv2d(3, 17, 1)

    with pytest.raises(NotImplementedError, match="no gradient checkpointing segments"):
        Bare().set_grad_checkpointing(True)
