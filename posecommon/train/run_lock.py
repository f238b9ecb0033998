"""One process per run directory: an OS-level lock held for the whole run.

Two trainings writing into the same run directory destroy each other's work: one deletes the other's half-written
checkpoint (``.tmp`` clean-up), replaces its ``metrics.jsonl`` while it appends to the old file, prunes checkpoints
it is about to point at. :class:`RunLock` prevents that with ``fcntl.flock`` on ``<run>/.posezoo.lock``:

- the lock belongs to the open file, so the kernel drops it when the process ends in any way (SIGKILL, power cut of
  a network client aside); a lock file left behind by a killed process is simply taken again (stale locks need no
  clean-up). The file records the holder (``pid``, ``host``, ``started``) for the message a second process gets;
- processes forked while the lock is held (DataLoader workers) close their inherited copy at once
  (``os.register_at_fork``), so a worker that outlives a killed trainer for a moment does not keep the lock;
- the lock is re-entrant within a thread: :func:`~posecommon.app.train_run.run_training` holds it from before the
  data is generated to the summary, and :meth:`~posecommon.train.Trainer.fit` (also usable on its own) takes it
  again inside; another thread of the same process is refused like another process.

On file systems without ``flock`` support (some network mounts) the lock is skipped with a WARNING. Platforms without
``fcntl`` (Windows) are not locked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import RunInUseError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunLock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".posezoo.lock"
"""The lock file inside a run directory."""

_GUARD = threading.Lock()
_HELD: dict[str, list[int]] = {}
"""Real path of each run directory this process has locked -> ``[file descriptor, depth, owning thread id]``."""


def _close_inherited() -> None:
    """In a forked child: drop the inherited lock descriptors (the parent keeps its own, and with them the locks)."""
    for fd, *_ in _HELD.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (it recorded no details)"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    return "process " + " ".join(parts)


class RunLock:
    """Exclusive use of a run directory by this process (see the module docstring).

    Use as a context manager; entering creates the directory when needed.

    Args:
        run_dir: The run directory.
        purpose: What the holder does, written into the lock file and named in the refusal (e.g. ``"posezoo
            train"``).

    Raises:
        RunInUseError: on entering, another process holds the lock; the message names it (pid, host, start time).
    """

    def __init__(self, run_dir: str | Path, purpose: str = "posezoo train") -> None:
        self.run_dir = Path(run_dir)
        self.purpose = purpose
        self._key: str | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.run_dir / LOCK_NAME

    def acquire(self) -> None:
        """Take the lock (see the class docstring)."""
        if fcntl is None:  # pragma: no cover - Windows
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.run_dir)
        with _GUARD:
            if key in _HELD:
                if _HELD[key][2] != threading.get_ident():
                    raise RunInUseError(
                        f"{self.run_dir} is in use by another thread of this process (pid {os.getpid()}); wait for it "
                        "to finish or use another directory"
                    )
                _HELD[key][1] += 1
                self._key = key
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunInUseError(
                    f"{self.run_dir} is in use by {holder.get('purpose', 'another run')} ({_describe(holder)}); "
                    "wait for it to finish, stop it, or use another --out",
                    holder,
                ) from None
            except OSError as err:  # no flock on this file system
                os.close(fd)
                logger.warning("cannot lock %s (%s): another run could use it at the same time", self.path, err)
                return
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "purpose": self.purpose,
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode())
            _HELD[key] = [fd, 1, threading.get_ident()]
            self._key = key

    def release(self) -> None:
        """Give the lock back (the outermost holder in this process closes the file)."""
        key, self._key = self._key, None
        if key is None:
            return
        with _GUARD:
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                with contextlib.suppress(OSError):
                    os.ftruncate(entry[0], 0)
                os.close(entry[0])  # closing the descriptor releases the flock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
