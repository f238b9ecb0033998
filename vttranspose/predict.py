"""Top-down inference: person boxes on one image -> affine crops -> heatmaps (+ flip test) -> keypoints in the image.

Shape key: N person boxes, K joints; boxes ``(N, 4)`` ``xyxy`` in image pixels; crops ``(N, 3, H, W)`` with
``(H, W)`` = ``model.preprocess.input_size``; heatmaps ``(N, K, h, w)``. Pixel centres are integer coordinates
everywhere (see :mod:`posecommon.geometry`).

As TransPose's ``validate`` + ``evaluate`` (``lib/core/function.py:98-198``, ``lib/dataset/coco.py:290-357``), through
:class:`~posecommon.codecs.TopDownCodec`: each box becomes a region (``_xywh2cs``: centre ``x + (w - 1) / 2``,
input aspect ratio, padding 1.25), is cropped with the official affine transform, normalised with ImageNet
mean/std, run through the model together with the horizontally flipped crop (averaged after ``flip_back``, with
no shift), decoded with DARK in heatmap pixels, mapped straight back to the image with the inverse heatmap-size
transform, and scored ``box score x mean keypoint confidence above 0.2``
(:func:`posecommon.evaluation.instance_scores`). OKS-NMS across instances is the evaluation's job
(:func:`posecommon.evaluation.predict_dataset`), not prediction's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from posecommon.codecs import TopDownCodec, flip_average
from posecommon.errors import InvalidInputError
from posecommon.evaluation import instance_scores
from posecommon.media.image import ImageInput, load_image
from posecommon.predict.inference import running_for_inference
from posecommon.structures import PoseResult

if TYPE_CHECKING:
    from .model import VTTransPose

__all__ = ["predict_topdown"]


def _as_float_tensor(values: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu()
    try:
        return torch.from_numpy(np.asarray(values, dtype=np.float32))
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"expected a numeric array, got {type(values).__name__}: {err}") from err


def _as_boxes(
    boxes: torch.Tensor | np.ndarray | list, box_scores: torch.Tensor | np.ndarray | list | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float32 CPU ``(N, 4)`` boxes and ``(N,)`` scores (NaN, inf and inverted boxes are rejected)."""
    boxes = _as_float_tensor(boxes)
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"boxes must be (N, 4) (x1, y1, x2, y2) in image pixels, got {tuple(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        rows = torch.nonzero(~torch.isfinite(boxes).all(dim=1)).flatten().tolist()
        raise InvalidInputError(f"boxes contain NaN or infinite values (rows {rows[:10]})")
    scores = torch.ones(boxes.shape[0]) if box_scores is None else _as_float_tensor(box_scores).reshape(-1)
    if scores.shape != (boxes.shape[0],):
        raise InvalidInputError(f"box_scores must be ({boxes.shape[0]},), got shape {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise InvalidInputError("box_scores contain NaN or infinite values")
    return boxes, scores


@torch.no_grad()
def predict_topdown(
    model: VTTransPose,
    image: ImageInput,
    boxes: torch.Tensor | np.ndarray | list,
    box_scores: torch.Tensor | np.ndarray | list | None = None,
    flip_test: bool = True,
    use_dark: bool = True,
    batch_size: int = 32,
    padding: float = 1.25,
    fuse: bool = True,
    channels_last: bool | None = None,
    input_size: tuple[int, int] | None = None,
) -> PoseResult:
    """Keypoints of the people in ``boxes`` on one image.

    Boxes may lie partly or wholly outside the image (the outside is padded with ``model.preprocess.pad_value``).
    Boxes of zero width and/or height are valid: the crop is grown to the input aspect ratio and to at least
    2 pixels. A box ``(x1, y1, x2, y2)`` is treated as the COCO box ``(x1, y1, x2 - x1, y2 - y1)``, as the official
    code treats a detection (:meth:`~posecommon.codecs.TopDownCodec.regions`). The model runs in eval mode, by
    default as a cached fused copy (:mod:`posecommon.inference`); the model's own train/eval mode is left as it was.

    Args:
        model: A VTTransPose / TransPose-H-S model (anything with ``preprocess``, ``keypoint_spec`` and a forward
            returning ``(B, K, h, w)`` heatmaps).
        image: Path, PIL image, numpy array or ``(3, H, W)`` uint8 tensor (see :func:`posecommon.image.load_image`).
        boxes: ``(N, 4)`` person boxes ``(x1, y1, x2, y2)`` in image pixels; ``N = 0`` gives an empty result.
        box_scores: ``(N,)`` detector scores; 1 when omitted.
        flip_test: Average with the heatmaps of the mirrored crops (TransPose's flip test; no heatmap shift).
        use_dark: Decode with DARK (TransPose's default); otherwise argmax + quarter-pixel shift.
        batch_size: Crops per forward pass.
        padding: Box padding factor.
        fuse: Run a cached copy with BatchNorm folded and AsymmetricConv merged
            (:func:`~posecommon.inference.inference_module`).
        channels_last: Run in channels-last memory; ``None``: on CPU only.
        input_size: Crop size ``(H, W)``; ``None``: ``model.preprocess.input_size`` (the size it was built for).

    Returns:
        :class:`~posecommon.PoseResult` on the model's device: the input boxes, instance scores
        ``box score x mean keypoint confidence (> 0.2)`` and ``(N, K, 3)`` keypoints ``(x, y, heatmap maximum)``
        in image pixels.

    Raises:
        BadImageError: the image cannot be loaded.
        InvalidInputError: boxes are not ``(N, 4)``, contain NaN/inf, or are inverted (``x2 < x1`` or ``y2 < y1``);
            ``box_scores`` has the wrong shape.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
    pixels = load_image(image)
    boxes, box_scores = _as_boxes(boxes, box_scores)
    param = next(model.parameters())
    num_joints = model.keypoint_spec.num_joints
    if boxes.shape[0] == 0:
        return PoseResult.empty(num_joints, device=param.device)
    preprocess = model.preprocess
    input_h, input_w = input_size or preprocess.input_size
    # regions and crops do not depend on the heatmap size; decoding uses the network's output size
    cropper = TopDownCodec((input_h, input_w), (input_h, input_w), padding=padding)
    regions = cropper.regions(boxes)
    pixels = pixels.to(param.device)
    keypoints, confidences = [], []
    with running_for_inference(model, fuse, channels_last) as net:
        for start in range(0, boxes.shape[0], batch_size):
            part = regions[start : start + batch_size]
            crops = cropper.crop(pixels, part, pad_value=preprocess.pad_value)
            inputs = preprocess.normalize(crops).to(param.dtype)
            heatmaps = net(inputs).float()
            if flip_test:
                flipped = net(inputs.flip(-1)).float()
                heatmaps = flip_average(heatmaps, flipped, model.keypoint_spec.flip_indices)
            codec = TopDownCodec((input_h, input_w), tuple(heatmaps.shape[-2:]), use_dark=use_dark, padding=padding)
            image_points, scores = codec.decode(heatmaps, part)
            keypoints.append(image_points)
            confidences.append(scores)
    keypoints = torch.cat(keypoints)
    confidences = torch.cat(confidences)
    boxes, box_scores = boxes.to(param.device), box_scores.to(param.device)
    return PoseResult(
        boxes, instance_scores(box_scores, confidences), torch.cat((keypoints, confidences[..., None]), dim=-1)
    )
