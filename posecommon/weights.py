"""Resolve ``pretrained=`` arguments and load safetensors weights strictly into a model."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .errors import IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError
from .registry import get_model_info

__all__ = ["load_pretrained", "load_state_dict_strict", "read_safetensors"]

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # protocol-2+ pickles and torch's zip container


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU, refusing anything else.

    Raises:
        WeightsNotFoundError: the file does not exist.
        UnsafeWeightsError: the file is a pickle / torch zip checkpoint (never unpickled here).
        IncompatibleWeightsError: the file is truncated or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weight file not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(_PICKLE_MAGIC):
        raise UnsafeWeightsError(
            f"{path} is a pickle/torch checkpoint, not safetensors; posezoo never unpickles weight files. "
            "Convert it with safetensors.torch.save_file on a trusted machine (or, for the official TransPose "
            "checkpoint, vttranspose.convert_official_checkpoint)."
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise IncompatibleWeightsError(
            f"{path} is not a readable safetensors file (truncated or corrupted): {err}"
        ) from err


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Load ``state_dict`` into ``model`` requiring identical keys and shapes.

    Raises:
        IncompatibleWeightsError: keys are missing or unexpected, or shapes differ; the message names the first
            offending keys and shapes.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es), first: {mismatched[:3]}")
        if missing:
            parts.append(f"{len(missing)} key(s) missing from the file, first: {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) in the file, first: {unexpected[:3]}")
        raise IncompatibleWeightsError(
            f"{source} do not fit {type(model).__name__} ({getattr(model, 'model_name', '')}): "
            + "; ".join(parts)
            + ". Were they saved for another architecture or num_joints?"
        )
    model.load_state_dict(state_dict, strict=True)


def load_pretrained(model: nn.Module, model_name: str, pretrained: bool | str) -> nn.Module:
    """Apply a ``pretrained=`` argument to a freshly built model and return it.

    Args:
        model: The model, built with random weights.
        model_name: Its registry name.
        pretrained: ``False`` (nothing to load), ``True`` (default published weights), a weight tag, or a path
            to a local ``.safetensors`` file.

    Raises:
        WeightsNotFoundError: no weights are published for this model/tag, or the local file does not exist.
        UnsafeWeightsError, IncompatibleWeightsError: see :func:`read_safetensors`, :func:`load_state_dict_strict`.
    """
    if pretrained is False or pretrained is None:
        return model
    if isinstance(pretrained, (str, Path)) and (Path(pretrained).suffix == ".safetensors" or Path(pretrained).exists()):
        load_state_dict_strict(model, read_safetensors(pretrained), source=str(pretrained))
        return model
    info = get_model_info(model_name)
    tag = None if pretrained is True else str(pretrained)
    spec = info.weight(tag)
    if spec is None:
        published = ", ".join(f"{model_name}.{w.tag}" for w in info.weights) or "none"
        raise WeightsNotFoundError(
            f"no weights are published for {model_name}"
            + (f" with tag {tag!r}" if tag else "")
            + f" (published: {published}). Use pretrained=False, load a local file with "
            "pretrained='path/to/model.safetensors', or train your own with `posezoo train`."
        )
    raise WeightsNotFoundError(f"downloading {model_name}.{spec.tag} from the Hub is not implemented yet")
