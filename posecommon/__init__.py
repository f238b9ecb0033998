"""posecommon: what both posezoo model families share, below them, plus the ``posezoo`` application on top.

The library is grouped by responsibility (see ``docs/design/posecommon.md`` for the layer picture):
:mod:`~posecommon.predict` (the one predict door, kernels, pipeline), :mod:`~posecommon.hub` (weights),
:mod:`~posecommon.media` (images, video, downloads), :mod:`~posecommon.ops` (boxes, geometry, letterbox, NMS),
:mod:`~posecommon.codecs`, :mod:`~posecommon.layers`, :mod:`~posecommon.data`, :mod:`~posecommon.evaluation`,
:mod:`~posecommon.train` and :mod:`~posecommon.measure`; ``posecommon.app`` holds the command line and the benchmark
suite, which reach the model families only through the registry.

The package imports lazily (PEP 562): ``import posecommon`` is cheap, and each name below is imported from its
submodule on first use (``posecommon.PoseModel`` imports torch, ``posecommon.errors`` does not). This keeps
commands such as ``posezoo models`` and ``posezoo --help`` fast; the names and what they are do not change.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import codecs, data, errors, evaluation, hub, layers, measure, media, ops, predict, train
    from .codecs import HeatmapCodec, TopDownCodec
    from .config import config_from_dict, config_to_dict, replace_config
    from .errors import (
        BadImageError,
        ChecksumError,
        ConfigError,
        DatasetError,
        HubUnavailableError,
        IncompatibleWeightsError,
        InvalidInputError,
        MissingDependencyError,
        PosezooError,
        UnknownModelError,
        UnsafeWeightsError,
        WeightsNotFoundError,
    )
    from .evaluation import evaluate_coco, oks, oks_nms, results_to_coco, write_coco_results
    from .hub import load_pretrained, load_state_dict_strict, read_safetensors
    from .keypoints import COCO17, KeypointSpec, generic_keypoint_spec
    from .losses import KeypointMSELoss
    from .measure import MacReport, count_macs, count_params
    from .media.image import load_image
    from .model import PoseModel, build_model
    from .predict import PosePipeline, RunOptions, inference_module, running_for_inference
    from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
    from .registry import ModelInfo, PaperFigures, WeightSpec, create_model, get_model_info, list_models, register_model
    from .structures import PoseResult
    from .train import TrainConfig, Trainer
    from .visualize import draw_pose

__version__ = "0.1.0"

__all__ = [
    "COCO17",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadImageError",
    "ChecksumError",
    "ConfigError",
    "DatasetError",
    "HeatmapCodec",
    "HubUnavailableError",
    "IncompatibleWeightsError",
    "InvalidInputError",
    "KeypointMSELoss",
    "KeypointSpec",
    "MacReport",
    "MissingDependencyError",
    "ModelInfo",
    "PaperFigures",
    "PoseModel",
    "PosePipeline",
    "PoseResult",
    "PosezooError",
    "PreprocessConfig",
    "RunOptions",
    "TopDownCodec",
    "TrainConfig",
    "Trainer",
    "UnknownModelError",
    "UnsafeWeightsError",
    "WeightSpec",
    "WeightsNotFoundError",
    "build_model",
    "codecs",
    "config_from_dict",
    "config_to_dict",
    "count_macs",
    "count_params",
    "create_model",
    "data",
    "draw_pose",
    "errors",
    "evaluate_coco",
    "evaluation",
    "generic_keypoint_spec",
    "get_model_info",
    "hub",
    "inference_module",
    "layers",
    "list_models",
    "load_image",
    "load_pretrained",
    "load_state_dict_strict",
    "measure",
    "media",
    "oks",
    "oks_nms",
    "ops",
    "predict",
    "read_safetensors",
    "register_model",
    "replace_config",
    "results_to_coco",
    "running_for_inference",
    "train",
    "write_coco_results",
]


_SUBMODULES = (
    "codecs",
    "data",
    "errors",
    "evaluation",
    "hub",
    "layers",
    "measure",
    "media",
    "ops",
    "predict",
    "train",
)
_EXPORTS: dict[str, str] = {
    "HeatmapCodec": "codecs",
    "TopDownCodec": "codecs",
    "config_from_dict": "config",
    "config_to_dict": "config",
    "replace_config": "config",
    "BadImageError": "errors",
    "ChecksumError": "errors",
    "ConfigError": "errors",
    "DatasetError": "errors",
    "HubUnavailableError": "errors",
    "IncompatibleWeightsError": "errors",
    "InvalidInputError": "errors",
    "MissingDependencyError": "errors",
    "PosezooError": "errors",
    "UnknownModelError": "errors",
    "UnsafeWeightsError": "errors",
    "WeightsNotFoundError": "errors",
    "evaluate_coco": "evaluation",
    "oks": "evaluation",
    "oks_nms": "evaluation",
    "results_to_coco": "evaluation",
    "write_coco_results": "evaluation",
    "MacReport": "measure",
    "count_macs": "measure",
    "count_params": "measure",
    "load_image": "media.image",
    "PosePipeline": "predict",
    "RunOptions": "predict",
    "inference_module": "predict",
    "running_for_inference": "predict",
    "COCO17": "keypoints",
    "KeypointSpec": "keypoints",
    "generic_keypoint_spec": "keypoints",
    "KeypointMSELoss": "losses",
    "PoseModel": "model",
    "build_model": "model",
    "IMAGENET_MEAN": "preprocess",
    "IMAGENET_STD": "preprocess",
    "PreprocessConfig": "preprocess",
    "ModelInfo": "registry",
    "PaperFigures": "registry",
    "WeightSpec": "registry",
    "create_model": "registry",
    "get_model_info": "registry",
    "list_models": "registry",
    "register_model": "registry",
    "PoseResult": "structures",
    "TrainConfig": "train",
    "Trainer": "train",
    "draw_pose": "visualize",
    "load_pretrained": "hub",
    "load_state_dict_strict": "hub",
    "read_safetensors": "hub",
}
"""Public name -> submodule it is imported from on first use."""


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule) on first access and keep it in the module namespace."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif name in _SUBMODULES or (not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}")):
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
