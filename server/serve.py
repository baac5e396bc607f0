"""`standin serve`: answer real calls.

The SIP endpoint hands over each answered call; each runs on its own `LiveCall` with the shared
engines, and leaves its folder under `[storage] calls_dir` (call.wav, trace.jsonl, summary.json with the
caller's number), written as the call goes so nothing is lost if the process dies. With an `Owner`
(server/owner.py) the call is also planned from the caller's number (a blocked caller is hung up on at
once), stored in the database while it runs (its row committed before the greeting), and turned into a
message when it ends.

A call is never answered and then dropped for want of disk: the endpoint asks the `DiskGuard`
(server/store/disk.py) before it answers and refuses with 503 while the calls folder cannot take a
call (the owner is told); a call whose files stop being writable on the way goes on without them.

`answer` takes anything shaped like server.runtime.Transport with a `call_id` and a `caller_number`
(and optionally `source`: "sip" when absent, "browser" for the dashboard's test call).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import signal
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from server.callfiles import CallFiles
from server.callrecord import summarize, unheard
from server.config import Config
from server.contacts import CallPlan, default_plan
from server.contacts.carddav import carddav_refreshing
from server.core.conversation import Conversation
from server.engines import build_engines, warm_up
from server.jobs import JobRunner
from server.notify import Outbox
from server.owner import Owner
from server.provenance import provenance_json
from server.ringthrough import RingDriver, Switchboard, call_ring_options
from server.runtime import CallRuntime, Engines, LiveCall, RuntimeOptions
from server.store.calls import CallLog, describe_error
from server.store.db import open_database
from server.store.disk import DiskGuard

log = logging.getLogger(__name__)

ROW_WAIT_S = 2.0  # longest a new call's greeting waits for its row to be committed


def call_folder(calls_dir: Path, call_id: str, started: datetime) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:48]
    return calls_dir / f"{started:%Y%m%d-%H%M%S}-{safe}"


def new_call_folder(calls_dir: Path, call_id: str, started: datetime) -> Path:
    """`call_folder`, with a suffix when that name is taken (a call id seen again after a restart)."""
    folder = base = call_folder(calls_dir, call_id, started)
    n = 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


async def answer(call: Any, engines: Engines, config: Config, calls_dir: Path, *,
                 owner: Owner | None = None, disk: DiskGuard | None = None,
                 switchboard: Switchboard | None = None) -> dict[str, Any]:
    """Run one answered call to its end and store it; returns its summary. The call's row is committed
    before it is greeted; its files that cannot be written (a full disk) are given up, not the call.
    With a `switchboard` (the SIP endpoint) and `[owner] phone`, the caller may be put through to the
    owner (server/ringthrough.py)."""
    started = datetime.now().astimezone()
    source = str(getattr(call, "source", "") or "sip")
    if owner is not None:
        plan = await asyncio.to_thread(owner.plan, call.caller_number)
    else:
        plan = default_plan(config, call.caller_number)
    folder = await asyncio.to_thread(new_call_folder, calls_dir, call.call_id, started)
    meta = {"call_id": call.call_id, "caller_number": call.caller_number,
            "started_at": started.isoformat(timespec="seconds")}
    if plan.blocked:
        return await _refuse(call, owner, plan, uid=folder.name, source=source, meta=meta)
    call_log = None
    if owner is not None:
        call_log = owner.open_call(folder.name, plan=plan, caller_number=call.caller_number, source=source,
                                   folder=str(folder))
        await _committed(call_log)
    files = await asyncio.to_thread(CallFiles, folder, keep_going=True,
                                    on_write_error=disk.write_failed if disk is not None else None,
                                    engines=provenance_json(engines))
    if call_log is not None:
        files.trace = call_log.observe(files.trace)
    options = RuntimeOptions(language=plan.language, hints=config.stt.hints, echo=config.echo,
                             context=plan.context, timeouts_s=config.timeouts())
    target = _owner_target(config, switchboard) if source == "sip" else None
    ring = call_ring_options(config, plan, call.caller_number, can_dial=target is not None)
    conversation = dataclasses.replace(plan.conversation, ring=ring)

    def make(jobs: JobRunner) -> CallRuntime:
        runtime = CallRuntime(Conversation(conversation), engines, jobs, options=options,
                              trace=files.trace, recorder=files.recorder)
        if target is not None and switchboard is not None:
            runtime.ring = RingDriver(switchboard, call, target, tts=engines.tts,
                                      owner_language=config.language, deliver=runtime.deliver, now=live.now,
                                      record_owner=runtime.owner_audio, stt=engines.stt)
        return runtime

    live = LiveCall(make)
    with contextlib.suppress(AttributeError):
        call.on_dtmf = live.dtmf
    error: str | None = None
    summary: dict[str, Any] | None = None
    try:
        runtime = await live.run(call)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"  # the call's own record keeps the text; the log does not
        log.error("call %s failed: %s raised in %s", call.call_id, type(exc).__name__, _where(exc))
        raise
    finally:
        meta.update(error=error, duration_s=round(live.now(), 3))
        core, timings = (live.runtime.core, live.runtime.timings) if live.runtime else (Conversation(), {})
        if (ring_record := core.ring.report()) is not None:
            driver = live.runtime.ring if live.runtime else None
            meta["ring_through"] = {**ring_record, **(driver.report() if driver is not None else {})}
        try:
            summary = await asyncio.to_thread(files.finish, core, meta, timings)
        finally:
            if owner is not None and call_log is not None:
                owner.call_ended(call_log, summary if summary is not None
                                 else summarize(core.report(), timings, meta, files.engines))
    log.info("call %s ended (%s) after %.1fs", call.call_id, runtime.core.ended, live.now())
    return summary


def _owner_target(config: Config, switchboard: Switchboard | None) -> str | None:
    """The URI to ring for `[owner] phone`, or None when nobody can be put through."""
    if not config.owner.phone or switchboard is None:
        return None
    from sip.ring import target_uri

    try:
        return target_uri(config.owner.phone, getattr(getattr(switchboard, "options", None), "registrar_host",
                                                      None))
    except ValueError as exc:
        log.error("[owner] phone: %s", exc)
        return None


def _where(exc: BaseException, frames: int = 4) -> str:
    """The innermost frames `exc` passed through, as file:line (function): where it failed, without its
    message, which can quote an engine or the caller."""
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} ({f.name})" for f in reversed(stack)) or "?"


async def _committed(call_log: CallLog) -> None:
    """Wait (a little) for the call's row to be committed: a call killed right after its answer is
    then still listed, and recovered. A database too slow or failing delays no greeting for long."""
    try:
        await asyncio.wait_for(asyncio.to_thread(call_log.commit_row), ROW_WAIT_S)
    except TimeoutError:
        log.warning("the database took over %.0f s to list a new call; answering it meanwhile", ROW_WAIT_S)
    except Exception as exc:
        log.error("cannot list a new call in the database (%s); answering it anyway", describe_error(exc))


async def _refuse(call: Any, owner: Owner | None, plan: CallPlan, *, uid: str, source: str,
                  meta: dict[str, Any]) -> dict[str, Any]:
    """A blocked caller: hung up on at once; no folder, no recording, no message; the call is listed."""
    log.info("call %s: the caller's profile blocks them; hanging up", call.call_id)
    await call.hang_up("blocked")
    summary = unheard("blocked", {**meta, "error": None, "duration_s": 0.0})
    if owner is not None:
        owner.call_ended(owner.open_call(uid, plan=plan, caller_number=call.caller_number, source=source),
                         summary)
    return summary


def call_runner(owner: Owner, disk: DiskGuard | None = None,
                switchboard: Callable[[], Switchboard | None] | None = None
                ) -> Callable[[Any], Awaitable[dict[str, Any]]]:
    """`answer` bound to `owner`: what the SIP endpoint and the browser test call hand calls to.
    `switchboard` gives the SIP endpoint, for putting callers through to the owner."""

    async def run(call: Any) -> dict[str, Any]:
        return await answer(call, owner.engines, owner.config, owner.calls_dir, owner=owner, disk=disk,
                            switchboard=switchboard() if switchboard is not None else None)

    return run


@contextlib.asynccontextmanager
async def owner_running(config: Config, engines: Engines) -> AsyncIterator[Owner]:
    """The process's `Owner`: `[storage] database` opened (and migrated), the notification outbox
    running on this loop, calls a crash left open recovered and their messages under way, and the
    CardDAV address book (`[contacts] carddav_url`) imported now and every `carddav_refresh_min` minutes,
    in the background. Everything stops (what is queued committed first) and the database closes on the
    way out."""
    db = await asyncio.to_thread(open_database, config.storage.database)
    try:
        outbox = Outbox(db, config.notify, timeout_s=config.notify.timeout_s)
        owner = Owner(config, db, engines, calls_dir=Path(config.storage.calls_dir), outbox=outbox,
                      node=config.storage.node, message_timeout_s=config.llm.message_timeout_s,
                      message_max_tokens=config.llm.message_max_tokens)
        await outbox.start()
        try:
            await asyncio.to_thread(owner.start)
            try:
                async with carddav_refreshing(config, db):
                    yield owner
            finally:
                await asyncio.to_thread(owner.stop)
        finally:
            await outbox.stop()
    finally:
        await asyncio.to_thread(db.close)


def live_status(config: Config, endpoint: Any) -> Callable[[], dict[str, Any]]:
    """What the dashboard shows of the running service: SIP registration and the engines in use."""

    def status() -> dict[str, Any]:
        reg = endpoint.registration()
        return {
            "running": True,
            "sip": {"ok": reg.ok, "state": reg.state, "registrar": reg.registrar or "", "code": reg.code,
                    "reason": reg.reason, "expires_s": reg.expires_s, "live_calls": len(endpoint.calls()),
                    "addresses": dict(endpoint.addresses)},
            "models": {"ok": True, **{stage: {"engine": getattr(config, stage).engine,
                                              "model": _model_of(config, stage)}
                                      for stage in ("vad", "stt", "judge", "llm", "tts")}},
        }

    return status


def _model_of(config: Config, stage: str) -> str:
    table = getattr(config, stage)
    return str(getattr(table, "model", "") or getattr(table, "voice", "") or "")


async def serve(config: Config) -> None:
    from server.web.serving import dashboard
    from sip.endpoint import SipEndpoint
    from sip.options import SipOptions

    options = SipOptions.from_mapping(config.sip)
    if config.owner.phone:
        from server.config import ConfigError
        from sip.ring import target_uri

        try:
            target_uri(config.owner.phone, options.registrar_host)
        except ValueError as exc:
            raise ConfigError(f"{config.source}: [owner] phone: {exc}") from None
    calls_dir = Path(config.storage.calls_dir)
    await asyncio.to_thread(calls_dir.mkdir, parents=True, exist_ok=True)
    engines = build_engines(config)
    await asyncio.to_thread(warm_up, engines)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with owner_running(config, engines) as owner, \
            DiskGuard(calls_dir, on_refuse=owner.call_refused).watching() as disk:
        endpoint = SipEndpoint(options, call_runner(owner, disk, switchboard=lambda: endpoint), loop=loop,
                               admit=disk.admit)
        await asyncio.to_thread(endpoint.start)
        try:
            log.info("standin is answering on %s",
                     ", ".join(f"{t} {a}" for t, a in endpoint.addresses.items()))
            async with dashboard(config, owner.db, status=live_status(config, endpoint),
                                 start_browser_call=call_runner(owner, disk)):
                await stop.wait()
        finally:
            await asyncio.to_thread(endpoint.stop)
