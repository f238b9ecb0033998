"""Video files through PyAV (the optional ``video`` extra): frames are decoded one at a time, never loaded whole.

``pip install "posezoo[video]"`` (from a source checkout: ``pip install -e ".[video]"``) installs PyAV, the
maintained Python binding of FFmpeg. Without it, reading or writing a video raises
:class:`~posecommon.errors.MissingDependencyError` with that advice; everything else in posezoo works.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import BadImageError, MissingDependencyError

__all__ = ["VIDEO_SUFFIXES", "VideoInfo", "VideoWriter", "is_video_path", "read_video_frames", "video_info"]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
"""File suffixes read as videos (lower case); every other file is read as an image."""


def is_video_path(path: str | Path) -> bool:
    """Whether ``path`` names a video by its suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def _av() -> ModuleType:
    try:
        import av
    except ImportError as err:
        raise MissingDependencyError(
            "reading and writing videos needs PyAV: pip install 'posezoo[video]' (from a source checkout: "
            "pip install -e '.[video]')"
        ) from err
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream declares.

    Args:
        fps: Average frame rate (frames per second), or None when the container does not say.
        frames: Number of frames, or None when the container does not say.
        width: Frame width in pixels.
        height: Frame height in pixels.
    """

    fps: Fraction | None
    frames: int | None
    width: int
    height: int


def _open(path: str | Path) -> Any:
    av = _av()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise BadImageError(f"cannot open video {path}: {err}") from err
    if not container.streams.video:
        container.close()
        raise BadImageError(f"{path} has no video stream")
    return container


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size of a video file.

    Raises:
        MissingDependencyError: PyAV is not installed.
        BadImageError: the file cannot be opened or has no video stream.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        return VideoInfo(
            fps=Fraction(rate) if rate else None,
            frames=int(stream.frames) or None,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
        )


def read_video_frames(path: str | Path) -> Iterator[torch.Tensor]:
    """Decode a video's first video stream frame by frame.

    Yields:
        ``(3, H, W)`` uint8 RGB tensors, in presentation order.

    Raises:
        MissingDependencyError: PyAV is not installed.
        BadImageError: the file cannot be opened, has no video stream, or a frame cannot be decoded (after the
            frames decoded before it were yielded).
    """
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                pixels = frame.to_ndarray(format="rgb24")
                yield torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        except (av.FFmpegError, OSError, ValueError) as err:
            raise BadImageError(f"cannot decode video {path}: {err}") from err


class VideoWriter:
    """Writes RGB frames to a video file (H.264 when PyAV has libx264, else MPEG-4 part 2), as a context manager.

    Frames of odd width or height are padded with one black column/row (the encoders need even sizes).

    Args:
        path: Output file (``.mp4``).
        fps: Frame rate.

    Raises:
        MissingDependencyError: PyAV is not installed.
    """

    def __init__(self, path: str | Path, fps: Fraction | float = 25) -> None:
        self._av = _av()
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001) if fps else Fraction(25)
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame (every frame must have the size of the first)."""
        height, width = image.shape[:2]
        pad_h, pad_w = height % 2, width % 2
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        if self._container is None:
            codec = "libx264" if "libx264" in self._av.codecs_available else "mpeg4"
            self._container = self._av.open(str(self.path), mode="w")
            self._stream = self._container.add_stream(codec, rate=self.fps)
            self._stream.width, self._stream.height = image.shape[1], image.shape[0]
            self._stream.pix_fmt = "yuv420p"
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (nothing is written when no frame was)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
