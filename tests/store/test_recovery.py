"""Crash recovery: a real process killed with SIGKILL in the middle of a call leaves the caller's words in
the database, and the next start closes the call as "recovered" and makes its message from them."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from models.judge_rules import RulesJudge
from models.llm_script import ScriptLlm
from server.config import load
from server.owner import Owner
from server.runtime import Engines
from server.store.calls import CallLog, StoreWriter
from server.store.db import Database, open_database
from server.store.recovery import (
    RECOVERED_REASON,
    calls_without_message,
    recover_live_calls,
    trace_end_s,
)
from server.store.schema import Call, Message
from tests.fakes import SpanStt, SpanVad, ToneTts

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+393331234567"
PHRASES = ["Hi, this is Anna Rossi.", "Please call me back on 333 123 4567.", "It's about the invoice."]


def script_engines() -> Engines:
    return Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm(["Go on."]), ToneTts())


def killed_mid_call(url: str, folder: Path) -> None:
    """Run a call in a child process until its words are committed, then SIGKILL it."""
    command = [sys.executable, "-m", "tests.store.crash_call", url, str(folder), NUMBER, *PHRASES]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(child.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=120)  # readiness, not a measurement
        line = child.stdout.readline() if ready else ""
        assert line.strip() == "ready", child.stderr.read() if child.poll() is not None else "no answer"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_a_call_killed_with_sigkill_is_recovered_and_its_message_made_at_the_next_start(
        tmp_path: Path, database_url: str) -> None:
    url = database_url  # SQLite in tmp_path, or a Postgres database (tests/store/postgres.py)
    folder = tmp_path / "calls" / "20260101-100000-call-1"
    killed_mid_call(url, folder)

    db = open_database(url)
    try:
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            assert call.state == "live" and [f.text for f in call.fragments] == PHRASES

        owner = Owner(load(None), db, script_engines(), calls_dir=tmp_path / "calls")
        [made] = owner.start()
        try:
            message_id = made.result(timeout=60)
        finally:
            owner.stop()
        assert message_id is not None
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            assert call.state == "recovered" and call.ended_reason == RECOVERED_REASON
            assert call.duration_s == trace_end_s(folder) and call.duration_s is not None
            assert call.duration_s >= call.fragments[-1].end_s
            message = s.get(Message, message_id)
            assert message is not None and message.call_id == call.id
            # The script engine writes no JSON: the message is the caller's own words.
            assert message.source == "transcript" and message.text == " ".join(PHRASES)
            assert message.callback_number == NUMBER and message.urgency == "normal"
            assert message.transcript.splitlines() == [f"Caller: {p}" for p in PHRASES]

        again = Owner(load(None), db, script_engines(), calls_dir=tmp_path / "calls")
        assert again.start() == []  # nothing left to recover or to make
        again.stop()
        with db.session() as s:
            assert len(s.scalars(select(Message)).all()) == 1
    finally:
        db.close()


def test_recovery_leaves_the_live_calls_of_other_nodes_alone(db: Database) -> None:
    writer = StoreWriter(db)
    writer.start()
    try:
        ours = CallLog(db, writer, uid="ours", node="")
        theirs = CallLog(db, writer, uid="theirs", node="box-2")
        writer.submit(lambda: None).result()
    finally:
        writer.stop()
    assert recover_live_calls(db, "") == [ours.call_id]
    with db.session() as s:
        states = {c.uid: c.state for c in s.scalars(select(Call))}
    assert states == {"ours": "recovered", "theirs": "live"}
    assert theirs.call_id is not None


def test_the_calls_that_need_a_message_have_words_and_none_yet(db: Database) -> None:
    writer = StoreWriter(db)
    writer.start()
    words = [{"start_s": 0.5, "end_s": 1.0, "text": "Call me back."}]
    silent = [{"start_s": 0.5, "end_s": 1.0, "text": ""}]
    ids = {}
    try:
        for uid, fragments, ended in (("words", words, "caller hung up"), ("silent", silent, "silence"),
                                      ("blocked", [], "blocked"), ("answered", words, "caller hung up")):
            log = CallLog(db, writer, uid=uid)
            ids[uid] = log.finish({"caller_fragments": fragments, "ended": ended, "duration_s": 3.0})
        CallLog(db, writer, uid="live")
        writer.submit(lambda: None).result()
    finally:
        writer.stop()
    with db.session() as s:
        s.add(Message(call_id=ids["answered"], text="Call me back."))
    assert calls_without_message(db) == [ids["words"]]


def test_the_trace_tells_how_far_a_call_went_even_with_its_last_line_cut(tmp_path: Path) -> None:
    assert trace_end_s(tmp_path) is None
    (tmp_path / "trace.jsonl").write_text('{"kind":"event","type":"CallStarted","t":0.0}\n'
                                          '{"kind":"command","t":4.25,"type":"StartTimer","name":"x","at":5}\n'
                                          '{"kind":"event","type":"VadWin', encoding="utf-8")
    assert trace_end_s(tmp_path) == 4.25
