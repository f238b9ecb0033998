"""Multi-person pose estimation from a detector and an optional top-down pose model."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from ..errors import InvalidInputError
from ..registry import create_model
from ..structures import PoseResult
from .run import check_batch_size, move_to_device, run_predict
from .sources import Frame, open_source

__all__ = ["PosePipeline"]


class _Detector(Protocol):
    def predict(self, images: Any, score_threshold: float, iou_threshold: float, **kwargs: Any) -> Any: ...


class _TopDownModel(Protocol):
    def predict(
        self, image: Any, boxes: torch.Tensor, box_scores: torch.Tensor | None = None, **kwargs: Any
    ) -> PoseResult: ...


def _check_options(pose_model: Any, options: dict[str, Any]) -> None:
    """Fail now, not after detection, when ``options`` are not keyword arguments of ``pose_model.predict``."""
    if not options:
        return
    if pose_model is None:
        raise InvalidInputError(f"pose-model options {sorted(options)} were given without a pose model")
    parameters = inspect.signature(pose_model.predict).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    reserved = {"source", "image", "boxes", "box_scores", "device", "half", "bgr", "stream"}  # set by the pipeline
    choices = sorted(set(parameters) - reserved)
    unknown = sorted(set(options) - set(choices))
    if unknown:
        raise InvalidInputError(
            f"unknown pose-model option(s) {unknown} for {type(pose_model).__name__}.predict; valid: {choices}"
        )


class PosePipeline:
    """Runs a single-stage detector (DRSI-Net) and, optionally, a top-down model (VTTransPose) on its boxes.

    - Single stage (``pose_model is None``): the detector's boxes, scores and keypoints are returned as they are.
    - Two stage: the detector supplies person boxes and box scores; the top-down model predicts the keypoints in
      each box; the instance score is ``box score x mean keypoint confidence (> 0.2)`` (HRNet/TransPose rule).

    :meth:`predict` (also ``pipeline(source)``) follows the predict contract of every model
    (:mod:`posecommon.predictor`): one result for one image, a list for a list, an iterator for a stream.

    Args:
        detector: A model with ``predict(images, score_threshold, iou_threshold, **options) -> list[PoseResult]``
            for a list of images; ``max_detections``, ``input_size`` and ``half`` are passed only when set.
        pose_model: A model with ``predict(image, boxes, box_scores, **options) -> PoseResult``, or None.
        score_threshold: Minimum detector score.
        iou_threshold: Detector NMS IoU.
        max_people: At most this many detections per image (best scores first); None: the detector's default.
        detector_input_size: The detector's letterbox size ``(H, W)``; None: its default.
        **pose_options: Keyword arguments of ``pose_model.predict`` (e.g. ``flip_test=False``,
            ``input_size=(256, 192)``); checked here against its signature.

    Raises:
        InvalidInputError: an option is not a keyword argument of ``pose_model.predict``, or a threshold or
            ``max_people`` is out of range.
    """

    def __init__(
        self,
        detector: _Detector,
        pose_model: _TopDownModel | None = None,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_people: int | None = None,
        detector_input_size: Sequence[int] | None = None,
        **pose_options: Any,
    ) -> None:
        for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {value}")
        bad_cap = isinstance(max_people, bool) or not isinstance(max_people, int) or max_people < 1
        if max_people is not None and bad_cap:
            raise InvalidInputError(f"max_people must be a positive integer or None, got {max_people!r}")
        _check_options(pose_model, pose_options)
        self.detector = detector
        self.pose_model = pose_model
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_people = max_people
        self.detector_input_size = tuple(detector_input_size) if detector_input_size is not None else None
        self.pose_options = pose_options

    @classmethod
    def from_names(
        cls,
        detector: str = "drsi_net_s",
        pose_model: str | None = "vttranspose_h_s",
        *,
        detector_pretrained: bool | str = False,
        pose_pretrained: bool | str = False,
        detector_kwargs: dict[str, Any] | None = None,
        pose_kwargs: dict[str, Any] | None = None,
        **pipeline_options: Any,
    ) -> PosePipeline:
        """Build both models from the registry, each with its own weights.

        Args:
            detector: Registry name of the detector.
            pose_model: Registry name of the top-down model, or None (single stage).
            detector_pretrained: ``pretrained=`` of the detector (see :func:`~posecommon.create_model`).
            pose_pretrained: ``pretrained=`` of the pose model.
            detector_kwargs: Config overrides of the detector (``create_model(detector, **detector_kwargs)``).
            pose_kwargs: Config overrides of the pose model.
            **pipeline_options: Arguments of :class:`PosePipeline` (thresholds, ``max_people``,
                ``detector_input_size``, pose-model options); checked before any model is built.

        Raises:
            InvalidInputError: ``pretrained=`` was passed (say which model), or an option is unknown.
            UnknownModelError: a name is not registered.
        """
        if "pretrained" in pipeline_options:
            raise InvalidInputError(
                "from_names takes detector_pretrained= and pose_pretrained= (the two models load different weights)"
            )
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "detector", "pose_model", "pose_options"}
        pose_options = {k: v for k, v in pipeline_options.items() if k not in own}
        if pose_model is None and pose_options:
            raise InvalidInputError(f"unknown PosePipeline option(s) {sorted(pose_options)}; valid: {sorted(own)}")
        pose = create_model(pose_model, pretrained=pose_pretrained, **(pose_kwargs or {})) if pose_model else None
        _check_options(pose, pose_options)
        det = create_model(detector, pretrained=detector_pretrained, **(detector_kwargs or {}))
        return cls(det, pose, **pipeline_options)  # type: ignore[arg-type]

    def _detector_options(self, batch: int, half: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold}
        if self.max_people is not None:
            options["max_detections"] = self.max_people
        if self.detector_input_size is not None:
            options["input_size"] = self.detector_input_size
        if half:
            options["half"] = True
        if batch > 1:
            options["batch_size"] = batch
        return options

    def _predict_frames(self, frames: list[Frame], half: bool) -> list[PoseResult]:
        pixels = [frame.pixels for frame in frames]
        detections = self.detector.predict(pixels, **self._detector_options(len(pixels), half))
        if self.pose_model is None:
            return list(detections)
        options = {**self.pose_options, **({"half": True} if half else {})}
        return [
            self.pose_model.predict(image, found.boxes, found.scores, **options)
            for image, found in zip(pixels, detections, strict=True)
        ]

    def predict(
        self,
        source: Any,
        *,
        batch_size: int = 1,
        device: torch.device | str | None = None,
        half: bool = False,
        bgr: bool = False,
        stream: bool = False,
    ) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
        """Poses in one image, a list of images, a directory, glob, URL, video or generator.

        Args:
            source: See :mod:`posecommon.sources`.
            batch_size: Images per detector forward pass.
            device: Move both models there first (in place); None keeps them where they are.
            half: Run both networks in float16 (CUDA) / bfloat16 (CPU) under autocast.
            bgr: Arrays and tensors are in BGR channel order.
            stream: Return an iterator whatever the input.

        Returns:
            One :class:`PoseResult` per image, in that image's pixel coordinates (single input: the result
            itself; list: a list; stream: an iterator).

        Raises:
            BadImageError: an image cannot be read.
        """
        check_batch_size(batch_size)
        opened = open_source(source, bgr=bgr)
        models = [m for m in (self.detector, self.pose_model) if isinstance(m, torch.nn.Module)]
        if models:
            move_to_device(models, device)
        spec = getattr(self.pose_model if self.pose_model is not None else self.detector, "keypoint_spec", None)
        return run_predict(
            opened,
            lambda frames: self._predict_frames(frames, half),
            batch_size=batch_size,
            stream=stream,
            keypoint_spec=spec,
        )

    __call__ = predict
