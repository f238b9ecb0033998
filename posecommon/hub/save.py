"""Write a model as ``config.json`` + ``model.safetensors`` + ``README.md`` and publish it on the Hub.

The layout is ``huggingface_hub``'s ``PyTorchModelHubMixin`` layout, so Hub users recognise it, written by our own
code (safetensors only, a sha256 recorded for the weights, a generated model card). The model is any
``nn.Module`` that describes itself with ``config_dict()`` (every :class:`~posecommon.PoseModel` does).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi
from safetensors.torch import save_file
from torch import nn

from ..errors import UnknownModelError
from ..registry import get_model_info
from .card import render_model_card
from .files import CARD_NAME, CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, sha256_file

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

__all__ = ["push_to_hub", "save_pretrained"]

logger = logging.getLogger(__name__)


def _safetensors_state(model: nn.Module) -> dict[str, Any]:
    # clone: safetensors refuses tensors that share storage, and views may be non-contiguous
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _hub_source(model: nn.Module) -> dict[str, str | None] | None:
    """``{"repo_id", "revision", "commit"}`` of the Hub weights the model was loaded from, if it was."""
    report = getattr(model, "pretrained_report", None)
    if report is None or report.repo_id is None or report.commit is None:
        return None
    return {"repo_id": report.repo_id, "revision": report.revision, "commit": report.commit}


def save_pretrained(
    model: nn.Module,
    save_dir: str | Path,
    *,
    training_data: str = "",
    metrics: Mapping[str, float] | None = None,
    license: str = "",
    converted_from: Mapping[str, str] | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card into ``save_dir``.

    ``config.json`` holds the model's ``config_dict()`` (registry name, config, keypoint spec, preprocessing) plus
    the weight file's sha256, the training data and metrics, and, when the model's weights were loaded from the Hub
    (``model.pretrained_report``), ``source``: the repository, the revision asked for and the commit it resolved
    to. ``model.safetensors`` holds the state dict (buffers included) with metadata ``model_name`` and
    ``num_joints``. The model card shows the same, ``source`` included.

    Args:
        model: A registered :class:`~posecommon.model.PoseModel`.
        save_dir: Directory to write (created if needed; files are overwritten).
        training_data: Description of the training data, written to the card and ``config.json``.
        metrics: Measured metrics of these weights.
        license: Licence of the weights (SPDX id).
        converted_from: For weights a converter read from an official checkpoint: ``{"file", "sha256",
            "origin"}`` of that file, written to ``config.json`` and the card.

    Returns:
        ``save_dir`` as a :class:`~pathlib.Path`.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    description = model.config_dict()
    name = description["model_name"]
    weights_path = save_dir / WEIGHTS_NAME
    metadata = {"format": "pt", "library": "posezoo", "model_name": name, "num_joints": str(model.config.num_joints)}
    save_file(_safetensors_state(model), str(weights_path), metadata=metadata)
    metrics = dict(metrics or {})
    config = {
        **description,
        "format_version": FORMAT_VERSION,
        "weights": {"filename": WEIGHTS_NAME, "sha256": sha256_file(weights_path)},
        "training_data": training_data,
        "metrics": metrics,
        "license": license,
    }
    source = _hub_source(model)
    if source is not None:
        config["source"] = source
    if converted_from is not None:
        config["converted_from"] = dict(converted_from)
    (save_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    try:
        info = get_model_info(name)
        family, summary = info.family, info.summary
    except UnknownModelError:
        family, summary = "", ""
    card = render_model_card(
        description,
        family=family,
        summary=summary,
        num_params=sum(p.numel() for p in model.parameters()),
        training_data=training_data,
        metrics=metrics,
        license=license,
        source=source,
        converted_from=converted_from,
    )
    (save_dir / CARD_NAME).write_text(card, encoding="utf-8")
    logger.info("saved %s to %s", name, save_dir)
    return save_dir


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    training_data: str = "",
    metrics: Mapping[str, float] | None = None,
    license: str = "",
) -> CommitInfo:
    """Save the model with :func:`save_pretrained` and upload the three files to a Hub model repository.

    Creates the repository if needed (``HfApi.create_repo(exist_ok=True)``) and commits with
    ``HfApi.upload_folder``. Errors of ``huggingface_hub`` (authentication, permissions, network) propagate.

    Args:
        model: The model to publish.
        repo_id: ``"org/name"``.
        private: Visibility of a newly created repository (``None``: the Hub's default).
        token: Hub token; ``None`` uses the stored login / ``HF_TOKEN``.
        revision: Branch to commit to (default: ``main``).
        commit_message: Commit message; defaults to ``"Upload <model_name> with posezoo"``.
        training_data: See :func:`save_pretrained`.
        metrics: See :func:`save_pretrained`.
        license: See :func:`save_pretrained`.

    Returns:
        The commit; ``.oid`` is the commit hash to pin in a :class:`~posecommon.registry.WeightSpec` or in
        ``"hf-hub:org/name@<oid>"``.
    """
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="posezoo-push-") as tmp:
        save_pretrained(model, tmp, training_data=training_data, metrics=metrics, license=license)
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=tmp,
            revision=revision,
            commit_message=commit_message or f"Upload {model.model_name} with posezoo",
        )
