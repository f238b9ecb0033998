"""DRSI-Net model (CSDR-Net + PAN family + YOLO-Pose head) and its registered entrypoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from posecommon.data.multiperson import MultiPersonCocoDataset
from posecommon.keypoints import KeypointSpec
from posecommon.model import PoseModel, build_model
from posecommon.preprocess import PreprocessConfig
from posecommon.registry import ModelInfo, PaperFigures, model_table, register_model
from posecommon.train.recipe import TrainRecipe

from .backbone import CSDRNet
from .config import VARIANTS, DRSINetConfig
from .export import DecodedDRSINet
from .head import DRSIHead
from .loss import DRSILoss
from .neck import PAN
from .predict import DetectionKernel
from .recipe import drsi_recipe
from .train_task import DRSITask

__all__ = [
    "MODELS",
    "DRSINet",
    "drsi_net_l",
    "drsi_net_m",
    "drsi_net_s",
    "yolo_pose_l6",
    "yolo_pose_m6",
    "yolo_pose_s6",
]


class DRSINet(PoseModel):
    """Dual-residual spatial interaction network for single-stage multi-person pose estimation.

    ``backbone`` (:class:`~drsinet.backbone.CSDRNet`, or CSPDarknet53 with ``backbone_block="c3"``) produces P3-P6,
    ``neck`` (:class:`~drsinet.neck.PAN`: PAN, CBAM-PAN or ASI-PAN) fuses them, and ``head``
    (:class:`~drsinet.head.DRSIHead`) predicts raw per-anchor values. ``forward`` returns the same list of raw
    tensors in train and eval mode; :mod:`drsinet.decode` turns them into boxes and keypoints and
    ``predict(images, score_threshold=..., iou_threshold=..., input_size=..., max_people=...)`` runs the whole
    pipeline on images (:meth:`predict_kernel`).

    Readings of the paper, with the evidence:

    - Default neck: CBAM-PAN. Table 3 row 4 ("i.e. proposed DRSI-Net-s": 10.9 GMACs, 59.5 AP at 640) and Table 6
      (DRSI-Net-s at 640: 10.9, 59.5) equal Table 4 row 5 / Table 5 row 5 (CSDR-Net + CBAM-PAN), not the ASI-PAN
      row (11.8 GMACs, 59.6 AP). ``neck="asi_pan"`` builds the ASI-PAN variant of Fig. 2.
    - Inverted-bottleneck expansion 4 (eq. 7 gives none); Res-gnConv order 2 for every size (Sec. 4.2).
    - Backbone widths/blocks (128, 256, 512, 768, 1024) / (3, 9, 9, 3) and the rest of the P6 layout (Focus, SPP
      with kernels 3, 5, 7, stage-5 C3, PAN with C3 blocks) are YOLOv5-P6 / YOLO-Pose s6's. The stage-5 C3 and the
      neck C3s have 2 bottlenecks before the depth multiple (``stage_blocks[4]`` and ``neck_blocks``; YOLOv5-P6
      has 3, which ``yolo_pose_s6`` keeps): the reading that reproduces Table 1's sizes
      (:class:`~drsinet.config.DRSINetConfig`).
    - ASI-PAN's Res-gnConv runs after each top-down upsample (:class:`~drsinet.neck.PAN`; Table 4's +0.9 GMACs).
    - Head wiring ``head_layout="official"``: YOLO-Pose's ``Detect.forward`` concatenates the box and keypoint
      outputs before viewing them per anchor (edgeai-yolov5 yolo-pose ``models/yolo.py:67-70``); the paper trained
      with that code, so DRSI-Net has this wiring too (:class:`~drsinet.head.DRSIHead`; ``"split"`` keeps each
      anchor's box and keypoints apart).
    - Training and evaluation follow the YOLO-Pose code: loss, assignment and gains (:class:`~drsinet.loss.DRSILoss`),
      head bias priors (:class:`~drsinet.head.DRSIHead`), BatchNorm eps 1e-3 / momentum 0.03 everywhere
      (:data:`~drsinet.blocks.BN_EPS`); COCO evaluation keeps detections down to score 0.001 with NMS IoU 0.65 and
      at most 300 per image (:mod:`posecommon.evaluation.runner`), while :meth:`predict` defaults to 0.25 / 0.45.

    Args:
        config: Architecture.
        keypoint_spec: Keypoint set (defaults from ``config.num_joints``).

    Shape:
        - Input: ``(B, 3, H, W)``, pixels / 255 (mean 0, std 1), H and W multiples of 64
        - Output: list of 4 tensors ``(B, A_l, H / s_l, W / s_l, 6 + 3K)`` for strides ``s_l = 8, 16, 32, 64``;
          last axis ``(tx, ty, tw, th, objectness, class, then (x, y, visibility) per joint)``, all raw
    """

    variants: ClassVar[dict[str, DRSINetConfig]] = VARIANTS
    head_prefixes: tuple[str, ...] = ("head.kpt_out",)
    """Parameter-name prefixes whose shapes depend on ``num_joints`` (dropped when fine-tuning to another K)."""

    @property
    def train_recipe(self) -> TrainRecipe:  # type: ignore[override]
        """The COCO recipe of :mod:`drsinet.recipe` with this model's batch size (the paper's 36 / 16 / 8 for s / m /
        l, YOLO-Pose's 64 for ``yolo_pose_s6``)."""
        return drsi_recipe(self.model_name)

    def __init__(self, config: DRSINetConfig, keypoint_spec: KeypointSpec | None = None) -> None:
        super().__init__(config, keypoint_spec)
        cfg = config
        stage_channels = tuple(cfg.width(c) for c in cfg.stage_channels)
        stage_blocks = tuple(cfg.depth(n) for n in cfg.stage_blocks)
        self.backbone = CSDRNet(
            stem_channels=cfg.width(cfg.stem_channels),
            stage_channels=stage_channels,
            stage_blocks=stage_blocks,
            stage_block=cfg.backbone_block,
            block=cfg.block,
            expansion_ratio=cfg.expansion_ratio,
            order=cfg.gnconv_order,
            kernel_size=cfg.gnconv_kernel,
            lam=cfg.gnconv_lambda,
            spp=cfg.spp,
            spp_kernels=cfg.spp_kernels,
            act=cfg.act,
        )
        self.neck = PAN(
            self.backbone.out_channels,
            num_blocks=cfg.depth(cfg.neck_blocks),
            kind=cfg.neck,
            cbam_reduction=cfg.cbam_reduction,
            order=cfg.gnconv_order,
            kernel_size=cfg.gnconv_kernel,
            lam=cfg.gnconv_lambda,
            act=cfg.act,
        )
        self.head = DRSIHead(
            self.neck.out_channels, cfg.num_anchors, cfg.num_joints, cfg.strides, cfg.act, cfg.head_layout
        )

    @property
    def preprocess(self) -> PreprocessConfig:
        """Letterbox to ``config.input_size`` (pad bottom/right with 114), pixels / 255."""
        return PreprocessConfig(
            input_size=self.config.input_size,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            resize="letterbox",
            pad_value=114.0,
        )

    def training_task(self, global_batch_size: int) -> DRSITask:
        """YOLO-Pose losses with this model's anchors, strides and keypoint sigmas (see :class:`DRSITask`)."""
        criterion = DRSILoss(self.config, sigmas=self.keypoint_spec)
        return DRSITask(criterion, self.preprocess, global_batch_size)

    def training_dataset(
        self, ann_file: str | Path, image_dir: str | Path, train: bool = True, **augmentation: float
    ) -> Dataset:
        """A :class:`~posecommon.data.MultiPersonCocoDataset` at this model's (square) input size."""
        height, width = self.config.input_size
        if height != width:
            raise ValueError(f"training needs a square input_size, got {self.config.input_size}")
        return MultiPersonCocoDataset(
            ann_file,
            image_dir,
            height,
            self.keypoint_spec,
            train=train,
            pad_value=self.preprocess.pad_value,
            **augmentation,
        )

    def anchor_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Anchors ``(L, A_l, 2)`` as ``(w, h)`` in input pixels, built from the config (never cached)."""
        return torch.tensor(self.config.anchors, dtype=torch.float32, device=device).view(
            len(self.config.anchors), -1, 2
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))

    def predict_kernel(
        self,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        input_size: tuple[int, int] | None = None,
        max_people: int = 300,
    ) -> DetectionKernel:
        """The kernel :meth:`~posecommon.PoseModel.predict` runs (letterbox, forward, decode, NMS); its arguments
        are this model's prediction options.

        Args:
            score_threshold: Minimum ``objectness x class`` score.
            iou_threshold: NMS IoU.
            input_size: Letterbox size ``(H, W)``; ``None``: ``config.input_size``. Multiples of 64.
            max_people: At most this many people per image (best scores first).
        """
        return DetectionKernel(self, score_threshold, iou_threshold, input_size, max_people)

    def export_module(self, include_decode: bool = False, top_k: int | None = None) -> nn.Module:
        """The model, or with ``include_decode`` a :class:`~drsinet.export.DecodedDRSINet` that decodes in the
        graph (boxes, scores and keypoints of every candidate, or of the ``top_k`` best)."""
        if not include_decode:
            return super().export_module(include_decode, top_k)
        return DecodedDRSINet(self, top_k)


_SRC_T1 = "DRSI-Net paper, Table 1 (COCO val2017)"
_SRC_640 = "DRSI-Net paper, Tables 3-6 (640 x 640, COCO val2017)"
_SRC_YP_T1 = "DRSI-Net paper, Table 1 (YOLOPose-{}6; the YOLO-Pose README, lines 61-62, gives the same GMACs and AP)"

MODELS = model_table(
    ModelInfo(
        "drsi_net_s",
        "drsinet",
        "DRSI-Net-s: CSDR-Net-s + CBAM-PAN + YOLO-Pose head (depth 0.33, width 0.50)",
        PaperFigures(15.4, 24.6, (960, 960), ap=65.3, source=_SRC_T1),
        (PaperFigures(None, 10.9, (640, 640), ap=59.5, source=_SRC_640),),
    ),
    ModelInfo(
        "drsi_net_m",
        "drsinet",
        "DRSI-Net-m: CSDR-Net-m + CBAM-PAN + YOLO-Pose head (depth 0.67, width 0.75)",
        PaperFigures(36.8, 64.4, (960, 960), ap=68.8, source=_SRC_T1),
    ),
    ModelInfo(
        "drsi_net_l",
        "drsinet",
        "DRSI-Net-l: CSDR-Net-l + CBAM-PAN + YOLO-Pose head (depth 1.0, width 1.0)",
        PaperFigures(79.7, 145.6, (960, 960), ap=71.5, source=_SRC_T1),
    ),
    ModelInfo(
        "yolo_pose_s6",
        "drsinet",
        "YOLO-Pose s6 layout (CSPDarknet53-s + PAN): the same-width baseline of Tables 4-6",
        PaperFigures(15.1, 22.8, (960, 960), ap=63.8, source="DRSI-Net paper, Table 1 (YOLOPose-s6)"),
        (PaperFigures(None, 10.1, (640, 640), ap=57.5, source="DRSI-Net paper, Table 6 (YOLOPose-s)"),),
    ),
    ModelInfo(
        "yolo_pose_m6",
        "drsinet",
        "YOLO-Pose m6 layout (CSPDarknet53-m + PAN, 6-depthwise keypoint head), as the released m6 checkpoint",
        PaperFigures(41.4, 66.3, (960, 960), ap=67.4, source=_SRC_YP_T1.format("m")),
    ),
    ModelInfo(
        "yolo_pose_l6",
        "drsinet",
        "YOLO-Pose l6 layout (CSPDarknet53-l + PAN, 6-depthwise keypoint head), as the released l6 checkpoint",
        PaperFigures(87.0, 145.6, (960, 960), ap=69.4, source=_SRC_YP_T1.format("l")),
    ),
)
"""Paper figures of the registered DRSI-Net models (their architectures: :data:`~drsinet.config.VARIANTS`)."""


@register_model(MODELS)
def drsi_net_s(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """DRSI-Net-s; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "drsi_net_s", pretrained, **kwargs)


@register_model(MODELS)
def drsi_net_m(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """DRSI-Net-m; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "drsi_net_m", pretrained, **kwargs)


@register_model(MODELS)
def drsi_net_l(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """DRSI-Net-l; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "drsi_net_l", pretrained, **kwargs)


@register_model(MODELS)
def yolo_pose_s6(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """YOLO-Pose s6 layout; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see
    :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "yolo_pose_s6", pretrained, **kwargs)


@register_model(MODELS)
def yolo_pose_m6(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """YOLO-Pose m6 layout; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see
    :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "yolo_pose_m6", pretrained, **kwargs)


@register_model(MODELS)
def yolo_pose_l6(pretrained: bool | str = False, **kwargs: Any) -> DRSINet:
    """YOLO-Pose l6 layout; keywords: :class:`~drsinet.config.DRSINetConfig` fields (see
    :func:`~posecommon.build_model`)."""
    return build_model(DRSINet, "yolo_pose_l6", pretrained, **kwargs)
