"""``posezoo predict``: run a model over images, directories, globs, URLs and videos and write what it finds.

What one run writes into the output directory:

- per image ``<stem>.png`` (the poses drawn, box scores shown) and ``<stem>.json`` (:meth:`PoseResult.to_json`:
  image path and size, keypoint names, people); two inputs with the same stem get ``<stem>_2``, ``<stem>_3``, ...
- per video ``<stem>.mp4`` (every frame annotated, same frame rate) and ``<stem>.jsonl`` (one
  :meth:`PoseResult.to_json` line per frame, with its ``frame_index``);
- ``predictions.json``: the COCO keypoint results of all images (not video frames) in one list, ``image_id`` being
  the image's id in the annotation file given with ``--ann`` or else its file name.

The output directory is checked before any model is loaded: it must be a directory that can be written, and an
existing non-empty one is refused unless ``exist_ok`` (then files of the same name are overwritten and other files
are left as they are). An input that cannot be read (missing, corrupt, not in the annotation file, a failing
download or video) is reported with the reason at WARNING, skipped and counted; the run goes on with the next one.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub.utils import tqdm

from ..errors import InvalidInputError, PosezooError
from ..media.download import is_url
from ..media.video import VIDEO_SUFFIXES, VideoWriter, video_info
from ..predict import PosePipeline, PredictKernel, RunOptions, move_to_device, predict_frames
from ..predict.sources import IMAGE_SUFFIXES, Frame, Source, SourceFailure, iter_frames
from ..structures import PoseResult

__all__ = [
    "PredictOptions",
    "PredictSummary",
    "build_kernel",
    "check_output_dir",
    "coco_image_ids",
    "run_predictions",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    """What ``posezoo predict`` passes to the models (``None``: the model's default).

    Args:
        batch_size: Frames per forward pass (images; the detector's in two-stage mode).
        device: ``"cpu"``, ``"cuda"``, ... (moves the models).
        half: float16 on CUDA, bfloat16 on CPU (autocast).
        input_size: The model's input size ``(H, W)`` (letterbox size, or crop size of a top-down model).
        detector_input_size: The detector's letterbox size in two-stage mode.
        flip: Top-down flip test.
        score_threshold: Minimum detection score (single-stage model or detector).
        iou_threshold: Detection NMS IoU.
        max_people: Detections kept per image.
        keypoint_threshold: Minimum confidence of a drawn keypoint.
    """

    batch_size: int = 1
    device: str | None = None
    half: bool = False
    input_size: tuple[int, int] | None = None
    detector_input_size: tuple[int, int] | None = None
    flip: bool = True
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_people: int | None = None
    keypoint_threshold: float = 0.3


@dataclass
class PredictSummary:
    """What a run wrote and skipped.

    Args:
        images: Annotated images written.
        videos: Annotated videos written.
        frames: Video frames processed.
        people: People found, over images and frames.
        failures: ``(input, reason)`` of every skipped input.
        predictions: Path of ``predictions.json``.
    """

    images: int = 0
    videos: int = 0
    frames: int = 0
    people: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    predictions: Path | None = None


def check_output_dir(path: str | Path, exist_ok: bool = False) -> Path:
    """Create (if needed) and check the output directory before anything heavy runs.

    Raises:
        InvalidInputError: ``path`` is a file, cannot be created or written, or is a non-empty directory and
            ``exist_ok`` is false.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file; pass a directory")
    if out.is_dir() and any(out.iterdir()) and not exist_ok:
        raise InvalidInputError(
            f"output directory {out} is not empty; pass --exist-ok to write into it (files of the same name are "
            "overwritten, others kept) or choose a new directory"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".posezoo-write-check-"):
            pass
    except OSError as err:
        raise InvalidInputError(f"cannot write to output directory {out}: {err}") from err
    return out


def coco_image_ids(ann_file: str | Path) -> dict[str, int]:
    """``{file name: image id}`` of a COCO annotation file's ``images`` (file names without directories).

    Raises:
        InvalidInputError: the file is missing, not JSON, or its ``images`` lack ``file_name`` / ``id``.
    """
    path = Path(ann_file)
    try:
        data = json.loads(path.read_text())
        return {Path(image["file_name"]).name: int(image["id"]) for image in data["images"]}
    except FileNotFoundError as err:
        raise InvalidInputError(f"annotation file not found: {path}") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InvalidInputError(
            f"{path} is not a COCO annotation file with images[].file_name and images[].id: {err}"
        ) from err


def build_kernel(model: Any, detector: Any | None, options: PredictOptions) -> PredictKernel:
    """The kernel ``posezoo predict`` runs: a single-stage model's, a top-down model's on the whole image, or a
    detector's followed by a top-down model's (:class:`~posecommon.PosePipeline`).

    Raises:
        InvalidInputError: a detector is given for a single-stage model, or a detector option without a detector.
    """
    top_down = model.preprocess.resize == "affine_crop"
    if detector is not None:
        if not top_down:
            raise InvalidInputError(f"{model.model_name} finds people itself; --detector is for top-down models")
        pipeline = PosePipeline(
            detector,
            model,
            score_threshold=options.score_threshold,
            iou_threshold=options.iou_threshold,
            max_people=options.max_people,
            detector_input_size=options.detector_input_size,
            flip_test=options.flip,
            input_size=options.input_size,
        )
        return pipeline.kernel()
    if options.detector_input_size is not None:
        raise InvalidInputError("--detector-input-size needs --detector")
    if top_down:
        return model.predict_kernel(flip_test=options.flip, input_size=options.input_size)
    if not options.flip:
        logger.warning("--no-flip has no effect on %s (single-stage models have no flip test)", model.model_name)
    detections: dict[str, Any] = {
        "score_threshold": options.score_threshold,
        "iou_threshold": options.iou_threshold,
        "input_size": options.input_size,
    }
    if options.max_people is not None:
        detections["max_people"] = options.max_people
    return model.predict_kernel(**detections)


def _problem_with(source: str) -> str | None:
    """Why ``source`` cannot be read, for a missing path or a glob matching nothing; None otherwise."""
    if is_url(source) or Path(source).exists():
        return None
    if any(ch in source for ch in "*?["):
        return None if glob.glob(source, recursive=True) else f"no file matches {source!r}"
    return f"no such file or directory: {source}"


def _count_frames(sources: Sequence[str]) -> int | None:
    """Number of images, plus video frames when every video declares its count; None when unknown."""
    total = 0
    for source in sources:
        path = Path(source)
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            suffix = file.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                try:
                    frames = video_info(file).frames
                except PosezooError:
                    frames = 1
                if frames is None:
                    return None
                total += frames
            elif suffix in IMAGE_SUFFIXES or not path.is_dir():
                total += 1
    return total


class _Writer:
    """Writes the pictures, per-image JSON, videos and JSON lines of one run."""

    def __init__(self, out: Path, ids: dict[str, int] | None, keypoint_threshold: float) -> None:
        self.out = out
        self.ids = ids
        self.keypoint_threshold = keypoint_threshold
        self.names: set[str] = set()
        self.coco: list[dict[str, Any]] = []
        self.video_path: str | None = None
        self.video: VideoWriter | None = None
        self.lines: Any = None

    def _unique(self, stem: str) -> str:
        name, number = stem, 1
        while name in self.names:
            number += 1
            name = f"{stem}_{number}"
        self.names.add(name)
        return name

    def image(self, result: PoseResult, summary: PredictSummary) -> None:
        if self.ids is not None:
            file_name = Path(result.image_path or "").name
            if file_name not in self.ids:
                raise InvalidInputError(f"{file_name} is not listed in the annotation file's images")
            result = dataclasses.replace(result, image_id=self.ids[file_name])
        name = self._unique(result.name)
        result.save(self.out, name, keypoint_threshold=self.keypoint_threshold)
        self.coco.extend(result.to_coco())
        summary.images += 1

    def frame(self, result: PoseResult, summary: PredictSummary) -> None:
        if result.image_path != self.video_path:
            self.close()
            name = self._unique(Path(result.image_path or "video").stem)
            info = video_info(result.image_path) if result.image_path else None
            self.video = VideoWriter(self.out / f"{name}.mp4", info.fps if info and info.fps else 25)
            self.lines = (self.out / f"{name}.jsonl").open("w")
            self.video_path = result.image_path
            summary.videos += 1
        picture = result.plot(keypoint_threshold=self.keypoint_threshold)
        self.video.write(np.asarray(picture))  # type: ignore[union-attr]
        self.lines.write(result.to_json() + "\n")
        summary.frames += 1

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
            self.lines.close()
        self.video, self.lines, self.video_path = None, None, None


def _fail(summary: PredictSummary, source: str, reason: str) -> None:
    logger.warning("skipped %s: %s", source, reason)
    summary.failures.append((source, reason))


def run_predictions(
    kernel: PredictKernel,
    sources: Sequence[str],
    out: Path,
    options: PredictOptions,
    ann_file: str | Path | None = None,
    progress: bool = True,
) -> PredictSummary:
    """Predict on every frame of ``sources`` and write the outputs described in the module docstring.

    Args:
        kernel: From :func:`build_kernel`.
        sources: Image files, directories, globs, URLs and videos.
        out: Output directory, already checked by :func:`check_output_dir`.
        options: Batch size, device, precision and drawing threshold (the model options are in ``kernel``).
        ann_file: COCO annotation file whose image ids ``predictions.json`` uses.
        progress: Show a progress bar when there is more than one frame.

    Returns:
        The counts and the skipped inputs.
    """
    summary = PredictSummary()
    run = RunOptions(batch_size=options.batch_size, device=options.device, half=options.half)
    move_to_device(kernel.modules, run.device)
    ids = coco_image_ids(ann_file) if ann_file is not None else None
    readable = []
    for source in sources:
        problem = _problem_with(source)
        if problem is None:
            readable.append(source)
        else:
            _fail(summary, source, problem)
    writer = _Writer(out, ids, options.keypoint_threshold)
    total = _count_frames([s for s in readable if not is_url(s)])
    if total is not None:
        total += sum(is_url(s) for s in readable)
    frames = iter_frames(Source("list", readable, len(readable)), errors="yield")
    bar = tqdm(frames, desc="predict", unit="frame", total=total, disable=not progress or total == 1)
    pending: list[Frame] = []

    def flush() -> None:
        if not pending:
            return
        try:
            results = predict_frames(kernel, pending, run)
        except PosezooError as err:
            for frame in pending:
                _fail(summary, frame.path or f"frame {frame.index}", str(err))
            results = []
        for result in results:
            try:
                if result.frame_index is None:
                    writer.image(result, summary)
                else:
                    writer.frame(result, summary)
                summary.people += len(result)
            except PosezooError as err:
                _fail(summary, result.image_path or "?", str(err))
        pending.clear()

    try:
        for entry in bar:
            if isinstance(entry, SourceFailure):
                _fail(summary, entry.source, entry.reason)
                continue
            pending.append(entry)
            if len(pending) >= options.batch_size:
                flush()
        flush()
    finally:
        writer.close()
        bar.close()
    summary.predictions = out / "predictions.json"
    summary.predictions.write_text(json.dumps(writer.coco))
    return summary
