"""The owner's side end to end: a call answered through `server.serve.answer` with an `Owner` is planned
from the caller's number, stored while it runs, and leaves a message that the notification outbox sends
to a channel (apprise's json:// to an HTTP server on loopback). The call's audio is a shared scenario,
fed in real time (five times faster) through a transport shaped like the SIP one; the VAD, the runtime,
the rules judge, the scripted replies, espeak, the database and the outbox are the real ones.

An engine that writes fixed JSON stands in for an in-process model where the test needs to see when it
is asked: while a call is live it is not asked, and one it was asked before a call started is let go."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text

from models.engines import EngineError
from models.judge_rules import RulesJudge
from models.llm_script import ScriptLlm
from server.audio import read_audio
from server.config import Config, load
from server.contacts import create_contact, create_profile, default_plan
from server.engines import build_engines
from server.notify import Outbox, channel
from server.owner import Owner
from server.runtime import Engines
from server.serve import answer
from server.store.db import Database, open_database
from server.store.schema import Call, Delivery, Message
from tests.fakes import SpanStt, SpanVad, ToneTts
from tests.server.owner_kit import NUMBER, Inbox, WavTransport, scenario_config


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'standin.db'}")
    yield database
    database.close()


def test_a_call_is_planned_stored_and_its_message_sent(shared: Path, tmp_path: Path, db: Database) -> None:
    config = scenario_config(shared, "quick_question", tmp_path)
    with db.session() as s:
        create_profile(s, {"name": "garage", "greeting": "Hello, Marco's phone."})
        create_contact(s, {"name": "Anna Rossi", "numbers": ["333 123 4567"], "profile": "garage"})
    inbox = Inbox()
    outbox = Outbox(db, config.notify, channels=[channel(inbox.url)], timeout_s=10)
    owner = Owner(config, db, build_engines(config), outbox=outbox)
    transport = WavTransport(read_audio(shared / "scenarios" / "quick_question.wav"))

    async def scenario() -> dict[str, Any]:
        await outbox.start()
        owner.start()
        try:
            summary = await answer(transport, owner.engines, config, owner.calls_dir, owner=owner)
            await asyncio.to_thread(owner.flush, 60)
            assert await asyncio.to_thread(inbox.arrived.wait, 60), "no notification arrived"
            return summary
        finally:
            await asyncio.to_thread(owner.stop)
            await outbox.stop()

    try:
        summary = asyncio.run(scenario())
    finally:
        inbox.close()
    [folder] = list((tmp_path / "calls").iterdir())
    assert {p.name for p in folder.iterdir()} == {"call.wav", "trace.jsonl", "summary.json"}
    assert json.loads((folder / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["caller_number"] == NUMBER
    assert summary["bot_turns"][0]["text_intended"] == "Hello, Marco's phone."  # the contact's profile

    with db.session() as s:
        call = s.scalars(select(Call)).one()
        assert (call.uid, call.folder, call.source, call.state) == (folder.name, str(folder), "sip", "ended")
        assert (call.caller_name, call.profile, call.caller_number) == ("Anna Rossi", "garage", NUMBER)
        assert call.contact_id is not None and call.ended_reason == summary["ended"]
        assert [f.text for f in call.fragments] == ["Hi, is Marco there?"]
        assert [b.kind for b in call.bot_turns] == [b["kind"] for b in summary["bot_turns"]]
        replies = [b for b in summary["bot_turns"] if b["kind"] == "reply"]
        assert len(call.latencies) == len(replies) >= 1
        assert call.latencies[0].first_audio_s == replies[0]["start_s"]
        message = s.scalars(select(Message)).one()
        # Scripted replies write no JSON: the message is the caller's words, the callback their number.
        assert (message.source, message.text, message.callback_number) == (
            "transcript", "Hi, is Marco there?", NUMBER)
        assert message.caller_name == "Anna Rossi"
        [delivery] = s.scalars(select(Delivery)).all()
        assert delivery.state == "sent" and delivery.message_id == message.id
    [post] = inbox.posts
    assert "Anna Rossi" in post["title"] and "Hi, is Marco there?" in post["message"]


def test_a_blocked_caller_is_hung_up_on_at_once_and_leaves_no_message(
        shared: Path, tmp_path: Path, db: Database) -> None:
    config = scenario_config(shared, "quick_question", tmp_path)
    with db.session() as s:
        create_profile(s, {"name": "nuisance", "blocked": True})
        create_contact(s, {"name": "Cold Caller", "numbers": [NUMBER], "profile": "nuisance"})
    owner = Owner(config, db, build_engines(config))
    transport = WavTransport(read_audio(shared / "scenarios" / "quick_question.wav"))

    async def scenario() -> dict[str, Any]:
        owner.start()
        try:
            summary = await answer(transport, owner.engines, config, owner.calls_dir, owner=owner)
            await asyncio.to_thread(owner.flush, 60)
            return summary
        finally:
            await asyncio.to_thread(owner.stop)

    summary = asyncio.run(scenario())
    assert transport.hung_up == "blocked" and not transport.bot  # not a frame of audio either way
    assert summary["ended"] == "blocked" and summary["caller_number"] == NUMBER
    assert not (tmp_path / "calls").exists() or not list((tmp_path / "calls").iterdir())
    with db.session() as s:
        call = s.scalars(select(Call)).one()
        assert (call.state, call.ended_reason, call.profile, call.caller_name) == (
            "ended", "blocked", "nuisance", "Cold Caller")
        assert call.duration_s == 0.0 and not call.fragments
        assert s.scalars(select(Message)).all() == []


class PatientModel:
    """An in-process model that writes fixed JSON; the first time it is asked it waits until it is
    interrupted. It notes how many calls were live each time it was asked."""

    in_process = True

    def __init__(self, owner_live: Callable[[], int]) -> None:
        self.owner_live = owner_live
        self.live_when_asked: list[int] = []
        self.asked = threading.Event()
        self.interrupted = threading.Event()

    def extract(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *, max_tokens: int = 400,
                timeout_s: float = 60.0, interrupt: Callable[[], bool] | None = None) -> dict[str, Any]:
        self.live_when_asked.append(self.owner_live())
        self.asked.set()
        if len(self.live_when_asked) == 1:
            assert interrupt is not None
            for _ in range(6000):  # until interrupted (a bound, not a measurement)
                if interrupt():
                    self.interrupted.set()
                    raise EngineError("writing the message was interrupted")
                threading.Event().wait(0.01)
            raise AssertionError("never interrupted")
        return {"caller_name": "Anna", "callback_number": "333 765 4321", "text": "Anna needs the quote.",
                "urgency": "high", "language": "en"}

    def reply(self, *args: Any) -> Any:
        raise AssertionError("no replies in this test")


def words_summary(*phrases: str) -> dict[str, Any]:
    return {"caller_fragments": [{"start_s": 1.0 + 2 * i, "end_s": 2.0 + 2 * i, "text": p}
                                 for i, p in enumerate(phrases)],
            "bot_turns": [], "decisions": [], "ended": "caller hung up", "duration_s": 9.0, "error": None}


def patient_owner(config: Config, db: Database) -> tuple[Owner, PatientModel]:
    """An Owner whose reply model is a PatientModel watching that Owner's live calls."""
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))
    model = PatientModel(lambda: owner.live_calls)
    owner.engines = dataclasses.replace(owner.engines, llm=model)
    return owner, model


