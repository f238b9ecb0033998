"""Top-down predict kernel: person boxes on images -> affine crops -> heatmaps (+ flip test) -> keypoints in the image.

Shape key: N person boxes, K joints; boxes ``(N, 4)`` ``xyxy`` in image pixels; crops ``(N, 3, H, W)`` with
``(H, W)`` the crop size; heatmaps ``(N, K, h, w)``. Pixel centres are integer coordinates everywhere (see
:mod:`posecommon.ops.geometry`).

As TransPose's ``validate`` + ``evaluate`` (``lib/core/function.py:98-198``, ``lib/dataset/coco.py:290-357``), through
:class:`~posecommon.codecs.TopDownCodec`: each box becomes a region (``_xywh2cs``: centre ``x + (w - 1) / 2``,
input aspect ratio, padding 1.25), is cropped with the official affine transform, normalised with ImageNet
mean/std, run through the model together with the horizontally flipped crop (averaged after ``flip_back``, with
no shift), decoded with DARK in heatmap pixels, mapped straight back to the image with the inverse heatmap-size
transform, and scored ``box score x mean keypoint confidence above 0.2``
(:func:`posecommon.evaluation.instance_scores`). OKS-NMS across instances is the evaluation's job
(:func:`posecommon.evaluation.evaluate_model`), not prediction's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from posecommon.codecs import TopDownCodec, flip_average
from posecommon.errors import InvalidInputError
from posecommon.evaluation import instance_scores
from posecommon.model import PoseModel
from posecommon.predict import (
    PredictKernel,
    RunOptions,
    autocast_context,
    check_count,
    model_device,
    running_for_inference,
    whole_image_box,
)
from posecommon.structures import PoseResult

__all__ = ["TopDownKernel"]


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
    """Validated float32 CPU ``(N, 4)`` boxes and ``(N,)`` scores (NaN and inf are rejected)."""
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


def _check_input_size(input_size: Sequence[int] | None) -> tuple[int, int] | None:
    if input_size is None:
        return None
    size = tuple(input_size)
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 4 for v in size):
        raise InvalidInputError(
            f"input_size must be two multiples of 4 (the heatmap stride), at least 8, as (H, W); got {input_size!r}"
        )
    return size  # type: ignore[return-value]


class TopDownKernel(PredictKernel):
    """Keypoints of the people in given boxes (per-image inputs ``boxes`` and ``box_scores``), TransPose's way.

    Without boxes an image is one box covering it (:func:`~posecommon.predict.whole_image_box`), as ``posezoo
    predict`` does without a detector. Boxes may lie partly or wholly outside the image (the outside is padded with
    ``model.preprocess.pad_value``); boxes of zero width and/or height are valid (the crop is grown to the input
    aspect ratio and to at least 2 pixels). A box ``(x1, y1, x2, y2)`` is treated as the COCO box
    ``(x1, y1, x2 - x1, y2 - y1)``, as the official code treats a detection
    (:meth:`~posecommon.codecs.TopDownCodec.regions`). The model runs in eval mode, by default as a cached fused
    copy (:mod:`posecommon.predict.inference`); the model's own train/eval mode is left as it was.

    Per-image inputs (``predict(image, boxes, box_scores)``): ``boxes`` ``(N, 4)`` ``(x1, y1, x2, y2)`` in image
    pixels (``N = 0`` gives an empty result); ``box_scores`` ``(N,)`` detector scores, 1 when omitted.

    Args:
        model: A VTTransPose / TransPose-H-S model (anything with ``preprocess``, ``keypoint_spec`` and a forward
            returning ``(B, K, h, w)`` heatmaps).
        flip_test: Average with the heatmaps of the mirrored crops (TransPose's flip test; no heatmap shift).
        use_dark: Decode with DARK (TransPose's default); otherwise argmax + quarter-pixel shift.
        padding: Box padding factor.
        input_size: Crop size ``(H, W)``; ``None``: the size the model was built for.
        crop_batch_size: Crops per forward pass (the boxes of a batch of images are cropped together).

    Raises:
        InvalidInputError: a bad ``input_size`` (two multiples of 4, at least 8) or ``crop_batch_size``.
    """

    per_image_inputs = ("boxes", "box_scores")

    def __init__(
        self,
        model: PoseModel,
        flip_test: bool = True,
        use_dark: bool = True,
        padding: float = 1.25,
        input_size: Sequence[int] | None = None,
        crop_batch_size: int = 32,
    ) -> None:
        super().__init__(model.keypoint_spec, (model,))
        self.model = model
        self.flip_test = flip_test
        self.use_dark = use_dark
        self.padding = padding
        self.input_size = _check_input_size(input_size) or tuple(model.preprocess.input_size)
        self.crop_batch_size = check_count("crop_batch_size", crop_batch_size)

    @torch.no_grad()
    def __call__(
        self, images: Sequence[torch.Tensor], inputs: Sequence[Mapping[str, Any]], run: RunOptions
    ) -> list[PoseResult]:
        """Per image: the input boxes, instance scores ``box score x mean keypoint confidence (> 0.2)`` and
        ``(N, K, 3)`` keypoints ``(x, y, heatmap maximum)`` in image pixels, on the model's device."""
        device = model_device(self.model)
        boxes, scores = [], []
        for pixels, given in zip(images, inputs, strict=True):
            if given.get("boxes") is None and given.get("box_scores") is not None:
                raise InvalidInputError("box_scores were given without boxes")
            image_boxes = given.get("boxes")
            image_boxes, image_scores = _as_boxes(
                whole_image_box(pixels) if image_boxes is None else image_boxes, given.get("box_scores")
            )
            boxes.append(image_boxes)
            scores.append(image_scores)
        keypoints = self._keypoints(images, boxes, run, device)
        results = []
        for image_boxes, image_scores, points in zip(boxes, scores, keypoints, strict=True):
            image_boxes, image_scores = image_boxes.to(device), image_scores.to(device)
            if image_boxes.shape[0] == 0:
                results.append(PoseResult.empty(self.keypoint_spec.num_joints, device=device))
                continue
            results.append(PoseResult(image_boxes, instance_scores(image_scores, points[..., 2]), points))
        return results

    def _keypoints(
        self, images: Sequence[torch.Tensor], boxes: list[torch.Tensor], run: RunOptions, device: torch.device
    ) -> list[torch.Tensor]:
        """``(N_i, K, 3)`` keypoints of each image's boxes; crops of all images run ``crop_batch_size`` at a time."""
        preprocess = self.model.preprocess
        dtype = next(self.model.parameters()).dtype
        cropper = TopDownCodec(self.input_size, self.input_size, padding=self.padding)
        # one entry per crop: (image index, region)
        owners = torch.cat([torch.full((b.shape[0],), i, dtype=torch.long) for i, b in enumerate(boxes)])
        regions = cropper.regions(torch.cat(boxes)) if owners.numel() else None
        points: list[torch.Tensor] = []
        flip_indices = self.keypoint_spec.flip_indices
        with running_for_inference(self.model, run.fuse, run.channels_last) as net:
            for start in range(0, owners.numel(), self.crop_batch_size):
                part = slice(start, start + self.crop_batch_size)
                crops = torch.cat(
                    [
                        cropper.crop(images[int(i)].to(device), regions[part][owners[part] == i], preprocess.pad_value)
                        for i in owners[part].unique_consecutive()
                    ]
                )
                inputs = preprocess.normalize(crops).to(dtype)
                with autocast_context(device, run.half):
                    heatmaps = net(inputs).float()
                    flipped = net(inputs.flip(-1)).float() if self.flip_test else None
                if flipped is not None:
                    heatmaps = flip_average(heatmaps, flipped, flip_indices)
                codec = TopDownCodec(
                    self.input_size, tuple(heatmaps.shape[-2:]), use_dark=self.use_dark, padding=self.padding
                )
                image_points, confidences = codec.decode(heatmaps, regions[part])
                points.append(torch.cat((image_points, confidences[..., None]), dim=-1))
        joined = torch.cat(points) if points else torch.zeros(0, self.keypoint_spec.num_joints, 3, device=device)
        return list(joined.split([b.shape[0] for b in boxes]))
