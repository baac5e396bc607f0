"""The owner's side of standin: one `Owner` per process, between the calls and the database.

It plans each call from the caller's number (contacts and profiles), opens the call's `CallLog`, and
when the call ends has its message written. Two background threads do the slow parts, so a call ending
never delays the next call's answer:

- the store writer (server/store/calls.py) commits each call's rows in order, the final ones too;
- the message worker takes one ended call at a time: it waits for the call's final rows, has the reply
  LLM write the message (server/messages.py), commits it and its deliveries in one transaction, then
  wakes the notification outbox. With an in-process model (llama.cpp), which live calls need for their
  replies, it writes while no call is live, and stops within a token when one starts, to try again after.

A message is made from what the database holds, so whatever stopped it (a crash, a stop mid-way, a
database error) is undone at the next start: calls left live become "recovered" (with what their trace
shows the bot said and decided), and every call with the caller's words but no message gets one then.

A call turned away before it was answered (the calls folder's disk is full: server/store/disk.py) is
listed as "refused"; the first of a run of them also leaves the owner an urgent message saying why.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from server.config import Config
from server.contacts import CallPlan, default_plan, plan_call
from server.messages import (
    CallStory,
    Interrupted,
    TakenMessage,
    story_of_call,
    take_message,
    unheard_message,
    unheard_speech_s,
)
from server.ringthrough import with_missed_ring
from server.runtime import Engines
from server.store.calls import CallLog, StoreWriter, describe_error
from server.store.db import Database
from server.store.disk import Refusal
from server.store.recovery import calls_without_message, recover_live_calls
from server.store.schema import Call, Message, utcnow

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """The notification outbox (server/notify.py) as the owner uses it."""

    def enqueue(self, session: Session, message: Message) -> Any:
        """Add the message's deliveries in `session`'s transaction."""
        ...

    def wake(self) -> None:
        """Look for due deliveries now."""
        ...


class _Stopping(Exception):
    pass


@dataclass(slots=True)
class _Job:
    done: Future[int | None]  # the message's id, or None when the call leaves none
    call_id: int | None = None
    call_log: CallLog | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    finished: Future[int] | None = None  # the store writer's finish, when it took it


class Owner:
    def __init__(self, config: Config, db: Database, engines: Engines, *, calls_dir: Path | None = None,
                 outbox: Outbox | None = None, node: str = "", message_timeout_s: float = 60.0,
                 message_max_tokens: int = 400, idle_wait_s: float = 300.0) -> None:
        self.config = config
        self.db = db
        self.engines = engines
        self.calls_dir = calls_dir if calls_dir is not None else Path(config.storage.calls_dir)
        self.outbox = outbox
        self.node = node
        self.message_timeout_s = message_timeout_s
        self.message_max_tokens = message_max_tokens
        self.idle_wait_s = idle_wait_s  # longest an in-process model waits for no call to be live
        self.writer = StoreWriter(db)
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="standin-messages", daemon=True)
        self._stopping = threading.Event()
        self._live = 0
        self._idle = threading.Condition()
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> list[Future[int | None]]:
        """Start the writer and the message worker, after closing what the last run left open. Returns
        the futures of the messages being made for earlier calls that lack one."""
        if self._started:
            return []
        self._started = True
        recover_live_calls(self.db, self.node, conversation_of=lambda number: self.plan(number).conversation)
        self.writer.start()
        self._worker.start()
        jobs = [_Job(Future(), call_id=call_id) for call_id in calls_without_message(self.db, self.node)]
        for job in jobs:
            self._jobs.put(job)
        return [job.done for job in jobs]

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages (one being written is abandoned: the next start makes it), then let the
        writer commit what it holds."""
        if not self._started:
            return
        self._stopping.set()
        with self._idle:
            self._idle.notify_all()
        self._jobs.put(None)
        self._worker.join(timeout_s)
        self.writer.stop(timeout_s)

    @property
    def live_calls(self) -> int:
        return self._live

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every call ended so far has its message made (or given up on)."""
        if not self._started or self._stopping.is_set():
            return
        barrier = _Job(Future())
        self._jobs.put(barrier)
        barrier.done.result(timeout_s)

    # ------------------------------------------------------------------ calls

    def plan(self, caller_number: str) -> CallPlan:
        """How to take a call from `caller_number`. Blocking (reads the database): run it in a thread.
        When the database fails the call is still answered, as an unknown caller's."""
        try:
            return plan_call(self.config, self.db, caller_number)
        except SQLAlchemyError as exc:
            log.error("cannot look the caller up (%s); answering as for an unknown caller",
                      describe_error(exc))
            return default_plan(self.config, caller_number)

    def open_call(self, uid: str, *, plan: CallPlan, caller_number: str, source: str = "sip",
                  folder: str = "") -> CallLog:
        """The `CallLog` of a call starting now; its row is written in the background."""
        with self._idle:
            self._live += 1
        return CallLog(self.db, self.writer, uid=uid, source=source, caller_number=caller_number,
                       caller_name=plan.contact_name, contact_id=plan.contact_id, profile=plan.profile,
                       language=plan.language, folder=folder, node=self.node,
                       rate=plan.conversation.call.rate)

    def call_refused(self, refusal: Refusal) -> None:
        """A call was turned away before it was answered (server/store/disk.py): list it, and with the
        first of a run of them tell the owner why. Never blocks: called on the SIP thread."""
        try:
            self.writer.submit(partial(self._store_refusal, refusal, utcnow()), wait=False)
        except queue.Full:
            log.error("a call turned away (%s) could not be recorded: the database writer is behind",
                      refusal.reason)

    def _store_refusal(self, refusal: Refusal, at: datetime) -> int:
        with self.db.session() as session:
            call = Call(uid=f"{at:%Y%m%d-%H%M%S}-refused-{uuid.uuid4().hex[:8]}", source="sip",
                        node=self.node, state="refused", ended_reason=f"turned away: {refusal.reason}"[:200],
                        started_at=at, ended_at=at, duration_s=0.0, language=self.config.language)
            session.add(call)
            session.flush()
            if refusal.first:
                text = (f"standin turned a call away without answering it (SIP 503), and turns every call "
                        f"away until this is mended. {refusal.advice} The calls turned away meanwhile are "
                        "listed on the dashboard.")
                message = Message(call_id=call.id, text=text, urgency="high", language="en", source="standin")
                session.add(message)
                session.flush()
                if self.outbox is not None:
                    self.outbox.enqueue(session, message)
            call_id = call.id
        if refusal.first and self.outbox is not None:
            self.outbox.wake()
        return call_id

    def call_ended(self, call_log: CallLog, summary: dict[str, Any]) -> Future[int | None]:
        """Store the call's end and have its message made, both in the background; never blocks. The
        future holds the message's id (None when the call leaves no message)."""
        with self._idle:
            self._live = max(0, self._live - 1)
            self._idle.notify_all()
        job = _Job(Future(), call_log=call_log, summary=summary)
        with contextlib.suppress(queue.Full):  # when the writer is behind, the message worker finishes it
            job.finished = self.writer.submit(partial(call_log.finish, summary), wait=False)
        self._jobs.put(job)
        return job.done

    # ------------------------------------------------------------------ messages

    def make_message(self, call_id: int, interrupt_on_call: bool = False) -> int | None:
        """Make, store and pass on the message of the ended call `call_id`, unless it has one (or the
        caller said nothing). Returns the message's id."""
        with self.db.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                return None
            if call.message is not None:
                return call.message.id
            story = story_of_call(call, self.config.llm.owner_name, self.config.language)
            ring, who, started = call.ring_through, call.caller_name or call.caller_number, call.started_at
            unheard = unheard_speech_s(call)
        taken = self._write(story, interrupt_on_call) or unheard_message(story, unheard)
        # a ring-through that missed the owner is said first, urgent, even when the caller said nothing
        taken = with_missed_ring(taken, ring, caller=who, started_at=started)
        if taken is None:
            return None
        return self._store(call_id, taken)

    def _write(self, story: CallStory, interrupt_on_call: bool) -> TakenMessage | None:
        engine = self.engines.llm
        while True:
            calm = interrupt_on_call and self._wait_idle()

            def interrupt(calm: bool = calm) -> bool:
                return self._stopping.is_set() or (calm and self._live > 0)

            try:
                return take_message(story, engine, template_dir=self.config.llm.prompts or None,
                                    timeout_s=self.message_timeout_s, max_tokens=self.message_max_tokens,
                                    interrupt=interrupt)
            except Interrupted:
                if self._stopping.is_set():
                    raise _Stopping from None
                # a call started: write it once that call is over

    def _wait_idle(self) -> bool:
        """Wait until no call is live (at most `idle_wait_s`); whether none is."""
        with self._idle:
            self._idle.wait_for(lambda: self._live == 0 or self._stopping.is_set(), self.idle_wait_s)
            if self._stopping.is_set():
                raise _Stopping
            return self._live == 0

    def _store(self, call_id: int, taken: TakenMessage) -> int | None:
        try:
            with self.db.session() as session:
                existing = session.scalar(select(Message.id).where(Message.call_id == call_id))
                if existing is not None:
                    return existing
                message = taken.row(call_id)
                session.add(message)
                session.flush()
                if self.outbox is not None:
                    self.outbox.enqueue(session, message)
                message_id = message.id
        except IntegrityError:  # another standin stored it between our look and our insert: theirs it is
            with self.db.session() as session:
                return session.scalar(select(Message.id).where(Message.call_id == call_id))
        log.info("call %d: message stored (%s, urgency %s)", call_id, taken.source, taken.urgency)
        if self.outbox is not None:
            self.outbox.wake()
        return message_id

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._stopping.is_set():  # the call's end is stored; its message waits for the next start
                with contextlib.suppress(Exception):
                    self._finish(job)
                job.done.cancel()
                continue
            try:
                call_id = self._finish(job)
                message_id = None
                if call_id is not None:
                    message_id = self._with_retries(call_id)
            except _Stopping:
                job.done.cancel()
            except Exception as exc:
                log.error("a call's message could not be made now (%s); the next start makes it",
                          describe_error(exc))
                job.done.set_exception(exc)
            else:
                job.done.set_result(message_id)

    def _finish(self, job: _Job) -> int | None:
        if job.call_log is None:
            return job.call_id
        if job.finished is not None:
            try:
                return job.finished.result()
            except Exception:
                pass  # logged by the writer; once more here
        return job.call_log.finish(job.summary)

    def _with_retries(self, call_id: int, attempts: int = 3) -> int | None:
        in_process = bool(getattr(self.engines.llm, "in_process", False))
        for attempt in range(1, attempts + 1):
            try:
                return self.make_message(call_id, interrupt_on_call=in_process)
            except SQLAlchemyError as exc:
                if attempt == attempts:
                    raise
                log.warning("storing a message failed (%s); trying again", describe_error(exc))
                if self._stopping.wait(2.0 * attempt):
                    raise _Stopping from None
        return None
