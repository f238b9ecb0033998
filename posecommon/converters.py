"""Registry of converters from official checkpoints to posezoo models, filled by the model families.

posecommon never imports a model package; each family registers what it can convert (``drsinet`` the YOLO-Pose
checkpoints, ``vttranspose`` the TransPose-H-S one) with :func:`register_converter`, and :func:`get_converter`
imports the registered model packages on first use (through the model registry), so ``posezoo convert NAME`` finds
them by name.

A converter is called as ``convert(source, save_dir, model_name=None, **overrides)`` and returns ``(model,
report)``: the posezoo model holding the converted weights and a report with a ``summary()`` (one line) and
``details()`` (a list of lines). With ``save_dir`` it also writes the model with
:func:`~posecommon.hub.save_pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .config_utils import did_you_mean
from .errors import UnknownModelError

__all__ = ["ConverterInfo", "get_converter", "list_converters", "register_converter"]


@dataclass(frozen=True)
class ConverterInfo:
    """One registered converter.

    Args:
        name: Registry name, e.g. ``"yolo-pose"``.
        family: Model family that provides it.
        summary: One line: what it reads.
        models: Registry names it can produce (the first is the default when the file does not say).
        license: Licence of the weights it reads (SPDX id), recorded in the converted model's card.
        convert: The function (see the module docstring).
    """

    name: str
    family: str
    summary: str
    models: tuple[str, ...]
    license: str
    convert: Callable[..., tuple[Any, Any]]


FnT = TypeVar("FnT", bound=Callable[..., tuple[Any, Any]])

_CONVERTERS: dict[str, ConverterInfo] = {}


def register_converter(
    name: str, *, family: str, summary: str, models: tuple[str, ...], license: str
) -> Callable[[FnT], FnT]:
    """Decorator registering a converter function under ``name`` (see :class:`ConverterInfo`).

    Raises:
        ValueError: ``name`` is registered already by another function.
    """

    def decorator(fn: FnT) -> FnT:
        existing = _CONVERTERS.get(name)
        if existing is not None and existing.convert.__qualname__ != fn.__qualname__:
            raise ValueError(f"converter {name!r} is registered twice")
        _CONVERTERS[name] = ConverterInfo(name, family, summary, tuple(models), license, fn)
        return fn

    return decorator


def _load() -> None:
    from .registry import list_models

    list_models()  # imports the model packages, whose modules register their converters


def list_converters() -> list[str]:
    """Sorted names of the registered converters."""
    _load()
    return sorted(_CONVERTERS)


def get_converter(name: str) -> ConverterInfo:
    """The :class:`ConverterInfo` registered as ``name``.

    Raises:
        UnknownModelError: no converter has that name (the message lists the registered ones).
    """
    _load()
    if name not in _CONVERTERS:
        known = sorted(_CONVERTERS)
        raise UnknownModelError(
            f"unknown converter {name!r};{did_you_mean(name, known)} registered converters are: "
            f"{', '.join(known) or '(none)'}"
        )
    return _CONVERTERS[name]
