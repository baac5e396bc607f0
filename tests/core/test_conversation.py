"""The core driven by hand, one event at a time: no runtime, no threads, no event loop."""

from __future__ import annotations

import pytest

from server.core import events as ev
from server.core.conversation import CallOptions, Conversation, ConversationOptions

W = 512


def core() -> Conversation:
    c = Conversation(ConversationOptions(call=CallOptions(greeting="")))
    c.handle(ev.CallStarted(0.0))
    return c


def windows(c: Conversation, first: int, probs: list[float]) -> list[ev.Command]:
    out: list[ev.Command] = []
    for i, p in enumerate(probs, first):
        out += c.handle(ev.VadWindow((i + 1) * W / 16000, i * W, (i + 1) * W, p))
    return out


def of(kind: type, commands: list[ev.Command]) -> list:  # type: ignore[type-arg]
    return [c for c in commands if isinstance(c, kind)]


def test_a_pause_starts_a_speculative_transcription_of_the_fragment_so_far() -> None:
    c = core()
    out = windows(c, 0, [0.02] * 10 + [0.9] * 20 + [0.02] * 3)
    [t] = of(ev.Transcribe, out)
    assert t.speculative and t.start == 10 * W - 3200 and t.end == 32 * W  # 64 ms into the pause


def test_a_question_is_granted_without_the_judge_and_released_after_the_gap() -> None:
    c = core()
    [t] = of(ev.Transcribe, windows(c, 0, [0.9] * 20 + [0.02] * 3))
    out = c.handle(ev.TranscriptReady(23 * W / 16000, t.job, "Is Marco there?"))
    assert not of(ev.Judge, out) and of(ev.Reply, out)
    [timer] = of(ev.StartTimer, out)
    assert timer.name == "release" and timer.at == pytest.approx(20 * W / 16000 + 0.2)
    assert c.decisions[-1]["by"] == "shortcut"


def test_the_caller_going_on_withdraws_the_text_and_cancels_the_judge_and_draft() -> None:
    c = core()
    [t] = of(ev.Transcribe, windows(c, 0, [0.9] * 20 + [0.02] * 3))
    out = c.handle(ev.TranscriptReady(23 * W / 16000, t.job, "The meeting moved to"))
    [judge], [reply] = of(ev.Judge, out), of(ev.Reply, out)
    out = windows(c, 23, [0.9])
    assert {x.job for x in of(ev.Cancel, out)} == {judge.job, reply.job}
    assert c.story.lines() == ()
    # A verdict that comes back anyway is for a story that no longer exists.
    assert c.handle(ev.VerdictReady(24 * W / 16000, judge.job, 0.99)) == []
    assert c.decisions == []


def test_a_stale_transcript_is_ignored() -> None:
    c = core()
    [t] = of(ev.Transcribe, windows(c, 0, [0.9] * 20 + [0.02] * 3))
    windows(c, 23, [0.9] * 5)  # the caller went on before the transcript came back
    assert c.handle(ev.TranscriptReady(28 * W / 16000, t.job, "Hello")) == []
    assert c.story.lines() == ()


def test_a_late_event_does_not_move_the_clock_back() -> None:
    c = core()
    c.handle(ev.TimerFired(5.0, "nothing"))
    c.handle(ev.PlayoutProgress(4.98, utterance=99, first=0, last=320))  # stamped by the other clock
    assert c.t == 5.0


def test_after_the_call_ended_events_change_nothing() -> None:
    c = core()
    c.handle(ev.CallerHungUp(1.0))
    assert c.ended == "caller hung up"
    assert windows(c, 40, [0.9] * 20 + [0.02] * 20) == []
