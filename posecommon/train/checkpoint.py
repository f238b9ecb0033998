"""Training checkpoints as safetensors + JSON, written atomically, never pickled.

A checkpoint is a directory holding ``model.safetensors``, ``optimizer.safetensors`` (tensor state of the
optimiser, flattened to ``"<param index>.<name>"`` keys), optionally ``ema.safetensors``, and ``state.json`` (step,
non-tensor optimiser state, EMA counter, AMP scaler state, the files' sha256). Random numbers need no saved state:
the trainer derives every seed from ``(seed, step, sample index)``. The directory is written under a temporary
name and renamed into place, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import IncompatibleWeightsError

__all__ = ["load_checkpoint", "save_checkpoint"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an existing one) and return its path."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_contiguous_cpu(model.state_dict()), str(tmp / "model.safetensors"))
    opt_tensors, opt_plain = _split_optimizer_state(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    files = ["model.safetensors", "optimizer.safetensors"]
    if ema is not None:
        save_file(_contiguous_cpu(ema.state_dict()), str(tmp / "ema.safetensors"))
        files.append("ema.safetensors")
    state = {
        "step": step,
        "optimizer": opt_plain,
        "ema_updates": ema_updates,
        "scaler": scaler_state,
        "extra": extra or {},
        "sha256": {name: _sha256(tmp / name) for name in files},
    }
    with (tmp / "state.json").open("w") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying the files' sha256.

    Returns:
        ``{"step", "model", "optimizer", "ema" (or None), "ema_updates", "scaler", "extra"}``.

    Raises:
        FileNotFoundError: the directory or its ``state.json`` is missing.
        IncompatibleWeightsError: a file is corrupted (checksum mismatch).
    """
    directory = Path(directory)
    state_path = directory / "state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {directory} (missing state.json)")
    state = json.loads(state_path.read_text())
    for name, expected in state["sha256"].items():
        actual = _sha256(directory / name)
        if actual != expected:
            raise IncompatibleWeightsError(
                f"checkpoint file {directory / name} is corrupted (sha256 {actual} != {expected})"
            )
    ema_path = directory / "ema.safetensors"
    return {
        "step": state["step"],
        "model": load_file(str(directory / "model.safetensors")),
        "optimizer": _join_optimizer_state(load_file(str(directory / "optimizer.safetensors")), state["optimizer"]),
        "ema": load_file(str(ema_path)) if ema_path.is_file() else None,
        "ema_updates": state["ema_updates"],
        "scaler": state["scaler"],
        "extra": state["extra"],
    }
