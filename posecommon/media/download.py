"""The one URL downloader of posezoo: http(s) only on every hop, an overall deadline, a size limit.

Images given as URLs (:mod:`posecommon.predict.sources`) and the official checkpoints the converters fetch go
through :func:`download` or :func:`download_to_file`. Hub weights are not downloaded here: they go through
``huggingface_hub`` (:mod:`posecommon.hub`).

Bounds, all enforced while reading:

- **Deadline.** ``timeout`` seconds for the whole transfer. The socket's own timeout is set to the time left before
  every read, and each read returns what one ``recv`` brings, so a server that stalls or drips one byte at a time
  is abandoned at the deadline (plus one scheduling slice), not after a buffer fills.
- **Size.** A declared ``Content-Length`` above ``max_bytes`` is refused before the body is read; a body that
  grows past ``max_bytes`` is cut off.
- **Scheme.** Only ``http://`` and ``https://``; a redirect to any other scheme is refused before it is followed.
- **Files.** :func:`download_to_file` writes into a temporary file beside the target and renames it into place
  only when the transfer is complete; on any failure the temporary file is removed.
"""

from __future__ import annotations

import os
import tempfile
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


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


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
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "posezoo"})
    received = 0
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise error(f"{url} is {int(declared):,} bytes, over the {max_bytes:,}-byte limit")
            sock = _socket_of(response)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise error(f"downloading {url} took longer than {timeout:g} s")
                if sock is not None:
                    sock.settimeout(left)
                chunk = response.read1(min(_CHUNK, max_bytes + 1 - received))
                if not chunk:
                    return received
                received += len(chunk)
                if received > max_bytes:
                    raise error(f"{url} sends more than the {max_bytes:,}-byte limit")
                write(chunk)
    except PosezooError as err:
        raise error(str(err)) from err
    except TimeoutError as err:
        raise error(f"downloading {url} took longer than {timeout:g} s") from err
    except urllib.error.HTTPError as err:
        raise error(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise error(f"cannot download {url}: {getattr(err, 'reason', err)}") from err


def download(
    url: str,
    timeout: float = URL_TIMEOUT_S,
    max_bytes: int = URL_MAX_BYTES,
    error: type[PosezooError] = BadImageError,
) -> bytes:
    """The body of ``url``, read into memory within the module's bounds.

    Args:
        url: An ``http://`` or ``https://`` URL.
        timeout: Deadline of the whole transfer, in seconds.
        max_bytes: Size limit of the body.
        error: The error type raised on any failure (images: :class:`~posecommon.errors.BadImageError`).

    Raises:
        PosezooError: of type ``error``: another scheme (also after a redirect), an HTTP or network error, the
            deadline, or a larger body.
    """
    chunks: list[bytes] = []
    _transfer(url, timeout, max_bytes, chunks.append, error)
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
