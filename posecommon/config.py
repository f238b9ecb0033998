"""Helpers shared by the per-family config dataclasses: JSON round trip, checked overrides and field validation.

Configs are frozen dataclasses whose fields are ints, floats, strings, tuples and nested config dataclasses,
so they serialise to plain JSON. Every way of making a config checks it against the dataclass:

* :func:`replace_config` and :func:`config_from_dict` refuse names that are not fields ("unknown field 'x'; did
  you mean 'y'?"), so a ``config.json`` cannot smuggle other keyword arguments (such as ``pretrained``) into a
  model entrypoint.
* :func:`check_config_fields` (called by each family's ``__post_init__``, and by :func:`replace_config` for
  configs without one) checks every value against its annotation, turning JSON lists into the tuples the fields
  use, and names the field of a wrongly typed value.
* The family configs check their values and say what the nearest valid value is (:func:`nearest_multiples`,
  :func:`check_choice`).

Every failure is a :class:`~posecommon.errors.ConfigError` (a ``ValueError`` and a ``TypeError``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = [
    "check_choice",
    "check_config_fields",
    "config_for_keypoints",
    "config_from_dict",
    "config_to_dict",
    "did_you_mean",
    "nearest_multiples",
    "replace_config",
]

ConfigT = TypeVar("ConfigT")


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """``" did you mean 'x'?"`` for the closest of ``choices`` (``difflib``), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return " did you mean " + " or ".join(repr(c) for c in close) + "?"


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check_known(cls: type, names: Sequence[str]) -> None:
    valid = _field_names(cls)
    unknown = [n for n in names if n not in valid]
    if unknown:
        name = unknown[0]
        more = f" (and {len(unknown) - 1} more: {unknown[1:]})" if len(unknown) > 1 else ""
        raise ConfigError(
            f"{cls.__name__}: unknown field {name!r}{more};{did_you_mean(name, valid)} valid fields are: "
            f"{', '.join(valid)}",
            name,
        )


def replace_config(config: ConfigT, **overrides: Any) -> ConfigT:
    """Return a copy of ``config`` with ``overrides`` applied, checked against the dataclass.

    Raises:
        ConfigError: an override names no field (the message suggests the closest field and lists the valid
            ones), or a value has the wrong type or is invalid (the message names the field).
    """
    _check_known(type(config), list(overrides))
    result = dataclasses.replace(config, **overrides)
    check_config_fields(result)
    return result


def config_for_keypoints(base: ConfigT, keypoint_spec: Any = None, **overrides: Any) -> ConfigT:
    """:func:`replace_config` for a model entrypoint: a keypoint set implies ``num_joints``.

    Args:
        base: The variant's config (it has a ``num_joints`` field).
        keypoint_spec: The :class:`~posecommon.KeypointSpec` the model will predict, or ``None``.
        **overrides: Config overrides.

    Raises:
        ConfigError: ``num_joints`` contradicts ``keypoint_spec``, or see :func:`replace_config`.
    """
    if keypoint_spec is not None:
        joints = keypoint_spec.num_joints
        given = overrides.setdefault("num_joints", joints)
        if given != joints:
            raise ConfigError(
                f"num_joints={given!r} contradicts keypoint_spec {keypoint_spec.name!r}, which has {joints} joints; "
                f"pass num_joints={joints} or leave it out (the keypoint set implies it)",
                "num_joints",
            )
    return replace_config(base, **overrides)


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
    """Build ``cls`` from a dict written by :func:`config_to_dict`, checking every key and value.

    Raises:
        ConfigError: ``data`` is not a mapping, has keys that are not fields of ``cls``, or values of the wrong
            type or invalid (the message names the field).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be given as a JSON object, got {type(data).__name__}")
    _check_known(cls, list(data))
    hints = _hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{cls.__name__}.{name}") for name, value in data.items()}
    config = cls(**kwargs)
    check_config_fields(config)
    return config


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_config_fields(config: Any) -> None:
    """Check every field of a config dataclass against its annotation, in place.

    JSON lists become tuples, integers in float fields become floats and nested dicts become the nested config
    dataclass (frozen dataclasses are updated with ``object.__setattr__``). Called first in each family config's
    ``__post_init__``, so that directly built configs are checked too.

    Raises:
        ConfigError: a value does not fit its annotation; the message names ``Class.field`` and the value.
    """
    cls = type(config)
    hints = _hints(cls)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        coerced = _coerce(hints.get(f.name, Any), value, f"{cls.__name__}.{f.name}")
        if coerced is not value:
            object.__setattr__(config, f.name, coerced)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _wrong(where: str, annotation: Any, value: Any) -> ConfigError:
    return ConfigError(
        f"{where} must be {_type_name(annotation)}, got {type(value).__name__} {value!r:.80}", where.split(".")[-1]
    )


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    """``value`` checked against ``annotation`` (lists -> tuples, ints -> floats), or :class:`ConfigError`."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for candidate in (a for a in args if a is not type(None)):
            try:
                return _coerce(candidate, value, where)
            except ConfigError:
                continue
        raise _wrong(where, annotation, value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return config_from_dict(annotation, value)
        raise _wrong(where, annotation, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(where, annotation, value)
        if len(args) == 2 and args[1] is Ellipsis:
            items = tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        elif args:
            if len(value) != len(args):
                raise ConfigError(
                    f"{where} must have {len(args)} values ({_type_name(annotation)}), got {len(value)}: {value!r:.80}",
                    where.split(".")[-1],
                )
            items = tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        else:
            items = tuple(value)
        return items
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} must be one of {args}, got {value!r:.80}", where.split(".")[-1])
    if origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
        raise _wrong(where, annotation, value)
    if origin in (list, Sequence):
        if isinstance(value, (list, tuple)):
            return value
        raise _wrong(where, annotation, value)
    if origin is not None:  # other generics (callables, ...): not checked
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(where, annotation, value)
    if annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return value if type(value) is int else int(value)
        raise _wrong(where, annotation, value)
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return value if type(value) is float else float(value)
        raise _wrong(where, annotation, value)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _wrong(where, annotation, value)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise _wrong(where, annotation, value)
    return value


def check_choice(config: Any, name: str, choices: Sequence[str]) -> None:
    """Check that field ``name`` of ``config`` is one of ``choices``.

    Raises:
        ConfigError: it is not; the message lists the choices and suggests the closest one.
    """
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(
            f"{type(config).__name__}.{name} must be one of {tuple(choices)}, got {value!r};"
            + (did_you_mean(value, choices) or " none is close"),
            name,
        )


def nearest_multiples(values: Sequence[int], step: int, minimum: int | None = None) -> str:
    """The nearest valid sizes below and above ``values`` when every entry must be a multiple of ``step``.

    Args:
        values: The invalid sizes, e.g. ``(600, 600)``.
        step: Required divisor, e.g. 64.
        minimum: Smallest valid entry (default ``step``).

    Returns:
        E.g. ``"(576, 576) or (640, 640)"`` (one tuple when both roundings agree).
    """
    low_bound = step if minimum is None else minimum
    down = tuple(max(low_bound, v // step * step) for v in values)
    up = tuple(max(low_bound, math.ceil(v / step) * step) for v in values)
    return str(down) if down == up else f"{down} or {up}"
