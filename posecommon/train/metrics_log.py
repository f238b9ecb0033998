"""The run's JSON-lines metrics log, trimmed atomically when a run resumes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from .durable import atomic_write_bytes

__all__ = ["MetricsLog"]

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON object per line to ``path``; :meth:`trim` drops what a resumed run will redo.

    Args:
        path: The ``metrics.jsonl`` file (created on the first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def trim(self, step: int) -> int:
        """Keep the records of steps ``<= step`` and drop the rest (and any torn, unparsable line).

        The file is rewritten through a synced temporary file and a rename, so a crash during the trim leaves the
        old log or the trimmed one, never a partial one. Returns the number of lines dropped.
        """
        self.close()
        if not self.path.is_file():
            return 0
        raw = self.path.read_bytes()
        kept, dropped = [], 0
        for line in raw.splitlines():
            try:
                record = json.loads(line)
                keep = isinstance(record, dict) and int(record["step"]) <= step
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
        data = b"".join(line + b"\n" for line in kept)
        if data != raw:
            atomic_write_bytes(self.path, data)
        if dropped:
            logger.info(
                "metrics log %s: dropped %d line(s) after step %d (redone by this run)", self.path, dropped, step
            )
        return dropped

    def records(self) -> list[dict[str, Any]]:
        """Every readable record of the log, in order (torn or unparsable lines are skipped)."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def evaluations(self) -> list[dict[str, Any]]:
        """Every evaluation of the run, ``{"step": ..., **metrics}``, in the order they were logged."""
        return [
            {"step": record.get("step"), **record["eval"]}
            for record in self.records()
            if isinstance(record.get("eval"), dict)
        ]

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (flushed to the OS at once, so a killed process loses nothing it logged)."""
        if self._handle is None:
            self._handle = self.path.open("a")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def sync(self) -> None:
        """fsync the log (called before each checkpoint, so the log is never behind a durable checkpoint)."""
        if self._handle is not None:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file (reopened on the next :meth:`append`)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
