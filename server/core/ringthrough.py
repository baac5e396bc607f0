"""Putting a caller through to the owner ("ring-through"): the core's side, sans I/O like the rest.

Rules:
1. A trigger starts an attempt: the caller pressing `digit` (0) when `keypad` is on, or, when
   `on_request` is on, a final caller line that asks for the owner ("can I speak to him", "mi passa
   Marco"); when `on_urgent` is on, a line that says the call is urgent. Phrase rules, not the reply model:
   they behave the same on every engine, and a trigger only ever rings a phone the owner named.
2. One attempt per call. A trigger while ring-through is configured but not allowed now (quiet hours, do
   not disturb, the caller's profile) gets `ring_unavailable`, once, and the call goes on as usual.
3. An attempt hushes the bot (the line it is saying is cut where the caller stopped hearing it), says
   `ring_trying` and rings the owner at once (`RingOwner`, in the same event): the phone rings while the
   caller hears the bot. Turns are held while it rings: the caller's words still join the story, but the
   bot does not answer them.
4. No answer within `ring_timeout_s` (or busy, refused, failed): `DropOwner`, then `ring_no_answer` to the
   caller, and the call goes on to take the message. The owner declining (a key other than
   `accept_digit`, hanging up, or not choosing within `decide_timeout_s` of answering): `ring_declined`.
5. The owner pressing `accept_digit` (1) after the announcement, or saying a short yes ("yes", "put them
   through", "sì"; `OwnerSaid`; a short no declines): `BridgeOwner`. From then on the bot says nothing
   and listens for no turn (no VAD, no transcription, no silence or duration limit); the runtime keeps
   recording. The owner hanging up ends the call; so does the caller.
6. `transfer` (REFER) hands the caller over blindly: the attempt ends when the transfer is reported
   (the call ends "transferred") or fails (rule 4).
Every step is recorded with its time on the call's timeline (`report()`: summary.json's "ring_through").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.core import events as ev
from server.core.desk import Desk
from server.core.mouth import Mouth
from server.core.phrases import phrases_for
from server.core.speech import Kind

_ASKS_FOR_OWNER = {
    "en": (r"\b(put|patch|connect|transfer|get) me (through|to|over)\b",
           r"\b(speak|talk) (to|with) (him|her|them|{owner})\b",
           r"\b(is|are) (he|she|they|{owner}) (there|around|in|available)\b",
           r"\b(can|could|may) i (speak|talk) (to|with)\b"),
    "it": (r"\bpassa(mi|rmi|rmelo|rmela)\b", r"\bmi (passa|passi|metta in contatto)\b",
           r"\bparlar(e|gli|le|ci) (con|a)\b", r"\bpotrei parlar", r"\bposso parlar",
           r"\bc'è (lui|lei|{owner})\b"),
}
_URGENT = {  # (says it is urgent, says it is not)
    "en": (r"\b(urgent|urgently|emergency)\b",
           r"\bnot (very |that |really |at all )?urgent\b|\bno emergency\b"),
    "it": (r"\b(urgente|urgenza|emergenza)\b",
           r"\bnon (è|e) (per niente |molto )?urgente\b|\bniente di urgente\b"),
}


def asks_for_owner(text: str, language: str = "en", owner_name: str = "") -> bool:
    """A caller's line that asks to be put through to the owner (a phrase rule; see rule 1)."""
    owner = re.escape(owner_name.split(maxsplit=1)[0].lower()) if owner_name.strip() else "the owner"
    lowered = " ".join(text.lower().replace("’", "'").split())
    return any(re.search(p.replace("{owner}", owner), lowered)
               for p in _ASKS_FOR_OWNER.get(_base(language), _ASKS_FOR_OWNER["en"]))


def says_urgent(text: str, language: str = "en") -> bool:
    """A caller's line that says the call is urgent, and does not say it is not."""
    yes, no = _URGENT.get(_base(language), _URGENT["en"])
    lowered = " ".join(text.lower().replace("’", "'").split())
    return bool(re.search(yes, lowered)) and not re.search(no, lowered)


