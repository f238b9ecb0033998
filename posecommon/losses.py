"""Losses shared by the top-down models."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KeypointMSELoss"]


class KeypointMSELoss(nn.Module):
    """Mean squared error between predicted and target heatmaps, weighted per joint (HRNet/TransPose loss).

    ``loss = 0.5 * mean_{b,k,y,x} (w_bk * (pred_bkyx - target_bkyx))^2``: joints with weight 0 (invisible or
    outside the crop) contribute nothing, and the factor 0.5 follows the HRNet reference implementation that
    TransPose and VTTransPose train with.

    Args:
        use_target_weight: Multiply by the per-joint target weights (else weights are ignored).

    Shape:
        - pred: ``(B, K, h, w)``
        - target: ``(B, K, h, w)``
        - target_weight: ``(B, K)``
        - Output: scalar
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} heatmaps differ in shape"
            )
        diff = pred.float() - target.float()
        if self.use_target_weight:
            diff = diff * target_weight.float()[..., None, None]
        return 0.5 * diff.pow(2).mean()
