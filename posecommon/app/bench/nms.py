"""NMS section of the benchmark suite: time and peak memory of :func:`posecommon.ops.nms` at 1k / 10k / 30k boxes.

The candidates imitate what DRSI-Net hands to NMS at a low score threshold: most boxes jitter around a few dozen
people (heavy overlap, many suppressed), the rest are scattered over a 960 x 960 image; scores are uniform. The
peak memory is measured with :func:`posecommon.measure.peak_memory_bytes` (CPU tensor allocations while NMS runs,
plus the input boxes and scores); the ``dense_mb`` column is what one ``N x N`` float32 IoU matrix alone would take
(the previous implementation built it plus ``N x N`` temporaries).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from ...measure import peak_memory_bytes
from ...ops import nms

__all__ = ["NMS_SIZES", "format_nms_markdown", "nms_benchmark", "synthetic_candidates"]

NMS_SIZES = (1000, 10000, 30000)
"""Candidate counts of the suite's NMS benchmark (30,000 is DRSI-Net's ``max_candidates`` cap)."""


def synthetic_candidates(
    count: int, people: int = 40, image_size: float = 960.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate boxes ``(count, 4)`` xyxy and scores ``(count,)``: 80 % jittered around ``people`` boxes, 20 % random.

    Args:
        count: Number of candidates.
        people: Number of underlying person boxes.
        image_size: Side of the square image the boxes lie in (pixels).
        seed: Random seed.
    """
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(people, 2, generator=gen) * image_size
    sizes = torch.rand(people, 2, generator=gen) * torch.tensor([120.0, 300.0]) + torch.tensor([30.0, 60.0])
    clustered = int(count * 0.8)
    which = torch.randint(0, people, (clustered,), generator=gen)
    centre = centres[which] + torch.randn(clustered, 2, generator=gen) * sizes[which] * 0.1
    size = sizes[which] * (1 + 0.15 * torch.randn(clustered, 2, generator=gen)).clamp(min=0.3)
    scattered = count - clustered
    centre = torch.cat((centre, torch.rand(scattered, 2, generator=gen) * image_size))
    size = torch.cat((size, torch.rand(scattered, 2, generator=gen) * 200 + 10))
    boxes = torch.cat((centre - size / 2, centre + size / 2), dim=1)
    return boxes, torch.rand(count, generator=gen)


def nms_benchmark(
    sizes: Sequence[int] = NMS_SIZES, iou_threshold: float = 0.65, repeats: int = 3, clock: str = "wall"
) -> dict[str, Any]:
    """Median time and peak memory of :func:`~posecommon.ops.nms` on :func:`synthetic_candidates`.

    Args:
        sizes: Candidate counts.
        iou_threshold: NMS IoU (0.65: YOLO-Pose's evaluation value).
        repeats: Timed runs per size (the median is reported).
        clock: ``"wall"`` or ``"cpu"`` (process CPU time).

    Returns:
        ``{"iou_threshold", "rows": [{"candidates", "kept", "ms", "peak_mb", "dense_mb"}]}``.
    """

    timer = time.perf_counter if clock == "wall" else time.process_time
    rows = []
    for count in sizes:
        boxes, scores = synthetic_candidates(count)
        kept = nms(boxes, scores, iou_threshold)
        times = []
        for _ in range(repeats):
            start = timer()
            nms(boxes, scores, iou_threshold)
            times.append((timer() - start) * 1e3)
        resident = boxes.numel() * boxes.element_size() + scores.numel() * scores.element_size()
        peak = peak_memory_bytes(lambda b=boxes, s=scores: nms(b, s, iou_threshold), resident)
        rows.append(
            {
                "candidates": count,
                "kept": int(kept.numel()),
                "ms": sorted(times)[len(times) // 2],
                "peak_mb": peak / 2**20,
                "dense_mb": count * count * 4 / 2**20,
            }
        )
    return {"iou_threshold": iou_threshold, "clock": clock, "rows": rows}


def format_nms_markdown(section: dict[str, Any]) -> list[str]:
    """Markdown lines of the NMS section of the report."""
    lines = [
        "",
        f"Box NMS (IoU {section['iou_threshold']}, {section['clock']} clock; dense = one N x N float32 IoU matrix):",
        "",
        "| candidates | kept | time (ms) | peak MB | dense MB |",
        "|---|---|---|---|---|",
    ]
    for r in section["rows"]:
        lines.append(
            f"| {r['candidates']:,} | {r['kept']:,} | {r['ms']:.1f} | {r['peak_mb']:.1f} | {r['dense_mb']:,.0f} |"
        )
    return lines
