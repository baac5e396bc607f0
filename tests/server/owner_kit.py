"""What the owner's tests share: a caller played from a WAV through a transport shaped like the SIP one,
an HTTP inbox on loopback that apprise's json:// notifications reach, and a scenario's config."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from server.config import Config, load

NUMBER = "+393331234567"


class WavTransport:
    """A caller playing `audio`, then `tail_s` of silence, `speed` times faster than real time; bot frames
    are pulled from a worker thread, as the SIP bridge pulls them."""

    source = "sip"

    def __init__(self, audio: np.ndarray, call_id: str = "call-1", caller_number: str = NUMBER,
                 speed: float = 5.0, tail_s: float = 5.0) -> None:
        self.call_id, self.caller_number = call_id, caller_number
        self.audio = np.concatenate([audio, np.zeros(int(tail_s * 16000), np.int16)])
        self.speed = speed
        self.hung_up: str | None = None
        self.bot: list[np.ndarray] = []
        self._pull: Callable[[], np.ndarray] | None = None

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        self._pull = pull

    async def frames(self) -> AsyncIterator[np.ndarray]:
        for k in range(len(self.audio) // 320):
            await asyncio.sleep(0.02 / self.speed)
            if self._pull is not None:
                self.bot.append(await asyncio.to_thread(self._pull))
            yield self.audio[k * 320:(k + 1) * 320]

    async def hang_up(self, reason: str) -> None:
        self.hung_up = reason


class Inbox:
    """An HTTP server on loopback that apprise's json:// posts notifications to."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.posts.append(json.loads(body))
                inbox.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.httpd.server_address[1]}/standin"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def scenario_config(shared: Path, name: str, tmp_path: Path) -> Config:
    return load(None, {"stt": {"transcript": str(shared / "scenarios" / f"{name}.tsv")},
                       "storage": {"calls_dir": str(tmp_path / "calls")}})
