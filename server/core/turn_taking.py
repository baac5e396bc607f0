"""Whose turn it is after the caller's words (rule 4), and what the bot prepares meanwhile.

`TurnTaking` holds the decision about the story version the caller last added to: the judge asked, the
reply drafted while it thinks, the timers that give the bot the turn or acknowledge the caller, and the
number being dictated that decides without the judge (`server/core/callback_number.py`). The rules it
applies are in `server/core/turns.py`. The conversation tells it where the caller stands (`Moment`) each
time it asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.core import events as ev
from server.core.desk import Desk, Job
from server.core.dictation import Reading, Status
from server.core.events import Timer
from server.core.hearing import Hearing
from server.core.mouth import Mouth
from server.core.record import Decided
from server.core.speech import Kind, State, Utterance
from server.core.story import Story
from server.core.turns import TurnOptions, asks_question, backstop_ms, gap_ms


@dataclass(frozen=True, slots=True)
class Moment:
    """Where the caller stands when the turn is asked about."""

    t: float  # the core's time
    quiet_since: float | None  # the caller has been silent since (None while voiced)
    epoch: int  # the caller's voice onsets so far
    turn_speech: int  # speech samples since the bot last spoke


@dataclass(slots=True)
class _Turn:
    """The decision about the caller's turn as it stands at one story version."""

    version: int
    quiet_since: float | None
    epoch: int = 0  # the caller's voice onsets when its timers were armed: a later onset makes them stale
    judge_job: int | None = None  # while its verdict is awaited
    judged_by: int | None = None  # the judge job asked about this version, kept after its verdict
    p_complete: float | None = None
    reason: str = ""  # the judge's tag for its verdict
    draft: Utterance | None = None
    granted: bool = False
    release_at: float = 0.0
    acked: bool = False
    dictating: bool = False  # held for a number being dictated (server/core/dictation.py)
    reading: Reading | None = None  # the number this turn reads back