def test_an_in_process_model_writes_messages_only_while_no_call_is_live(db: Database) -> None:
    config = load(None)
    owner, model = patient_owner(config, db)
    owner.start()
    try:
        plan = default_plan(config, NUMBER)
        first = owner.open_call("c1", plan=plan, caller_number=NUMBER)
        words = words_summary("Hi, it's Anna.", "Call me on 333 765 4321, it's urgent.")
        made = owner.call_ended(first, words)
        assert model.asked.wait(30)  # no call is live: it writes at once ...
        second = owner.open_call("c2", plan=plan, caller_number=NUMBER)  # ... until a call starts
        assert model.interrupted.wait(30)
        quiet = owner.call_ended(second, words_summary())  # the second caller said nothing
        message_id = made.result(60)
        assert quiet.result(60) is None
    finally:
        owner.stop()
    assert model.live_when_asked == [0, 0]  # asked again only once the second call was over
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None and message.source == "llm" and message.urgency == "high"
        assert (message.caller_name, message.callback_number) == ("Anna", "3337654321")
        assert len(s.scalars(select(Message)).all()) == 1


def test_a_stop_while_a_message_is_written_leaves_it_to_the_next_start(db: Database) -> None:
    config = load(None)
    owner, model = patient_owner(config, db)
    owner.start()
    made = owner.call_ended(owner.open_call("c1", plan=default_plan(config, NUMBER), caller_number=NUMBER),
                            words_summary("Please call back."))
    assert model.asked.wait(30)
    owner.stop()
    assert made.cancelled()
    with db.session() as s:
        assert s.scalars(select(Call)).one().state == "ended"
        assert s.scalars(select(Message)).all() == []

    # scripted replies: the transcript is the message
    again = Owner(config, db, dataclasses.replace(owner.engines, llm=ScriptLlm([])))
    [remade] = again.start()
    try:
        assert remade.result(60) is not None
    finally:
        again.stop()
    with db.session() as s:
        assert s.scalars(select(Message)).one().text == "Please call back."


