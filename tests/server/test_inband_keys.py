"""Keys typed as tones in the caller's audio, through the whole call (runtime, core, simulator): a number
keyed after "my number is" and ended with # is the number, read back; 0 asks for the owner; a key sent
both in band and out of band counts once; the tones are never taken for speech."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from server.config import load
from server.core.conversation import Conversation
from server.core.ringthrough import RingOptions
from server.jobs import VirtualJobs
from server.runtime import CallRuntime, Engines
from server.simulate import simulate
from server.trace import Trace
from tests.fakes import FakeClock, FnJudge, LinesLlm, SpanStt, SpanVad, ToneTts
from tests.server.test_dtmf import g711, key_tone

RATE = 16000


def caller_audio(length_s: float, keys: list[tuple[float, str]]) -> np.ndarray:
    """Silence with each key's tone (90 ms, -10 dBFS a tone) at its time, through a G.711 line."""
    x = np.zeros(int(length_s * RATE))
    for at, key in keys:
        tone = key_tone(key, 90)
        x[int(at * RATE):int(at * RATE) + len(tone)] += tone
    return g711(x)


def run(tmp_path: Path, keys: list[tuple[float, str]], phrases: list[tuple[float, float, str]],
        length_s: float = 12.0, **tables: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, dict[str, Any]] = {
        "call": {"greeting": ""}, "simulate": {"latency_ms": {"stt": 0, "judge": 0, "llm": 0, "tts": 0}},
        "contacts": {"region": "GB"}}
    for name, values in tables.items():
        config.setdefault(name, {}).update(values)
    engines = Engines(vad=SpanVad([(a, b) for a, b, _ in phrases]), stt=SpanStt(phrases),
                      judge=FnJudge(lambda text: 0.1), llm=LinesLlm(["Thanks, I'll pass it on."]),
                      tts=ToneTts())
    return simulate(caller_audio(length_s, keys), engines, load(None, config), tmp_path / "call",
                    engine_clock=FakeClock()).summary


def test_a_number_keyed_in_band_and_ended_with_hash_is_read_back(tmp_path: Path) -> None:
    keys = [(2.5 + 0.25 * i, d) for i, d in enumerate("02079460958#")]
    summary = run(tmp_path, keys, [(0.5, 1.6, "My number is")])
    spoken = " ".join(t["text_heard"] for t in summary["bot_turns"])
    assert "zero two zero, seven nine four six, zero nine five eight" in spoken, summary["bot_turns"]
    assert summary["dictated_number"] == "+442079460958"
    assert all(f["text"] == "My number is" for f in summary["caller_fragments"])


def test_zero_keyed_in_band_asks_for_the_owner(tmp_path: Path) -> None:
    options = dataclasses.replace(load(None, {"call": {"greeting": ""}}).conversation(),
                                  ring=RingOptions(enabled=True))
    engines = Engines(vad=SpanVad([]), stt=SpanStt([]), judge=FnJudge(lambda text: 0.1), llm=LinesLlm([]),
                      tts=ToneTts())
    trace = Trace(tmp_path / "trace.jsonl")
    runtime = CallRuntime(Conversation(options), engines, VirtualJobs({}), trace=trace)
    runtime.start(0.0)
    pcm = caller_audio(3.0, [(2.0, "0")])
    for i in range(0, len(pcm), 320):
        runtime.feed(pcm[i:i + 320], (i + 320) / RATE)
    trace.close()
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    [ring] = [r for r in records if r["type"] == "RingOwner"]
    assert 2.0 < ring["t"] < 2.2 and runtime.core.ring.report()["trigger"] == "keypad"  # type: ignore[index]


def test_a_key_sent_both_ways_counts_once_and_its_tone_is_no_speech(tmp_path: Path) -> None:
    engines = Engines(vad=SpanVad([]), stt=SpanStt([]), judge=FnJudge(lambda text: 0.1), llm=LinesLlm([]),
                      tts=ToneTts())
    trace = Trace(tmp_path / "trace.jsonl")
    runtime = CallRuntime(Conversation(), engines, VirtualJobs({}), trace=trace)
    pcm = caller_audio(1.0, [(0.2, "5")])
    heard = []
    for i in range(0, len(pcm), 320):
        runtime.feed(pcm[i:i + 320], (i + 320) / RATE)
        heard.append(runtime._caller.slice(runtime._caller.end - 320, runtime._caller.end).copy())
        if i == 320 * 16:
            runtime.dtmf("5", (i + 320) / RATE)  # the same press by RFC 2833, 50-100 ms after the tone
    trace.close()
    events = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [e["digit"] for e in events if e["type"] == "Dtmf"] == ["5"]
    assert not runtime.keypad.in_band  # keys now come out of band: tones are no longer listened for
    # what the call listens to (VAD, STT) lost the tone once it was recognised; the recording keeps it
    listened = np.concatenate(heard)
    assert np.abs(listened[int(0.26 * RATE):int(0.28 * RATE)]).max() == 0
    assert np.abs(pcm[int(0.26 * RATE):int(0.28 * RATE)]).max() > 1000
