"""Crash recovery: a real process killed with SIGKILL in the middle of a call leaves the caller's words in
the database, and the next start closes the call as "recovered" and makes its message from them."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
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
from tests.store.virtual_call import scenario_config, scenario_engines

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+393331234567"
PHRASES = ["Hi, this is Anna Rossi.", "Please call me back on 333 123 4567.", "It's about the invoice."]


def script_engines() -> Engines:
    return Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm(["Go on."]), ToneTts())


def killed_mid_call(url: str, folder: Path) -> None:
    """Run a call in a child process until its words are committed, then SIGKILL it."""
    killed("tests.store.crash_call", url, str(folder), NUMBER, *PHRASES)


def killed(module: str, *args: str) -> None:
    """Run `python -m module args...` until it prints "ready", then SIGKILL it."""
    command = [sys.executable, "-m", module, *args]
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


def test_a_call_killed_after_a_reply_is_recovered_with_its_bot_turns_decisions_and_latencies(
        shared: Path, tmp_path: Path, database_url: str) -> None:
    name = "trailing_thought"
    config = scenario_config(shared, name)
    folder = tmp_path / "calls" / "20260101-100000-call-1"
    at_cut = tmp_path / "report-at-the-cut.json"
    # the caller's two phrases end at 3.4 and 8.6 s; the bot's reply plays from about 9 s to 12.4 s
    killed("tests.store.crash_scenario", database_url, str(folder), str(shared), name, "12.8", NUMBER,
           str(at_cut))
    truth = json.loads(at_cut.read_text())  # what the killed call's core held when it was killed
    [reply] = [b for b in truth["bot_turns"] if b["kind"] == "reply"]
    assert reply["end_s"] is not None and truth["ended"] is None  # its reply was over, the call was not
    db = open_database(database_url)
    try:
        with db.session() as s:
            live = s.scalars(select(Call)).one()
            assert live.state == "live" and live.fragments and not live.bot_turns and not live.decisions

        owner = Owner(config, db, scenario_engines(config), calls_dir=tmp_path / "calls")
        [made] = owner.start()
        try:
            message_id = made.result(timeout=60)
        finally:
            owner.stop()
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            assert call.state == "recovered"
            said = truth["bot_turns"]
            assert [(b.kind, b.intended, b.heard, b.cut_off) for b in call.bot_turns] == [
                (b["kind"], b["text_intended"], b["text_heard"], b["interrupted"]) for b in said]
            assert [t for b in call.bot_turns for t in (b.start_s, b.end_s)] == pytest.approx(
                [t for b in said for t in (b["start_s"], b["end_s"])], abs=1e-3)
            decided: list[tuple[object, ...]] = [
                (pytest.approx(d["at_s"], abs=1e-3), d["verdict"], d["by"], d.get("p_complete"))
                for d in truth["decisions"]]
            assert [(d.at_s, d.verdict, d.by, d.p_complete) for d in call.decisions] == decided
            assert [d.verdict for d in call.decisions][-1:] == ["COMPLETE"]
            assert [(f.start_s, f.end_s, f.text) for f in call.fragments] == [
                (f["start_s"], f["end_s"], f["text"]) for f in truth["caller_fragments"]]
            [latency] = call.latencies
            stages = (latency.stt_ms, latency.judge_ms, latency.llm_first_token_ms,
                      latency.tts_first_audio_ms)
            assert stages == (150.0, 20.0, 150.0, 80.0)  # the injected latencies, as the trace had them
            assert latency.first_audio_s == pytest.approx(reply["start_s"], abs=1e-3)
            assert latency.caller_end_s == truth["caller_fragments"][-1]["end_s"]
            message = s.get(Message, message_id)
            assert message is not None
            assert f"Assistant: {reply['text_heard']}" in message.transcript.splitlines()
    finally:
        db.close()


def test_a_call_killed_right_after_its_answer_is_listed_and_recovered(
        tmp_path: Path, database_url: str) -> None:
    calls_dir = tmp_path / "calls"
    killed("tests.store.crash_answer", database_url, str(calls_dir), NUMBER)
    [folder] = list(calls_dir.iterdir())
    db = open_database(database_url)
    try:
        owner = Owner(load(None), db, script_engines(), calls_dir=calls_dir)
        assert owner.start() == []  # the caller had not said a word: no message to make
        owner.stop()
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            assert (call.state, call.uid, call.folder, call.caller_number) == (
                "recovered", folder.name, str(folder), NUMBER)
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
