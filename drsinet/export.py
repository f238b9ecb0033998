"""The module DRSI-Net's ONNX export traces with ``include_decode=True``: network plus YOLO-Pose decoding.

:func:`posecommon.export.export_onnx` asks the model for it through :meth:`DRSINet.export_module
<drsinet.DRSINet.export_module>`. NMS stays outside the graph (it is data-dependent).
"""

from __future__ import annotations

import torch
from torch import nn

from .decode import decode_outputs

__all__ = ["DecodedDRSINet"]


class DecodedDRSINet(nn.Module):
    """A DRSI-Net followed by YOLO-Pose decoding (and an optional score top-k), for export.

    Args:
        model: The DRSI-Net to wrap (used as is; not copied).
        top_k: Keep only the ``top_k`` best-scoring candidates per image (sorted by descending score); ``None``
            keeps every anchor in level/anchor/row/column order.

    Shape:
        - Input: ``(B, 3, H, W)``
        - Output: ``boxes (B, N, 4)`` xyxy, ``scores (B, N)``, ``keypoints (B, N, K, 3)``, input pixels; ``N`` is
          ``top_k`` or the number of anchors over all levels. With ``top_k`` also ``indices (B, top_k)``, each
          candidate's position among all anchors
    """

    def __init__(self, model: nn.Module, top_k: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.top_k = top_k
        self.strides = tuple(model.config.strides)
        self.register_buffer("anchors", model.anchor_tensor(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        boxes, scores, keypoints = decode_outputs(self.model(x), self.anchors, self.strides)
        if self.top_k is None:
            return boxes, scores, keypoints
        scores, index = torch.topk(scores, self.top_k, dim=1)
        boxes = torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4))
        joints = keypoints.shape[2]
        keypoints = torch.gather(keypoints, 1, index[..., None, None].expand(-1, -1, joints, 3))
        return boxes, scores, keypoints, index
