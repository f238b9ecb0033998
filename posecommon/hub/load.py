"""Apply ``pretrained=`` arguments: verify, read and load weights strictly into a model.

:func:`load_pretrained` is what every entrypoint calls. It resolves the argument through
:func:`~posecommon.hub.resolve_pretrained` (registry tag, ``hf-hub:`` repository, local file or directory), verifies
the sha256 when one is recorded, reads the file with :func:`~posecommon.hub.read_safetensors` (never unpickling
anything) and loads it with :func:`load_state_dict_strict`.

Fine-tuning on another keypoint set: when the model was built with a ``num_joints`` other than its config's
default (``create_model(name, pretrained=..., num_joints=5)``), the parameters under the model's
``head_prefixes`` whose shapes do not fit are left at their fresh initialisation and reported; everything else is
still loaded strictly. The result is logged and kept in ``model.pretrained_report`` (a :class:`LoadReport`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ..errors import IncompatibleWeightsError
from .files import read_safetensors, read_safetensors_metadata, verify_sha256
from .resolve import ResolvedWeights, resolve_pretrained

__all__ = [
    "LoadReport",
    "load_pretrained",
    "load_resolved",
    "load_state_dict_strict",
    "load_weights_file",
]

logger = logging.getLogger(__name__)

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class LoadReport:
    """What a weight load did.

    Args:
        source: Where the weights came from (registry tag and repo, ``org/repo@commit``, or a path).
        path: The safetensors file that was read.
        sha256: The verified digest, or ``None`` when no digest was recorded for the source.
        loaded: Number of state-dict entries loaded.
        skipped: Keypoint-head entries left at their fresh initialisation (fine-tuning on another keypoint set).
        repo_id: Hub repository of the weights (``None`` for local files).
        revision: The Hub revision asked for (``None``: none was given, i.e. ``main``).
        commit: The commit the revision resolved to; :func:`~posecommon.hub.save_pretrained` records it.
    """

    source: str
    path: str
    sha256: str | None
    loaded: int
    skipped: tuple[str, ...] = ()
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None


def _saved_as_hint(saved_as: str | None, num_joints: str | None, model_name: str) -> str:
    """The end of a mismatch message: what the file says it was saved from, and what to do."""
    if saved_as is None:
        return (
            f" The file records no model name (it was not written by save_pretrained); check that it was saved for "
            f"{model_name or 'this model'} with this config."
        )
    joints = f", num_joints={num_joints}" if num_joints else ""
    if saved_as != model_name:
        return (
            f" The file was saved from {saved_as}{joints} (its metadata says so), not {model_name or 'this model'}: "
            f"load it into {saved_as} (create_model({saved_as!r}, pretrained=...), or --model {saved_as} on the "
            "command line), or use PoseModel.from_pretrained on its save_pretrained directory."
        )
    return (
        f" The file was saved from {saved_as}{joints} with another config; rebuild that config (pass the same "
        "overrides, or use PoseModel.from_pretrained on its save_pretrained directory)."
    )


def load_state_dict_strict(
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    source: str = "weights",
    *,
    skip_prefixes: tuple[str, ...] = (),
    saved_as: tuple[str | None, str | None] | None = None,
) -> tuple[str, ...]:
    """Load ``state_dict`` into ``model`` requiring identical keys and shapes.

    Args:
        model: Target module.
        state_dict: Tensors to load.
        source: Name of the weights for messages.
        skip_prefixes: Key prefixes exempt from the check: model entries under them that are missing from
            ``state_dict`` or differ in shape keep their current values, and file entries under them that the
            model lacks are ignored. Everything outside these prefixes must match exactly.
        saved_as: ``(model_name, num_joints)`` the file records (safetensors metadata or ``config.json``), named
            in the error instead of guessing; ``None`` when unknown.

    Returns:
        The model keys under ``skip_prefixes`` that were not loaded (sorted).

    Raises:
        IncompatibleWeightsError: keys are missing or unexpected, or shapes differ; the message names the first
            offending keys and shapes and the architecture the file records.
    """

    def exempt(key: str) -> bool:
        return key.startswith(skip_prefixes) if skip_prefixes else False

    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not exempt(k)]
    unexpected = [k for k in state_dict if k not in expected and not exempt(k)]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape) and not exempt(k)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es), first: {mismatched[:3]}")
        if missing:
            parts.append(f"{len(missing)} key(s) missing from the file, first: {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) in the file, first: {unexpected[:3]}")
        model_name = getattr(model, "model_name", "")
        recorded_name, recorded_joints = saved_as or (None, None)
        raise IncompatibleWeightsError(
            f"{source} do not fit {type(model).__name__} ({model_name}): "
            + "; ".join(parts)
            + "."
            + _saved_as_hint(recorded_name, recorded_joints, model_name)
        )
    loadable = {k: v for k, v in state_dict.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
    skipped = tuple(sorted(k for k in expected if k not in loadable))
    model.load_state_dict(loadable, strict=not skipped)
    return skipped


def _asks_other_keypoints(model: nn.Module) -> bool:
    """Whether the model was built with a ``num_joints`` other than its config class's default."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return False
    default = next((f.default for f in dataclasses.fields(config) if f.name == "num_joints"), dataclasses.MISSING)
    return default is not dataclasses.MISSING and getattr(config, "num_joints", default) != default


