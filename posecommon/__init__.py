"""posecommon: what both posezoo model families share.

Keypoint metadata, preprocessing configs, generic layers, the model registry, MAC counting, weight loading and
typed errors.
"""

from . import errors, layers
from .config_utils import config_from_dict, config_to_dict, replace_config
from .errors import (
    BadImageError,
    ChecksumError,
    DatasetError,
    HubUnavailableError,
    IncompatibleWeightsError,
    InvalidInputError,
    PosezooError,
    UnknownModelError,
    UnsafeWeightsError,
    WeightsNotFoundError,
)
from .flops import MacReport, count_macs, count_params
from .keypoints import COCO17, KeypointSpec, generic_keypoint_spec
from .model import PoseModel
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from .registry import ModelInfo, PaperFigures, WeightSpec, create_model, get_model_info, list_models, register_model
from .weights import load_pretrained, load_state_dict_strict, read_safetensors

__version__ = "0.1.0"

__all__ = [
    "COCO17",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadImageError",
    "ChecksumError",
    "DatasetError",
    "HubUnavailableError",
    "IncompatibleWeightsError",
    "InvalidInputError",
    "KeypointSpec",
    "MacReport",
    "ModelInfo",
    "PaperFigures",
    "PoseModel",
    "PosezooError",
    "PreprocessConfig",
    "UnknownModelError",
    "UnsafeWeightsError",
    "WeightSpec",
    "WeightsNotFoundError",
    "config_from_dict",
    "config_to_dict",
    "count_macs",
    "count_params",
    "create_model",
    "errors",
    "generic_keypoint_spec",
    "get_model_info",
    "layers",
    "list_models",
    "load_pretrained",
    "load_state_dict_strict",
    "read_safetensors",
    "register_model",
    "replace_config",
]
