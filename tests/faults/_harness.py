"""The fault catalogue's harness: run ``posezoo`` in-process, and check what every fault must give.

Every case checks the same four things (:func:`check_fault`):

- the exit status;
- stderr holds exactly the expected number of lines (one, or one per failed input for a multi-input ``predict``),
  each starting ``posezoo <command>:`` and the first containing the expected words;
- no ``Traceback`` anywhere in stdout or stderr;
- every file that existed under the case's directory before the command is still there with the same bytes
  (:class:`Snapshot`; ``.posezoo.lock``, a run directory's lock file, is left out).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posecommon.app import cli

LOCK_NAME = ".posezoo.lock"


@dataclass(frozen=True)
class Outcome:
    """What one ``posezoo`` call gave."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_cli(argv: Sequence[str]) -> Outcome:
    """``posezoo ARGV`` in this process, with stdout and stderr captured (logging included)."""
    import logging

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []  # main()'s basicConfig attaches a fresh handler to the captured stderr
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main([str(a) for a in argv])
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = saved_handlers, saved_level
    return Outcome(code, out.getvalue(), err.getvalue())


class Snapshot:
    """The bytes of every file under a directory, to show that a failing command lost nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = self._read()

    def _read(self) -> dict[str, str]:
        files = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.name != LOCK_NAME:
                files[str(path.relative_to(self.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return files

    def lost(self) -> list[str]:
        """Files that existed at the snapshot and are now gone or changed."""
        now = self._read()
        return [name for name, digest in self.files.items() if now.get(name) != digest]

    def added(self) -> list[str]:
        """Files that did not exist at the snapshot."""
        return sorted(set(self._read()) - set(self.files))


@dataclass
class Workspace:
    """A case's directory: ``out/`` (holds ``keep.txt``, which must survive) and whatever the case writes there."""

    root: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "out"

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path


def make_workspace(root: Path) -> Workspace:
    workspace = Workspace(root)
    workspace.out.mkdir(parents=True, exist_ok=True)
    (workspace.out / "keep.txt").write_text("written before the command; must survive it")
    return workspace


def check_fault(
    outcome: Outcome,
    snapshot: Snapshot,
    *,
    code: int,
    message: str,
    command: str,
    lines: int = 1,
    unchanged: bool = False,
) -> None:
    """The four checks of the module docstring (and, with ``unchanged``, that no file was added either)."""
    report = f"exit {outcome.code}\nstdout:\n{outcome.out[-2000:]}\nstderr:\n{outcome.err[-3000:]}"
    assert outcome.code == code, report
    assert "Traceback" not in outcome.err and "Traceback" not in outcome.out, report
    err_lines = outcome.err_lines
    assert len(err_lines) == lines, report
    assert all(line.startswith(f"posezoo {command}:") for line in err_lines), report
    assert message.lower() in outcome.err.lower(), f"expected {message!r} in stderr\n{report}"
    assert snapshot.lost() == [], f"files lost or changed: {snapshot.lost()}\n{report}"
    if unchanged:
        assert snapshot.added() == [], f"files added by a refused command: {snapshot.added()}\n{report}"


Builder = Callable[[Workspace], list[str]]


def fault_case(
    case_id: str,
    setup: Callable[[Workspace], list[str]],
    code: int,
    message: str,
    *,
    lines: int = 1,
    unchanged: bool = False,
    marks: Sequence[Any] = (),
) -> Any:
    """A ``pytest.param`` of the catalogue: ``setup(workspace)`` prepares files and returns the arguments."""
    import pytest

    return pytest.param(setup, code, message, lines, unchanged, id=case_id, marks=marks)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
