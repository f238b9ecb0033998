"""The files of a saved model and how they are checked: names, sha256 digests and safe safetensors reading.

A :func:`~posecommon.hub.save_pretrained` directory (and a Hub repository written by
:func:`~posecommon.hub.push_to_hub`) holds :data:`CONFIG_NAME`, :data:`WEIGHTS_NAME` and :data:`CARD_NAME`.
Weights are read only as safetensors; a pickle is refused before anything parses it, and a file that is not
safetensors at all is told apart from a damaged one (only the latter is worth deleting and downloading again).

:func:`safetensors_bytes` writes canonical safetensors: the ``safetensors`` library stores the metadata in a hash
map, so the same weights saved twice gave different bytes (and sha256 digests); here the header's keys are sorted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..errors import ChecksumError, IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "read_safetensors",
    "read_safetensors_metadata",
    "safetensors_bytes",
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
    if blob == path.absolute():  # a local file: it may be the only copy, so no advice to delete it
        raise ChecksumError(
            f"{what}: sha256 mismatch, expected {expected} but the file has {actual} ({path}). The file changed since "
            "the sha256 was recorded, or the config belongs to other weights: restore the original file, or save the "
            "model again with save_pretrained to record the digest of these weights."
        )
    raise ChecksumError(
        f"{what}: sha256 mismatch, expected {expected} but the file has {actual}. The download or cached copy is "
        f"corrupted, or the file changed since the sha256 was recorded. Delete {path} and the blob it links to, "
        f"{blob}, then load again to download a fresh copy; if the mismatch persists, the published file differs "
        "from the registry - do not use it, and report it."
    )


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise ``tensors`` as safetensors whose bytes depend only on the tensors and ``metadata``.

    The data section is laid out by ``safetensors.torch.save`` (sorted by dtype, then name); the JSON header is
    written again with sorted keys and no spaces, padded with spaces to a multiple of 8 bytes as the format asks.
    """
    data = save(dict(tensors), dict(metadata) if metadata is not None else None)
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def _looks_like_safetensors(path: Path) -> bool:
    """Whether the file starts like safetensors: an 8-byte header length that fits in the file (text and other
    formats give absurd lengths)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8


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
            "checkpoint, vttranspose.convert_official_transpose)."
        )
    if not _looks_like_safetensors(path):
        raise IncompatibleWeightsError(
            f"{path} is not a safetensors file (its first bytes are no safetensors header); posezoo reads weights "
            "only as .safetensors: pass a file written by save_pretrained or safetensors.torch.save_file"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise IncompatibleWeightsError(
            f"{path} is a damaged safetensors file (truncated or corrupted): {err}. Delete it and download or save "
            "it again."
        ) from err


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors header (``{}`` when there is none or the file is not readable)."""
    try:
        with safe_open(str(path), "pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return {}
