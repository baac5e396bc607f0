"""Whole calls through the real core, runtime, playout and simulator, with engines whose behaviour is
known exactly (tests/fakes.py), so each rule of DESIGN.md §2 can be checked to the millisecond."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from models.engines import Transcript, TurnJudge
from models.judge_rules import RulesJudge
from server.config import load
from server.core.conversation import CallOptions
from server.runtime import DIGITS_HINT, Engines
from server.simulate import simulate
from tests.fakes import FakeClock, FnJudge, LinesLlm, SpanStt, SpanVad, ToneTts

REPLIES = ["It is confirmed for Tuesday at ten in the morning, and the driver will call you first.",
           "Noted, Wednesday then."]


def call(tmp_path: Path, phrases: list[tuple[float, float, str]], *, length_s: float = 8.0,
         judge: TurnJudge | None = None, stt: SpanStt | None = None, llm: LinesLlm | None = None,
         tts: ToneTts | None = None, extra_vad: tuple[tuple[float, float], ...] = (),
         config: dict[str, dict[str, Any]] | None = None, clock: FakeClock | None = None) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {
        "call": {"greeting": ""}, "simulate": {"latency_ms": {"stt": 0, "judge": 0, "llm": 0, "tts": 0}}}
    for name, values in (config or {}).items():
        tables.setdefault(name, {}).update(values)
    options = load(None, tables)
    engines = Engines(
        vad=SpanVad([(a, b) for a, b, _ in phrases] + list(extra_vad)),
        stt=stt or SpanStt(phrases),
        judge=judge or FnJudge(lambda text: 0.8),
        llm=llm or LinesLlm(REPLIES),
        tts=tts or ToneTts(),
    )
    caller = np.zeros(int(length_s * 16000), np.int16)
    return simulate(caller, engines, options, tmp_path / "call", engine_clock=clock or FakeClock()).summary


def replies(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in summary["bot_turns"] if b["kind"] == "reply"]


def test_a_question_is_answered_right_after_the_pause(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.6, "Is Marco there?")], config={"turns": {"question_shortcut": True}})
    [reply] = replies(s)
    assert s["decisions"][-1]["by"] == "shortcut"
    assert 1.6 + 0.2 <= reply["start_s"] <= 1.6 + 0.35  # min gap, then the next frame
    assert reply["text_heard"] == REPLIES[0] and not reply["interrupted"]


def test_the_question_shortcut_is_off_unless_the_owner_turns_it_on() -> None:
    # the rules are as quick on a question mark, and know lists; the LLM judge leaves them such lines
    assert load(None, {}).turns.question_shortcut is False
    assert load(None, {"judge": {"engine": "llm"}}).turns.question_shortcut is False
    assert load(None, {"turns": {"question_shortcut": True}}).turns.question_shortcut is True


def test_a_confident_wait_holds_the_floor_until_the_backstop(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.6, "I need three things.")], judge=FnJudge(lambda text: 0.05), length_s=9)
    [reply] = replies(s)
    assert [d["by"] for d in s["decisions"]] == ["judge", "backstop"]
    assert 1.6 + 4.0 <= reply["start_s"] <= 1.6 + 4.1


def test_a_caller_who_announces_a_message_and_waits_is_invited_on(tmp_path: Path) -> None:
    phrases = [(0.5, 2.8, "Hi, I'd like to leave a message for Marco."),
               (6.0, 8.0, "Tell him the car is ready.")]
    s = call(tmp_path, phrases, judge=RulesJudge(), length_s=12)
    kinds = [b["kind"] for b in s["bot_turns"]]
    assert kinds == ["go_ahead", "reply"], kinds
    go = s["bot_turns"][0]
    assert go["text_heard"] == "Go ahead."
    assert 2.8 + 1.5 <= go["start_s"] <= 2.8 + 1.6  # the announcement holds the floor till then
    assert s["decisions"][0]["verdict"] == "WAIT"
    assert "go ahead" not in s["story"].lower()  # it says nothing the reply model must answer for


def test_a_caller_who_goes_on_after_an_announcement_is_not_invited(tmp_path: Path) -> None:
    phrases = [(0.5, 2.8, "Hi, I'd like to leave a message for Marco."),
               (4.0, 5.7, "Tell him the car is ready.")]
    s = call(tmp_path, phrases, judge=RulesJudge(), length_s=10)
    assert [b["kind"] for b in s["bot_turns"]] == ["reply"]


def test_the_bot_invites_a_caller_on_once_until_it_answers(tmp_path: Path) -> None:
    phrases = [(0.5, 2.8, "Hi, I'd like to leave a message for Marco."),
               (5.0, 6.0, "It's about the car."), (9.0, 10.5, "It's ready on Friday.")]
    s = call(tmp_path, phrases, judge=RulesJudge(), length_s=14)
    assert [b["kind"] for b in s["bot_turns"]] == ["go_ahead", "reply"]


def test_a_caller_who_asks_for_a_moment_is_not_told_to_go_ahead(tmp_path: Path) -> None:
    phrases = [(0.5, 2.0, "Yes, hold on, let me find it."), (5.0, 6.5, "Found it, it was paid on Monday.")]
    s = call(tmp_path, phrases, judge=RulesJudge(), length_s=10)
    assert [b["kind"] for b in s["bot_turns"]] == ["reply"]


def test_the_go_ahead_speaks_the_call_language_and_can_be_turned_off(tmp_path: Path) -> None:
    phrases = [(0.5, 2.8, "Buongiorno, volevo lasciare un messaggio per Marco."),
               (6.0, 8.0, "La macchina è pronta.")]
    s = call(tmp_path / "it", phrases, judge=RulesJudge(), length_s=12, config={"stt": {"language": "it"}})
    go, reply = s["bot_turns"]
    assert (go["kind"], go["text_heard"], reply["kind"]) == ("go_ahead", "Dica pure.", "reply")
    s = call(tmp_path / "off", phrases, judge=RulesJudge(), length_s=12,
             config={"stt": {"language": "it"}, "turns": {"go_ahead_after_ms": 0}})
    assert [b["kind"] for b in s["bot_turns"]] == ["reply"]


def test_the_caller_going_on_cancels_what_was_prepared(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "The meeting moved to"), (1.8, 2.6, "Thursday at ten.")]
    judge = FnJudge(lambda text: 0.05 if text.endswith("to") else 0.95)
    s = call(tmp_path, phrases, judge=judge, llm=LinesLlm(["Thursday at ten, noted."]))
    [reply] = replies(s)
    assert reply["start_s"] > 2.6
    assert s["story"].splitlines() == ["Caller: The meeting moved to Thursday at ten.",
                                       "Bot: Thursday at ten, noted."]


def test_a_slow_judge_gets_an_acknowledgement_instead_of_dead_air(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.6, "So I was thinking")], judge=FnJudge(lambda text: 0.9),
             config={"simulate": {"latency_ms": {"judge": 2500}}}, length_s=8)
    kinds = [b["kind"] for b in s["bot_turns"]]
    assert kinds[:2] == ["ack", "reply"]
    assert s["bot_turns"][0]["start_s"] == pytest.approx(1.6 + 1.2, abs=0.05)


def recording(summary_dir: Path) -> np.ndarray:
    audio, rate = soundfile.read(summary_dir / "call.wav", dtype="int16")
    assert rate == 16000
    return np.asarray(audio)


def test_barge_in_stops_at_a_word_boundary_and_the_story_keeps_what_was_heard(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "When is the delivery?"), (3.0, 4.2, "No, I meant Wednesday.")]
    s = call(tmp_path, phrases, length_s=10)
    first, second = replies(s)
    assert first["interrupted"] and not second["interrupted"]
    heard = first["text_heard"].split()
    assert 0 < len(heard) < len(REPLIES[0].split())
    assert REPLIES[0].startswith(first["text_heard"])
    assert [w["text"] for w in first["words"]] == heard
    [barge] = s["barge_ins"]
    assert barge["onset_s"] == pytest.approx(3.0, abs=0.04)
    assert barge["fade_start_s"] - barge["onset_s"] <= 0.45
    # It fades at the end of the word it was saying, or in the gap after it: never inside a word.
    last_end = first["words"][-1]["end_s"]
    assert last_end - 0.001 <= barge["fade_start_s"] <= last_end + 0.05 + 0.001
    assert f"Bot: {first['text_heard']} ... [cut off]" in s["story"].splitlines()
    # Nothing of the cancelled reply reaches the line after the fade.
    bot = recording(tmp_path / "call")[:, 1]
    after_fade = bot[int(barge["silent_s"] * 16000) + 17:int(second["start_s"] * 16000) - 1]  # ms times
    assert len(after_fade) > 0 and np.abs(after_fade).max() == 0


def test_the_words_in_the_story_are_exactly_the_words_whose_audio_played(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "When is the delivery?"), (2.6, 3.9, "Sorry, which day?")]
    s = call(tmp_path, phrases, length_s=9)
    first = replies(s)[0]
    bot = recording(tmp_path / "call")[:, 1].astype(np.int32)
    played = 0
    for w in first["words"]:
        a, b = int(w["start_s"] * 16000), int(w["end_s"] * 16000)
        level = np.abs(bot[a:a + 160]).mean()
        # the tone was really there, at full level to the word's last 10 ms (a word the finishing cap
        # cut short, fading out, was not heard)
        if level > 3000 and np.abs(bot[b - 160:b]).mean() >= 0.95 * level:
            played += 1
    assert played == len(first["text_heard"].split())


def test_a_short_sound_is_not_an_interruption(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.5, "When is the delivery?")], extra_vad=((3.0, 3.1),), length_s=10)
    [reply] = replies(s)
    assert not reply["interrupted"] and reply["text_heard"] == REPLIES[0]
    assert [b.get("resumed") for b in s["barge_ins"]] == ["no onset"]


def test_a_backchannel_does_not_lose_the_sentence(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "When is the delivery?"), (3.0, 3.4, "mm-hm")]
    s = call(tmp_path, phrases, length_s=12)
    [reply] = replies(s)
    assert not reply["interrupted"] and reply["text_heard"] == REPLIES[0]
    assert s["barge_ins"][0]["resumed"] == "backchannel"
    assert "mm-hm" not in s["story"]


def test_thanks_over_the_read_back_lets_the_caller_hear_their_number_to_its_end(tmp_path: Path) -> None:
    phrases = [(0.5, 3.5, "My number is two one two, five five five, one two three four."),
               (4.2, 4.6, "Thanks.")]
    s = call(tmp_path, phrases, length_s=14, config={"contacts": {"region": "US"}})
    [readback] = [b for b in s["bot_turns"] if b["kind"] == "readback"]
    assert readback["start_s"] < 4.2 and not readback["interrupted"]
    assert readback["text_heard"] == readback["text_intended"]
    assert s["barge_ins"][0]["resumed"] == "backchannel"


def test_an_llm_failure_gets_a_spoken_apology(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], llm=LinesLlm(REPLIES, fail=True))
    assert [b["kind"] for b in s["bot_turns"]] == ["apology"]
    assert s["bot_turns"][0]["text_heard"].startswith("Sorry")


def test_an_stt_failure_gets_a_spoken_apology(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], stt=SpanStt([], fail=True))
    assert [b["kind"] for b in s["bot_turns"]] == ["apology"]


def test_a_stalled_stt_times_out_into_an_apology(tmp_path: Path) -> None:
    clock = FakeClock()
    s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], stt=SpanStt([], stall_s=0.5, clock=clock),
             config={"stt": {"timeout_s": 0.1}}, clock=clock)
    [apology] = s["bot_turns"]
    assert apology["kind"] == "apology"
    # The fragment closes after the pause (~0.5 s), its STT job gives up 0.1 s of engine time later.
    assert 1.5 + 0.4 <= apology["start_s"] <= 1.5 + 0.5 + 0.1 + 0.05


def test_a_tts_failure_on_a_reply_gets_the_apology_in_its_place(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], tts=ToneTts(fail_on="confirmed"))
    assert [b["kind"] for b in s["bot_turns"]] == ["apology"]


def test_silence_ends_the_call_with_a_goodbye(tmp_path: Path) -> None:
    s = call(tmp_path, [], length_s=1, config={"call": {"greeting": "Hello there.", "silence_timeout_s": 3.0},
                     "simulate": {"hangup_after_s": 30.0}})
    assert [b["kind"] for b in s["bot_turns"]] == ["greeting", "goodbye"]
    assert s["ended"] == "screened: silent"  # nobody said a word: screened (server/core/screening.py)
    assert s["bot_turns"][1]["start_s"] == pytest.approx(s["bot_turns"][0]["end_s"] + 3.0, abs=0.1)


def test_the_bot_ends_the_call_when_its_reply_asks_to(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "Is Marco there?"), (6.5, 7.5, "Hello? Are you still there?")]
    s = call(tmp_path, phrases, llm=LinesLlm(["He is out, goodbye."], end_call=True), length_s=14,
             config={"simulate": {"hangup_after_s": 30.0}})
    [reply] = s["bot_turns"]  # no goodbye of its own: the reply was the goodbye
    assert reply["kind"] == "reply" and not reply["interrupted"]
    assert reply["text_heard"] == "He is out, goodbye."
    assert s["ended"] == "bot ended the call"
    # hung up once the reply had played and the line had stayed quiet for end_call_grace_s
    assert s["duration_s"] == pytest.approx(reply["end_s"] + CallOptions().end_call_grace_s, abs=0.05)
    assert "Hello?" not in s["story"]


def test_a_caller_who_speaks_right_after_the_models_goodbye_is_not_hung_up_on(tmp_path: Path) -> None:
    # The 1.5B once ended a call on the caller's first phrase ("I need three things."): the reply played
    # out in the caller's pause and the line went dead as they went on with the first thing.
    first = call(tmp_path / "a", [(0.5, 1.5, "Is Marco there?")], llm=LinesLlm(["He is out, goodbye."],
                 end_call=True), length_s=8, config={"simulate": {"hangup_after_s": 30.0}})
    end = first["bot_turns"][0]["end_s"]
    phrases = [(0.5, 1.5, "Is Marco there?"), (end + 0.3, end + 1.5, "Wait, can you tell him it's urgent?")]
    s = call(tmp_path / "b", phrases, llm=LinesLlm(["He is out, goodbye."], end_call=True),
             length_s=end + 8, config={"simulate": {"hangup_after_s": 30.0}})
    assert "Wait, can you tell him" in s["story"]
    assert [b["kind"] for b in s["bot_turns"]] == ["reply", "reply"]  # answered, not hung up on
    assert s["ended"] == "bot ended the call"  # after the second goodbye, with the line quiet


def test_a_model_that_ends_the_call_without_a_word_does_not_hang_up_on_a_caller_who_goes_on(
        tmp_path: Path) -> None:
    # From the real-whisper scenarios: the 1.5B answered "Sì, ho un messaggio da parte della scuola." with
    # nothing but the end-call mark; the call's goodbye played in the caller's pause and the call ended
    # as they went on with the message itself.
    llm = LinesLlm([""], end_call=True)
    first = call(tmp_path / "a", [(0.5, 1.5, "I've got a message for him.")], llm=llm, length_s=8,
                 config={"simulate": {"hangup_after_s": 30.0}})
    [goodbye] = first["bot_turns"]
    assert goodbye["kind"] == "goodbye" and first["ended"] == "bot ended the call"
    end = goodbye["end_s"]
    phrases = [(0.5, 1.5, "I've got a message for him."), (end + 0.3, end + 1.5, "The boiler is fixed.")]
    s = call(tmp_path / "b", phrases, llm=llm, length_s=end + 10,
             config={"simulate": {"hangup_after_s": 30.0}})
    assert "The boiler is fixed." in s["story"]
    assert [b["kind"] for b in s["bot_turns"]] == ["goodbye", "goodbye"]  # heard, then the goodbye again
    assert s["ended"] == "bot ended the call"


def test_a_model_that_answers_nothing_leaves_no_silence(tmp_path: Path) -> None:
    s = call(tmp_path, [(0.5, 1.5, "I've got a message for him.")], llm=LinesLlm([""]), length_s=6)
    [ack] = s["bot_turns"]
    assert ack["kind"] == "ack" and ack["text_heard"] == CallOptions().ack
    assert 1.5 < ack["start_s"] < 2.5
    assert s["ended"] != "bot ended the call"


def test_the_call_reaching_its_maximum_duration_ends_with_a_goodbye(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "Is Marco there?"), (4.6, 5.6, "Wait, one more thing.")]  # over the goodbye
    s = call(tmp_path, phrases, length_s=14,
             config={"call": {"max_duration_s": 4.0}, "simulate": {"hangup_after_s": 30.0}})
    reply, goodbye = s["bot_turns"]
    assert reply["kind"] == "reply" and reply["interrupted"]  # cut off for the goodbye, at a word's end
    assert reply["words"][-1]["end_s"] <= 4.0 <= goodbye["start_s"] <= 4.0 + 0.05
    assert goodbye["kind"] == "goodbye" and not goodbye["interrupted"]
    assert goodbye["text_heard"] == "Thank you, I will pass your message on. Goodbye."
    assert s["ended"] == "max duration"
    assert s["duration_s"] == pytest.approx(goodbye["end_s"], abs=0.05)
    assert s["story"].splitlines() == ["Caller: Is Marco there?", f"Bot: {reply['text_heard']} ... [cut off]",
                                       "Caller: Wait, one more thing.", f"Bot: {goodbye['text_heard']}"]


def test_a_noise_after_the_caller_stops_does_not_leave_them_without_an_answer(tmp_path: Path) -> None:
    # The transcript of the question lands while a short noise (too little speech to be a fragment) is
    # going on; once the noise is known to be nothing, the question still gets its answer.
    s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], extra_vad=((2.1, 2.25),),
             config={"simulate": {"latency_ms": {"stt": 600, "judge": 0, "llm": 0, "tts": 0}}})
    [reply] = replies(s)
    assert reply["text_heard"] == REPLIES[0]


class QuotingStt(SpanStt):
    """An STT whose error message quotes what it was hearing, as third-party engines' errors may."""

    def transcribe(self, audio: np.ndarray, *, start_s: float, language: str,
                   hints: Sequence[str] = ()) -> Transcript:
        raise RuntimeError("cannot decode 'my card number is 4929 1234' near the end")


