"""DRSI-Net configuration: one frozen, JSON-able dataclass and the named variants.

The variants differ only in their depth/width multiples and, for the YOLO-Pose baseline, in the layout strings.
Channel widths and block counts follow YOLOv5-P6 scaling: a width ``c`` becomes ``ceil(c * width_multiple / 8) * 8``
and a block count ``n`` becomes ``max(round(n * depth_multiple), 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from posecommon.config import check_choice, check_config_fields, nearest_multiples
from posecommon.errors import ConfigError

from .head import HEAD_LAYOUTS

__all__ = ["BACKBONE_BLOCKS", "BLOCKS", "HEAD_LAYOUTS", "NECKS", "SPP_KINDS", "VARIANTS", "DRSINetConfig"]

BACKBONE_BLOCKS = ("c3", "c3dr")
"""``"c3"``: YOLOv5 C3 with bottlenecks (CSPDarknet53, YOLO-Pose); ``"c3dr"``: C3DR with DRSI-family blocks."""
BLOCKS = ("drsi", "hor", "rhor")
"""Block inside C3DR (Table 3): DRSI block, Hor block (gnConv + MLP) or R-Hor block (Res-gnConv + MLP)."""
NECKS = ("pan", "cbam_pan", "asi_pan")
"""Path aggregation network (Table 4): plain PAN, CBAM-PAN or ASI-PAN."""
SPP_KINDS = ("spp", "sppf")
"""Spatial pyramid pooling of stage 5: parallel max-pools (SPP) or the sequential equivalent (SPPF)."""

_ANCHORS_P6 = (
    (19, 27, 44, 40, 38, 94),
    (96, 68, 86, 152, 180, 137),
    (140, 301, 303, 264, 238, 542),
    (436, 615, 739, 380, 925, 792),
)


@dataclass(frozen=True)
class DRSINetConfig:
    """Architecture of a DRSI-Net (or of its YOLO-Pose-layout baseline).

    Args:
        depth_multiple: Scales every block count (s 0.33, m 0.67, l 1.0).
        width_multiple: Scales every channel width (s 0.50, m 0.75, l 1.0).
        num_joints: Keypoints per person K.
        input_size: Default letterbox input ``(H, W)``; both must be multiples of the largest stride (64).
        backbone_block: One of :data:`BACKBONE_BLOCKS`.
        block: One of :data:`BLOCKS`; used only when ``backbone_block == "c3dr"``.
        neck: One of :data:`NECKS`.
        spp: One of :data:`SPP_KINDS`.
        spp_kernels: Max-pool kernels of SPP (YOLOv5-P6: 3, 5, 7). SPPF ignores them and pools three times with
            kernel 5, as YOLOv5.
        stem_channels: Focus output width before the width multiple.
        stage_channels: Output widths of stages 1-5 before the width multiple.
        stage_blocks: Blocks of the C3/C3DR of stages 1-4 and of the stage-5 C3, before the depth multiple.
            DRSI-Net: (3, 9, 9, 3) as Sec. 3.1 and 2 for stage 5 (YOLOv5-P6 has 3); see ``neck_blocks``.
        neck_blocks: Bottlenecks of each C3 in the neck, before the depth multiple. DRSI-Net: 2 (YOLOv5-P6: 3).
            The paper gives no count; 2 for the neck and the stage-5 C3 (1, 1, 2 bottlenecks for s, m, l) is the
            reading that reproduces all six size figures of Table 1 within 1 % (params) and 2.2 % (MACs), while
            YOLOv5's 3 leaves m and l 13-16 % over the paper's parameter counts. At s both give 1.
        gnconv_order: Interaction order n of (Res-)gnConv (the paper uses 2 for all sizes, Sec. 4.2).
        gnconv_lambda: The scale lambda of Res-gnConv (eq. 5).
        gnconv_kernel: Kernel of the depthwise convolution f of (Res-)gnConv (7, Sec. 3.2).
        expansion_ratio: Hidden width / input width of the DRSI block's inverted bottleneck (eq. 7) and of the
            Hor/R-Hor MLP.
        cbam_reduction: Channel reduction ratio of CBAM's channel attention MLP.
        act: Activation of the Conv-BN-act layers (YOLOv5: SiLU).
        anchors: Per level, anchor ``(w, h)`` pairs in input pixels, flattened: ``(w0, h0, w1, h1, w2, h2)``.
        strides: Stride of each output level (P3-P6).
        head_layout: One of :data:`HEAD_LAYOUTS`: ``"official"`` (default; YOLO-Pose's ``Detect.forward``, the
            wiring of every published checkpoint) or ``"split"`` (each anchor's box from the box conv, its keypoints
            from the keypoint branch; posezoo's layout before 2026-12). See :class:`~drsinet.head.DRSIHead`.
            A ``config.json`` saved before this field existed has no ``head_layout``; its weights were trained
            with ``"split"``.
    """

    depth_multiple: float = 0.33
    width_multiple: float = 0.50
    num_joints: int = 17
    input_size: tuple[int, int] = (960, 960)
    backbone_block: str = "c3dr"
    block: str = "drsi"
    neck: str = "cbam_pan"
    spp: str = "spp"
    spp_kernels: tuple[int, ...] = (3, 5, 7)
    stem_channels: int = 64
    stage_channels: tuple[int, ...] = (128, 256, 512, 768, 1024)
    stage_blocks: tuple[int, ...] = (3, 9, 9, 3, 2)
    neck_blocks: int = 2
    gnconv_order: int = 2
    gnconv_lambda: float = math.sqrt(2.0)
    gnconv_kernel: int = 7
    expansion_ratio: float = 4.0
    cbam_reduction: int = 16
    act: str = "silu"
    anchors: tuple[tuple[int, ...], ...] = _ANCHORS_P6
    strides: tuple[int, ...] = (8, 16, 32, 64)
    head_layout: str = "official"

    def __post_init__(self) -> None:
        check_config_fields(self)
        for name, choices in (
            ("backbone_block", BACKBONE_BLOCKS),
            ("block", BLOCKS),
            ("neck", NECKS),
            ("spp", SPP_KINDS),
            ("head_layout", HEAD_LAYOUTS),
        ):
            check_choice(self, name, choices)
        if self.num_joints < 1:
            raise ConfigError(f"DRSINetConfig.num_joints must be >= 1, got {self.num_joints}", "num_joints")
        if self.gnconv_order < 1:
            raise ConfigError(f"DRSINetConfig.gnconv_order must be >= 1, got {self.gnconv_order}", "gnconv_order")
        if len(self.stage_channels) != 5 or len(self.stage_blocks) != 5:
            field = "stage_channels" if len(self.stage_channels) != 5 else "stage_blocks"
            raise ConfigError(f"DRSINetConfig.{field} needs 5 entries (stages 1-4 and stage 5)", field)
        if len(self.strides) != 4 or len(self.anchors) != 4:
            field = "strides" if len(self.strides) != 4 else "anchors"
            message = f"DRSINetConfig.{field}: DRSI-Net has 4 output levels (P3-P6): give 4 strides and 4 anchor groups"
            raise ConfigError(message, field)
        if len({len(level) for level in self.anchors}) != 1 or len(self.anchors[0]) % 2:
            raise ConfigError(
                "DRSINetConfig.anchors: every anchor level needs the same even number of values (w, h pairs)", "anchors"
            )
        step = max(self.strides)
        if any(v <= 0 or v % step for v in self.input_size):
            raise ConfigError(
                f"DRSINetConfig.input_size must be multiples of {step} (the largest stride), got {self.input_size}; "
                f"nearest valid: {nearest_multiples(self.input_size, step)}",
                "input_size",
            )

    @property
    def num_anchors(self) -> int:
        """Anchors per level, A_l."""
        return len(self.anchors[0]) // 2

    def width(self, channels: int) -> int:
        """Channel width after the width multiple (rounded up to a multiple of 8, as YOLOv5)."""
        return int(math.ceil(channels * self.width_multiple / 8) * 8)

    def depth(self, blocks: int) -> int:
        """Block count after the depth multiple (at least 1, as YOLOv5)."""
        return max(round(blocks * self.depth_multiple), 1)


_S = DRSINetConfig()
_YOLO_POSE_P6 = DRSINetConfig(backbone_block="c3", neck="pan", stage_blocks=(3, 9, 9, 3, 3), neck_blocks=3)

VARIANTS: dict[str, DRSINetConfig] = {
    "drsi_net_s": _S,
    "drsi_net_m": DRSINetConfig(depth_multiple=0.67, width_multiple=0.75),
    "drsi_net_l": DRSINetConfig(depth_multiple=1.0, width_multiple=1.0),
    "yolo_pose_s6": _YOLO_POSE_P6,
    "yolo_pose_m6": replace(_YOLO_POSE_P6, depth_multiple=0.67, width_multiple=0.75),
    "yolo_pose_l6": replace(_YOLO_POSE_P6, depth_multiple=1.0, width_multiple=1.0),
}
"""Named configurations. ``yolo_pose_s6`` is the same-width YOLO-Pose layout (C3 backbone + PAN, Table 4 row 1);
``yolo_pose_s6/m6/l6`` are YOLO-Pose's ``models/hub/yolov5{s6,m6,l6}_kpts.yaml`` (branch yolo-pose) with the
6-depthwise keypoint head (``dw_conv_kpt: True``, ``yolov5s6_kpts.yaml:6``), the head of every released YOLO-Pose
checkpoint (their names end in ``kpts_head_6x_dwconv_3x3``, README.md:59-62; "the final model with six depth-wise
layers is used as the final configuration", README.md:142). The m6 and l6 yamls in the repository leave the flag
out, which would build a one-convolution keypoint head that no released file has."""
