"""A small, explicit training loop shared by both model families.

What differs between families (collation, loss, evaluation) comes in through a :class:`TrainTask`; the loop
handles devices, AMP on CUDA, the cosine schedule, gradient clipping, EMA, atomic checkpoints with exact resume,
DDP under ``torchrun``, progress bars and the metrics log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.distributed as dist
from huggingface_hub.utils import tqdm
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ModelEMA
from .sampling import SeededSamples, StepBatchSampler, derive_seed
from .schedule import cosine_lr

__all__ = ["TrainConfig", "TrainTask", "Trainer"]

logger = logging.getLogger(__name__)


class TrainTask(Protocol):
    """What a model family supplies to :class:`Trainer`."""

    def collate(self, samples: list[Any]) -> Any:
        """Stack dataset samples into a batch."""

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device``."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward ``batch`` and return the scalar loss (a mean over samples) and its named terms."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run.

    Args:
        total_steps: Optimiser steps of the whole run.
        batch_size: Samples per step over all processes.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (SGD uses Nesterov momentum).
        lr: Peak learning rate.
        lr_final: Learning rate at the end of the cosine decay.
        momentum: SGD momentum / Adam beta1.
        weight_decay: Applied to weights of rank >= 2 (convolutions, linear layers) only, not to biases or norms.
        warmup_steps: Linear warm-up steps.
        grad_clip: Maximum global gradient norm, or None.
        amp: Use float16 autocast + gradient scaling when training on CUDA (ignored on CPU).
        ema_decay: Keep an EMA of the weights with this decay (None: no EMA).
        eval_every: Run the evaluation callback every this many steps (0: only at the end).
        checkpoint_every: Write ``checkpoints/last`` every this many steps (0: only at the end).
        num_workers: DataLoader worker processes.
        seed: Seed of data order, augmentation and initial randomness.
    """

    total_steps: int
    batch_size: int
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    lr_final: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = None
    amp: bool = True
    ema_decay: float | None = None
    eval_every: int = 0
    checkpoint_every: int = 0
    num_workers: int = 0
    seed: int = 0


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: the final step, per-step losses and evaluation results."""

    step: int
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def _build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=(config.momentum, 0.999))
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose 'adam', 'adamw' or 'sgd'")


class Trainer:
    """Trains ``model`` on ``dataset`` for ``config.total_steps`` steps, writing everything under ``out_dir``.

    Layout of ``out_dir``: ``checkpoints/last/`` (see :mod:`posecommon.train.checkpoint`), ``metrics.jsonl`` (one
    JSON object per logged step or evaluation), ``train_config.json``, and ``final/`` (``save_pretrained`` export
    of the EMA weights when EMA is on, else of the model) when the model supports it.

    Under ``torchrun`` (``torch.distributed`` initialised before the trainer is built) the model is wrapped in
    DDP, each rank loads its share of every global batch, and only rank 0 writes files or shows progress.

    Args:
        model: The model (a :class:`~posecommon.PoseModel` for the final export).
        dataset: Map-style training dataset.
        task: Collation, device transfer and loss of the family.
        config: Hyper-parameters.
        out_dir: Run directory.
        evaluate: Callback ``evaluate(model) -> {"AP": ...}`` run on rank 0 with the EMA (or plain) model.
        device: Training device (default: CUDA when available, else CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        task: TrainTask,
        config: TrainConfig,
        out_dir: str | Path,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # torchrun: set by LOCAL_RANK
        self.model = model.to(self.device)
        self.dataset = dataset
        self.task = task
        self.config = config
        self.out_dir = Path(out_dir)
        self.evaluate_fn = evaluate
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.use_amp = config.amp and self.device.type == "cuda"
        self.optimizer = _build_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = ModelEMA(self.model, config.ema_decay) if config.ema_decay else None
        self.step = 0

    @property
    def checkpoint_dir(self) -> Path:
        """``out_dir/checkpoints/last``."""
        return self.out_dir / "checkpoints" / "last"

    @property
    def eval_model(self) -> nn.Module:
        """The EMA model when EMA is on, else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def resume(self) -> bool:
        """Restore model, optimiser, EMA and step from ``checkpoints/last`` if it exists; return whether it did."""
        if not (self.checkpoint_dir / "state.json").is_file():
            return False
        state = load_checkpoint(self.checkpoint_dir)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(state["ema"])
            self.ema.updates = state["ema_updates"]
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        logger.info("resumed from %s at step %d", self.checkpoint_dir, self.step)
        return True

    def save(self) -> None:
        """Write ``checkpoints/last`` (rank 0 only)."""
        if self.rank != 0:
            return
        save_checkpoint(
            self.checkpoint_dir,
            step=self.step,
            model=self.model,
            optimizer=self.optimizer,
            ema=self.ema.module if self.ema is not None else None,
            ema_updates=self.ema.updates if self.ema is not None else 0,
            scaler_state=self.scaler.state_dict() if self.use_amp else None,
            extra={"config": asdict(self.config)},
        )

    def _loader(self, stop_step: int) -> DataLoader:
        sampler = StepBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            self.config.batch_size,
            stop_step,
            start_step=self.step,
            seed=self.config.seed,
            rank=self.rank,
            world_size=self.world_size,
        )
        return DataLoader(
            SeededSamples(self.dataset, self.config.seed),
            batch_sampler=sampler,
            collate_fn=self.task.collate,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with (self.out_dir / "metrics.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _evaluate(self, result: TrainResult) -> None:
        if self.evaluate_fn is None or self.rank != 0:
            return
        metrics = self.evaluate_fn(self.eval_model)
        result.evaluations.append({"step": self.step, **metrics})
        self._log({"step": self.step, "eval": metrics})
        self.model.train()

    def _train_step(self, model: nn.Module, batch: Any) -> tuple[float, dict[str, float]]:
        cfg = self.config
        lr = cosine_lr(self.step, cfg.total_steps, cfg.lr, cfg.lr_final, cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(derive_seed(cfg.seed, self.step, self.rank, 1))
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            loss, terms = self.task.loss(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.step}; lower the learning rate or check data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return float(loss.detach()), {k: float(v.detach()) for k, v in terms.items()} | {"lr": lr}

    def fit(self, resume: bool = True, stop_step: int | None = None) -> TrainResult:
        """Run (or resume) training; returns the losses and evaluations of this call.

        Args:
            resume: Continue from ``checkpoints/last`` when it exists.
            stop_step: Stop (with a checkpoint) after this step instead of ``config.total_steps``; the learning-rate
                schedule still spans ``config.total_steps``, so a later ``fit()`` continues exactly.
        """
        stop = self.config.total_steps if stop_step is None else min(stop_step, self.config.total_steps)
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.json").write_text(json.dumps(asdict(self.config), indent=2))
        if resume:
            self.resume()
        model: nn.Module = self.model
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(self.model, device_ids=device_ids)
        model.train()
        result = TrainResult(step=self.step)
        progress = tqdm(
            total=self.config.total_steps, initial=self.step, desc="train", unit="step", disable=self.rank != 0
        )
        tick = time.perf_counter()
        for batch in self._loader(stop):
            batch = self.task.to_device(batch, self.device)
            loss, terms = self._train_step(model, batch)
            self.step += 1
            result.losses.append(loss)
            elapsed = max(time.perf_counter() - tick, 1e-9)
            tick = time.perf_counter()
            images_per_s = self.config.batch_size / elapsed
            self._log({"step": self.step, "loss": loss, "images_per_s": images_per_s, **terms})
            progress.set_postfix(loss=f"{loss:.4g}", img_s=f"{images_per_s:.1f}")
            progress.update(1)
            if self.config.eval_every and self.step % self.config.eval_every == 0:
                self._evaluate(result)
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self.save()
        progress.close()
        result.step = self.step
        self.save()
        if self.step == self.config.total_steps:
            if not (self.config.eval_every and self.step % self.config.eval_every == 0):
                self._evaluate(result)
            self._export()
        return result

    def _export(self) -> None:
        save_pretrained = getattr(self.eval_model, "save_pretrained", None)
        if self.rank == 0 and callable(save_pretrained):
            save_pretrained(self.out_dir / "final")
