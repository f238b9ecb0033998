"""Conversion of posezoo's multi-person pixel targets to the YOLO-Pose layout that :class:`~drsinet.DRSILoss` takes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posecommon.errors import InvalidInputError

__all__ = ["to_yolo_pose_targets"]


def to_yolo_pose_targets(targets: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
    """Pixel targets of :meth:`posecommon.data.MultiPersonCocoDataset.collate` -> YOLO-Pose's normalised layout.

    Each row ``[image, x1, y1, x2, y2, x_1, y_1, v_1, ..., x_K, y_K, v_K]`` (input pixels, in the frame the decoder
    outputs) becomes ``[image, 0, cx / W, cy / H, w / W, h / H, x_1 / W, y_1 / H, ..., x_K / W, y_K / H]``: class 0
    (person), box centre and size, joints divided by the input width and height. A joint with ``v = 0`` becomes
    ``(0, 0)``, YOLO-Pose's "unlabelled" (its visibility flag is otherwise dropped, as ``utils/datasets.py:500-504``
    of yolo-pose does). The layout cannot express a labelled joint at ``x = 0`` exactly: the loss then treats it as
    unlabelled, as the official code does.

    Args:
        targets: ``(M, 1 + 4 + 3K)`` float targets.
        input_size: ``(H, W)`` of the network input the targets are in.

    Returns:
        ``(M, 6 + 2K)`` float32 targets on the same device.

    Raises:
        InvalidInputError: ``targets`` is not ``(M, 5 + 3K)`` or the input size is not positive.
    """
    if targets.dim() != 2 or targets.shape[1] < 8 or (targets.shape[1] - 5) % 3:
        raise InvalidInputError(
            f"targets must be (M, 1 + 4 + 3K) = (image, x1, y1, x2, y2, K x (x, y, v)), got {tuple(targets.shape)}"
        )
    height, width = (float(v) for v in input_size)
    if height <= 0 or width <= 0:
        raise InvalidInputError(f"input_size must be positive (H, W), got {tuple(input_size)}")
    targets = targets.float()
    scale = targets.new_tensor((width, height))
    top_left, bottom_right = targets[:, 1:3], targets[:, 3:5]
    centre = (top_left + bottom_right) / 2 / scale
    size = (bottom_right - top_left) / scale
    joints = targets[:, 5:].reshape(targets.shape[0], (targets.shape[1] - 5) // 3, 3)
    joint_xy = torch.where(joints[..., 2:] > 0, joints[..., :2] / scale, torch.zeros_like(joints[..., :2]))
    classes = torch.zeros_like(targets[:, :1])
    return torch.cat((targets[:, :1], classes, centre, size, joint_xy.flatten(1)), dim=1)
