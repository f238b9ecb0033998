"""Load the official TransPose-H-S checkpoint into ``transpose_h_s`` (all of it) or ``vttranspose_h_s`` (shared parts).

The official checkpoint ``tp_h_32_256x192_enc4_d64_h128_mh1.pth`` is a plain state dict of 982 tensors (parameters,
BatchNorm buffers and the frozen 3072x1x64 sine table). Our models keep the official attribute names, so keys map
one to one; the converter only checks shapes, drops a DataParallel ``module.`` prefix and reports what it did.
``.pth`` files are read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from posecommon.errors import (
    HubUnavailableError,
    IncompatibleWeightsError,
    UnsafeWeightsError,
    WeightsNotFoundError,
)
from posecommon.hub import save_pretrained, sha256_file
from posecommon.media.download import download_to_file, is_url
from posecommon.model import PoseModel
from posecommon.registry import create_model, register_converter

__all__ = [
    "OFFICIAL_CHECKPOINT_MAX_BYTES",
    "OFFICIAL_DOWNLOAD_TIMEOUT_S",
    "ConversionReport",
    "convert_official_checkpoint",
    "convert_official_transpose",
]

logger = logging.getLogger(__name__)

OFFICIAL_TRANSPOSE_ORIGIN = (
    "official TransPose-H-S checkpoint tp_h_32_256x192_enc4_d64_h128_mh1.pth (github.com/yangsenius/TransPose), "
    "trained on COCO train2017"
)
OFFICIAL_CHECKPOINT_MAX_BYTES = 512 * 2**20
"""Size limit of a downloaded official checkpoint (the TransPose-H-S file is 32 MB)."""
OFFICIAL_DOWNLOAD_TIMEOUT_S = 600.0
"""Deadline of the whole download of an official checkpoint, in seconds."""


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert_official_checkpoint` did.

    Args:
        loaded: Model keys filled from the checkpoint.
        skipped: Checkpoint keys not used, each with the reason (absent from the model, or shape mismatch).
        missing: Model keys the checkpoint did not fill (they keep their current values).
    """

    loaded: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every checkpoint key was used and every model key was filled."""
        return not self.skipped and not self.missing

    def summary(self) -> str:
        """One line: counts of loaded, skipped and missing keys."""
        return f"loaded {len(self.loaded)}, skipped {len(self.skipped)}, missing {len(self.missing)} keys"

    def details(self) -> list[str]:
        """The skipped checkpoint keys (with the reason) and the model keys left missing, one line each."""
        return [f"skipped: {k} ({r})" for k, r in self.skipped.items()] + [f"missing: {k}" for k in self.missing]


def _read_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsNotFoundError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            first_line = str(err).strip().splitlines()[0]
            raise UnsafeWeightsError(
                f"{path} holds pickled objects other than tensors, which posezoo does not unpickle "
                f"(torch.load with weights_only=True refused it: {first_line}); convert the official TransPose "
                "checkpoint file itself, or save a plain state dict of tensors"
            ) from None
    for wrapper in ("state_dict", "model"):
        if wrapper in state and isinstance(state[wrapper], Mapping):
            state = dict(state[wrapper])
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise IncompatibleWeightsError(f"checkpoint entries that are not tensors: {not_tensors[:5]}")
    return state


@torch.no_grad()
def convert_official_checkpoint(
    state_dict_or_path: str | Path | Mapping[str, torch.Tensor], model: nn.Module, strict: bool = False
) -> ConversionReport:
    """Copy the official TransPose-H-S weights into ``model`` wherever key and shape agree.

    Into ``transpose_h_s`` (256x192, 17 joints) every key loads. Into ``vttranspose_h_s`` the stem, stage 1, the
    transitions, stage 2, the stage-3 blocks that are still basic blocks, the fuse layers, ``reduce`` and
    ``final_layer`` load, and so do the encoder layers' post-norm LayerNorms (``norm1``, ``norm2``: same role and
    shape in the twin layers); the replaced basic blocks, the self-attention and MLP weights and the sine table are
    skipped, and the V blocks, twin attention, FFN and axial embeddings are reported missing (they keep their
    initialisation). A model with another ``num_joints`` skips ``final_layer``; one built for another input size
    skips the sine table (it is the same formula, already in the model).

    Args:
        state_dict_or_path: The official state dict, or the path of the ``.pth`` file.
        model: A :class:`~vttranspose.VTTransPose` (or any module with the official names).
        strict: Raise unless every checkpoint key loads and no model key is missing.

    Returns:
        The :class:`ConversionReport`.

    Raises:
        WeightsNotFoundError: the path does not exist.
        UnsafeWeightsError: the file pickles objects other than tensors (refused unopened by
            ``torch.load(weights_only=True)``; nothing in it runs).
        IncompatibleWeightsError: a non-tensor entry, or ``strict`` and the report is not complete (the message
            names the first keys).
    """
    state = _read_state_dict(state_dict_or_path)
    target = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    for key, value in state.items():
        if key not in target:
            skipped[key] = "not in model"
        elif tuple(value.shape) != tuple(target[key].shape):
            skipped[key] = f"shape {tuple(value.shape)} vs model {tuple(target[key].shape)}"
        else:
            loaded[key] = value
    missing = tuple(k for k in target if k not in loaded)
    report = ConversionReport(tuple(loaded), skipped, missing)
    if strict and not report.complete:
        first_skipped = [f"{k} ({r})" for k, r in list(skipped.items())[:3]]
        raise IncompatibleWeightsError(
            f"official checkpoint does not fit {type(model).__name__} strictly: {report.summary()}; "
            f"first skipped: {first_skipped}; first missing: {list(missing[:3])}"
        )
    for key, value in loaded.items():
        target[key].copy_(value.to(dtype=target[key].dtype))
    logger.info("official TransPose-H-S checkpoint: %s", report.summary())
    return report


@register_converter(
    "transpose",
    family="vttranspose",
    summary="official TransPose-H-S .pth state dict -> transpose_h_s (or the shared parts of vttranspose_h_s)",
    models=("transpose_h_s", "vttranspose_h_s"),
    license="mit",
)
def convert_official_transpose(
    source: str | Path,
    save_dir: str | Path | None = None,
    model_name: str | None = None,
    **overrides: object,
) -> tuple[PoseModel, ConversionReport]:
    """Convert the official TransPose-H-S ``.pth`` checkpoint into a posezoo model (and save it as safetensors).

    This is the only place posezoo reads a pickle-based file with torch, and it does so with
    ``torch.load(weights_only=True)`` (inside :func:`convert_official_checkpoint`), which refuses arbitrary objects.
    Into ``transpose_h_s`` every key must load (strict); into ``vttranspose_h_s`` only the shared parts load, as a
    fine-tuning start (see the report). A URL is downloaded by :func:`posecommon.media.download.download_to_file`
    into a temporary directory that is removed afterwards, within :data:`OFFICIAL_DOWNLOAD_TIMEOUT_S` and
    :data:`OFFICIAL_CHECKPOINT_MAX_BYTES`. The saved model records the file's name and sha256
    (``converted_from``); ``posezoo convert transpose FILE --out DIR`` runs this.

    Args:
        source: Path of the ``.pth`` file, or an ``http(s)://`` URL to download it from.
        save_dir: If given, the converted model is written there with :func:`~posecommon.hub.save_pretrained`
            (``config.json``, ``model.safetensors``, ``README.md``), ready for ``PoseModel.from_pretrained``.
        model_name: ``"transpose_h_s"`` (default) or another model with the official attribute names.
        **overrides: Config overrides of the model (e.g. ``input_size``).

    Returns:
        The model with the converted weights and the converter's report.

    Raises:
        WeightsNotFoundError: the path does not exist.
        HubUnavailableError: the URL cannot be downloaded (network, HTTP error, deadline or size limit).
        IncompatibleWeightsError: the checkpoint does not fit ``transpose_h_s`` exactly.
    """
    name = model_name or "transpose_h_s"
    model = create_model(name, **overrides)
    with tempfile.TemporaryDirectory(prefix="posezoo-official-") as tmp:
        path = Path(source)
        if is_url(str(source)):
            path = download_to_file(
                str(source),
                Path(tmp) / "official.pth",
                OFFICIAL_DOWNLOAD_TIMEOUT_S,
                OFFICIAL_CHECKPOINT_MAX_BYTES,
                error=HubUnavailableError,
            )
        report = convert_official_checkpoint(path, model, strict=name == "transpose_h_s")
        digest = sha256_file(path) if path.is_file() else ""
    if save_dir is not None:
        origin = "official TransPose-H-S checkpoint (github.com/yangsenius/TransPose, MIT)"
        if not report.complete:
            origin += f"; partial conversion into {name}: {report.summary()}"
        converted_from = {"file": Path(str(source)).name, "sha256": digest, "origin": origin}
        save_pretrained(
            model, save_dir, training_data=OFFICIAL_TRANSPOSE_ORIGIN, license="mit", converted_from=converted_from
        )
    return model, report  # type: ignore[return-value]
