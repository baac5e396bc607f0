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
reply's latencies, the engines that served the call) in one transaction; it may run twice. What the log
learns from the trace is kept by a `CallWatch`, which recovery feeds a trace read back after a crash
(server/store/replay.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.core import events as ev
from server.provenance import Provenance
from server.store.db import Database
from server.store.schema import BotTurn, Call, Decision, Fragment, TurnLatency, utcnow
from server.trace import Trace

log = logging.getLogger(__name__)

T = TypeVar("T")

_STAGES = ("stt_ms", "judge_ms", "llm_first_token_ms", "tts_first_audio_ms")
_SAME_START_S = 0.05  # a reply's first audio as the trace saw it and as summary.json rounds it


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


@dataclass(slots=True)
class _ReplyJobs:
    """The engine jobs behind one reply utterance."""

    reply: int
    stt: int | None
    judge: int | None
    tts: int | None = None
    clause_ms: float | None = None
    first_audio_t: float | None = None

    def stages(self, ms: dict[str, dict[int, float]]) -> dict[str, float | None]:
        """Each stage's latency for this reply, from the latencies by stage and job."""
        jobs = {"stt_ms": self.stt, "judge_ms": self.judge, "llm_first_token_ms": self.reply,
                "tts_first_audio_ms": self.tts}
        return {stage: ms[stage].get(job) if job is not None else None for stage, job in jobs.items()}


ReplyTiming = tuple[float | None, _ReplyJobs, dict[str, float | None]]  # first audio, jobs, stage latencies


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

    def latency(self, name: str, ms: float, t: float) -> None:
        try:
            self._inner.latency(name, ms, t)
        finally:
            self._watcher.saw(self._watcher.on_latency, name, ms)

    def close(self) -> None:
        self._inner.close()


class CallWatch:
    """What a call's trace shows, line by line: the caller's fragments as they are heard (handed to
    `on_fragment`: first sample, start_s, end_s, text) and the engine jobs and latencies behind each
    reply. Fed by a live call's `CallLog`, or by a trace read back after a crash."""

    def __init__(self, rate: int = 16000,
                 on_fragment: Callable[[int, float, float, str], None] | None = None) -> None:
        self.rate = rate
        self.on_fragment = on_fragment
        self._stt_spans: dict[int, tuple[int, int]] = {}
        self._ms: dict[str, dict[int, float]] = {stage: {} for stage in _STAGES}
        self._pending: tuple[str, float] | None = None  # a latency waiting for the event it belongs to
        self._last_stt: int | None = None
        self._last_judge: ev.Judge | None = None
        self._last_synth: int | None = None
        self._replies: dict[int, _ReplyJobs] = {}  # utterance -> its jobs

    def replies(self) -> list[ReplyTiming]:
        """Each reply's first audio, jobs and stage latencies, as `final_rows` takes them."""
        return [(r.first_audio_t, r, r.stages(self._ms)) for r in self._replies.values()]

    def on_event(self, e: Any) -> None:
        kind = type(e)
        if kind is ev.VadWindow:
            return
        if self._pending is not None:
            stage, ms = self._pending
            self._pending = None
            job = getattr(e, "job", None)
            if job is not None:
                self._ms[stage][job] = ms
        if kind is ev.TranscriptReady:
            span = self._stt_spans.get(e.job)
            text = e.text.strip()
            if span is not None and text:
                self._last_stt = e.job
                if self.on_fragment is not None:
                    self.on_fragment(span[0], span[0] / self.rate, span[1] / self.rate, text)
        elif kind is ev.PlayoutProgress:
            reply = self._replies.get(e.utterance)
            if reply is not None and reply.first_audio_t is None:
                reply.first_audio_t = e.t + e.offset / self.rate

    def on_command(self, c: Any) -> None:
        kind = type(c)
        if kind is ev.Transcribe:
            self._stt_spans[c.job] = (c.start, c.end)
        elif kind is ev.Judge:
            self._last_judge = c
        elif kind is ev.Reply:
            judge = self._last_judge  # the judge of this very story, unless the turn took a shortcut
            judge_job = judge.job if judge is not None and judge.story == c.story else None
            self._replies[c.utterance] = _ReplyJobs(c.job, self._last_stt, judge_job)
        elif kind is ev.Synthesize:
            self._last_synth = c.utterance
            reply = self._replies.get(c.utterance)
            if reply is not None and reply.tts is None:
                reply.tts = c.job

    def on_latency(self, name: str, ms: float) -> None:
        ms = round(ms, 1)  # as trace.jsonl has it
        if name == "llm_first_clause_ms":  # written right after its Synthesize command
            reply = self._replies.get(self._last_synth) if self._last_synth is not None else None
            if reply is not None and reply.clause_ms is None:
                reply.clause_ms = ms
        elif name in self._ms:  # the next event carries the job it measured
            self._pending = (name, ms)


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

    def on_latency(self, name: str, ms: float) -> None:
        with self._lock:
            self.watch.on_latency(name, ms)

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
            replies = self.watch.replies()
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
            session.add_all(final_rows(call.id, summary, replies))
            call_id = call.id
        self.call_id = call_id
        return call_id


def engines_of(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """summary.json's "engines" as `calls.engines` keeps it (well-formed entries only), or None."""
    provenance = Provenance.from_json(summary.get("engines"))
    return None if provenance is None else provenance.to_json()


def final_rows(call_id: int, summary: dict[str, Any], replies: Sequence[ReplyTiming] = ()
               ) -> list[Fragment | BotTurn | Decision | TurnLatency]:
    """The rows summary.json's content makes, with each reply's latencies as the trace measured them."""
    rows: list[Fragment | BotTurn | Decision | TurnLatency] = []
    fragments = summary.get("caller_fragments") or []
    for f in fragments:
        rows.append(Fragment(call_id=call_id, start_s=float(f["start_s"]), end_s=float(f["end_s"]),
                             text=str(f.get("text") or "")))
    for d in summary.get("decisions") or []:
        p = d.get("p_complete")
        rows.append(Decision(call_id=call_id, at_s=float(d["at_s"]), verdict=str(d["verdict"])[:16],
                             by=str(d["by"])[:32], p_complete=None if p is None else float(p)))
    for b in summary.get("bot_turns") or []:
        start, end = b.get("start_s"), b.get("end_s")
        if start is None:
            continue  # never reached the line
        rows.append(BotTurn(call_id=call_id, kind=str(b["kind"])[:16], start_s=float(start),
                            end_s=float(end if end is not None else start),
                            intended=str(b.get("text_intended") or ""), heard=str(b.get("text_heard") or ""),
                            cut_off=bool(b.get("interrupted"))))
        if b["kind"] != "reply":
            continue
        caller_end = max((float(f["end_s"]) for f in fragments if float(f["end_s"]) <= float(start)),
                         default=None)
        if caller_end is None:
            continue  # nothing the caller said came before it
        match = min((r for r in replies if r[0] is not None and abs(r[0] - float(start)) <= _SAME_START_S),
                    key=lambda r: abs((r[0] or 0.0) - float(start)), default=None)
        stages: dict[str, float | None] = match[2] if match else {}
        rows.append(TurnLatency(call_id=call_id, caller_end_s=caller_end, first_audio_s=float(start),
                                llm_first_clause_ms=match[1].clause_ms if match else None, **stages))
    return rows
