"""Batch scaling of the suite: per-image time at a large batch against batch 1, in the mode ``predict`` runs.

``predict`` runs :func:`posecommon.inference_module`'s copy of the model: BatchNorm folded (``fuse``) and, on CPU,
weights and inputs in channels-last memory. A batch is worth sending only if it costs no more per image than
single images, so this section times exactly that module at batch 1 and at batch ``B`` (8 by default),
alternating the two in every round (so a change of machine load hits both), and reports the ratio
``(time(B) / B) / time(1)``: at most 1 means batching does not hurt. Medians over the rounds, wall clock and
process CPU clock (all threads) both recorded; the suite's ``--clock`` picks the one the ratio uses.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .inference import inference_module
from .registry import create_model

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


def _forward(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    return run


def batch_scaling(
    models: Sequence[str],
    sizes: dict[str, tuple[int, int]],
    batch: int = 8,
    warmup: int = 1,
    repeats: int = 3,
    clock: str = "wall",
) -> list[dict[str, Any]]:
    """Per-image milliseconds of ``predict``'s module at batch 1 and ``batch``, and their ratio.

    Args:
        models: Registry names.
        sizes: Input ``(H, W)`` per model name.
        batch: The large batch.
        warmup: Untimed rounds (each round runs batch 1, then ``batch``).
        repeats: Timed rounds.
        clock: ``"wall"`` or ``"cpu"``: the clock of ``ratio``.

    Returns:
        One dict per model: ``model``, ``input_size``, ``batch``, ``mode`` (what :func:`inference_module` built),
        ``b1_ms`` / ``bN_ms_per_image`` (wall), ``b1_cpu_ms`` / ``bN_cpu_ms_per_image`` and ``ratio``.
    """
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = create_model(name).eval()
        module = inference_module(model)
        size = sizes[name]
        inputs = {b: torch.randn(b, 3, *size, generator=torch.Generator().manual_seed(b)) for b in (1, batch)}

        samples = _time_rounds({b: _forward(module, x) for b, x in inputs.items()}, warmup, repeats)
        wall = {b: statistics.median(s[0] for s in samples[b]) * 1e3 / b for b in samples}
        cpu = {b: statistics.median(s[1] for s in samples[b]) * 1e3 / b for b in samples}
        chosen = cpu if clock == "cpu" else wall
        rows.append(
            {
                "model": name,
                "input_size": list(size),
                "batch": batch,
                "mode": "fused" + (", channels-last" if type(module).__name__ == "ChannelsLastInput" else ""),
                "b1_ms": wall[1],
                "bN_ms_per_image": wall[batch],
                "b1_cpu_ms": cpu[1],
                "bN_cpu_ms_per_image": cpu[batch],
                "ratio": chosen[batch] / chosen[1],
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
        f"Batch scaling of the module `predict` runs ({rows[0]['mode']}): per-image time at batch {batch} / at "
        f"batch 1 ({clock} clock; at most 1 means batching does not hurt):",
        "",
        f"| model | input | b1 ms | b{batch} ms / image | b1 CPU ms | b{batch} CPU ms / image | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = "x".join(str(v) for v in r["input_size"])
        lines.append(
            f"| {r['model']} | {size} | {r['b1_ms']:.1f} | {r['bN_ms_per_image']:.1f} | {r['b1_cpu_ms']:.1f} "
            f"| {r['bN_cpu_ms_per_image']:.1f} | {r['ratio']:.2f}x |"
        )
    return lines
