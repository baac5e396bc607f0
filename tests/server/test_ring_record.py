"""Ring-through off the line: who may be put through when (`ring_options`), the attempt stored with its
call, and a missed one reaching the owner first and urgent in the call's message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.judge_rules import RulesJudge
from models.llm_script import ScriptLlm
from server.config import OwnerConfig, load
from server.contacts import default_plan
from server.owner import Owner
from server.ringthrough import in_quiet_hours, ring_options
from server.runtime import Engines
from server.store.db import Database, open_database
from server.store.schema import Call, Message
from tests.fakes import SpanStt, SpanVad, ToneTts
from tests.server.owner_kit import NUMBER

NOON, NIGHT = datetime(2026, 12, 4, 12, 0), datetime(2026, 12, 4, 23, 30)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'standin.db'}")
    yield database
    database.close()


def test_quiet_hours_may_cross_midnight() -> None:
    night = ("22:00-07:00",)
    assert in_quiet_hours(night, NIGHT) and in_quiet_hours(night, datetime(2026, 1, 1, 6))
    assert not in_quiet_hours(("22:00-07:00",), NOON)
    assert in_quiet_hours(("12:00-13:30",), NOON) and not in_quiet_hours(("12:30-13:30",), NOON)


PHONE = "sip:me@10.0.0.2"


@pytest.mark.parametrize(("owner", "profile", "at", "expected"), [
    (OwnerConfig(phone=PHONE), "default", NOON, (True, "", True)),
    (OwnerConfig(phone=PHONE, quiet_hours=("22:00-07:00",)), "default", NIGHT, (False, "quiet hours", True)),
    (OwnerConfig(phone=PHONE, do_not_disturb=True), "family", NOON, (False, "do not disturb", True)),
    (OwnerConfig(phone=PHONE, profiles=("family",)), "default", NOON, (False, "profile default", False)),
    (OwnerConfig(phone=PHONE, profiles=("family",)), "family", NOON, (True, "", True)),
    # anyone who says it is urgent, but only that: no keypad, no asking
    (OwnerConfig(phone=PHONE, profiles=("family",), urgent=True), "default", NOON, (True, "", False)),
])
def test_who_may_be_put_through_and_when(owner: OwnerConfig, profile: str, at: datetime,
                                         expected: tuple[bool, str, bool]) -> None:
    allowed, why_not, keypad = expected
    plan = default_plan(load(None, {"contacts": {"default_profile": profile}}), NUMBER)
    o = ring_options(owner, plan, at, caller_number=NUMBER, owner_language="en")
    assert (o.enabled, o.allowed, o.why_not, o.keypad) == (True, allowed, why_not, keypad)
    assert not ring_options(OwnerConfig(), plan, at, caller_number=NUMBER, owner_language="en").enabled


def ended(ring: dict[str, Any], *phrases: str) -> dict[str, Any]:
    return {"caller_fragments": [{"start_s": 1.0 + 2 * i, "end_s": 2.0 + 2 * i, "text": p}
                                 for i, p in enumerate(phrases)],
            "bot_turns": [], "decisions": [], "ended": "caller hung up", "duration_s": 30.0, "error": None,
            "ring_through": ring}


MISSED = {"trigger": "keypad", "method": "bridge", "started_s": 4.0, "rang_s": 4.02, "ended_s": 24.0,
          "outcome": "no answer", "owner_status": 480, "wall_ms": {"ringing_ms": 12.0}}


def test_the_attempt_is_stored_and_a_missed_one_leads_the_message_urgent(db: Database) -> None:
    config = load(None)
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))
    owner.start()
    try:
        plan = default_plan(config, NUMBER)
        missed = owner.call_ended(owner.open_call("c1", plan=plan, caller_number=NUMBER),
                                  ended(MISSED, "Please call me back about the roof."))
        silent = owner.call_ended(owner.open_call("c2", plan=plan, caller_number=NUMBER), ended(MISSED))
        taken = {**MISSED, "outcome": "accepted", "accepted_s": 9.0}
        bridged = owner.call_ended(owner.open_call("c3", plan=plan, caller_number=NUMBER),
                                   ended(taken, "Hello, it's Anna."))
        ids = [missed.result(60), silent.result(60), bridged.result(60)]
    finally:
        owner.stop()
    assert all(ids)
    with db.session() as s:
        calls = {c.uid: c for c in s.scalars(select(Call))}
        assert calls["c1"].ring_through == MISSED and calls["c3"].ring_through == taken
        first, second, third = (s.get(Message, i) for i in ids)
        assert first is not None and second is not None and third is not None
        assert first.urgency == "high" and first.text.startswith(
            f"Missed ring-through: standin tried to put {NUMBER} through to you at ")
        assert first.text.endswith("(no answer). Please call me back about the roof.")
        assert second.source == "standin" and second.urgency == "high" and "left no message" in second.text
        assert third.text == "Hello, it's Anna." and third.urgency == "normal"
