"""Video faults met by ``posezoo predict``: broken, empty, fake and endless-to-open videos are one line each.

Each case runs a tiny detector over one good image and the bad video: the video is one line (exit 1), the image
is written. A video that breaks after some frames keeps the frames decoded before it.
"""

from __future__ import annotations

import os

import pytest

from ..test_sources import write_video
from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .test_images import GOOD_JPEG

pytest.importorskip("av")


def _predict(ws: Workspace, *sources: object) -> list[str]:
    good = ws.write("good.jpg", GOOD_JPEG)
    return ["predict", good, *map(str, sources), "--out", ws.out, "--exist-ok", "--weights", ws.extra["detector"]]


def _one(name: str, data: bytes) -> object:
    def setup(ws: Workspace) -> list[str]:
        return _predict(ws, ws.write(name, data))

    return setup


def _video(ws: Workspace, name: str = "clip.mp4", frames: int = 3) -> bytes:
    path = write_video(ws.path(f"made-{name}"), [(200, 30, 30)] * frames, size=(48, 64))
    data = path.read_bytes()
    path.unlink()
    return data


def _truncated(fraction: float, name: str = "cut.mp4") -> object:
    def setup(ws: Workspace) -> list[str]:
        data = _video(ws, name, frames=10)
        return _predict(ws, ws.write(name, data[: int(len(data) * fraction)]))

    return setup


def _header_scrambled(ws: Workspace) -> list[str]:
    data = bytearray(_video(ws))
    data[:64] = bytes(64)
    return _predict(ws, ws.write("scrambled.mp4", bytes(data)))


def _fifo(ws: Workspace) -> list[str]:
    os.mkfifo(ws.path("live.mp4"))
    return _predict(ws, ws.path("live.mp4"))


def _audio_only(ws: Workspace) -> list[str]:
    import av
    import numpy as np

    path = ws.path("sound.mp4")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return _predict(ws, path)


CASES = [
    fault_case("empty-mp4", _one("empty.mp4", b""), 1, "cannot open video"),
    fault_case("text-mp4", _one("notes.mp4", "not a video\n"), 1, "cannot open video"),
    fault_case("random-avi", _one("noise.avi", bytes(range(256)) * 64), 1, "noise.avi"),
    fault_case("random-mkv", _one("noise.mkv", bytes(range(255, -1, -1)) * 64), 1, "noise.mkv"),
    fault_case("truncated-to-5-percent", _truncated(0.05), 1, "cut.mp4"),
    fault_case("header-scrambled", _header_scrambled, 1, "scrambled.mp4"),
    fault_case("named-pipe-mp4", _fifo, 1, "not a regular file"),
    fault_case("missing-mp4", lambda ws: _predict(ws, ws.path("gone.mp4")), 1, "no such file"),
    fault_case("no-video-stream", _audio_only, 1, "has no video stream"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_video_fault(setup, code, message, lines, unchanged, workspace, models):
    workspace.extra.update({name: str(path) for name, path in models.items()})
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="predict", lines=lines, unchanged=unchanged)
    assert (workspace.out / "good.png").is_file()


def test_a_directory_with_a_broken_video_keeps_the_good_ones(workspace, models):
    folder = workspace.path("clips")
    folder.mkdir()
    write_video(folder / "a.mp4", [(10, 200, 10)] * 2, size=(48, 64))
    (folder / "b.mp4").write_bytes(b"broken")
    write_video(folder / "c.mp4", [(10, 10, 200)] * 2, size=(48, 64))
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(["predict", folder, "--out", workspace.out, "--exist-ok", "--weights", models["detector"]])
    check_fault(outcome, snapshot, code=1, message="b.mp4", command="predict")
    assert (workspace.out / "a.mp4").is_file() and (workspace.out / "c.mp4").is_file()
    assert "2 video(s) (4 frames)" in outcome.out
