"""A small, explicit training loop shared by both model families.

What differs between families (collation, loss, evaluation) comes in through a :class:`TrainTask`; the loop
handles devices, mixed precision, the learning-rate / momentum / accumulation schedule, gradient clipping, EMA,
crash-safe checkpoints with exact resume, Ctrl-C, DDP under ``torchrun``, progress bars and the metrics log.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from ..config import check_device
from ..errors import CheckpointError, InvalidInputError, RunMismatchError, TrainingDivergedError, TrainingInterrupted
from ..measure.progress import Progress
from .checkpoint import CheckpointStore
from .config import BEST_METRIC, TrainConfig, TrainTask
from .durable import atomic_write_bytes
from .ema import ModelEMA
from .interrupt import Abandoned, StopRequest
from .loader import build_loader, raise_failure, shutdown_workers
from .metrics_log import MetricsLog
from .optim import build_optimizer
from .precision import resolve_precision
from .run_identity import describe_run, diff_runs
from .run_lock import RunLock
from .sampling import derive_seed
from .schedule import StepPlan, TrainSchedule

__all__ = ["TrainResult", "Trainer"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: the final step, per-step losses and evaluations of this call, and (with
    ``keep_best``) the best evaluation of the whole run, ``{"step", "metric", "value"}``."""

    step: int
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


