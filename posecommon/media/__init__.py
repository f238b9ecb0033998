"""Images, videos and downloads: what a user's input is before it becomes a tensor. :mod:`.image` turns one
image into RGB ``uint8`` pixels, :mod:`.video` reads and writes videos (the ``video`` extra), :mod:`.download` is the
one bounded URL downloader."""

from .download import (
    URL_MAX_BYTES,
    URL_TIMEOUT_S,
    download,
    download_to_file,
    is_url,
)
from .image import (
    ImageInput,
    load_image,
)
from .video import (
    VIDEO_SUFFIXES,
    VideoInfo,
    VideoWriter,
    is_video_path,
    read_video_frames,
    video_info,
)

__all__ = [
    "URL_MAX_BYTES",
    "URL_TIMEOUT_S",
    "VIDEO_SUFFIXES",
    "ImageInput",
    "VideoInfo",
    "VideoWriter",
    "download",
    "download_to_file",
    "is_url",
    "is_video_path",
    "load_image",
    "read_video_frames",
    "video_info",
]
