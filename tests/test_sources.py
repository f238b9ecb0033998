"""Inputs normalised into frames: kinds (single / list / stream), arrays and tensors, URLs, videos, failures."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon.errors import BadImageError
from posecommon.media.download import download
from posecommon.media.image import load_image
from posecommon.media.video import VideoWriter, read_video_frames, video_info
from posecommon.predict.sources import SourceFailure, iter_frames, open_source

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))


def _frames(source, **kwargs) -> list:
    return list(iter_frames(open_source(source, **kwargs), errors="yield"))


def write_video(path: Path, colours: list[tuple[int, int, int]], size=(48, 64), fps=5) -> Path:
    """A short H.264 (or MPEG-4) video of solid-colour frames, written with PyAV."""
    with VideoWriter(path, fps) as writer:
        for colour in colours:
            writer.write(np.full((*size, 3), colour, dtype=np.uint8))
    return path


def test_the_kind_of_each_input_decides_the_result_type(tmp_path):
    photo = PHOTOS[0]
    assert open_source(photo).kind == "single" and open_source(str(photo)).kind == "single"
    assert open_source(Image.open(photo)).kind == "single"
    assert open_source(np.zeros((4, 5, 3), np.uint8)).kind == "single"
    assert open_source(torch.zeros(3, 4, 5, dtype=torch.uint8)).kind == "single"
    assert open_source("https://example.org/a.jpg").kind == "single"
    assert open_source([photo, photo]).kind == "list" and open_source((photo,)).kind == "list"
    batch = open_source(torch.zeros(2, 3, 4, 5, dtype=torch.uint8))
    assert batch.kind == "list" and batch.length == 2
    assert open_source(np.zeros((3, 4, 5, 3), np.uint8)).length == 3
    assert open_source(DATA).kind == "list" and open_source(str(DATA / "*.jpg")).kind == "list"
    assert open_source(p for p in PHOTOS).kind == "stream"
    assert open_source(tmp_path / "clip.mp4").kind == "stream"  # by suffix; read lazily


def test_directories_and_globs_are_sorted_file_lists(tmp_path):
    frames = _frames(DATA)
    assert [f.path for f in frames] == [str(p) for p in PHOTOS]  # LICENSES.md is not an image
    assert [f.index for f in frames] == list(range(len(PHOTOS)))
    assert all(f.from_file for f in frames)
    jpgs = _frames(str(DATA / "*.jpg"))
    assert [Path(f.path).name for f in jpgs] == ["astronaut.jpg", "grace_hopper.jpg"]
    camera = next(f for f in frames if f.path.endswith("camera.png"))
    assert camera.pixels.shape == (3, 256, 256)  # grayscale photo replicated to RGB
    assert torch.equal(camera.pixels[0], camera.pixels[2])
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(BadImageError, match="holds no image or video"):
        open_source(tmp_path)
    with pytest.raises(BadImageError, match="no file matches"):
        open_source(str(tmp_path / "*.jpg"))
    with pytest.raises(BadImageError, match="unsupported input"):
        open_source(42)


def test_float_arrays_bgr_and_batched_tensors_equal_the_uint8_rgb_image():
    rgb = load_image(PHOTOS[0])  # (3, H, W) uint8
    hwc = rgb.permute(1, 2, 0).numpy()
    as_float = hwc.astype(np.float32) / 255
    assert torch.equal(load_image(as_float), rgb)
    assert torch.equal(load_image(hwc[..., ::-1].copy(), bgr=True), rgb)
    assert not torch.equal(load_image(hwc[..., ::-1].copy()), rgb)  # without bgr=True the colours are swapped
    assert torch.equal(load_image(rgb.flip(0), bgr=True), rgb)
    assert torch.equal(load_image(rgb.float() / 255), rgb)
    batch = torch.stack((rgb, rgb.flip(-1))).float() / 255  # (B, C, H, W) float
    frames = _frames(batch)
    assert len(frames) == 2 and torch.equal(frames[0].pixels, rgb) and torch.equal(frames[1].pixels, rgb.flip(-1))
    frames = _frames(np.stack((hwc[..., ::-1], hwc[..., ::-1])), bgr=True)
    assert all(torch.equal(f.pixels, rgb) for f in frames)
    with pytest.raises(BadImageError, match=r"\[0, 1\]"):
        load_image(hwc.astype(np.float32))  # 0-255 floats are refused, not clipped to white


def test_failures_are_yielded_and_reading_goes_on(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    entries = _frames([PHOTOS[0], garbage, tmp_path / "missing.png", PHOTOS[1]])
    assert [type(e).__name__ for e in entries] == ["Frame", "SourceFailure", "SourceFailure", "Frame"]
    assert "cannot read image" in entries[1].reason and "not found" in entries[2].reason
    assert entries[3].index == 1  # frame indices count frames, not inputs
    with pytest.raises(BadImageError, match=r"garbage\.jpg"):
        list(iter_frames(open_source([PHOTOS[0], garbage])))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        if name == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            time.sleep(3)
            return
        if name == "endless":  # no Content-Length, more than the limit
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x" * 4096)
            return
        path = DATA / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_urls_are_downloaded_with_a_timeout_and_a_size_limit(server):
    (frame,) = _frames(f"{server}/grace_hopper.jpg")
    assert torch.equal(frame.pixels, load_image(DATA / "grace_hopper.jpg"))
    assert frame.path == f"{server}/grace_hopper.jpg" and not frame.from_file  # results keep the pixels
    (failure,) = _frames(f"{server}/nothing.jpg")
    assert isinstance(failure, SourceFailure) and "404" in failure.reason
    with pytest.raises(BadImageError, match="over the 1,000-byte limit"):
        download(f"{server}/grace_hopper.jpg", max_bytes=1000)  # declared Content-Length
    with pytest.raises(BadImageError, match="more than the 100,000-byte limit"):
        download(f"{server}/endless", max_bytes=100_000)  # counted while reading
    start = time.monotonic()
    with pytest.raises(BadImageError, match=r"longer than 0\.5 s"):
        download(f"{server}/stall", timeout=0.5)
    assert time.monotonic() - start < 2.5
    with pytest.raises(BadImageError, match="only http"):
        download("file:///etc/passwd")


def test_video_frames_are_streamed_in_order(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (128, 128, 128)]
    path = write_video(tmp_path / "clip.mp4", colours)
    info = video_info(path)
    assert (info.width, info.height, info.frames, float(info.fps)) == (64, 48, 4, 5.0)
    frames = read_video_frames(path)
    assert not isinstance(frames, list)
    first = next(frames)  # decoded without reading the rest
    decoded = [first, *frames]
    assert len(decoded) == len(colours)
    for pixels, colour in zip(decoded, colours, strict=True):
        means = pixels.float().mean(dim=(1, 2))
        assert (means - torch.tensor(colour, dtype=torch.float32)).abs().max() < 12  # lossy codec, solid colours
    entries = _frames([PHOTOS[0], path])  # a video inside a list contributes all its frames
    assert [e.frame_index for e in entries] == [None, 0, 1, 2, 3] and entries[-1].index == 4
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    (failure,) = _frames(tmp_path / "broken.mp4")
    assert isinstance(failure, SourceFailure) and "cannot open video" in failure.reason
