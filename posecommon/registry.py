"""Registries of what the model families provide: their models, and the few tools posecommon needs from them.

Models. A family declares a table of :class:`ModelInfo` (paper figures, published weights) and registers each
entrypoint against it::

    MODELS = model_table("vttranspose", ModelInfo(name="vttranspose_h_s", family="vttranspose", summary=..., ...))

    @register_model(MODELS)
    def vttranspose_h_s(pretrained: bool | str = False, **kwargs: Any) -> VTTransPose:
        return build_model(VTTransPose, "vttranspose_h_s", pretrained, **kwargs)

Converters and providers. posecommon never imports a model package; where a tool needs something only a family has,
the family registers it: converters of official checkpoints with :func:`register_converter` (``posezoo convert
NAME`` finds them with :func:`get_converter`), and other tools' needs under a kind of :data:`PROVIDER_KINDS`
(``@register_provider("claim", "attention_scaling")``, looked up with :func:`get_provider`).

A converter is called as ``convert(source, save_dir, model_name=None, **overrides)`` and returns ``(model,
report)``: the posezoo model holding the converted weights and a report with a ``summary()`` (one line) and
``details()`` (a list of lines). With ``save_dir`` it also writes the model with
:func:`~posecommon.hub.save_pretrained`.

``list_models()``, ``create_model()`` and the provider lookups import the built-in model packages on first use,
so ``posecommon.create_model("drsi_net_s")`` works without importing :mod:`drsinet` first.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .config import did_you_mean
from .errors import InvalidInputError, UnknownModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "PROVIDER_KINDS",
    "ConverterInfo",
    "ModelInfo",
    "PaperFigures",
    "WeightSpec",
    "create_model",
    "get_converter",
    "get_model_info",
    "get_provider",
    "list_converters",
    "list_models",
    "list_providers",
    "model_table",
    "register_converter",
    "register_model",
    "register_provider",
    "unknown_model_message",
]

MODEL_PACKAGES = ("vttranspose", "drsinet")
"""Packages imported on first registry access so their ``@register_model`` decorators run."""


@dataclass(frozen=True)
class PaperFigures:
    """Figures a paper reports for one model at one input size.

    Args:
        params_m: Parameters in millions.
        macs_g: Multiply-accumulates in billions (what the papers call "GFLOPs").
        input_size: ``(H, W)`` the MACs refer to.
        ap: COCO keypoint AP the paper reports (0-100), if any.
        source: Where the figures come from, e.g. ``"VTTransPose paper, Table 3"``.
    """

    params_m: float | None
    macs_g: float | None
    input_size: tuple[int, int]
    ap: float | None = None
    source: str = ""


_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WeightSpec:
    """One published weight file, pinned and hashed (checked when the spec is made).

    Args:
        tag: Weight tag; ``"<model>.<tag>"`` names the weights.
        repo_id: Hugging Face Hub repository, ``"org/name"``.
        revision: Commit hash the file is pinned to.
        filename: Path of the safetensors file inside the repository.
        sha256: Hex digest the downloaded file must match.
        config: Config overrides the weights were trained with (kwargs of the entrypoint).
        metrics: Measured metrics of these weights, e.g. ``{"coco_val_ap": 71.2}``.
        license: Licence of the weights.

    Raises:
        InvalidInputError: the revision is not a 40-hex commit hash, the sha256 is not 64 lowercase hex digits, the
            file is not ``.safetensors``, the repo id is not a valid Hub id, or the tag is empty or has a dot.
    """

    tag: str
    repo_id: str
    revision: str
    filename: str
    sha256: str
    config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    license: str = ""

    def __post_init__(self) -> None:
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        where = f"WeightSpec {self.tag!r} ({self.repo_id}/{self.filename})"
        if not self.tag or "." in self.tag:
            raise InvalidInputError(f"{where}: the tag must be a non-empty name without dots, got {self.tag!r}")
        try:
            validate_repo_id(self.repo_id)
        except HFValidationError as err:
            raise InvalidInputError(f"{where}: repo_id is not a valid Hub id: {err}") from err
        if "/" not in self.repo_id:
            raise InvalidInputError(f"{where}: repo_id must be 'org/name', got {self.repo_id!r}")
        if not _COMMIT.fullmatch(self.revision):
            raise InvalidInputError(
                f"{where}: revision must be the 40-hex commit hash the file is pinned to (a branch or tag can move), "
                f"got {self.revision!r}"
            )
        if not _SHA256.fullmatch(self.sha256):
            raise InvalidInputError(f"{where}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if not self.filename.endswith(".safetensors"):
            raise InvalidInputError(f"{where}: published weights are safetensors only, got {self.filename!r}")


@dataclass(frozen=True)
class ModelInfo:
    """Everything the registry knows about one model entrypoint.

    Args:
        name: Registry name (= entrypoint function name).
        family: Package/family, ``"vttranspose"`` or ``"drsinet"``.
        summary: One line describing the model.
        paper: Paper figures at the reference input size, or ``None`` for models the paper gives none for.
        extra_figures: Further paper figures (e.g. another input size).
        weights: Published weights; the first one is the default for ``pretrained=True``.
    """

    name: str
    family: str
    summary: str
    paper: PaperFigures | None = None
    extra_figures: tuple[PaperFigures, ...] = ()
    weights: tuple[WeightSpec, ...] = ()

    def weight(self, tag: str | None = None) -> WeightSpec | None:
        """The weight spec with ``tag`` (the default one when ``tag`` is None), or None."""
        if not self.weights:
            return None
        if tag is None:
            return self.weights[0]
        return next((w for w in self.weights if w.tag == tag), None)


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


EntrypointT = TypeVar("EntrypointT", bound="Callable[..., nn.Module]")
ProviderT = TypeVar("ProviderT", bound="Callable[..., Any]")
ConverterT = TypeVar("ConverterT", bound="Callable[..., tuple[Any, Any]]")

PROVIDER_KINDS: dict[str, str] = {
    "claim": "a paper-claim measurement of the benchmark suite, called with the suite's settings",
}
"""Kinds of provider a family can register, with the contract of each."""

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_INFOS: dict[str, ModelInfo] = {}
_PROVIDERS: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in PROVIDER_KINDS}
_CONVERTERS: dict[str, ConverterInfo] = {}
_packages_loaded = False


def model_table(*infos: ModelInfo) -> dict[str, ModelInfo]:
    """``{info.name: info}`` for a family's models (the table :func:`register_model` reads).

    Raises:
        ValueError: two entries have the same name.
    """
    table = {info.name: info for info in infos}
    if len(table) != len(infos):
        raise ValueError(f"duplicate model names in {[info.name for info in infos]}")
    return table


def register_model(table: Mapping[str, ModelInfo]) -> Callable[[EntrypointT], EntrypointT]:
    """Decorator registering a model entrypoint under its function name with its entry of ``table``.

    Raises:
        ValueError: ``table`` has no entry for the function's name, or the name is registered already by another
            function.
    """

    def decorator(fn: EntrypointT) -> EntrypointT:
        name = fn.__name__
        if name not in table:
            raise ValueError(f"model {name!r} has no entry in its family's table ({', '.join(table)})")
        existing = _ENTRYPOINTS.get(name)
        if existing is not None and existing.__qualname__ != fn.__qualname__:
            raise ValueError(f"model {name!r} is registered twice ({existing.__module__} and {fn.__module__})")
        _ENTRYPOINTS[name] = fn
        _INFOS[name] = table[name]
        return fn

    return decorator


def register_provider(kind: str, name: str) -> Callable[[ProviderT], ProviderT]:
    """Decorator registering what a family provides to posecommon's tools under ``(kind, name)``.

    Args:
        kind: One of :data:`PROVIDER_KINDS`.
        name: The name tools and users ask for (e.g. ``posezoo convert NAME``).

    Raises:
        ValueError: an unknown kind, or the name is registered already for this kind by another function.
    """
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"unknown provider kind {kind!r}; known: {', '.join(PROVIDER_KINDS)}")

    def decorator(fn: ProviderT) -> ProviderT:
        existing = _PROVIDERS[kind].get(name)
        if existing is not None and existing.__qualname__ != fn.__qualname__:
            raise ValueError(f"{kind} {name!r} is registered twice ({existing.__module__} and {fn.__module__})")
        _PROVIDERS[kind][name] = fn
        return fn

    return decorator


def list_providers(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (the model packages are imported first)."""
    _load_model_packages()
    return sorted(_PROVIDERS[kind])


