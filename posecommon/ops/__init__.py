"""Tensor operations shared by the model families (torch only)."""

from .nms import batched_nms, box_iou, nms

__all__ = ["batched_nms", "box_iou", "nms"]
