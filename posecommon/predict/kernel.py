"""What a model family supplies to prediction (a :class:`PredictKernel`) and how a call runs (:class:`RunOptions`).

The predict door (:func:`~posecommon.predict.run_predict`) owns everything that is the same for every model:
inputs of every kind, batching, devices, streams and the image fields of the results. A family supplies only its
kernel: loaded images in, one :class:`~posecommon.PoseResult` per image out, in that image's pixels. The
two-stage :class:`~posecommon.PosePipeline`, ``posezoo predict`` and the COCO evaluation call kernels directly
with the images they already hold.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import InvalidInputError
from ..keypoints import KeypointSpec
from ..structures import PoseResult

__all__ = [
    "PredictKernel",
    "RunOptions",
    "autocast_context",
    "check_count",
    "check_fraction",
    "half_dtype",
    "model_device",
    "whole_image_box",
]


def check_count(name: str, value: Any) -> int:
    """``value`` as a positive int (a count or size option of ``predict``).

    Raises:
        InvalidInputError: it is not a positive integer (``True`` is not one).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]`` (a score or IoU threshold).

    Raises:
        InvalidInputError: it is not a number in ``[0, 1]`` (NaN is not).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}")
    return number


@dataclass(frozen=True)
class RunOptions:
    """How a ``predict`` call runs: the keywords every ``predict`` (and :class:`~posecommon.PosePipeline`) accepts
    beside the model's own prediction options.

    Args:
        batch_size: Images per forward pass (a top-down model crops every box of these images).
        device: Move the models there first, in place (``model.to(device)``); ``None`` keeps them where they are.
        half: Run the networks under :func:`torch.autocast`: float16 on CUDA, bfloat16 on CPU. Weights stay
            float32 and decoding runs in float32.
        bgr: Arrays and tensors are in BGR channel order (OpenCV's); files, URLs and PIL images are unaffected.
        stream: Return an iterator whatever the input (memory stays flat on long inputs).
        fuse: Run a cached copy of the model with BatchNorm folded and re-parameterisable convolutions merged
            (:mod:`posecommon.predict.inference`); outputs agree with the model's eval mode to float rounding.
        channels_last: Run in channels-last memory; ``None``: on CPU only.

    Raises:
        InvalidInputError: ``batch_size`` is not a positive integer, or ``device`` is not a torch device.
    """

    batch_size: int = 1
    device: torch.device | str | None = None
    half: bool = False
    bgr: bool = False
    stream: bool = False
    fuse: bool = True
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        check_count("batch_size", self.batch_size)
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise InvalidInputError(f"invalid device {self.device!r}: {err}") from err

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, i.e. the run keywords of ``predict``."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def split(cls, options: Mapping[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
        """``(RunOptions of the run keywords in options, the other keywords)``."""
        names = cls.names()
        run = cls(**{k: v for k, v in options.items() if k in names})
        return run, {k: v for k, v in options.items() if k not in names}


def half_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision ``half=True`` uses on ``device``: float16 on CUDA, bfloat16 elsewhere (CPU)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def autocast_context(device: torch.device, half: bool) -> AbstractContextManager[Any]:
    """``torch.autocast`` in :func:`half_dtype` when ``half``, else a no-op context.

    Autocast keeps the weights in float32 and runs convolutions and matrix products in the reduced precision
    (reductions, softmax and normalisation stay float32), so it needs no second copy of the model.
    """
    if not half:
        return nullcontext()
    return torch.autocast(device.type, dtype=half_dtype(device))


def model_device(model: nn.Module) -> torch.device:
    """The device of the first parameter (or buffer) of ``model``; CPU for a module without tensors."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def whole_image_box(pixels: torch.Tensor) -> torch.Tensor:
    """``(1, 4)`` box covering the whole ``(3, H, W)`` image: ``[-0.5, -0.5, W - 0.5, H - 0.5]`` (pixel centres are
    integers, so the image spans half a pixel beyond the outer centres)."""
    height, width = pixels.shape[-2:]
    return torch.tensor([[-0.5, -0.5, width - 0.5, height - 0.5]])


class PredictKernel(ABC):
    """A model's prediction on loaded images: ``kernel(images, inputs, run) -> one PoseResult per image``.

    Subclasses run their network(s) and decoding; they never read files, move models or build iterators (the
    door does). Per-image inputs (the person boxes of a top-down model) arrive in ``inputs``, one mapping per image
    holding the names of :attr:`per_image_inputs` that were given.

    Args:
        keypoint_spec: The keypoint set of the results.
        modules: The models the kernel runs (moved by ``device=``).
    """

    per_image_inputs: ClassVar[tuple[str, ...]] = ()
    """Names of the per-image inputs the kernel accepts (e.g. ``("boxes", "box_scores")``)."""

    def __init__(self, keypoint_spec: KeypointSpec, modules: Sequence[nn.Module]) -> None:
        self.keypoint_spec = keypoint_spec
        self.modules = tuple(modules)

    @abstractmethod
    def __call__(
        self, images: Sequence[torch.Tensor], inputs: Sequence[Mapping[str, Any]], run: RunOptions
    ) -> list[PoseResult]:
        """Predict on a batch of images.

        Args:
            images: ``(3, H_i, W_i)`` uint8 RGB tensors (any sizes).
            inputs: One mapping per image with its per-image inputs (empty when none were given).
            run: How to run (``half``, ``fuse``, ``channels_last`` matter here).

        Returns:
            One result per image, in its own pixels, on the model's device.
        """
