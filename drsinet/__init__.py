"""DRSI-Net: dual-residual spatial interaction network for single-stage multi-person pose estimation.

Entrypoints ``drsi_net_s/m/l`` and the YOLO-Pose layouts ``yolo_pose_s6/m6/l6`` (``s6``: the same-width baseline)
are registered with :func:`posecommon.registry.register_model`; every block, the neck, the head, the decoding
functions and the official YOLO-Pose checkpoint converter are exported.
"""

from .assign import LevelTargets, build_targets
from .backbone import CSDRNet
from .blocks import (
    BN_EPS,
    BN_MOMENTUM,
    C3,
    C3DR,
    CBAM,
    SPP,
    SPPF,
    Bottleneck,
    ChannelAttention,
    DRSIBlock,
    Focus,
    HorBlock,
    SpatialAttention,
    fold_bn_before_conv,
)
from .claims import gradient_norms
from .config import BACKBONE_BLOCKS, BLOCKS, NECKS, SPP_KINDS, VARIANTS, DRSINetConfig
from .convert import YoloPoseConversion, convert_yolo_pose
from .decode import decode_outputs, make_grid, postprocess
from .export import DecodedDRSINet
from .gnconv import GnConv, ResGnConv, interaction_widths
from .head import HEAD_LAYOUTS, DRSIHead
from .loss import KPT_LOSS_FORMS, LOSS_TERMS, DRSILoss, DRSILossWeights
from .model import MODELS, DRSINet, drsi_net_l, drsi_net_m, drsi_net_s, yolo_pose_l6, yolo_pose_m6, yolo_pose_s6
from .neck import PAN
from .predict import DetectionKernel
from .targets import to_yolo_pose_targets
from .train_task import DRSITask

__all__ = [
    "BACKBONE_BLOCKS",
    "BLOCKS",
    "BN_EPS",
    "BN_MOMENTUM",
    "C3",
    "C3DR",
    "CBAM",
    "HEAD_LAYOUTS",
    "KPT_LOSS_FORMS",
    "LOSS_TERMS",
    "MODELS",
    "NECKS",
    "PAN",
    "SPP",
    "SPPF",
    "SPP_KINDS",
    "VARIANTS",
    "Bottleneck",
    "CSDRNet",
    "ChannelAttention",
    "DRSIBlock",
    "DRSIHead",
    "DRSILoss",
    "DRSILossWeights",
    "DRSINet",
    "DRSINetConfig",
    "DRSITask",
    "DecodedDRSINet",
    "DetectionKernel",
    "Focus",
    "GnConv",
    "HorBlock",
    "LevelTargets",
    "ResGnConv",
    "SpatialAttention",
    "YoloPoseConversion",
    "build_targets",
    "convert_yolo_pose",
    "decode_outputs",
    "drsi_net_l",
    "drsi_net_m",
    "drsi_net_s",
    "fold_bn_before_conv",
    "gradient_norms",
    "interaction_widths",
    "make_grid",
    "postprocess",
    "to_yolo_pose_targets",
    "yolo_pose_l6",
    "yolo_pose_m6",
    "yolo_pose_s6",
]
