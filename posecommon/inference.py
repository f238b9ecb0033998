"""The module ``predict`` runs: a cached, fused (and on CPU channels-last) copy of a model.

``predict`` of both families folds BatchNorm (and merges AsymmetricConv) by default without touching the user's
model: :func:`inference_module` returns a deep copy, fused and in eval mode, and keeps it (weakly keyed by the
model) until the model's weights change. A change is detected from each parameter and buffer's identity, storage,
device, dtype and in-place version counter, so an optimiser step, ``load_state_dict``, ``.to(...)`` or replacing a
layer all trigger a rebuild on the next call, while repeated predictions reuse the copy. Writes through a tensor's
``.data`` attribute bypass the version counter and are not seen; write under ``torch.no_grad()`` instead. The copy
costs one model's worth of memory; pass ``fuse=False`` to run the model itself.

``channels_last=None`` (the default) means channels-last on CPU, where the benchmark suite measured it to help both
families (fused latency at batch 1, one thread: DRSI-Net-s 380 -> 331 ms, YOLO-Pose s6 271 -> 258 ms,
VTTransPose-H-S 147 -> 128 ms, TransPose-H-S 506 -> 502 ms), and the default layout elsewhere (not measured).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from itertools import chain

import torch
from torch import nn

from .layers.fuse import fuse_model

__all__ = ["ChannelsLastInput", "inference_module", "running_for_inference", "weights_key"]

_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, nn.Module]] = weakref.WeakKeyDictionary()


class ChannelsLastInput(nn.Module):
    """Runs ``module`` on its input converted to channels-last memory (values unchanged).

    Args:
        module: A module whose weights are already channels-last.

    Shape:
        - Input: ``(B, C, H, W)`` in any memory layout
        - Output: whatever ``module`` returns
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> object:
        return self.module(x.contiguous(memory_format=torch.channels_last))


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
        return ChannelsLastInput(module.to(memory_format=torch.channels_last)).eval()
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
