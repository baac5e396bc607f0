"""After a crash: calls the last run left "live" are closed as "recovered", and every call that has the
caller's words but no message is found, so that its message is made now.

A call's fragments reach the database while it runs (server/store/calls.py), so a process killed
mid-call leaves what the caller said behind; its trace.jsonl (flushed at least once a second) tells
how long the call had lasted and, replayed into the conversation core (server/store/replay.py), what
the bot said, each turn decision and each reply's latencies: those are stored as for a call that ended.
The trace's first line also says which engines and model files served the call; the call keeps that.
Only calls of this node are touched: other standins sharing the database may have calls running.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from server.callrecord import rows
from server.core.conversation import ConversationOptions
from server.store.db import Database
from server.store.replay import Replayed, replay_trace, trace_engines
from server.store.schema import BotTurn, Call, Decision, Fragment, Message, TurnLatency

log = logging.getLogger(__name__)

RECOVERED_REASON = "standin stopped during the call"
_TAIL_BYTES = 8192


def recover_live_calls(db: Database, node: str = "",
                       conversation_of: Callable[[str], ConversationOptions] | None = None) -> list[int]:
    """Close this node's calls still marked live (the process running them is gone): state
    "recovered", their duration as far as their trace went. With `conversation_of` (the options a call
    from that number runs with), the trace is replayed for the call's bot turns, decisions and
    latencies. Returns their ids."""
    with db.session() as session:
        found = [(c.id, c.folder, c.caller_number)
                 for c in session.scalars(select(Call).where(Call.state == "live", Call.node == node))]
    for call_id, folder, number in found:
        replayed = None
        if conversation_of is not None and folder:
            try:
                replayed = replay_trace(Path(folder) / "trace.jsonl", conversation_of(number))
            except Exception as exc:  # the call is still recovered, with the caller's words
                log.error("replaying a recovered call's trace failed (%s)", type(exc).__name__)
        with db.session() as session:
            call = session.get(Call, call_id)
            if call is None or call.state != "live":
                continue
            _recover(session, call, replayed)
    ids = [call_id for call_id, _, _ in found]
    if ids:
        log.warning("%d call(s) were cut short when standin last stopped; what was said in them is kept",
                    len(ids))
    return ids


def _recover(session: Session, call: Call, replayed: Replayed | None) -> None:
    last_fragment = max((f.end_s for f in call.fragments), default=None)
    duration = trace_end_s(Path(call.folder)) if call.folder else None
    if duration is None or (last_fragment is not None and last_fragment > duration):
        duration = last_fragment
    call.state = "recovered"
    call.ended_reason = RECOVERED_REASON
    call.duration_s = duration
    call.ended_at = call.started_at + timedelta(seconds=duration) if duration is not None else None
    if call.engines is None and call.folder:
        call.engines = trace_engines(Path(call.folder) / "trace.jsonl")
    if replayed is None:
        return
    summary = replayed.summary
    stored = {(f.start_s, f.end_s, f.text) for f in call.fragments}
    if not stored <= set(replayed.heard):
        # The database heard words the trace lost (its last second died in the process's buffer):
        # the caller's words as stored stand, the bot's side comes from the replay.
        summary = {**summary, "caller_fragments": [{"start_s": f.start_s, "end_s": f.end_s, "text": f.text}
                                                   for f in call.fragments]}
    for model in (Fragment, BotTurn, Decision, TurnLatency):
        session.execute(delete(model).where(model.call_id == call.id))
    session.add_all(rows(call.id, summary))


def calls_without_message(db: Database, node: str = "") -> list[int]:
    """This node's finished calls in which the caller said something and that have no message yet,
    oldest first (blocked callers are never heard, so they have no words)."""
    words = exists().where(Fragment.call_id == Call.id, Fragment.text != "")
    message = exists().where(Message.call_id == Call.id)
    with db.session() as session:
        return list(session.scalars(
            select(Call.id).where(Call.state != "live", Call.node == node, words, ~message)
            .order_by(Call.started_at, Call.id)))


def trace_end_s(folder: Path) -> float | None:
    """The call time of the last complete line of `folder`/trace.jsonl, if there is one."""
    path = folder / "trace.jsonl"
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    for line in reversed(tail.splitlines()[1:] if len(tail) >= _TAIL_BYTES else tail.splitlines()):
        try:
            t = json.loads(line).get("t")
        except (ValueError, AttributeError):
            continue  # the line being written when the process died
        if isinstance(t, int | float):
            return float(t)
    return None
