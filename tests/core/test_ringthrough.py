"""Ring-through in the core, driven by hand: triggers, the owner's answers, the fallback, the bridge."""

from __future__ import annotations

from typing import TypeVar

import pytest

from server.core import events as ev
from server.core.conversation import CallOptions, Conversation, ConversationOptions
from server.core.phrases import PHRASES
from server.core.ringthrough import RingOptions, asks_for_owner, says_urgent

W = 512
EN = PHRASES["en"]


def core(**ring: object) -> Conversation:
    options = RingOptions(**{"enabled": True, "caller": "Anna", **ring})  # type: ignore[arg-type]
    c = Conversation(ConversationOptions(call=CallOptions(greeting=""), ring=options))
    c.handle(ev.CallStarted(0.0))
    return c


def windows(c: Conversation, first: int, probs: list[float]) -> list[ev.Command]:
    out: list[ev.Command] = []
    for i, p in enumerate(probs, first):
        out += c.handle(ev.VadWindow((i + 1) * W / 16000, i * W, (i + 1) * W, p))
    return out


C = TypeVar("C", bound=ev.Command)


def of(kind: type[C], commands: list[ev.Command]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


def said(c: Conversation, commands: list[ev.Command]) -> list[str]:
    """The fixed lines the bot was asked to speak (their clauses joined)."""
    lines: dict[int, list[str]] = {}
    for s in of(ev.Synthesize, commands):
        lines.setdefault(s.utterance, []).append(s.text)
    return [" ".join(parts) for parts in lines.values()]


def caller_line(c: Conversation, first: int, text: str) -> list[ev.Command]:
    """The caller says `text` (speech from window `first` for 20 windows, then a pause)."""
    [t] = of(ev.Transcribe, windows(c, first, [0.9] * 20 + [0.02] * 3))
    out = c.handle(ev.TranscriptReady((first + 23) * W / 16000, t.job, text))
    return out + windows(c, first + 23, [0.02] * 20)  # the pause closes the fragment: the line is final


def test_pressing_0_rings_the_owner_at_once_and_tells_the_caller() -> None:
    c = core()
    out = c.handle(ev.Dtmf(1.0, "0"))
    [ring] = of(ev.RingOwner, out)
    assert ring.attempt == 1 and not ring.transfer
    assert ring.announcement.startswith("A call for you from Anna.") and "Press 1" in ring.announcement
    assert said(c, out) == [EN["ring_trying"]] and of(ev.Play, out)
    [timer] = of(ev.StartTimer, out)
    assert (timer.name, timer.at) == ("ring_timeout", 21.0)
    assert c.ring.holds_turns and c.ring.record == {"trigger": "keypad", "method": "bridge", "started_s": 1.0}


def test_without_an_owner_phone_a_0_is_only_a_digit() -> None:
    c = core(enabled=False)
    out = c.handle(ev.Dtmf(1.0, "0"))
    assert [x.kind for x in of(ev.Note, out)] == ["dtmf"] and len(out) == 1
    assert c.ring.report() is None


def test_a_caller_not_allowed_now_hears_so_once_and_the_call_goes_on() -> None:
    c = core(allowed=False, why_not="quiet hours")
    out = c.handle(ev.Dtmf(1.0, "0"))
    assert said(c, out) == [EN["ring_unavailable"]] and not of(ev.RingOwner, out)
    assert said(c, c.handle(ev.Dtmf(2.0, "0"))) == []
    assert c.ring.report() == {"trigger": "keypad", "started_s": 1.0, "outcome": "not allowed",
                               "why_not": "quiet hours"}
    judged = bool(of(ev.Judge, caller_line(c, 100, "So I wanted to say")))
    assert judged or of(ev.Reply, c.handle(ev.Dtmf(9, "5")))


def test_the_announcement_names_the_number_and_quotes_the_callers_last_words() -> None:
    c = core(caller="", caller_number="+39 333 1234567")
    caller_line(c, 0, "Hello, it's about the roof repair.")
    [ring] = of(ev.RingOwner, c.handle(ev.Dtmf(3.0, "0")))
    assert ring.announcement == ("A call for you from number 3 9 3, 3 3 1, 2 3 4, 5 6 7. "
                                 "They said: Hello, it's about the roof repair. " + EN["ring_ask"])


def test_accepted_the_two_are_bridged_and_standin_stops_listening_until_the_owner_hangs_up() -> None:
    c = core()
    c.handle(ev.Dtmf(1.0, "0"))
    c.handle(ev.OwnerRinging(1.2, 1))
    out = c.handle(ev.OwnerAnswered(4.0, 1))
    [decide] = of(ev.StartTimer, out)
    assert (decide.name, decide.at) == ("ring_decide", 19.0)
    out = c.handle(ev.OwnerDigit(7.0, 1, "1"))
    assert of(ev.BridgeOwner, out) == [ev.BridgeOwner(1)] and c.ring.bridged
    # Speech, silence and the call's length limit are not standin's business any more.
    assert windows(c, 300, [0.9] * 40 + [0.02] * 40) == []
    assert c.handle(ev.TimerFired(30.0, ev.Timer.SILENCE)) == []
    assert c.handle(ev.TimerFired(180.0, ev.Timer.MAX_DURATION)) == []
    assert c.handle(ev.TimerFired(21.0, ev.Timer.RING_TIMEOUT)) == []  # stale: the owner answered
    out = c.handle(ev.OwnerGone(200.0, 1, 200, "BYE"))
    assert of(ev.Hangup, out) == [ev.Hangup("owner hung up")] and c.ended == "owner hung up"
    assert c.ring.report() == {"trigger": "keypad", "method": "bridge", "started_s": 1.0, "rang_s": 1.2,
                               "answered_s": 4.0, "accepted_s": 7.0, "outcome": "accepted",
                               "owner_status": 200, "ended_s": 200.0, "bridged_s": 193.0}


def test_no_answer_in_time_drops_the_owner_tells_the_caller_and_turns_resume() -> None:
    c = core()
    c.handle(ev.Dtmf(1.0, "0"))
    c.handle(ev.OwnerRinging(1.1, 1))
    # While it rings the caller's words join the story, and the bot does not answer them.
    out = caller_line(c, 100, "Hello? Is anyone there")
    assert not of(ev.Judge, out) and not of(ev.Reply, out)
    assert c.handle(ev.TimerFired(15.0, ev.Timer.SILENCE)) == []
    out = c.handle(ev.TimerFired(21.0, ev.Timer.RING_TIMEOUT))
    assert of(ev.DropOwner, out) == [ev.DropOwner(1, "no answer")]
    assert said(c, out) == [EN["ring_no_answer"]]
    assert c.ring.report()["outcome"] == "no answer" and not c.ring.holds_turns  # type: ignore[index]
    assert of(ev.Judge, caller_line(c, 700, "Tell him the delivery is late")) or c.decisions


@pytest.mark.parametrize(("how", "outcome", "line"), [
    (ev.OwnerDigit(6.0, 1, "2"), "declined", "ring_declined"),
    (ev.OwnerGone(6.0, 1, 200, "hung up"), "declined", "ring_declined"),
    (ev.TimerFired(19.0, ev.Timer.RING_DECIDE), "not accepted", "ring_declined"),
])
def test_the_owner_not_taking_the_call_falls_back_to_a_message(how: ev.Event, outcome: str,
                                                               line: str) -> None:
    c = core()
    c.handle(ev.Dtmf(1.0, "0"))
    c.handle(ev.OwnerAnswered(4.0, 1))
    out = c.handle(how)
    assert said(c, out) == [EN[line]]
    assert bool(of(ev.DropOwner, out)) == (not isinstance(how, ev.OwnerGone))
    assert c.ring.report()["outcome"] == outcome  # type: ignore[index]
    assert c.ended is None


@pytest.mark.parametrize(("status", "outcome"), [(486, "busy"), (603, "declined"), (480, "no answer"),
                                                 (0, "failed"), (404, "failed")])
def test_a_call_to_the_owner_that_fails_says_why_in_the_record(status: int, outcome: str) -> None:
    c = core()
    c.handle(ev.Dtmf(1.0, "0"))
    out = c.handle(ev.OwnerGone(2.0, 1, status))
    assert not of(ev.DropOwner, out) and said(c, out)
    assert c.ring.report()["outcome"] == outcome  # type: ignore[index]


def test_the_caller_hanging_up_while_it_rings_drops_the_owners_call() -> None:
    c = core()
    c.handle(ev.Dtmf(1.0, "0"))
    out = c.handle(ev.CallerHungUp(5.0))
    assert of(ev.DropOwner, out) == [ev.DropOwner(1, "the caller's call ended")]
    assert c.ring.report()["outcome"] == "caller hung up"  # type: ignore[index]


def test_asking_for_the_owner_rings_through_when_the_profile_allows_it() -> None:
    c = core(owner_name="Marco Rossi")
    out = caller_line(c, 0, "Hi, is Marco there?")
    assert of(ev.RingOwner, out) and not of(ev.Reply, out)
    assert c.ring.report()["trigger"] == "request"  # type: ignore[index]
    off = core(on_request=False)
    assert not of(ev.RingOwner, caller_line(off, 0, "Could I speak to him?"))


def test_a_transfer_ends_standins_call_once_the_owner_has_the_caller() -> None:
    c = core(transfer=True)
    [ring] = of(ev.RingOwner, c.handle(ev.Dtmf(1.0, "0")))
    assert ring.transfer and ring.announcement == ""
    out = c.handle(ev.OwnerAnswered(3.0, 1))
    assert of(ev.Hangup, out) == [ev.Hangup("transferred")]
    assert c.ring.report()["outcome"] == "transferred"  # type: ignore[index]


@pytest.mark.parametrize(("text", "language", "asks"), [
    ("Can I speak to him, please?", "en", True),
    ("Could you put me through?", "en", True),
    ("Is Marco around?", "en", True),
    ("I'd like to leave a message for him.", "en", False),
    ("I spoke to him yesterday about the roof.", "en", False),
    ("Mi passa Marco, per favore?", "it", True),
    ("Posso parlare con lui?", "it", True),
    ("Volevo lasciare un messaggio.", "it", False),
])
def test_asking_for_the_owner(text: str, language: str, asks: bool) -> None:
    assert asks_for_owner(text, language, "Marco") is asks


@pytest.mark.parametrize(("text", "language", "urgent"), [
    ("It's urgent, the pipe burst.", "en", True),
    ("This is an emergency.", "en", True),
    ("It's not urgent at all.", "en", False),
    ("È urgente, mi richiami.", "it", True),
    ("Niente di urgente.", "it", False),
])
def test_saying_it_is_urgent(text: str, language: str, urgent: bool) -> None:
    assert says_urgent(text, language) is urgent


def test_a_0_keyed_while_a_number_is_dictated_is_a_digit_not_a_call_for_the_owner() -> None:
    c = core()
    caller_line(c, 0, "My number is three four seven, one two")
    out = c.handle(ev.Dtmf(3.0, "0"))
    assert not of(ev.RingOwner, out) and c.ring.report() is None


def test_the_owner_saying_yes_bridges_and_saying_no_declines() -> None:
    for words, bridged in (("Yes, put them through.", True), ("No, take a message.", False)):
        c = core()
        c.handle(ev.Dtmf(1.0, "0"))
        c.handle(ev.OwnerAnswered(4.0, 1))
        assert c.handle(ev.OwnerSaid(5.0, 1, "A call for you from Anna, they said yes it is urgent")) == []
        out = c.handle(ev.OwnerSaid(6.5, 1, words))
        assert bool(of(ev.BridgeOwner, out)) == bridged and c.ring.bridged == bridged
        assert c.ring.report()["said"] == words  # type: ignore[index]
        assert c.ring.report()["outcome"] == ("accepted" if bridged else "declined")  # type: ignore[index]
        assert bridged or said(c, out) == [EN["ring_declined"]]


def test_what_counts_as_the_owners_answer() -> None:
    from server.core.ringthrough import owner_answer

    assert [owner_answer(t) for t in ("Yes.", "yeah sure", "OK", "Go ahead", "I'll take it")] == [True] * 5
    assert [owner_answer(t) for t in ("No.", "Not now", "Take a message please")] == [False] * 3
    assert owner_answer("Who is it?") is None and owner_answer("") is None
    assert owner_answer("yes it is about the invoice from last week") is None  # too long: not an answer
    assert owner_answer("Sì, passamelo", "it") is True and owner_answer("No, adesso no", "it") is False
