"""Image faults met by ``posezoo predict``: each bad file is skipped with one line, the good ones are written.

Every case runs a tiny detector over one good image and the bad input(s), so each shows both halves: the failure is
one line naming the file (exit 1), and the run went on (the good image's outputs exist).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .http_faults import png_bytes, png_declaring

JPEG = io.BytesIO()
Image.new("RGB", (48, 40), (90, 160, 60)).save(JPEG, format="JPEG")
GOOD_JPEG = JPEG.getvalue()


def _predict(ws: Workspace, *sources: str | Path) -> list[str]:
    good = ws.write("good.jpg", GOOD_JPEG)
    return ["predict", good, *map(str, sources), "--out", ws.out, "--exist-ok", "--weights", ws.extra["detector"]]


def _one(name: str, data: bytes) -> object:
    def setup(ws: Workspace) -> list[str]:
        return _predict(ws, ws.write(name, data))

    return setup


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_text_bomb() -> bytes:
    import zlib

    png = png_bytes((4, 4))
    bomb = _png_chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"a" * (64 << 20)))
    return png[:33] + bomb + png[33:]


def _tiff_float() -> bytes:
    buffer = io.BytesIO()
    Image.new("F", (8, 8), 0.5).save(buffer, format="TIFF")
    return buffer.getvalue()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _big_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _fifo(ws: Workspace) -> list[str]:
    path = ws.path("pipe.jpg")
    os.mkfifo(path)
    return _predict(ws, path)


def _sparse(ws: Workspace) -> list[str]:
    path = ws.path("sparse.png")
    with path.open("wb") as handle:
        handle.truncate(4 << 30)  # 4 GB of zeros, none on disk
    return _predict(ws, path)


def _directory_named_jpg(ws: Workspace) -> list[str]:
    (ws.path("folder.jpg")).mkdir()
    return _predict(ws, ws.path("folder.jpg"))


def _empty_directory(ws: Workspace) -> list[str]:
    ws.path("nothing").mkdir()
    return _predict(ws, ws.path("nothing"))


def _directory_of_text(ws: Workspace) -> list[str]:
    ws.write("texts/a.txt", "a")
    ws.write("texts/b.md", "b")
    return _predict(ws, ws.path("texts"))


def _broken_link(ws: Workspace) -> list[str]:
    os.symlink(ws.path("gone.jpg"), ws.path("link.jpg"))
    return _predict(ws, ws.path("link.jpg"))


def _glob_nothing(ws: Workspace) -> list[str]:
    return _predict(ws, str(ws.path("*.nothing")))


def _dev_zero(ws: Workspace) -> list[str]:
    return _predict(ws, "/dev/zero")


CASES = [
    fault_case("empty-jpeg", _one("empty.jpg", b""), 1, "skipped"),
    fault_case("empty-png", _one("empty.png", b""), 1, "skipped"),
    fault_case("text-as-jpeg", _one("notes.jpg", "these are notes, not pixels\n"), 1, "cannot read image"),
    fault_case("html-as-png", _one("page.png", "<html><body>hi</body></html>"), 1, "cannot read image"),
    fault_case("truncated-jpeg", _one("half.jpg", _truncated(_big_jpeg())), 1, "half.jpg"),
    fault_case("truncated-png", _one("half.png", _truncated(png_bytes((64, 64)))), 1, "half.png"),
    fault_case("random-bytes-png", _one("noise.png", bytes(range(256)) * 40), 1, "cannot read image"),
    fault_case("png-signature-only", _one("sig.png", png_bytes()[:8]), 1, "sig.png"),
    fault_case("png-header-only", _one("head.png", png_bytes()[:33]), 1, "head.png"),
    fault_case("jpeg-soi-only", _one("soi.jpg", b"\xff\xd8\xff"), 1, "soi.jpg"),
    fault_case("gif-header-only", _one("anim.gif", b"GIF89a\x10\x00\x10\x00"), 1, "anim.gif"),
    fault_case("bmp-header-only", _one("pic.bmp", b"BM" + b"\0" * 20), 1, "pic.bmp"),
    fault_case("png-12000x12000", _one("bomb.png", png_declaring(12000, 12000)), 1, "over posezoo's limit"),
    fault_case("png-100000x1", _one("wide.png", png_declaring(100000, 1000)), 1, "megapixels"),
    fault_case("png-0x0", _one("zero.png", png_declaring(0, 0)), 1, "zero.png"),
    fault_case("png-text-bomb", _one("text.png", _png_with_text_bomb()), 1, "text.png"),
    fault_case("float-tiff", _one("float.tif", _tiff_float()), 1, "'F' mode"),
    fault_case("named-pipe", _fifo, 1, "not a regular file"),
    fault_case("device-file", _dev_zero, 1, "/dev/zero"),
    fault_case("sparse-4gb-file", _sparse, 1, "sparse.png"),
    fault_case("directory-named-jpg", _directory_named_jpg, 1, "holds no image"),
    fault_case("empty-directory", _empty_directory, 1, "holds no image"),
    fault_case("directory-of-text-files", _directory_of_text, 1, "holds no image"),
    fault_case("broken-symlink", _broken_link, 1, "no such file"),
    fault_case("missing-file", lambda ws: _predict(ws, ws.path("missing.jpg")), 1, "no such file"),
    fault_case("glob-matching-nothing", _glob_nothing, 1, "no file matches"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_image_fault(setup, code, message, lines, unchanged, workspace, models):
    workspace.extra.update({name: str(path) for name, path in models.items()})
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="predict", lines=lines, unchanged=unchanged)
    assert (workspace.out / "good.png").is_file() and (workspace.out / "good.json").is_file()
    assert "wrote 1 annotated image(s)" in outcome.out


def _mixed_directory(ws: Workspace, count: int) -> tuple[Path, list[str]]:
    folder = ws.path("shots")
    bad = []
    for index in range(count):
        name = f"{index:03d}.jpg"
        if index in (1, count // 2, count - 1):
            ws.write(f"shots/{name}", b"corrupt" * index)
            bad.append(name)
        else:
            ws.write(f"shots/{name}", GOOD_JPEG)
    return folder, bad


def test_every_file_of_a_directory_is_its_own_input(workspace, models):
    """3 bad files among 12: 9 images written, each bad file named on its own line (main: 1 written, 1 named)."""
    folder, bad = _mixed_directory(workspace, 12)
    snapshot = Snapshot(workspace.root)
    argv = ["predict", folder, "--out", workspace.out, "--exist-ok", "--weights", models["detector"]]
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=1, message="cannot read image", command="predict", lines=3)
    assert [line.split(": ")[1].rsplit("/", 1)[-1] for line in outcome.err_lines] == [
        f"skipped {workspace.root}/shots/{name}".rsplit("/", 1)[-1] for name in bad
    ]
    written = sorted(p.stem for p in workspace.out.glob("*.png"))
    assert written == sorted(f"{i:03d}" for i in range(12) if f"{i:03d}.jpg" not in bad)
    assert "wrote 9 annotated image(s)" in outcome.out


def test_every_file_of_a_glob_is_its_own_input(workspace, models):
    _, bad = _mixed_directory(workspace, 6)
    snapshot = Snapshot(workspace.root)
    pattern = str(workspace.path("shots") / "*.jpg")
    outcome = run_cli(["predict", pattern, "--out", workspace.out, "--exist-ok", "--weights", models["detector"]])
    check_fault(outcome, snapshot, code=1, message="cannot read image", command="predict", lines=len(bad))
    assert len(list(workspace.out.glob("*.png"))) == 6 - len(bad)


def test_a_recursive_glob_through_a_symlink_loop_reads_each_image_once(workspace, models):
    workspace.write("tree/a/one.jpg", GOOD_JPEG)
    workspace.write("tree/two.jpg", GOOD_JPEG)
    os.symlink(workspace.path("tree"), workspace.path("tree/a/loop"))
    pattern = str(workspace.path("tree") / "**" / "*.jpg")
    outcome = run_cli(["predict", pattern, "--out", workspace.out, "--exist-ok", "--weights", models["detector"]])
    assert outcome.code == 0, outcome.err
    assert "wrote 2 annotated image(s)" in outcome.out  # main: the loop made it 41 reads of one.jpg
    assert sorted(p.name for p in workspace.out.glob("*.png")) == ["one.png", "two.png"]


def test_an_input_named_predictions_keeps_its_own_json(workspace, models):
    photo = workspace.write("predictions.jpg", GOOD_JPEG)
    outcome = run_cli(["predict", photo, "--out", workspace.out, "--exist-ok", "--weights", models["detector"]])
    assert outcome.code == 0, outcome.err
    import json

    assert isinstance(json.loads((workspace.out / "predictions.json").read_text()), list)  # the COCO list
    assert json.loads((workspace.out / "predictions_2.json").read_text())["image"]["path"] == str(photo)


def test_the_pixel_limit_is_checked_before_decoding(tmp_path):
    import time

    from posecommon.errors import BadImageError
    from posecommon.media.image import MAX_IMAGE_PIXELS, load_image

    path = tmp_path / "bomb.png"
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG")  # a real 12000 x 12000 image, a few hundred kB
    path.write_bytes(buffer.getvalue())
    assert MAX_IMAGE_PIXELS < 12000 * 12000
    started = time.monotonic()
    with pytest.raises(BadImageError, match="12000x12000 pixels"):
        load_image(path)
    assert time.monotonic() - started < 10  # the header only (main: a 17 s, 2.3 GB decode and a warning)
