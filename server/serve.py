"""`standin serve`: answer real calls.

The SIP endpoint hands over each answered call; each runs on its own `LiveCall` with the shared
engines, and leaves its folder under `[storage] calls_dir` (call.wav, trace.jsonl, summary.json with the
caller's number), written as the call goes so nothing is lost if the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

from server.callfiles import CallFiles
from server.config import Config
from server.core.conversation import Conversation
from server.engines import build_engines, warm_up
from server.jobs import JobRunner
from server.runtime import CallRuntime, Engines, LiveCall, RuntimeOptions

log = logging.getLogger(__name__)


def call_folder(calls_dir: Path, call_id: str, started: datetime) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:48]
    return calls_dir / f"{started:%Y%m%d-%H%M%S}-{safe}"


async def answer(call: Any, engines: Engines, config: Config, calls_dir: Path) -> dict[str, Any]:
    """Run one answered call (anything shaped like sip.media.SipCall) to its end and store it."""
    started = datetime.now().astimezone()
    files = await asyncio.to_thread(CallFiles, call_folder(calls_dir, call.call_id, started))
    options = RuntimeOptions(language=config.language, hints=config.stt.hints, echo=config.echo,
                             context=config.context(caller_number=call.caller_number),
                             timeouts_s=config.timeouts())

    def make(jobs: JobRunner) -> CallRuntime:
        return CallRuntime(Conversation(config.conversation()), engines, jobs, options=options,
                           trace=files.trace, recorder=files.recorder)

    live = LiveCall(make)
    call.on_dtmf = live.dtmf
    error: str | None = None
    try:
        runtime = await live.run(call)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("call %s failed", call.call_id)
        raise
    finally:
        meta = {"call_id": call.call_id, "caller_number": call.caller_number,
                "started_at": started.isoformat(timespec="seconds"), "error": error,
                "duration_s": round(live.now(), 3)}
        core = live.runtime.core if live.runtime else Conversation()
        summary = await asyncio.to_thread(files.finish, core, meta)
    log.info("call %s ended (%s) after %.1fs", call.call_id, runtime.core.ended, live.now())
    return summary


async def serve(config: Config) -> None:
    from sip.endpoint import SipEndpoint
    from sip.options import SipOptions

    options = SipOptions.from_mapping(config.sip)
    calls_dir = Path(config.storage.calls_dir)
    await asyncio.to_thread(calls_dir.mkdir, parents=True, exist_ok=True)
    engines = build_engines(config)
    await asyncio.to_thread(warm_up, engines)

    async def on_call(call: Any) -> None:
        await answer(call, engines, config, calls_dir)

    endpoint = SipEndpoint(options, on_call, loop=asyncio.get_running_loop())
    await asyncio.to_thread(endpoint.start)
    log.info("standin is answering on %s", ", ".join(f"{t} {a}" for t, a in endpoint.addresses.items()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(endpoint.stop)
