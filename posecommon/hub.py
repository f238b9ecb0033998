"""Weights on the Hugging Face Hub: resolve ``pretrained=``, download, verify, save and publish.

What ``pretrained=`` accepts (see :func:`resolve_pretrained`):

* ``True`` or a weight tag: the model's :class:`~posecommon.registry.WeightSpec`, downloaded with
  ``huggingface_hub.hf_hub_download(repo_id, filename, revision=...)`` into the standard Hugging Face cache and
  verified against the registry's sha256 before anything reads it.
* ``"hf-hub:org/repo[@revision]"``: a repository in the :func:`save_pretrained` layout (``config.json``,
  ``model.safetensors``, ``README.md``). ``model.safetensors`` is fetched at the exact commit ``config.json`` was
  fetched from and checked against the sha256 that ``config.json`` records (this catches corrupted or mixed-up
  files; it is not a signature, since both files come from the same repository). The id is checked with
  ``huggingface_hub.utils.validate_repo_id`` and the revision with :func:`validate_revision` before any request;
  without ``@revision`` the commit ``main`` resolved to is logged (WARNING) and recorded by :func:`save_pretrained`.
* a local ``.safetensors`` file, or a directory written by :func:`save_pretrained` (sha256 checked as above).

Configuration is ``huggingface_hub``'s own: ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``
(which ``huggingface_hub`` reads when it is imported, so set them before starting Python). A revision pinned to a
commit hash that is already cached is served without any network call, also in offline mode.

A file that is not cached is probed with one request without retries before ``hf_hub_download`` runs, so an
unreachable Hub fails at once with a message suggesting ``HF_HUB_OFFLINE=1`` (``hf_hub_download`` alone retries
for about 23 s).

Failures raise the typed errors of :mod:`posecommon.errors`, each saying what to do:
:class:`~posecommon.errors.InvalidInputError` (malformed Hub id or revision),
:class:`~posecommon.errors.WeightsNotFoundError` (nothing published, unknown repo/revision/file, missing local
file), :class:`~posecommon.errors.HubUnavailableError` (Hub unreachable or offline mode, and not cached),
:class:`~posecommon.errors.ConfigError` (a ``config.json`` field unknown or wrongly typed) and
:class:`~posecommon.errors.ChecksumError` (the file does not match its sha256; the message names the cached files
to delete).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import httpx, validate_repo_id
from safetensors.torch import save_file
from torch import nn

from .errors import (
    ChecksumError,
    HubUnavailableError,
    IncompatibleWeightsError,
    InvalidInputError,
    UnknownModelError,
    WeightsNotFoundError,
)
from .model_card import render_model_card
from .registry import create_model, get_model_info
from .saved_config import validate_saved_config

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

    from vttranspose.convert import ConversionReport

    from .model import PoseModel

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "HUB_PREFIX",
    "WEIGHTS_NAME",
    "ResolvedWeights",
    "convert_official_transpose",
    "download_file",
    "fetch_pretrained",
    "parse_hub_spec",
    "push_to_hub",
    "resolve_pretrained",
    "save_pretrained",
    "sha256_file",
    "validate_hub_id",
    "validate_revision",
    "verify_sha256",
]

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
"""Version of the ``config.json`` layout written by :func:`save_pretrained`."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".pkl")
_MAX_REVISION_LENGTH = 255
_REVISION_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


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


