"""Generic layers shared by the model packages (one idea per module, re-exported here), and the timm-style
feature-map interface (:mod:`.features`)."""

from .act import ACTIVATIONS, get_act
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
    "fold_bn_into_conv",
    "fuse_model",
    "get_act",
    "split_conv_outputs",
    "take_indices",
]
