"""A stand-in for the Hugging Face hub: local folders served over HTTP on 127.0.0.1, for ``HF_ENDPOINT``.

It answers the few calls that ``huggingface_hub`` (``hf_hub_download``, ``snapshot_download``, ``model_info``) and
``DiffusionPipeline.download`` make:

- ``GET /api/{models,datasets}/OWNER/NAME[/revision/REV]``: the repository's commit and file list;
- ``GET /api/{models,datasets}/OWNER/NAME/tree/REV[/PATH]``: its files (weight files with their LFS SHA-256);
- ``HEAD``/``GET /[datasets/]OWNER/NAME/resolve/REV/PATH``: a file, with the commit, ETag and size headers (a weight
  file's ETag is its SHA-256, as the hub's LFS files have).

Every repository has one commit (:func:`commit_of`), reachable as ``main`` or by its hash. ``corrupt`` names files
served with one byte changed under their true SHA-256 (a damaged download); ``requests`` records every path asked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def commit_of(repo: str) -> str:
    return hashlib.sha1(f"commit of {repo}".encode()).hexdigest()


class HubStandIn:
    """``repos``: ``{"models/owner/name" or "datasets/owner/name": folder}``. Use as a context manager; ``url`` is
    the value for ``HF_ENDPOINT``."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.corrupt: set[str] = set()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "HubStandIn":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ the repositories
    def files(self, key: str) -> list[str]:
        root = self.repos[key]
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def entry(self, key: str, path: str) -> dict:
        data = (self.repos[key] / path).read_bytes()
        out = {"type": "file", "path": path, "size": len(data),
               "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
        if path.endswith(LFS_SUFFIXES):
            out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return out

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _json(self, value, body: bool) -> None:
                self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"}, body)

            def _missing(self, body: bool) -> None:
                self._send(404, b'{"error": "Repository not found"}',
                           {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"}, body)

            def _answer(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                parts = path.strip("/").split("/")
                if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets"):
                    key = "/".join(parts[1:4])
                    if key not in hub.repos:
                        return self._missing(body)
                    rest = parts[4:]
                    if not rest or rest[0] == "revision":
                        files = hub.files(key)
                        return self._json({"id": "/".join(parts[2:4]), "sha": commit_of(key), "private": False,
                                           "siblings": [{"rfilename": f} for f in files], "tags": [],
                                           "downloads": 0, "likes": 0}, body)
                    if rest[0] == "tree":
                        under = "/".join(rest[2:])
                        files = [f for f in hub.files(key) if not under or f.startswith(under + "/")]
                        return self._json([hub.entry(key, f) for f in files], body)
                    return self._missing(body)
                kind = "datasets" if parts[0] == "datasets" else "models"
                parts = parts[1:] if parts[0] == "datasets" else parts
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._missing(body)
                key = f"{kind}/{parts[0]}/{parts[1]}"
                file = "/".join(parts[4:])
                if key not in hub.repos or parts[3] not in ("main", commit_of(key)):
                    return self._missing(body)
                target = hub.repos[key] / file
                if not target.is_file():
                    return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit_of(key)},
                                      body)
                data = target.read_bytes()
                entry = hub.entry(key, file)
                etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
                if file in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self._send(200, data, {"X-Repo-Commit": commit_of(key), "ETag": f'"{etag}"',
                                       "Content-Type": "application/octet-stream"}, body)

        return Handler
