import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posecommon import count_macs, count_params


def test_conv_macs_match_hand_computation():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    report = count_macs(conv, (16, 12))
    # output 8 x 8 x 6, each output needs 3 * 3 * 3 multiply-adds
    assert report.total == 8 * 8 * 6 * 3 * 3 * 3
    assert report.by_op == {"convolution": report.total}


def test_grouped_conv_macs():
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(conv, (5, 7), in_channels=8).total == 8 * 5 * 7 * 9


def test_linear_macs_match_hand_computation():
    linear = nn.Linear(64, 32)
    assert count_macs(linear, inputs=torch.zeros(10, 64)).total == 10 * 64 * 32


class _SDPA(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_matmul_macs_are_counted(device):
    batch, heads, length, source, embed = 2, 3, 40, 24, 16
    q = torch.zeros(batch, heads, length, embed, device=device)
    k = torch.zeros(batch, heads, source, embed, device=device)
    report = count_macs(_SDPA(), inputs=(q, k, k))
    assert report.total == 2 * batch * heads * length * source * embed


def test_multihead_attention_counts_projections_and_matmuls():
    mha = nn.MultiheadAttention(16, 2)
    x = torch.zeros(50, 3, 16)  # (L, B, E)

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.mha(t, t, t)[0]

    total = count_macs(Wrapper(), inputs=x).total
    projections = 4 * 50 * 3 * 16 * 16
    attention = 2 * 3 * 50 * 50 * 16  # heads * head_dim = 16
    assert total == projections + attention


def test_count_params_includes_frozen_unless_asked():
    model = nn.Linear(4, 3)
    model.bias.requires_grad_(False)
    assert count_params(model) == 15
    assert count_params(model, trainable_only=True) == 12


def test_count_macs_needs_a_size():
    with pytest.raises(ValueError, match="input_size"):
        count_macs(nn.Identity())
