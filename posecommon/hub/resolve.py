"""Turn a ``pretrained=`` argument into a verified-ready weight file on local disk.

What ``pretrained=`` accepts (see :func:`resolve_pretrained`):

* ``True`` or a weight tag: the model's :class:`~posecommon.registry.WeightSpec`, downloaded with
  ``huggingface_hub.hf_hub_download(repo_id, filename, revision=...)`` and verified against the registry's sha256
  before anything reads it.
* ``"hf-hub:org/repo[@revision]"``: a repository in the :func:`~posecommon.hub.save_pretrained` layout.
  ``model.safetensors`` is fetched at the exact commit ``config.json`` was fetched from and checked against the
  sha256 that ``config.json`` records (this catches corrupted or mixed-up files; it is not a signature, since both
  files come from the same repository). Without ``@revision`` the commit ``main`` resolved to is logged.
* a local ``.safetensors`` file, or a directory written by :func:`~posecommon.hub.save_pretrained`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IncompatibleWeightsError, WeightsNotFoundError
from ..registry import get_model_info
from .download import download_file
from .files import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME
from .ids import HUB_PREFIX, is_hub_repo_id, split_hub_reference, validate_revision
from .saved_config import validate_saved_config

__all__ = ["ResolvedWeights", "fetch_pretrained", "resolve_pretrained"]

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"[0-9a-f]{40}")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file on local disk, ready to be verified and read.

    Args:
        path: The safetensors file (inside the Hugging Face cache for downloads).
        sha256: Digest the file must have, or ``None`` when nothing records one (a bare local file).
        source: Human-readable origin, e.g. ``"tiny_pose.coco (org/repo@<commit>)"``; used in messages and reports.
        num_joints: Keypoints the weights were saved with, when the source records it (``config.json``).
        repo_id: Hub repository the file was downloaded from (``None`` for local files).
        revision: The revision that was asked for (``None`` when none was given, i.e. ``main``).
        commit: The commit hash the revision resolved to (what ``huggingface_hub`` cached the file under).
        model_name: Registry name the source records for the weights (``config.json``), if any.
    """

    path: Path
    sha256: str | None
    source: str
    num_joints: int | None = None
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    model_name: str | None = None


def _read_config(path: Path, origin: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IncompatibleWeightsError(f"{CONFIG_NAME} of {origin} is not readable JSON: {err}") from err
    validate_saved_config(config, f"{CONFIG_NAME} of {origin}", FORMAT_VERSION)
    return config


def _num_joints(config: Mapping[str, Any]) -> int | None:
    value = config.get("config", {}).get("num_joints")
    return value if isinstance(value, int) else None


def _log_resolved_commit(repo_id: str, revision: str | None, commit: str) -> None:
    if revision is None:
        logger.warning(
            "hf-hub:%s has no @revision: 'main' resolved to commit %s. Pin it for reproducible loads: hf-hub:%s@%s",
            repo_id,
            commit,
            repo_id,
            commit,
        )
    elif not _COMMIT.fullmatch(revision):
        logger.info("hf-hub:%s@%s resolved to commit %s", repo_id, revision, commit)


def fetch_pretrained(source: str | Path, revision: str | None = None) -> tuple[dict[str, Any], ResolvedWeights]:
    """Locate the config and weights of a :func:`save_pretrained` directory or Hub repository.

    ``config.json`` is validated (:func:`~posecommon.hub.saved_config.validate_saved_config`). A Hub reference
    without a pinned commit logs the commit it resolved to (a WARNING when no revision was given at all), and the
    returned :class:`ResolvedWeights` carries it, so :func:`save_pretrained` can record where the weights came
    from. A ``config.json`` that records no sha256 loads with a WARNING (the weights cannot be verified).

    Args:
        source: A local directory, ``"hf-hub:org/repo[@revision]"`` or ``"org/repo"``.
        revision: Revision for a Hub repository; overrides an ``@revision`` in ``source``.

    Returns:
        The parsed ``config.json`` and the weight file (with the sha256 ``config.json`` records). From the Hub,
        ``model.safetensors`` is fetched at the commit ``config.json`` came from, so both belong together.

    Raises:
        InvalidInputError: the Hub id or revision is not valid (nothing was requested).
        WeightsNotFoundError: the directory or repository does not exist or lacks a file.
        HubUnavailableError: see :func:`download_file`.
        IncompatibleWeightsError: ``config.json`` is not readable JSON.
        ConfigError: ``config.json`` has an unknown or wrongly typed field (the message names it).
    """
    local = Path(source)
    repo_id = commit = None
    if local.is_dir():
        config_path, weights_path, origin = local / CONFIG_NAME, local / WEIGHTS_NAME, str(local)
        for path in (config_path, weights_path):
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"{path} not found; a save_pretrained directory holds {CONFIG_NAME} and {WEIGHTS_NAME}"
                )
    elif str(source).startswith(HUB_PREFIX) or is_hub_repo_id(str(source)):
        repo_id, parsed_revision = split_hub_reference(str(source))
        if revision is not None:
            validate_revision(revision)
        revision = revision or parsed_revision
        config_path = download_file(repo_id, CONFIG_NAME, revision or "main")
        commit = config_path.parent.name  # <cache>/models--org--name/snapshots/<commit>/config.json
        _log_resolved_commit(repo_id, revision, commit)
        weights_path = download_file(repo_id, WEIGHTS_NAME, commit)
        origin = f"{repo_id}@{commit}"
    else:
        raise WeightsNotFoundError(
            f"{source!r} is neither a directory nor a Hub repository ('hf-hub:org/repo[@revision]')"
        )
    config = _read_config(config_path, origin)
    sha256 = config.get("weights", {}).get("sha256")
    if sha256 is None:
        logger.warning(
            "%s of %s records no sha256 for %s: loading it unverified (save it again with save_pretrained to "
            "record one)",
            CONFIG_NAME,
            origin,
            WEIGHTS_NAME,
        )
    resolved = ResolvedWeights(
        weights_path, sha256, origin, _num_joints(config), repo_id, revision, commit, config["model_name"]
    )
    return config, resolved


