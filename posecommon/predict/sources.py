"""Normalise what a user passes to ``predict`` into a stream of frames, and say which result type it gets back.

Accepted inputs (:func:`open_source`):

========================================  ==========  ==============================================================
input                                     kind        frames
========================================  ==========  ==============================================================
path of an image file                     single      the image
``http(s)://`` URL of an image            single      downloaded with a timeout and a size limit, then decoded
PIL image, numpy ``(H, W[, C])`` array,   single      the image (arrays: uint8, uint16 or float in ``[0, 1]``;
``(C, H, W)`` tensor                                  ``bgr=True`` for OpenCV's channel order)
numpy ``(B, H, W, C)``, tensor            list        one frame per image of the batch
``(B, C, H, W)``
directory                                 list        its image and video files (not recursive), sorted by name
glob pattern (``"shots/*.jpg"``)          list        the matching files, sorted
list or tuple of any of the above         list        each element's frames, in order
path of a video file                      stream      its frames, decoded one at a time (:mod:`~posecommon.media.video`)
generator / iterator / other iterable     stream      each element's frames, read lazily
========================================  ==========  ==============================================================

``predict`` returns one :class:`~posecommon.PoseResult` for a *single* input, a list for a *list* input and an
iterator for a *stream* (or for any input with ``stream=True``, which keeps memory flat on long inputs). Inside a
list, a video contributes all its frames (so a list result can be longer than the list). Images are read lazily in
every case; an unreadable image raises :class:`~posecommon.errors.BadImageError` naming it when it is reached
(or, with ``errors="yield"``, becomes a :class:`SourceFailure` in the stream, as ``posezoo predict`` uses it).

Decisions: directories and globs are lists (a known, finite set of files whose results a user indexes), videos are
streams (frames are many and arrive over time). A directory or glob with no image or video file is an error, not an
empty list. Webcams and video URLs are not read (download the video first).
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import BadImageError, PosezooError
from ..media.download import download, is_url
from ..media.image import load_image
from ..media.video import VIDEO_SUFFIXES, is_video_path, read_video_frames

__all__ = [
    "IMAGE_SUFFIXES",
    "Frame",
    "Source",
    "SourceFailure",
    "iter_frames",
    "open_source",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
"""File suffixes a directory listing takes as images (lower case); videos: :data:`~posecommon.media.VIDEO_SUFFIXES`."""

SourceKind = Literal["single", "list", "stream"]


@dataclass(frozen=True)
class Frame:
    """One loaded image ready for a model.

    Args:
        pixels: ``(3, H, W)`` uint8 RGB.
        index: Position of the frame in the output (0, 1, 2, ... over the whole source).
        path: The file or URL it came from, if any.
        frame_index: Position in its video, for video frames.
        from_file: The pixels can be read again from ``path`` (a local image file), so results need not keep them.
    """

    pixels: torch.Tensor
    index: int = 0
    path: str | None = None
    frame_index: int | None = None
    from_file: bool = False


@dataclass(frozen=True)
class SourceFailure:
    """An input that could not be read, in a stream opened with ``errors="yield"``.

    Args:
        source: The file, URL or a description of the input.
        reason: Why it failed.
    """

    source: str
    reason: str


@dataclass(frozen=True)
class Source:
    """A normalised input: its kind (which decides the return type of ``predict``) and its items.

    Args:
        kind: ``"single"``, ``"list"`` or ``"stream"``.
        items: The raw inputs, each of which yields one or more frames (a video yields many).
        length: Number of items when known (for progress bars), else None.
        bgr: Arrays and tensors are in BGR order.
    """

    kind: SourceKind
    items: Iterable[Any]
    length: int | None
    bgr: bool = False


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _directory_files(path: Path) -> list[Path]:
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise BadImageError(f"directory {path} holds no image or video file ({', '.join(sorted(suffixes))})")
    return files


def _glob_files(pattern: str) -> list[Path]:
    files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise BadImageError(f"no file matches {pattern!r}")
    return files


def _expand_path(item: str | Path) -> list[Any] | None:
    """The files a directory or glob stands for (None for anything else); raises when they are none."""
    text = str(item)
    if is_url(text):
        return None
    path = Path(text)
    if path.is_dir():
        return list(_directory_files(path))
    if _has_glob(text) and not path.exists():
        return list(_glob_files(text))
    return None


def _batch_items(item: Any) -> list[Any] | None:
    """The images of a batched array / tensor (None when ``item`` is not one)."""
    if isinstance(item, np.ndarray) and item.ndim == 4:
        return list(item)
    if isinstance(item, torch.Tensor) and item.dim() == 4:
        return list(item.unbind(0))
    return None


def open_source(source: Any, bgr: bool = False) -> Source:
    """Classify ``source`` (see the module docstring) and list its items; nothing is decoded yet.

    Directories and globs are listed here, so a missing directory, an empty one or a pattern that matches
    nothing fails at once.

    Args:
        source: Any accepted input.
        bgr: Arrays and tensors are in BGR channel order.

    Returns:
        The :class:`Source`.

    Raises:
        BadImageError: an unsupported type, an empty directory or a glob that matches nothing.
    """
    if isinstance(source, (str, Path)):
        files = _expand_path(source)
        if files is not None:
            return Source("list", files, len(files), bgr)
        if not is_url(str(source)) and is_video_path(source):
            return Source("stream", [source], None, bgr)
        return Source("single", [source], 1, bgr)
    if isinstance(source, Image.Image):
        return Source("single", [source], 1, bgr)
    batch = _batch_items(source)
    if batch is not None:
        return Source("list", batch, len(batch), bgr)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return Source("single", [source], 1, bgr)
    if isinstance(source, (list, tuple)):
        return Source("list", list(source), len(source), bgr)
    if isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        return Source("stream", source, None, bgr)
    raise BadImageError(
        f"unsupported input {type(source).__name__}; pass a path, directory, glob, URL, video, PIL image, numpy "
        "array, tensor, or a list or generator of these"
    )


def _load_url(url: str) -> torch.Tensor:
    data = download(url)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return load_image(opened)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise BadImageError(f"cannot read image {url}: {err}") from err


def _describe(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    shape = getattr(item, "shape", None) or getattr(item, "size", None)
    return f"{type(item).__name__} {tuple(shape) if shape is not None else ''}".strip()


def _frames_of(item: Any, bgr: bool) -> Iterator[tuple[torch.Tensor, str | None, int | None, bool]]:
    """``(pixels, path, frame_index, from_file)`` for every frame of one item (nested lists are flattened)."""
    if isinstance(item, (str, Path)):
        files = _expand_path(item)
        if files is not None:
            for file in files:
                yield from _frames_of(file, bgr)
        elif is_url(str(item)):
            yield _load_url(str(item)), str(item), None, False
        elif is_video_path(item):
            for index, pixels in enumerate(read_video_frames(item)):
                yield pixels, str(item), index, False
        else:
            yield load_image(item), str(item), None, True
        return
    batch = _batch_items(item)
    if batch is not None:
        for image in batch:
            yield load_image(image, bgr=bgr), None, None, False
        return
    if isinstance(item, (list, tuple)):
        for element in item:
            yield from _frames_of(element, bgr)
        return
    yield load_image(item, bgr=bgr), None, None, False


def iter_frames(source: Source, errors: Literal["raise", "yield"] = "raise") -> Iterator[Frame | SourceFailure]:
    """The frames of ``source``, loaded one at a time.

    Args:
        source: From :func:`open_source`.
        errors: ``"raise"``: an unreadable item raises its error; ``"yield"``: it becomes a :class:`SourceFailure`
            and the next item is read (a video that fails half-way keeps the frames decoded before).

    Yields:
        :class:`Frame` objects (``index`` counts the frames), and with ``errors="yield"`` :class:`SourceFailure`
        objects.

    Raises:
        BadImageError, MissingDependencyError: with ``errors="raise"``, for the first item that cannot be read.
    """
    index = 0
    for item in source.items:
        try:
            for pixels, path, frame_index, from_file in _frames_of(item, source.bgr):
                yield Frame(pixels, index, path, frame_index, from_file)
                index += 1
        except PosezooError as err:
            if errors == "raise":
                raise
            yield SourceFailure(_describe(item), str(err))
