"""The predict door: one implementation of the contract every ``predict`` follows.

:func:`run_predict` (what ``model.predict`` and :class:`~posecommon.PosePipeline` call)

- splits the keywords into :class:`~posecommon.predict.RunOptions` and the model's prediction options, and builds
  the model's kernel from the latter (unknown names fail before anything is read);
- normalises the input with :func:`~posecommon.predict.sources.open_source` (see there for what is accepted);
- moves the models to ``device``, reads frames lazily and hands them to the kernel ``batch_size`` at a time;
- fills each result's image fields (path, size, frame index, keypoint spec, and the pixels for in-memory inputs);
- returns one result for a single input, a list for a list, an iterator for a stream or with ``stream=True``.

:func:`predict_frames` is the same step for frames a caller already holds (``posezoo predict``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import torch

from ..errors import InvalidInputError
from ..structures import PoseResult
from .kernel import PredictKernel, RunOptions
from .sources import Frame, Source, iter_frames, open_source

__all__ = ["build_kernel", "move_to_device", "predict_frames", "run_predict"]

KernelFactory = Callable[..., PredictKernel]


def build_kernel(factory: KernelFactory, options: Mapping[str, Any]) -> PredictKernel:
    """``factory(**options)``, with unknown option names reported as one line listing the valid ones.

    Raises:
        InvalidInputError: an option is not a keyword of ``factory`` (nor a run option).
    """
    parameters = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            valid = sorted(set(parameters) | set(RunOptions.names()))
            raise InvalidInputError(f"unknown predict option(s) {unknown}; valid: {valid}")
    return factory(**options)


def move_to_device(modules: Sequence[torch.nn.Module], device: torch.device | str | None) -> None:
    """Move ``modules`` to ``device`` in place (nothing when ``device`` is None)."""
    if device is None:
        return
    target = torch.device(device)
    for module in modules:
        module.to(target)


def _per_frame(source: Source, values: Any, name: str) -> Callable[[Frame], Any]:
    """A per-image input (such as top-down boxes) as a lookup by frame.

    For a single input, ``values`` belongs to that image; for a list input, ``values`` must be a sequence with one
    entry per image (``values[frame.index]``).

    Raises:
        InvalidInputError: ``values`` is given for a stream, or its length differs from the list's.
    """
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


def predict_frames(
    kernel: PredictKernel,
    frames: Sequence[Frame],
    run: RunOptions,
    inputs: Sequence[Mapping[str, Any]] | None = None,
) -> list[PoseResult]:
    """Run ``kernel`` on frames already loaded and fill the results' image fields.

    Args:
        kernel: The model's kernel.
        frames: Loaded frames (one forward pass: the caller batches).
        run: How to run.
        inputs: Per-image inputs of each frame (``None``: none).

    Returns:
        One result per frame, in order.
    """
    if not frames:
        return []
    results = kernel([frame.pixels for frame in frames], inputs or [{} for _ in frames], run)
    if len(results) != len(frames):
        raise RuntimeError(f"{type(kernel).__name__} returned {len(results)} results for {len(frames)} frames")
    return [
        dataclasses.replace(
            result,
            image_path=frame.path,
            image_size=(int(frame.pixels.shape[1]), int(frame.pixels.shape[2])),
            keypoint_spec=kernel.keypoint_spec,
            frame_index=frame.frame_index,
            image=None if frame.from_file else frame.pixels,
        )
        for result, frame in zip(results, frames, strict=True)
    ]


def _results(
    source: Source, kernel: PredictKernel, run: RunOptions, lookups: dict[str, Callable[[Frame], Any]]
) -> Iterator[PoseResult]:
    frames = iter_frames(source)
    while True:
        batch: list[Frame] = list(islice(frames, run.batch_size))  # type: ignore[arg-type]
        if not batch:
            return
        inputs = [{name: lookup(frame) for name, lookup in lookups.items()} for frame in batch]
        yield from predict_frames(kernel, batch, run, inputs)


def run_predict(
    kernel_factory: KernelFactory,
    source: Any,
    *,
    per_image: Mapping[str, Any] | None = None,
    **options: Any,
) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
    """Run a model's kernel over ``source`` and return what the contract says (see the module docstring).

    Args:
        kernel_factory: Builds the kernel from the prediction options (``model.predict_kernel``).
        source: Any input :func:`~posecommon.predict.sources.open_source` accepts.
        per_image: Per-image inputs by name (e.g. ``{"boxes": ...}``): for a single input the value of that image,
            for a list one value per image; ``None`` values are left out.
        **options: :class:`~posecommon.predict.RunOptions` fields and the kernel's own options.

    Returns:
        A :class:`~posecommon.PoseResult` (single input), a list (list input), or an iterator (stream input or
        ``stream=True``).

    Raises:
        InvalidInputError: an unknown option, a bad run option, or per-image inputs that do not fit the input.
        BadImageError: an image cannot be read (for iterators: when it is reached).
    """
    run, kernel_options = RunOptions.split(options)
    kernel = build_kernel(kernel_factory, kernel_options)
    opened = open_source(source, bgr=run.bgr)
    given = {name: value for name, value in (per_image or {}).items() if value is not None}
    lookups = {name: _per_frame(opened, value, name) for name, value in given.items()}
    move_to_device(kernel.modules, run.device)
    results = _results(opened, kernel, run, lookups)
    if run.stream or opened.kind == "stream":
        return results
    if opened.kind == "single":
        return next(results)
    return list(results)
