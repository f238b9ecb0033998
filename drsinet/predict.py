"""End-to-end DRSI-Net inference: images -> letterbox -> forward -> decode -> NMS -> original image pixels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from posecommon.errors import InvalidInputError
from posecommon.ops.letterbox import letterbox, unletterbox_boxes, unletterbox_points
from posecommon.predict.inference import running_for_inference
from posecommon.predict.run import autocast_context, check_batch_size, move_to_device, run_predict
from posecommon.predict.sources import Frame, open_source
from posecommon.structures import PoseResult

from .decode import decode_outputs, postprocess

if TYPE_CHECKING:
    from .model import DRSINet

__all__ = ["predict", "predict_pixels"]


def _check_arguments(
    model: DRSINet, input_size: Sequence[int] | None, score_threshold: float, iou_threshold: float, max_detections: int
) -> tuple[int, int]:
    size = tuple(int(v) for v in (input_size or model.config.input_size))
    step = max(model.config.strides)
    if len(size) != 2 or any(v <= 0 or v % step for v in size):
        raise InvalidInputError(f"input_size must be two positive multiples of {step}, got {input_size}")
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise InvalidInputError(f"{name} must be in [0, 1], got {value}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise InvalidInputError(f"max_detections must be a positive integer, got {max_detections!r}")
    return size  # type: ignore[return-value]


def predict(
    model: DRSINet,
    source: Any,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    input_size: Sequence[int] | None = None,
    max_detections: int = 300,
    *,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    half: bool = False,
    bgr: bool = False,
    stream: bool = False,
    fuse: bool = True,
    channels_last: bool | None = None,
) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
    """Detect people and keypoints in images, following the predict contract of :mod:`posecommon.predictor`.

    Each image is letterboxed to ``input_size`` (pad bottom/right with the model's pad value), run through
    ``model`` in eval mode (by default a cached fused copy, see :mod:`posecommon.inference`; the model's own
    train/eval mode is left as it was), decoded, filtered by score and NMS, and mapped back to its own pixels.

    Args:
        model: A DRSI-Net.
        source: An image, a list of images, a directory, glob, URL, video or generator
            (see :mod:`posecommon.sources`).
        score_threshold: Minimum ``objectness * class`` score.
        iou_threshold: NMS IoU.
        input_size: Letterbox size ``(H, W)``; defaults to the model's ``config.input_size``. Multiples of 64.
        max_detections: Per-image cap.
        batch_size: Images per forward pass.
        device: Move the model there first (in place); None keeps it where it is.
        half: Run the network in float16 (CUDA) / bfloat16 (CPU) under autocast; decoding stays float32.
        bgr: Arrays and tensors are in BGR channel order.
        stream: Return an iterator whatever the input.
        fuse: Run a cached copy with BatchNorm folded (:func:`~posecommon.inference.inference_module`).
        channels_last: Run in channels-last memory; ``None``: on CPU only.

    Returns:
        One :class:`~posecommon.structures.PoseResult` (boxes xyxy clipped to the image, keypoints
        ``(x, y, conf)`` not clipped, in that image's pixels, on the model's device) for a single image, a list for
        a list input, an iterator for a stream.

    Raises:
        BadImageError: an image cannot be read or has an unsupported type/mode/shape.
        InvalidInputError: ``input_size`` is not a pair of positive multiples of the largest stride, a
            threshold is outside ``[0, 1]``, or ``max_detections`` / ``batch_size`` is not positive.
    """
    size = _check_arguments(model, input_size, score_threshold, iou_threshold, max_detections)
    check_batch_size(batch_size)
    opened = open_source(source, bgr=bgr)
    move_to_device([model], device)

    def predict_frames(frames: list[Frame]) -> list[PoseResult]:
        return predict_pixels(
            model,
            [frame.pixels for frame in frames],
            size,
            score_threshold,
            iou_threshold,
            max_detections,
            half=half,
            fuse=fuse,
            channels_last=channels_last,
        )

    return run_predict(opened, predict_frames, batch_size=batch_size, stream=stream, keypoint_spec=model.keypoint_spec)


@torch.no_grad()
def predict_pixels(
    model: DRSINet,
    images: list[torch.Tensor],
    input_size: tuple[int, int],
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    half: bool = False,
    fuse: bool = True,
    channels_last: bool | None = None,
) -> list[PoseResult]:
    """One forward pass over loaded images (arguments already validated by :func:`predict`).

    Args:
        model: A DRSI-Net.
        images: ``(3, H_i, W_i)`` uint8 RGB tensors.
        input_size: Letterbox size ``(H, W)``.
        score_threshold: Minimum score.
        iou_threshold: NMS IoU.
        max_detections: Per-image cap.
        half: Autocast the network (float16 on CUDA, bfloat16 on CPU).
        fuse: Run the cached fused copy.
        channels_last: Channels-last memory; ``None``: on CPU only.

    Returns:
        One result per image, in its own pixels.
    """
    if not images:
        return []
    param = next(model.parameters())
    batch, infos = [], []
    pad_value = model.preprocess.pad_value
    for pixels in images:
        padded, info = letterbox(pixels.to(param.device), input_size, pad_value)
        batch.append(padded)
        infos.append(info)
    x = model.preprocess.normalize(torch.stack(batch)).to(device=param.device, dtype=param.dtype)
    with running_for_inference(model, fuse, channels_last) as net, autocast_context(param.device, half):
        outputs = net(x)
    outputs = [o.float() for o in outputs]
    boxes, scores, keypoints = decode_outputs(outputs, model.anchor_tensor(param.device), model.config.strides)
    results = postprocess(boxes, scores, keypoints, score_threshold, iou_threshold, max_detections=max_detections)
    return [
        PoseResult(
            _clip_boxes(unletterbox_boxes(r.boxes, info), info.image_size),
            r.scores,
            unletterbox_points(r.keypoints, info),
        )
        for r, info in zip(results, infos, strict=True)
    ]


def _clip_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clip ``(N, 4)`` xyxy boxes to the image, whose pixels span ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    height, width = image_size
    x = boxes[:, 0::2].clamp(-0.5, width - 0.5)
    y = boxes[:, 1::2].clamp(-0.5, height - 0.5)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
