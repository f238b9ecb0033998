"""YOLO-Pose detection head: per level, a 1x1 box branch and a depthwise-separable keypoint branch. No decoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from posecommon.layers import ConvNormAct, checkpoint_sequential, recomputation_applies

__all__ = ["HEAD_LAYOUTS", "DRSIHead"]

HEAD_LAYOUTS = ("official", "split")
"""How the two branches' output channels become per-anchor values (:class:`DRSIHead`)."""


class DRSIHead(nn.Module):
    """Raw per-level predictions of boxes, objectness, person class and keypoints (YOLO-Pose s6 head).

    Per level with C channels: ``box[l]`` is a 1x1 conv to ``A * 6`` channels; ``kpt[l]`` is 6 depthwise 3x3
    Conv-BN-SiLU interleaved with 5 pointwise 1x1 Conv-BN-SiLU (all C -> C), and ``kpt_out[l]`` a 1x1 conv to
    ``A * 3K`` channels (YOLO-Pose's ``m`` and ``m_kpt`` with ``dw_conv_kpt: True``, ``models/yolo.py:44-53`` of
    edgeai-yolov5 branch yolo-pose). Each anchor gets ``6 + 3K`` values: ``(tx, ty, tw, th, objectness, class)``
    and then ``(x, y, visibility)`` per joint. Which channel feeds which value is the ``layout``:

    - ``"official"`` (default): as the official ``Detect.forward`` (``models/yolo.py:67-70``), the box output
      (``A * 6`` channels) and the keypoint output (``A * 3K``) are concatenated and only then viewed as ``A``
      anchors of ``6 + 3K``. Anchor ``a`` takes channels ``a (6 + 3K) .. (a + 1)(6 + 3K) - 1`` of the
      concatenation, so with A = 3, K = 17 anchor 0 reads all 18 box-conv channels (its box, objectness, class and
      joints 0-3) and its last 39 values from the keypoint conv, while anchors 1 and 2 take everything, box
      included, from the keypoint conv. Every published YOLO-Pose checkpoint, and the DRSI-Net the paper trained
      with that code, computes this function; a checkpoint of the other layout is a different function, not a
      permutation of it (no reordering of output channels can make anchors 1 and 2 read the box conv).
    - ``"split"``: each branch is viewed per anchor on its own and the two parts are joined per anchor, so anchor
      ``a`` owns box channels ``6a .. 6a + 5`` and keypoint channels ``3Ka .. 3Ka + 3K - 1`` (YOLOv5's detection
      head extended with a keypoint branch; posezoo's layout before 2026-12).

    Biases of the box convolution follow YOLOv5's ``_initialize_biases`` (``models/yolo.py:212-220``, called at
    model construction, line 145): on top of PyTorch's default initialisation, the box-conv bias viewed as
    ``(A, 6)`` gets ``log(8 / (640 / s)^2)`` (8 objects per 640-pixel image) in column 4 and ``log(0.6 / (nc -
    0.99))`` with ``nc = 1``, i.e. ``log(60)``, in column 5. Those are box-conv channels ``6a + 4`` and ``6a + 5``
    whatever the layout, so the priors land exactly as official in both: with ``"official"`` on anchor 0's
    objectness (channel 4) and class (5) and, for ``a = 1, 2``, on anchor 0's joint-1 and joint-3 y and visibility
    logits (channels 10, 11, 16, 17), anchors 1 and 2 getting no prior; with ``"split"`` on every anchor's
    objectness and class. The keypoint convolutions keep PyTorch's default initialisation, as official (the
    official ``m_kpt`` is not touched by ``_initialize_biases``, which iterates ``m.m`` only, line 216).

    With :attr:`grad_checkpointing` every layer of the keypoint branches is a checkpointing segment in training.

    Args:
        in_channels: Width of each level.
        num_anchors: Anchors per level A.
        num_joints: K.
        strides: Stride of each level (for the bias prior).
        act: Activation of the keypoint branch.
        layout: One of :data:`HEAD_LAYOUTS`.

    Shape:
        - Input: list of L maps ``(B, in_channels[l], H_l, W_l)``
        - Output: list of L tensors ``(B, A, H_l, W_l, 6 + 3K)`` of raw (pre-sigmoid) values
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        num_anchors: int = 3,
        num_joints: int = 17,
        strides: tuple[int, ...] = (8, 16, 32, 64),
        act: str = "silu",
        layout: str = "official",
    ) -> None:
        super().__init__()
        if layout not in HEAD_LAYOUTS:
            raise ValueError(f"layout must be one of {HEAD_LAYOUTS}, got {layout!r}")
        self.num_anchors = num_anchors
        self.num_joints = num_joints
        self.num_classes = 1
        self.layout = layout
        self.box = nn.ModuleList(nn.Conv2d(c, num_anchors * 6, 1) for c in in_channels)
        self.kpt = nn.ModuleList(self._keypoint_branch(c, act) for c in in_channels)
        self.kpt_out = nn.ModuleList(nn.Conv2d(c, num_anchors * 3 * num_joints, 1) for c in in_channels)
        self._init_biases(strides)
        self.grad_checkpointing = False
        """Checkpoint each keypoint-branch layer in training (set by ``set_grad_checkpointing``)."""

    @staticmethod
    def _keypoint_branch(channels: int, act: str) -> nn.Sequential:
        layers: list[nn.Module] = []
        for index in range(6):
            layers.append(ConvNormAct(channels, channels, 3, groups=channels, act=act))
            if index < 5:
                layers.append(ConvNormAct(channels, channels, 1, act=act))
        return nn.Sequential(*layers)

    @torch.no_grad()
    def _init_biases(self, strides: tuple[int, ...]) -> None:
        for conv, stride in zip(self.box, strides, strict=True):
            bias = conv.bias.view(self.num_anchors, 6)
            bias[:, 4] += math.log(8.0 / (640.0 / stride) ** 2)
            bias[:, 5] += math.log(0.6 / (self.num_classes - 0.99))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        per_anchor = 6 + 3 * self.num_joints
        for x, box, kpt, kpt_out in zip(features, self.box, self.kpt, self.kpt_out, strict=True):
            b, _, h, w = x.shape
            checkpointed = self.grad_checkpointing and recomputation_applies(self)
            det, joints = box(x), kpt_out(checkpoint_sequential(kpt, x) if checkpointed else kpt(x))
            if self.layout == "official":
                raw = torch.cat((det, joints), dim=1).view(b, self.num_anchors, per_anchor, h, w)
            else:
                det = det.view(b, self.num_anchors, 6, h, w)
                raw = torch.cat((det, joints.view(b, self.num_anchors, 3 * self.num_joints, h, w)), dim=2)
            outputs.append(raw.permute(0, 1, 3, 4, 2).contiguous())
        return outputs
