"""Does a call ending delay the next call's answer? Side by side, interleaved, in one run:

    python benchmarks/owner_path.py [--runs 15] [--json benchmarks/owner_path.json]

Each round answers a fresh call through `server.serve.answer` with a real `Owner` (SQLite, the store
writer, the message worker, the notification outbox) and times it from the call's arrival to the first
frame of the greeting pulled by the line, and the whole `call_ended` hand-over of the call before it.
In the "busy" rounds the call before it ended an instant earlier with a message still being written by a
model that computes for 2 s (numpy, outside the GIL, as llama.cpp does) and checks its interrupt between
steps, and the outbox is sending to a channel that takes 1 s to answer. In the "idle" rounds nothing is
under way. The engines are the stand-ins that need no weights (rules judge, scripted replies, espeak).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from server.config import load  # noqa: E402
from server.engines import build_engines  # noqa: E402
from server.serve import answer, owner_running  # noqa: E402
from server.store.schema import Message  # noqa: E402

FRAME = 320


class BusyModel:
    """A reply engine whose message writing computes for `seconds`, in interruptible steps."""

    in_process = True

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def extract(self, messages: Any, schema: Any, *, max_tokens: int = 400, timeout_s: float = 60,
                interrupt: Callable[[], bool] | None = None) -> dict[str, Any]:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if interrupt is not None and interrupt():
                raise RuntimeError("interrupted")
            self.a = np.tanh(self.a @ self.a)  # a "token"
        return {"caller_name": "", "callback_number": "", "text": "Please call back about the invoice.",
                "urgency": "normal", "language": "en"}


class SlowChannel(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(1.0)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class Caller:
    """A caller who stays silent; the line pulls bot frames every 20 ms from its own thread and notes
    when the greeting's first sound arrives; the caller hangs up 0.3 s after it."""

    source = "sip"
    caller_number = "+390212345678"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.arrived = time.monotonic()
        self.first_audio: float | None = None
        self.on_dtmf: Any = None
        self._stop = threading.Event()

    async def frames(self) -> AsyncIterator[np.ndarray]:
        silence = np.zeros(FRAME, np.int16)
        next_at = time.monotonic()
        while self.first_audio is None or time.monotonic() < self.first_audio + 0.3:
            if time.monotonic() > self.arrived + 10:
                raise RuntimeError("no greeting within 10 s")
            yield silence
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        self._stop.set()

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        def line() -> None:
            next_at = time.monotonic()
            while not self._stop.is_set():
                frame = pull()
                if self.first_audio is None and np.abs(frame).max() > 0:
                    self.first_audio = time.monotonic()
                next_at += 0.02
                time.sleep(max(0.0, next_at - time.monotonic()))

        threading.Thread(target=line, daemon=True).start()

    async def hang_up(self, reason: str) -> None:
        self._stop.set()


def ended_call_summary(number: str) -> dict[str, Any]:
    return {"caller_fragments": [{"start_s": 0.5, "end_s": 3.0, "text": "Hi, it's about the invoice, "
                                  "please call me back."}],
            "decisions": [], "bot_turns": [], "barge_ins": [], "story": "", "story_lines": [],
            "ended": "caller hung up", "caller_number": number, "error": None, "duration_s": 4.0,
            "started_at": datetime.now(UTC).isoformat()}


async def run(runs: int) -> dict[str, Any]:
    channel = ThreadingHTTPServer(("127.0.0.1", 0), SlowChannel)
    threading.Thread(target=channel.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        config = load(None, {
            "call": {"greeting": "Hello, this is standin."},
            "stt": {"transcript": str(Path(tmp) / "empty.tsv")},
            "storage": {"calls_dir": f"{tmp}/calls", "database": f"sqlite:///{tmp}/standin.db"},
            "notify": {"urls": [f"json://127.0.0.1:{channel.server_port}/"]},
        })
        (Path(tmp) / "empty.tsv").write_text("start_s\tend_s\tlabel\ttext\n")
        engines = build_engines(config)
        engines = dataclasses.replace(engines, llm=BusyModel(engines.llm, 2.0))
        answer_ms: dict[str, list[float]] = {"idle": [], "busy": []}
        handover_ms: list[float] = []
        async with owner_running(config, engines) as owner:
            await answer(Caller("warm-up"), engines, config, owner.calls_dir, owner=owner)
            for i in range(runs * 2):
                kind = "busy" if i % 2 else "idle"
                if kind == "busy":
                    plan = await asyncio.to_thread(owner.plan, "+390298765432")
                    log = owner.open_call(f"before-{i}", plan=plan, caller_number="+390298765432")
                    start = time.perf_counter()
                    owner.call_ended(log, ended_call_summary("+390298765432"))
                    handover_ms.append((time.perf_counter() - start) * 1000)
                caller = Caller(f"round-{i}")
                await answer(caller, engines, config, owner.calls_dir, owner=owner)
                assert caller.first_audio is not None
                answer_ms[kind].append((caller.first_audio - caller.arrived) * 1000)
                await asyncio.to_thread(owner.flush, 60)
            with owner.db.session() as session:
                written = dict(session.execute(select(Message.source, func.count()).group_by(Message.source))
                               .all())
        channel.shutdown()
    idle, busy = statistics.median(answer_ms["idle"]), statistics.median(answer_ms["busy"])
    return {"runs": runs, "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            "answer_to_greeting_ms": {"idle_median": round(idle, 1), "busy_median": round(busy, 1),
                                      "busy_minus_idle": round(busy - idle, 1),
                                      "idle": [round(x, 1) for x in answer_ms["idle"]],
                                      "busy": [round(x, 1) for x in answer_ms["busy"]]},
            "call_ended_handover_ms_median": round(statistics.median(handover_ms), 3),
            "messages_written": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "owner_path.json")
    args = parser.parse_args()
    result = asyncio.run(run(args.runs))
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    a = result["answer_to_greeting_ms"]
    print(f"call arrives -> greeting's first frame on the line: idle {a['idle_median']} ms, "
          f"right after a call ended with its message being written {a['busy_median']} ms "
          f"(difference {a['busy_minus_idle']} ms); call_ended hand-over "
          f"{result['call_ended_handover_ms_median']} ms")


if __name__ == "__main__":
    main()
