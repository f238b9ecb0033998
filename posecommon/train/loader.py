"""The training DataLoader: deterministic order and augmentation, ready to feed a GPU; failures as one line.

Workers start once per :meth:`Trainer.fit` call (the batch sampler spans the whole run) and stay alive
(``persistent_workers``); each keeps ``prefetch_factor`` batches ready; batches land in pinned memory on CUDA so
that the host-to-device copy can overlap compute. Augmentation randomness does not depend on workers: every sample
is drawn under seeds derived from ``(seed, step, index)`` (:class:`~posecommon.train.SeededSamples`), so any number
of workers, and a resumed run, yield the same batches. The loader's own generator (worker base seeds) is derived
from ``(seed, start step, rank)`` rather than drawn from the global RNG. Like torch (one thread per worker), OpenCV
runs sequentially in the workers (``cv2.setNumThreads(0)``, as YOLOv5 does globally, ``utils/general.py:31``).

Signals: workers ignore SIGINT, and SIGTERM from anyone but the training process, so Ctrl-C or a scheduler's
SIGTERM to the process group stops only the training loop, which finishes the step, saves a checkpoint and stops.
A SIGTERM from the training process itself (``multiprocessing`` ending its children) ends a worker at once, so a
training process that exits never waits on a worker that will not stop. :func:`shutdown_workers` stops them
explicitly when the loop ends, whatever ended it.

Failures: a :class:`~posecommon.errors.PosezooError` raised while a worker loads or collates a sample (a corrupt
image, a malformed record) is carried to the training process as a :class:`LoadFailure` and raised there with its
own one-line message (:func:`raise_failure`), the same with or without workers; torch would otherwise wrap it in
the worker's traceback.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DatasetError, PosezooError
from .sampling import SeededSamples, StepBatchSampler, derive_seed

__all__ = ["LoadFailure", "build_loader", "default_num_workers", "raise_failure", "shutdown_workers"]

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


@dataclass(frozen=True)
class LoadFailure:
    """A :class:`~posecommon.errors.PosezooError` raised while loading or collating a batch, as picklable data.

    Args:
        kind: The error's class.
        message: Its message.
    """

    kind: type[PosezooError]
    message: str

    def error(self) -> PosezooError:
        """The error to raise in the training process (a :class:`DatasetError` when ``kind`` cannot be rebuilt)."""
        try:
            return self.kind(self.message)
        except TypeError:
            return DatasetError(self.message)


class _CatchingSamples(SeededSamples):
    """:class:`SeededSamples` whose loading errors become :class:`LoadFailure` values."""

    def __getitem__(self, key: tuple[int, int]) -> Any:
        try:
            return super().__getitem__(key)
        except PosezooError as err:
            return LoadFailure(type(err), str(err))


def _catching_collate(collate: Callable[[list[Any]], Any], samples: list[Any]) -> Any:
    failure = next((sample for sample in samples if isinstance(sample, LoadFailure)), None)
    if failure is not None:
        return failure
    try:
        return collate(samples)
    except PosezooError as err:
        return LoadFailure(type(err), str(err))


def raise_failure(batch: Any) -> Any:
    """Raise the error a :class:`LoadFailure` batch carries; return any other batch unchanged."""
    if isinstance(batch, LoadFailure):
        raise batch.error()
    return batch


def _exit_on_sigterm_from(trainer_pid: int) -> None:
    """In a worker: end at once on a SIGTERM sent by the training process, ignore it from anyone else."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from now on inherit the mask

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == trainer_pid:
                os._exit(0)

    threading.Thread(target=wait, name="posezoo-sigterm", daemon=True).start()


def _worker_init(trainer_pid: int, worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C to the process group: the trainer decides when to stop
    if hasattr(signal, "sigwaitinfo"):
        _exit_on_sigterm_from(trainer_pid)
    else:  # pragma: no cover - macOS: no sigwaitinfo; a worker then outlives SIGTERM until its trainer ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cv2.setNumThreads(0)  # the workers are the parallelism; OpenCV's pool would oversubscribe the cores


def shutdown_workers(batches: Iterator[Any]) -> None:
    """Stop the worker processes of a DataLoader iterator now (nothing for a single-process one).

    Called when the training loop ends, normally or by an exception: left to the garbage collector, an iterator
    kept alive by a traceback would be reached only at interpreter shutdown, when torch no longer stops workers.
    """
    shutdown = getattr(batches, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


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
    """This rank's batches for steps ``[start_step, stop_step)`` (see the module docstring).

    A batch whose loading failed is a :class:`LoadFailure`; pass every batch through :func:`raise_failure`.
    """
    sampler = StepBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        stop_step,
        start_step=start_step,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    workers: dict[str, Any] = {}
    if num_workers > 0:
        init = functools.partial(_worker_init, os.getpid())
        workers = {"persistent_workers": True, "prefetch_factor": prefetch_factor, "worker_init_fn": init}
    return DataLoader(
        _CatchingSamples(dataset, seed),
        batch_sampler=sampler,
        collate_fn=functools.partial(_catching_collate, collate),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(derive_seed(seed, start_step, rank, 2)),
        **workers,
    )
