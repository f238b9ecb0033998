"""vttranspose: VTTransPose (Sci. Rep. 14:7608, 2024) and its TransPose-H-S baselines, with their building blocks."""

from .blocks import (
    AsymmetricConv,
    AxialPositionEmbedding,
    ConvMLP,
    DWSeparableFFN,
    TransformerEncoder,
    TransformerEncoderLayer,
    TwinAttention,
    TwinEncoder,
    TwinEncoderLayer,
    VBlock,
    sine_position_table,
)
from .claims import attention_scaling
from .config import VARIANTS, VTTransPoseConfig
from .convert import ConversionReport, convert_official_checkpoint, convert_official_transpose
from .hrnet import BasicBlock, Bottleneck, ConvBN, HRModule, HRNetS, HRNetSLayers
from .imagenet import IMAGENET_HRNET_W32, BackboneLoadReport, load_backbone_weights
from .model import MODELS, VTTransPose, feature_size, transpose_h_s, transpose_h_s_twin, vttranspose_h_s
from .predict import TopDownKernel
from .scratch_init import KAIMING, init_backbone_kaiming

__all__ = [
    "IMAGENET_HRNET_W32",
    "KAIMING",
    "MODELS",
    "VARIANTS",
    "AsymmetricConv",
    "AxialPositionEmbedding",
    "BackboneLoadReport",
    "BasicBlock",
    "Bottleneck",
    "ConvBN",
    "ConvMLP",
    "ConversionReport",
    "DWSeparableFFN",
    "HRModule",
    "HRNetS",
    "HRNetSLayers",
    "TopDownKernel",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TwinAttention",
    "TwinEncoder",
    "TwinEncoderLayer",
    "VBlock",
    "VTTransPose",
    "VTTransPoseConfig",
    "attention_scaling",
    "convert_official_checkpoint",
    "convert_official_transpose",
    "feature_size",
    "init_backbone_kaiming",
    "load_backbone_weights",
    "sine_position_table",
    "transpose_h_s",
    "transpose_h_s_twin",
    "vttranspose_h_s",
]
