"""The stored call comes from what the core decided and the engines' times by job id, not from the order
of the trace's lines: a trace whose latency lines are moved about stores the same call, on recovery as
live."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.audio import read_audio
from server.callrecord import rows
from server.core import events as ev
from server.core.conversation import CallOptions, Conversation, ConversationOptions
from server.store.calls import CallLog, StoreWriter
from server.store.db import Database
from server.store.replay import replay_trace
from server.store.schema import Call, TurnLatency
from server.trace import Trace
from tests.store.virtual_call import run_virtual_call, scenario_config, scenario_engines

STAGES = ("stt_ms", "judge_ms", "llm_first_token_ms", "llm_first_clause_ms", "tts_first_audio_ms")


def row_values(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(type(r).__name__, {c.name: getattr(r, c.name) for c in r.__table__.columns
                                if c.name not in ("id", "call_id")}) for r in rows(0, summary)]


def moved(lines: list[str], seed: int) -> list[str]:
    """The same lines with every latency line somewhere else: shuffled among themselves and put back at
    random places after the engines line."""
    latency = [line for line in lines if json.loads(line).get("kind") == "latency"]
    rest = [line for line in lines if json.loads(line).get("kind") != "latency"]
    rng = random.Random(seed)
    rng.shuffle(latency)
    for line in latency:
        rest.insert(rng.randrange(1, len(rest) + 1), line)
    return rest


def test_moving_the_traces_latency_lines_changes_nothing_stored(
        shared: Path, tmp_path: Path, db: Database) -> None:
    writer = StoreWriter(db)
    writer.start()
    try:
        for name in ("three_things", "trailing_thought"):
            config = scenario_config(shared, name)
            folder = tmp_path / name
            call_log = CallLog(db, writer, uid=name, source="simulate", folder=str(folder))
            summary = run_virtual_call(read_audio(shared / "scenarios" / f"{name}.wav"),
                                       scenario_engines(config), config, folder, call_log=call_log)
            call_log.finish(summary)
            live = stored_latencies(db, name)
            assert live and all(stage is not None for stage in live[-1][::2]), "latencies to lose"

            trace = (folder / "trace.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
            replayed = replay_trace(folder / "trace.jsonl", config.conversation())
            assert replayed is not None
            expected = row_values(replayed.summary)
            assert any(kind == TurnLatency.__name__ and values["stt_ms"] is not None
                       for kind, values in expected)
            assert expected == row_values(summary)  # recovery stores what the live call stored
            assert [tuple(v[k] for k in STAGES) for kind, v in expected if kind == "TurnLatency"] == live
            for seed in range(3):
                path = tmp_path / f"{name}-moved-{seed}.jsonl"
                path.write_text("".join(moved(trace, seed)), encoding="utf-8")
                again = replay_trace(path, config.conversation())
                assert again is not None
                assert row_values(again.summary) == expected
    finally:
        writer.stop()


def stored_latencies(db: Database, uid: str) -> list[tuple[float | None, ...]]:
    with db.session() as s:
        call = s.scalars(select(Call).where(Call.uid == uid)).one()
        return [(t.stt_ms, t.judge_ms, t.llm_first_token_ms, t.llm_first_clause_ms, t.tts_first_audio_ms)
                for t in call.latencies]


def test_a_trace_that_does_not_read_back_is_not_replayed_and_its_text_stays_out_of_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = ConversationOptions()
    path = tmp_path / "trace.jsonl"
    for line in ('{"kind":"event","type":"TimerFired","t":1.0,"name":"card 4929 1234"}',
                 '{"kind":"event","type":"card 4929 1234","t":1.0}',
                 '{"kind":"command","t":0,"type":"card 4929 1234"}'):
        path.write_text(line + "\n", encoding="utf-8")
        with caplog.at_level(logging.WARNING):
            assert replay_trace(path, options) is None
    assert len(caplog.records) == 3 and "4929" not in caplog.text


def test_timers_keep_the_names_stored_traces_have() -> None:
    timers = [c.name for c in Conversation().handle(ev.CallStarted(0.0)) if isinstance(c, ev.StartTimer)]
    names = [json.loads(json.dumps(name)) for name in timers]
    assert names == ["max_duration", "silence"] and [ev.Timer(n) for n in names] == timers


def test_a_trace_replays_events_exactly_even_at_a_threshold(tmp_path: Path) -> None:
    # Windows a hair under the VAD threshold are silence; written rounded they would read back as voice
    # and the replay would part from the call.

    options = ConversationOptions(call=CallOptions(greeting=""))
    p = options.segmenter.start_p - 4e-5
    events: list[Any] = [ev.CallStarted(0.0)]
    events += [ev.VadWindow(round((i + 1) * 0.032, 3), i * 512, (i + 1) * 512, p if i < 80 else 0.01)
               for i in range(120)]
    path = tmp_path / "trace.jsonl"
    trace = Trace(path)
    core = Conversation(options)
    for event in events:
        trace.event(event)
        for command in core.handle(event):
            trace.command(event.t, command)
    trace.close()
    assert replay_trace(path, options) is not None
