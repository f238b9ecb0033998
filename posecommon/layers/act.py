"""Activation layers chosen by name, so configs stay JSON-able."""

from __future__ import annotations

from functools import partial

from torch import nn

__all__ = ["ACTIVATIONS", "get_act"]

ACTIVATIONS: dict[str, type[nn.Module] | partial[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": partial(nn.LeakyReLU, 0.1),
    "identity": nn.Identity,
}
"""Name -> layer factory. ``leaky_relu`` uses a negative slope of 0.1 (YOLO convention)."""


def get_act(name: str | None, inplace: bool = False) -> nn.Module:
    """Instantiate the activation called ``name`` (``None`` or ``"identity"`` give :class:`torch.nn.Identity`).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name is None:
        return nn.Identity()
    try:
        factory = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
    if name in ("relu", "silu", "leaky_relu") and inplace:
        return factory(inplace=True)
    return factory()
