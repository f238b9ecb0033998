"""What a run is, for checking that a resumed run continues the same one.

A run is described by its model (registry name, config and parameter layout), its :class:`TrainConfig` (minus the
settings that do not change what is computed) and what the caller adds (data, augmentation, ...). The description
is stored in every checkpoint; a resume compares it with the new run's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["OPERATIONAL_FIELDS", "describe_model", "describe_run", "diff_runs"]

OPERATIONAL_FIELDS = frozenset(
    {
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
        "keep_best",
        "num_workers",
        "prefetch_factor",
        "grad_checkpointing",
        "channels_last",
        "compile",
    }
)
"""TrainConfig fields that may change between a run and its resumption (they change how, not what, is computed:
no trained weight changes, except that channels-last memory and compilation may round differently; gradient
checkpointing recomputes the same values)."""


def describe_model(model: nn.Module) -> dict[str, Any]:
    """``{"model": name, "model_config": config or None, "model_layout": digest of parameter names and shapes}``."""
    name = getattr(model, "model_name", "") or type(model).__name__
    config_dict = getattr(model, "config_dict", None)
    layout = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return {
        "model": name,
        "model_config": config_dict() if callable(config_dict) else None,
        "model_layout": hashlib.sha256(layout.encode()).hexdigest()[:16],
    }


def describe_run(model: nn.Module, config: TrainConfig, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-able description of a run (see the module docstring)."""
    train = {k: v for k, v in asdict(config).items() if k not in OPERATIONAL_FIELDS}
    description = {**describe_model(model), "train": train, **(run_info or {})}
    return json.loads(json.dumps(description))  # tuples -> lists, as read back from a checkpoint


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def diff_runs(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One ``"name: saved -> now"`` line per setting that differs (nested names joined by dots)."""
    old, new = _flatten(saved), _flatten(current)
    missing = "(not set)"
    return [
        f"{key}: {json.dumps(old.get(key, missing))} -> {json.dumps(new.get(key, missing))}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]
