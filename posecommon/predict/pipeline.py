"""Multi-person pose estimation from a detector and an optional top-down pose model: one kernel feeding another."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch

from ..errors import InvalidInputError
from ..registry import create_model
from ..structures import PoseResult
from .kernel import PredictKernel, RunOptions, check_count, check_fraction
from .run import run_predict

__all__ = ["PipelineKernel", "PosePipeline"]


class _Predictor(Protocol):
    def predict_kernel(self, **options: Any) -> PredictKernel: ...


def _check_options(pose_model: Any, options: dict[str, Any]) -> None:
    """Fail now, not after detection, when ``options`` are not prediction options of ``pose_model``."""
    if not options:
        return
    if pose_model is None:
        raise InvalidInputError(f"pose-model options {sorted(options)} were given without a pose model")
    parameters = inspect.signature(pose_model.predict_kernel).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise InvalidInputError(
            f"unknown pose-model option(s) {unknown} for {type(pose_model).__name__}; valid: {sorted(parameters)}"
        )


class PipelineKernel(PredictKernel):
    """The detector's kernel, then (optionally) the top-down kernel on the detector's boxes and scores.

    Args:
        detector: Kernel giving person boxes and scores (and keypoints) per image.
        pose: Top-down kernel taking ``boxes`` and ``box_scores`` per image, or None (single stage).
    """

    def __init__(self, detector: PredictKernel, pose: PredictKernel | None = None) -> None:
        modules = (*detector.modules, *(pose.modules if pose is not None else ()))
        super().__init__((pose or detector).keypoint_spec, modules)
        self.detector = detector
        self.pose = pose

    def __call__(
        self, images: Sequence[torch.Tensor], inputs: Sequence[Mapping[str, Any]], run: RunOptions
    ) -> list[PoseResult]:
        """Detections per image; with a pose kernel, its keypoints in the detected boxes (instance score ``box
        score x mean keypoint confidence > 0.2``)."""
        found = self.detector(images, inputs, run)
        if self.pose is None:
            return found
        boxes = [{"boxes": result.boxes, "box_scores": result.scores} for result in found]
        return self.pose(images, boxes, run)


class PosePipeline:
    """Runs a single-stage detector (DRSI-Net) and, optionally, a top-down model (VTTransPose) on its boxes.

    - Single stage (``pose_model is None``): the detector's boxes, scores and keypoints are returned as they are.
    - Two stage: the detector supplies person boxes and box scores; the top-down model predicts the keypoints in
      each box; the instance score is ``box score x mean keypoint confidence (> 0.2)`` (HRNet/TransPose rule).

    :meth:`predict` (also ``pipeline(source)``) follows the predict contract of every model
    (:mod:`posecommon.predict.run`): one result for one image, a list for a list, an iterator for a stream.

    Args:
        detector: A model whose ``predict_kernel`` takes ``score_threshold``, ``iou_threshold``, ``max_people``
            and ``input_size`` (DRSI-Net); the last two are passed only when set.
        pose_model: A top-down model whose kernel takes per-image ``boxes`` and ``box_scores``, or None.
        score_threshold: Minimum detector score.
        iou_threshold: Detector NMS IoU.
        max_people: At most this many detections per image (best scores first); None: the detector's default.
        detector_input_size: The detector's letterbox size ``(H, W)``; None: its default.
        **pose_options: Prediction options of the pose model (keywords of its ``predict_kernel``, e.g.
            ``flip_test=False``, ``input_size=(256, 192)``); checked here against its signature.

    Raises:
        InvalidInputError: an option is not a prediction option of the pose model, or a threshold or
            ``max_people`` is out of range.
    """

    def __init__(
        self,
        detector: _Predictor,
        pose_model: _Predictor | None = None,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_people: int | None = None,
        detector_input_size: Sequence[int] | None = None,
        **pose_options: Any,
    ) -> None:
        _check_options(pose_model, pose_options)
        self.detector = detector
        self.pose_model = pose_model
        self.score_threshold = check_fraction("score_threshold", score_threshold)
        self.iou_threshold = check_fraction("iou_threshold", iou_threshold)
        self.max_people = None if max_people is None else check_count("max_people", max_people)
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

    def kernel(self) -> PipelineKernel:
        """The pipeline as one kernel (what :meth:`predict`, ``posezoo predict`` and evaluation run)."""
        options: dict[str, Any] = {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold}
        if self.max_people is not None:
            options["max_people"] = self.max_people
        if self.detector_input_size is not None:
            options["input_size"] = self.detector_input_size
        detector = self.detector.predict_kernel(**options)
        pose = self.pose_model.predict_kernel(**self.pose_options) if self.pose_model is not None else None
        return PipelineKernel(detector, pose)

    def predict(self, source: Any, **run: Any) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
        """Poses in one image, a list of images, a directory, glob, URL, video or generator.

        Args:
            source: See :mod:`posecommon.predict.sources`.
            **run: Run options (:class:`~posecommon.predict.RunOptions`); ``batch_size`` is images per detector
                forward pass, ``device`` moves both models, ``half`` runs both networks in reduced precision.

        Returns:
            One :class:`~posecommon.PoseResult` per image, in that image's pixel coordinates (single input: the
            result itself; list: a list; stream: an iterator).

        Raises:
            InvalidInputError: an unknown run option.
            BadImageError: an image cannot be read.
        """
        return run_predict(self.kernel, source, **run)

    __call__ = predict
