"""The training task of top-down heatmap models (VTTransPose, TransPose-H-S)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from ..losses import KeypointMSELoss
from ..preprocess import PreprocessConfig

__all__ = ["TopDownTask"]


class TopDownTask:
    """Batches of :class:`~posecommon.data.TopDownCocoDataset` samples -> heatmap MSE loss.

    Args:
        preprocess: The model's preprocessing (normalises the uint8 crops of the dataset).
        use_target_weight: Weight joints by their target weight (0 for unlabelled / out-of-crop joints).
    """

    def __init__(self, preprocess: PreprocessConfig, use_target_weight: bool = True) -> None:
        self.preprocess = preprocess
        self.criterion = KeypointMSELoss(use_target_weight)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack the sample dicts (``image`` ``(B, 3, H, W)`` uint8, ``heatmaps`` ``(B, K, h, w)``, ...)."""
        return default_collate(samples)

    def to_device(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """Move the tensors the loss needs to ``device``."""
        keys = ("image", "heatmaps", "target_weight")
        return {**batch, **{k: batch[k].to(device, non_blocking=True) for k in keys}}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Heatmap MSE of ``model(normalised images)`` against the Gaussian targets."""
        predicted = model(self.preprocess.normalize(batch["image"]))
        loss = self.criterion(predicted, batch["heatmaps"], batch["target_weight"])
        return loss, {"heatmap_mse": loss.detach()}
