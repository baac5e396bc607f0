"""The turn-taking scenario set (benchmarks/turn_scenarios.py): the written specs are well formed, a
rendered scenario's TSV says where its speech is, and the scorer counts what it should. Whether standin
passes the scenarios is a measurement (the README's figures), not asserted here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from benchmarks import turn_scenarios as ts
from benchmarks.scenario_audio import CHANNELS, GREETING_GAP_S, VOICES, Scenario, load_specs, render
from models.stt_transcript import Phrase, read_transcript
from models.vad_silero import SileroVad
from server.audio import to_float

SMALL = {"language": "en", "scenarios": [
    {"name": "small_list", "class": "list", "phrases": [
        [0.4, "WAIT", "I need two things."],
        [1.2, "WAIT", "The quote,"],
        [0.9, "COMPLETE", "and the invoice for March."]]}]}


def silero_segments(audio: np.ndarray, bridge_s: float = 0.3) -> list[list[float]]:
    """Speech by Silero VAD (speech from p >= 0.5 until p < 0.35, 32 ms windows), gaps under `bridge_s`
    bridged (the pauses inside a phrase)."""
    stream = SileroVad().stream(16000)
    x = to_float(audio)
    raw: list[list[float]] = []
    start: float | None = None
    for i in range(0, len(x) - 511, 512):
        p = stream.probability(x[i:i + 512])
        if start is None and p >= 0.5:
            start = i / 16000
        elif start is not None and p < 0.35:
            raw.append([start, i / 16000])
            start = None
    merged: list[list[float]] = []
    for a, b in raw:
        if merged and a - merged[-1][1] < bridge_s:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return merged


def test_the_written_specs_cover_both_languages_and_the_classes() -> None:
    scenarios = load_specs()
    by_language = {lang: [s for s in scenarios if s.language == lang] for lang in ("en", "it")}
    assert len(scenarios) >= 40
    assert min(len(v) for v in by_language.values()) >= 0.4 * len(scenarios)
    wanted = {"list", "announce", "introduce", "phone_prompted", "phone_unprompted", "spelling", "address",
              "code", "hesitation", "trailing_conjunction", "tag_question", "question", "request", "thanks",
              "goodbye", "greeting", "slow_speaker"}
    for lang, group in by_language.items():
        assert wanted <= {s.cls for s in group}, f"{lang} lacks {wanted - {s.cls for s in group}}"
    assert any(s.context for s in scenarios) and any(s.rate < 1 for s in scenarios)


def test_a_rendered_scenario_says_where_its_speech_is(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "small.json").write_text(json.dumps(SMALL))
    scenario = load_specs(tmp_path / "specs")[0]
    rendered = render(scenario, VOICES["en-us"], CHANNELS["clean"], tmp_path / "cache")

    audio, rate = soundfile.read(rendered.wav, dtype="int16")
    assert rate == 16000 and audio.ndim == 1
    phrases = read_transcript(rendered.tsv)
    assert [(p.label, p.text) for p in phrases] == [(label, text) for _, label, text in scenario.phrases]
    assert abs(phrases[0].start_s - (GREETING_GAP_S + 0.4)) < 0.001
    for before, after, (pause, _, _) in zip(phrases, phrases[1:], scenario.phrases[1:], strict=False):
        assert abs(after.start_s - before.end_s - pause) < 0.001

    speech = silero_segments(audio)
    assert len(speech) == len(phrases), (speech, phrases)
    for (start, end), p in zip(speech, phrases, strict=True):
        assert abs(start - p.start_s) <= 0.1, f"{p.text!r}: speech starts at {start}, TSV {p.start_s}"
        assert abs(end - p.end_s) <= 0.1, f"{p.text!r}: speech ends at {end}, TSV {p.end_s}"

    stat = rendered.wav.stat()
    again = render(scenario, VOICES["en-us"], CHANNELS["clean"], tmp_path / "cache")
    assert again.wav == rendered.wav
    assert rendered.wav.stat().st_mtime_ns == stat.st_mtime_ns  # made once
    changed = Scenario(scenario.name, "en", "list", ((0.4, "COMPLETE", "Only one thing."),))
    other = render(changed, VOICES["en-us"], CHANNELS["clean"], tmp_path / "cache")
    assert other.wav != rendered.wav and not rendered.wav.exists()  # a changed spec replaces its files


def test_the_phone_band_copy_keeps_the_timeline(tmp_path: Path) -> None:
    scenario = Scenario("short", "it", "question", ((0.4, "COMPLETE", "Sa quando torna Marco?"),))
    clean = render(scenario, VOICES["it"], CHANNELS["clean"], tmp_path)
    phone = render(scenario, VOICES["it"], CHANNELS["phone8k"], tmp_path)
    a, _ = soundfile.read(clean.wav, dtype="int16")
    b, _ = soundfile.read(phone.wav, dtype="int16")
    assert len(a) == len(b) and clean.tsv.read_text() == phone.tsv.read_text()
    spectrum = np.abs(np.fft.rfft(b.astype(np.float64)))
    assert spectrum[len(spectrum) // 2 + 200:].sum() < 1e-3 * spectrum.sum()  # nothing above 4 kHz


def summary(*turns: tuple[str, float]) -> dict[str, Any]:
    return {"bot_turns": [{"kind": kind, "start_s": at, "text_intended": "Okay."} for kind, at in turns],
            "decisions": [{"at_s": 2.3, "verdict": "COMPLETE", "by": "judge"}]}


PHRASES = [Phrase(1.0, 2.0, "WAIT", "I need two things."), Phrase(3.0, 4.0, "WAIT", "The quote,"),
           Phrase(5.0, 6.0, "COMPLETE", "and the invoice.")]


def test_a_reply_in_a_wait_pause_is_counted() -> None:
    s = ts.score(summary(("reply", 2.4), ("reply", 6.5)), PHRASES)
    assert s["wait_pauses"] == 2
    assert [(p["after"], p["kind"], p["by"]) for p in s["into_pause"]] == [
        ("I need two things.", "reply", "COMPLETE/judge")]
    assert s["v2v"] == [0.5] and s["late2"] == s["late3"] == 0


def test_any_turn_the_bot_takes_counts_whatever_its_kind() -> None:
    s = ts.score(summary(("readback", 4.2), ("readback", 6.7)), PHRASES)  # kinds the core may add later
    assert [p["after"] for p in s["into_pause"]] == ["The quote,"] and s["v2v"] == [0.7]


def test_an_answer_half_a_second_after_complete_is_no_failure() -> None:
    s = ts.score(summary(("backchannel", 3.6), ("reply", 6.5)), PHRASES)  # a backchannel takes no turn
    assert s["into_pause"] == [] and s["late2"] == s["late3"] == s["unanswered"] == 0
    assert s["answers"] == [{"text": "and the invoice.", "end_s": 6.0, "v2v_s": 0.5, "kind": "reply",
                             "by": "COMPLETE/judge"}]  # what answered, and the decision it came from


def test_late_and_missing_answers_are_counted() -> None:
    assert ts.score(summary(("reply", 8.5)), PHRASES)["late2"] == 1  # 2.5 s
    assert ts.score(summary(("reply", 8.5)), PHRASES)["late3"] == 0
    s = ts.score(summary(("ack", 6.8)), PHRASES)  # an acknowledgement is not the answer
    assert (s["late2"], s["late3"], s["unanswered"], s["v2v"]) == (1, 1, 1, [])
    two = [Phrase(1.0, 2.0, "COMPLETE", "Is Marco there?"), Phrase(5.0, 6.0, "COMPLETE", "Okay, bye.")]
    s = ts.score(summary(("reply", 5.5), ("goodbye", 6.4)), two)  # an answer over the next phrase is none
    assert [a["v2v_s"] for a in s["answers"]] == [None, 0.4]


def test_tally_reports_counts_and_voice_to_voice() -> None:
    rows = [{**ts.score(summary(("reply", 2.4), ("reply", 6.5)), PHRASES), "voice": "a"},
            {**ts.score(summary(("reply", 7.0)), PHRASES), "voice": "b"},
            {**ts.score(summary(("reply", 9.5)), PHRASES), "voice": "b"}]
    t = ts.tally(rows)
    counts = (t["runs"], t["wait_pauses"], t["into_pause"], t["completes"], t["late2"], t["late3"])
    assert counts == (3, 6, 1, 3, 1, 1)
    assert t["v2v_median_s"] == 1.0
    assert ts.group(rows, "voice")["b"]["runs"] == 2
