"""What a run is: its hyper-parameters (:class:`TrainConfig`) and what a model family supplies (:class:`TrainTask`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import InvalidInputError
from .optim import OPTIMIZERS
from .precision import AMP_MODES

__all__ = ["BEST_METRIC", "TrainConfig", "TrainTask"]

BEST_METRIC = "AP"
"""The evaluation number ``keep_best`` maximises: COCO keypoint AP, TransPose's ``perf_indicator``
(``lib/dataset/coco.py:365``, ``tools/train.py:215``)."""


class TrainTask(Protocol):
    """What a model family supplies to :class:`Trainer`."""

    def collate(self, samples: list[Any]) -> Any:
        """Stack dataset samples into a batch."""

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device``."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward ``batch`` and return the scalar loss and its named terms."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run.

    A *step* is one batch (forward and backward); with gradient accumulation the optimiser steps every
    ``accumulate`` batches (see :mod:`posecommon.train.schedule`).

    Args:
        total_steps: Batches of the whole run.
        batch_size: Samples per batch over all processes.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (SGD uses Nesterov momentum).
        lr: Peak (initial) learning rate.
        lr_final: Learning rate at the end of the cosine decay.
        momentum: SGD momentum / Adam beta1.
        weight_decay: Applied to weights of rank >= 2 only (not to biases or norm scales); multiplied by
            ``batch_size * accumulate / nominal_batch_size`` when accumulating.
        schedule: ``"cosine"`` (per step, linear warm-up) or ``"epoch_cosine"`` (YOLOv5: per epoch, YOLOv5 warm-up
            and accumulation ramp).
        warmup_steps: Warm-up steps.
        nominal_batch_size: Accumulate gradients to about this many samples per optimiser step (None: never).
        warmup_bias_lr: ``epoch_cosine`` warm-up: initial learning rate of the biases.
        warmup_momentum: ``epoch_cosine`` warm-up: initial SGD momentum.
        grad_clip: Maximum global gradient norm, or None.
        amp: ``"auto"`` (float16 + gradient scaling on CUDA, float32 on CPU), ``"fp16"`` (CUDA), ``"bf16"`` (CPU or
            CUDA, no scaling) or ``"none"``; see :mod:`posecommon.train.precision`.
        ema_decay: Keep an EMA of the weights with this decay (None: no EMA), updated after each optimiser step.
        ema_ramp: EMA updates over which the decay ramps up.
        eval_every: Run the evaluation callback every this many steps (0: only at the end).
        checkpoint_every: Write a checkpoint every this many steps (0: only at the end of :meth:`Trainer.fit`).
        keep_checkpoints: Complete checkpoints kept (the latest and the fall-backs).
        keep_best: Keep the weights of the evaluation with the best :data:`BEST_METRIC` (ties: the later one, as
            TransPose's ``>=``) in ``checkpoints/best-<step>/`` beside the latest checkpoint, and export them as
            ``final/`` (see :class:`~posecommon.train.Trainer`). Needs an evaluation callback.
        num_workers: DataLoader worker processes.
        prefetch_factor: Batches each worker keeps ready.
        seed: Seed of data order, augmentation and initial randomness.
        grad_checkpointing: ``model.set_grad_checkpointing(True)``: less activation memory for about one more
            forward pass per step.
        channels_last: Weights (and so activations) in channels-last memory.
        compile: Train through ``torch.compile(model)`` (forward and backward compiled; loss and optimiser eager).
    """

    total_steps: int
    batch_size: int
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_final: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    nominal_batch_size: int | None = None
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8
    grad_clip: float | None = None
    amp: str = "auto"
    ema_decay: float | None = None
    ema_ramp: float = 2000.0
    eval_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    keep_best: bool = False
    num_workers: int = 0
    prefetch_factor: int = 2
    seed: int = 0
    grad_checkpointing: bool = False
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.total_steps < 0 or self.batch_size < 1:
            problems.append(f"total_steps >= 0 and batch_size >= 1 (got {self.total_steps}, {self.batch_size})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer one of {OPTIMIZERS} (got {self.optimizer!r})")
        if self.amp not in AMP_MODES:
            problems.append(f"amp one of {AMP_MODES} (got {self.amp!r})")
        if self.schedule not in ("cosine", "epoch_cosine"):
            problems.append(f"schedule 'cosine' or 'epoch_cosine' (got {self.schedule!r})")
        if self.lr <= 0:
            problems.append(f"lr > 0 (got {self.lr})")
        if self.nominal_batch_size is not None and self.nominal_batch_size < 1:
            problems.append(f"nominal_batch_size >= 1 or None (got {self.nominal_batch_size})")
        if min(self.warmup_steps, self.eval_every, self.checkpoint_every, self.num_workers) < 0:
            problems.append("warmup_steps, eval_every, checkpoint_every and num_workers >= 0")
        if self.keep_checkpoints < 1 or self.prefetch_factor < 1:
            problems.append("keep_checkpoints >= 1 and prefetch_factor >= 1")
        if problems:
            raise InvalidInputError("invalid TrainConfig: expected " + "; ".join(problems))
