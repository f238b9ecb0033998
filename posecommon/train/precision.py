"""Mixed precision of a training run: ``auto``, ``fp16``, ``bf16`` or ``none``.

- ``fp16``: float16 autocast with a gradient scaler, CUDA only (what YOLOv5's train.py does on a GPU,
  ``train.py:243``, ``:304``).
- ``bf16``: bfloat16 autocast on the training device, CPU or CUDA; no gradient scaler (bfloat16 has float32's
  exponent range).
- ``auto``: ``fp16`` on CUDA, ``none`` elsewhere.
- ``none``: float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError

__all__ = ["AMP_MODES", "Precision", "resolve_precision"]

AMP_MODES = ("auto", "fp16", "bf16", "none")


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: ``autocast_dtype`` (None: float32) and whether gradients are scaled."""

    mode: str
    autocast_dtype: torch.dtype | None
    grad_scaling: bool

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast context of the forward pass and loss (disabled for float32)."""
        dtype = self.autocast_dtype or torch.float32
        return torch.autocast(device.type, dtype=dtype, enabled=self.autocast_dtype is not None)


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """The :class:`Precision` of ``mode`` on ``device``.

    Raises:
        InvalidInputError: unknown mode, ``fp16`` off CUDA, or ``bf16`` on a GPU without bfloat16.
    """
    if mode not in AMP_MODES:
        raise InvalidInputError(f"unknown amp mode {mode!r}; choose one of {', '.join(AMP_MODES)}")
    cuda = device.type == "cuda"
    if mode == "auto":
        mode = "fp16" if cuda else "none"
    if mode == "fp16":
        if not cuda:
            raise InvalidInputError(f"amp fp16 needs a CUDA device (training on {device}); use bf16 on a CPU")
        return Precision("fp16", torch.float16, True)
    if mode == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise InvalidInputError(f"{device} does not support bfloat16; use --amp fp16")
        return Precision("bf16", torch.bfloat16, False)
    return Precision("none", None, False)
