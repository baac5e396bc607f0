"""CallLog on real calls: the shared scenarios played into the real runtime on a virtual clock (silero VAD,
the scenarios' timed transcripts, the rules judge, scripted replies, espeak), with the log watching the
trace. The caller's words reach the database while the call runs; the end replaces them with the call as
summary.json tells it, each reply with its latencies as the trace measured them."""

from __future__ import annotations

import csv
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from server.audio import read_audio
from server.core import events as ev
from server.store.calls import CallLog, StoreWriter
from server.store.db import Database
from server.store.schema import Call
from server.trace import Trace
from tests.store.virtual_call import run_virtual_call, scenario_config, scenario_engines

NUMBER = "+393331234567"


def phrases(shared: Path, name: str) -> list[str]:
    with (shared / "scenarios" / f"{name}.tsv").open(encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t")]


def played_call(shared: Path, name: str, folder: Path, db: Database,
                writer: StoreWriter) -> tuple[CallLog, dict[str, Any]]:
    config = scenario_config(shared, name)
    call_log = CallLog(db, writer, uid=folder.name, source="simulate", caller_number=NUMBER,
                       folder=str(folder), language="en")
    caller = read_audio(shared / "scenarios" / f"{name}.wav")
    summary = run_virtual_call(caller, scenario_engines(config), config, folder, call_log=call_log,
                               caller_number=NUMBER)
    return call_log, summary


def stored(db: Database) -> dict[str, Any]:
    with db.session() as s:
        call = s.scalars(select(Call)).one()
        return {
            "state": call.state, "uid": call.uid, "source": call.source, "number": call.caller_number,
            "ended_reason": call.ended_reason, "duration_s": call.duration_s, "error": call.error,
            "ended_at": call.ended_at, "started_at": call.started_at,
            "fragments": [(f.start_s, f.end_s, f.text) for f in call.fragments],
            "bot_turns": [(b.kind, b.start_s, b.end_s, b.intended, b.heard, b.cut_off)
                          for b in call.bot_turns],
            "decisions": [(d.at_s, d.verdict, d.by, d.p_complete) for d in call.decisions],
            "latencies": [(t.caller_end_s, t.stt_ms, t.judge_ms, t.llm_first_token_ms, t.llm_first_clause_ms,
                           t.tts_first_audio_ms, t.first_audio_s) for t in call.latencies],
        }


@pytest.fixture
def writer(db: Database) -> Any:
    w = StoreWriter(db)
    w.start()
    yield w
    w.stop()


def test_the_callers_words_are_stored_while_the_call_runs_and_the_end_stores_the_whole_call(
        shared: Path, tmp_path: Path, db: Database, writer: StoreWriter) -> None:
    call_log, summary = played_call(shared, "three_things", tmp_path / "20260101-100000-call-1", db, writer)
    writer.submit(lambda: None).result()  # everything handed to the writer so far is committed

    live = stored(db)
    assert live["state"] == "live" and live["source"] == "simulate" and live["number"] == NUMBER
    assert [text for _, _, text in live["fragments"]] == phrases(shared, "three_things")
    assert not live["bot_turns"] and not live["latencies"]

    call_id = call_log.finish(summary)
    final = stored(db)
    assert call_id == call_log.call_id
    assert final["state"] == "ended" and final["ended_reason"] == summary["ended"] == "caller hung up"
    assert final["duration_s"] == summary["duration_s"] and final["error"] == ""
    assert (final["ended_at"] - final["started_at"]).total_seconds() == pytest.approx(summary["duration_s"])
    assert final["fragments"] == [(f["start_s"], f["end_s"], f["text"]) for f in summary["caller_fragments"]]
    assert final["bot_turns"] == [(b["kind"], b["start_s"], b["end_s"], b["text_intended"], b["text_heard"],
                                   b["interrupted"]) for b in summary["bot_turns"]]
    assert final["bot_turns"][0][0] == "greeting" and final["bot_turns"][0][5]  # the caller cut in on it
    assert final["decisions"] == [(d["at_s"], d["verdict"], d["by"], d.get("p_complete"))
                                  for d in summary["decisions"]]

    # The one reply answers "Can you pass that along?", judged by the rules (no question shortcut).
    [reply] = [b for b in summary["bot_turns"] if b["kind"] == "reply"]
    [(caller_end, stt, judge, token, clause, tts, first_audio)] = final["latencies"]
    assert caller_end == summary["caller_fragments"][-1]["end_s"] and first_audio == reply["start_s"]
    assert (stt, judge, token, tts) == (150.0, 20.0, 150.0, 80.0)  # the injected engine latencies
    assert clause is not None and clause >= token

    call_log.finish(summary)  # once more: the same rows
    assert stored(db) == final


def test_a_reply_the_judge_let_through_carries_the_judges_latency(
        shared: Path, tmp_path: Path, db: Database, writer: StoreWriter) -> None:
    folder = tmp_path / "20260101-100000-call-2"
    call_log, summary = played_call(shared, "trailing_thought", folder, db, writer)
    call_log.finish(summary)
    final = stored(db)
    [reply] = [b for b in summary["bot_turns"] if b["kind"] == "reply"]
    assert summary["decisions"][-1]["verdict"] == "COMPLETE" and summary["decisions"][-1]["by"] == "judge"
    [(caller_end, stt, judge, token, _clause, tts, first_audio)] = final["latencies"]
    assert (stt, judge, token, tts) == (150.0, 20.0, 150.0, 80.0)
    assert first_audio == reply["start_s"] and caller_end == summary["caller_fragments"][-1]["end_s"]
    assert 0.2 < first_audio - caller_end < 1.0  # voice to voice, as the benchmarks measure it


def test_a_failed_call_is_stored_as_failed(db: Database, writer: StoreWriter) -> None:
    call_log = CallLog(db, writer, uid="20260101-100000-call-3", caller_number=NUMBER)
    call_log.finish({"caller_fragments": [{"start_s": 0.5, "end_s": 1.5, "text": "Hello?"}],
                     "bot_turns": [], "decisions": [], "ended": None, "duration_s": 2.0,
                     "error": "RuntimeError: the line broke"})
    final = stored(db)
    assert final["state"] == "failed" and final["ended_reason"] == "error"
    assert final["error"] == "RuntimeError: the line broke"
    assert final["fragments"] == [(0.5, 1.5, "Hello?")]


def feed_fragment(trace: Trace, job: int, start_s: float, end_s: float, words: str) -> None:
    """What the runtime writes for one transcribed fragment: its Transcribe command, then its result."""
    trace.command(end_s, ev.Transcribe(job, round(start_s * 16000), round(end_s * 16000), speculative=True))
    trace.latency("stt_ms", 150.0, end_s + 0.15)
    trace.event(ev.TranscriptReady(end_s + 0.15, job, words))


def test_a_database_error_is_logged_without_the_callers_words_and_the_call_goes_on(
        tmp_path: Path, db: Database, writer: StoreWriter, caplog: pytest.LogCaptureFixture) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE fragments"))
    call_log = CallLog(db, writer, uid="20260101-100000-call-4", caller_number=NUMBER)
    trace = call_log.observe(Trace(tmp_path / "trace.jsonl"))
    with caplog.at_level(logging.DEBUG):
        feed_fragment(trace, 1, 0.5, 1.5, "my secret is swordfish")
        writer.submit(lambda: None).result()
        feed_fragment(trace, 2, 2.0, 3.0, "and the pin is 4711")  # the call goes on
        writer.submit(lambda: None).result()
        with pytest.raises(Exception, match="fragments"):
            call_log.finish({"caller_fragments": [{"start_s": 0.5, "end_s": 1.5, "text": "swordfish"}],
                             "duration_s": 3.0})
    trace.close()
    assert "swordfish" in (tmp_path / "trace.jsonl").read_text()  # the trace got every line
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failure was logged"
    for record in caplog.records:
        message = record.getMessage()
        assert "swordfish" not in message and "4711" not in message and NUMBER not in message
        assert "33312" not in message


def test_when_the_writer_is_behind_changes_wait_and_none_is_lost(tmp_path: Path, db: Database) -> None:
    writer = StoreWriter(db, maxsize=1)
    writer.start()
    release = threading.Event()
    try:
        writer.submit(release.wait)  # the writer is busy ...
        call_log = CallLog(db, writer, uid="20260101-100000-call-5")  # ... its row waits in the queue
        trace = call_log.observe(Trace(tmp_path / "trace.jsonl"))
        feed_fragment(trace, 1, 0.5, 1.5, "first")  # the queue is full: kept for later, not blocking
        release.set()
        writer.submit(lambda: None).result()
        feed_fragment(trace, 2, 2.0, 3.0, "second")
        writer.submit(lambda: None).result()
        assert [text for _, _, text in stored(db)["fragments"]] == ["first", "second"]
    finally:
        release.set()
        writer.stop()


def test_a_fragment_the_caller_went_on_with_is_stored_once_with_its_longer_text(
        tmp_path: Path, db: Database, writer: StoreWriter) -> None:
    call_log = CallLog(db, writer, uid="20260101-100000-call-6")
    trace = call_log.observe(Trace(tmp_path / "trace.jsonl"))
    feed_fragment(trace, 1, 0.5, 1.5, "And the delivery date.")
    writer.submit(lambda: None).result()
    feed_fragment(trace, 2, 0.5, 3.2, "And the delivery date. Can you pass that along?")
    feed_fragment(trace, 3, 4.0, 4.5, "")  # nothing intelligible: no row
    writer.submit(lambda: None).result()
    assert stored(db)["fragments"] == [(0.5, 3.2, "And the delivery date. Can you pass that along?")]
