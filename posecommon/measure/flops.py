"""Parameter and multiply-accumulate (MAC) counting on top of :mod:`torch.utils.flop_counter`.

The papers report "FLOPs" that are really MACs, so ``MACs = FLOPs / 2`` of the torch counter. Attention matmuls are
included: torch 2.13 has no formula for the CPU kernel of ``scaled_dot_product_attention``
(``aten._scaled_dot_product_flash_attention_for_cpu``), so it would count 0 there; we register one that gives
``B * heads * L * S * (E + Ev)`` MACs (``Q K^T`` plus ``A V``). Element-wise ops, softmax and normalisation are
not counted, as in ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["MacReport", "count_macs", "count_params", "sdpa_flops"]


def sdpa_flops(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]) -> int:
    """FLOPs of ``softmax(Q K^T) V``.

    Args:
        query_shape: ``(B, heads, L, E)``.
        key_shape: ``(B, heads, S, E)``.
        value_shape: ``(B, heads, S, Ev)``.
    """
    *batch, length, embed = query_shape
    source = key_shape[-2]
    value_embed = value_shape[-1]
    batch_heads = 1
    for b in batch:
        batch_heads *= b
    return 2 * batch_heads * length * source * (embed + value_embed)


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flops(query_shape, key_shape, value_shape)


def _extra_formulas() -> dict:
    ops = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        op = getattr(torch.ops.aten, name, None)
        if op is not None:
            ops[op] = _cpu_sdpa_flops
    return ops


@dataclass(frozen=True)
class MacReport:
    """Result of :func:`count_macs`: total MACs and MACs per aten operator (e.g. ``"convolution"``, ``"bmm"``)."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def giga(self) -> float:
        """Total in GMACs (1e9)."""
        return self.total / 1e9


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once).

    Frozen parameters (``requires_grad=False``, e.g. TransPose's sine table) are included unless ``trainable_only``.
    Buffers such as BatchNorm running statistics are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(
    model: nn.Module,
    input_size: tuple[int, int] | None = None,
    *,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    batch_size: int = 1,
    in_channels: int = 3,
    device: str | torch.device | None = None,
) -> MacReport:
    """Count the MACs of one forward pass.

    Args:
        model: Module to run (put in eval mode for the duration of the count, then restored).
        input_size: ``(H, W)``; a zero tensor ``(batch_size, in_channels, H, W)`` is fed when ``inputs`` is None.
        inputs: Explicit positional inputs instead of ``input_size``.
        batch_size: Batch size of the generated input.
        in_channels: Channels of the generated input.
        device: Device of the generated input; defaults to the model's parameter device. A model built on the
            ``"meta"`` device is counted without doing any arithmetic.

    Returns:
        A :class:`MacReport` with FLOPs / 2 in total and per operator.
    """
    if inputs is None:
        if input_size is None:
            raise ValueError("count_macs needs input_size=(H, W) or inputs=")
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        inputs = (torch.zeros(batch_size, in_channels, *input_size, device=device),)
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_extra_formulas()) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    by_op = {str(op).split(".")[-1]: flops // 2 for op, flops in counter.get_flop_counts()["Global"].items()}
    return MacReport(total=counter.get_total_flops() // 2, by_op=by_op)
