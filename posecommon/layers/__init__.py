"""Generic layers shared by the model packages (one idea per module, re-exported here)."""

from .act import ACTIVATIONS, get_act
from .conv import ConvNormAct, DepthwiseSeparableConv
from .fuse import fold_bn_into_conv, fuse_model, split_conv_outputs
from .norm import LayerNorm2d

__all__ = [
    "ACTIVATIONS",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "LayerNorm2d",
    "fold_bn_into_conv",
    "fuse_model",
    "get_act",
    "split_conv_outputs",
]
