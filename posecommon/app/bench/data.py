"""Data-pipeline benchmark of the suite (``posezoo bench --data``): training samples per second per worker.

A GPU is fed by DataLoader workers, each a process running one dataset with one torch thread and OpenCV's thread
pool off, so the number that matters is samples per second of one single-threaded worker. Measured pipelines
(training mode, default augmentation unless said otherwise):

- ``topdown``: :class:`~posecommon.data.TopDownCocoDataset` at 256x192 (one person crop per sample);
- ``multiperson S mosaic``: :class:`~posecommon.data.MultiPersonCocoDataset` at ``S`` = 640 and 960 with mosaic,
  flip, scale, translate and HSV (YOLO-Pose's recipe), and the same without HSV (``hsv off``);
- ``multiperson 640 letterbox``: no mosaic (one image per sample).

Images: by default a synthetic COCO-style set written as JPEG (quality 92) at 640x480, the size of most COCO photos
(:func:`~posecommon.data.generate_synthetic_coco`); ``--data-ann`` / ``--data-images`` measure a real COCO
keypoints file instead. Timing: the pipelines are timed in rounds, one after another in each round (so a change of
machine load hits all of them alike); each round draws ``samples`` samples with a fresh seed after ``warmup``
untimed ones; the median over rounds is reported, with both the wall clock and the process CPU clock (on a shared
machine the CPU clock does not count the time spent waiting for a core). The targets are the input-pipeline
targets of the project's issue 18 (per worker, default augmentation).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ...data.decode import single_threaded_opencv
from ...data.multiperson import MultiPersonCocoDataset
from ...data.synthetic import generate_synthetic_coco
from ...data.topdown import TopDownCocoDataset

__all__ = ["DATA_PIPELINES", "DataBenchSettings", "data_pipeline_benchmark", "format_data_markdown"]

_NO_HSV = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}

DATA_PIPELINES: dict[str, tuple[str, dict[str, Any], float | None]] = {
    "topdown 256x192": ("topdown", {"input_size": (256, 192)}, 150.0),
    "multiperson 640 mosaic": ("multiperson", {"input_size": 640}, 90.0),
    "multiperson 960 mosaic": ("multiperson", {"input_size": 960}, 40.0),
    "multiperson 640 mosaic, hsv off": ("multiperson", {"input_size": 640, **_NO_HSV}, None),
    "multiperson 960 mosaic, hsv off": ("multiperson", {"input_size": 960, **_NO_HSV}, None),
    "multiperson 640 letterbox": ("multiperson", {"input_size": 640, "mosaic": 0.0}, None),
}
"""Name -> (dataset kind, keyword arguments, target samples/s per worker or None)."""


@dataclass
class DataBenchSettings:
    """What the data-pipeline benchmark measures.

    Args:
        pipelines: Names from :data:`DATA_PIPELINES`.
        ann_file: COCO keypoints file to read; ``None`` generates the synthetic JPEG set.
        image_dir: Its image directory (with ``ann_file``).
        num_images: Images of the synthetic set.
        image_size: ``(H, W)`` of the synthetic images.
        samples: Samples per timed round and pipeline.
        rounds: Timed rounds (the median is reported).
        warmup: Untimed samples per pipeline before the rounds.
        threads: Torch threads while measuring (1, as in a DataLoader worker); OpenCV always runs sequentially,
            as in the training workers.
        clock: ``"wall"`` or ``"cpu"``: the clock the targets are checked with.
    """

    pipelines: tuple[str, ...] = tuple(DATA_PIPELINES)
    ann_file: str | None = None
    image_dir: str | None = None
    num_images: int = 16
    image_size: tuple[int, int] = (480, 640)
    samples: int = 40
    rounds: int = 5
    warmup: int = 4
    threads: int = 1
    clock: str = "wall"

    @classmethod
    def quick(cls, **overrides: Any) -> DataBenchSettings:
        """A smoke-test setting: few images and samples (numbers are not meaningful)."""
        values: dict[str, Any] = {"num_images": 4, "samples": 4, "rounds": 2, "warmup": 1}
        values.update(overrides)
        return cls(**values)


def _build(name: str, ann_file: Path, image_dir: Path) -> Dataset:
    kind, kwargs, _ = DATA_PIPELINES[name]
    dataset_class = TopDownCocoDataset if kind == "topdown" else MultiPersonCocoDataset
    return dataset_class(ann_file, image_dir, **kwargs)


def _time_samples(dataset: Dataset, indices: list[int]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for index in indices:
        dataset[index]
    return time.perf_counter() - wall, time.process_time() - cpu


def _measure(datasets: dict[str, Dataset], settings: DataBenchSettings) -> dict[str, list[tuple[float, float]]]:
    """Per pipeline, ``(wall_s, cpu_s)`` of each round of ``settings.samples`` samples."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in datasets}
    for dataset in datasets.values():
        torch.manual_seed(0)
        _time_samples(dataset, [i % len(dataset) for i in range(settings.warmup)])
    for round_index in range(settings.rounds):
        for name, dataset in datasets.items():
            torch.manual_seed(1 + round_index)
            start = round_index * settings.samples
            times[name].append(_time_samples(dataset, [(start + i) % len(dataset) for i in range(settings.samples)]))
    return times


