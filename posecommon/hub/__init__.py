"""Weights: Hub references, downloads, checksums, safe reading, strict loading, saving and publishing.

One path loads every weight file (:func:`load_pretrained`, what ``pretrained=`` runs): resolve the argument
(:mod:`.resolve`), download through ``huggingface_hub`` (:mod:`.download`), verify the sha256 and read safetensors
(:mod:`.files`), load strictly (:mod:`.load`). :mod:`.intersect` initialises a model from weights of another layout
by name and shape, as YOLO-Pose's ``--weights`` (``posezoo train --init-weights``). :mod:`.save` writes the same
layout back (``save_pretrained``, ``push_to_hub``) with a model card (:mod:`.card`); :mod:`.saved_config` validates
a ``config.json`` before anything acts on it. Failures are the typed errors of :mod:`posecommon.errors`, each saying
what to do. This package knows models only as ``nn.Module``; :class:`~posecommon.PoseModel` builds on it.
"""

from .card import render_model_card
from .download import download_file
from .files import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    read_safetensors,
    read_safetensors_metadata,
    sha256_file,
    verify_sha256,
)
from .ids import HUB_PREFIX, split_hub_reference, validate_filename, validate_hub_id, validate_revision
from .intersect import InitReport, init_weights_file, load_intersecting
from .load import LoadReport, load_pretrained, load_resolved, load_state_dict_strict, load_weights_file
from .resolve import ResolvedWeights, fetch_pretrained, resolve_pretrained
from .save import push_to_hub, save_pretrained
from .saved_config import validate_saved_config

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "HUB_PREFIX",
    "WEIGHTS_NAME",
    "InitReport",
    "LoadReport",
    "ResolvedWeights",
    "download_file",
    "fetch_pretrained",
    "init_weights_file",
    "load_intersecting",
    "load_pretrained",
    "load_resolved",
    "load_state_dict_strict",
    "load_weights_file",
    "push_to_hub",
    "read_safetensors",
    "read_safetensors_metadata",
    "render_model_card",
    "resolve_pretrained",
    "save_pretrained",
    "sha256_file",
    "split_hub_reference",
    "validate_filename",
    "validate_hub_id",
    "validate_revision",
    "validate_saved_config",
    "verify_sha256",
]
