"""Durable file operations: data reaches the disk (fsync) before a rename makes it visible.

A rename (``os.replace``) is atomic on POSIX file systems, but without ``fsync`` the renamed entry may point at
data still in the page cache when the machine loses power. Every helper here syncs the file, renames, then syncs
the parent directory so that the rename itself is durable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_directory", "remove_tree", "write_synced"]


def fsync_directory(path: str | Path) -> None:
    """Flush the directory entry list of ``path`` (new, renamed or deleted names) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (created or truncated) and fsync the file before returning."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``: a reader (or a crash) sees the old file or the new one, whole.

    Writes ``<path>.tmp``, fsyncs it, renames it over ``path`` and fsyncs the directory.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def remove_tree(path: str | Path) -> None:
    """Delete a directory so that a crash part-way never leaves a partial copy under its original name.

    The directory is first renamed to ``<name>.trash`` (atomic), then deleted; leftover ``.trash`` directories are
    ignored by readers and deleted later. The deletion is not synced: an old directory that reappears after a power
    cut is harmless.
    """
    path = Path(path)
    trash = path.with_name(path.name + ".trash")
    if trash.exists():
        shutil.rmtree(trash)
    if path.exists():
        os.replace(path, trash)
        shutil.rmtree(trash)
