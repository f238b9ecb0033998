"""posecommon: what both posezoo model families share.

Keypoint metadata, preprocessing configs, generic layers, the model registry, MAC counting, weight loading, the
heatmap codec, top-down geometry, OKS and COCO evaluation, drawing, training and typed errors.
"""

from . import codecs, data, errors, evaluation, geometry, hub, layers, train
from .codecs import HeatmapCodec, TopDownCodec
from .config_utils import config_from_dict, config_to_dict, replace_config
from .errors import (
    BadImageError,
    ChecksumError,
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
from .flops import MacReport, count_macs, count_params
from .image import load_image
from .inference import inference_module, running_for_inference
from .keypoints import COCO17, KeypointSpec, generic_keypoint_spec
from .losses import KeypointMSELoss
from .model import PoseModel
from .pipeline import PosePipeline
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from .registry import ModelInfo, PaperFigures, WeightSpec, create_model, get_model_info, list_models, register_model
from .structures import PoseResult
from .train import TrainConfig, Trainer
from .visualize import draw_pose
from .weights import load_pretrained, load_state_dict_strict, read_safetensors

__version__ = "0.1.0"

__all__ = [
    "COCO17",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadImageError",
    "ChecksumError",
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
    "TopDownCodec",
    "TrainConfig",
    "Trainer",
    "UnknownModelError",
    "UnsafeWeightsError",
    "WeightSpec",
    "WeightsNotFoundError",
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
    "geometry",
    "get_model_info",
    "hub",
    "inference_module",
    "layers",
    "list_models",
    "load_image",
    "load_pretrained",
    "load_state_dict_strict",
    "oks",
    "oks_nms",
    "read_safetensors",
    "register_model",
    "replace_config",
    "results_to_coco",
    "running_for_inference",
    "train",
    "write_coco_results",
]
