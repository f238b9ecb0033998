"""Per-phase timing of predictions: what fills :attr:`PoseResult.speed <posecommon.PoseResult.speed>`.

A kernel knows where its phases begin and end; the door knows how many images a call held. So every
:class:`~posecommon.predict.PredictKernel` owns a :class:`PhaseTimer` (``kernel.timer``) and wraps its work in
``with self.timer("preprocess", device): ...`` (then ``"inference"`` for the networks and ``"postprocess"`` for
decoding, NMS and mapping back); a phase may be entered several times in one call (a top-down kernel crops,
runs and decodes chunk by chunk) and the times add up. The door (:func:`~posecommon.predict.predict_frames`)
resets the timer, calls the kernel, and gives each result of the batch the batch's times divided by its number of
images, in milliseconds, as ultralytics reports ``speed``. A kernel that reports no phase (a plain callable, or a
subclass that does not time itself) gets its whole call under ``"inference"``.

On CUDA the timer synchronises the device at both ends of a phase, so asynchronous kernels are counted in the
phase that launched them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..structures import SPEED_PHASES

__all__ = ["SPEED_PHASES", "PhaseTimer", "speed_per_image"]


class PhaseTimer:
    """Seconds spent in each prediction phase (:data:`~posecommon.structures.SPEED_PHASES`) since :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(SPEED_PHASES, 0.0)
        self.reported = False

    def reset(self) -> None:
        """Zero every phase (the door calls it before each kernel call)."""
        self.seconds = dict.fromkeys(SPEED_PHASES, 0.0)
        self.reported = False

    @contextmanager
    def __call__(self, phase: str, device: torch.device | str | None = None) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``phase``.

        Args:
            phase: One of :data:`~posecommon.structures.SPEED_PHASES`.
            device: Where the phase's work runs; on CUDA the device is synchronised at both ends.

        Raises:
            ValueError: an unknown phase name.
        """
        if phase not in self.seconds:
            raise ValueError(f"unknown phase {phase!r}; choose one of {SPEED_PHASES}")
        cuda = device is not None and torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(device)
            self.seconds[phase] += time.perf_counter() - started
            self.reported = True

    def add(self, other: PhaseTimer) -> None:
        """Add another timer's phases to these (a pipeline's kernel sums its detector's and pose model's)."""
        for phase, seconds in other.seconds.items():
            self.seconds[phase] += seconds
        self.reported = self.reported or other.reported


def speed_per_image(timer: PhaseTimer | None, total_seconds: float, images: int) -> dict[str, float]:
    """``{phase: milliseconds per image}`` of a kernel call that took ``total_seconds`` for ``images`` images.

    Args:
        timer: The kernel's timer after the call; ``None`` or one with nothing reported puts the whole call under
            ``"inference"``.
        total_seconds: Wall time of the whole call.
        images: Images of the call (at least 1).
    """
    images = max(1, images)
    if timer is None or not timer.reported:
        seconds = dict.fromkeys(SPEED_PHASES, 0.0) | {"inference": total_seconds}
    else:
        seconds = timer.seconds
    return {phase: 1000.0 * seconds[phase] / images for phase in SPEED_PHASES}
