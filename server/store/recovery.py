"""After a crash: calls the last run left "live" are closed as "recovered", and every call that has the
caller's words but no message is found, so that its message is made now.

A call's fragments reach the database while it runs (server/store/calls.py), so a process killed
mid-call leaves what the caller said behind; its trace.jsonl (flushed at least once a second) tells
how long the call had lasted. Only calls of this node are touched: other standins sharing the database
may have calls running.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import exists, select

from server.store.db import Database
from server.store.schema import Call, Fragment, Message

log = logging.getLogger(__name__)

RECOVERED_REASON = "standin stopped during the call"
_TAIL_BYTES = 8192


def recover_live_calls(db: Database, node: str = "") -> list[int]:
    """Close this node's calls still marked live (the process running them is gone): state
    "recovered", their duration as far as their trace went. Returns their ids."""
    with db.session() as session:
        calls = session.scalars(select(Call).where(Call.state == "live", Call.node == node)).all()
        for call in calls:
            last_fragment = max((f.end_s for f in call.fragments), default=None)
            duration = trace_end_s(Path(call.folder)) if call.folder else None
            if duration is None or (last_fragment is not None and last_fragment > duration):
                duration = last_fragment
            call.state = "recovered"
            call.ended_reason = RECOVERED_REASON
            call.duration_s = duration
            call.ended_at = call.started_at + timedelta(seconds=duration) if duration is not None else None
        ids = [call.id for call in calls]
    if ids:
        log.warning("%d call(s) were cut short when standin last stopped; what was said in them is kept",
                    len(ids))
    return ids


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