def load_weights_file(
    model: nn.Module,
    path: str | Path,
    *,
    sha256: str | None = None,
    source: str | None = None,
    recorded_model: str | None = None,
) -> LoadReport:
    """Verify (when ``sha256`` is given), read and load one safetensors file into ``model``.

    Head entries (``model.head_prefixes``) are exempt from the strict check only when the model was built with a
    non-default ``num_joints``; see the module docstring. When the keys or shapes do not fit, the error names the
    model the file was saved from: its safetensors metadata (``model_name``, ``num_joints``, written by
    ``save_pretrained``), else ``recorded_model`` (what ``config.json`` records).

    Raises:
        ChecksumError: the file does not match ``sha256``.
        WeightsNotFoundError, UnsafeWeightsError, IncompatibleWeightsError: see :func:`read_safetensors` and
            :func:`load_state_dict_strict`.
    """
    source = source or str(path)
    if sha256 is not None:
        verify_sha256(path, sha256, source)
    state_dict = read_safetensors(path)
    head = tuple(getattr(model, "head_prefixes", ())) if _asks_other_keypoints(model) else ()
    metadata = read_safetensors_metadata(path)
    saved_as = (metadata.get("model_name", recorded_model), metadata.get("num_joints"))
    skipped = load_state_dict_strict(model, state_dict, source, skip_prefixes=head, saved_as=saved_as)
    report = LoadReport(source, str(path), sha256, len(model.state_dict()) - len(skipped), skipped)
    if skipped:
        logger.warning(
            "loaded %s into %s except the keypoint head (num_joints=%s): %d entries keep their fresh "
            "initialisation: %s",
            source,
            type(model).__name__,
            getattr(model.config, "num_joints", "?"),
            len(skipped),
            ", ".join(skipped),
        )
    else:
        logger.info("loaded %s into %s (%d entries)", source, type(model).__name__, report.loaded)
    return report


def load_resolved(model: nn.Module, resolved: ResolvedWeights) -> LoadReport:
    """:func:`load_weights_file` for a :class:`~posecommon.hub.ResolvedWeights`, keeping its Hub origin.

    Returns:
        The report, with ``repo_id``, ``revision`` and ``commit`` of the source (``None`` for local files).
    """
    report = load_weights_file(
        model, resolved.path, sha256=resolved.sha256, source=resolved.source, recorded_model=resolved.model_name
    )
    return dataclasses.replace(report, repo_id=resolved.repo_id, revision=resolved.revision, commit=resolved.commit)


def load_pretrained(model: ModuleT, model_name: str, pretrained: bool | str | Path | None) -> ModuleT:
    """Apply a ``pretrained=`` argument to a freshly built model and return it.

    Args:
        model: The model, built with random weights.
        model_name: Its registry name.
        pretrained: ``False``/``None`` (nothing to load), ``True`` (default published weights), a weight tag,
            ``"hf-hub:org/repo[@revision]"``, a local ``.safetensors`` file or a ``save_pretrained`` directory.

    Returns:
        ``model``, with the weights loaded and :class:`LoadReport` in ``model.pretrained_report``.

    Raises:
        WeightsNotFoundError: no weights are published for this model/tag, or a file/repo does not exist.
        HubUnavailableError: the Hub is unreachable (or offline mode is on) and the file is not cached.
        ChecksumError: the file does not match its recorded sha256.
        UnsafeWeightsError: the file is a pickle, not safetensors.
        IncompatibleWeightsError: the file is corrupted, or its keys/shapes do not fit the model (the message
            names the first mismatching keys and shapes).
    """
    if pretrained is False or pretrained is None:
        return model
    resolved = resolve_pretrained(model_name, pretrained)
    try:
        report = load_resolved(model, resolved)
    except IncompatibleWeightsError as err:
        num_joints = getattr(getattr(model, "config", None), "num_joints", None)
        if resolved.num_joints is not None and num_joints is not None and resolved.num_joints != num_joints:
            raise IncompatibleWeightsError(
                f"{err} These weights predict {resolved.num_joints} keypoints and the model {num_joints}: pass "
                f"num_joints={resolved.num_joints}, or PoseModel.from_pretrained to rebuild the saved config."
            ) from err
        raise
    model.pretrained_report = report
    return model