def data_pipeline_benchmark(
    settings: DataBenchSettings, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Samples per second per worker of each pipeline in ``settings`` (see the module docstring).

    Returns:
        A JSON-able dict: ``source`` (what images were read), ``threads``, ``samples``, ``rounds`` and ``rows``,
        one per pipeline with the median ``samples_per_s`` (wall clock), ``cpu_samples_per_s`` (process CPU clock),
        the per-round rates (wall), the target and whether the median on ``settings.clock`` meets it.

    Raises:
        ValueError: an unknown pipeline name, or only one of ``ann_file`` / ``image_dir``.
    """
    unknown = sorted(set(settings.pipelines) - set(DATA_PIPELINES))
    if unknown:
        raise ValueError(f"unknown data pipelines {unknown}; choose from {sorted(DATA_PIPELINES)}")
    if (settings.ann_file is None) != (settings.image_dir is None):
        raise ValueError("give both ann_file and image_dir, or neither (synthetic images)")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="posezoo-data-bench-") as workdir:
            if settings.ann_file is None:
                h, w = settings.image_size
                made = generate_synthetic_coco(workdir, settings.num_images, image_size=(h, w), max_people=4, seed=0)
                ann_file, image_dir = made.ann_file, made.image_dir
                source = f"synthetic, {settings.num_images} JPEG images of {w}x{h} (quality 92)"
            else:
                ann_file, image_dir = Path(settings.ann_file), Path(str(settings.image_dir))
                source = str(ann_file)
            if progress is not None:
                progress(f"data pipelines on {source}")
            datasets = {name: _build(name, ann_file, image_dir) for name in settings.pipelines}
            with single_threaded_opencv():
                times = _measure(datasets, settings)
    finally:
        torch.set_num_threads(previous_threads)
    rows = []
    for name, rounds in times.items():
        wall = [settings.samples / t[0] for t in rounds]
        cpu = [settings.samples / t[1] for t in rounds]
        target = DATA_PIPELINES[name][2]
        rate = statistics.median(cpu if settings.clock == "cpu" else wall)
        rows.append(
            {
                "pipeline": name,
                "samples_per_s": statistics.median(wall),
                "cpu_samples_per_s": statistics.median(cpu),
                "round_samples_per_s": wall,
                "target": target,
                "met": None if target is None else rate >= target,
            }
        )
    return {
        "source": source,
        "threads": settings.threads,
        "clock": settings.clock,
        "samples": settings.samples,
        "rounds": settings.rounds,
        "rows": rows,
    }


def format_data_markdown(report: dict[str, Any]) -> list[str]:
    """The markdown lines of the data-pipeline section."""
    lines = [
        "",
        f"Data pipelines, training samples per second of one worker ({report['threads']} torch thread), "
        f"{report['source']}; median of {report['rounds']} rounds of {report['samples']} samples:",
        "",
        f"| pipeline | samples/s (wall) | samples/s (CPU clock) | target | met ({report['clock']} clock) |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        target = "-" if row["target"] is None else f">= {row['target']:.0f}"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "no")
        lines.append(
            f"| {row['pipeline']} | {row['samples_per_s']:.1f} | {row['cpu_samples_per_s']:.1f} | {target} | {met} |"
        )
    return lines
