"""Turn-taking on the shared scenarios: real audio through the real Silero VAD, the `transcript` STT,
the `rules` judge and espeak-ng, under the reference latency profile and with no latency at all."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from models.stt_transcript import read_transcript
from server.audio import read_audio
from server.config import load
from server.engines import build_engines
from server.simulate import simulate

CONTINUERS = {"backchannel", "go_ahead"}
PROFILES = {"reference": {"stt": 150, "judge": 20, "llm": 150, "tts": 80},
            "instant": {"stt": 0, "judge": 0, "llm": 0, "tts": 0}}


def scenarios(shared: Path) -> list[str]:
    return [s["name"] for s in json.loads((shared / "scenarios" / "scenarios.json").read_text())]


def run(shared: Path, name: str, out: Path, latency: dict[str, int]) -> dict[str, Any]:
    config = load(None, {"call": {"greeting": ""}, "simulate": {"latency_ms": latency}})
    wav, tsv = shared / "scenarios" / f"{name}.wav", shared / "scenarios" / f"{name}.tsv"
    return simulate(read_audio(wav), build_engines(config, transcript=tsv), config, out).summary


@pytest.mark.parametrize("profile", PROFILES)
def test_never_speaks_into_a_wait_pause_and_answers_every_complete(shared: Path, tmp_path: Path,
                                                                   profile: str) -> None:
    for name in scenarios(shared):
        summary = run(shared, name, tmp_path / name, PROFILES[profile])
        phrases = read_transcript(shared / "scenarios" / f"{name}.tsv")
        starts = [b["start_s"] for b in summary["bot_turns"] if b["start_s"] is not None]
        # rule 8: a continuer ("mm-hm", "go ahead") in a long WAIT pause leaves the caller the floor
        taking = [b["start_s"] for b in summary["bot_turns"]
                  if b["start_s"] is not None and b["kind"] not in CONTINUERS]
        for before, after in itertools.pairwise(phrases):
            if before.label == "WAIT":
                inside = [s for s in taking if before.end_s <= s < after.start_s]
                assert not inside, f"{name}: the bot spoke at {inside} after {before.text!r}"
        for p in phrases:
            spoke_over = [s for s in starts if p.start_s < s < p.end_s - 0.05]
            assert not spoke_over, f"{name}: the bot started at {spoke_over} while the caller said {p.text!r}"
        for i, p in enumerate(phrases):
            if p.label != "COMPLETE":
                continue
            until = phrases[i + 1].start_s if i + 1 < len(phrases) else float("inf")
            answers = [s for s in starts if p.end_s <= s < until]
            assert answers, f"{name}: no answer after {p.text!r}"
            late = answers[0] - p.end_s
            assert late < 1.5, f"{name}: answered {p.text!r} only after {late:.2f}s"
        assert not summary["barge_ins"], f"{name}: the caller had to interrupt the bot"


def test_fragments_match_the_phrases(shared: Path, tmp_path: Path) -> None:
    summary = run(shared, "trailing_thought", tmp_path, {})
    texts = [f["text"] for f in summary["caller_fragments"]]
    assert texts == ["So, I wanted to leave a message for Marco.",
                     "The meeting tomorrow moved to three o'clock."]
    assert summary["story"].splitlines()[:2] == [f"Caller: {t}" for t in texts]
