"""Optional dependencies (the ``posezoo[...]`` extras): checking that they are installed, without importing them."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from .errors import MissingDependencyError

__all__ = ["require_extra"]


def require_extra(extra: str, modules: Sequence[str], purpose: str) -> None:
    """Check that ``modules`` of the ``posezoo[extra]`` extra can be imported (``importlib.util.find_spec``).

    Args:
        extra: Name of the extra in ``pyproject.toml``, e.g. ``"onnx"``.
        modules: Top-level modules it provides.
        purpose: What needs them, for the message, e.g. ``"ONNX export"``.

    Raises:
        MissingDependencyError: some are missing; the message gives the pip command for a wheel and for a source
            install.
    """
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingDependencyError.for_extra(extra, missing, purpose)
