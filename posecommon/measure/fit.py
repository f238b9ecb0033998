"""Power-law fits of measurements (how a cost grows with a size)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fit_exponent"]


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``log y`` against ``log x`` (None with fewer than two positive points).

    A cost growing as ``x^p`` gives ``p``: 2 for full self-attention's matrix against the token count.
    """
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(points) < 2:
        return None
    mean_x = sum(p[0] for p in points) / len(points)
    mean_y = sum(p[1] for p in points) / len(points)
    var = sum((p[0] - mean_x) ** 2 for p in points)
    return sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / var if var else None
