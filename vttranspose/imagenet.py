"""ImageNet initialisation of the HRNet-W32 backbone (stem and stages 1-3), as the official TransPose recipe.

The TP-H-S yaml starts training from ImageNet HRNet-W32 (``MODEL.PRETRAINED: hrnet_w32-36af842e.pth``, line 37)
loaded into ``PRETRAINED_LAYERS`` = ``conv1, bn1, conv2, bn2, layer1, transition1, stage2, transition2, stage3``
(lines 47-56): ``init_weights`` (``lib/models/transpose_h.py:669-680``) copies every file entry whose first name
component is one of these layers *and whose name exists in the model*, with ``strict=False``.

The same ImageNet weights are on the Hugging Face Hub as ``timm/hrnet_w32.ms_in1k`` (safetensors, MIT, "trained on
ImageNet-1k by paper authors"), which keeps the official HRNet names. :data:`IMAGENET_HRNET_W32` pins the commit
that added the weights. What is verified, and what is not:

- The revision is a git commit hash, so the repository tree, including the LFS pointer of ``model.safetensors``
  (which records the file's sha256), is fixed by it.
- After the download, the file's sha256 is compared with the LFS sha256 that the Hub reported for that commit
  (huggingface_hub stores a large file under that digest, ``blobs/<sha256>``); a mismatch is a
  :class:`~posecommon.errors.ChecksumError`. This catches corruption in transit or in the cache.
- We could not download the file where this was written (no Hub access), so no sha256 is hard-coded here: the
  chain above trusts the Hub's answer for the pinned commit.

Loading (:func:`load_backbone_weights`) follows ``init_weights`` and adds checks and a report. Only entries under
``PRETRAINED_LAYERS`` are considered; classifier-only entries (``stage4``, ``transition3``, ``incre_modules``,
``downsamp_modules``, ``final_layer``, ``classifier``) are ignored. A file entry the model lacks (in VTTransPose the
basic blocks that V blocks replaced; the stage-3 fuse layers into the lower branches, which TransPose-H drops) is
skipped, as officially. Model entries left at their initialisation are allowed only for V blocks (no ImageNet
counterpart) and ``num_batches_tracked`` (optional in a file). Any shape mismatch, any other missing entry, or a file
that fits nothing is a typed error: it is not an HRNet-W32 backbone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from posecommon.errors import HubUnavailableError, IncompatibleWeightsError, InvalidInputError, WeightsNotFoundError
from posecommon.hub import download_file, read_safetensors, sha256_file, verify_sha256

from .blocks import VBlock

__all__ = [
    "IMAGENET_HRNET_W32",
    "PRETRAINED_LAYERS",
    "BackboneLoadReport",
    "HubFile",
    "download_imagenet_backbone",
    "in_backbone",
    "load_backbone_weights",
    "plan_backbone_load",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository at a pinned revision.

    Args:
        repo_id: ``"org/name"``.
        revision: A 40-hex commit hash.
        filename: Path of the file in the repository.
    """

    repo_id: str
    revision: str
    filename: str


IMAGENET_HRNET_W32 = HubFile("timm/hrnet_w32.ms_in1k", "d3f87a845807b80ae4cfd95815416cfbe90fab99", "model.safetensors")
"""ImageNet-1k HRNet-W32 of the HRNet authors, in timm's layout (the official HRNet names), pinned to the commit that
added the weights."""

PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3")
"""Top-level modules initialised from ImageNet (``MODEL.EXTRA.PRETRAINED_LAYERS``, TP-H-S yaml lines 47-56)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BackboneLoadReport:
    """What :func:`load_backbone_weights` did.

    Args:
        source: Where the weights came from (``repo@revision`` or a path).
        path: The safetensors file that was read.
        sha256: The verified digest (the LFS sha256 of the pinned commit), or ``None`` for a local file.
        loaded: Model entries copied from the file.
        skipped: File entries under ``PRETRAINED_LAYERS`` the model does not have (replaced or unused blocks).
        ignored: File entries outside ``PRETRAINED_LAYERS`` (classifier-only parts of the ImageNet network).
        kept: Model entries under ``PRETRAINED_LAYERS`` left at their initialisation (V blocks, and
            ``num_batches_tracked`` when the file has none).
    """

    source: str
    path: str
    sha256: str | None
    loaded: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line with the counts."""
        return (
            f"{self.source}: loaded {len(self.loaded)} backbone entries; skipped {len(self.skipped)} file entries the "
            f"model lacks, ignored {len(self.ignored)} classifier-only entries; {len(self.kept)} model entries keep "
            "their initialisation"
        )


def in_backbone(name: str) -> bool:
    """Whether a state-dict key or module name lies in :data:`PRETRAINED_LAYERS` (the stem and stages 1-3)."""
    return name.split(".", 1)[0] in PRETRAINED_LAYERS


