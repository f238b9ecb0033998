"""Timing of several runners side by side: one call of each per round, medians over the rounds.

Alternating the runners inside each round exposes them to the same moments of a host whose speed drifts, so their
ratio is steadier than the ratio of two separate timing loops.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["time_round_robin"]


def time_round_robin(runners: dict[str, Callable[[], Any]], warmup: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU milliseconds per runner, one call of each runner per round.

    Args:
        runners: Name -> zero-argument callable.
        warmup: Untimed rounds first.
        repeats: Timed rounds.

    Returns:
        ``{name: {"wall_ms", "cpu_ms", "rounds"}}``, ``rounds`` being the number of timed calls.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for round_index in range(warmup + repeats):
        for name, run in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            if round_index >= warmup:
                samples[name].append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
    return {
        name: {
            "wall_ms": statistics.median(s[0] for s in ts),
            "cpu_ms": statistics.median(s[1] for s in ts),
            "rounds": len(ts),
        }
        for name, ts in samples.items()
    }
