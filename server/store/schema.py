"""The owner's database: calls and what was said in them, the messages taken, their deliveries, contacts.

Times are timezone-aware UTC datetimes, except offsets inside a call, which are seconds on the call's
timeline (`*_s`, as in summary.json). A call's rows are written while it runs, so a process killed
mid-call leaves the caller's words behind and the next start turns them into a message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and read back timezone-aware, on SQLite as on Postgres."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware ones")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no offset: what it holds is UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)  # Postgres answers in the session's time zone, the server's by default


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Profile(Base):
    """How standin treats a kind of caller."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    greeting: Mapped[str] = mapped_column(Text, default="")  # "" = the configured greeting
    manner: Mapped[str] = mapped_column(Text, default="")  # added to the reply prompt ("brief", "warm", ...)
    language: Mapped[str] = mapped_column(String(16), default="")  # "" = the owner's language
    silence_timeout_s: Mapped[float | None] = mapped_column(Float, default=None)  # None = configured
    backchannels: Mapped[bool] = mapped_column(Boolean, default=True)
    end_on_sales: Mapped[bool] = mapped_column(Boolean, default=False)  # end politely on a sales pitch
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)  # hang up at once


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="SET NULL"))
    notes: Mapped[str] = mapped_column(Text, default="")  # what the prompt may know about them
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | vcard | carddav
    uid: Mapped[str] = mapped_column(String(200), default="")  # the vCard UID, to re-import in place
    numbers: Mapped[list[ContactNumber]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", lazy="selectin")
    profile: Mapped[Profile | None] = relationship(lazy="joined")


class ContactNumber(Base):
    __tablename__ = "contact_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)  # normalised: digits, leading + kept
    contact: Mapped[Contact] = relationship(back_populates="numbers")


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(128), unique=True)  # the call folder's name
    source: Mapped[str] = mapped_column(String(16), default="sip")  # sip | browser | simulate
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    profile: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    state: Mapped[str] = mapped_column(String(16), default="live")  # live | ended | failed | recovered
    ended_reason: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    folder: Mapped[str] = mapped_column(Text, default="")  # holds call.wav, trace.jsonl, summary.json
    node: Mapped[str] = mapped_column(String(128), default="")  # the standin that took it ("" on one box)
    # the engines and model files (name, sha256) that served it: server/provenance.py's JSON form
    engines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # putting the caller through to the owner, when tried: summary.json's "ring_through" (trigger, outcome,
    # times on the call's timeline, the owner's SIP status; server/ringthrough.py)
    ring_through: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    fragments: Mapped[list[Fragment]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="Fragment.start_s")
    bot_turns: Mapped[list[BotTurn]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="BotTurn.start_s")
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="Decision.at_s")
    latencies: Mapped[list[TurnLatency]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="TurnLatency.caller_end_s")
    message: Mapped[Message | None] = relationship(back_populates="call", uselist=False)


class Fragment(Base):
    """A piece of what the caller said, as transcribed."""

    __tablename__ = "fragments"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    call: Mapped[Call] = relationship(back_populates="fragments")


class BotTurn(Base):
    """Something the bot said: what it meant to say and what the caller heard before any cut-off."""

    __tablename__ = "bot_turns"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # greeting | reply | ack | backchannel | goodbye | apology
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    intended: Mapped[str] = mapped_column(Text)
    heard: Mapped[str] = mapped_column(Text)
    cut_off: Mapped[bool] = mapped_column(Boolean, default=False)
    call: Mapped[Call] = relationship(back_populates="bot_turns")


class Decision(Base):
    """A turn-taking decision: whether the caller had finished, who decided and how sure."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at_s: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(32))
    p_complete: Mapped[float | None] = mapped_column(Float, default=None)
    call: Mapped[Call] = relationship(back_populates="decisions")


class TurnLatency(Base):
    """One bot reply's waterfall: from the caller's last word to the bot's first audio, stage by stage."""

    __tablename__ = "turn_latencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    caller_end_s: Mapped[float] = mapped_column(Float)  # the caller's speech ended
    stt_ms: Mapped[float | None] = mapped_column(Float, default=None)
    judge_ms: Mapped[float | None] = mapped_column(Float, default=None)
    llm_first_token_ms: Mapped[float | None] = mapped_column(Float, default=None)
    llm_first_clause_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tts_first_audio_ms: Mapped[float | None] = mapped_column(Float, default=None)
    first_audio_s: Mapped[float | None] = mapped_column(Float, default=None)  # the bot's voice began
    call: Mapped[Call] = relationship(back_populates="latencies")


class Message(Base):
    """What the caller wants the owner to know. Committed before any notification is sent."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_inbox", "done", "urgency", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    callback_number: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text)  # what they want
    urgency: Mapped[str] = mapped_column(String(8), default="normal")  # low | normal | high
    language: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(16), default="llm")  # llm | transcript
    transcript: Mapped[str] = mapped_column(Text, default="")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    call: Mapped[Call] = relationship(back_populates="message")
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="message", cascade="all, delete-orphan")


class Delivery(Base):
    """One message to one notification channel, retried with backoff until sent or given up."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("message_id", "channel"),
                      Index("ix_deliveries_due", "state", "due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))  # a hash of the apprise URL: the URL holds secrets
    label: Mapped[str] = mapped_column(String(200), default="")  # the URL with its secrets masked
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[Message] = relationship(back_populates="deliveries")