def test_a_call_ends_and_gets_its_message_even_when_the_writer_is_behind(db: Database) -> None:
    config = load(None)
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))
    owner.start()
    release = threading.Event()
    try:
        log = owner.open_call("c1", plan=default_plan(config, NUMBER), caller_number=NUMBER)
        owner.writer.submit(release.wait)
        while True:  # fill the writer's queue
            try:
                owner.writer.submit(lambda: None, wait=False)
            except queue.Full:
                break
        message_id = owner.call_ended(log, words_summary("It's about the invoice.")).result(60)
        assert message_id is not None
    finally:
        release.set()
        owner.stop()
    with db.session() as s:
        assert s.scalars(select(Call)).one().state == "ended"


def test_a_database_that_fails_the_lookup_still_gets_the_call_answered(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    config = load(None, {"call": {"greeting": "Hi there."}})
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE contact_numbers"))
    plan = owner.plan(NUMBER)
    assert (plan.contact_name, plan.blocked, plan.conversation.call.greeting) == ("", False, "Hi there.")
    assert all(NUMBER not in r.getMessage() and "3331234567" not in r.getMessage() for r in caplog.records)
    assert any("unknown caller" in r.getMessage() for r in caplog.records)


class BrokenLine(WavTransport):
    """A line that fails mid-call with an error quoting the caller."""

    async def frames(self) -> AsyncIterator[np.ndarray]:
        async for k, frame in _numbered(super().frames()):
            if k == 50:
                raise RuntimeError("lost the line while hearing 'my card is 4929 1234'")
            yield frame


async def _numbered(frames: AsyncIterator[np.ndarray]) -> AsyncIterator[tuple[int, np.ndarray]]:
    k = 0
    async for frame in frames:
        yield k, frame
        k += 1


def test_a_call_that_fails_logs_where_and_keeps_its_error_text_out_of_the_log(
        tmp_path: Path, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    config = load(None, {"call": {"greeting": "Hi there."}})
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))
    line = BrokenLine(np.zeros(16000 * 3, np.int16))
    with caplog.at_level(logging.DEBUG), pytest.raises(RuntimeError):
        asyncio.run(answer(line, owner.engines, config, tmp_path / "calls", owner=owner))
    assert "4929" not in caplog.text and not any(r.exc_info for r in caplog.records)
    [failed] = [r.getMessage() for r in caplog.records if "call-1 failed" in r.getMessage()]
    assert "RuntimeError raised in test_owner.py:" in failed
    [folder] = list((tmp_path / "calls").iterdir())
    assert "4929" in json.loads((folder / "summary.json").read_text())["error"]  # the call's own file has it


def test_a_caller_who_spoke_but_was_never_made_out_still_leaves_a_message(db: Database) -> None:
    # A caller on a bad line, asked to repeat and then told they could not be made out, hung up with no
    # words heard: the owner still learns who rang. A cough leaves nothing; a call the screen ended
    # leaves its message like any other screened call's, kept on the dashboard and not sent.
    config = load(None)
    owner = Owner(config, db, Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm([]), ToneTts()))

    def summary(ended: str, *spans: tuple[float, float]) -> dict[str, Any]:
        return {"caller_fragments": [{"start_s": a, "end_s": b, "text": ""} for a, b in spans],
                "bot_turns": [], "decisions": [], "ended": ended, "duration_s": 20.0, "error": None}

    owner.start()
    try:
        plan = default_plan(config, NUMBER)
        results = [owner.call_ended(owner.open_call(uid, plan=plan, caller_number=NUMBER), summary(*ended))
                   for uid, ended in (("bad line", ("caller hung up", (1.5, 4.2), (7.8, 10.3))),
                                      ("robocall", ("screened: recording", (0.5, 9.0))),
                                      ("cough", ("caller hung up", (2.0, 2.4), (5.0, 5.5))))]
        ids = [r.result(60) for r in results]
    finally:
        owner.stop()
    assert ids[0] is not None and ids[1] is not None and ids[2] is None
    with db.session() as s:
        message, screened = s.get(Message, ids[0]), s.get(Message, ids[1])
        assert message is not None and message.source == "standin" and message.callback_number == NUMBER
        assert message.text.startswith("The caller spoke for about 5 seconds, but none of it could be made")
        assert screened is not None and "about 8 seconds" in screened.text
