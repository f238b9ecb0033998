"""Activation recomputation: gradient checkpointing of whole blocks and selective recomputation inside one.

Both run :func:`torch.utils.checkpoint.checkpoint` non-reentrant: the forward keeps only what it is told to keep,
and when backward reaches the segment its forward runs again to regenerate the rest. Two things differ from a bare
``checkpoint`` call:

- BatchNorm running statistics are updated once per step, by the forward: the recomputation runs BatchNorm in
  training mode again, so the buffers of the segment's BatchNorms are saved before it and restored after it
  (:func:`restored_batchnorm_statistics`). Parameters, gradients and buffers then equal those of a step without
  recomputation.
- :func:`checkpoint_dense_convolutions` keeps the outputs of the dense convolutions (``groups == 1``) from the
  forward, so the recomputation runs only normalisations, activations, elementwise products and depthwise
  convolutions (selective activation checkpointing,
  :func:`torch.utils.checkpoint.create_selective_checkpoint_contexts`).

:func:`recomputation_applies` says when either is worth it: a training-mode module with gradients on, outside
``torch.compile`` (whose partitioner already recomputes cheap operations and does not need the eager mechanism),
tracing and ONNX export (which run the plain forward).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

__all__ = [
    "checkpoint_dense_convolutions",
    "checkpoint_module",
    "checkpoint_sequential",
    "recomputation_applies",
    "restored_batchnorm_statistics",
]

_CONVOLUTION = torch.ops.aten.convolution.default


def recomputation_applies(module: nn.Module) -> bool:
    """Whether ``module``'s forward should run under recomputation now (training, gradients on, eager)."""
    if not (module.training and torch.is_grad_enabled()):
        return False
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


@contextlib.contextmanager
def restored_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Restore the running statistics of ``module``'s training-mode BatchNorms on exit (the recomputation's)."""
    buffers = [
        buffer
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
        for buffer in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buffer is not None
    ]
    with torch.no_grad():
        saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)


def _keep_dense_convolution_outputs(ctx: Any, func: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Selective-checkpoint policy: keep the output of every ``groups == 1`` convolution, recompute the rest."""
    if func is _CONVOLUTION and args[8] == 1:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


@contextlib.contextmanager
def _recompute_context(module: nn.Module, inner: contextlib.AbstractContextManager[Any]) -> Iterator[None]:
    with restored_batchnorm_statistics(module), inner:  # buffers saved outside the selective-checkpoint mode
        yield


def _contexts(module: nn.Module, selective: bool) -> tuple[Any, Any]:
    if selective:
        forward, recompute = create_selective_checkpoint_contexts(_keep_dense_convolution_outputs)
    else:
        forward, recompute = contextlib.nullcontext(), contextlib.nullcontext()
    return forward, _recompute_context(module, recompute)


def checkpoint_module(module: nn.Module, *inputs: Any, function: Callable[..., Any] | None = None) -> Any:
    """Gradient checkpointing of ``module``: keep only its inputs, run its forward again in backward.

    Args:
        module: The segment (its BatchNorm statistics are restored after the recomputation).
        *inputs: Its inputs.
        function: What to run instead of ``module(*inputs)`` (a method of ``module``, for instance).
    """
    return checkpoint(
        function or module,
        *inputs,
        use_reentrant=False,
        context_fn=functools.partial(_contexts, module, False),
    )


def checkpoint_sequential(modules: Iterable[nn.Module], x: Any) -> Any:
    """Apply ``modules`` in order, each one checkpointed on its own (:func:`checkpoint_module`).

    Backward keeps one input per module and holds one module's activations at a time. A module with a
    ``forward_plain`` method (a block whose ``forward`` recomputes selectively) runs that instead: inside a
    checkpointed segment, nothing but the input is kept anyway.
    """
    for module in modules:
        x = checkpoint_module(module, x, function=getattr(module, "forward_plain", None))
    return x


def checkpoint_dense_convolutions(module: nn.Module, function: Callable[..., Any], *inputs: Any) -> Any:
    """Run ``function(*inputs)`` keeping only the inputs and the dense convolutions' outputs for backward.

    Everything else ``function`` computes (norms, activations, products, sums, depthwise convolutions) is
    recomputed from those when backward reaches it; the values are the same, so outputs and gradients are those of
    ``function`` run plainly (bitwise on CPU in our tests). ``function`` must not modify a dense convolution's
    output in place.

    Args:
        module: The module ``function`` belongs to (its BatchNorm statistics are restored after the recomputation).
        function: The forward to run.
        *inputs: Its inputs.
    """
    return checkpoint(
        function,
        *inputs,
        use_reentrant=False,
        context_fn=functools.partial(_contexts, module, True),
    )
