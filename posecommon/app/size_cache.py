"""The model table, cached in the user's cache directory so that ``posezoo models`` answers in well under a second.

Measuring the table builds every model on the ``meta`` device and traces its MACs, several seconds for all of
them; the figures change only when the code does. :func:`cached_size_rows` therefore keeps the measured rows, the
registered names and everything the table prints in a JSON file, and on a hit neither imports torch nor builds a
model.

Where: ``$POSEZOO_CACHE_DIR/model_sizes.json`` when that variable is set, else ``posezoo/model_sizes.json`` under
the user cache directory (``$XDG_CACHE_HOME``, ``~/.cache`` or ``%LOCALAPPDATA%``); never inside the installed
package. Key: the installed posezoo version, the torch version (the MAC counter is torch's) and the sha256 of the
source files of ``posecommon``, ``vttranspose`` and ``drsinet``, so an edited checkout whose version did not change
is measured again. A missing, stale or unreadable cache is measured again; a cache that cannot be written is only
logged (the table is still printed).

The paper figures shown beside the measurements are the registry's, cached with them; the registry tests build
every model, so what the cache holds is also what a fresh measurement gives (``tests/test_cli.py`` checks a hit
against a fresh measurement).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import UnknownModelError
from ..registry import MODEL_PACKAGES, PaperFigures, unknown_model_message
from .model_table import SizeRow

__all__ = ["CACHE_FILE", "cache_key", "cache_path", "cached_size_rows", "select_models"]

logger = logging.getLogger(__name__)

CACHE_FILE = "model_sizes.json"
_SOURCE_PACKAGES = ("posecommon", *MODEL_PACKAGES)


def cache_path() -> Path:
    """Where the model table is cached (see the module docstring)."""
    explicit = os.environ.get("POSEZOO_CACHE_DIR")
    if explicit:
        return Path(explicit) / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or (os.environ.get("LOCALAPPDATA") if os.name == "nt" else None)
    return Path(base or Path.home() / ".cache") / "posezoo" / CACHE_FILE


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key() -> dict[str, str]:
    """What a cached table must have been measured with: posezoo and torch versions, sha256 of the sources."""
    return {"posezoo": _version("posezoo"), "torch": _version("torch"), "sources": _sources_digest()}


def _row_to_json(row: SizeRow) -> dict[str, Any]:
    return dataclasses.asdict(row)


def _row_from_json(data: dict[str, Any]) -> SizeRow:
    paper = data["paper"]
    figures = None if paper is None else PaperFigures(**{**paper, "input_size": tuple(paper["input_size"])})
    return SizeRow(
        data["name"],
        data["family"],
        tuple(data["input_size"]),
        float(data["params_m"]),
        float(data["macs_g"]),
        figures,
        tuple(data["weights"]),
    )


def _read(path: Path, key: dict[str, str]) -> dict[str, Any] | None:
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.info("ignoring unreadable model table cache %s: %s", path, err)
        return None
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    return cached


def _write(path: Path, payload: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
            json.dump(payload, tmp)
        os.replace(tmp.name, path)
    except OSError as err:
        logger.info("could not write the model table cache %s: %s", path, err)


def select_models(names: list[str], pattern: str | None) -> list[str]:
    """The ``names`` matching a shell-style ``pattern`` (all for ``None``).

    Raises:
        UnknownModelError: nothing matches; the message suggests close names and lists the registered ones.
    """
    if pattern is None:
        return list(names)
    selected = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if not selected:
        raise UnknownModelError(unknown_model_message(pattern, names).replace("unknown model", "no model matches", 1))
    return selected


def cached_size_rows(pattern: str | None = None) -> list[SizeRow]:
    """The model-table rows of the registered models matching ``pattern``, measured once and cached.

    Args:
        pattern: Shell-style filter (``"drsi_*"``) or an exact name; ``None`` for all models.

    Returns:
        The rows (one per model and paper input size), in name order.

    Raises:
        UnknownModelError: no registered model matches ``pattern``.
    """
    path, key = cache_path(), cache_key()
    cached = _read(path, key) or {"key": key, "names": None, "rows": {}}
    names = cached["names"]
    if names is None:
        from ..registry import list_models

        names = list_models()
    selected = select_models(names, pattern)
    missing = [name for name in selected if name not in cached["rows"]]
    if missing:
        from .model_table import measure_sizes

        measured: dict[str, list[dict[str, Any]]] = {name: [] for name in missing}
        for row in measure_sizes(missing):
            measured[row.name].append(_row_to_json(row))
        cached = {"key": key, "names": names, "rows": {**cached["rows"], **measured}}
        _write(path, cached)
    return [_row_from_json(row) for name in selected for row in cached["rows"][name]]
