"""Batch scaling of the suite: per-image time at a large batch against batch 1, in the mode ``predict`` runs.

``predict`` runs :func:`posecommon.inference_module`'s copy of the model: BatchNorm folded (``fuse``) and, on CPU,
weights and inputs in channels-last memory, a batch split into calls of at most
:data:`~posecommon.predict.CPU_CHUNK_PIXELS` input pixels (or the model's own ``cpu_chunk_pixels``). A batch is
worth sending only if it costs no more per image than single images, so this section times exactly that module on
the same ``B`` images (8 by default) sent one by one and sent as one batch, alternating the two in every round (so a
change of machine load hits both, and both average over ``B`` images' work), and reports the ratio
``time(one batch of B) / time(B single images)``: at most 1 means batching does not hurt. Medians over the rounds,
wall clock and process CPU clock (all threads) both recorded; the suite's ``--clock`` picks the one the ratio uses.
The spread of the per-round ratios is reported beside the median: where the batch is run as single-image calls
anyway (``calls``), the work is the same and that spread is the measurement's noise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ...predict.inference import ChannelsLastInput, inference_module
from ...registry import create_model

__all__ = ["batch_scaling", "format_batch_markdown"]


def _time_rounds(runs: dict[int, Callable[[], Any]], warmup: int, repeats: int) -> dict[int, list[tuple[float, float]]]:
    samples: dict[int, list[tuple[float, float]]] = {batch: [] for batch in runs}
    for round_index in range(warmup + repeats):
        for batch, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            if round_index >= warmup:
                samples[batch].append((time.perf_counter() - wall, time.process_time() - cpu))
    return samples


def _forward(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
    """One forward call per tensor in ``inputs``."""

    def run() -> Any:
        with torch.inference_mode():
            return [module(x) for x in inputs]

    return run


def _calls(module: torch.nn.Module, batch: int, size: tuple[int, int]) -> str:
    """How ``module`` runs a batch: ``"1 x 8"`` (one call of 8 images) or ``"8 x 1"`` (eight calls of one)."""
    per_call = module.images_per_call(batch, size) if isinstance(module, ChannelsLastInput) else batch
    return f"{math.ceil(batch / per_call)} x {per_call}"


def batch_scaling(
    models: Sequence[str],
    sizes: dict[str, tuple[int, int]],
    batch: int = 8,
    warmup: int = 1,
    repeats: int = 3,
    clock: str = "wall",
) -> list[dict[str, Any]]:
    """Per-image milliseconds of ``predict``'s module on ``batch`` single images and on one batch, and their ratio.

    Args:
        models: Registry names.
        sizes: Input ``(H, W)`` per model name.
        batch: The large batch.
        warmup: Untimed rounds (each round runs the single images, then the batch).
        repeats: Timed rounds.
        clock: ``"wall"`` or ``"cpu"``: the clock of ``ratio``.

    Returns:
        One dict per model: ``model``, ``input_size``, ``batch``, ``mode`` (what :func:`inference_module` built),
        ``calls`` (how the module splits the batch: ``"calls x images"``), ``b1_ms`` / ``bN_ms_per_image`` (wall,
        per image), ``b1_cpu_ms`` / ``bN_cpu_ms_per_image``, ``ratio`` (of the medians) and ``round_ratios`` (per
        round, on ``clock``).
    """
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = create_model(name).eval()
        module = inference_module(model)
        size = sizes[name]
        images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
        runs = {1: _forward(module, list(images.split(1))), batch: _forward(module, [images])}
        samples = _time_rounds(runs, warmup, repeats)
        wall = {b: [s[0] * 1e3 / batch for s in samples[b]] for b in samples}
        cpu = {b: [s[1] * 1e3 / batch for s in samples[b]] for b in samples}
        chosen = cpu if clock == "cpu" else wall
        rows.append(
            {
                "model": name,
                "input_size": list(size),
                "batch": batch,
                "mode": "fused" + (", channels-last" if isinstance(module, ChannelsLastInput) else ""),
                "calls": _calls(module, batch, size),
                "b1_ms": statistics.median(wall[1]),
                "bN_ms_per_image": statistics.median(wall[batch]),
                "b1_cpu_ms": statistics.median(cpu[1]),
                "bN_cpu_ms_per_image": statistics.median(cpu[batch]),
                "ratio": statistics.median(chosen[batch]) / statistics.median(chosen[1]),
                "round_ratios": [big / single for big, single in zip(chosen[batch], chosen[1], strict=True)],
            }
        )
        del model, module
    return rows


def format_batch_markdown(rows: list[dict[str, Any]], clock: str) -> list[str]:
    """The markdown lines of the batch-scaling section."""
    if not rows:
        return []
    batch = rows[0]["batch"]
    lines = [
        "",
        f"Batch scaling of the module `predict` runs ({rows[0]['mode']}): per-image time of one batch of {batch} / "
        f"of the same {batch} images one by one ({clock} clock; at most 1 means batching does not hurt; calls: how "
        f"the module runs the batch, calls x images; per-round ratios: lowest and highest):",
        "",
        "| model | input | calls | single ms / image | batch ms / image | single CPU ms | batch CPU ms | ratio "
        "| per-round ratios |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = "x".join(str(v) for v in r["input_size"])
        spread = f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"
        lines.append(
            f"| {r['model']} | {size} | {r['calls']} | {r['b1_ms']:.1f} | {r['bN_ms_per_image']:.1f} "
            f"| {r['b1_cpu_ms']:.1f} | {r['bN_cpu_ms_per_image']:.1f} | {r['ratio']:.2f}x | {spread} |"
        )
    return lines
