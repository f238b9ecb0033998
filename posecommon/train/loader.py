"""The training DataLoader: deterministic order and augmentation, ready to feed a GPU.

Workers start once per :meth:`Trainer.fit` call (the batch sampler spans the whole run) and stay alive
(``persistent_workers``); each keeps ``prefetch_factor`` batches ready; batches land in pinned memory on CUDA so
that the host-to-device copy can overlap compute. Augmentation randomness does not depend on workers: every sample
is drawn under seeds derived from ``(seed, step, index)`` (:class:`~posecommon.train.SeededSamples`), so any number
of workers, and a resumed run, yield the same batches. The loader's own generator (worker base seeds) is derived
from ``(seed, start step, rank)`` rather than drawn from the global RNG. Workers ignore SIGINT and SIGTERM, so Ctrl-C
or a scheduler's SIGTERM to the process group stops only the main process's loop, which finishes the step, saves a
checkpoint and stops; it then shuts the workers down itself. Like torch (one thread per worker), OpenCV runs
sequentially in the workers (``cv2.setNumThreads(0)``, as YOLOv5 does globally, ``utils/general.py:31``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from .interrupt import STOP_SIGNALS
from .sampling import SeededSamples, StepBatchSampler, derive_seed

__all__ = ["build_loader", "default_num_workers"]

MAX_DEFAULT_WORKERS = 8


def default_num_workers(processes_per_node: int | None = None) -> int:
    """Workers per training process: the CPUs this process may run on (``os.sched_getaffinity``) shared by the
    processes of the node (``LOCAL_WORLD_SIZE`` under torchrun), minus one for the training process, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        cpus = os.cpu_count() or 1
    processes = processes_per_node or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(MAX_DEFAULT_WORKERS, cpus // max(1, processes) - 1))


def _worker_init(worker_id: int) -> None:
    for number in STOP_SIGNALS:  # the training process decides when to stop; workers end when it ends them
        signal.signal(number, signal.SIG_IGN)
    cv2.setNumThreads(0)  # the workers are the parallelism; OpenCV's pool would oversubscribe the cores


def build_loader(
    dataset: Dataset,
    collate: Callable[[list[Any]], Any],
    *,
    batch_size: int,
    start_step: int,
    stop_step: int,
    seed: int,
    rank: int,
    world_size: int,
    num_workers: int,
    prefetch_factor: int,
    pin_memory: bool,
) -> DataLoader:
    """This rank's batches for steps ``[start_step, stop_step)`` (see the module docstring)."""
    sampler = StepBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        stop_step,
        start_step=start_step,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    workers = {}
    if num_workers > 0:
        workers = {"persistent_workers": True, "prefetch_factor": prefetch_factor, "worker_init_fn": _worker_init}
    return DataLoader(
        SeededSamples(dataset, seed),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(derive_seed(seed, start_step, rank, 2)),
        **workers,
    )
