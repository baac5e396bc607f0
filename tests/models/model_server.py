"""What the model manager's tests share: a loopback HTTP server serving small files (no real models,
no internet), test manifests that point at it, and small helpers around `status` and `pull`.

The server speaks HTTP/1.0 through `http.server` with Range requests done here, and can drop a
connection halfway through a body, answer an error once, or send other bytes than the manifest says.
Test modules wrap `serve_files` in a `server` fixture of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import socket
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from models import manager

# --------------------------------------------------------------------------- the test server


@dataclass
class FileServer:
    """Files by URL path; what was asked for; what was sent."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    sent: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # body bytes written
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes of body sent before a drop, once
    fail_once: dict[str, int] = field(default_factory=dict)  # path -> HTTP status answered once
    types: dict[str, str] = field(default_factory=dict)  # path -> Content-Type sent with it
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def asked(self, name: str) -> list[str | None]:
        with self.lock:
            return [rng for path, rng in self.requests if path == name]


def _handler(srv: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            name = self.path.lstrip("/")
            with srv.lock:
                srv.requests.append((f"HEAD {name}", None))
            data = srv.files.get(name)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            with srv.lock:
                srv.requests.append((name, rng))
                status = srv.fail_once.pop(name, None)
                cut = None
            if status is not None:
                self.send_error(status)
                return
            data = srv.files.get(name)
            if data is None:
                self.send_error(404)
                return
            first, code = 0, 200
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                assert m, rng
                first = int(m[1])
                if first >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                last = int(m[2]) if m[2] else len(data) - 1
                code = 206
            else:
                last = len(data) - 1
            body = data[first:last + 1]
            self.send_response(code)
            if code == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            if name in srv.types:
                self.send_header("Content-Type", srv.types[name])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with srv.lock:
                cut = srv.drop_after.pop(name, None)
            if cut is not None and cut < len(body):
                self.wfile.write(body[:cut])
                with srv.lock:
                    srv.sent[name] += cut
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the rest never comes
                return
            self.wfile.write(body)
            with srv.lock:
                srv.sent[name] += len(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is part of these tests


@contextlib.contextmanager
def serve_files() -> Iterator[FileServer]:
    """A `FileServer` listening on 127.0.0.1 (a port of its own) until the block ends."""
    srv = FileServer()
    srv.httpd = _QuietServer(("127.0.0.1", 0), _handler(srv))
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join()


# --------------------------------------------------------------------------- test manifests


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (model, path in the models dir, URL name, content)
ALPHA_WEIGHTS = blob(1, 300_000)
ALPHA_CONFIG = blob(2, 2_000)
BETA_VOICE = blob(3, 120_000)
FILES = [
    ("alpha", "alpha/weights.bin", "a/weights.bin", ALPHA_WEIGHTS),
    ("alpha", "alpha/config.json", "a/config.json", ALPHA_CONFIG),
    ("beta", "voices/beta.onnx", "b/beta.onnx", BETA_VOICE),
]


def write_manifest(path: Path, srv: FileServer | None, files: list[tuple[str, str, str, bytes]] = FILES, *,
                   digests: dict[str, str] | None = None, unverified: frozenset[str] = frozenset(),
                   port: int = 9) -> Path:
    """A manifest with one set, `test`, of the given files; `digests` overrides a file's sha256 (by path),
    `unverified` leaves it without one. Without a server the URLs point at a closed port."""
    digests = digests or {}
    models: dict[str, list[str]] = {}
    for model, rel, name, data in files:
        url = srv.url(name) if srv is not None else f"http://127.0.0.1:{port}/{name}"
        digest = ("sha256 = \"\"\nunverified = true" if rel in unverified
                  else f"sha256 = \"{digests.get(rel, sha256(data))}\"")
        models.setdefault(model, []).append(
            f"[[models.{model}.files]]\npath = \"{rel}\"\nurl = \"{url}\"\nsize = {len(data)}\n{digest}\n")
        if srv is not None:
            srv.files[name] = data
    names = ", ".join(f'"{m}"' for m in models)
    text = f"[sets.test]\ndescription = \"test\"\nmodels = [{names}]\n\n"
    for model, tables in models.items():
        text += f"[models.{model}]\nrole = \"test\"\n\n" + "\n".join(tables) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_set(manifest_path: Path) -> manager.ModelSet:
    return manager.load_manifest(manifest_path).set("test")


test_set.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def states(models_dir: Path, mset: manager.ModelSet) -> dict[str, str]:
    return {s.file.path: s.state for s in manager.status(models_dir, mset)}


def pull(models_dir: Path, mset: manager.ModelSet, **kwargs: Any) -> list[manager.PullResult]:
    kwargs.setdefault("backoff_s", 0.0)
    return manager.pull(models_dir, mset, **kwargs)
