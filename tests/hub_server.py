"""Test helpers for the weights and Hub tests: a local Hub-compatible HTTP server and a tiny registered model.

:class:`LocalHub` serves model repositories on 127.0.0.1 the way huggingface.co does for the requests
``huggingface_hub`` makes, so the tests exercise the real ``hf_hub_download`` / ``HfApi`` code paths:

* ``HEAD``/``GET {endpoint}/{repo_id}/resolve/{revision}/{filename}``: regular (git) files answer ``200`` with
  ``ETag`` (git blob sha1), ``X-Repo-Commit`` and ``Content-Length``. Large-file-storage files (``.safetensors``,
  ``.pth``) answer ``302`` with ``Location`` on a second server (another port, i.e. another origin, like the Hub's
  CDN), ``X-Linked-Etag`` (the sha256), ``X-Linked-Size`` and ``X-Repo-Commit``. Unknown repos, revisions and files
  answer ``404`` with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``.
* ``GET {cdn}/blobs/{sha256}``: the content of a large file (or the bytes set with :meth:`LocalHub.corrupt`).
* ``GET /api/models/{repo_id}/revision/{revision}``: model info (``sha`` and ``siblings``).
* ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo_id}/preupload/{revision}`` (every file
  "regular") and ``/api/models/{repo_id}/commit/{revision}`` (ndjson with base64 file contents): enough for
  ``HfApi.create_repo`` and ``HfApi.create_commit``.

Every request is appended to :attr:`LocalHub.requests` as ``(method, path)`` so tests can assert that a cache hit
made no network call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import torch
from torch import nn

from posecommon import registry
from posecommon.keypoints import KeypointSpec
from posecommon.model import PoseModel, build_model
from posecommon.preprocess import PreprocessConfig
from posecommon.registry import WeightSpec

__all__ = ["LFS_SUFFIXES", "LocalHub", "TinyConfig", "TinyPose", "register_tiny", "tiny_pose"]

LFS_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
"""Files served through the large-file redirect, as the Hub does for LFS/Xet files."""


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


class LocalHub:
    """A Hub-compatible HTTP server on 127.0.0.1 (ephemeral ports) for tests.

    Use :meth:`start` / :meth:`stop` (or a ``with`` block). :attr:`endpoint` is what ``HF_ENDPOINT`` should be.
    """

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._corrupt: dict[str, bytes] = {}
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self.requests: list[tuple[str, str]] = []
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class(cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class(cdn=True))
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        """Base URL of the Hub API and resolve endpoints."""
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        """Base URL of the large-file server (another origin)."""
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> LocalHub:
        """Serve in background threads; returns ``self``."""
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets: afterwards connections are refused."""
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` on top of ``branch`` (created if needed) and return the new commit hash."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            parent = repo.refs.get(branch)
            snapshot = dict(repo.commits[parent]) if parent else {}
            snapshot.update(files)
            self._blobs.update((hashlib.sha256(data).hexdigest(), data) for data in files.values())
            self._counter += 1
            digest = hashlib.sha1(f"{repo_id}:{parent}:{self._counter}".encode())
            for name in sorted(snapshot):
                digest.update(name.encode() + hashlib.sha256(snapshot[name]).digest())
            commit = digest.hexdigest()
            repo.commits[commit] = snapshot
            repo.refs[branch] = commit
            return commit

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (a branch or commit hash)."""
        repo = self._repos[repo_id]
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return dict(repo.commits[commit])

    def corrupt(self, sha256: str, data: bytes | None) -> None:
        """Serve ``data`` instead of the large file with this sha256 (``None`` restores the real content)."""
        if data is None:
            self._corrupt.pop(sha256, None)
        else:
            self._corrupt[sha256] = data

    def count(self, method: str | None = None) -> int:
        """Number of requests received (of one method when given)."""
        return sum(1 for m, _ in self.requests if method is None or m == method)

    # ------------------------------------------------------------------------------------------------- handlers

    def _blob(self, sha256: str) -> bytes | None:
        return self._corrupt.get(sha256, self._blobs.get(sha256))

    def _handler_class(self, cdn: bool) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
                return

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":  # HEAD answers carry the headers of the GET, no body
                    self.wfile.write(body)

            def _json(self, status: int, payload: Any) -> None:
                self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

            def _error(self, status: int, code: str, extra: dict[str, str] | None = None) -> None:
                body = json.dumps({"error": code}).encode()
                self._send(status, {"X-Error-Code": code, "Content-Type": "application/json", **(extra or {})}, body)

            def _read_body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_HEAD(self) -> None:
                self._dispatch("HEAD")

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def _dispatch(self, method: str) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((method, ("cdn:" if cdn else "") + path))
                if cdn:
                    self._serve_blob(path)
                elif path.startswith("/api/"):
                    self._serve_api(method, path)
                else:
                    self._serve_resolve(method, path)

            def _serve_blob(self, path: str) -> None:
                data = hub._blob(path.rsplit("/", 1)[-1])
                if data is None:
                    self._error(404, "EntryNotFound")
                    return
                self._send(200, {"Content-Type": "application/octet-stream"}, data)

            def _serve_resolve(self, method: str, path: str) -> None:
                parts = path.lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve" or method not in ("HEAD", "GET"):
                    self._error(404, "NotFound")
                    return
                repo_id, revision, filename = f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:]))
                repo = hub._repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound")
                    return
                commit = repo.resolve(revision)
                if commit is None:
                    self._error(404, "RevisionNotFound")
                    return
                data = repo.commits[commit].get(filename)
                if data is None:
                    self._error(404, "EntryNotFound", {"X-Repo-Commit": commit})
                    return
                if filename.endswith(LFS_SUFFIXES):
                    sha256 = next(k for k, v in hub._blobs.items() if v is data)
                    headers = {
                        "Location": f"{hub.cdn}/blobs/{sha256}",
                        "X-Repo-Commit": commit,
                        "X-Linked-Etag": f'"{sha256}"',
                        "X-Linked-Size": str(len(data)),
                        "ETag": f'"{_git_blob_sha1(data)}"',
                    }
                    self._send(302, headers)
                    return
                headers = {
                    "ETag": f'"{_git_blob_sha1(data)}"',
                    "X-Repo-Commit": commit,
                    "Content-Length": str(len(data)),
                }
                self._send(200, headers, data)

            def _serve_api(self, method: str, path: str) -> None:
                parts = [unquote(p) for p in path.split("/")[2:]]  # after "/api/"
                if method == "POST" and parts == ["repos", "create"]:
                    payload = json.loads(self._read_body() or b"{}")
                    repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else ""
                    repo_id = repo_id or payload["name"]
                    if repo_id in hub._repos:
                        self._json(409, {"error": "You already created this model repo", "url": repo_id})
                        return
                    hub.add_commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
                    self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
                    return
                if method == "POST" and parts == ["validate-yaml"]:
                    self._read_body()
                    self._json(200, {"warnings": []})
                    return
                if len(parts) >= 3 and parts[0] == "models":
                    repo_id = f"{parts[1]}/{parts[2]}"
                    action, revision = (parts[3], "/".join(parts[4:])) if len(parts) >= 5 else ("revision", "main")
                    repo = hub._repos.get(repo_id)
                    if repo is None:
                        self._read_body()
                        self._error(404, "RepoNotFound")
                        return
                    if method == "GET" and action == "revision":
                        commit = repo.resolve(revision)
                        if commit is None:
                            self._error(404, "RevisionNotFound")
                            return
                        siblings = [{"rfilename": name} for name in sorted(repo.commits[commit])]
                        self._json(200, {"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings})
                        return
                    if method == "POST" and action == "preupload":
                        files = json.loads(self._read_body())["files"]
                        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                        self._json(200, {"files": modes})
                        return
                    if method == "POST" and action == "commit":
                        self._commit(repo_id, revision)
                        return
                self._read_body()
                self._error(404, "NotFound")

            def _commit(self, repo_id: str, branch: str) -> None:
                files: dict[str, bytes] = {}
                for line in self._read_body().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] != "header":
                        self._error(400, "UnsupportedOperation")
                        return
                commit = hub.add_commit(repo_id, files, branch=branch)
                self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit})

        return Handler


# ----------------------------------------------------------------------------------------------- tiny test model


@dataclass(frozen=True)
class TinyConfig:
    """Config of :class:`TinyPose`.

    Args:
        num_joints: Keypoints predicted.
        width: Channels of the stem.
    """

    num_joints: int = 17
    width: int = 8


class TinyPose(PoseModel):
    """A few-hundred-parameter heatmap model used to test weight loading without the real architectures.

    Shape:
        - Input: ``(B, 3, H, W)``.
        - Output: ``(B, K, H, W)``.
    """

    model_name = "tiny_pose"
    variants: ClassVar[dict[str, TinyConfig]] = {"tiny_pose": TinyConfig()}
    head_prefixes = ("head.",)

    def __init__(self, config: TinyConfig, keypoint_spec: KeypointSpec | None = None) -> None:
        super().__init__(config, keypoint_spec)
        self.stem = nn.Conv2d(3, config.width, 3, padding=1)
        self.norm = nn.BatchNorm2d(config.width)
        self.head = nn.Conv2d(config.width, config.num_joints, 1)

    @property
    def preprocess(self) -> PreprocessConfig:
        """Fixed 32x24 affine crops."""
        return PreprocessConfig(input_size=(32, 24))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Heatmaps at input resolution."""
        return self.head(torch.relu(self.norm(self.stem(x))))


def tiny_pose(pretrained: bool | str = False, **kwargs: Any) -> TinyPose:
    """Entrypoint of :class:`TinyPose`, written like the real ones; register it with ``register_model``."""
    return build_model(TinyPose, "tiny_pose", pretrained, **kwargs)


def register_tiny(monkeypatch: Any, weights: tuple[WeightSpec, ...] = ()) -> None:
    """Register :func:`tiny_pose` (with ``weights``) for one test only.

    The registry dicts are swapped for copies through ``monkeypatch``, so the entry disappears when the test ends
    and never shows in ``list_models()`` elsewhere; the built-in model packages are not imported.
    """
    monkeypatch.setattr(registry, "_ENTRYPOINTS", dict(registry._ENTRYPOINTS))
    monkeypatch.setattr(registry, "_INFOS", dict(registry._INFOS))
    monkeypatch.setattr(registry, "_packages_loaded", True)
    table = registry.model_table(registry.ModelInfo("tiny_pose", "test", "Tiny test model.", weights=weights))
    registry.register_model(table)(tiny_pose)