_OWNER_ANSWER = {  # (accepts, declines), said alone or nearly: a long line is not an answer
    "en": (r"^(yes|yeah|yep|sure|ok|okay|go ahead|put (them|him|her) through|i'll take it|connect)\b",
           r"^(no|nope|not now|take a message|i can't|i cannot)\b"),
    "it": (r"^(sì|si|certo|va bene|d'accordo|passamel[oa]|passa(lo|la|mi))\b",
           r"^(no|adesso no|non posso|prendi (tu )?il messaggio)\b"),
}


def owner_answer(text: str, language: str = "en", max_words: int = 5) -> bool | None:
    """The owner's spoken answer to the announcement: True (take the call), False (don't), None (neither,
    or too long to be an answer: an echo of the announcement, a question)."""
    words = re.sub(r"[^\w' ]+", " ", text.lower().replace("’", "'")).split()
    if not words or len(words) > max_words:
        return None
    line = " ".join(words)
    yes, no = _OWNER_ANSWER.get(_base(language), _OWNER_ANSWER["en"])
    if re.search(no, line):
        return False
    return True if re.search(yes, line) else None


def _base(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-")[0]


@dataclass(frozen=True, slots=True)
class RingOptions:
    """Whether and how this call may be put through (server/ringthrough.py makes it from `[owner]`)."""

    enabled: bool = False  # an owner's phone is configured (and standin can place calls)
    allowed: bool = True  # ... and this caller may be put through now
    why_not: str = ""  # when not allowed: why (quiet hours, do not disturb, profile), for the record
    keypad: bool = True  # the caller pressing `digit` asks to be put through
    digit: str = "0"
    on_request: bool = True  # a line asking for the owner does
    on_urgent: bool = False  # a line saying it is urgent does
    accept_digit: str = "1"  # the owner's key that takes the call
    ring_timeout_s: float = 20.0
    decide_timeout_s: float = 15.0
    transfer: bool = False  # blind transfer (REFER) instead of ringing, announcing and bridging
    caller: str = ""  # who is calling, as the owner is told: a name, or the number
    caller_number: str = ""
    language: str = "en"  # the caller's (the lines the caller hears)
    owner_language: str = "en"  # the owner's (the announcement)
    owner_name: str = ""  # lets "is Marco there?" ask for Marco
    said_max_words: int = 40  # the caller's last words in the announcement, at most this many

    def __post_init__(self) -> None:
        if self.ring_timeout_s <= 0 or self.decide_timeout_s <= 0:
            raise ValueError("ring_timeout_s and decide_timeout_s must be positive")


_HOLDING = ("dialing", "ringing", "asking")
_OUTCOME_PHRASE = {"declined": "ring_declined", "not accepted": "ring_declined"}


class RingThrough:
    """One call's ring-through. The conversation asks it first about DTMF, final caller lines, timers and
    the call's end, and hands it the Owner* events; it speaks through the conversation's mouth."""

    def __init__(self, options: RingOptions, desk: Desk, mouth: Mouth, *,
                 caller_lines: Callable[[], list[str]], hush: Callable[[], None],
                 end: Callable[[str], None]) -> None:
        self.options = options
        self._desk = desk
        self._mouth = mouth
        self._caller_lines = caller_lines
        self._hush = hush
        self._end = end
        self.phase = "idle"  # idle | dialing | ringing | asking | bridged | transferred | over
        self.record: dict[str, Any] | None = None
        self._attempt = 0
        self._refused = False  # ring_unavailable said

    # ------------------------------------------------------------------ what the conversation asks

    @property
    def holds_turns(self) -> bool:
        """An attempt is under way: the caller's words join the story, the bot does not answer them."""
        return self.phase in _HOLDING

    @property
    def bridged(self) -> bool:
        """The caller and the owner are talking: standin listens for nothing."""
        return self.phase == "bridged"

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {ev.OwnerRinging: self._on_ringing, ev.OwnerAnswered: self._on_answered,
                ev.OwnerDigit: self._on_digit, ev.OwnerSaid: self._on_said, ev.OwnerGone: self._on_gone}

    def on_dtmf(self, e: ev.Dtmf) -> bool:
        """Whether the digit was ring-through's (then it does nothing else)."""
        if self.phase in (*_HOLDING, "bridged"):
            return True  # the caller's keys while ringing or talking to the owner are theirs alone
        o = self.options
        if o.enabled and o.keypad and e.digit == o.digit:
            return self._trigger(e.t, "keypad")
        return False

    def on_caller_line(self, t: float, text: str) -> bool:
        """A final caller line: whether it started an attempt (then no turn is decided for it)."""
        o = self.options
        if not o.enabled or self.phase != "idle" or not text:
            return False
        if o.on_request and asks_for_owner(text, o.language, o.owner_name):
            return self._trigger(t, "request")
        if o.on_urgent and says_urgent(text, o.language):
            return self._trigger(t, "urgent")
        return False

    def on_timer(self, e: ev.TimerFired) -> bool:
        """Whether the timer was ring-through's business (then nothing else acts on it)."""
        o = self.options
        if e.name == ev.Timer.RING_TIMEOUT:
            if self.phase in ("dialing", "ringing"):
                self._give_up(e.t, "no answer")
            return True
        if e.name == ev.Timer.RING_DECIDE:
            if self.phase == "asking":
                self._give_up(e.t, "not accepted")
            return True
        if self.bridged and e.name in (ev.Timer.SILENCE, ev.Timer.MAX_DURATION):
            return True  # a bridged call lasts as long as the two of them talk
        if self.holds_turns and e.name == ev.Timer.SILENCE:
            return True  # the caller waits for the owner; the fallback line re-arms it
        if self.holds_turns and e.name == ev.Timer.MAX_DURATION:
            self._desk.emit(ev.StartTimer(ev.Timer.MAX_DURATION, e.t + o.ring_timeout_s + o.decide_timeout_s))
            return True
        return False

    def call_ending(self, t: float, reason: str) -> None:
        """The call is ending (either side, or the bot): an attempt under way stops, the record closes."""
        rec = self.record
        if rec is None or "ended_s" in rec:
            return
        rec["ended_s"] = round(t, 3)
        if self.holds_turns:
            self._desk.emit(ev.DropOwner(self._attempt, "the caller's call ended"))
            rec["outcome"] = "caller hung up" if reason == "caller hung up" else "call ended"
        elif self.bridged and "outcome" in rec:
            rec["bridged_s"] = round(t - rec.get("accepted_s", t), 3)
        self.phase = "over"

    def report(self) -> dict[str, Any] | None:
        return None if self.record is None else dict(self.record)

    # ------------------------------------------------------------------ the attempt

    def _trigger(self, t: float, why: str) -> bool:
        o = self.options
        if self.phase != "idle":
            return False
        if not o.allowed:
            if not self._refused:
                self._refused = True
                self.record = {"trigger": why, "started_s": round(t, 3), "outcome": "not allowed",
                               "why_not": o.why_not}
                self._desk.note("ring_refused", trigger=why, why=o.why_not)
                self._hush()
                self._say("ring_unavailable")
            return True
        self._attempt += 1
        self.phase = "dialing"
        self.record = {"trigger": why, "method": "transfer" if o.transfer else "bridge",
                       "started_s": round(t, 3)}
        self._desk.note("ring_through", attempt=self._attempt, trigger=why)
        self._hush()
        self._desk.emit(ev.RingOwner(self._attempt, "" if o.transfer else self.announcement(),
                                     transfer=o.transfer))
        self._say("ring_trying")
        self._desk.emit(ev.StartTimer(ev.Timer.RING_TIMEOUT, t + o.ring_timeout_s))
        return True

    def announcement(self) -> str:
        """What the owner hears on picking up: who is calling, their last words, and the keys."""
        o = self.options
        p = phrases_for(o.owner_language)
        if o.caller:
            caller = o.caller
        elif o.caller_number:
            caller = p["ring_number"].format(number=_spoken_number(o.caller_number))
        else:
            caller = p["ring_unknown"]
        parts = [p["ring_announce"].format(caller=caller)]
        words = " ".join(self._caller_lines()[-2:]).split()
        if words:
            said = " ".join(words[-o.said_max_words:])
            parts.append(p["ring_said"].format(said=said if said[-1] in ".?!" else said + "."))
        parts.append(p["ring_ask"])
        return " ".join(parts)

    def _current(self, attempt: int) -> bool:
        return self.record is not None and attempt == self._attempt

    def _on_ringing(self, e: ev.OwnerRinging) -> None:
        if self._current(e.attempt) and self.phase == "dialing":
            self.phase = "ringing"
            self._stamp("rang_s", e.t)

    def _on_answered(self, e: ev.OwnerAnswered) -> None:
        if not self._current(e.attempt) or self.phase not in ("dialing", "ringing"):
            return
        self._stamp("answered_s", e.t)
        if self.options.transfer:
            self.phase = "transferred"
            self._outcome("transferred")
            self._end("transferred")
            return
        self.phase = "asking"
        self._desk.emit(ev.StartTimer(ev.Timer.RING_DECIDE, e.t + self.options.decide_timeout_s))

    def _on_digit(self, e: ev.OwnerDigit) -> None:
        if not self._current(e.attempt) or self.phase != "asking":
            return
        self._answer(e.t, e.attempt, e.digit == self.options.accept_digit)

    def _on_said(self, e: ev.OwnerSaid) -> None:
        if not self._current(e.attempt) or self.phase != "asking":
            return
        answer = owner_answer(e.text, self.options.owner_language)
        if answer is not None:
            assert self.record is not None
            self.record["said"] = e.text[:80]  # the record shows the answer was spoken, and how
            self._answer(e.t, e.attempt, answer)

    def _answer(self, t: float, attempt: int, accepted: bool) -> None:
        if accepted:
            self.phase = "bridged"
            self._stamp("accepted_s", t)
            self._outcome("accepted")
            self._hush()
            self._desk.emit(ev.BridgeOwner(attempt))
        else:
            self._give_up(t, "declined")

    def _on_gone(self, e: ev.OwnerGone) -> None:
        if not self._current(e.attempt):
            return
        assert self.record is not None
        if e.status:
            self.record.setdefault("owner_status", e.status)
        if self.bridged:
            self._stamp("ended_s", e.t)
            self.record["bridged_s"] = round(e.t - self.record.get("accepted_s", e.t), 3)
            self.phase = "over"
            self._end("owner hung up")
        elif self.holds_turns:
            self._give_up(e.t, _outcome_of(self.phase, e.status), drop=False)

    def _give_up(self, t: float, outcome: str, drop: bool = True) -> None:
        """The attempt failed: the owner's call goes, the caller is told, the message is taken."""
        if drop:
            self._desk.emit(ev.DropOwner(self._attempt, outcome))
        self.phase = "over"
        self._stamp("ended_s", t)
        self._outcome(outcome)
        self._say(_OUTCOME_PHRASE.get(outcome, "ring_no_answer"))

    def _stamp(self, key: str, t: float) -> None:
        assert self.record is not None
        self.record.setdefault(key, round(t, 3))

    def _outcome(self, outcome: str) -> None:
        assert self.record is not None
        self.record["outcome"] = outcome
        self._desk.note("ring_outcome", attempt=self._attempt, outcome=outcome)

    def _say(self, key: str) -> None:
        self._mouth.say(Kind.RING, phrases_for(self.options.language)[key])


def _outcome_of(phase: str, status: int) -> str:
    """Why the owner's call ended before they took the caller, from how far it got and its SIP status."""
    if phase == "asking":
        return "declined"  # answered, then hung up without taking the call
    if status in (486, 600):
        return "busy"
    if status == 603:
        return "declined"
    if status in (408, 480, 487):
        return "no answer"
    return "failed"  # 0: it could not be placed; anything else: refused


def _spoken_number(number: str) -> str:
    """A number as TTS should read it: its digits one by one, in groups of three."""
    digits = [c for c in number if c.isdigit()]
    return ", ".join(" ".join(digits[i:i + 3]) for i in range(0, len(digits), 3))
