"""Progress reports that say what they count and read well both on a terminal and in a log file.

:class:`Progress` is what the trainer, the evaluation, the synthetic-data generator and ``posezoo predict`` show:

- on a terminal, a tqdm bar (huggingface_hub's, so ``HF_HUB_DISABLE_PROGRESS_BARS=1`` silences it too);
- anywhere else (a log file, a pipe, CI), plain lines on stdout (stderr keeps only warnings and errors, one line
  each, see docs/errors.md): once the work has run ``delay`` seconds, one when another
  tenth of it is done (and at least every ``interval`` seconds), then one at the end; no carriage returns, no cursor
  movement escapes, and a short job (a quick evaluation) writes its final line only;
- the unit names what is counted (``step``, ``image``, ``frame``), and :meth:`Progress.paused` leaves out time
  that is not the counted work (the trainer's evaluations and checkpoints), so ``s/step`` is the time of a step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

from huggingface_hub.utils import tqdm

__all__ = ["Progress", "format_rate", "is_terminal", "track"]

T = TypeVar("T")


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal (``isatty``); False for files, pipes and ``None``."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


def format_rate(seconds: float, count: float, unit: str) -> str:
    """``"1.23 s/step"`` when a unit takes a second or more, else ``"12.3 steps/s"``; ``""`` before any unit."""
    if count <= 0 or seconds <= 0:
        return ""
    per_unit = seconds / count
    if per_unit >= 1.0:
        return f"{per_unit:.3g} s/{unit}"
    return f"{1.0 / per_unit:.3g} {unit}s/s"


class Progress:
    """Progress over ``total`` units of ``unit`` (see the module docstring for the two ways it shows).

    Args:
        total: Number of units, or None when unknown.
        desc: What runs (``"train"``, ``"evaluate"``, ...).
        unit: What one unit is, singular (``"step"``, ``"image"``).
        initial: Units already done (a resumed run).
        disable: Show nothing.
        file: Where to write; default: ``sys.stderr`` when it is a terminal (the bar), else ``sys.stdout`` (lines).
            A terminal gets a bar, anything else lines.
        interval: In line mode, the longest time in seconds between two lines while work goes on.
        delay: In line mode, no line before the work has run this many seconds (except the final one).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        initial: int = 0,
        disable: bool = False,
        file: IO[str] | None = None,
        interval: float = 60.0,
        delay: float = 5.0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.disable = disable
        self.file = file if file is not None else (sys.stderr if is_terminal(sys.stderr) else sys.stdout)
        self.interval = interval
        self.delay = delay
        self.postfix: dict[str, str] = {}
        self._initial = initial
        self._started = time.perf_counter()
        self._paused = 0.0
        self._last_line = self._started
        self._last_tenth = self._tenth(initial)
        self._bar: Any = None
        if not disable and is_terminal(self.file):
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.file)

    # ------------------------------------------------------------------------------------------- counting

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.disable:
            tenth, now = self._tenth(self.n), time.perf_counter()
            due = tenth > self._last_tenth or now - self._last_line >= self.interval
            if due and now - self._started >= self.delay and self.n != self.total:  # close() writes the last
                self._last_tenth = tenth
                self._write_line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (``loss=...``); shown with the next bar refresh or line."""
        self.postfix = {key: str(value) for key, value in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside the ``with`` block out of the rate (and out of tqdm's estimates)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self._paused += spent
            if self._bar is not None and not self._bar.disable:
                self._bar.start_t += spent
                self._bar.last_print_t += spent

    @property
    def elapsed(self) -> float:
        """Seconds since the start, without the paused time."""
        return time.perf_counter() - self._started - self._paused

    def rate(self) -> str:
        """The rate so far (:func:`format_rate` of this run's units, without paused time)."""
        return format_rate(self.elapsed, self.n - self._initial, self.unit)

    def close(self) -> None:
        """End the report (a final line in line mode)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.disable and self.n != self._initial:
            self._write_line(final=True)
        self.disable = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- line mode

    def _tenth(self, n: int) -> int:
        return int(10 * n / self.total) if self.total else 0

    def _write_line(self, final: bool = False) -> None:
        self._last_line = time.perf_counter()
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        percent = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        parts = [f"{self.desc}: {count} {self.unit}s{percent}"]
        rate = self.rate()
        if rate:
            parts.append(rate)
        parts.append(f"{self.elapsed:.0f} s" + (" in all" if final else " so far"))
        parts += [f"{key} {value}" for key, value in self.postfix.items()]
        self.file.write(", ".join(parts) + "\n")
        self.file.flush()


def track(
    items: Iterable[T],
    desc: str,
    unit: str,
    total: int | None = None,
    disable: bool = False,
    file: IO[str] | None = None,
) -> Iterator[T]:
    """Iterate over ``items`` with a :class:`Progress` (``total`` defaults to ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, disable=disable, file=file) as progress:
        for item in items:
            yield item
            progress.update()
