"""Learning-rate schedules as pure functions of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math

__all__ = ["cosine_lr"]


def cosine_lr(step: int, total_steps: int, lr: float, lr_final: float, warmup_steps: int = 0) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to ``lr``, then cosine decay to ``lr_final``.

    Args:
        step: Optimiser step about to be taken.
        total_steps: Steps of the whole run; at ``step >= total_steps`` the rate is ``lr_final``.
        lr: Peak learning rate.
        lr_final: Final learning rate.
        warmup_steps: Steps of linear warm-up from ``lr / warmup_steps`` to ``lr``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * progress))
