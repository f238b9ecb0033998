"""The predict contract shared by every model family and :class:`~posecommon.PosePipeline`.

A family implements one function, ``predict_frames(frames) -> one PoseResult per frame``, for a batch of loaded
:class:`~posecommon.sources.Frame` objects, and its ``predict`` method calls :func:`run_predict`, which

- normalises the input with :func:`~posecommon.sources.open_source` (see there for what is accepted),
- reads frames lazily and hands them over ``batch_size`` at a time,
- fills each result's image fields (path, size, frame index, keypoint spec, and the pixels for in-memory inputs),
- returns one result for a single input, a list for a list, an iterator for a stream or with ``stream=True``.

Shared keyword arguments of every ``predict``: ``device`` (move the model there first, in place, as
``model.to(device)``; ``None`` keeps it where it is), ``half`` (run the network under :func:`torch.autocast`: float16
on CUDA, bfloat16 on CPU; decoding stays float32), ``batch_size``, ``bgr`` and ``stream``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import Any

import torch
from torch import nn

from ..errors import InvalidInputError
from ..keypoints import KeypointSpec
from ..structures import PoseResult
from .sources import Frame, Source, iter_frames

__all__ = [
    "autocast_context",
    "check_batch_size",
    "half_dtype",
    "move_to_device",
    "per_frame",
    "run_predict",
    "whole_image_box",
]

PredictFrames = Callable[[list[Frame]], list[PoseResult]]


def move_to_device(models: list[nn.Module], device: torch.device | str | None) -> torch.device:
    """Move ``models`` to ``device`` in place (when given) and return the device of the first one.

    Raises:
        InvalidInputError: ``device`` is not a valid torch device string.
    """
    if device is not None:
        try:
            target = torch.device(device)
        except RuntimeError as err:
            raise InvalidInputError(f"invalid device {device!r}: {err}") from err
        for model in models:
            model.to(target)
    first = next(iter(models[0].parameters()), None)
    return first.device if first is not None else torch.device("cpu")


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


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` as a positive int.

    Raises:
        InvalidInputError: it is not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def whole_image_box(pixels: torch.Tensor) -> torch.Tensor:
    """``(1, 4)`` box covering the whole ``(3, H, W)`` image: ``[-0.5, -0.5, W - 0.5, H - 0.5]`` (pixel centres are
    integers, so the image spans half a pixel beyond the outer centres)."""
    height, width = pixels.shape[-2:]
    return torch.tensor([[-0.5, -0.5, width - 0.5, height - 0.5]])


def per_frame(source: Source, values: Any, name: str) -> Callable[[Frame], Any]:
    """A per-image argument (such as top-down boxes) as a lookup by frame.

    For a single input, ``values`` belongs to that image; for a list input, ``values`` must be a sequence with one
    entry per image (``values[frame.index]``); ``None`` gives ``None`` for every frame.

    Raises:
        InvalidInputError: ``values`` is given for a stream, or its length differs from the list's.
    """
    if values is None:
        return lambda frame: None
    if source.kind == "single":
        return lambda frame: values
    if source.kind == "stream":
        raise InvalidInputError(f"{name} cannot be given for a stream input; pass a list, or one image at a time")
    if not hasattr(values, "__len__") or len(values) != source.length:
        count = len(values) if hasattr(values, "__len__") else type(values).__name__
        raise InvalidInputError(f"{name} must hold one entry per image: {source.length} images, got {count}")

    def lookup(frame: Frame) -> Any:
        if frame.index >= len(values):
            raise InvalidInputError(
                f"{name} has {len(values)} entries but the input has more images (a directory or video inside the "
                "list expands to several); pass one entry per resulting image"
            )
        return values[frame.index]

    return lookup


def _with_frame(result: PoseResult, frame: Frame, keypoint_spec: KeypointSpec | None) -> PoseResult:
    return dataclasses.replace(
        result,
        image_path=frame.path,
        image_size=(int(frame.pixels.shape[1]), int(frame.pixels.shape[2])),
        keypoint_spec=keypoint_spec if keypoint_spec is not None else result.keypoint_spec,
        frame_index=frame.frame_index,
        image=None if frame.from_file else frame.pixels,
    )


def _results(
    source: Source, predict_frames: PredictFrames, batch_size: int, keypoint_spec: KeypointSpec | None
) -> Iterator[PoseResult]:
    frames = iter_frames(source)
    while True:
        batch: list[Frame] = list(islice(frames, batch_size))  # type: ignore[arg-type]
        if not batch:
            return
        results = predict_frames(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"predict_frames returned {len(results)} results for {len(batch)} frames")
        for result, frame in zip(results, batch, strict=True):
            yield _with_frame(result, frame, keypoint_spec)


def run_predict(
    source: Source,
    predict_frames: PredictFrames,
    *,
    batch_size: int = 1,
    stream: bool = False,
    keypoint_spec: KeypointSpec | None = None,
) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
    """Run ``predict_frames`` over ``source`` and return what the contract says (see the module docstring).

    Args:
        source: From :func:`~posecommon.sources.open_source`.
        predict_frames: One result per frame of a batch, in order.
        batch_size: Frames per call of ``predict_frames``.
        stream: Return an iterator whatever the source kind.
        keypoint_spec: Set on every result (the model's keypoint set).

    Returns:
        A :class:`PoseResult` (single input), a list (list input), or an iterator (stream input or ``stream``).

    Raises:
        BadImageError: an image cannot be read (for iterators: when it is reached).
    """
    results = _results(source, predict_frames, check_batch_size(batch_size), keypoint_spec)
    if stream or source.kind == "stream":
        return results
    if source.kind == "single":
        return next(results)
    return list(results)
