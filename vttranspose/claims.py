"""The paper's claim about twin attention, measured: cost of twin vs full self-attention as the token grid grows.

VTTransPose (Sec. 3.3, Table 5) replaces TransPose's full self-attention over the ``H x W`` tokens with column then
row attention, whose attention matrices hold ``HW (H + W)`` elements instead of ``(HW)^2``. The benchmark suite
(``posezoo bench``) runs :func:`attention_scaling`, registered here as the ``"attention_scaling"`` claim.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from posecommon.measure import fit_exponent, peak_memory_bytes, tensor_bytes, time_round_robin
from posecommon.registry import register_provider

from .blocks import TransformerEncoderLayer, TwinAttention

__all__ = ["attention_scaling"]

logger = logging.getLogger(__name__)


@register_provider("claim", "attention_scaling")
def attention_scaling(
    grids: Sequence[tuple[int, int]], dim: int = 64, repeats: int = 3, clock: str = "wall"
) -> dict[str, Any]:
    """Twin attention vs the official full self-attention on growing token grids (forward + backward, batch 1).

    Full attention is TransPose's layer (``nn.MultiheadAttention`` called as the official code calls it, which
    materialises the ``(HW)^2`` attention matrix); twin attention is :class:`vttranspose.TwinAttention` (column
    then row attention through SDPA). Both in train mode with dropout 0.1, as in training.

    Args:
        grids: Token grids ``(h, w)`` to measure.
        dim: Token width d.
        repeats: Timed rounds per grid (runners alternate within each round).
        clock: ``"wall"`` or ``"cpu"`` milliseconds.

    Returns:
        ``{"rows": [...], "exponents": {...}}``: per grid the attention-matrix elements, median time (ms) and peak
        memory (MiB) of each kind, and the fitted log-log slope of each quantity against the token count HW.
    """

    rows = []
    for h, w in grids:
        torch.manual_seed(0)
        twin = TwinAttention(dim, 1, dropout=0.1).train()
        full = TransformerEncoderLayer(dim, 1, 2 * dim, 0.1).self_attn.train()
        x_twin = torch.randn(1, dim, h, w, requires_grad=True)
        x_full = torch.randn(h * w, 1, dim, requires_grad=True)
        runners = {
            "twin": lambda twin=twin, x=x_twin: twin(x).sum().backward(),
            "full": lambda full=full, x=x_full: full(x, x, value=x)[0].sum().backward(),
        }
        times = time_round_robin(runners, 1, repeats)
        row: dict[str, Any] = {
            "grid": [h, w],
            "tokens": h * w,
            "twin_elements": h * w * (h + w),
            "full_elements": (h * w) ** 2,
        }
        for kind, module, x in (("twin", twin, x_twin), ("full", full, x_full)):
            resident = tensor_bytes(module) + x.numel() * 4
            row[f"{kind}_ms"] = times[kind][f"{clock}_ms"]
            row[f"{kind}_peak_mb"] = peak_memory_bytes(runners[kind], resident) / 2**20
        row["memory_ratio"] = row["twin_peak_mb"] / row["full_peak_mb"]
        row["time_ratio"] = row["twin_ms"] / row["full_ms"]
        rows.append(row)
        logger.info("attention %dx%d: twin %.1f ms / full %.1f ms", h, w, row["twin_ms"], row["full_ms"])
    tokens = [r["tokens"] for r in rows]
    exponents = {
        f"{kind}_{quantity}": fit_exponent(tokens, [r[f"{kind}_{quantity}"] for r in rows])
        for kind in ("twin", "full")
        for quantity in ("elements", "ms", "peak_mb")
    }
    return {"dim": dim, "batch": 1, "rows": rows, "exponents": exponents}
