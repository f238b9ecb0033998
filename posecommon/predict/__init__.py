"""Prediction: the one door every ``predict`` goes through, the kernels families supply, and the pipeline.

- :mod:`.sources`: what a user may pass (paths, directories, globs, URLs, arrays, videos, generators) -> frames.
- :mod:`.kernel`: :class:`PredictKernel` (a family's images -> results) and :class:`RunOptions` (batch, device,
  precision, stream, fusion: the keywords every ``predict`` takes).
- :mod:`.run`: :func:`run_predict`, the contract (one result, a list or an iterator) written once.
- :mod:`.inference`: the cached fused / channels-last copy of a model that kernels run.
- :mod:`.pipeline`: :class:`PosePipeline`, a detector kernel feeding a top-down kernel.
"""

from .inference import CPU_CHUNK_PIXELS, ChannelsLastInput, inference_module, running_for_inference, weights_key
from .kernel import (
    PredictKernel,
    RunOptions,
    autocast_context,
    check_count,
    check_fraction,
    half_dtype,
    model_device,
    whole_image_box,
)
from .pipeline import PosePipeline
from .run import build_kernel, move_to_device, predict_frames, run_predict
from .sources import IMAGE_SUFFIXES, Frame, Source, SourceFailure, iter_frames, open_source

__all__ = [
    "CPU_CHUNK_PIXELS",
    "IMAGE_SUFFIXES",
    "ChannelsLastInput",
    "Frame",
    "PosePipeline",
    "PredictKernel",
    "RunOptions",
    "Source",
    "SourceFailure",
    "autocast_context",
    "build_kernel",
    "check_count",
    "check_fraction",
    "half_dtype",
    "inference_module",
    "iter_frames",
    "model_device",
    "move_to_device",
    "open_source",
    "predict_frames",
    "run_predict",
    "running_for_inference",
    "weights_key",
    "whole_image_box",
]
