"""The training task of DRSI-Net: multi-person batches -> YOLO-Pose losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posecommon.data.multiperson import MultiPersonCocoDataset
from posecommon.preprocess import PreprocessConfig

from .loss import DRSILoss

__all__ = ["DRSITask"]


class DRSITask:
    """Batches of :class:`~posecommon.data.MultiPersonCocoDataset` -> :class:`~drsinet.loss.DRSILoss`.

    The loss is the per-image mean multiplied by the *global* batch size (YOLOv5's convention, which the paper's
    SGD learning rate of 3e-3 assumes). Using the global size rather than each process's share keeps DDP training
    equal to single-process training on the same global batch.

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
        """YOLO-Pose loss of ``model(images / 255)``; terms are per image."""
        outputs = model(self.preprocess.normalize(batch["images"]))
        per_image, terms = self.criterion(outputs, batch["targets"])
        return per_image * self.global_batch_size, terms
