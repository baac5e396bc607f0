"""calls.engines: the engines and model files that served a call, from its summary.json at its end, or
from its trace's first line when standin died during the call; on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.callfiles import CallFiles
from server.core import events as ev
from server.core.conversation import Conversation, ConversationOptions
from server.store.calls import CallLog, StoreWriter
from server.store.db import Database
from server.store.recovery import recover_live_calls
from server.store.replay import replay_trace, trace_engines
from server.store.schema import Call

ENGINES: list[dict[str, Any]] = [
    {"role": "vad", "kind": "silero", "model": "silero_vad.onnx",
     "files": [{"name": "/opt/silero_vad.onnx", "sha256": "1a" * 32, "size": 2327524}], "options": {}},
    {"role": "stt", "kind": "whisper", "model": "whisper/small",
     "files": [{"name": "whisper/small/model.bin", "sha256": "e7" * 32, "size": 483546902},
               {"name": "whisper/small/config.json", "sha256": None, "size": 2263}],
     "options": {"size": "small", "device": "cpu", "compute_type": "int8", "language": "it"}},
    {"role": "judge", "kind": "rules+llm", "model": "llm/qwen2.5-1.5b-instruct-q4_k_m.gguf",
     "files": [{"name": "llm/qwen2.5-1.5b-instruct-q4_k_m.gguf", "sha256": "6a" * 32, "size": 1117320736}],
     "options": {"n_ctx": 4096, "threads": "default", "gpu_layers": -1}},
    {"role": "llm", "kind": "openai", "model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "files": [],
     "options": {"server": "gpu-box.lan:8000", "max_tokens": 200, "temperature": 0.6}},
    {"role": "tts", "kind": "espeak", "model": "", "files": [], "options": {"rate": 175}},
]


@pytest.fixture
def writer(db: Database) -> Any:
    w = StoreWriter(db)
    w.start()
    yield w
    w.stop()


def stored_engines(db: Database) -> Any:
    with db.session() as s:
        return s.scalars(select(Call)).one().engines


def test_the_engines_in_a_calls_summary_are_stored_with_the_call_and_read_back_the_same(
        db: Database, writer: StoreWriter) -> None:
    call_log = CallLog(db, writer, uid="20260101-100000-call-1")
    call_log.finish({"ended": "caller hung up", "duration_s": 3.0, "engines": ENGINES})
    assert stored_engines(db) == ENGINES

    # finishing again (the message worker after the writer) changes nothing; junk entries are left out
    call_log.finish({"ended": "caller hung up", "duration_s": 3.0,
                     "engines": [*ENGINES, {"kind": "no role"}, "junk"]})
    assert stored_engines(db) == ENGINES


def test_a_summary_without_engines_leaves_none(db: Database, writer: StoreWriter) -> None:
    CallLog(db, writer, uid="20260101-100000-call-1").finish({"ended": "blocked", "duration_s": 0.0})
    assert stored_engines(db) is None


def crashed_call(db: Database, writer: StoreWriter, folder: Path,
                 engines: list[dict[str, Any]] | None) -> None:
    """A call whose row is committed and whose trace was written up to its greeting, then nothing more:
    the process died."""
    call_log = CallLog(db, writer, uid=folder.name, folder=str(folder))
    call_log.commit_row()
    files = CallFiles(folder, engines=engines)
    core = Conversation()
    files.trace.event(ev.CallStarted(0.0))
    for command in core.handle(ev.CallStarted(0.0)):
        files.trace.command(0.0, command)
    files.trace.close()
    if files.recorder is not None:
        files.recorder.close()
    writer.submit(lambda: None).result()


@pytest.mark.parametrize("replayed", [True, False], ids=["replayed", "not-replayed"])
def test_a_call_recovered_after_a_crash_keeps_the_engines_its_trace_names(
        db: Database, writer: StoreWriter, tmp_path: Path, replayed: bool) -> None:
    folder = tmp_path / "20260101-100000-call-1"
    crashed_call(db, writer, folder, ENGINES)
    assert stored_engines(db) is None  # only the summary stores them while the call runs
    assert trace_engines(folder / "trace.jsonl") == ENGINES

    options = (lambda _number: ConversationOptions()) if replayed else None
    assert len(recover_live_calls(db, conversation_of=options)) == 1
    with db.session() as s:
        call = s.scalars(select(Call)).one()
        assert call.state == "recovered" and call.engines == ENGINES
    if replayed:  # the replay passes over the engines line: the trace still replays
        assert replay_trace(folder / "trace.jsonl", ConversationOptions()) is not None


def test_a_trace_without_an_engines_line_recovers_without_engines(
        db: Database, writer: StoreWriter, tmp_path: Path) -> None:
    folder = tmp_path / "20260101-100000-call-1"
    crashed_call(db, writer, folder, None)
    assert trace_engines(folder / "trace.jsonl") is None
    recover_live_calls(db, conversation_of=lambda _number: ConversationOptions())
    assert stored_engines(db) is None
    assert trace_engines(tmp_path / "missing" / "trace.jsonl") is None
