"""A call's rows, written while it runs: `CallLog` watches the call's trace and stores the caller's words.

The runtime writes every event, command and latency of a call to its `Trace`; `CallLog.observe` puts a
tee in front of it. From what passes (a Transcribe command names the caller's audio, the TranscriptReady
event for its job carries the words) the log keeps the caller's fragments as they are heard, and hands
them to a `StoreWriter`: one background thread that commits to the database in order, so the call's
thread (the event loop) never waits for SQLite's fsync. Changes coalesce: a call has at most one write
waiting, which takes whatever changed by the time it runs. A database error is logged (its class, never
the caller's words) and the call goes on.

The call's row itself is committed by `commit_row()` before the call is greeted, so a call is listed
even when the process dies a moment after answering it. When the call ends, `finish(summary)` replaces
the live rows with the final ones from summary.json's content (fragments, bot turns, decisions, each
reply's latencies, the engines that served the call: server/callrecord.py) in one transaction; it may
run twice. What the log learns from the trace is kept by a `CallWatch`, which recovery feeds a trace
read back after a crash (server/store/replay.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.callrecord import rows
from server.core import events as ev
from server.provenance import Provenance
from server.store.db import Database
from server.store.schema import BotTurn, Call, Decision, Fragment, TurnLatency, utcnow
from server.trace import Trace

log = logging.getLogger(__name__)

T = TypeVar("T")



def describe_error(exc: BaseException) -> str:
    """What went wrong, for a log line: SQLAlchemy's own text quotes the statement's parameters (the
    caller's words, their number), so only the driver's first line is kept."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        detail = str(exc.orig).splitlines()[0][:200] if str(exc.orig) else ""
        return f"{type(exc).__name__} ({type(exc.orig).__name__}: {detail})"
    return type(exc).__name__


class StoreWriter:
    """Runs database work on a thread of its own, in the order it was handed over."""

    def __init__(self, db: Database, *, maxsize: int = 256, name: str = "standin-store") -> None:
        self.db = db
        self._queue: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, work: Callable[[], T], *, wait: bool = True) -> Future[T]:
        """Queue `work`; its future holds what it returns or raises. With `wait=False` a full queue
        raises `queue.Full` at once instead of waiting for room."""
        future: Future[T] = Future()
        self._queue.put((work, future), block=wait)
        return future

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then end the thread."""
        if self._started and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the database writer did not finish its work within %.0f s", timeout_s)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            work, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except Exception as exc:
                log.error("a database write failed: %s", describe_error(exc))
                future.set_exception(exc)


class _Tee(Trace):
    """A `Trace` that writes through to another and shows every line to a `CallLog` too."""

    def __init__(self, inner: Trace, watcher: CallLog) -> None:  # the inner trace owns the file
        self.path = inner.path
        self._inner = inner
        self._watcher = watcher

    def event(self, event: Any) -> None:
        try:
            self._inner.event(event)
        finally:  # the file failing must not cost the database the line
            self._watcher.saw(self._watcher.on_event, event)

    def command(self, t: float, command: Any) -> None:
        try:
            self._inner.command(t, command)
        finally:
            self._watcher.saw(self._watcher.on_command, command)

    def latency(self, name: str, ms: float, t: float, job: int | None = None) -> None:
        self._inner.latency(name, ms, t, job)

    def close(self) -> None:
        self._inner.close()


class CallWatch:
    """The caller's fragments as they are heard, from a call's trace: a Transcribe command names the
    audio of its job, the TranscriptReady event for that job carries the words (handed to `on_fragment`:
    first sample, start_s, end_s, text). Fed by a live call's `CallLog`, or by a trace read back after a
    crash."""

    def __init__(self, rate: int = 16000,
                 on_fragment: Callable[[int, float, float, str], None] | None = None) -> None:
        self.rate = rate
        self.on_fragment = on_fragment
        self._stt_spans: dict[int, tuple[int, int]] = {}

    def on_event(self, e: Any) -> None:
        if type(e) is ev.TranscriptReady:
            span = self._stt_spans.get(e.job)
            text = e.text.strip()
            if span is not None and text and self.on_fragment is not None:
                self.on_fragment(span[0], span[0] / self.rate, span[1] / self.rate, text)

    def on_command(self, c: Any) -> None:
        if type(c) is ev.Transcribe:
            self._stt_spans[c.job] = (c.start, c.end)


class CallLog:
    """One call's rows in the database, from its start (state "live") to its end."""

    def __init__(self, db: Database, writer: StoreWriter, *, uid: str, source: str = "sip",
                 caller_number: str = "", caller_name: str = "", contact_id: int | None = None,
                 profile: str = "", language: str = "", folder: str = "", node: str = "",
                 started_at: datetime | None = None, rate: int = 16000) -> None:
        self.db = db
        self.writer = writer
        self.uid = uid
        self.call_id: int | None = None  # the row's id, once it is in the database
        self.rate = rate
        self._row = {"uid": uid[:128], "source": source[:16], "caller_number": caller_number[:64],
                     "caller_name": caller_name[:200], "contact_id": contact_id, "profile": profile[:64],
                     "language": language[:16], "folder": folder, "node": node[:128],
                     "started_at": started_at or utcnow()}
        self._lock = threading.Lock()  # what the call's thread and the writer share
        self._db_lock = threading.Lock()  # one write of this call's rows at a time
        self._finished = False
        self._scheduled = False
        self._full_warned = False
        self._observer_failed = False
        self._dirty: dict[int, tuple[float, float, str]] = {}  # fragment (its first sample) -> row
        self._rows: dict[int, int] = {}  # fragment -> Fragment.id (with _db_lock)
        self.watch = CallWatch(rate, self._heard)  # with _lock
        self._schedule()  # the row itself

    # ------------------------------------------------------------------ watching the call

    def observe(self, trace: Trace) -> Trace:
        """`trace`, with this log watching every line written to it. Give the result to the runtime."""
        return _Tee(trace, self)

    def saw(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:  # watching must never break the call
            if not self._observer_failed:
                self._observer_failed = True
                log.error("call %s: storing its progress failed (%s); the end of the call stores it",
                          self.uid, type(exc).__name__)

    def on_event(self, e: Any) -> None:
        if type(e) is ev.VadWindow:
            return
        with self._lock:
            self.watch.on_event(e)

    def on_command(self, c: Any) -> None:
        with self._lock:
            self.watch.on_command(c)

    def _heard(self, first: int, start_s: float, end_s: float, text: str) -> None:
        self._dirty[first] = (start_s, end_s, text)
        if not self._finished:
            self._schedule_locked()

    # ------------------------------------------------------------------ live writes

    def _schedule(self) -> None:
        with self._lock:
            self._schedule_locked()

    def _schedule_locked(self) -> None:
        if self._scheduled or self._finished:
            return
        try:
            self.writer.submit(self._write_live, wait=False)
        except queue.Full:
            if not self._full_warned:
                self._full_warned = True
                log.warning("call %s: the database writer is behind; its rows follow later", self.uid)
            return
        self._scheduled = True

    def _write_live(self) -> None:
        with self._db_lock:
            with self._lock:
                if self._finished:
                    return
                items, self._dirty, self._scheduled = self._dirty, {}, False
            try:
                with self.db.session() as session:
                    call = self._ensure_call(session)
                    added: dict[int, Fragment] = {}
                    for key, (start_s, end_s, text) in items.items():
                        row = session.get(Fragment, self._rows[key]) if key in self._rows else None
                        if row is None:
                            row = added[key] = Fragment(call_id=call.id, start_s=start_s, end_s=end_s,
                                                        text=text)
                            session.add(row)
                        else:
                            row.start_s, row.end_s, row.text = start_s, end_s, text
                    session.flush()
                    call_id = call.id
            except Exception:
                with self._lock:
                    for key, value in items.items():
                        self._dirty.setdefault(key, value)
                raise
            self.call_id = call_id
            self._rows.update({key: row.id for key, row in added.items()})

    def commit_row(self) -> int:
        """Commit the call's row now, on this thread, without waiting for the writer's queue (blocking:
        run it in a thread before the call is greeted, so that even a call killed at once is listed).
        Returns its id."""
        with self._db_lock:
            if self.call_id is None:
                with self.db.session() as session:
                    call_id = self._ensure_call(session).id
                self.call_id = call_id
            return self.call_id

    def _ensure_call(self, session: Session) -> Call:
        call = session.get(Call, self.call_id) if self.call_id is not None else None
        if call is None:
            call = session.scalar(select(Call).where(Call.uid == self._row["uid"]))
        if call is None:
            call = Call(**self._row, state="live")
            session.add(call)
            session.flush()
        return call

    # ------------------------------------------------------------------ the end

    def finish(self, summary: dict[str, Any]) -> int:
        """Store the call as summary.json tells it and close it ("ended", or "failed" when the summary
        has an error). Returns the call's id. Runs in one transaction; running it again changes nothing."""
        with self._lock:
            self._finished = True
        error = str(summary.get("error") or "")
        duration = summary.get("duration_s")
        with self._db_lock, self.db.session() as session:
            call = self._ensure_call(session)
            call.state = "failed" if error else "ended"
            call.ended_reason = str(summary.get("ended") or ("error" if error else ""))[:200]
            call.error = error
            call.duration_s = float(duration) if duration is not None else None
            call.ended_at = call.started_at + timedelta(seconds=call.duration_s or 0.0)
            engines = engines_of(summary)
            if engines is not None:
                call.engines = engines
            if isinstance(ring := summary.get("ring_through"), dict):
                call.ring_through = ring
            for model in (Fragment, BotTurn, Decision, TurnLatency):
                session.execute(delete(model).where(model.call_id == call.id))
            session.add_all(rows(call.id, summary))
            call_id = call.id
        self.call_id = call_id
        return call_id


def engines_of(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """summary.json's "engines" as `calls.engines` keeps it (well-formed entries only), or None."""
    provenance = Provenance.from_json(summary.get("engines"))
    return None if provenance is None else provenance.to_json()
