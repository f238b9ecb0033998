"""The module a predict kernel runs: a cached, fused (and on CPU channels-last) copy of a model.

Kernels fold BatchNorm (and merge AsymmetricConv) by default without touching the user's model:
:func:`inference_module` returns a deep copy, fused and in eval mode, and keeps it (weakly keyed by the model) until
the model's weights change. A change is detected from each parameter and buffer's identity, storage, device, dtype
and in-place version counter, so an optimiser step, ``load_state_dict``, ``.to(...)`` or replacing a layer all
trigger a rebuild on the next call. Writes through a tensor's ``.data`` bypass the version counter and are not seen;
write under ``torch.no_grad()`` instead. The copy costs one model's worth of memory; ``fuse=False`` runs the model
itself.

``channels_last=None`` means channels-last on CPU (faster there for both families) and the default layout
elsewhere. On CPU a batch runs in chunks of at most :data:`CPU_CHUNK_PIXELS` input pixels, with the outputs of one
call: large fresh maps cost page faults in glibc's allocator, which the chunks avoid, while small crops still
batch. A model whose per-image time grows with the batch anyway sets its own ``cpu_chunk_pixels``. The
measurements behind both choices are in ``docs/benchmarks.md`` ("bf16 and batch scaling").
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

import torch
from torch import nn

from ..layers.fuse import fuse_model

__all__ = ["CPU_CHUNK_PIXELS", "ChannelsLastInput", "inference_module", "running_for_inference", "weights_key"]

CPU_CHUNK_PIXELS = 640 * 640
"""Largest number of input pixels (batch x H x W, at least one image) per forward call on CPU (module docstring)."""

_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, nn.Module]] = weakref.WeakKeyDictionary()


def _cat_outputs(parts: list[Any]) -> Any:
    """Concatenate per-chunk outputs along the batch: tensors, and lists/tuples/dicts of them (recursively)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {key: _cat_outputs([part[key] for part in parts]) for key in first}
    if isinstance(first, (list, tuple)):
        merged = [_cat_outputs(list(items)) for items in zip(*parts, strict=True)]
        return type(first)(merged) if isinstance(first, list) else tuple(merged)
    raise TypeError(f"cannot concatenate model outputs of type {type(first).__name__} along the batch")


class ChannelsLastInput(nn.Module):
    """Runs ``module`` on its input converted to channels-last memory, in chunks of at most ``max_pixels`` pixels.

    Values are unchanged; the chunks' outputs are concatenated along the batch (tensors and lists, tuples or dicts
    of tensors), which equals one call for a module that treats every image independently (see the module
    docstring for why chunks are faster on CPU).

    Args:
        module: A module whose weights are already channels-last.
        max_pixels: Largest ``batch x H x W`` per call (at least one image per call); ``None`` runs the whole
            batch at once.

    Shape:
        - Input: ``(B, C, H, W)`` in any memory layout
        - Output: whatever ``module`` returns
    """

    def __init__(self, module: nn.Module, max_pixels: int | None = CPU_CHUNK_PIXELS) -> None:
        super().__init__()
        self.module = module
        self.max_pixels = max_pixels

    def images_per_call(self, batch: int, size: tuple[int, int]) -> int:
        """How many of ``batch`` images of ``size`` ``(H, W)`` one forward call runs (at least one)."""
        if self.max_pixels is None:
            return batch
        return min(batch, max(1, self.max_pixels // (size[0] * size[1])))

    def forward(self, x: torch.Tensor) -> object:
        x = x.contiguous(memory_format=torch.channels_last)
        per_call = self.images_per_call(x.shape[0], (x.shape[-2], x.shape[-1]))
        if x.shape[0] <= per_call:
            return self.module(x)
        return _cat_outputs([self.module(chunk) for chunk in torch.split(x, per_call)])


def weights_key(model: nn.Module) -> tuple[Hashable, ...] | None:
    """A value that changes whenever any parameter or buffer of ``model`` is replaced, moved or modified in place.

    Returns:
        The key, or ``None`` when a tensor has no version counter (tensors created under
        ``torch.inference_mode``); then nothing can be cached.
    """
    try:
        return tuple(
            (id(t), t.data_ptr(), t._version, str(t.device), t.dtype)
            for t in chain(model.parameters(), model.buffers())
        )
    except RuntimeError:
        return None


def _default_channels_last(model: nn.Module) -> bool:
    first = next(chain(model.parameters(), model.buffers()), None)
    return first is None or first.device.type == "cpu"


@torch.no_grad()
def _build(model: nn.Module, fuse: bool, channels_last: bool) -> nn.Module:
    module = copy.deepcopy(model)
    for param in module.parameters():
        param.grad = None
        param.requires_grad_(False)
    if fuse:
        fuse_fn = getattr(module, "fuse", None)
        if callable(fuse_fn):
            fuse_fn()
        else:
            fuse_model(module)
    module.eval()
    if channels_last:
        budget = getattr(module, "cpu_chunk_pixels", CPU_CHUNK_PIXELS)
        return ChannelsLastInput(module.to(memory_format=torch.channels_last), budget).eval()
    return module


def inference_module(model: nn.Module, fuse: bool = True, channels_last: bool | None = None) -> nn.Module:
    """The module to run for inference: ``model`` itself, or a cached fused / channels-last copy of it.

    Args:
        model: Any model; fusion uses its ``fuse()`` method when it has one, else
            :func:`~posecommon.layers.fuse_model`.
        fuse: Fold BatchNorm and merge re-parameterisable convolutions in a copy (outputs agree with ``model``'s
            eval-mode outputs to float rounding).
        channels_last: Run the copy with channels-last weights and inputs; ``None`` chooses (CPU: yes).

    Returns:
        ``model`` when neither option applies (the caller switches it to eval mode), else an eval-mode copy that
        is reused until the weights of ``model`` change (see the module docstring).
    """
    if channels_last is None:
        channels_last = _default_channels_last(model)
    if not fuse and not channels_last:
        return model
    weights = weights_key(model)
    if weights is None:
        return _build(model, fuse, channels_last)
    key = (fuse, channels_last, weights)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    module = _build(model, fuse, channels_last)
    _CACHE[model] = (key, module)
    return module


@contextmanager
def running_for_inference(
    model: nn.Module, fuse: bool = True, channels_last: bool | None = None
) -> Iterator[nn.Module]:
    """Context giving :func:`inference_module`'s module in eval mode; ``model``'s own train/eval mode is restored.

    Example::

        with running_for_inference(model) as net:
            outputs = net(x)
    """
    module = inference_module(model, fuse, channels_last)
    was_training = model.training
    model.eval()
    try:
        yield module
    finally:
        model.train(was_training)
