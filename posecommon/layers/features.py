"""Multi-scale feature maps of a network for reuse in other networks, with timm's conventions.

A model that offers its feature maps has

- ``feature_info``: a :class:`FeatureInfo`, one dict per map, ``{"num_chs": channels, "reduction": stride,
  "module": name of the module whose output it is}`` (timm's form), with :meth:`FeatureInfo.channels` and
  :meth:`FeatureInfo.reduction` as on timm's ``FeatureInfo``;
- ``forward_features(x)``: the features its head takes;
- ``forward_intermediates(x, indices=None, intermediates_only=False)``: the maps of ``feature_info`` selected by
  ``indices`` (:func:`take_indices`), returned as ``(forward_features(x), maps)``, or only the list of maps with
  ``intermediates_only=True`` (then the parts after the last selected map need not run), as timm's
  ``forward_intermediates``.

The maps each model offers are listed on the docs page "Backbones in other networks" (``docs/features.md``).

:class:`FeatureListNet` is what an entrypoint returns with ``features_only=True`` (timm's ``FeatureListNet``): the
model without its head, whose ``forward`` returns the list of maps at ``out_indices``. Its parameters keep the
model's names, so a full model's state dict (minus the head) loads into it and its own state dict loads back into a
full model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["FeatureInfo", "FeatureListNet", "take_indices"]


class FeatureInfo(list):
    """The maps a network offers: a list of ``{"num_chs", "reduction", "module"}`` dicts, ordered from the input
    side; :meth:`channels` and :meth:`reduction` read one field of every map (or of map ``index``)."""

    def __init__(self, maps: Iterable[dict[str, Any]]) -> None:
        super().__init__(dict(m) for m in maps)
        for entry in self:
            missing = {"num_chs", "reduction", "module"} - set(entry)
            if missing:
                raise ValueError(f"feature_info entry {entry} lacks {sorted(missing)}")

    def channels(self, index: int | None = None) -> list[int] | int:
        """Channels of every map, or of map ``index``."""
        return self.get("num_chs", index)

    def reduction(self, index: int | None = None) -> list[int] | int:
        """Stride (input size / map size) of every map, or of map ``index``."""
        return self.get("reduction", index)

    def module_name(self, index: int | None = None) -> list[str] | str:
        """Name of the module whose output each map is (or map ``index``)."""
        return self.get("module", index)

    def get(self, key: str, index: int | None = None) -> Any:
        """Field ``key`` of every map, or of map ``index``."""
        if index is None:
            return [entry[key] for entry in self]
        return self[index][key]

    def select(self, indices: Sequence[int]) -> FeatureInfo:
        """The entries of ``indices``, in that order."""
        return FeatureInfo(self[i] for i in indices)


def take_indices(count: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """Resolve timm's ``indices`` argument for a network with ``count`` maps.

    Args:
        count: Number of maps (``len(feature_info)``).
        indices: ``None``: all; an int ``n``: the last ``n``; a sequence: those indices (negative ones count from
            the end), in the given order.

    Returns:
        The indices as non-negative ints, and the largest of them (where a network can stop early).

    Raises:
        IndexError: an index is out of range, or ``n`` is not in ``1..count``.
    """
    if indices is None:
        chosen = list(range(count))
    elif isinstance(indices, int):
        if not 1 <= indices <= count:
            raise IndexError(f"indices={indices} asks for the last {indices} maps of {count}")
        chosen = list(range(count - indices, count))
    else:
        chosen = []
        for index in indices:
            if not -count <= int(index) < count:
                raise IndexError(f"feature index {index} out of range for {count} maps")
            chosen.append(int(index) % count)
    if not chosen:
        raise IndexError("no feature map selected")
    return chosen, max(chosen)


class FeatureListNet(nn.Module):
    """A model without its head, returning the list of its feature maps at ``out_indices``.

    Built by the entrypoints with ``features_only=True`` (through :func:`posecommon.model.build_model`). The
    model's submodules other than ``head_modules`` (and its own parameters) are registered here under the same
    names, shared with the model, whose head is replaced by ``nn.Identity``; the forward pass is the model's
    ``forward_intermediates`` on them.

    Args:
        model: A network with ``feature_info`` and ``forward_intermediates``.
        out_indices: Maps to return (as ``indices`` of :func:`take_indices`); ``None``: all.
        head_modules: Names of the model's children that form the head (left out).

    Raises:
        ValueError: the model keeps buffers outside its submodules (they could not be shared).

    Attributes:
        feature_info: The :class:`FeatureInfo` of the returned maps only.
        out_indices: The resolved indices into the model's ``feature_info``.

    Shape:
        - Input: what the model takes, ``(B, 3, H, W)``
        - Output: list of ``(B, feature_info.channels()[i], H / s_i, W / s_i)`` with ``s_i =
          feature_info.reduction()[i]`` (rounded up where the model's convolutions round up)
    """

    def __init__(
        self, model: nn.Module, out_indices: int | Sequence[int] | None = None, head_modules: Sequence[str] = ()
    ) -> None:
        super().__init__()
        info = FeatureInfo(model.feature_info)
        self.out_indices, _ = take_indices(len(info), out_indices)
        self.feature_info = info.select(self.out_indices)
        for name, child in model.named_children():
            if name not in head_modules:
                self.add_module(name, child)
        for name, parameter in model.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        if next(model.named_buffers(recurse=False), None) is not None:
            raise ValueError(
                f"{type(model).__name__} keeps buffers outside its submodules; FeatureListNet cannot share them"
            )
        for name in head_modules:  # the head is dropped, not kept in a hidden copy
            if name in model._modules:
                setattr(model, name, nn.Identity())
        object.__setattr__(self, "_network", model)  # not a submodule: its children are registered above
        self.model_name = getattr(model, "model_name", "")
        self.config = getattr(model, "config", None)
        self.head_prefixes: tuple[str, ...] = tuple(f"{name}." for name in head_modules)
        self.head_weights_ignored = True
        """Weights loaded into it ignore the entries under :attr:`head_prefixes` (``posecommon.hub``)."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        network = self._network
        network.training = self.training
        return network.forward_intermediates(x, indices=self.out_indices, intermediates_only=True)