class Trainer:
    """Trains ``model`` on ``dataset`` for ``config.total_steps`` steps, writing everything under ``out_dir``.

    Layout of ``out_dir``: ``checkpoints/`` (:class:`~posecommon.train.checkpoint.CheckpointStore`:
    ``step-<step>/`` directories and the ``latest.json`` pointer), ``metrics.jsonl`` (one JSON object per step or
    evaluation), ``train_config.json``, and ``final/`` (``save_pretrained`` export of the EMA weights when EMA is
    on, else of the model) when the model supports it.

    With ``config.keep_best`` every evaluation whose :data:`~posecommon.train.config.BEST_METRIC` (AP) is at least
    the best so far keeps the evaluated weights (:meth:`CheckpointStore.save_best
    <posecommon.train.checkpoint.CheckpointStore.save_best>`, beside the latest checkpoint), and ``final/`` holds
    the best weights instead of the last ones, as TransPose keeps ``model_best.pth`` (``tools/train.py:208-231``).
    The latest checkpoint still holds the last step, so resuming stays exact; the best record survives the resume.

    Resuming restores model, optimiser, EMA, gradient scaler, accumulated gradients and step from the newest
    loadable checkpoint, after checking that the run is the same (model, training settings and ``run_info``;
    :func:`~posecommon.train.run_identity.describe_run`). Data order, augmentation and dropout are seeded by
    step, so the resumed run computes exactly what the uninterrupted one would.

    Under ``torchrun`` (``torch.distributed`` initialised before the trainer is built) the model is wrapped in
    DDP, each rank loads its share of every global batch, and only rank 0 writes files or shows progress; every
    rank reads the checkpoints, so ``out_dir`` must be on a file system they share.

    :meth:`fit` holds ``out_dir``'s :class:`~posecommon.train.run_lock.RunLock` (rank 0) from the resume to the
    final export, so a second process refuses the directory instead of sharing it. Stop signals are handled as
    :mod:`posecommon.train.interrupt` describes; ``report`` is told what happens ("resuming from step N", "stopping
    after step N").

    Args:
        model: The model (a :class:`~posecommon.PoseModel` for the final export).
        dataset: Map-style training dataset.
        task: Collation, device transfer and loss of the family.
        config: Hyper-parameters.
        out_dir: Run directory.
        evaluate: Callback ``evaluate(model) -> {"AP": ...}`` run on rank 0 with the EMA (or plain) model.
        device: Training device (default: CUDA when available, else CPU).
        run_info: JSON-able facts about the run that a resume must not change (data, augmentation, ...).
        report: Receives one-line notices for the user (default: the module's logger at INFO); also called from
            the signal handler when a stop is requested.
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
        run_info: dict[str, Any] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        check_device(device)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # torchrun: set by LOCAL_RANK
        self.model = model.to(self.device)
        if config.grad_checkpointing:
            set_checkpointing = getattr(model, "set_grad_checkpointing", None)
            if set_checkpointing is None:
                raise InvalidInputError(f"{type(model).__name__} cannot checkpoint gradients; drop grad_checkpointing")
            set_checkpointing(True)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.dataset = dataset
        self.task = task
        self.config = config
        self.out_dir = Path(out_dir)
        self.evaluate_fn = evaluate
        self.run_info = run_info or {}
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.precision = resolve_precision(config.amp, self.device)
        steps_per_epoch = max(1, len(dataset) // config.batch_size)  # type: ignore[arg-type]
        self.schedule = TrainSchedule(
            kind=config.schedule,
            total_steps=config.total_steps,
            steps_per_epoch=steps_per_epoch,
            lr=config.lr,
            lr_final=config.lr_final,
            momentum=config.momentum,
            warmup_steps=config.warmup_steps,
            batch_size=config.batch_size,
            nominal_batch_size=config.nominal_batch_size,
            warmup_bias_lr=config.warmup_bias_lr,
            warmup_momentum=config.warmup_momentum,
        )
        weight_decay = config.weight_decay * self.schedule.weight_decay_scale()
        self.optimizer = build_optimizer(self.model, config.optimizer, config.lr, config.momentum, weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.grad_scaling)
        self.ema = ModelEMA(self.model, config.ema_decay, config.ema_ramp) if config.ema_decay else None
        self.store = CheckpointStore(self.out_dir / "checkpoints", keep=config.keep_checkpoints)
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl")
        self.report = report or logger.info
        self.step = 0
        self._saved_step: int | None = None
        self._saved_path: Path | None = None
        self._interrupt: StopRequest | None = None
        self.best: dict[str, Any] | None = None

    @property
    def eval_model(self) -> nn.Module:
        """The EMA model when EMA is on, else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def describe(self) -> dict[str, Any]:
        """This run's description, stored in each checkpoint and compared on resume."""
        return describe_run(self.model, self.config, self.run_info)

    def _check_same_run(self, saved: dict[str, Any], where: Path, resume_anyway: bool) -> list[str]:
        current = self.describe()
        if not isinstance(saved, dict):  # a hand-edited checkpoint
            saved = {}
        if saved.get("model") != current["model"] or saved.get("model_layout") != current["model_layout"]:
            what = (
                f"another model ({saved.get('model')!r})"
                if saved.get("model") != current["model"]
                else f"a {current['model']} of another shape (parameter names or shapes differ)"
            )
            raise RunMismatchError(
                f"{self.out_dir} holds a run of {what} in checkpoint {where.name}; this run trains "
                f"{current['model']!r}. Use another --out.",
                diff_runs(
                    {k: saved.get(k) for k in ("model", "model_layout")},
                    {k: current[k] for k in ("model", "model_layout")},
                ),
            )
        differences = diff_runs(saved, current)
        if differences and not resume_anyway:
            listed = "; ".join(differences)
            raise RunMismatchError(
                f"{self.out_dir} holds a run with other settings (checkpoint {where.name}, saved -> now: {listed}). "
                "Run again with the saved settings to resume it, pass --resume-anyway (resume_anyway=True) to "
                "continue it with the new ones, or use another --out.",
                differences,
            )
        if differences:
            logger.warning("resuming %s with changed settings: %s", self.out_dir, "; ".join(differences))
        return differences

    def resume(self, resume_anyway: bool = False) -> bool:
        """Restore the newest loadable checkpoint of ``out_dir``; return whether there was one.

        Args:
            resume_anyway: Continue even when the saved run's settings differ from this one's (the model must be
                the same).

        Raises:
            CheckpointError: the run directory holds checkpoints but none loads, or only an earlier version's.
            RunMismatchError: the checkpoint belongs to another model, or (without ``resume_anyway``) another
                configuration; the message lists the differences.
        """
        found = self.store.load_latest()
        if found is None:
            return False
        state, where = found
        differences = self._check_same_run(state["extra"].get("run", {}), where, resume_anyway)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise RunMismatchError(f"checkpoint {where} does not fit this model or optimiser: {err}") from None
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(state["ema"])
            self.ema.updates = state["ema_updates"]
        elif self.ema is not None:  # EMA switched on by a resume_anyway: average from the resumed weights
            self.ema = ModelEMA(self.model, self.config.ema_decay or 0.0, self.config.ema_ramp)
        if state["scaler"] and self.precision.grad_scaling:
            self.scaler.load_state_dict(state["scaler"])
        grads = state["grads"] or {}
        for name, param in self.model.named_parameters():
            param.grad = grads[name].to(param.device) if name in grads else None
        self.step = state["step"]
        self._saved_step = self.step
        self._saved_path = where
        if differences and self.rank == 0:
            (self.out_dir / f"train_config.before-step-{self.step}.json").write_text(
                json.dumps(state["extra"].get("run", {}), indent=2)
            )
            self._write_config()
        if self.rank == 0:
            self.report(f"resuming from step {self.step} (checkpoint {where})")
        return True

    def check_resumable(self, resume_anyway: bool = False) -> int | None:
        """Compare this run with the run saved in ``out_dir`` without loading or writing anything.

        Lets a caller refuse a changed run before it writes files of its own (``posezoo train`` does so before
        writing ``recipe.json``); :meth:`resume` checks again on the checkpoint it loads.

        Returns:
            The step of the newest checkpoint that records its run, or None when there is none.

        Raises:
            RunMismatchError: as :meth:`resume`.
        """
        found = self.store.newest_description()
        if found is None:
            return None
        description, where, step = found
        self._check_same_run(description, where, resume_anyway)
        return step

    def _write_config(self) -> None:
        atomic_write_bytes(self.out_dir / "train_config.json", json.dumps(asdict(self.config), indent=2).encode())

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 only; other ranks return None).

        During :meth:`fit`, stop signals wait until the checkpoint is complete.
        """
        if self.rank != 0:
            return None
        with self._interrupt.protected() if self._interrupt is not None else nullcontext():
            self.metrics.sync()
            grads = {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None}
            directory = self.store.save(
                self.step,
                model=self.model,
                optimizer=self.optimizer,
                ema=self.ema.module if self.ema is not None else None,
                ema_updates=self.ema.updates if self.ema is not None else 0,
                scaler_state=self.scaler.state_dict() if self.precision.grad_scaling else None,
                grads=grads or None,
                extra={"run": self.describe()},
            )
            self._saved_step = self.step
            self._saved_path = directory
        return directory

    def _evaluate(self, result: TrainResult) -> bool:
        """Run the evaluation callback (rank 0); False when a stop signal abandoned it (nothing is recorded)."""
        if self.evaluate_fn is None or self.rank != 0:
            return True
        try:
            with self._interrupt.abandonable() if self._interrupt is not None else nullcontext():
                metrics = self.evaluate_fn(self.eval_model)
        except Abandoned:
            self._abandoned = True
            return False
        finally:
            self.model.train()
        result.evaluations.append({"step": self.step, **metrics})
        self.metrics.append({"step": self.step, "eval": metrics})
        if self.config.keep_best:
            self._track_best(metrics)
        return True

    def _evaluated_at(self, step: int) -> bool:
        return any(record.get("step") == step for record in self.metrics.evaluations())

    def _stopped(self, signum: int, phase: str, at_once: bool = False) -> TrainingInterrupted:
        """The exception that ends :meth:`fit` after a stop signal (see :class:`~posecommon.TrainingInterrupted`)."""
        checkpoint = self._saved_path
        if checkpoint is None and self._saved_step is not None:
            checkpoint = (self.store.candidates() or [None])[0]
        return TrainingInterrupted(
            self.step,
            str(checkpoint) if checkpoint else None,
            self.rank,
            signum,
            phase=phase,
            at_once=at_once,
            checkpoint_step=self._saved_step if checkpoint else None,
        )

    def _stop_at_once(self, signum: int) -> TrainingInterrupted:
        return self._stopped(signum, self._phase, at_once=True)

    def _announce_stop(self, signum: int) -> None:
        """Say at once what a first stop signal does (called from the signal handler)."""
        if self.rank != 0:
            return
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        doing = {
            "training": f"finishing step {self.step + 1}, saving a checkpoint, then stopping",
            "finishing": "finishing the final weights, then stopping",
        }.get(self._phase, "saving a checkpoint, then stopping")
        with suppress(RuntimeError, OSError, ValueError):  # a print interrupted inside print: the notice can go
            self.report(f"{name}: {doing} ({name} again stops at once, losing the steps since the last checkpoint)")

    def _track_best(self, metrics: dict[str, float]) -> None:
        value = metrics.get(BEST_METRIC)
        if value is None or not math.isfinite(value):
            logger.warning("keep_best: the evaluation gave no finite %s (%s); not a best candidate", BEST_METRIC, value)
            return
        if self.best is not None and value < self.best["value"]:
            return
        self.store.save_best(self.step, self.eval_model, BEST_METRIC, float(value))
        self.best = {"step": self.step, "metric": BEST_METRIC, "value": float(value)}
        logger.info("best %s so far: %.4f at step %d", BEST_METRIC, value, self.step)

    def final_model(self) -> nn.Module:
        """What ``final/`` holds: a copy of :attr:`eval_model` with the best weights when ``keep_best`` kept any,
        else :attr:`eval_model` itself."""
        found = self.store.load_best() if self.config.keep_best else None
        if found is None:
            return self.eval_model
        state, _ = found
        best = copy.deepcopy(self.eval_model)
        best.load_state_dict(state)
        return best.eval()

    def _apply(self, plan: StepPlan) -> None:
        for group, lr in zip(self.optimizer.param_groups, plan.lrs, strict=True):
            group["lr"] = lr
            if plan.momentum is not None and "momentum" in group:
                group["momentum"] = plan.momentum
        if plan.clear_gradients:
            self.optimizer.zero_grad(set_to_none=True)

    def _diverged(self, loss: torch.Tensor) -> TrainingDivergedError:
        if self._saved_path is not None:
            kept = f"checkpoint step {self._saved_step} ({self._saved_path}) and the older ones are kept"
        else:
            kept = "no checkpoint was written yet"
        return TrainingDivergedError(
            f"the loss is {loss.item()} at step {self.step + 1}; training stopped and {kept}. Lower the learning "
            "rate (--lr), clip gradients (--grad-clip) or check the data"
        )

    def _train_step(self, model: nn.Module, batch: Any, plan: StepPlan) -> tuple[float, dict[str, float]]:
        cfg = self.config
        self._apply(plan)
        torch.manual_seed(derive_seed(cfg.seed, self.step, self.rank, 1))
        with self.precision.autocast(self.device):
            loss, terms = self.task.loss(model, batch)
        if not torch.isfinite(loss):
            raise self._diverged(loss)
        self.scaler.scale(loss).backward()
        if plan.optimizer_step:
            if cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.model)
        return float(loss.detach().float()), {k: float(v.detach().float()) for k, v in terms.items()}

    def _schedule_record(self, plan: StepPlan) -> dict[str, Any]:
        record: dict[str, Any] = {"lr": plan.lrs[1]}
        if self.config.schedule == "epoch_cosine":
            record |= {"lr_bias": plan.lrs[2], "epoch": plan.epoch}
            if plan.momentum is not None and "momentum" in self.optimizer.param_groups[0]:
                record["momentum"] = plan.momentum
        if self.config.nominal_batch_size is not None:
            record |= {"accumulate": plan.accumulate, "optimizer_step": plan.optimizer_step}
        return record

    def _stop_everywhere(self, requested: bool) -> bool:
        if not self.distributed:
            return requested
        flag = torch.tensor([1.0 if requested else 0.0], device=self.device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def _prepare(self, resume: bool, resume_anyway: bool) -> None:
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            resumed = self.resume(resume_anyway)
        else:
            if self.store.has_material():
                raise CheckpointError(
                    f"{self.out_dir} already holds checkpoints; resume them (resume=True) or use another out_dir"
                )
            resumed = False
        if self.rank != 0:
            return
        if resumed and self.config.keep_best:
            record = self.store.best_record()
            self.best = {k: record[k] for k in ("step", "metric", "value")} if record else None
        elif not resumed:
            self.store.clear_best()  # a run starting again at step 0 compares with its own evaluations only
        dropped = self.metrics.trim(self.step)
        if not resumed:
            if dropped:
                logger.warning(
                    "%s has no complete checkpoint (an earlier attempt stopped before its first one): starting at "
                    "step 0 and dropping %d line(s) of its metrics log",
                    self.out_dir,
                    dropped,
                )
            self._write_config()

    def fit(self, resume: bool = True, stop_step: int | None = None, resume_anyway: bool = False) -> TrainResult:
        """Run (or resume) training; returns the losses and evaluations of this call.

        At the last step the model is evaluated (unless the run's log already holds an evaluation of that step, as
        when a finished run is run again) and exported to ``out_dir/final``.

        Args:
            resume: Continue from the newest checkpoint of ``out_dir`` (see :meth:`resume`). With False the run
                directory must hold no checkpoints.
            stop_step: Stop (with a checkpoint) after this step instead of ``config.total_steps``; the schedule
                still spans ``config.total_steps``, so a later ``fit()`` continues exactly.
            resume_anyway: Resume even when the saved settings differ from this run's (see :meth:`resume`).

        Raises:
            RunInUseError: another process is using ``out_dir``.
            TrainingInterrupted: on SIGINT (Ctrl-C) or SIGTERM (see :mod:`posecommon.train.interrupt`): after the
                running step finished and a checkpoint was written, or at once on a second signal.
            TrainingDivergedError: the loss became NaN or infinite (the checkpoints are kept).
        """
        stop = self.config.total_steps if stop_step is None else min(stop_step, self.config.total_steps)
        self._phase = "training"
        self._abandoned = False
        lock = RunLock(self.out_dir) if self.rank == 0 else nullcontext()
        with lock, StopRequest(self._announce_stop, self._stop_at_once) as interrupt:
            self._interrupt = interrupt
            try:
                self._prepare(resume, resume_anyway)
                result = self._loop(stop, interrupt)
                result.step = self.step
                result.best = self.best
                if self._saved_step != self.step:
                    self.save()
                if self.step == self.config.total_steps:
                    self._phase = "evaluation"
                    if not self._evaluated_at(self.step) and not self._evaluate(result):
                        raise self._stopped(interrupt.signal or signal.SIGINT, "evaluation")
                    result.best = self.best
                    self._phase = "finishing"
                    with interrupt.protected():
                        self._export()
                    if interrupt.requested:
                        raise self._stopped(interrupt.signal or signal.SIGINT, "finishing")
            finally:
                self._interrupt = None
                self.metrics.close()
        return result

    def _loop(self, stop: int, interrupt: StopRequest) -> TrainResult:
        cfg = self.config
        model: nn.Module = self.model
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(self.model, device_ids=device_ids)
        model.train()
        if cfg.compile:
            model = torch.compile(model)
        result = TrainResult(step=self.step)
        loader = build_loader(
            self.dataset,
            self.task.collate,
            batch_size=cfg.batch_size,
            start_step=self.step,
            stop_step=stop,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world_size,
            num_workers=cfg.num_workers,
            prefetch_factor=cfg.prefetch_factor,
            pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        progress = Progress(cfg.total_steps, "train", "step", initial=self.step, disable=self.rank != 0)
        try:
            while not self._stop_everywhere(interrupt.requested):
                started = time.perf_counter()
                batch = raise_failure(next(batches, None))
                if batch is None:
                    break
                batch = self.task.to_device(batch, self.device)
                data_wait = time.perf_counter() - started
                plan = self.schedule.plan(self.step)
                loss, terms = self._train_step(model, batch, plan)
                self.step += 1
                result.losses.append(loss)
                elapsed = max(time.perf_counter() - started, 1e-9)
                record = {"step": self.step, "loss": loss, **terms, **self._schedule_record(plan)}
                record |= {"images_per_s": cfg.batch_size / elapsed, "data_wait_s": data_wait, "step_s": elapsed}
                if self.rank == 0:
                    self.metrics.append(record)
                progress.set_postfix(
                    loss=f"{loss:.4g}", img_s=f"{record['images_per_s']:.1f}", data=f"{data_wait / elapsed:.0%}"
                )
                progress.update(1)
                with progress.paused():  # the bar's s/step counts training steps, not evaluations or checkpoints
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        self._evaluate(result)
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
        finally:
            progress.close()
            shutdown_workers(batches)  # now, not when a traceback that holds the iterator is collected
            del batches, loader
        if interrupt.requested:
            if self._saved_step != self.step:
                self.save()
            raise self._stopped(interrupt.signal or signal.SIGINT, "evaluation" if self._abandoned else "training")
        return result

    def _export(self) -> None:
        if self.rank != 0 or not callable(getattr(self.eval_model, "save_pretrained", None)):
            return
        self.final_model().save_pretrained(self.out_dir / "final")  # type: ignore[operator]
        if self.best is not None:
            logger.info(
                "final/ holds the best evaluation: %s %.4f at step %d",
                BEST_METRIC,
                self.best["value"],
                self.best["step"],
            )
