"""Ctrl-C (SIGINT) or a scheduler's SIGTERM during training: finish the step, save a checkpoint, stop.

What a stop signal does depends on what the trainer is doing (:class:`StopRequest`):

- during a training step (and while waiting for data), the first signal is recorded and announced at once
  (``on_request``); the trainer finishes the step, saves a checkpoint and stops. A second signal stops at once
  (``at_once`` builds the exception), losing the steps after the last checkpoint;
- inside :meth:`StopRequest.protected` (writing a checkpoint or the final weights), signals are held until the
  block ends, so no half-written ``.tmp`` directory is left behind; a second signal then stops at once;
- inside :meth:`StopRequest.abandonable` (an evaluation, which changes nothing that a checkpoint holds), the first
  signal ends the block at once with :class:`Abandoned`; the trainer then saves and stops as after a step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "Abandoned", "StopRequest"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop training with a checkpoint: Ctrl-C, and what job schedulers (Slurm, Kubernetes, torchrun
passing it on) send before they kill a job."""


class Abandoned(KeyboardInterrupt):
    """A stop signal ended a :meth:`StopRequest.abandonable` block (its work is dropped; nothing is lost)."""


class StopRequest:
    """While active, stop signals are handled as the module docstring says. Outside the main thread (where Python
    cannot install signal handlers) it does nothing.

    Args:
        on_request: Called with the signal number when the first signal arrives (to say what happens next).
        at_once: Builds the exception a second signal raises (default: ``KeyboardInterrupt``).
    """

    def __init__(
        self,
        on_request: Callable[[int], None] | None = None,
        at_once: Callable[[int], BaseException] | None = None,
    ) -> None:
        self.signal: int | None = None
        self._on_request = on_request
        self._at_once = at_once
        self._previous: dict[int, object] = {}
        self._protected = 0
        self._held: int | None = None
        self._abandonable = 0

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signal is not None

    def _stop_now(self, signum: int) -> BaseException:
        return self._at_once(signum) if self._at_once is not None else KeyboardInterrupt()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        if first:
            self.signal = signum
        if self._protected:
            if not first:
                self._held = signum
            return
        if self._abandonable:
            raise Abandoned()
        if not first:
            raise self._stop_now(signum)
        if self._on_request is not None:
            self._on_request(signum)

    @contextmanager
    def protected(self) -> Iterator[None]:
        """Hold stop signals until the block ends (a second one then stops at once)."""
        self._protected += 1
        try:
            yield
        finally:
            self._protected -= 1
        if not self._protected and self._held is not None:
            held, self._held = self._held, None
            raise self._stop_now(held)

    @contextmanager
    def abandonable(self) -> Iterator[None]:
        """Let a stop signal end the block at once with :class:`Abandoned` (also when one arrived before it)."""
        if self.requested:
            raise Abandoned()
        self._abandonable += 1
        try:
            yield
        finally:
            self._abandonable -= 1

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
