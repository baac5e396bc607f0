"""Screening rules (server/core/screening.py) on made-up VAD timelines, and in whole simulated calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.core.phrases import phrases_for
from server.core.screening import Screen, ScreeningOptions, is_screened

STEP = 0.032


def play(screen: Screen, until_s: float, voice: list[tuple[float, float]], bot: list[tuple[float, float]],
         words_from: float | None = None) -> None:
    """Feed `screen` one window per STEP: the caller voiced inside `voice` spans, the bot inside `bot`."""
    t = 0.0
    while t < until_s and screen.verdict is None:
        voiced = any(a <= t < b for a, b in voice)
        speaking = any(a <= t < b for a, b in bot)
        screen.observe(t, voiced, speaking, words_from is not None and t >= words_from)
        t += STEP


def test_nobody_speaking_is_a_silent_call_after_the_greeting() -> None:
    s = Screen(ScreeningOptions())
    play(s, 30, voice=[], bot=[(0, 4)])
    assert s.verdict is not None and s.verdict.kind == "silent"
    assert 12.0 <= s.verdict.at_s < 12.2  # 8 s after the greeting went quiet
    assert is_screened(s.ended(s.verdict.at_s, "silence")) and "Goodbye" in s.goodbye()


def test_a_voice_never_made_out_is_screened_as_silent_but_told_so() -> None:
    # A caller on a bad line: their voice was heard, no word of it ever came out.
    s = Screen(ScreeningOptions(language="it"))
    play(s, 40, voice=[(5, 7), (10, 12)], bot=[(0, 4)])
    assert s.verdict is not None and s.verdict.kind == "silent"
    assert s.goodbye() == phrases_for("it")["screened_unheard"] != phrases_for("it")["screened_silent"]


def test_words_make_a_call_not_silent() -> None:
    s = Screen(ScreeningOptions())
    play(s, 30, voice=[(5, 6)], bot=[(0, 4)], words_from=6.3)
    assert (s.verdict is None and s.ended(30, "silence") == "silence") or s.verdict is None


def test_a_recording_talking_through_every_bot_utterance_is_screened() -> None:
    s = Screen(ScreeningOptions())
    # voice on all the time but for short gaps; the bot tries three times and is talked over each time
    voice = [(0.3, 6.0), (6.6, 12.0), (12.6, 20.0)]
    bot = [(0.0, 0.6), (6.1, 6.9), (12.1, 12.9)]
    play(s, 30, voice, bot, words_from=2.0)
    assert s.verdict is not None and s.verdict.kind == "recording" and s.collisions == 3


def test_a_long_voice_without_pauses_over_the_greeting_is_a_recording() -> None:
    s = Screen(ScreeningOptions(run_s=15.0))
    play(s, 40, voice=[(0.5, 40)], bot=[(0, 0.8)], words_from=2.0)
    assert s.verdict is not None and s.verdict.kind == "recording" and 15.4 <= s.verdict.at_s < 15.7


def test_a_person_who_talks_over_the_greeting_then_listens_is_never_screened() -> None:
    s = Screen(ScreeningOptions())
    # talks over the greeting, stops for the bot's answer, then talks over two more bot lines
    voice = [(0.5, 5.0), (7.0, 9.0), (9.7, 13.0), (13.6, 40)]
    bot = [(0.0, 0.8), (5.3, 6.6), (9.4, 9.9), (13.2, 13.8)]
    play(s, 60, voice, bot, words_from=1.5)
    assert s.person and s.verdict is None and s.collisions == 3


@pytest.mark.parametrize("second_reply", [(6.54, 8.16), (6.2, 8.16)])
def test_a_caller_who_goes_on_after_pauses_the_bot_answered_into_is_not_a_recording(
        second_reply: tuple[float, float]) -> None:
    # A caller leaving a message in phrases on the real starter stack (the shared three_things): they
    # talk over the greeting, then pause 1.2 s and 1.1 s; the bot's replies come about 0.9 s into those
    # pauses (the second begun just after or just before the caller's voice came back) and the caller
    # goes on over them. Counted as three collisions, that call was hung up on as a recording.
    s = Screen(ScreeningOptions())
    voice = [(0.6, 1.8), (3.0, 3.7), (4.6, 5.3), (6.37, 9.3)]
    bot = [(0.04, 0.96), (2.54, 4.99), second_reply]
    play(s, 20, voice, bot, words_from=2.2)
    assert s.verdict is None and s.collisions == 1  # the greeting only


def test_a_voice_that_runs_on_over_replies_without_pausing_is_still_a_recording() -> None:
    s = Screen(ScreeningOptions())
    # gaps of 0.7 s, each answered 0.3 s in: shorter than any pause that gives the bot the floor
    voice = [(0.3, 5.0), (5.7, 10.0), (10.7, 16.0)]
    bot = [(0.0, 0.6), (5.3, 6.3), (10.3, 11.3)]
    play(s, 30, voice, bot, words_from=2.0)
    assert s.verdict is not None and s.verdict.kind == "recording" and s.collisions == 3


def test_screening_off_screens_nothing() -> None:
    s = Screen(ScreeningOptions(enabled=False))
    play(s, 30, voice=[], bot=[(0, 4)])
    assert s.verdict is None and s.ended(30, "silence") == "silence" and s.report() is None


def test_nothing_is_screened_after_the_window() -> None:
    s = Screen(ScreeningOptions(window_s=10.0))
    play(s, 30, voice=[], bot=[(0, 4)])
    assert s.verdict is None and s.ended(30, "silence") == "silence"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        ScreeningOptions(collisions=0)
    with pytest.raises(ValueError):
        ScreeningOptions(silent_s=0)


# --------------------------------------------------------------------------- whole calls, real audio

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "audio" / "speech").is_dir(),
                                  reason=f"{SHARED} is absent: the recordings these calls play are there")


def _simulate(tmp_path: Path, audio: np.ndarray, tsv: str, greeting: str | None = None) -> dict[str, object]:
    from models.stt_transcript import TranscriptStt
    from server.config import load
    from server.engines import build_engines
    from server.simulate import simulate

    (tmp_path / "t.tsv").write_text("start_s\tend_s\tlabel\ttext\n" + tsv, encoding="utf-8")
    config = load(None, {"call": {} if greeting is None else {"greeting": greeting},
                         "llm": {"engine": "script", "replies": ["Okay, noted.", "Sure."]},
                         "tts": {"engine": "espeak", "voice": ""},
                         "simulate": {"latency_ms": {"stt": 150, "judge": 20, "llm": 150, "tts": 80},
                                      "hangup_after_s": 6.0},
                         "storage": {"calls_dir": str(tmp_path / "calls"),
                                     "database": f"sqlite:///{tmp_path}/standin.db"}})
    import dataclasses

    engines = dataclasses.replace(build_engines(config, transcript=tmp_path / "t.tsv"),
                                  stt=TranscriptStt.from_file(tmp_path / "t.tsv"))
    summary: dict[str, object] = simulate(audio, engines, config, tmp_path / "call").summary
    return summary


@needs_shared
def test_recorded_speech_played_over_the_greeting_is_screened(tmp_path: Path) -> None:
    from benchmarks.screening import CLIPS, _chain, _mono16

    clips = [(_mono16(SHARED / "audio" / "speech" / f), words) for f, words in CLIPS.items()]
    audio, phrases = _chain(clips, 0.25, 0.3, 40.0)  # from 0.3 s into the greeting, 0.25 s gaps
    rows = [f"{p.start_s:.3f}\t{p.end_s:.3f}\tCOMPLETE\t{p.text}\n" for p in phrases]
    s = _simulate(tmp_path, audio.astype(np.int16), "".join(rows))
    assert s["ended"] == "screened: recording", s["screening"]
    assert s["bot_turns"][-1]["kind"] == "goodbye"  # type: ignore[index]


@needs_shared
def test_a_caller_talking_over_the_greeting_is_not_screened(tmp_path: Path) -> None:
    from server.audio import read_audio

    wav = SHARED / "scenarios" / "three_things.wav"
    rows = wav.with_suffix(".tsv").read_text().splitlines(True)[1:]
    s = _simulate(tmp_path, read_audio(wav), "".join(rows))
    assert s["screening"]["verdict"] is None and not str(s["ended"]).startswith("screened")  # type: ignore[index]
    assert s["screening"]["collisions"] >= 1  # type: ignore[index]  # it did talk over the greeting


@needs_shared
def test_line_noise_with_no_words_is_a_silent_call(tmp_path: Path) -> None:
    from server.audio import read_audio

    noise = read_audio(SHARED / "audio" / "noise" / "office.wav")
    s = _simulate(tmp_path, np.resize(noise, 30 * 16000), "")
    assert s["ended"] == "screened: silent", s["screening"]


@needs_shared
def test_a_caller_the_recogniser_cannot_make_out_is_asked_to_repeat_not_screened(tmp_path: Path) -> None:
    """Three phrases in the first 8 s, none of them heard as words (tiny.en on an espeak address): the
    bot's ask to repeat, at the backstop after the last one, comes before any silent verdict."""
    from server.audio import read_audio

    speech = read_audio(SHARED / "audio" / "speech" / "spk1_snt1.wav")[:round(1.5 * 16000)]
    audio = np.zeros(30 * 16000, np.int16)
    for start in (1.5, 4.0, 6.5):
        at = round(start * 16000)
        audio[at:at + len(speech)] = speech
    s = _simulate(tmp_path, audio, "", greeting="Hello?")  # the transcript has no words for any of it
    [ask] = [b for b in s["bot_turns"] if b["kind"] == "repeat"]  # type: ignore[attr-defined]
    assert 8.0 + 2.0 <= ask["start_s"] <= 8.0 + 2.3  # the backstop after the last phrase
    screening: dict[str, Any] = s["screening"]  # type: ignore[assignment]
    assert screening["verdict"] is None or screening["at_s"] > ask["start_s"], screening


def test_the_silent_screen_outwaits_the_turn_backstop() -> None:
    from server.config import load

    assert load(None, {}).conversation().screening.settle_s == 2.5  # the 2 s backstop, and 0.5 s
    assert load(None, {"turns": {"backstop_ms": 3000}}).conversation().screening.settle_s == 3.5
    assert load(None, {"screening": {"settle_s": 5.0}}).conversation().screening.settle_s == 5.0


def test_a_caller_who_pressed_0_and_waits_for_the_owner_is_not_silent() -> None:
    from server.core import events as ev
    from server.core.conversation import Conversation, ConversationOptions
    from server.core.ringthrough import RingOptions

    c = Conversation(ConversationOptions(screening=ScreeningOptions(), ring=RingOptions(enabled=True)))
    c.handle(ev.CallStarted(0.0))
    c.handle(ev.Dtmf(1.0, "0"))
    for i in range(round(25 / STEP)):  # the owner's phone rings on; the caller says nothing
        c.handle(ev.VadWindow(1.0 + i * STEP, 16000 + i * 512, 16000 + (i + 1) * 512, 0.01))
    assert c.screen.verdict is None and c.ended is None
