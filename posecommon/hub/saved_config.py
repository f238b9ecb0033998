"""Validation of the ``config.json`` that ``save_pretrained`` writes (and ``from_pretrained`` trusts).

``config.json`` comes from wherever the weights came from, so it is checked before anything acts on it: every
top-level field must be one posezoo writes, with the type it writes. The model's ``config`` object is checked
against the model's config dataclass later, when the model is built (:func:`posecommon.config.replace_config`
refuses unknown fields, so no entry can reach the entrypoint as another keyword such as ``pretrained``).

Fields (``format_version`` 1; the first two are required):

* ``model_name``: registry name (string).
* ``config``: object with the fields of the model's config dataclass.
* ``keypoint_spec``: object (:meth:`posecommon.KeypointSpec.to_dict`).
* ``preprocess``: object (:meth:`posecommon.PreprocessConfig.to_dict`).
* ``format_version``: integer, at most the version this posezoo writes.
* ``weights``: object with ``filename`` (string) and ``sha256`` (64 lowercase hex digits).
* ``training_data``, ``license``: strings.
* ``metrics``: object of numbers.
* ``source``: object with ``repo_id`` (string), ``revision`` (string or null) and ``commit`` (40 hex digits): the
  Hub weights the model was loaded from.
* ``converted_from``: object with ``file`` (string), ``sha256`` (64 lowercase hex digits) and ``origin`` (string):
  the official checkpoint a converter (:func:`posecommon.registry.register_converter`) read the weights from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..config import did_you_mean
from ..errors import ConfigError

__all__ = ["SAVED_FIELDS", "validate_saved_config"]

SAVED_FIELDS: dict[str, type] = {
    "model_name": str,
    "config": dict,
    "keypoint_spec": dict,
    "preprocess": dict,
    "format_version": int,
    "weights": dict,
    "training_data": str,
    "metrics": dict,
    "license": str,
    "source": dict,
    "converted_from": dict,
}
"""Top-level fields of ``config.json`` and their JSON types."""

_REQUIRED = ("model_name", "config")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_JSON_TYPE = {str: "a string", dict: "an object", int: "an integer"}


def _fail(where: str, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: field {field!r} {problem}", field)


def _check_keys(where: str, parent: str, value: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            name = f"{parent}.{key}" if parent else key
            raise _fail(
                where, name, f"is not a field posezoo writes;{did_you_mean(key, allowed)} known: {', '.join(allowed)}"
            )


def _check_type(where: str, field: str, value: Any, expected: type) -> None:
    if isinstance(value, bool) or not isinstance(value, expected):
        raise _fail(where, field, f"must be {_JSON_TYPE[expected]}, got {type(value).__name__} {value!r:.60}")


def validate_saved_config(config: Any, where: str, format_version: int) -> None:
    """Check the top level of a ``config.json`` (see the module docstring for the fields).

    Args:
        config: The parsed JSON.
        where: Description for messages, e.g. ``"config.json of runs/x"``.
        format_version: The newest layout this posezoo reads.

    Raises:
        ConfigError: a field is unknown, missing, of the wrong type or malformed; the message names it.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{where} is not a posezoo config: expected a JSON object, got {type(config).__name__}")
    for field in _REQUIRED:
        if field not in config:
            raise _fail(
                where,
                field,
                "is missing; a posezoo config.json (written by save_pretrained) has 'model_name' and 'config'",
            )
    _check_keys(where, "", config, tuple(SAVED_FIELDS))
    for field, expected in SAVED_FIELDS.items():
        if field in config:
            _check_type(where, field, config[field], expected)
    version = config.get("format_version", 1)
    if version > format_version:
        raise _fail(
            where, "format_version", f"is {version}, newer than this posezoo reads ({format_version}); upgrade posezoo"
        )
    for key, value in config.get("metrics", {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, f"metrics.{key}", f"must be a number, got {type(value).__name__} {value!r:.60}")
    weights = config.get("weights", {})
    _check_keys(where, "weights", weights, ("filename", "sha256"))
    if "filename" in weights:
        _check_type(where, "weights.filename", weights["filename"], str)
    sha256 = weights.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        raise _fail(where, "weights.sha256", f"must be 64 lowercase hex digits, got {sha256!r:.80}")
    source = config.get("source", {})
    _check_keys(where, "source", source, ("repo_id", "revision", "commit"))
    if source:
        _check_type(where, "source.repo_id", source.get("repo_id"), str)
        if source.get("revision") is not None:
            _check_type(where, "source.revision", source["revision"], str)
        commit = source.get("commit")
        if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
            raise _fail(where, "source.commit", f"must be a 40-hex commit hash, got {commit!r:.60}")
    converted = config.get("converted_from", {})
    _check_keys(where, "converted_from", converted, ("file", "sha256", "origin"))
    if converted:
        for key in ("file", "origin"):
            _check_type(where, f"converted_from.{key}", converted.get(key), str)
        digest = converted.get("sha256")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _fail(where, "converted_from.sha256", f"must be 64 lowercase hex digits, got {digest!r:.80}")
