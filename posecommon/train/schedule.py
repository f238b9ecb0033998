"""Learning-rate, momentum and gradient-accumulation schedules as pure functions of the step.

A resumed run needs no scheduler state: everything the optimiser is given at a step follows from the step (the
number of batches already trained on, 0-based "iteration" ``ni`` in YOLOv5's train.py) and the configuration.

Two schedules:

- ``"cosine"``: per step, linear warm-up to ``lr`` then cosine decay to ``lr_final`` (:func:`cosine_lr`), the same
  rate for every parameter group, constant momentum.
- ``"epoch_cosine"``: YOLOv5 / YOLO-Pose (edgeai-yolov5 branch yolo-pose, ``train.py``). The rate of epoch ``e``
  is ``lr * lf(e)`` with ``lf = one_cycle(1, lr_final / lr, epochs)`` (a cosine from 1 to ``lrf``,
  ``utils/general.py:220-222``), set once per epoch (``train.py:139``, ``:348``); this equals the closed form of
  ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs, eta_min=lr_final)`` stepped per epoch, TransPose's
  schedule (``tools/train.py:194-213``). During the first ``warmup_steps`` iterations (``ni <= nw``,
  ``train.py:285-293``) the rates are interpolated linearly in ``ni`` from ``warmup_bias_lr`` (bias group) and 0
  (other groups) to ``lr * lf(e)``, the momentum from ``warmup_momentum`` to ``momentum``, and the number of
  batches accumulated per optimiser step from 1 to ``nominal_batch_size / batch_size``
  (``round(interp(...))``, at least 1, ``train.py:288``). Afterwards ``accumulate = max(round(nominal /
  batch), 1)`` (``train.py:111``). The optimiser steps at iterations with ``ni % accumulate == 0``
  (``train.py:316``), and the gradients are cleared at the start of every epoch (``train.py:277``).

Parameter groups are ordered as YOLOv5's: 0 = weights without decay (norm scales), 1 = weights with decay,
2 = biases (``train.py:115-130``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["StepPlan", "TrainSchedule", "cosine_lr", "one_cycle"]

NUM_GROUPS = 3
BIAS_GROUP = 2


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


def one_cycle(x: float, y1: float, y2: float, steps: int) -> float:
    """YOLOv5's ``one_cycle(y1, y2, steps)(x)``: a half cosine from ``y1`` at ``x = 0`` to ``y2`` at ``x = steps``."""
    return ((1.0 - math.cos(x * math.pi / steps)) / 2.0) * (y2 - y1) + y1


@dataclass(frozen=True)
class StepPlan:
    """What the optimiser is given at one step.

    Args:
        lrs: Learning rate of each parameter group (no-decay weights, decay weights, biases).
        momentum: SGD momentum (Adam's beta1 is left alone), or None to leave it unchanged.
        accumulate: Batches accumulated per optimiser step at this step.
        optimizer_step: Whether the optimiser steps after this batch's backward pass.
        clear_gradients: Whether accumulated gradients are dropped before this batch (first batch of an epoch).
        epoch: 0-based epoch of this step.
    """

    lrs: tuple[float, float, float]
    momentum: float | None
    accumulate: int
    optimizer_step: bool
    clear_gradients: bool
    epoch: int


@dataclass(frozen=True)
class TrainSchedule:
    """The plan of every step of a run (see the module docstring for the two kinds).

    Args:
        kind: ``"cosine"`` or ``"epoch_cosine"``.
        total_steps: Steps (batches) of the run.
        steps_per_epoch: Batches per epoch.
        lr: Peak (initial) learning rate.
        lr_final: Final learning rate (``lr * lrf`` in YOLOv5 terms).
        momentum: SGD momentum after warm-up.
        warmup_steps: Warm-up iterations (``nw``).
        batch_size: Samples per batch over all processes (``total_batch_size``).
        nominal_batch_size: Samples per optimiser step to accumulate to (``nbs``); None: no accumulation.
        warmup_bias_lr: Initial rate of the bias group in the ``epoch_cosine`` warm-up.
        warmup_momentum: Initial momentum in the ``epoch_cosine`` warm-up.
    """

    kind: str
    total_steps: int
    steps_per_epoch: int
    lr: float
    lr_final: float
    momentum: float
    warmup_steps: int = 0
    batch_size: int = 1
    nominal_batch_size: int | None = None
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "epoch_cosine"):
            raise ValueError(f"unknown schedule {self.kind!r}; choose 'cosine' or 'epoch_cosine'")
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}")

    @property
    def epochs(self) -> int:
        """Epochs the cosine spans (the last one may be partial)."""
        return max(1, math.ceil(self.total_steps / self.steps_per_epoch))

    @property
    def accumulate(self) -> int:
        """Batches per optimiser step after warm-up: ``max(round(nominal / batch), 1)`` (``train.py:111``)."""
        if self.nominal_batch_size is None:
            return 1
        return max(round(self.nominal_batch_size / self.batch_size), 1)

    def weight_decay_scale(self) -> float:
        """Factor on the weight decay: ``batch * accumulate / nominal`` (``train.py:112``), 1 without accumulation."""
        if self.nominal_batch_size is None:
            return 1.0
        return self.batch_size * self.accumulate / self.nominal_batch_size

    def plan(self, step: int) -> StepPlan:
        """The plan of 0-based ``step`` (the batch about to be trained on)."""
        epoch = step // self.steps_per_epoch
        clear = step % self.steps_per_epoch == 0
        if self.kind == "cosine":
            lr = cosine_lr(step, self.total_steps, self.lr, self.lr_final, self.warmup_steps)
            accumulate = self.accumulate
            return StepPlan((lr,) * NUM_GROUPS, None, accumulate, step % accumulate == 0, clear, epoch)
        scheduled = self.lr * one_cycle(epoch, 1.0, self.lr_final / self.lr, self.epochs)
        lrs: tuple[float, ...] = (scheduled,) * NUM_GROUPS
        momentum, accumulate = self.momentum, self.accumulate
        nw = self.warmup_steps
        if nw > 0 and step <= nw:
            xp = [0, nw]
            if self.nominal_batch_size is not None:
                ramp = np.interp(step, xp, [1, self.nominal_batch_size / self.batch_size])
                accumulate = max(1, int(np.round(ramp)))
            lrs = tuple(
                float(np.interp(step, xp, [self.warmup_bias_lr if g == BIAS_GROUP else 0.0, scheduled]))
                for g in range(NUM_GROUPS)
            )
            momentum = float(np.interp(step, xp, [self.warmup_momentum, self.momentum]))
        return StepPlan(lrs, momentum, accumulate, step % accumulate == 0, clear, epoch)  # type: ignore[arg-type]