class TurnTaking:
    def __init__(self, options: TurnOptions, desk: Desk, mouth: Mouth, story: Story, hearing: Hearing, *,
                 rate: int, ack: str, backchannel: str, go_ahead: str, reading: Callable[[bool], Reading],
                 read_back: Callable[[Reading], Utterance | None],
                 empty_reply: Callable[[Utterance], None]) -> None:
        self.options = options
        self._desk = desk
        self._mouth = mouth
        self._story = story
        self._hearing = hearing
        self._rate = rate
        self._ack = ack
        self._backchannel = backchannel
        self._go_ahead = go_ahead
        self._may_go_ahead = True  # not twice without an answer between
        self._reading = reading  # the number being dictated (final: no more is coming)
        self._read_back = read_back
        self._empty_reply = empty_reply  # a reply that came to nothing
        self._turn: _Turn | None = None
        self._last_backchannel = -1e9
        self.decided = -1  # the story version the latest decision was made for
        self.decisions: list[dict[str, Any]] = []  # summary.json's "decisions"

    @property
    def waiting(self) -> bool:
        """A turn is being decided and the bot does not have it yet."""
        return self._turn is not None and not self._turn.granted

    @property
    def idle(self) -> bool:
        """No turn is being decided or held: none since the call began, or the last was abandoned."""
        return self._turn is None

    def decide(self, m: Moment) -> None:
        """The caller's words at the story's version, now quiet: judge them, unless a number being dictated
        or a question decides first."""
        self.decided = self._story.version
        self._turn = turn = _Turn(self._story.version, m.quiet_since, epoch=m.epoch)
        if self._dictate(m, turn):
            return
        if self.options.question_shortcut and asks_question(self._story.last_caller_text()):
            self._grant(m, turn, "shortcut")
            return
        turn.judge_job = turn.judged_by = self._desk.new_job(Job("judge", version=turn.version))
        self._desk.emit(ev.Judge(turn.judge_job, self._story.lines()))
        if self.options.draft_while_judging:
            turn.draft = self._reply(turn)
        assert m.quiet_since is not None
        self._timer(Timer.ACK, m.quiet_since + self.options.ack_after_ms / 1000)

    def keyed(self, m: Moment, reading: Reading, at: float) -> None:
        """A key the caller pressed at `at` makes `reading` a number being dictated: it decides the turn."""
        self.abandon()
        self.decided = self._story.version
        self._turn = turn = _Turn(self._story.version, at, epoch=m.epoch)
        self._dictate(m, turn, reading)

    def verdict(self, m: Moment, e: ev.VerdictReady) -> None:
        job = self._desk.jobs.pop(e.job, None)
        turn = self._turn
        if job is None or turn is None or turn.version != job.version or turn.judge_job != e.job:
            return
        turn.judge_job = None
        turn.p_complete, turn.reason = e.p_complete, e.reason
        if e.p_complete >= self.options.threshold:
            self._grant(m, turn, "judge", e.p_complete)
        else:
            self._decision(m, turn, "WAIT", "judge", e.p_complete)
            self._wait(m, turn)

    def judge_failed(self, m: Moment, job: int) -> None:
        turn = self._turn
        if turn is not None and turn.judge_job == job:
            turn.judge_job = None
            self._wait(m, turn)

    def renew(self, m: Moment) -> None:
        """The caller's voice since the turn's timers were armed turned out to be no words: the turn for
        the same story goes on, its timers counted again from the new quiet."""
        turn = self._turn
        if (turn is None or turn.granted or turn.version != self._story.version or m.quiet_since is None
                or turn.epoch == m.epoch):
            return
        turn.epoch, turn.quiet_since = m.epoch, m.quiet_since
        if turn.judge_job is None:
            self._wait(m, turn)
        else:
            self._timer(Timer.ACK, turn.quiet_since + self.options.ack_after_ms / 1000)

    def abandon(self) -> None:
        """Whatever was being prepared for the caller's last words is no longer wanted."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        self._desk.cancel(turn.judge_job)
        if turn.draft is not None and not turn.draft.on_line and turn.draft.state is State.HELD:
            self._mouth.drop(turn.draft)

    def on_timer(self, m: Moment, name: Timer) -> None:
        turn = self._turn
        caller_quiet = m.quiet_since is not None
        # A timer belongs to the turn that armed it: the same story, and no caller voice since.
        current = turn is not None and turn.version == self._story.version and turn.epoch == m.epoch
        pending = current and turn is not None and not turn.granted and caller_quiet
        if name == Timer.RELEASE and turn is not None and turn.granted and caller_quiet:
            if turn.version == self._story.version and turn.draft is not None and not turn.draft.released:
                self._release_reply(turn)
        elif name == Timer.BACKSTOP and pending and turn is not None and turn.judge_job is None:
            if not (turn.dictating and self._dictate(m, turn, final=True)):
                self._grant(m, turn, "backstop", turn.p_complete)
        elif name == Timer.READBACK and current and caller_quiet and turn is not None and turn.granted:
            if turn.reading is not None and turn.draft is None:
                turn.draft = self._read_back(turn.reading)  # held back like a reply if need be
        elif name == Timer.ACK and pending and turn is not None and turn.judge_job is not None:
            if not turn.acked and not self._mouth.line:
                turn.acked = True
                self._mouth.say(Kind.ACK, self._ack)
        elif (name == Timer.BACKCHANNEL and pending and not self._mouth.line
              and m.t - self._last_backchannel >= self.options.backchannel_every_ms / 1000):
            self._last_backchannel = m.t
            self._mouth.say(Kind.BACKCHANNEL, self._backchannel)
        elif name == Timer.GO_AHEAD and pending and not self._mouth.line and self._may_go_ahead:
            self._may_go_ahead = False
            self._mouth.say(Kind.GO_AHEAD, self._go_ahead)

    # ------------------------------------------------------------------ inside a decision

    def _timer(self, name: Timer, at: float) -> None:
        self._desk.emit(ev.StartTimer(name, at))

    def _dictate(self, m: Moment, turn: _Turn, reading: Reading | None = None, final: bool = False) -> bool:
        """A number being dictated decides the turn without the judge: mid-number, WAIT with the longer
        backstop; a valid number that may go on, WAIT with the ordinary one; complete, read it back.
        Returns whether it decided."""
        r = reading or self._reading(final)
        if r.status is Status.NONE:
            return False
        if r.status is Status.DONE:
            self._decision(m, turn, "COMPLETE", "dictation")
            turn.granted, turn.reading = True, r
            quiet = turn.quiet_since if turn.quiet_since is not None else m.t
            at = quiet + self.options.min_gap_ms / 1000
            if m.t >= at - 1e-9:
                turn.draft = self._read_back(r)
            else:
                self._timer(Timer.READBACK, at)
            return True
        self._decision(m, turn, "WAIT", "dictation")
        turn.dictating = True
        # too short for a number: a sure WAIT (the long backstop) when a number was asked for or spoken
        # of; digits nobody announced may be a whole code ("nine nine one, four oh seven")
        turn.p_complete = 0.0 if r.status is Status.SHORT and r.cued else None
        self._wait(m, turn)
        return True

    def _wait(self, m: Moment, turn: _Turn) -> None:
        t = self.options
        quiet = turn.quiet_since if turn.quiet_since is not None else m.t
        self._timer(Timer.BACKSTOP, quiet + backstop_ms(t, turn.p_complete) / 1000)
        if t.backchannels and m.turn_speech >= round(t.backchannel_min_turn_ms * self._rate / 1000):
            self._timer(Timer.BACKCHANNEL, quiet + t.backchannel_after_ms / 1000)
        if t.go_ahead_after_ms and self._may_go_ahead and turn.reason.rsplit("+", 1)[-1] in t.go_ahead_for:
            self._timer(Timer.GO_AHEAD, quiet + t.go_ahead_after_ms / 1000)

    def _decision(self, m: Moment, turn: _Turn, verdict: str, by: str, p: float | None = None) -> None:
        record: dict[str, Any] = {"at_s": round(m.t, 3), "verdict": verdict, "by": by}
        if p is not None:
            record["p_complete"] = round(p, 3)
        self.decisions.append(record)
        self._desk.emit(Decided(turn.version, verdict, by, p))

    def _grant(self, m: Moment, turn: _Turn, by: str, p: float | None = None) -> None:
        self._decision(m, turn, "COMPLETE", by, p)
        turn.granted = True
        self._may_go_ahead = True
        self._desk.cancel(turn.judge_job)
        turn.judge_job = None
        if turn.draft is None or turn.draft.state is not State.HELD:
            turn.draft = self._reply(turn)
        quiet = turn.quiet_since if turn.quiet_since is not None else m.t
        turn.release_at = quiet + gap_ms(self.options, by, p) / 1000
        if m.t >= turn.release_at - 1e-9:
            self._release_reply(turn)
        else:
            self._timer(Timer.RELEASE, turn.release_at)

    def _reply(self, turn: _Turn) -> Utterance:
        """Ask for the bot's answer to the story as it stands, naming the jobs it comes from."""
        return self._mouth.reply(self._story.lines(), self._story.version, release=False,
                                 stt_job=self._hearing.stt_job(self._story.last_caller_fragment()),
                                 judge_job=turn.judged_by)

    def _release_reply(self, turn: _Turn) -> None:
        draft = turn.draft
        assert draft is not None
        if not draft.generating and not draft.text:
            self._empty_reply(draft)
        elif draft.state is State.HELD:
            self._mouth.release(draft)
