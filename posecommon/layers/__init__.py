"""Generic layers shared by the model packages (one idea per module, re-exported here), and the timm-style
feature-map interface (:mod:`.features`)."""

from .act import ACTIVATIONS, get_act
from .checkpoint import (
    checkpoint_dense_convolutions,
    checkpoint_module,
    checkpoint_sequential,
    recomputation_applies,
    restored_batchnorm_statistics,
)
from .conv import ConvNormAct, DepthwiseSeparableConv
from .features import FeatureInfo, FeatureListNet, take_indices
from .fuse import fold_bn_into_conv, fuse_model, split_conv_outputs
from .norm import LayerNorm2d

__all__ = [
    "ACTIVATIONS",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FeatureInfo",
    "FeatureListNet",
    "LayerNorm2d",
    "checkpoint_dense_convolutions",
    "checkpoint_module",
    "checkpoint_sequential",
    "fold_bn_into_conv",
    "fuse_model",
    "get_act",
    "recomputation_applies",
    "restored_batchnorm_statistics",
    "split_conv_outputs",
    "take_indices",
]