def validate_hub_id(repo_id: str) -> None:
    """Check a Hub repository id with ``huggingface_hub.utils.validate_repo_id``, and that it is ``org/name``.

    Raises:
        InvalidInputError: the id is not valid (``a/..``, ``a--b/c``, more than 96 characters, ...); nothing has
            been requested from the Hub.
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InvalidInputError(f"{repo_id!r} is not a valid Hub repository id: {err}") from err
    if "/" not in repo_id:
        raise InvalidInputError(f"{repo_id!r} is not a Hub repository id of the form 'org/name'")


def validate_revision(revision: str) -> None:
    """Check a Hub revision (branch, tag or commit hash) before it reaches a request or the cache.

    ``huggingface_hub`` 2.4 has no validator for revisions; it quotes them in URLs but uses them as paths under
    ``refs/`` in the cache. The rules here are git's ``check-ref-format`` rules for a ref name (the Hub's branches
    and tags are git refs): no ``..``, no component that is empty or starts with ``.``, no ``.lock`` suffix, no
    ``@{``, no control characters, space or any of ``~^:?*[\\``, not ``@``, at most 255 characters.

    Raises:
        InvalidInputError: the revision breaks a rule (the message says which).
    """
    problem = None
    if not isinstance(revision, str) or not revision:
        problem = "it is empty"
    elif len(revision) > _MAX_REVISION_LENGTH:
        problem = f"it is longer than {_MAX_REVISION_LENGTH} characters"
    elif _REVISION_FORBIDDEN.search(revision):
        problem = "it contains a space, a control character or one of ~^:?*[\\"
    elif ".." in revision or "@{" in revision or revision == "@":
        problem = "it contains '..' or '@{' (or is '@')"
    elif any(not part or part.startswith(".") or part.endswith(".lock") for part in revision.split("/")):
        problem = "a '/'-separated component is empty, starts with '.' or ends with '.lock'"
    elif revision.endswith("."):
        problem = "it ends with '.'"
    if problem:
        raise InvalidInputError(
            f"{revision!r} is not a valid Hub revision ({problem}); use a branch, tag or 40-hex commit hash"
        )


def _validate_filename(filename: str) -> None:
    parts = filename.split("/")
    if not filename or filename.startswith("/") or "\\" in filename or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"{filename!r} is not a file path inside a Hub repository")


def _split_hub_spec(spec: str) -> tuple[str, str | None]:
    body = spec[len(HUB_PREFIX) :] if spec.startswith(HUB_PREFIX) else spec
    repo_id, at, revision = body.partition("@")
    try:
        validate_hub_id(repo_id)
    except InvalidInputError as err:
        raise InvalidInputError(
            f"{spec!r} is not a Hub reference ({err}); expected 'hf-hub:org/repo' or 'hf-hub:org/repo@revision'"
        ) from err
    if at:
        validate_revision(revision)
    return repo_id, revision if at else None


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """Split ``"hf-hub:org/repo[@revision]"`` (the prefix is optional) into ``(repo_id, revision)``.

    The repository id is checked with ``huggingface_hub``'s own validator and the revision with
    :func:`validate_revision`, before any request. The revision defaults to ``"main"``.

    Raises:
        InvalidInputError: the repository id or the revision is not valid.
    """
    repo_id, revision = _split_hub_spec(spec)
    return repo_id, revision or "main"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, what: str) -> None:
    """Check that ``path`` has the sha256 ``expected``.

    Args:
        path: The file (a Hugging Face cache entry is a link to a blob; both are named in the error).
        expected: Hex digest.
        what: Description of the file for the message, e.g. ``"tiny_pose.coco (org/repo@abc)"``.

    Raises:
        ChecksumError: the digests differ; the message gives both and the files to delete before retrying.
    """
    actual = sha256_file(path)
    if actual == expected.lower():
        return
    path = Path(path)
    blob = path.resolve()
    to_delete = f"{path} and the blob it links to, {blob}" if blob != path.absolute() else str(path)
    raise ChecksumError(
        f"{what}: sha256 mismatch, expected {expected} but the file has {actual}. The download or cached copy is "
        f"corrupted, or the file changed since the sha256 was recorded. Delete {to_delete}, then load again to "
        "download a fresh copy; if the mismatch persists, the published file differs from the registry - do not "
        "use it, and report it."
    )


def _cache_dir() -> str:
    return str(hf_constants.HF_HUB_CACHE)


def _hub_unreachable(where: str, err: Exception) -> HubUnavailableError:
    return HubUnavailableError(
        f"could not reach the Hugging Face Hub at {hf_constants.ENDPOINT} to download {where} ({err}), and it is not "
        f"in the cache ({_cache_dir()}). Check the network connection, proxy and HF_ENDPOINT, then retry. Without "
        "network, set HF_HUB_OFFLINE=1 to use only cached files (fill the cache once where the Hub is reachable, or "
        "copy that machine's cache and set HF_HUB_CACHE to it), or pass a local .safetensors path."
    )


def _probe(repo_id: str, filename: str, revision: str) -> None:
    """One ``HEAD`` request for the file, without retries (``get_hf_file_metadata(retry_on_errors=False)``).

    ``hf_hub_download`` retries a refused or timed-out connection five times with backoff (about 23 s in 2.4)
    before failing when the file is not cached, and no setting turns that off. Probing first makes an unreachable
    Hub fail at once (or after ``HF_HUB_ETAG_TIMEOUT`` seconds when packets are dropped); HTTP errors raise the
    same ``huggingface_hub`` errors as the download would.
    """
    url = hf_hub_url(repo_id, filename, revision=revision)
    get_hf_file_metadata(url, timeout=hf_constants.HF_HUB_ETAG_TIMEOUT, library_name="posezoo")


def download_file(repo_id: str, filename: str, revision: str) -> Path:
    """Download one file of a model repository through ``hf_hub_download`` into the Hugging Face cache.

    The id, revision and file name are validated first (:func:`validate_hub_id`, :func:`validate_revision`).
    A file already cached (a pinned commit, or a branch through the cached ``refs/``) is returned as
    ``hf_hub_download`` does; a file that is not cached is probed with one request first, so that an unreachable
    Hub fails at once instead of after ``huggingface_hub``'s retries (see :func:`_probe`).

    Args:
        repo_id: ``"org/name"``.
        filename: Path inside the repository.
        revision: Branch, tag or commit hash; a commit hash already cached is returned without network access.

    Returns:
        The cached file (``<cache>/models--org--name/snapshots/<commit>/<filename>``; the directory name is the
        commit the revision resolved to).

    Raises:
        InvalidInputError: the id, revision or file name is not valid (nothing was requested).
        WeightsNotFoundError: the repository, revision or file does not exist (or is private/gated).
        HubUnavailableError: the Hub cannot be reached, or offline mode is on, and the file is not in the cache.
    """
    validate_hub_id(repo_id)
    validate_revision(revision)
    _validate_filename(filename)
    where = f"{filename} of {repo_id}@{revision}"
    try:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if not hf_constants.is_offline_mode() and not isinstance(cached, str):
            _probe(repo_id, filename, revision)
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="posezoo"))
    except RepositoryNotFoundError as err:
        raise WeightsNotFoundError(
            f"Hub repository {repo_id!r} does not exist or is private/gated (endpoint {hf_constants.ENDPOINT}). "
            "Check the repo id; for a private repo log in with `hf auth login` or set HF_TOKEN."
        ) from err
    except RevisionNotFoundError as err:
        raise WeightsNotFoundError(
            f"revision {revision!r} does not exist in Hub repository {repo_id!r}. Use a branch, tag or commit hash "
            "that exists (omit '@revision' for main)."
        ) from err
    except RemoteEntryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{repo_id}@{revision} has no file {filename!r}. posezoo repositories hold {CONFIG_NAME}, "
            f"{WEIGHTS_NAME} and {CARD_NAME} as written by save_pretrained/push_to_hub."
        ) from err
    except LocalEntryNotFoundError as err:
        if hf_constants.is_offline_mode():
            raise HubUnavailableError(
                f"offline mode is on (HF_HUB_OFFLINE=1) and {where} is not in the Hugging Face cache "
                f"({_cache_dir()}). Load it once with network access (unset HF_HUB_OFFLINE) to fill the cache, copy "
                "the cache directory from a machine that has it (set HF_HUB_CACHE to it), or pass a local "
                ".safetensors path."
            ) from err
        raise _hub_unreachable(where, err) from err
    except httpx.TransportError as err:
        raise _hub_unreachable(where, err) from err
    except HfHubHTTPError as err:
        raise HubUnavailableError(
            f"the Hugging Face Hub at {hf_constants.ENDPOINT} failed to serve {where}: {err}. Retry later, or pass a "
            "local .safetensors path."
        ) from err


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

    ``config.json`` is validated (:func:`~posecommon.saved_config.validate_saved_config`). A Hub reference
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
    elif str(source).startswith(HUB_PREFIX) or _REPO_ID.match(str(source).partition("@")[0]):
        repo_id, parsed_revision = _split_hub_spec(str(source))
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
            if _REPO_ID.match(text.partition("@")[0]) and not text.endswith(_WEIGHT_SUFFIXES):
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


def _safetensors_state(model: nn.Module) -> dict[str, Any]:
    # clone: safetensors refuses tensors that share storage, and views may be non-contiguous
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _hub_source(model: PoseModel) -> dict[str, str | None] | None:
    """``{"repo_id", "revision", "commit"}`` of the Hub weights the model was loaded from, if it was."""
    report = getattr(model, "pretrained_report", None)
    if report is None or report.repo_id is None or report.commit is None:
        return None
    return {"repo_id": report.repo_id, "revision": report.revision, "commit": report.commit}


def save_pretrained(
    model: PoseModel,
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
    model: PoseModel,
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


OFFICIAL_TRANSPOSE_ORIGIN = (
    "official TransPose-H-S checkpoint tp_h_32_256x192_enc4_d64_h128_mh1.pth (github.com/yangsenius/TransPose), "
    "trained on COCO train2017"
)


def _download_url(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)
    except urllib.error.HTTPError as err:
        raise WeightsNotFoundError(f"{url} answered HTTP {err.code}; check the URL") from err
    except (urllib.error.URLError, OSError) as err:
        raise HubUnavailableError(
            f"could not download {url}: {err}. Check the network connection, or download the file yourself and "
            "pass its path."
        ) from err


def convert_official_transpose(
    source: str | Path,
    save_dir: str | Path | None = None,
    *,
    model_name: str = "transpose_h_s",
) -> tuple[PoseModel, ConversionReport]:
    """Convert the official TransPose-H-S ``.pth`` checkpoint into a posezoo model (and save it as safetensors).

    This is the only place posezoo reads a pickle-based file, and it does so with ``torch.load(weights_only=True)``
    (inside :func:`vttranspose.convert_official_checkpoint`), which refuses arbitrary objects. Into
    ``transpose_h_s`` every key must load (strict); into ``vttranspose_h_s`` only the shared parts load, as a
    fine-tuning start (see the converter's report).

    Args:
        source: Path of the ``.pth`` file, or an ``http(s)://`` URL to download it from (to a temporary file).
        save_dir: If given, the converted model is written there with :func:`save_pretrained` (``config.json``,
            ``model.safetensors``, ``README.md``), ready for ``PoseModel.from_pretrained`` or :func:`push_to_hub`.
        model_name: ``"transpose_h_s"`` or another model with the official attribute names.

    Returns:
        The model with the converted weights and the converter's report.

    Raises:
        WeightsNotFoundError: the path does not exist or the URL answers an HTTP error.
        HubUnavailableError: the URL cannot be reached.
        IncompatibleWeightsError: the checkpoint does not fit ``transpose_h_s`` exactly.
    """
    from vttranspose.convert import convert_official_checkpoint  # posecommon must not import the model packages

    model = create_model(model_name)
    with tempfile.TemporaryDirectory(prefix="posezoo-official-") as tmp:
        path = Path(source)
        if str(source).startswith(("http://", "https://")):
            path = Path(tmp) / "official.pth"
            _download_url(str(source), path)
        report = convert_official_checkpoint(path, model, strict=model_name == "transpose_h_s")
    if save_dir is not None:
        training_data = OFFICIAL_TRANSPOSE_ORIGIN
        if not report.complete:
            training_data += f"; partial conversion into {model_name}: {report.summary()}"
        save_pretrained(model, save_dir, training_data=training_data)
    return model, report
