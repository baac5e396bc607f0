"""Barge-in (rules 6 and 7): the caller's voice over the bot, from its first voiced window until the bot
stops for good or carries on.

The conversation tells `BargeIn` what the caller's voice does; it stops and resumes the bot's audio, keeps
the record of each barge-in for summary.json, and says which utterance the caller's words cut off. Cutting
it off (the story, the queue) is the conversation's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.core import events as ev
from server.core.desk import Desk
from server.core.record import BargedIn
from server.core.speech import SpeechOptions, State, Step, Utterance


@dataclass(slots=True)
class _Barge:
    utterance: Utterance
    fragment: int
    onset_t: float
    yielded: bool = False
    confirmed: bool = False  # the voice became an onset
    record: dict[str, Any] = field(default_factory=dict)


class BargeIn:
    def __init__(self, desk: Desk, options: SpeechOptions, rate: int) -> None:
        self._desk = desk
        self.options = options
        self.rate = rate
        self._yield_after = self._samples(options.yield_after_ms)
        self._backchannel_max = self._samples(options.backchannel_max_ms)
        self._current: _Barge | None = None
        self.records: list[dict[str, Any]] = []  # summary.json's "barge_ins"

    def _samples(self, ms: float) -> int:
        return round(ms * self.rate / 1000)

    @property
    def active(self) -> bool:
        return self._current is not None

    @property
    def unconfirmed(self) -> bool:
        """A barge-in is under way whose voice never became an onset."""
        return self._current is not None and not self._current.confirmed

    def of_fragment(self, fragment: int) -> bool:
        return self._current is not None and self._current.fragment == fragment

    def begin(self, u: Utterance, fragment: int, onset_t: float) -> None:
        self._current = _Barge(u, fragment, onset_t)

    def forget(self, u: Utterance | None = None) -> None:
        """The barge-in (over `u`, when given) is no longer one: `u` ended on its own, or the bot hushed."""
        if u is None or (self._current is not None and self._current.utterance is u):
            self._current = None

    def voiced(self, run_speech: int, onset: bool = False) -> Utterance | None:
        """The caller's voice goes on, `run_speech` samples of speech so far (`onset`: it just became one).
        Once it has lasted `yield_after_ms` the bot stops at the end of its word. Returns the utterance the
        caller's words cut off when they outlast a backchannel (the barge-in is then over)."""
        b = self._current
        assert b is not None
        b.confirmed = b.confirmed or onset
        u = b.utterance
        if not b.yielded and run_speech >= self._yield_after:
            b.yielded = True
            at = u.stop_point(self.options, self.rate)
            u.stop_at = at
            u.step(Step.YIELD)
            self._desk.emit(ev.Stop(u.id, at, self._samples(self.options.fade_ms), u.ends_after(at),
                                    self._samples(self.options.finish_word_max_ms
                                                  + self.options.finish_word_grace_ms)))
            b.record = {"onset_s": round(b.onset_t, 3), "utterance": u.kind.value}
            self._desk.emit(BargedIn(u.id, b.fragment))
            self.records.append(b.record)
        if b.confirmed and run_speech >= self._backchannel_max:
            return self.commit()
        return None

    def commit(self) -> Utterance:
        """The caller's words make the stop final: returns the utterance they cut off."""
        b = self._current
        assert b is not None
        self._current = None
        b.record["resumed"] = False
        return b.utterance

    def resume(self, why: str) -> Utterance | None:
        """The voice was nothing, or only a backchannel: the bot goes on from its next unspoken word.
        Returns the utterance that resumed, if it had stopped and is still paused."""
        b = self._current
        assert b is not None
        self._current = None
        u = b.utterance
        if not b.yielded or u.state is not State.PAUSED:
            return None  # never stopped, or cut off meanwhile (a goodbye, the owner's call)
        at = u.resume_point()
        u.rewind(at)
        b.record["resumed"] = why
        self._desk.note("resume", why=why, at=at)
        self._desk.emit(ev.Resume(u.id, at))
        return u

    def stopped(self, u: Utterance, e: ev.PlayoutStopped) -> None:
        b = self._current
        if b is not None and b.utterance is u:
            b.record.update(fade_start_s=round(e.fade_start, 3), silent_s=round(e.silent, 3))
