"""A box for `standin doctor` to look at (a config, a models folder matching a tiny manifest, free ports,
an owner password) and a small JSON server standing in for the dashboard, vLLM or a webhook."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import pwd
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from server import doctor

REPO = Path(__file__).resolve().parents[2]

MODEL_FILES = {
    "whisper/tiny/model.bin": b"not really whisper, but the right bytes" * 50,
    "whisper/tiny/config.json": b'{"tiny": true}\n',
    "piper/voice.onnx": b"onnx bytes " * 100,
    "piper/voice.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@dataclass
class Box:
    root: Path
    config: Path
    manifest: Path
    models: Path
    sip_port: int
    web_port: int

    def args(self, *extra: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        doctor.add_arguments(parser)
        return parser.parse_args(["--config", str(self.config), "--manifest", str(self.manifest),
                                  "--user", me(), "--timeout", "1", *extra])

    def run(self, *extra: str) -> tuple[int, list[doctor.Finding]]:
        report = doctor.diagnose(self.args(*extra))
        return (1 if report.failed else 0), report.findings

    def rewrite(self, **tables: dict[str, Any]) -> None:
        self.config.write_text(toml({**self.tables(), **tables}), encoding="utf-8")

    def tables(self) -> dict[str, dict[str, Any]]:
        return {
            "models": {"dir": str(self.models), "set": "cpu"},
            "stt": {"engine": "whisper", "model": "whisper/tiny", "device": "cpu"},
            "judge": {"engine": "rules"},
            "llm": {"engine": "script"},
            "tts": {"engine": "piper", "voice": "piper/voice.onnx"},
            "sip": {"listen": f"127.0.0.1:{self.sip_port}", "rtp_port_start": 47100, "rtp_port_count": 40},
            "web": {"listen": f"127.0.0.1:{self.web_port}", "password_file": str(self.root / "web-password"),
                    "secret_file": str(self.root / "web-secret")},
            "storage": {"calls_dir": str(self.root / "calls"),
                        "database": f"sqlite:///{self.root / 'standin.db'}"},
        }


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def toml(tables: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in tables.items():
        out.append(f"[{name}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def manifest_text(files: dict[str, bytes]) -> str:
    lines = ['[sets.cpu]\nmodels = ["whisper-tiny", "voice"]\n', '[sets.gpu]\nmodels = ["whisper-tiny"]\n']
    for model, prefix in (("whisper-tiny", "whisper/"), ("voice", "piper/")):
        lines.append(f"[models.{model}]\nrole = \"test\"\n")
        for path, data in files.items():
            if path.startswith(prefix):
                lines.append(f"[[models.{model}.files]]\npath = \"{path}\"\n"
                             f"url = \"https://models.invalid/{path}\"\nsize = {len(data)}\n"
                             f"sha256 = \"{hashlib.sha256(data).hexdigest()}\"\n")
    return "\n".join(lines)



def make_box(tmp_path: Path) -> Box:
    from argon2 import PasswordHasher

    models = tmp_path / "models"
    for rel, data in MODEL_FILES.items():
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(data)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(manifest_text(MODEL_FILES), encoding="utf-8")
    (tmp_path / "web-password").write_text(PasswordHasher().hash("correct horse") + "\n", encoding="utf-8")
    b = Box(tmp_path, tmp_path / "standin.toml", manifest, models, free_port(), free_port())
    b.rewrite()
    return b


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, Any]]] = {}
    token = ""
    posts: ClassVar[list[bytes]] = []

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, {"error": "no"}))
        if self.token and self.headers.get("Authorization") != f"Bearer {self.token}":
            body = {"status": body.get("status", "ok")}
        self._send(status, body)

    def do_POST(self) -> None:
        self.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._send(200, {})

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Served:
    port: int
    posts: list[bytes]


@contextlib.contextmanager
def json_server(routes: dict[str, tuple[int, Any]], token: str = "", port: int = 0) -> Iterator[Served]:
    posts: list[bytes] = []
    handler = type("H", (_Handler,), {"routes": routes, "token": token, "posts": posts})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(server.server_address[1], posts)
    finally:
        server.shutdown()
        server.server_close()


def failures(findings: list[doctor.Finding]) -> list[doctor.Finding]:
    return [f for f in findings if f.level == "fail"]


def one(findings: list[doctor.Finding], check: str, level: str, text: str) -> doctor.Finding:
    hits = [f for f in findings if f.check == check and f.level == level and text in f.what]
    assert len(hits) == 1, f"no single {level} {check} finding with {text!r} in:\n" + "\n".join(
        f"{f.check} {f.level} {f.what}" for f in findings)
    return hits[0]
