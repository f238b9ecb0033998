"""A misbehaving HTTP server on 127.0.0.1 for the URL and download faults.

Routes (``GET``):

- ``/ok.png``: a valid 8x8 PNG; ``/huge.png``: a PNG header declaring 12000 x 12000 pixels; ``/html``: a web page;
  ``/empty``: 200 with no body; ``/gzip``: a gzip body with ``Content-Encoding: gzip`` (never requested);
- ``/status/<code>``: that status;
- ``/drip-body``: headers, then one body byte every 0.1 s; ``/drip-headers``: a status line, then one header byte
  every 0.1 s; ``/drip-chunked``: chunked encoding whose chunk-size line grows by one digit every 0.1 s;
- ``/stall``: nothing at all; ``/stall-body``: headers, then nothing;
- ``/endless``: an endless body, as fast as it is read; ``/big-declared``: ``Content-Length`` of 1 TB;
- ``/redirect?to=URL``: a 302 to URL; ``/loop``: a 302 to itself;
- ``/garbage-status``: no HTTP at all; ``/close-mid-headers``: the connection closes inside the headers.

Every slow route stops when the client goes away or the server stops (at most after 120 s).
"""

from __future__ import annotations

import gzip
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

MAX_SECONDS = 120.0


def png_bytes(size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` (a 1x1 image with its IHDR rewritten)."""
    import struct
    import zlib

    data = bytearray(png_bytes((1, 1)))
    ihdr = 8  # signature; then length (4), b"IHDR" (4), 13 bytes of data, crc (4)
    body = bytes(data[ihdr + 8 : ihdr + 8 + 13])
    body = struct.pack(">II", width, height) + body[8:]
    data[ihdr + 8 : ihdr + 8 + 13] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return bytes(data)


class FaultServer:
    """The server (see the module docstring); ``url(path)`` gives a route's URL."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        handler = self._handler_class()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FaultServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _raw(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except OSError:
                    return False

            def _drip(self, byte: bytes) -> None:
                deadline = time.monotonic() + MAX_SECONDS
                while not server.stopping.is_set() and time.monotonic() < deadline:
                    if not self._raw(byte):
                        return
                    time.sleep(0.1)

            def _wait(self) -> None:
                server.stopping.wait(MAX_SECONDS)

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self._raw(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                route = parts.path
                if route == "/ok.png":
                    self._send(200, png_bytes(), {"Content-Type": "image/png"})
                elif route == "/huge.png":
                    self._send(200, png_declaring(12000, 12000), {"Content-Type": "image/png"})
                elif route == "/html":
                    self._send(200, b"<html><body>not an image</body></html>", {"Content-Type": "text/html"})
                elif route == "/empty":
                    self._send(200, b"")
                elif route == "/gzip":
                    self._send(200, gzip.compress(png_bytes()), {"Content-Encoding": "gzip"})
                elif route.startswith("/status/"):
                    self._send(int(route.rsplit("/", 1)[1]), b"status page")
                elif route == "/drip-body":
                    self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    self._drip(b"x")
                elif route == "/drip-headers":
                    self._raw(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self._drip(b"a")
                elif route == "/drip-chunked":
                    self._raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    self._drip(b"0")
                elif route == "/stall":
                    self._wait()
                elif route == "/stall-body":
                    self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                    self._wait()
                elif route == "/endless":
                    self._raw(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n")
                    block = b"\0" * 65536
                    deadline = time.monotonic() + MAX_SECONDS
                    while not server.stopping.is_set() and time.monotonic() < deadline and self._raw(block):
                        pass
                elif route == "/big-declared":
                    self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                    self._wait()
                elif route == "/redirect":
                    target = parse_qs(parts.query)["to"][0]
                    self._send(302, b"", {"Location": target})
                elif route == "/loop":
                    self._send(302, b"", {"Location": "/loop"})
                elif route == "/garbage-status":
                    self._raw(b"garbage\r\n\r\n")
                elif route == "/close-mid-headers":
                    self._raw(b"HTTP/1.1 200 OK\r\nContent-Le")
                else:
                    self._send(404, b"no such route")
                self.close_connection = True

        return Handler
