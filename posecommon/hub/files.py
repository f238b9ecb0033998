"""The files of a saved model and how they are checked: names, sha256 digests and safe safetensors reading.

A :func:`~posecommon.hub.save_pretrained` directory (and a Hub repository written by
:func:`~posecommon.hub.push_to_hub`) holds :data:`CONFIG_NAME`, :data:`WEIGHTS_NAME` and :data:`CARD_NAME`.
Weights are read only as safetensors; a pickle is refused before anything parses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import ChecksumError, IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "read_safetensors",
    "read_safetensors_metadata",
    "sha256_file",
    "verify_sha256",
]

CONFIG_NAME = "config.json"
"""Model description: registry name, config, keypoint set, preprocessing, weight sha256 (:mod:`.saved_config`)."""
WEIGHTS_NAME = "model.safetensors"
"""The state dict."""
CARD_NAME = "README.md"
"""The model card (:mod:`.card`)."""
FORMAT_VERSION = 1
"""Version of the ``config.json`` layout written by :func:`~posecommon.hub.save_pretrained`."""

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # protocol-2+ pickles and torch's zip container


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
            "checkpoint, `posezoo convert` or vttranspose.convert_official_transpose)."
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise IncompatibleWeightsError(
            f"{path} is not a readable safetensors file (truncated or corrupted): {err}. Delete it and download or "
            "save it again."
        ) from err


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors header (``{}`` when there is none or the file is not readable)."""
    try:
        with safe_open(str(path), "pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return {}
