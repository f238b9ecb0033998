"""Names and validity of Hub references: repository ids, revisions, file paths and ``hf-hub:org/repo@rev``.

Every check runs before any request is made, so a malformed reference never reaches the network or the cache.
"""

from __future__ import annotations

import re

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..errors import InvalidInputError

__all__ = [
    "HUB_PREFIX",
    "is_hub_repo_id",
    "split_hub_reference",
    "validate_filename",
    "validate_hub_id",
    "validate_revision",
]

HUB_PREFIX = "hf-hub:"
"""Prefix of a Hub reference in ``pretrained=`` / ``--weights``: ``"hf-hub:org/repo[@revision]"``."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_REVISION_LENGTH = 255


_REVISION_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


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


def validate_filename(filename: str) -> None:
    """Check that ``filename`` is a relative path inside a repository (no ``..``, no absolute path, no backslash).

    Raises:
        InvalidInputError: it is not.
    """
    parts = filename.split("/")
    if not filename or filename.startswith("/") or "\\" in filename or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"{filename!r} is not a file path inside a Hub repository")


def split_hub_reference(spec: str) -> tuple[str, str | None]:
    """Split ``"hf-hub:org/repo[@revision]"`` (the prefix is optional) into ``(repo_id, revision or None)``.

    Raises:
        InvalidInputError: the repository id or the revision is not valid.
    """
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


def is_hub_repo_id(text: str) -> bool:
    """Whether ``text`` (up to an ``@revision``) has the shape ``org/name`` of a Hub repository id."""
    return bool(_REPO_ID.match(text.partition("@")[0]))
