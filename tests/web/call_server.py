"""A real standin web app that takes browser test calls, on uvicorn in a thread, for the call tests.

Default engines (Silero VAD, the `transcript` STT, the rules judge, scripted replies, espeak-ng), a
temporary database and calls folder, and a real owner password."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import uvicorn

from models.stt_transcript import read_transcript
from server.audio import read_audio
from server.config import Config, load
from server.engines import build_engines

PASSWORD = "correct horse battery"
LEAD_S = 2.0  # silence before the scenario's caller speaks: the (short) greeting plays in it
GREETING = "Hello, standin here."


def shifted_scenario(scenarios: Path, name: str, out: Path,
                     tail_s: float = 6.0) -> tuple[Path, Path, np.ndarray]:
    """The scenario's caller audio (16 kHz int16) with LEAD_S of silence before it and `tail_s` after it,
    and its transcript moved to match."""
    pcm = read_audio(scenarios / f"{name}.wav")
    audio = np.concatenate([np.zeros(int(LEAD_S * 16000), np.int16), pcm,
                            np.zeros(int(tail_s * 16000), np.int16)])
    wav = out / f"{name}.wav"
    sf.write(wav, audio, 16000, subtype="PCM_16")
    tsv = out / f"{name}.tsv"
    rows = ["start_s\tend_s\tlabel\ttext"]
    rows += [f"{p.start_s + LEAD_S:.3f}\t{p.end_s + LEAD_S:.3f}\t{p.label}\t{p.text}"
             for p in read_transcript(scenarios / f"{name}.tsv")]
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return wav, tsv, audio


def make_config(tmp: Path, transcript: Path) -> Config:
    return load(None, {
        "call": {"greeting": GREETING},
        "stt": {"engine": "transcript", "transcript": str(transcript)},
        "storage": {"calls_dir": str(tmp / "calls"), "database": f"sqlite:///{tmp / 'standin.db'}"},
        "web": {"listen": "127.0.0.1:0", "password_file": str(tmp / "web-password"),
                "secret_file": str(tmp / "web-secret")},
    })


class CallServer:
    """The app as `standin serve` runs it: on the loop that runs the calls, with the process's `Owner`
    (database, message writer, notification outbox), listening on 127.0.0.1 at a free port."""

    def __init__(self, config: Config) -> None:
        from server.web.auth import set_password

        self.config = config
        self.calls_dir = Path(config.storage.calls_dir)
        self.calls_dir.mkdir(parents=True, exist_ok=True)
        set_password(config.web.password_file, PASSWORD)
        self.engines = build_engines(config)
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="call-server",
                                        daemon=True)
        self.port = 0

    async def _main(self) -> None:
        from server.serve import call_runner, owner_running
        from server.web.app import create_app
        from server.web.context import WebContext

        async with owner_running(self.config, self.engines) as owner:
            app = create_app(WebContext(self.config, owner.db, start_browser_call=call_runner(owner)))
            self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
            await self._server.serve()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CallServer:
        self._thread.start()
        deadline = time.monotonic() + 120
        while self._server is None or not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.05)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(60)

    def session_cookie(self) -> str:
        """Log in through the login form; the session cookie, as a Cookie header's value."""
        response = httpx.post(f"{self.origin}/login", data={"password": PASSWORD, "next": "/call"},
                              headers={"Origin": self.origin}, timeout=60)
        assert response.status_code == 303, response.text
        return "; ".join(f"{k}={v}" for k, v in response.cookies.items())

    def summaries(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.calls_dir.glob("*/summary.json")]

    def summary(self, call_id: str) -> dict[str, Any]:
        (found,) = [s for s in self.summaries() if s["call_id"] == call_id]
        return found