def test_an_engine_error_quoting_the_caller_stays_out_of_the_log(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        s = call(tmp_path, [(0.5, 1.5, "Is Marco there?")], stt=QuotingStt([]))
    assert [b["kind"] for b in s["bot_turns"]] == ["apology"]
    assert "4929" not in caplog.text
    assert not any("4929" in str(r.args) or "4929" in r.getMessage() for r in caplog.records)
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures and all("stt job" in m and "RuntimeError" in m for m in failures)
    trace = (tmp_path / "call" / "trace.jsonl").read_text()
    assert "RuntimeError: cannot decode 'my card number is 4929 1234' near the end" in trace


class PrefillingLlm(LinesLlm):
    """LinesLlm that records each story it is asked to prepare."""

    def __init__(self, lines: Sequence[str], **kw: Any) -> None:
        super().__init__(lines, **kw)
        self.prefilled: list[list[tuple[str, str]]] = []

    def prefill(self, story: Sequence[Any], context: Any) -> int:
        self.prefilled.append([(line.role, line.text) for line in story])
        return 0


def test_the_reply_engine_prepares_each_bot_line_the_caller_heard_but_not_a_goodbye(tmp_path: Path) -> None:
    llm = PrefillingLlm(["Hello there.", "Noted, Wednesday then.", "Goodbye."], end_call=True)
    phrases = [(0.5, 1.5, "When is the delivery?"), (3.5, 4.6, "Wednesday, please."), (6.5, 7.3, "Bye.")]
    s = call(tmp_path, phrases, length_s=12, llm=llm)
    said = [b["text_heard"] for b in replies(s)]
    assert said == ["Hello there.", "Noted, Wednesday then.", "Goodbye."]
    # one after each reply that the call goes on from, ending with it; none after the last
    assert [story[-1] for story in llm.prefilled] == [("bot", "Hello there."),
                                                      ("bot", "Noted, Wednesday then.")]
    assert llm.prefilled[1][:3] == [("caller", "When is the delivery?"), ("bot", "Hello there."),
                                    ("caller", "Wednesday, please.")]


class HintedStt(SpanStt):
    """SpanStt that records the hints of each call."""

    def __init__(self, phrases: Sequence[tuple[float, float, str]]) -> None:
        super().__init__(phrases)
        self.hints: list[tuple[str, ...]] = []

    def transcribe(self, audio: Any, *, start_s: float, language: str, hints: Sequence[str] = ()) -> Any:
        self.hints.append(tuple(hints))
        return super().transcribe(audio, start_s=start_s, language=language, hints=hints)


def test_whisper_is_told_to_expect_digits_once_the_caller_is_dictating_a_number(tmp_path: Path) -> None:
    phrases = [(0.5, 2.0, "Hi, it's Anna, my number is two one two"), (3.5, 4.5, "five five five"),
               (6.0, 7.5, "one two three four.")]
    stt = HintedStt(phrases)
    call(tmp_path, phrases, length_s=10, stt=stt, config={"stt": {"hints": ["Marco"]}})
    assert stt.hints[0] == ("Marco",)
    assert stt.hints[-1] == (DIGITS_HINT,)  # alone: after the names, whisper heard fewer digit groups
    assert len(stt.hints) >= 3


def test_a_caller_screened_as_a_recording_mid_barge_in_gets_the_goodbye(tmp_path: Path) -> None:
    """The third time the caller talks over a reply the screen takes them for a recording, in the very
    window their voice began over the bot: the goodbye cuts that reply off while its barge-in is still
    deciding, and the caller's voice going on must not touch the reply again."""
    phrases = [(0.5, 2.0, "First thing."), (2.6, 4.0, "Second thing."), (4.6, 6.0, "Third thing."),
               (6.6, 8.5, "Fourth thing.")]
    s = call(tmp_path, phrases, length_s=12, llm=LinesLlm(["Noted, go on please, I am listening."] * 4))
    assert s["ended"] == "screened: recording", s["screening"]
    kinds = [b["kind"] for b in s["bot_turns"]]
    assert kinds[-1] == "goodbye" and kinds.count("reply") == 3
    assert all(b["interrupted"] for b in replies(s))


@pytest.mark.parametrize(("span", "asked"), [((3.0, 3.75), True), ((3.0, 4.2), True), ((3.0, 3.4), False)])
def test_speech_over_the_bot_that_comes_to_no_words_is_asked_for_again(
        tmp_path: Path, span: tuple[float, float], asked: bool) -> None:
    """0.75 s of voice over a reply that the recogniser makes nothing of (whisper drops what it is unsure
    of) is the caller saying something the bot missed: it stops and asks for it again once the pause is
    long enough, rather than going back to its reply as if nothing was said (over 0.9 s the voice alone
    stops the bot). 0.4 s of it is a noise: the reply goes on."""
    phrases = [(0.5, 1.5, "When is the delivery?"), (*span, "")]
    s = call(tmp_path, phrases, length_s=10)
    kinds = [b["kind"] for b in s["bot_turns"]]
    first = replies(s)[0]
    if asked:
        assert kinds == ["reply", "repeat"] and first["interrupted"]
        assert s["bot_turns"][1]["start_s"] >= span[1] + 0.2
    else:
        assert kinds == ["reply"] and not first["interrupted"] and first["text_heard"] == REPLIES[0]
