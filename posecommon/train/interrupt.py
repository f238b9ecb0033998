"""Ctrl-C (SIGINT) or a scheduler's SIGTERM during training: finish the step, save a checkpoint, stop."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "StopRequest"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop training with a checkpoint: Ctrl-C, and what job schedulers (Slurm, Kubernetes, torchrun
passing it on) send before they kill a job."""


class StopRequest:
    """While active, the first SIGINT or SIGTERM only records the signal (:attr:`signal`); a second one raises
    ``KeyboardInterrupt`` at once (to leave without the checkpoint). Outside the main thread (where Python cannot
    install signal handlers) it does nothing."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)  # type: ignore[arg-type]
        self._previous.clear()
