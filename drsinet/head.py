"""YOLO-Pose detection head: per level, a 1x1 box branch and a depthwise-separable keypoint branch. No decoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from posecommon.layers import ConvNormAct, checkpoint_sequential, recomputation_applies

__all__ = ["DRSIHead"]


class DRSIHead(nn.Module):
    """Raw per-level predictions of boxes, objectness, person class and keypoints (YOLO-Pose s6 head).

    Per level with C channels: ``box[l]`` is a 1x1 conv to ``A_l * 6`` (x, y, w, h, objectness, class);
    ``kpt[l]`` is 6 depthwise 3x3 Conv-BN-SiLU interleaved with 5 pointwise 1x1 Conv-BN-SiLU (all C -> C), and
    ``kpt_out[l]`` a 1x1 conv to ``A_l * 3K`` (x, y, visibility per joint). The two branches are reshaped per anchor
    separately and concatenated on the last axis, so anchor ``a`` owns box channels ``6a..6a+5`` and keypoint
    channels ``3Ka..3Ka+3K-1`` (YOLO-Pose's reference code concatenates first and reshapes after, which interleaves
    anchors; checkpoints of that code would need their output convolutions permuted). With
    :attr:`grad_checkpointing` every layer of the keypoint branches is a checkpointing segment in training.

    Biases of the box convolution follow YOLOv5's ``_initialize_biases`` (``models/yolo.py:212-220`` on branch
    yolo-pose, called at model construction, line 145): on top of PyTorch's default initialisation, objectness
    ``+= log(8 / (640 / s)^2)`` (8 objects per 640-pixel image) and class ``+= log(0.6 / (nc - 0.99))`` with
    ``nc = 1``, i.e. ``log(60)`` (the class logit starts at sigmoid 0.98; with one class no loss trains it, see
    :mod:`drsinet.loss`). The keypoint convolutions keep PyTorch's default initialisation, as official (the
    official ``m_kpt`` is not touched by ``_initialize_biases``). Because the official head interleaves anchors
    (above), its priors reach only anchor 0's objectness and class there (the other two land on anchor 0's keypoint
    channels); with anchors split cleanly, they reach every anchor's objectness and class here, as in YOLOv5's
    detection head.

    Args:
        in_channels: Width of each level.
        num_anchors: Anchors per level A_l.
        num_joints: K.
        strides: Stride of each level (for the bias prior).
        act: Activation of the keypoint branch.

    Shape:
        - Input: list of L maps ``(B, in_channels[l], H_l, W_l)``
        - Output: list of L tensors ``(B, A_l, H_l, W_l, 6 + 3K)`` of raw (pre-sigmoid) values
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        num_anchors: int = 3,
        num_joints: int = 17,
        strides: tuple[int, ...] = (8, 16, 32, 64),
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_joints = num_joints
        self.num_classes = 1
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
        for x, box, kpt, kpt_out in zip(features, self.box, self.kpt, self.kpt_out, strict=True):
            b, _, h, w = x.shape
            det = box(x).view(b, self.num_anchors, 6, h, w)
            checkpointed = self.grad_checkpointing and recomputation_applies(self)
            features = checkpoint_sequential(kpt, x) if checkpointed else kpt(x)
            joints = kpt_out(features).view(b, self.num_anchors, 3 * self.num_joints, h, w)
            outputs.append(torch.cat((det, joints), dim=2).permute(0, 1, 3, 4, 2).contiguous())
        return outputs
