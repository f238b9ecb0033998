"""URL faults, against a misbehaving server on 127.0.0.1 (:mod:`tests.faults.http_faults`).

Through ``posezoo predict`` (one good local image beside each URL: the URL is one line, the image is written), and
through the one downloader itself (:mod:`posecommon.media.download`), whose deadline, size limit and scheme checks
the official-checkpoint converter shares.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from posecommon.errors import BadImageError, HubUnavailableError

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .test_images import GOOD_JPEG

downloads = importlib.import_module("posecommon.media.download")  # the package exports a function of that name

DEADLINE_S = 1.5
"""The URL deadline during these tests (the default is 20 s)."""
MAX_BYTES = 256 << 10


@pytest.fixture(autouse=True)
def _short_bounds(monkeypatch):
    monkeypatch.setattr(downloads, "URL_TIMEOUT_S", DEADLINE_S)
    monkeypatch.setattr(downloads, "URL_MAX_BYTES", MAX_BYTES)


def _url(route: str) -> object:
    def setup(ws: Workspace) -> list[str]:
        good = ws.write("good.jpg", GOOD_JPEG)
        url = ws.extra["server"].url(route) if route.startswith("/") else route
        return ["predict", good, url, "--out", ws.out, "--exist-ok", "--weights", ws.extra["detector"]]

    return setup


SLOW = ["/drip-body", "/drip-headers", "/drip-chunked", "/stall", "/stall-body"]

CASES = [
    fault_case("http-404", _url("/status/404"), 1, "HTTP 404"),
    fault_case("http-500", _url("/status/500"), 1, "HTTP 500"),
    fault_case("http-403", _url("/status/403"), 1, "HTTP 403"),
    fault_case("http-401", _url("/status/401"), 1, "HTTP 401"),
    fault_case("html-page", _url("/html"), 1, "cannot read image"),
    fault_case("empty-body", _url("/empty"), 1, "cannot read image"),
    fault_case("gzip-body-not-asked-for", _url("/gzip"), 1, "cannot read image"),
    fault_case("declares-12000x12000", _url("/huge.png"), 1, "over posezoo's limit"),
    *(fault_case(f"deadline{route.replace('/', '-')}", _url(route), 1, "took longer than 1.5 s") for route in SLOW),
    fault_case("endless-body", _url("/endless"), 1, "sends more than the 262,144-byte limit"),
    fault_case("content-length-1tb", _url("/big-declared"), 1, "over the 262,144-byte limit"),
    fault_case("redirect-to-ftp", _url("/redirect?to=ftp://127.0.0.1/x.png"), 1, "not http(s)"),
    fault_case("redirect-to-file", _url("/redirect?to=file:///etc/passwd"), 1, "not allowed"),
    fault_case("redirect-loop", _url("/loop"), 1, "redirect"),
    fault_case("not-http", _url("/garbage-status"), 1, "cannot download"),
    fault_case("closed-inside-headers", _url("/close-mid-headers"), 1, "close-mid-headers"),
    fault_case("connection-refused", _url("http://127.0.0.1:9/x.png"), 1, "cannot download"),
    fault_case("malformed-url", _url("http://[::1/x.png"), 1, "cannot download"),
    fault_case("port-out-of-range", _url("http://127.0.0.1:99999/x.png"), 1, "cannot download"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_url_fault(setup, code, message, lines, unchanged, workspace, models, server):
    workspace.extra.update(detector=str(models["detector"]), server=server)
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    started = time.monotonic()
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="predict", lines=lines, unchanged=unchanged)
    assert (workspace.out / "good.png").is_file()
    assert time.monotonic() - started < DEADLINE_S + 30  # generous: a loaded host, model loading included


def test_a_good_url_is_read(workspace, models, server):
    argv = ["predict", server.url("/ok.png"), "--out", workspace.out, "--exist-ok", "--weights", models["detector"]]
    outcome = run_cli(argv)
    assert outcome.code == 0 and outcome.err == "", outcome.err
    assert (workspace.out / "ok.png").is_file()


@pytest.mark.parametrize("route", SLOW)
def test_the_deadline_holds_at_the_socket(route, server):
    """A server that drips one byte every 0.1 s (body, headers, chunk-size line) or stalls is left at the deadline:
    the per-read socket timeout alone let main's downloader read /drip-headers and /drip-chunked for minutes."""
    started = time.monotonic()
    with pytest.raises(BadImageError, match="took longer than 1 s"):
        downloads.download(server.url(route), timeout=1.0)
    assert time.monotonic() - started < 1.0 + 5  # the deadline plus a scheduling slice on a loaded host


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/endless", "sends more than"),
        ("/drip-body", "took longer than"),
        ("/status/404", "HTTP 404"),
        ("/redirect?to=file:///etc/passwd", "not allowed"),
        ("/redirect?to=ftp://127.0.0.1/a", "which is not http"),
    ],
)
def test_download_to_file_leaves_nothing_behind(route, message, server, tmp_path):
    target = tmp_path / "weights.pth"
    with pytest.raises(HubUnavailableError, match=message):
        downloads.download_to_file(server.url(route), target, 1.0, 1 << 20, error=HubUnavailableError)
    assert list(tmp_path.iterdir()) == []  # no target, no .part file


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/endless", "sends more than the 1,048,576-byte limit"),
        ("/drip-headers", "took longer than 1 s"),
        ("/redirect?to=file:///etc/passwd", "not allowed"),
        ("/status/404", "HTTP 404"),
        ("/big-declared", "over the 1,048,576-byte limit"),
    ],
)
def test_the_converter_downloads_through_the_bounded_downloader(route, message, server, tmp_path, monkeypatch):
    """main wrote 50 GB from an endless server and left its directory in /tmp: now the same deadline, size limit and
    scheme check apply, and the temporary directory is removed on failure."""
    from vttranspose import convert

    monkeypatch.setattr(convert, "OFFICIAL_CHECKPOINT_MAX_BYTES", 1 << 20)
    monkeypatch.setattr(convert, "OFFICIAL_DOWNLOAD_TIMEOUT_S", 1.0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(HubUnavailableError, match=message):
        convert.convert_official_transpose(server.url(route))
    assert list(Path(tmp_path).iterdir()) == []


def test_only_http_and_https_are_downloaded(tmp_path):
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"):
        with pytest.raises(BadImageError, match="only http:// and https://"):
            downloads.download(url)
