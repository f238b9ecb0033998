"""Crash-safe training checkpoints: safetensors + JSON, a sha256 manifest, an atomically replaced pointer.

A checkpoint is a directory holding ``model.safetensors``, ``optimizer.safetensors`` (the optimiser's tensors,
flattened to ``"<param index>.<name>"`` keys), optionally ``ema.safetensors`` and ``grads.safetensors`` (gradients
accumulated since the last optimiser step, by parameter name), ``state.json`` (step, the optimiser's non-tensor
state, EMA counter, gradient-scaler state, run description) and, written last, ``manifest.json`` (step and the
sha256 and size of every other file). Nothing is pickled. Random numbers need no saved state: the trainer derives
every seed from ``(seed, step, sample index)``.

:func:`save_checkpoint` writes the files under ``<name>.tmp``, fsyncs each file and the directory, and renames the
directory into place. :class:`CheckpointStore` keeps a run's checkpoints in ``checkpoints/step-<step>``
directories and names the current one in ``checkpoints/latest.json``, replaced atomically (write, fsync, rename,
fsync the directory) only after the new directory is complete; older checkpoints beyond ``keep`` are deleted only
after the pointer moved. A crash at any point therefore leaves the previous pointer and its complete directory, or
the new ones. Resuming reads the pointer's checkpoint, verifies every file against the manifest, and falls back to
the next older complete checkpoint (with a WARNING) when it is damaged.

With ``keep_best`` the store also keeps the weights of the best evaluation so far
(:meth:`CheckpointStore.save_best`): a ``best-<step>`` directory (``model.safetensors`` and a manifest, written and
renamed into place like a checkpoint) named by the ``best.json`` pointer (step, metric, value), replaced atomically;
the previous best directory is deleted only after the pointer moved. The pruning of ``step-*`` checkpoints never
touches it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from ..errors import CheckpointError
from .durable import atomic_write_bytes, fsync_directory, remove_tree, write_synced

__all__ = ["CheckpointStore", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
POINTER = "latest.json"
BEST_POINTER = "best.json"
FORMAT_VERSION = 2
_NAME = re.compile(r"^step-(\d{9})(?:-(\d+))?$")
_BEST_NAME = re.compile(r"^best-(\d{9})(?:-(\d+))?$")


def _split_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state_dict["param_groups"], "state": {}}
    for index, entries in state_dict["state"].items():
        plain_entries = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain_entries[name] = value
        plain["state"][str(index)] = plain_entries
    return tensors, plain


def _join_optimizer_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(entries) for i, entries in plain["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _contiguous_cpu(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}


def save_checkpoint(
    directory: str | Path,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: torch.nn.Module | None = None,
    ema_updates: int = 0,
    scaler_state: dict[str, Any] | None = None,
    grads: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint directory at ``directory`` (which must not exist) and return its path.

    Every file is fsynced, ``manifest.json`` is written last, the directory is fsynced and then renamed from
    ``<directory>.tmp`` into place, so ``directory`` either does not exist or is complete.

    Args:
        directory: Where the checkpoint goes.
        step: Training step the state belongs to (steps done).
        model: Model whose ``state_dict`` is saved.
        optimizer: Optimiser whose state is saved.
        ema: EMA copy of the model, if any.
        ema_updates: EMA update counter.
        scaler_state: ``GradScaler.state_dict()`` when float16 gradient scaling is on.
        grads: Gradients accumulated since the last optimiser step, by parameter name (None: none pending).
        extra: JSON-able run description stored in ``state.json``.

    Raises:
        FileExistsError: ``directory`` already exists.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"checkpoint directory {directory} already exists")
    tmp = directory.with_name(directory.name + ".tmp")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    opt_tensors, opt_plain = _split_optimizer_state(optimizer.state_dict())
    blobs = {
        "model.safetensors": save(_contiguous_cpu(model.state_dict())),
        "optimizer.safetensors": save(opt_tensors),
    }
    if ema is not None:
        blobs["ema.safetensors"] = save(_contiguous_cpu(ema.state_dict()))
    if grads:
        blobs["grads.safetensors"] = save(_contiguous_cpu(grads))
    state = {
        "step": step,
        "optimizer": opt_plain,
        "ema_updates": ema_updates,
        "scaler": scaler_state,
        "extra": extra or {},
    }
    blobs["state.json"] = json.dumps(state).encode()
    for name, data in blobs.items():
        write_synced(tmp / name, data)
    files = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in blobs.items()}
    manifest = {"format": FORMAT_VERSION, "step": step, "files": files}
    write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    fsync_directory(tmp)
    os.replace(tmp, directory)
    fsync_directory(directory.parent)
    return directory


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what} {path} is damaged (not valid JSON: {err})") from None


def verify_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Check every file of a checkpoint against its manifest; return the manifest.

    Raises:
        CheckpointError: the manifest is missing or unreadable, or a file is missing, of another size or corrupted.
    """
    directory = Path(directory)
    manifest = _read_json(directory / MANIFEST, "checkpoint manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or "step" not in manifest:
        raise CheckpointError(f"checkpoint manifest {directory / MANIFEST} is malformed")
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"checkpoint file {path} is damaged ({size} bytes, expected {expected['bytes']})")
        actual = _sha256_file(path)
        if actual != expected["sha256"]:
            raise CheckpointError(
                f"checkpoint file {path} is corrupted (sha256 {actual} != {expected['sha256']} in the manifest)"
            )
    return manifest


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, after verifying every file against its manifest.

    Returns:
        ``{"step", "model", "optimizer", "ema" (or None), "ema_updates", "scaler", "grads" (or None), "extra"}``.

    Raises:
        CheckpointError: the checkpoint is incomplete or damaged (the message names the file).
    """
    directory = Path(directory)
    manifest = verify_checkpoint(directory)
    state = _read_json(directory / "state.json", "checkpoint state")
    files = manifest["files"]

    def tensors(name: str) -> dict[str, torch.Tensor] | None:
        return load((directory / name).read_bytes()) if name in files else None

    return {
        "step": state["step"],
        "model": tensors("model.safetensors"),
        "optimizer": _join_optimizer_state(tensors("optimizer.safetensors") or {}, state["optimizer"]),
        "ema": tensors("ema.safetensors"),
        "ema_updates": state["ema_updates"],
        "scaler": state["scaler"],
        "grads": tensors("grads.safetensors"),
        "extra": state["extra"],
    }


@dataclass(frozen=True)
class _Entry:
    path: Path
    step: int
    serial: int

    @property
    def order(self) -> tuple[int, int]:
        return self.step, self.serial


class CheckpointStore:
    """The checkpoints of one run: ``root/step-<step>[-<n>]/`` directories and the ``root/latest.json`` pointer.

    Args:
        root: The run's ``checkpoints/`` directory.
        keep: Complete checkpoints kept (the current one and ``keep - 1`` older ones, the fall-backs).
    """

    def __init__(self, root: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.root = Path(root)
        self.keep = keep

    def _entries(self) -> list[_Entry]:
        if not self.root.is_dir():
            return []
        entries = []
        for path in self.root.iterdir():
            match = _NAME.match(path.name)
            if match and path.is_dir():
                entries.append(_Entry(path, int(match.group(1)), int(match.group(2) or 0)))
        return sorted(entries, key=lambda e: e.order, reverse=True)

    def _pointer(self) -> _Entry | None:
        path = self.root / POINTER
        if not path.is_file():
            return None
        try:
            name = json.loads(path.read_text())["checkpoint"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            logger.warning("checkpoint pointer %s is unreadable; looking at every checkpoint directory", path)
            return None
        match = _NAME.match(str(name))
        if not match or not (self.root / name).is_dir():
            logger.warning("checkpoint pointer %s names a missing checkpoint %r; looking at every one", path, name)
            return None
        return _Entry(self.root / name, int(match.group(1)), int(match.group(2) or 0))

    def has_material(self) -> bool:
        """Whether the store holds any checkpoint directory or pointer (complete or not)."""
        return bool(self._entries()) or (self.root / POINTER).exists()

    def candidates(self) -> list[Path]:
        """Checkpoint directories to try, best first: the pointer's, then older ones, newest first.

        Directories newer than the pointer (a crash after their rename, before the pointer moved) are not used;
        without a readable pointer every directory is a candidate.
        """
        entries = self._entries()
        pointer = self._pointer()
        if pointer is None:
            return [e.path for e in entries]
        return [pointer.path] + [e.path for e in entries if e.order < pointer.order]

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """Load the newest loadable checkpoint (falling back past damaged ones with a WARNING).

        Returns:
            ``(state, directory)`` or None when the store holds no checkpoint material at all.

        Raises:
            CheckpointError: checkpoint material exists but no checkpoint is loadable (the message lists why).
        """
        failures = []
        for directory in self.candidates():
            try:
                state = load_checkpoint(directory)
            except CheckpointError as err:
                failures.append(str(err))
                logger.warning("checkpoint %s is unusable (%s); trying the previous one", directory.name, err)
                continue
            if failures:
                logger.warning(
                    "resuming from the older checkpoint %s (%d newer one(s) unusable)", directory, len(failures)
                )
            return state, directory
        if failures or self.has_material():
            reasons = "; ".join(failures) or "no complete checkpoint directory"
            raise CheckpointError(
                f"{self.root} holds checkpoint material but no loadable checkpoint ({reasons}). Move the directory "
                "aside to start the run again, or restore a checkpoint."
            )
        return None

    def save(self, step: int, **payload: Any) -> Path:
        """Write the checkpoint of ``step`` (``payload``: :func:`save_checkpoint` arguments), move the pointer to it,
        then delete the checkpoints beyond ``keep``; returns its directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in [*self.root.glob("*.tmp"), *self.root.glob("*.trash")]:
            # half-written or half-deleted: never loaded, never pointed at
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        name, serial = f"step-{step:09d}", 0
        while (self.root / name).exists():
            serial += 1
            name = f"step-{step:09d}-{serial}"
        directory = save_checkpoint(self.root / name, step=step, **payload)
        pointer = {"checkpoint": name, "step": step}
        atomic_write_bytes(self.root / POINTER, json.dumps(pointer).encode())
        self._prune(_Entry(directory, step, serial))
        return directory

    def save_best(self, step: int, model: torch.nn.Module, metric: str, value: float) -> Path:
        """Keep ``model``'s weights as the best evaluation so far (``best-<step>/``), then move ``best.json`` to them
        and delete the previous best directory; returns the new directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        name, serial = f"best-{step:09d}", 0
        while (self.root / name).exists() or (self.root / f"{name}.tmp").exists():
            serial += 1
            name = f"best-{step:09d}-{serial}"
        tmp = self.root / f"{name}.tmp"
        tmp.mkdir()
        blob = save(_contiguous_cpu(model.state_dict()))
        write_synced(tmp / "model.safetensors", blob)
        files = {"model.safetensors": {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}}
        write_synced(tmp / MANIFEST, json.dumps({"format": FORMAT_VERSION, "step": step, "files": files}).encode())
        fsync_directory(tmp)
        os.replace(tmp, self.root / name)
        fsync_directory(self.root)
        record = {"checkpoint": name, "step": step, "metric": metric, "value": value}
        atomic_write_bytes(self.root / BEST_POINTER, json.dumps(record).encode())
        for path in self.root.iterdir():
            if _BEST_NAME.match(path.name) and path.name != name:
                remove_tree(path)
        return self.root / name

    def best_record(self) -> dict[str, Any] | None:
        """The ``best.json`` pointer (``checkpoint``, ``step``, ``metric``, ``value``), or None when there is none."""
        path = self.root / BEST_POINTER
        if not path.is_file():
            return None
        record = _read_json(path, "best-checkpoint pointer")
        if not isinstance(record, dict) or not _BEST_NAME.match(str(record.get("checkpoint"))):
            raise CheckpointError(f"best-checkpoint pointer {path} is malformed")
        return record

    def load_best(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The best weights and their ``best.json`` record, verified against the manifest (None: no best yet).

        Raises:
            CheckpointError: the pointer or the directory it names is damaged.
        """
        record = self.best_record()
        if record is None:
            return None
        directory = self.root / record["checkpoint"]
        verify_checkpoint(directory)
        return load((directory / "model.safetensors").read_bytes()), record

    def clear_best(self) -> None:
        """Delete the best pointer and directories (a run that starts again from step 0)."""
        pointer = self.root / BEST_POINTER
        if pointer.exists():
            pointer.unlink()
        if self.root.is_dir():
            for path in self.root.iterdir():
                if _BEST_NAME.match(path.name):
                    remove_tree(path)

    def _prune(self, current: _Entry) -> None:
        older = [e for e in self._entries() if e.order < current.order]
        newer = [e for e in self._entries() if e.order > current.order]
        for entry in newer + older[self.keep - 1 :]:
            remove_tree(entry.path)