def plan_backbone_load(
    model_shapes: Mapping[str, tuple[int, ...]],
    file_shapes: Mapping[str, tuple[int, ...]],
    replaced_prefixes: tuple[str, ...] = (),
    source: str = "backbone weights",
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Which entries an ImageNet HRNet-W32 file gives to a model (no tensors needed: shapes only).

    Args:
        model_shapes: Model state-dict key -> shape.
        file_shapes: File key -> shape.
        replaced_prefixes: Model key prefixes with no ImageNet counterpart (V blocks), allowed to stay unloaded.
        source: Name of the file for messages.

    Returns:
        ``(loaded, skipped, ignored, kept)``, as in :class:`BackboneLoadReport`.

    Raises:
        IncompatibleWeightsError: a shape differs, a backbone entry other than a V block or ``num_batches_tracked``
            is missing from the file, or nothing loads.
    """
    ignored = tuple(k for k in file_shapes if not in_backbone(k))
    skipped = tuple(k for k in file_shapes if in_backbone(k) and k not in model_shapes)
    mismatched = [
        f"{k}: file {tuple(file_shapes[k])} vs model {tuple(model_shapes[k])}"
        for k in file_shapes
        if in_backbone(k) and k in model_shapes and tuple(file_shapes[k]) != tuple(model_shapes[k])
    ]
    backbone = [k for k in model_shapes if in_backbone(k)]
    loaded = tuple(k for k in backbone if k in file_shapes)
    kept = tuple(k for k in backbone if k not in file_shapes)
    missing = [k for k in kept if not k.startswith(replaced_prefixes) and not k.endswith("num_batches_tracked")]
    if mismatched or missing or not loaded:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es), first: {mismatched[:3]}")
        if missing:
            parts.append(f"{len(missing)} backbone entries missing from the file, first: {missing[:3]}")
        if not loaded:
            parts.append("no entry of the stem or stages 1-3 found")
        raise IncompatibleWeightsError(
            f"{source} is not an HRNet-W32 ImageNet backbone for this model: "
            + "; ".join(parts)
            + ". Pass backbone_weights='imagenet' (timm/hrnet_w32.ms_in1k), a safetensors file in the same layout, "
            "'kaiming' or 'none'."
        )
    return loaded, skipped, ignored, kept


def download_imagenet_backbone(hub_file: HubFile = IMAGENET_HRNET_W32) -> tuple[Path, str | None]:
    """Download (or find in the Hugging Face cache) the ImageNet weights and check them against the Hub's sha256.

    Returns:
        The cached file and the verified sha256 (``None`` when the cache holds no ``blobs/<sha256>`` entry to
        compare with, e.g. a copy without symbolic links; a WARNING says so).

    Raises:
        WeightsNotFoundError: the repository, revision or file does not exist.
        HubUnavailableError: the Hub cannot be reached (or offline mode is on) and the file is not cached.
        ChecksumError: the file's sha256 differs from the LFS sha256 of the pinned commit.
    """
    try:
        path = download_file(hub_file.repo_id, hub_file.filename, hub_file.revision)
    except (HubUnavailableError, WeightsNotFoundError) as err:
        raise type(err)(
            f"{err} To train without the ImageNet initialisation, pass backbone_weights='kaiming' (posezoo train "
            "--backbone-weights kaiming: He-normal, as HRNet trains from scratch) or 'none' (the official "
            "N(0, 0.001)); or download the file elsewhere and pass its path."
        ) from err
    blob = path.resolve()
    what = f"{hub_file.filename} of {hub_file.repo_id}@{hub_file.revision}"
    if blob.parent.name == "blobs" and _SHA256.match(blob.name):
        verify_sha256(path, blob.name, what)
        return path, blob.name
    logger.warning(
        "%s: the cache has no blobs/<sha256> entry to compare with (sha256 %s, not verified)", what, sha256_file(path)
    )
    return path, None


def _replaced_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(f"{name}." for name, module in model.named_modules() if isinstance(module, VBlock))


@torch.no_grad()
def load_backbone_weights(model: nn.Module, weights: str | Path = "imagenet") -> BackboneLoadReport:
    """Initialise the stem and stages 1-3 of a VTTransPose / TransPose-H-S model from ImageNet HRNet-W32.

    Args:
        model: A :class:`~vttranspose.VTTransPose` (any width other than 32 will not fit).
        weights: ``"imagenet"`` (:data:`IMAGENET_HRNET_W32`, downloaded through huggingface_hub) or the path of a
            safetensors file in the same layout.

    Returns:
        The report (also logged: the counts at INFO, the model entries left at their initialisation at WARNING).

    Raises:
        InvalidInputError: ``weights`` is ``"none"`` or empty (nothing to load).
        WeightsNotFoundError, HubUnavailableError, ChecksumError: see :func:`download_imagenet_backbone`; a local
            path that does not exist.
        UnsafeWeightsError: a local file is a pickle, not safetensors.
        IncompatibleWeightsError: the file is not an HRNet-W32 backbone for this model (see
            :func:`plan_backbone_load`).
    """
    text = str(weights)
    if text in ("", "none"):
        raise InvalidInputError("backbone weights 'none' means no initialisation; do not call load_backbone_weights")
    if text == "imagenet":
        path, sha256 = download_imagenet_backbone()
        source = f"{IMAGENET_HRNET_W32.repo_id}@{IMAGENET_HRNET_W32.revision}"
    else:
        path, sha256, source = Path(text), None, text
    state = read_safetensors(path)
    target = model.state_dict()
    loaded, skipped, ignored, kept = plan_backbone_load(
        {k: tuple(v.shape) for k, v in target.items()},
        {k: tuple(v.shape) for k, v in state.items()},
        _replaced_prefixes(model),
        source,
    )
    for key in loaded:
        target[key].copy_(state[key].to(dtype=target[key].dtype))
    report = BackboneLoadReport(source, str(path), sha256, loaded, skipped, ignored, kept)
    logger.info("backbone initialisation: %s", report.summary())
    not_buffers = [k for k in kept if not k.endswith("num_batches_tracked")]
    if not_buffers:
        logger.warning(
            "backbone initialisation: %d backbone entries have no ImageNet counterpart (V blocks) and keep their "
            "random initialisation, first: %s",
            len(not_buffers),
            not_buffers[:3],
        )
    return report