def get_provider(kind: str, name: str) -> Callable[..., Any]:
    """The function a family registered for ``(kind, name)``.

    Raises:
        InvalidInputError: nothing is registered under that name (the message lists what is).
    """
    known = list_providers(kind)
    if name not in known:
        raise InvalidInputError(f"unknown {kind} {name!r};{did_you_mean(name, known)} known: {', '.join(known)}")
    return _PROVIDERS[kind][name]


def _load_model_packages() -> None:
    global _packages_loaded
    if not _packages_loaded:
        for package in MODEL_PACKAGES:
            importlib.import_module(package)
        _packages_loaded = True


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered with a shell-style ``pattern`` (``"drsi_*"``)."""
    _load_model_packages()
    names = sorted(_ENTRYPOINTS)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def unknown_model_message(name: str, known: list[str]) -> str:
    """``"unknown model 'x'; did you mean 'y'? registered models are: ..."`` (closest names by ``difflib``)."""
    return f"unknown model {name!r};{did_you_mean(name, known)} registered models are: {', '.join(known) or '(none)'}"


def _lookup(name: str) -> str:
    _load_model_packages()
    if name not in _ENTRYPOINTS:
        raise UnknownModelError(unknown_model_message(name, sorted(_ENTRYPOINTS)))
    return name


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the registered names).
    """
    return _INFOS[_lookup(name)]


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: Registry name, e.g. ``"vttranspose_h_s"`` or ``"drsi_net_s"``.
        pretrained: ``False`` for random weights, ``True`` for the default published weights, a weight tag,
            a local ``.safetensors`` path or ``"hf-hub:org/repo[@revision]"``.
        **kwargs: Config overrides passed to the entrypoint (e.g. ``num_joints=5``).

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests the closest names and lists the
            registered ones).
        ConfigError: a keyword names no config field, or a value has the wrong type or is invalid.
    """
    return _ENTRYPOINTS[_lookup(name)](pretrained=pretrained, **kwargs)


def register_converter(
    name: str, *, family: str, summary: str, models: tuple[str, ...], license: str
) -> Callable[[ConverterT], ConverterT]:
    """Decorator registering a converter function under ``name`` (see :class:`ConverterInfo`).

    Raises:
        ValueError: ``name`` is registered already by another function.
    """

    def decorator(fn: ConverterT) -> ConverterT:
        existing = _CONVERTERS.get(name)
        if existing is not None and existing.convert.__qualname__ != fn.__qualname__:
            raise ValueError(f"converter {name!r} is registered twice")
        _CONVERTERS[name] = ConverterInfo(name, family, summary, tuple(models), license, fn)
        return fn

    return decorator


def list_converters() -> list[str]:
    """Sorted names of the registered converters."""
    _load_model_packages()
    return sorted(_CONVERTERS)


def get_converter(name: str) -> ConverterInfo:
    """The :class:`ConverterInfo` registered as ``name``.

    Raises:
        UnknownModelError: no converter has that name (the message lists the registered ones).
    """
    _load_model_packages()
    if name not in _CONVERTERS:
        known = sorted(_CONVERTERS)
        raise UnknownModelError(
            f"unknown converter {name!r};{did_you_mean(name, known)} registered converters are: "
            f"{', '.join(known) or '(none)'}"
        )
    return _CONVERTERS[name]
