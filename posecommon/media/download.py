"""The one URL downloader of posezoo: http(s) only on every hop, an overall deadline, a size limit.

Images given as URLs (:mod:`posecommon.predict.sources`) and the official checkpoints the converters fetch go
through :func:`download` or :func:`download_to_file`. Hub weights are not downloaded here: they go through
``huggingface_hub`` (:mod:`posecommon.hub`).

Bounds, all enforced while reading:

- **Deadline.** ``timeout`` seconds for the whole transfer, connecting, redirects, headers and body included. Every
  socket a download opens is registered with a watchdog timer that shuts it down at the deadline, which ends any
  read blocked in it at once; and the socket's own timeout is set to the time left before every body read. A
  server that stalls, or drips one byte at a time into the headers, a chunk-size line or the body, is abandoned at
  the deadline (plus one scheduling slice). The per-read timeout alone would not do: each one-byte ``recv`` of a
  dripping server returns in time, and ``http.client`` reads header and chunk lines with many of them.
- **Size.** A declared ``Content-Length`` above ``max_bytes`` is refused before the body is read; a body that
  grows past ``max_bytes`` is cut off.
- **Scheme.** Only ``http://`` and ``https://``; a redirect to any other scheme is refused before it is followed.
- **Files.** :func:`download_to_file` writes into a temporary file beside the target and renames it into place
  only when the transfer is complete; on any failure the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BadImageError, PosezooError

__all__ = ["URL_MAX_BYTES", "URL_TIMEOUT_S", "download", "download_to_file", "is_url"]

URL_TIMEOUT_S = 20.0
"""Default deadline of one image download, in seconds."""
URL_MAX_BYTES = 50 * 2**20
"""Default size limit of one downloaded image (50 MiB)."""

_SCHEMES = ("http://", "https://")
_CHUNK = 1 << 16


def is_url(text: str) -> bool:
    """Whether ``text`` is an ``http://`` or ``https://`` URL (case-insensitive scheme)."""
    return text.lower().startswith(_SCHEMES)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another http(s) URL (urllib would follow ``ftp://`` too)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not is_url(newurl):
            raise BadImageError(f"{req.full_url} redirected to {newurl!r}, which is not http(s); not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """Shuts down every registered socket when the transfer's time is up (ending reads blocked in them)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return self.end - time.monotonic()

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or (TLS) detached from its descriptor
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watched(connection_class: type[http.client.HTTPConnection], deadline: _Deadline) -> Callable[..., Any]:
    """A factory of ``connection_class`` connections whose sockets ``deadline`` watches (TLS ones before and after
    the handshake)."""

    def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = connection_class(host, **kwargs)
        create = connection._create_connection  # type: ignore[attr-defined]

        def create_watched(*args: Any, **kw: Any) -> socket.socket:
            return deadline.watch(create(*args, **kw))

        connection._create_connection = create_watched  # type: ignore[attr-defined]
        original_connect = connection.connect

        def connect_watched() -> None:
            original_connect()
            deadline.watch(connection.sock)

        connection.connect = connect_watched  # type: ignore[method-assign]
        return connection

    return connect


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connect = _watched(http.client.HTTPConnection, deadline)

    def http_open(self, req: Any) -> Any:
        return self.do_open(self._connect, req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connect = _watched(http.client.HTTPSConnection, deadline)

    def https_open(self, req: Any) -> Any:
        return self.do_open(self._connect, req, context=self._context)


def _socket_of(response: Any) -> Any:
    """The socket under an ``http.client.HTTPResponse`` (None when the response has none, e.g. a cached body)."""
    raw = getattr(getattr(response, "fp", None), "raw", None)
    return getattr(raw, "_sock", None)


def _transfer(
    url: str, timeout: float, max_bytes: int, write: Callable[[bytes], Any], error: type[PosezooError]
) -> int:
    """Stream ``url``'s body into ``write`` within the bounds of the module docstring; returns the byte count."""
    if not is_url(url):
        raise error(f"only http:// and https:// URLs are downloaded, got {url!r}")
    deadline = _Deadline(timeout)
    opener = urllib.request.build_opener(
        _HttpOnlyRedirects, _WatchedHTTPHandler(deadline), _WatchedHTTPSHandler(deadline)
    )
    late = f"downloading {url} took longer than {timeout:g} s"
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "posezoo", "Accept-Encoding": "identity"})
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise error(f"{url} is {int(declared):,} bytes, over the {max_bytes:,}-byte limit")
            sock = _socket_of(response)
            while True:
                left = deadline.left()
                if left <= 0 or deadline.expired:
                    raise error(late)
                if sock is not None:
                    sock.settimeout(left)
                chunk = response.read1(min(_CHUNK, max_bytes + 1 - received))
                if deadline.expired:  # the watchdog cut the connection: what was read may be incomplete
                    raise error(late)
                if not chunk:
                    return received
                received += len(chunk)
                if received > max_bytes:
                    raise error(f"{url} sends more than the {max_bytes:,}-byte limit")
                write(chunk)
    except PosezooError as err:
        raise error(str(err)) from err
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        if deadline.expired or isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            raise error(late) from err
        if isinstance(err, urllib.error.HTTPError):
            raise error(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
        reason = " ".join(str(getattr(err, "reason", err)).split()) or type(err).__name__
        raise error(f"cannot download {url}: {reason}") from err
    finally:
        deadline.cancel()


def download(
    url: str,
    timeout: float | None = None,
    max_bytes: int | None = None,
    error: type[PosezooError] = BadImageError,
) -> bytes:
    """The body of ``url``, read into memory within the module's bounds.

    Args:
        url: An ``http://`` or ``https://`` URL.
        timeout: Deadline of the whole transfer, in seconds (None: :data:`URL_TIMEOUT_S`).
        max_bytes: Size limit of the body (None: :data:`URL_MAX_BYTES`).
        error: The error type raised on any failure (images: :class:`~posecommon.errors.BadImageError`).

    Raises:
        PosezooError: of type ``error``: another scheme (also after a redirect), an HTTP or network error, the
            deadline, or a larger body.
    """
    chunks: list[bytes] = []
    timeout = URL_TIMEOUT_S if timeout is None else timeout
    _transfer(url, timeout, URL_MAX_BYTES if max_bytes is None else max_bytes, chunks.append, error)
    return b"".join(chunks)


def download_to_file(
    url: str,
    target: str | Path,
    timeout: float,
    max_bytes: int,
    error: type[PosezooError] = BadImageError,
) -> Path:
    """Download ``url`` into ``target`` within the module's bounds; nothing is left behind on failure.

    The body goes to a temporary file in ``target``'s directory, which is renamed to ``target`` only after the
    whole body arrived.

    Args:
        url: An ``http://`` or ``https://`` URL.
        target: The file to write (its directory must exist).
        timeout: Deadline of the whole transfer, in seconds.
        max_bytes: Size limit of the body.
        error: The error type raised on any failure.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        PosezooError: of type ``error``, as :func:`download`; also when the temporary file cannot be written.
    """
    target = Path(target)
    try:
        descriptor, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as err:
        raise error(f"cannot write into {target.parent}: {err}") from err
    try:
        with os.fdopen(descriptor, "wb") as handle:
            _transfer(url, timeout, max_bytes, handle.write, error)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target
