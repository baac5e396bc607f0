"""The dashboard's reads and the few writes it makes, as plain dicts, each a handful of indexed queries.

Lists are pages of `limit` rows from `offset`: the calls walk ix_calls_started_at; the inbox counts its
(done, urgency) groups on ix_messages_inbox and then reads only the groups the page falls in, each in
created_at order on the same index, so neither sorts the whole table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from server.core.screening import is_screened
from server.provenance import Provenance
from server.store.schema import (
    BotTurn,
    Call,
    Decision,
    Delivery,
    Fragment,
    Message,
    TurnLatency,
    utcnow,
)

URGENCY_RANK = {"high": 0, "normal": 1, "low": 3}  # a value the dashboard does not know sits at 2
INBOX_VIEWS = ("open", "done", "all")
_CUT_MARKS = ("[cut off]", "...", "…")


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": following if following < total else None,
            "prev_offset": max(0, offset - limit) if offset > 0 else None}


# --------------------------------------------------------------------------- calls

_CALL_COLUMNS = (Call.id, Call.uid, Call.source, Call.caller_number, Call.caller_name, Call.profile,
                 Call.language, Call.started_at, Call.ended_at, Call.duration_s, Call.state,
                 Call.ended_reason)


def list_calls(session: Session, limit: int, offset: int) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(Call)) or 0
    rows = session.execute(
        select(*_CALL_COLUMNS, Message.id.label("message_id"), Message.urgency, Message.done)
        .outerjoin(Message, Message.call_id == Call.id)
        .order_by(Call.started_at.desc(), Call.id.desc()).limit(limit).offset(offset)).all()
    items = []
    for row in rows:
        item = {c.key: getattr(row, c.key) for c in _CALL_COLUMNS}
        item["screened"] = is_screened(row.ended_reason)
        item["message"] = (None if row.message_id is None else
                           {"id": row.message_id, "urgency": row.urgency, "done": row.done})
        items.append(item)
    return page(items, total, limit, offset)


def call_detail(session: Session, call_id: int) -> dict[str, Any] | None:
    call = session.get(Call, call_id)
    if call is None:
        return None
    detail: dict[str, Any] = {c.key: getattr(call, c.key) for c in _CALL_COLUMNS}
    detail["error"] = call.error
    detail["screened"] = is_screened(call.ended_reason)
    detail["folder"] = call.folder  # for the API's recording link; not shown as it is
    engines = Provenance.from_json(call.engines)  # None for a call stored before standin kept them
    detail["engines"] = None if engines is None else engines.to_json()
    detail["ring_through"] = call.ring_through if isinstance(call.ring_through, dict) else None
    detail["fragments"] = [
        {"start_s": f.start_s, "end_s": f.end_s, "text": f.text}
        for f in session.scalars(select(Fragment).where(Fragment.call_id == call_id)
                                 .order_by(Fragment.start_s, Fragment.id))]
    detail["bot_turns"] = [
        {"kind": t.kind, "start_s": t.start_s, "end_s": t.end_s, "intended": t.intended, "heard": t.heard,
         "cut_off": t.cut_off, "unheard": unheard(t.heard, t.intended) if t.cut_off else ""}
        for t in session.scalars(select(BotTurn).where(BotTurn.call_id == call_id)
                                 .order_by(BotTurn.start_s, BotTurn.id))]
    detail["decisions"] = [
        {"at_s": d.at_s, "verdict": d.verdict, "by": d.by, "p_complete": d.p_complete}
        for d in session.scalars(select(Decision).where(Decision.call_id == call_id)
                                 .order_by(Decision.at_s, Decision.id))]
    detail["turn_figures"] = turn_figures(session, call_id)
    detail["latencies"] = [latency_dict(t) for t in session.scalars(
        select(TurnLatency).where(TurnLatency.call_id == call_id)
        .order_by(TurnLatency.caller_end_s, TurnLatency.id))]
    message = session.scalar(select(Message).where(Message.call_id == call_id))
    detail["message"] = None if message is None else message_dict(message, _deliveries(session, [message.id]))
    return detail


def unheard(heard: str, intended: str) -> str:
    """What the bot meant to say but the caller never heard: the rest of `intended` after the heard words,
    or all of it when the heard words are not its beginning."""
    said = heard.strip()
    for mark in _CUT_MARKS:
        said = said.removesuffix(mark).rstrip()
    if said and intended.startswith(said):
        return intended[len(said):].strip()
    return intended.strip()


RESUMED_WITHIN_S = 1.0  # the caller spoke again this soon after the bot began: it answered into a pause
WAITED_OVER_S = 2.0  # a reply that came this long after the caller stopped kept them waiting


def _resumed() -> Any:
    """A reply the caller talked into: one of their fragments began within RESUMED_WITHIN_S of it."""
    return select(Fragment.id).where(
        Fragment.call_id == TurnLatency.call_id, Fragment.start_s > TurnLatency.first_audio_s,
        Fragment.start_s <= TurnLatency.first_audio_s + RESUMED_WITHIN_S).exists()


def turn_figures(session: Session, call_id: int | None = None, *, over_only: bool = False) -> dict[str, int]:
    """How the bot took its turns: replies, replies the caller went on talking into (it answered into a
    pause), and replies that came over WAITED_OVER_S after the caller stopped; for one call, or all."""
    waited = (TurnLatency.first_audio_s - TurnLatency.caller_end_s) > WAITED_OVER_S
    query = select(func.count(), func.count(case((_resumed(), 1))), func.count(case((waited, 1)))) \
        .select_from(TurnLatency).where(TurnLatency.first_audio_s.is_not(None))
    if call_id is not None:
        query = query.where(TurnLatency.call_id == call_id)
    if over_only:
        query = query.join(Call, Call.id == TurnLatency.call_id).where(Call.state != "live")
    replies, into_pause, late = session.execute(query).one()
    return {"replies": replies, "answered_into_pause": into_pause, "waited_over_2s": late}


def latency_dict(t: TurnLatency) -> dict[str, Any]:
    v2v = None if t.first_audio_s is None else round((t.first_audio_s - t.caller_end_s) * 1000, 1)
    return {"caller_end_s": t.caller_end_s, "stt_ms": t.stt_ms, "judge_ms": t.judge_ms,
            "llm_first_token_ms": t.llm_first_token_ms, "llm_first_clause_ms": t.llm_first_clause_ms,
            "tts_first_audio_ms": t.tts_first_audio_ms, "first_audio_s": t.first_audio_s,
            "voice_to_voice_ms": v2v}


def timeline(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The call in order: caller fragments, bot turns, turn decisions and reply latencies."""
    entries: list[tuple[float, int, dict[str, Any]]] = []
    entries += [(f["start_s"], 0, {"type": "caller", **f}) for f in detail["fragments"]]
    entries += [(t["start_s"], 1, {"type": "bot", **t}) for t in detail["bot_turns"]]
    entries += [(d["at_s"], 2, {"type": "decision", **d}) for d in detail["decisions"]]
    entries += [(lat["caller_end_s"], 3, {"type": "latency", **lat}) for lat in detail["latencies"]]
    return [entry for *_, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


def call_folder(session: Session, call_id: int) -> str | None:
    return session.scalar(select(Call.folder).where(Call.id == call_id))


# --------------------------------------------------------------------------- messages


def message_dict(m: Message, deliveries: dict[int, dict[str, int]]) -> dict[str, Any]:
    return {"id": m.id, "call_id": m.call_id, "created_at": m.created_at, "caller_name": m.caller_name,
            "callback_number": m.callback_number, "text": m.text, "urgency": m.urgency,
            "language": m.language, "source": m.source, "done": m.done, "done_at": m.done_at,
            "deliveries": deliveries.get(m.id, {})}


def _deliveries(session: Session, message_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = defaultdict(dict)
    ids = list(message_ids)
    if ids:
        for message_id, state, count in session.execute(
                select(Delivery.message_id, Delivery.state, func.count())
                .where(Delivery.message_id.in_(ids)).group_by(Delivery.message_id, Delivery.state)):
            found[message_id][state] = count
    return found


def inbox_groups(session: Session) -> list[tuple[bool, str, int]]:
    """(done, urgency, how many) in inbox order: open before done, urgent before the rest."""
    groups = session.execute(select(Message.done, Message.urgency, func.count())
                             .group_by(Message.done, Message.urgency)).all()
    return sorted(((bool(d), u, n) for d, u, n in groups), key=lambda g: (g[0], URGENCY_RANK.get(g[1], 2)))


def inbox(session: Session, limit: int, offset: int, view: str = "open") -> dict[str, Any]:
    """Messages in inbox order (open first, urgent on top, newest first); `view`: open | done | all."""
    groups = [g for g in inbox_groups(session)
              if view == "all" or g[0] == (view == "done")]
    total = sum(n for *_, n in groups)
    rows: list[Message] = []
    skip, want = offset, limit
    for done, urgency, count in groups:
        if want <= 0:
            break
        if skip >= count:
            skip -= count
            continue
        rows += session.scalars(
            select(Message).where(Message.done == done, Message.urgency == urgency)
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(want).offset(skip))
        want = limit - len(rows)
        skip = 0
    deliveries = _deliveries(session, (m.id for m in rows))
    return page([message_dict(m, deliveries) for m in rows], total, limit, offset)


def open_messages(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Message).where(Message.done.is_(False))) or 0


def set_done(session: Session, message_id: int, done: bool = True) -> dict[str, Any] | None:
    message = session.get(Message, message_id)
    if message is None:
        return None
    if message.done != done:
        message.done = done
        message.done_at = utcnow() if done else None
        session.flush()
    return message_dict(message, _deliveries(session, [message.id]))


# --------------------------------------------------------------------------- status


def counts(session: Session) -> dict[str, dict[str, int]]:
    """Calls by state, deliveries by state, messages open and done: the status page and the metrics."""
    calls = dict(session.execute(select(Call.state, func.count()).group_by(Call.state)).all())
    deliveries = dict(session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
    messages: dict[str, int] = defaultdict(int)
    for done, _urgency, n in inbox_groups(session):
        messages["done" if done else "open"] += n
    return {"calls": calls, "deliveries": deliveries, "messages": dict(messages)}


def failed_deliveries(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Delivery.message_id, Delivery.label, Delivery.attempts, Delivery.last_error, Message.call_id)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.state == "failed").order_by(Delivery.id.desc()).limit(limit)).all()
    return [{"message_id": r.message_id, "call_id": r.call_id, "label": r.label, "attempts": r.attempts,
             "last_error": r.last_error} for r in rows]
