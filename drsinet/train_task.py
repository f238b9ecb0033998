"""The training task of DRSI-Net: multi-person batches -> YOLO-Pose losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posecommon.data.multiperson import MultiPersonCocoDataset
from posecommon.preprocess import PreprocessConfig

from .loss import DRSILoss
from .targets import to_yolo_pose_targets

__all__ = ["DRSITask"]


class DRSITask:
    """Batches of :class:`~posecommon.data.MultiPersonCocoDataset` -> :class:`~drsinet.loss.DRSILoss`.

    The dataset's pixel targets are converted to YOLO-Pose's layout by :func:`~drsinet.targets.to_yolo_pose_targets`.
    The loss is the per-image mean multiplied by the *global* batch size. That is YOLO-Pose's convention: its loss
    is multiplied by the process's batch size (``utils/loss.py:177-180``) and by the number of processes under DDP
    (``train.py:307-308``). The paper's SGD learning rate of 3e-3 assumes it.

    Args:
        criterion: The loss (built for the model's config and keypoint sigmas).
        preprocess: The model's preprocessing (pixels / 255).
        global_batch_size: Samples per optimiser step over all processes.
    """

    def __init__(self, criterion: DRSILoss, preprocess: PreprocessConfig, global_batch_size: int) -> None:
        self.criterion = criterion
        self.preprocess = preprocess
        self.global_batch_size = global_batch_size

    collate = staticmethod(MultiPersonCocoDataset.collate)

    def to_device(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """Move images and targets to ``device``."""
        return {**batch, "images": batch["images"].to(device), "targets": batch["targets"].to(device)}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """YOLO-Pose loss of ``model(images / 255)`` times the global batch size; terms are per image."""
        images = batch["images"]
        outputs = model(self.preprocess.normalize(images))
        targets = to_yolo_pose_targets(batch["targets"], images.shape[-2:])
        total, terms = self.criterion(outputs, targets)
        return total * (self.global_batch_size / images.shape[0]), terms
