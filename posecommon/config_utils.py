"""Helpers shared by the per-family config dataclasses: JSON round trip and checked overrides.

Configs are frozen dataclasses whose fields are ints, floats, strings, tuples and nested config dataclasses,
so they serialise to plain JSON. Tuples are restored from JSON lists by looking at the field annotations.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

__all__ = ["config_from_dict", "config_to_dict", "replace_config"]

ConfigT = TypeVar("ConfigT")


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def replace_config(config: ConfigT, **overrides: Any) -> ConfigT:
    """Return a copy of ``config`` with ``overrides`` applied.

    Raises:
        TypeError: an override names no field of the config; the message lists the valid fields.
    """
    valid = _field_names(type(config))
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field(s) {unknown}; valid fields are: {', '.join(valid)}")
    return dataclasses.replace(config, **overrides)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Convert a config dataclass (possibly nested) to a JSON-able ``dict``."""
    return _to_jsonable(config)


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


def config_from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
    """Build ``cls`` from a dict written by :func:`config_to_dict`.

    Raises:
        TypeError: ``data`` has keys that are not fields of ``cls`` (the message names them).
    """
    valid = _field_names(cls)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}; valid fields are: {', '.join(valid)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _from_jsonable(hints[name], value) for name, value in data.items()}
    return cls(**kwargs)


def _from_jsonable(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in args if a is not type(None)]
        for candidate in candidates:
            if dataclasses.is_dataclass(candidate) and isinstance(value, dict):
                return config_from_dict(candidate, value)
        for candidate in candidates:
            if typing.get_origin(candidate) is tuple and isinstance(value, list):
                return _from_jsonable(candidate, value)
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return config_from_dict(annotation, value)
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_jsonable(args[0], v) for v in value)
        if args:
            return tuple(_from_jsonable(a, v) for a, v in zip(args, value, strict=True))
        return tuple(value)
    return value
