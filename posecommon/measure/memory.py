"""Peak CPU tensor memory of a call, from the PyTorch profiler's allocation events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_memory_bytes", "tensor_bytes"]


def peak_memory_bytes(fn: Callable[[], Any], resident_bytes: int = 0) -> int:
    """Peak CPU tensor memory while ``fn`` runs (profiler allocation events), plus ``resident_bytes``.

    Args:
        fn: The call to measure.
        resident_bytes: Memory held before the call that counts towards the peak (weights, inputs).
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            running += event.nbytes()
            peak = max(peak, running)
    return resident_bytes + peak


def tensor_bytes(module: nn.Module) -> int:
    """Bytes of the parameters and buffers of ``module``."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