def resolve_pretrained(model_name: str, pretrained: bool | str | Path) -> ResolvedWeights:
    """Turn a ``pretrained=`` argument into a local weight file (downloading it when needed).

    Args:
        model_name: Registry name of the model the weights are for.
        pretrained: ``True`` (default weight tag), a weight tag, ``"hf-hub:org/repo[@revision]"``, a local weight
            file or a :func:`save_pretrained` directory.

    Raises:
        WeightsNotFoundError: no weights are published for this model/tag, or a local path does not exist (an
            ``"org/repo"`` string that is no local path is told to use ``"hf-hub:org/repo"``).
        InvalidInputError: a ``hf-hub:`` id or revision is not valid.
        HubUnavailableError: see :func:`download_file`.
    """
    if isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool):
        text = str(pretrained)
        if text.startswith(HUB_PREFIX) or Path(text).is_dir():
            return fetch_pretrained(text)[1]
        if Path(text).is_file():
            return ResolvedWeights(Path(text), None, text)
        if text.endswith(_WEIGHT_SUFFIXES) or os.sep in text or "/" in text:
            hint = ""
            if is_hub_repo_id(text) and not text.endswith(_WEIGHT_SUFFIXES):
                hint = f" To load the Hub repository {text.partition('@')[0]}, pass pretrained='{HUB_PREFIX}{text}'."
            raise WeightsNotFoundError(f"weight file not found: {text}.{hint}")
    info = get_model_info(model_name)
    tag = None if pretrained is True else str(pretrained)
    spec = info.weight(tag)
    if spec is None:
        published = ", ".join(f"{model_name}.{w.tag}" for w in info.weights) or "none"
        raise WeightsNotFoundError(
            f"no weights are published for {model_name}"
            + (f" with tag {tag!r}" if tag else "")
            + f" (published: {published}). Use pretrained=False and train your own (`posezoo train`), or load a "
            "file you have: pretrained='path/to/model.safetensors', a save_pretrained directory, or "
            "'hf-hub:org/repo[@revision]'."
        )
    path = download_file(spec.repo_id, spec.filename, spec.revision)
    num_joints = spec.config.get("num_joints")
    return ResolvedWeights(
        path,
        spec.sha256,
        f"{model_name}.{spec.tag} ({spec.repo_id}@{spec.revision})",
        int(num_joints) if num_joints is not None else None,
        spec.repo_id,
        spec.revision,
        spec.revision,
        model_name,
    )
