"""Barge-in with real voices: espeak-ng speaks the bot, recorded speech interrupts it; and noise that
must not count as a caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.engines import EngineError
from models.vad_silero import SileroVad
from server.audio import read_audio, resample, to_float
from server.config import load
from server.engines import build_engines
from server.simulate import simulate

FIXED = {"stt": 100, "judge": 10, "llm": 100, "tts": 50}  # the same timing however busy the machine is
LONG_REPLY = ("The parcel is confirmed for Tuesday, at ten in the morning, and the driver will call you "
              "about twenty minutes before arriving at your door.")


def espeak(text: str) -> np.ndarray:
    from models.tts_espeak import EspeakTts

    try:
        chunks = list(EspeakTts().synthesize(text, language="en"))
    except EngineError as exc:
        pytest.skip(f"espeak-ng is not usable here: {exc}")
    return np.concatenate([resample(c.audio, c.sample_rate, 16000) for c in chunks])


def speech_start(clip: np.ndarray) -> float:
    stream = SileroVad().stream(16000)
    x = to_float(clip)
    for i in range(0, len(x) - 511, 512):
        if stream.probability(x[i:i + 512]) >= 0.5:
            return i / 16000
    raise AssertionError("no speech in the clip")


def place(track: np.ndarray, clip: np.ndarray, at_s: float) -> None:
    i = int(at_s * 16000)
    track[i:i + len(clip)] += clip


def run_call(tmp_path: Path, caller: np.ndarray, phrases: list[tuple[float, float, str]]) -> dict[str, Any]:
    tsv = tmp_path / "caller.tsv"
    tsv.write_text("start_s\tend_s\tlabel\ttext\n" + "".join(
        f"{a:.3f}\t{b:.3f}\tCOMPLETE\t{text}\n" for a, b, text in phrases))
    config = load(None, {"call": {"greeting": ""}, "simulate": {"latency_ms": FIXED},
                         "llm": {"replies": [LONG_REPLY, "Understood, I will tell them."]}})
    return simulate(caller, build_engines(config, transcript=tsv), config, tmp_path / "call").summary


def bot_track(tmp_path: Path) -> np.ndarray:
    import soundfile

    audio: np.ndarray = soundfile.read(tmp_path / "call" / "call.wav", dtype="int16")[0]
    return audio[:, 1].astype(np.int32)


def test_a_real_interruption_stops_the_bot_at_a_word_and_the_story_is_exact(shared: Path,
                                                                             tmp_path: Path) -> None:
    question = espeak("When will the parcel arrive?")
    interruption = read_audio(shared / "audio" / "speech" / "spk1_snt1.wav")
    caller = np.zeros(16000 * 14, np.int16)
    q_end = 0.5 + len(question) / 16000
    place(caller, question, 0.5)
    cut_in = q_end + 2.6
    place(caller, interruption, cut_in)
    onset = cut_in + speech_start(interruption)
    s = run_call(tmp_path, caller, [(0.5, q_end, "When will the parcel arrive?"),
                                    (cut_in, cut_in + len(interruption) / 16000, "No, the other parcel.")])
    first = next(b for b in s["bot_turns"] if b["kind"] == "reply")
    assert first["interrupted"]
    heard = first["text_heard"]
    assert heard and LONG_REPLY.startswith(heard) and heard != LONG_REPLY
    [barge] = s["barge_ins"]
    assert abs(barge["onset_s"] - onset) <= 0.05
    assert barge["fade_start_s"] - onset <= 0.45
    assert f"Bot: {heard} ... [cut off]" in s["story"]
    bot = bot_track(tmp_path)
    # Every word the story keeps was on the line; after the fade nothing of the reply is.
    for w in first["words"]:
        span = bot[int(w["start_s"] * 16000):int(w["end_s"] * 16000)]
        assert np.sqrt(np.mean(span.astype(np.float64) ** 2)) > 300, f"{w['text']!r} is not on the line"
    replies = [b for b in s["bot_turns"] if b["kind"] == "reply"]
    following = replies[1]["start_s"] if len(replies) > 1 else len(bot) / 16000
    quiet = bot[int(barge["silent_s"] * 16000) + 17:int(following * 16000) - 1]  # times are in ms
    assert len(quiet) and np.abs(quiet).max() == 0


def test_a_spoken_okay_lets_the_bot_finish_its_sentence(tmp_path: Path) -> None:
    question, okay = espeak("When will the parcel arrive?"), espeak("Okay.")
    caller = np.zeros(16000 * 16, np.int16)
    q_end = 0.5 + len(question) / 16000
    place(caller, question, 0.5)
    place(caller, okay, q_end + 2.5)
    s = run_call(tmp_path, caller, [(0.5, q_end, "When will the parcel arrive?"),
                                    (q_end + 2.5, q_end + 2.5 + len(okay) / 16000, "Okay.")])
    first = next(b for b in s["bot_turns"] if b["kind"] == "reply")
    assert not first["interrupted"]
    assert first["text_heard"] == LONG_REPLY
    assert s["barge_ins"] and s["barge_ins"][0]["resumed"]


def test_an_okay_that_runs_on_into_a_message_is_heard_as_the_message(tmp_path: Path) -> None:
    # The "okay" is transcribed in the short pause after it and taken for a backchannel; the caller's
    # voice comes back before the fragment closes: the words that follow interrupt the bot again and
    # are the caller's turn.
    question, okay = espeak("When will the parcel arrive?"), espeak("Okay.")
    rest = espeak("Then tell him Sam called about Saturday.")
    caller = np.zeros(16000 * 20, np.int16)
    q_end = 0.5 + len(question) / 16000
    place(caller, question, 0.5)
    o_start = q_end + 2.5
    o_end = o_start + len(okay) / 16000
    r_start = o_end - 0.1  # espeak's clips begin and end in silence: a pause of about 250 ms
    place(caller, okay, o_start)
    place(caller, rest, r_start)
    s = run_call(tmp_path, caller, [(0.5, q_end, "When will the parcel arrive?"), (o_start, o_end, "Okay."),
                                    (r_start, r_start + len(rest) / 16000,
                                     "Then tell him Sam called about Saturday.")])
    assert "Sam called about Saturday" in s["story"]
    replies = [b for b in s["bot_turns"] if b["kind"] == "reply"]
    assert len(replies) == 2 and replies[1]["start_s"] > r_start


@pytest.mark.parametrize("noise", ["babble", "cafe", "dishes", "exercise_bike", "freesound_573577", "office"])
def test_noise_is_not_a_caller(shared: Path, tmp_path: Path, noise: str) -> None:
    tsv = tmp_path / "empty.tsv"
    tsv.write_text("start_s\tend_s\tlabel\ttext\n")
    config = load(None, {"call": {"greeting": ""}, "simulate": {"latency_ms": FIXED}})
    caller = read_audio(shared / "audio" / "noise" / f"{noise}.wav")
    s = simulate(caller, build_engines(config, transcript=tsv), config, tmp_path / "call").summary
    # Babble is speech-like: a burst of it may make a fragment, which must come to no words.
    assert [f["text"] for f in s["caller_fragments"] if f["text"]] == []
    # The only thing the bot may say to a line with nobody on it is goodbye, after the silence timeout.
    assert [b["kind"] for b in s["bot_turns"]] in ([], ["goodbye"])
    assert s["decisions"] == []


def echo_call(tmp_path: Path, caller: np.ndarray, phrases: list[tuple[float, float, str]],
              echo: dict[str, float]) -> dict[str, Any]:
    tsv = tmp_path / "caller.tsv"
    tsv.write_text("start_s\tend_s\tlabel\ttext\n" + "".join(
        f"{a:.3f}\t{b:.3f}\tCOMPLETE\t{text}\n" for a, b, text in phrases))
    config = load(None, {"call": {"greeting": "Hello, you have reached Marco's phone. How can I help?"},
                         "simulate": {"latency_ms": FIXED, "echo": echo},
                         "llm": {"replies": [LONG_REPLY, "Understood, I will tell them."]}})
    return simulate(caller, build_engines(config, transcript=tsv), config, tmp_path / "call").summary


@pytest.mark.parametrize("gain_db", [-15.0, -6.0])
def test_the_bot_never_barges_in_on_its_own_echo(tmp_path: Path, gain_db: float) -> None:
    question = espeak("When will the parcel arrive?")
    caller = np.zeros(16000 * 20, np.int16)
    place(caller, question, 5.5)
    q_end = 5.5 + len(question) / 16000
    s = echo_call(tmp_path, caller, [(5.5, q_end, "When will the parcel arrive?")],
                  {"delay_ms": 120, "gain_db": gain_db})
    assert s["barge_ins"] == []
    spoken = [b for b in s["bot_turns"] if b["kind"] in ("greeting", "reply")]
    assert [b["kind"] for b in spoken] == ["greeting", "reply"]
    assert not any(b["interrupted"] for b in spoken)
    assert spoken[1]["text_heard"] == LONG_REPLY


def test_a_caller_still_cuts_in_through_the_echo(shared: Path, tmp_path: Path) -> None:
    question = espeak("When will the parcel arrive?")
    interruption = read_audio(shared / "audio" / "speech" / "spk1_snt1.wav")
    caller = np.zeros(16000 * 20, np.int16)
    place(caller, question, 5.5)
    q_end = 5.5 + len(question) / 16000
    cut_in = q_end + 2.6
    place(caller, interruption, cut_in)
    s = echo_call(tmp_path, caller, [(5.5, q_end, "When will the parcel arrive?"),
                                     (cut_in, cut_in + len(interruption) / 16000, "No, the other parcel.")],
                  {"delay_ms": 120, "gain_db": -15.0})
    reply = next(b for b in s["bot_turns"] if b["kind"] == "reply")
    assert reply["interrupted"] and s["barge_ins"]
    onset = cut_in + speech_start(interruption)
    assert s["barge_ins"][-1]["fade_start_s"] - onset <= 0.45
