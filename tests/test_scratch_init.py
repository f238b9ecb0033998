"""The He-normal backbone start (``backbone_weights="kaiming"``, vttranspose.scratch_init)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import vttranspose
from vttranspose.imagenet import PRETRAINED_LAYERS, in_backbone

SIZE = (64, 48)


def _backbone_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and in_backbone(name)
    }


@pytest.fixture(scope="module")
def pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    official = vttranspose.vttranspose_h_s(input_size=SIZE)
    torch.manual_seed(0)
    kaiming = vttranspose.vttranspose_h_s(input_size=SIZE, backbone_weights="kaiming")
    return official, kaiming


def test_kaiming_start_draws_every_backbone_conv_he_normal_fan_out(pair):
    _, model = pair
    convs = _backbone_convs(model)
    assert vttranspose.init_backbone_kaiming(copy.deepcopy(model)) == tuple(convs)  # the same layers, in order
    standardised = []
    for conv in convs.values():
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        standardised.append((conv.weight / math.sqrt(2.0 / fan_out)).flatten())
    values = torch.cat(standardised)
    assert values.numel() > 1_000_000
    assert abs(values.mean().item()) < 0.01
    assert 0.99 < values.std().item() < 1.01  # N(0, 2 / fan_out); the official start is N(0, 0.001)
    assert all(conv.bias is None or not conv.bias.any() for conv in convs.values())
    vblocks = [name for name, module in model.named_modules() if isinstance(module, vttranspose.VBlock)]
    assert len(vblocks) == 8 and all(any(c.startswith(f"{v}.") for c in convs) for v in vblocks)  # V blocks too


def test_kaiming_start_leaves_the_encoder_and_head_at_the_official_initialisation(pair):
    official, kaiming = pair
    backbone = tuple(f"{name}." for name in PRETRAINED_LAYERS)
    theirs = official.state_dict()
    changed = [key for key, value in kaiming.state_dict().items() if not torch.equal(value, theirs[key])]
    assert changed and all(key.startswith(backbone) for key in changed)
    assert all(key.endswith(".weight") for key in changed)  # conv weights only: BatchNorm stays (1, 0)
    assert torch.equal(kaiming.final_layer.weight, official.final_layer.weight)
    assert torch.equal(kaiming.reduce.weight, official.reduce.weight)


def test_kaiming_start_keeps_the_first_adam_steps_small_against_the_weights(pair):
    # The reason for the option (module docstring): Adam moves each weight by about lr per step, which is twice
    # a N(0, 0.001) weight at lr 2e-3 but a few per cent of a He-normal one.
    torch.manual_seed(1)
    images = torch.randn(4, 3, *SIZE)
    relative = {}
    for name, source in zip(("official", "kaiming"), pair, strict=True):
        model = vttranspose.vttranspose_h_s(input_size=SIZE)
        model.load_state_dict(source.state_dict())
        model.train()
        before = {k: c.weight.detach().clone() for k, c in _backbone_convs(model).items()}
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(3):
            optimizer.zero_grad()
            model(images).square().mean().backward()
            optimizer.step()
        after = _backbone_convs(model)
        relative[name] = max(
            ((after[k].weight - w).norm() / w.norm()).item() for k, w in before.items() if w.numel() > 1000
        )
    assert relative["official"] > 1.0  # the backbone is rewritten, not trained
    assert relative["kaiming"] < 0.2
