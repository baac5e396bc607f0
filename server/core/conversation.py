"""The conversation core: one call's rules as a sans-I/O state machine.

`Conversation.handle(event)` takes one timestamped event and returns the commands it leads to. It reads
no clock, starts no thread and touches no file, so a whole call runs in a test, synchronously, on
made-up time. The rules live in the modules it ties together: `segmenter` (speech, onsets, fragments),
`story` (the transcript and its version), `turns` (whose turn) and `speech` (utterances, barge-in).

A caller's turn, in the happy path:
  voice stops -> pause reaches `speculate_ms` -> Transcribe (speculative) -> text joins the story ->
  question? grant : Judge (+ draft the reply) -> COMPLETE: grant -> Play -> first audio closes the
  caller's fragment and makes the speculative text final.
If the caller goes on at any point, the story's version moves and everything computed for the old one
is cancelled. While the bot speaks, caller voice makes it stop at the end of its word; words in the
caller's fragment make the stop final (cut off), silence or a backchannel lets it resume.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.core import events as ev
from server.core.desk import Desk, Job
from server.core.dictation import DictationOptions, Reading, Status, denies, read_lines, spell
from server.core.mouth import Mouth
from server.core.phrases import PHRASES
from server.core.record import BargedIn, CutOff, Decided, Ended, ReplyStarted
from server.core.ringthrough import RingOptions, RingThrough
from server.core.screening import Screen, ScreeningOptions
from server.core.segmenter import (
    Fragment,
    FragmentClosed,
    FragmentDropped,
    Onset,
    Segmenter,
    SegmenterOptions,
    SegmentEvent,
    VoiceStarted,
    VoiceStopped,
)
from server.core.speech import Kind, SpeechOptions, State, Step, Utterance
from server.core.story import Story
from server.core.turns import (
    BACKCHANNELS,
    TurnOptions,
    asks_question,
    backstop_ms,
    gap_ms,
    is_backchannel,
)

_EN = PHRASES["en"]


@dataclass(frozen=True, slots=True)
class CallOptions:
    rate: int = 16000
    greeting: str = _EN["greeting"]
    goodbye: str = _EN["goodbye"]
    ack: str = _EN["ack"]
    backchannel: str = _EN["backchannel"]
    apology: str = _EN["apology"]
    repeat: str = _EN["repeat"]  # asked when the caller's words were not heard clearly (rule 11)
    readback: str = _EN["readback"]  # a dictated number read back (rule 11); {number} is the number
    caller_backchannels: frozenset[str] = BACKCHANNELS  # what counts as "mhm" from the caller
    silence_timeout_s: float = 10.0
    max_duration_s: float = 180.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.silence_timeout_s <= 0 or self.max_duration_s <= 0:
            raise ValueError("rate, silence_timeout_s and max_duration_s must be positive")


@dataclass(frozen=True, slots=True)
class ConversationOptions:
    call: CallOptions = field(default_factory=CallOptions)
    segmenter: SegmenterOptions = field(default_factory=SegmenterOptions)
    turns: TurnOptions = field(default_factory=TurnOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    dictation: DictationOptions = field(default_factory=DictationOptions)
    ring: RingOptions = field(default_factory=RingOptions)
    # off in the bare core; Config.conversation() gives [screening], on by default
    screening: ScreeningOptions = field(default_factory=lambda: ScreeningOptions(enabled=False))


@dataclass(slots=True)
class _Turn:
    """The decision about the caller's turn as it stands at one story version."""

    version: int
    quiet_since: float | None
    epoch: int = 0  # the caller's voice onsets when its timers were armed: a later onset makes them stale
    judge_job: int | None = None  # while its verdict is awaited
    judged_by: int | None = None  # the judge job asked about this version, kept after its verdict
    p_complete: float | None = None
    draft: Utterance | None = None
    granted: bool = False
    release_at: float = 0.0
    acked: bool = False
    dictating: bool = False  # held for a number being dictated (server/core/dictation.py)
    reading: Reading | None = None  # the number this turn reads back


@dataclass(slots=True)
class _ReadBack:
    utterance: Utterance
    number: str  # E.164 when it could be told
    denied: bool = False  # the caller's next line began with a "no"


@dataclass(slots=True)
class _Barge:
    utterance: Utterance
    fragment: int
    onset_t: float
    yielded: bool = False
    confirmed: bool = False
    record: dict[str, Any] = field(default_factory=dict)


class Conversation:
    def __init__(self, options: ConversationOptions | None = None) -> None:
        self.options = o = options or ConversationOptions()
        self.rate = o.call.rate
        self.seg = Segmenter(o.segmenter, self.rate)
        self.story = Story()
        self.t = 0.0
        self.ended: str | None = None
        self._desk = Desk()
        self._mouth = Mouth(self._desk, o.speech)
        self._fragments: dict[int, Fragment] = {}
        self._texts: dict[tuple[int, int], str] = {}  # (fragment, revision) -> transcript
        self._confidence: dict[tuple[int, int], float] = {}  # (fragment, revision) -> how sure STT was
        self._asked_to_repeat = False  # the bot's last answer to the caller asked them to say it again
        self._repeat_epoch: int | None = None  # the caller's voice onset a pending "say it again" follows
        self._asked: set[tuple[int, int]] = set()  # (fragment, revision) sent to STT, not failed
        self._in_flight: set[tuple[int, int]] = set()
        self._heard_by: dict[tuple[int, int], int] = {}  # (fragment, revision) -> the STT job of its text
        self._turn: _Turn | None = None
        self._barge: _Barge | None = None
        self._quiet_since: float | None = 0.0  # caller silent since (None while voiced)
        self._voice_epoch = 0  # caller voice onsets so far
        self._last_activity = 0.0
        self._caller_turn_speech = 0  # speech samples since the bot last spoke
        self._last_backchannel = -1e9
        self._goodbye_reason: str | None = None
        self._decided_version = -1  # the story version the latest turn decision was made for
        self._acknowledgements: set[int] = set()  # caller fragments that were only a backchannel
        self._keys: list[tuple[int, str]] = []  # keypad presses: (story lines before it, key)
        self._readbacks: list[_ReadBack] = []
        # what happened, for summary.json
        self.fragments: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.barge_ins: list[dict[str, Any]] = []
        self.spoken: list[Utterance] = []
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.CallStarted: self._on_call_started,
            ev.VadWindow: self._on_vad,
            ev.TranscriptReady: self._on_transcript,
            ev.VerdictReady: self._on_verdict,
            ev.ReplyText: self._on_reply_text,
            ev.ReplyDone: self._on_reply_done,
            ev.SpeechReady: self._on_speech,
            ev.SynthesisDone: self._on_synthesis_done,
            ev.JobFailed: self._on_failed,
            ev.PlayoutProgress: self._on_progress,
            ev.PlayoutStopped: self._on_stopped,
            ev.TimerFired: self._on_timer,
            ev.Dtmf: self._on_dtmf,
            ev.CallerHungUp: self._on_hangup,
        }
        # putting the caller through to the owner (server/core/ringthrough.py)
        self.ring = RingThrough(o.ring, self._desk, self._mouth, caller_lines=self.story_caller_lines,
                                hush=self._hush, end=self._end)
        self._handlers.update(self.ring.handlers())
        self.screen = Screen(o.screening)  # robocalls and silent calls (server/core/screening.py)

    # ------------------------------------------------------------------ entry point

    def handle(self, event: ev.Event) -> list[ev.Command]:
        self._desk.out = []
        # A live call has two clocks, the caller's frames and the line's pulls; an event stamped by one
        # may trail the other a frame or two. The core's time never runs back; each event keeps its own.
        self.t = max(self.t, event.t)
        if self.ended is None or isinstance(event, ev.PlayoutProgress | ev.PlayoutStopped):
            self._handlers[type(event)](event)
        return self._desk.out

    # ------------------------------------------------------------------ helpers

    def _secs(self, samples: int) -> float:
        return samples / self.rate

    def _timer(self, name: str, at: float) -> None:
        self._desk.emit(ev.StartTimer(name, at))

    # ------------------------------------------------------------------ call start and end

    def _on_call_started(self, e: ev.CallStarted) -> None:
        c = self.options.call
        self._last_activity = e.t
        self._timer("max_duration", e.t + c.max_duration_s)
        self._timer("silence", e.t + c.silence_timeout_s)
        if c.greeting.strip():
            self._mouth.say(Kind.GREETING, c.greeting)

    def _on_hangup(self, e: ev.CallerHungUp) -> None:
        self._end("caller hung up", hang_up=False)

    def _end(self, reason: str, hang_up: bool = True) -> None:
        reason = self.screen.ended(self.t, reason)
        self.ring.call_ending(self.t, reason)
        for u in list(self._mouth.line):
            if u.on_line:
                self._cut_off(u)
        for job_id in list(self._desk.jobs):
            self._desk.cancel(job_id)
        if self.seg.fragment is not None:
            self._on_segment(self.seg.close(round(self.t * self.rate)))
        self.ended = reason
        self._desk.emit(Ended(reason))
        if hang_up:
            self._desk.emit(ev.Hangup(reason))

    def _say_goodbye(self, reason: str, text: str | None = None) -> None:
        if any(u.kind is Kind.GOODBYE for u in self._mouth.line):
            return
        self._abandon_turn()
        for u in list(self._mouth.line):
            if u.on_line:
                self._cut_off(u)
            else:
                self._mouth.drop(u)
        self._desk.note("goodbye", reason=reason)
        self._goodbye_reason = reason
        goodbye = self._mouth.say(Kind.GOODBYE, text or self.options.call.goodbye, interruptible=False)
        if goodbye is None:
            self._end(reason)

    def _on_dtmf(self, e: ev.Dtmf) -> None:
        self._desk.note("dtmf", digit=e.digit)
        self._last_activity = e.t
        dictating = self._reading().status is not Status.NONE
        if not dictating and self.ring.on_dtmf(e):
            return  # a 0 while a number is being dictated is one of its digits, not a call for the owner
        self._dictation_key(e)

    def _hush(self) -> None:
        """Ring-through: the bot stops talking (what the caller heard stays in the story), drafts go."""
        self._abandon_turn()
        self._barge = None
        for u in list(self._mouth.line):
            if u.on_line:
                self._cut_off(u)
            else:
                self._mouth.drop(u)

    def story_caller_lines(self) -> list[str]:
        return [line.text for line in self.story.lines() if line.role == "caller" and line.text]

    # ------------------------------------------------------------------ caller audio

    def _on_vad(self, e: ev.VadWindow) -> None:
        if self.ring.bridged:
            return  # the caller talks to the owner now
        for s in self.seg.push(e.start, e.end, e.p, masked=e.echo, bot=self._mouth.audible()):
            self._on_segment(s)
        frag = self.seg.fragment
        t = self.options.turns
        if frag is not None and not self.seg.voiced:
            key = (frag.id, frag.revision)
            ready = self.seg.enough_speech(frag)
            if ready and key not in self._asked and self.seg.pause >= self.seg.samples(t.speculate_ms):
                self._transcribe(frag, speculative=True)
        if self.seg.voiced:
            self._last_activity = e.t
            if self._barge is not None:
                self._barge_tick()
        alive = bool(self.story_caller_lines() or self._keys) or self.ring.record is not None  # words or keys
        if self.screen.observe(e.t, self.seg.voiced, self._mouth.audible(), alive):
            self._say_goodbye(self.screen.ended(e.t, ""), self.screen.goodbye())

    def _on_segment(self, s: SegmentEvent) -> None:
        if isinstance(s, VoiceStarted):
            self._fragments[s.fragment.id] = s.fragment
            self._quiet_since = None
            self._voice_epoch += 1
            only_mhm = s.resumed and s.fragment.id in self._acknowledgements
            if s.resumed:
                self._caller_went_on(s.fragment)
            if ((not s.resumed or only_mhm) and self._mouth.audible() and self._mouth.front is not None
                    and self._mouth.front.interruptible):
                u = self._mouth.front
                self._barge = _Barge(u, s.fragment.id, self._secs(s.at))
        elif isinstance(s, Onset):
            if self._barge is not None:
                self._barge.confirmed = True
                self._barge_tick()
            elif self._mouth.line and not self._mouth.audible():
                # The caller started again before the bot's answer reached the line: hold it back.
                self._abandon_turn()
        elif isinstance(s, VoiceStopped):
            self._quiet_since = self._secs(s.at)
            self._caller_turn_speech = s.fragment.speech
            self._last_activity = self.t
            self._timer("silence", self.t + self.options.call.silence_timeout_s)
            b = self._barge
            if b is not None and not b.confirmed:
                self._resume(b, "no onset")
        elif isinstance(s, FragmentClosed):
            self._close_fragment(s.fragment)
        elif isinstance(s, FragmentDropped):
            self._desk.note("fragment_dropped", speech_ms=round(self.seg.ms(s.fragment.speech)))
            b = self._barge
            if b is not None and b.fragment == s.fragment.id:
                self._resume(b, "noise")
            elif self.story.version != self._decided_version and self.story.caller_has_last_word():
                self._decide()  # words came in while a noise was taken for more speech
            else:
                self._renew_turn()  # a noise, not the caller going on: the pause goes on

    def _transcribe(self, frag: Fragment, speculative: bool) -> None:
        self._asked.add((frag.id, frag.revision))
        self._in_flight.add((frag.id, frag.revision))
        end = round(self.t * self.rate) if speculative else frag.end
        job = self._desk.new_job(Job("stt", frag.id, frag.revision, speculative))
        self._desk.emit(ev.Transcribe(job, frag.start, end, speculative))

    def _close_fragment(self, frag: Fragment) -> None:
        self._fragments[frag.id] = frag
        key = (frag.id, frag.revision)
        record = {
            "start_s": round(self._secs(frag.voice_start), 3),
            "end_s": round(self._secs(frag.voice_end), 3),
            "text": self._texts.get(key, ""),
            "id": frag.id,
        }
        self.fragments.append(record)
        if key in self._texts:
            self._caller_text(frag, self._texts[key], final=True)
        elif key not in self._in_flight:
            self._transcribe(frag, speculative=False)
        # otherwise the speculative transcript in flight becomes final when it lands

    def _caller_went_on(self, frag: Fragment) -> None:
        """Voice came back inside the open fragment: what was said so far is not the whole line (nor
        only a "mhm" over the bot, when its start was taken for one)."""
        self._acknowledgements.discard(frag.id)
        self.story.withdraw_pending()
        self._abandon_turn()

    # ------------------------------------------------------------------ transcripts and turns

    def _on_transcript(self, e: ev.TranscriptReady) -> None:
        job = self._desk.jobs.pop(e.job, None)
        if job is None:
            return
        self._in_flight.discard((job.fragment, job.revision))
        frag = self._fragments.get(job.fragment)
        if frag is None or frag.revision != job.revision:
            return  # the caller went on after this audio
        text = e.text.strip()
        self._texts[(frag.id, frag.revision)] = text
        self._heard_by[(frag.id, frag.revision)] = e.job
        self._confidence[(frag.id, frag.revision)] = e.confidence
        if frag.closed:
            for record in self.fragments:
                if record["id"] == frag.id:
                    record["text"] = text
        self._caller_text(frag, text, final=frag.closed)

    def _caller_text(self, frag: Fragment, text: str, final: bool) -> None:
        if frag.id in self._acknowledgements:
            return  # a "mhm" while the bot spoke: it let the bot go on and is not part of the story
        b = self._barge
        if b is not None and b.fragment == frag.id:
            if not text or is_backchannel(text, self.options.call.caller_backchannels):
                self._acknowledgements.add(frag.id)
                self._resume(b, "backchannel" if text else "no words")
                return
            self._commit_barge(b)
        if final and text and self._unsure(frag):
            return
        if final:
            self.story.commit_caller(frag.id, text)
            self._asked_to_repeat = self._asked_to_repeat and not text
        else:
            self.story.set_pending(frag.id, text)
        if self.ring.on_caller_line(self.t, text):  # asked for the owner: no turn to decide
            self._decided_version = self.story.version
            return
        if text and self.story.version != self._decided_version:
            self._abandon_turn()
            self._decide()
        elif final and not text and not self._unheard(frag):
            self._renew_turn()  # the voice held no words: the pause goes on

    def _unsure(self, frag: Fragment) -> bool:
        """Rule 11: a line heard too unsurely to act on makes the bot ask to hear it again, once; its
        words stay out of the story. Returns whether it did."""
        confidence = self._confidence.get((frag.id, frag.revision), 1.0)
        if confidence >= self.options.turns.repeat_below:
            return False
        return self._ask_to_repeat("unsure", confidence=round(confidence, 3))

    def _unheard(self, frag: Fragment) -> bool:
        """Rule 11 again: the caller spoke at some length since the bot last did, and none of it came
        out as words (whisper returns nothing for speech it cannot make out). Without this the caller
        would wait for an answer that never comes."""
        if self.story.caller_has_last_word() or self._quiet_since is None:
            return False  # their earlier words stand: the pause goes on, the turn is judged on them
        if frag.speech < self.seg.samples(self.options.turns.repeat_min_speech_ms):
            return False  # a short noise
        return self._ask_to_repeat("no words", speech_ms=round(self.seg.ms(frag.speech)))

    def _ask_to_repeat(self, why: str, **note: Any) -> bool:
        """Ask the caller to say it again, unless the bot already did (never twice in a row) or has the
        line. Returns whether the line was set aside for that. The question waits until the pause is as
        long as the backstop, like any unfinished line: a caller who mumbled and goes on is not cut into.
        """
        if self._asked_to_repeat or self._mouth.line:
            return False
        self._desk.note(why.replace(" ", "_"), **note)
        self.story.withdraw_pending()
        self._abandon_turn()
        self._decided_version = self.story.version
        if self._quiet_since is not None:
            self._repeat_epoch = self._voice_epoch
            self._timer("repeat", self._quiet_since + self.options.turns.backstop_ms / 1000)
        return True

    def _on_repeat_timer(self) -> None:
        epoch, self._repeat_epoch = self._repeat_epoch, None
        if epoch != self._voice_epoch or self._quiet_since is None:
            return  # the caller spoke again: their next words are heard on their own
        if self._asked_to_repeat or self._mouth.line or self.story.version != self._decided_version:
            return
        self._asked_to_repeat = True
        self._mouth.say(Kind.REPEAT, self.options.call.repeat)

    def _decide(self) -> None:
        if self._quiet_since is None or self.ring.holds_turns:
            return  # speaking again: the next transcript decides, or the noise that was no words
        self._decided_version = self.story.version
        self._turn = turn = _Turn(self.story.version, self._quiet_since, epoch=self._voice_epoch)
        if self._dictate(turn):
            return
        if self.options.turns.question_shortcut and asks_question(self.story.last_caller_text()):
            self._grant(turn, "shortcut")
            return
        turn.judge_job = turn.judged_by = self._desk.new_job(Job("judge", version=turn.version))
        self._desk.emit(ev.Judge(turn.judge_job, self.story.lines()))
        if self.options.turns.draft_while_judging:
            turn.draft = self._reply(turn)
        self._timer("ack", self._quiet_since + self.options.turns.ack_after_ms / 1000)

    # ------------------------------------------------------------------ a number being dictated

    def _dictation_key(self, e: ev.Dtmf) -> None:
        """A keypad digit is part of the number being dictated; it may start, continue or end one."""
        committed = len(self.story.lines()) - (self.story.pending_fragment is not None)
        self._keys.append((committed, e.digit))
        if self._quiet_since is None:
            return  # the caller is speaking too: their words make the next decision, keys included
        reading = self._reading()
        if reading.status is not Status.NONE:
            self._abandon_turn()
            self._decided_version = self.story.version
            self._turn = turn = _Turn(self.story.version, e.t, epoch=self._voice_epoch)
            self._dictate(turn, reading)

    def _reading(self, final: bool = False) -> Reading:
        """The number the caller is dictating, if they are (server/core/dictation.py)."""
        lines = [(line.role, line.text) for line in self.story.lines()]
        last = self._last_readback()
        reading = read_lines(lines, self._keys, self.options.dictation, asked=last is not None, final=final)
        if last is not None:
            said = [text for _, text in itertools.takewhile(lambda x: x[0] == "caller", reversed(lines))]
            last.denied = bool(said) and denies(said[-1], self.options.dictation.language)
            if reading.number == last.number and not last.denied:
                return Reading(Status.NONE)  # said again after the read-back: that is a yes
        return reading

    def _last_readback(self) -> _ReadBack | None:
        """The read-back that was the bot's last line, if it was one."""
        said = [u for u in self.spoken if u.kind not in (Kind.ACK, Kind.BACKCHANNEL)]
        return next((r for r in self._readbacks if said and r.utterance is said[-1]), None)

    def _dictate(self, turn: _Turn, reading: Reading | None = None, final: bool = False) -> bool:
        """A number being dictated decides the turn without the judge: mid-number, WAIT with the longer
        backstop; a valid number that may go on, WAIT with the ordinary one; complete, read it back.
        Returns whether it decided."""
        r = reading or self._reading(final)
        if r.status is Status.NONE:
            return False
        if r.status is Status.DONE:
            self._decision(turn, "COMPLETE", "dictation")
            turn.granted, turn.reading = True, r
            quiet = turn.quiet_since if turn.quiet_since is not None else self.t
            at = quiet + self.options.turns.min_gap_ms / 1000
            if self.t >= at - 1e-9:
                self._read_back(turn)
            else:
                self._timer("readback", at)
            return True
        self._decision(turn, "WAIT", "dictation")
        turn.dictating = True
        turn.p_complete = 0.0 if r.status is Status.SHORT else None  # 0: a sure WAIT, the long backstop
        self._wait(turn)
        return True

    def _read_back(self, turn: _Turn) -> None:
        r = turn.reading
        assert r is not None
        text = self.options.call.readback.replace("{number}", spell(r, self.options.dictation.language))
        turn.draft = self._mouth.say(Kind.READBACK, text)  # held back like a reply if the caller goes on
        if turn.draft is not None:
            self._readbacks.append(_ReadBack(turn.draft, r.number))

    def _on_verdict(self, e: ev.VerdictReady) -> None:
        job = self._desk.jobs.pop(e.job, None)
        turn = self._turn
        if job is None or turn is None or turn.version != job.version or turn.judge_job != e.job:
            return
        turn.judge_job = None
        turn.p_complete = e.p_complete
        if e.p_complete >= self.options.turns.threshold:
            self._grant(turn, "judge", e.p_complete)
        else:
            self._decision(turn, "WAIT", "judge", e.p_complete)
            self._wait(turn)

    def _wait(self, turn: _Turn) -> None:
        t = self.options.turns
        quiet = turn.quiet_since if turn.quiet_since is not None else self.t
        self._timer("backstop", quiet + backstop_ms(t, turn.p_complete) / 1000)
        if t.backchannels and self._caller_turn_speech >= self.seg.samples(t.backchannel_min_turn_ms):
            self._timer("backchannel", quiet + t.backchannel_after_ms / 1000)

    def _decision(self, turn: _Turn, verdict: str, by: str, p: float | None = None) -> None:
        record: dict[str, Any] = {"at_s": round(self.t, 3), "verdict": verdict, "by": by}
        if p is not None:
            record["p_complete"] = round(p, 3)
        self.decisions.append(record)
        self._desk.emit(Decided(turn.version, verdict, by, p))

    def _grant(self, turn: _Turn, by: str, p: float | None = None) -> None:
        self._decision(turn, "COMPLETE", by, p)
        turn.granted = True
        self._desk.cancel(turn.judge_job)
        turn.judge_job = None
        if turn.draft is None or turn.draft.state is not State.HELD:
            turn.draft = self._reply(turn)
        quiet = turn.quiet_since if turn.quiet_since is not None else self.t
        turn.release_at = quiet + gap_ms(self.options.turns, by, p) / 1000
        if self.t >= turn.release_at - 1e-9:
            self._release_reply(turn)
        else:
            self._timer("release", turn.release_at)

    def _reply(self, turn: _Turn) -> Utterance:
        """Ask for the bot's answer to the story as it stands, naming the jobs it comes from."""
        fragment = self.story.last_caller_fragment()
        frag = self._fragments.get(fragment) if fragment is not None else None
        heard = self._heard_by.get((frag.id, frag.revision)) if frag is not None else None
        return self._mouth.reply(self.story.lines(), self.story.version, release=False, stt_job=heard,
                                 judge_job=turn.judged_by)

    def _release_reply(self, turn: _Turn) -> None:
        draft = turn.draft
        assert draft is not None
        if not draft.generating and not draft.text:
            self._empty_reply(draft)
        elif draft.state is State.HELD:
            self._mouth.release(draft)

    def _renew_turn(self) -> None:
        """The caller's voice since the turn's timers were armed turned out to be no words: the turn for
        the same story goes on, its timers counted again from the new quiet."""
        turn = self._turn
        if (turn is None or turn.granted or turn.version != self.story.version or self._quiet_since is None
                or turn.epoch == self._voice_epoch):
            return
        turn.epoch, turn.quiet_since = self._voice_epoch, self._quiet_since
        if turn.judge_job is None:
            self._wait(turn)
        else:
            self._timer("ack", turn.quiet_since + self.options.turns.ack_after_ms / 1000)

    def _abandon_turn(self) -> None:
        """Whatever was being prepared for the caller's last words is no longer wanted."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        self._desk.cancel(turn.judge_job)
        if turn.draft is not None and not turn.draft.on_line and turn.draft.state is State.HELD:
            self._mouth.drop(turn.draft)

    def _on_timer(self, e: ev.TimerFired) -> None:
        if self.ring.on_timer(e):
            return
        turn = self._turn
        caller_quiet = self._quiet_since is not None
        # A timer belongs to the turn that armed it: the same story, and no caller voice since.
        current = (turn is not None and turn.version == self.story.version
                   and turn.epoch == self._voice_epoch)
        pending = current and turn is not None and not turn.granted and caller_quiet
        if e.name == "release" and turn is not None and turn.granted and caller_quiet:
            if turn.version == self.story.version and turn.draft is not None and not turn.draft.released:
                self._release_reply(turn)
        elif e.name == "backstop" and pending and turn is not None and turn.judge_job is None:
            if not (turn.dictating and self._dictate(turn, final=True)):
                self._grant(turn, "backstop", turn.p_complete)
        elif e.name == "readback" and current and caller_quiet and turn is not None and turn.granted:
            if turn.reading is not None and turn.draft is None:
                self._read_back(turn)
        elif e.name == "ack" and pending and turn is not None and turn.judge_job is not None:
            if not turn.acked and not self._mouth.line:
                turn.acked = True
                self._mouth.say(Kind.ACK, self.options.call.ack)
        elif e.name == "backchannel" and pending and not self._mouth.line:
            if self.t - self._last_backchannel >= self.options.turns.backchannel_every_ms / 1000:
                self._last_backchannel = self.t
                self._mouth.say(Kind.BACKCHANNEL, self.options.call.backchannel)
        elif e.name == "repeat":
            self._on_repeat_timer()
        elif e.name == "silence":
            self._on_silence_timer()
        elif e.name == "max_duration":
            self._say_goodbye("max duration")

    def _on_silence_timer(self) -> None:
        limit = self.options.call.silence_timeout_s
        busy = self._mouth.line or self.seg.voiced or (self._turn is not None and not self._turn.granted)
        if not busy and self.t - self._last_activity >= limit - 1e-6:
            self._say_goodbye("silence")
        else:
            self._timer("silence", max(self.t, self._last_activity) + limit)

    # ------------------------------------------------------------------ the bot's utterances

    def _on_reply_text(self, e: ev.ReplyText) -> None:
        job = self._desk.jobs.get(e.job)
        if job is not None:
            self._mouth.reply_text(job, e.text)

    def _on_reply_done(self, e: ev.ReplyDone) -> None:
        job = self._desk.jobs.pop(e.job, None)
        if job is None:
            return
        u = self._mouth.reply_done(job, e.end_call)
        if not u.text and u.released:
            self._empty_reply(u)
        self._maybe_finished(u)

    def _empty_reply(self, u: Utterance) -> None:
        """The LLM had nothing to say; if it also wants to end the call, the goodbye says it."""
        self._mouth.drop(u)
        if u.end_call:
            self._say_goodbye("bot ended the call")

    def _on_speech(self, e: ev.SpeechReady) -> None:
        job = self._desk.jobs.get(e.job)
        if job is not None:
            self._mouth.speech(job, e.samples, e.words)

    def _on_synthesis_done(self, e: ev.SynthesisDone) -> None:
        job = self._desk.jobs.pop(e.job, None)
        if job is not None:
            self._maybe_finished(self._mouth.synthesis_done(e.job, job))

    def _on_failed(self, e: ev.JobFailed) -> None:
        job = self._desk.jobs.pop(e.job, None)
        if job is None:
            return
        self._desk.note("engine_failed", engine=job.kind, error=e.error)
        if job.kind == "stt":
            key = (job.fragment, job.revision)
            self._in_flight.discard(key)
            frag = self._fragments.get(job.fragment)
            if frag is None or frag.revision != job.revision:
                return
            if not job.speculative:
                self._texts[key] = ""
                self._apologise()
            elif frag.closed:
                self._transcribe(frag, speculative=False)  # one more try, for good
        elif job.kind == "judge":
            turn = self._turn
            if turn is not None and turn.judge_job == e.job:
                turn.judge_job = None
                self._wait(turn)
        else:
            u = self._mouth.utterances[job.utterance]
            if u.on_line:
                self._mouth.stop_generating(u)
                self._maybe_finished(u)
            else:
                self._mouth.drop(u)
            if u.kind is not Kind.APOLOGY:
                self._apologise()

    def _apologise(self) -> None:
        self._abandon_turn()
        self._mouth.say(Kind.APOLOGY, self.options.call.apology)

    # ------------------------------------------------------------------ playout and the word clock

    def _on_progress(self, e: ev.PlayoutProgress) -> None:
        u = self._mouth.utterances.get(e.utterance)
        if u is None or u.state in (State.DONE, State.CUT_OFF, State.CANCELLED):
            return
        if u.state is State.HELD:
            u.step(Step.START)
            self.spoken.append(u)
            if u.jobs is not None:
                self._desk.emit(ReplyStarted(u.id, u.jobs))
            self._caller_turn_speech = 0
            if self.seg.fragment is not None and not self.seg.voiced:
                # The bot has the floor: the caller's pause ends their fragment here.
                self._on_segment(self.seg.close(round(e.t * self.rate)))
        u.on_progress(e, self.rate)
        self._last_activity = self.t
        self._maybe_finished(u)

    def _maybe_finished(self, u: Utterance) -> None:
        if u.state is not State.PLAYING or not u.complete or u.played < u.samples:
            return
        self._mouth.done(u)
        if self._barge is not None and self._barge.utterance is u:
            self._barge = None  # it ended on its own before the caller's words counted
        if u.kind not in (Kind.ACK, Kind.BACKCHANNEL):
            self.story.add_bot(" ".join(w.text for w in u.words), cut_off=False)
        self._timer("silence", self.t + self.options.call.silence_timeout_s)
        if u.kind is Kind.GOODBYE or u.end_call:
            self._end(self._goodbye_reason or ("bot ended the call" if u.end_call else "bot said goodbye"))

    def _barge_tick(self) -> None:
        b = self._barge
        assert b is not None
        s = self.options.speech
        u = b.utterance
        if not b.yielded and self.seg.run_speech >= self.seg.samples(s.yield_after_ms):
            b.yielded = True
            at = u.stop_point(s, self.rate)
            u.stop_at = at
            u.step(Step.YIELD)
            self._desk.emit(ev.Stop(u.id, at, self.seg.samples(s.fade_ms)))
            b.record = {"onset_s": round(b.onset_t, 3), "utterance": u.kind.value}
            self._desk.emit(BargedIn(u.id, b.fragment))
            self.barge_ins.append(b.record)
        if b.confirmed and self.seg.run_speech >= self.seg.samples(s.backchannel_max_ms):
            self._commit_barge(b)

    def _on_stopped(self, e: ev.PlayoutStopped) -> None:
        u = self._mouth.utterances.get(e.utterance)
        if u is None:
            return
        u.stop_at = e.at
        b = self._barge
        if b is not None and b.utterance is u:
            b.record.update(fade_start_s=round(e.fade_start, 3), silent_s=round(e.silent, 3))

    def _resume(self, b: _Barge, why: str) -> None:
        self._barge = None
        u = b.utterance
        if not b.yielded or u.state is not State.PAUSED:
            return  # never stopped, or cut off meanwhile (a goodbye, the owner's call)
        at = u.resume_point()
        u.rewind(at)
        b.record["resumed"] = why
        self._desk.note("resume", why=why, at=at)
        self._desk.emit(ev.Resume(u.id, at))
        self._maybe_finished(u)

    def _commit_barge(self, b: _Barge) -> None:
        self._barge = None
        b.record["resumed"] = False
        for u in list(self._mouth.line):
            if u is b.utterance:
                self._cut_off(u)
            else:
                self._mouth.drop(u)
        self._abandon_turn()

    def _cut_off(self, u: Utterance) -> None:
        until = u.stop_at if u.stop_at is not None else u.played
        heard = u.heard(until)
        self._mouth.drop(u)
        u.step(Step.CUT)
        if u.kind not in (Kind.ACK, Kind.BACKCHANNEL):
            self.story.add_bot(" ".join(heard), cut_off=True)
        self._desk.emit(CutOff(u.id, len(heard), len(u.words)))

    # ------------------------------------------------------------------ report

    def report(self) -> dict[str, Any]:
        """What happened in the call, for summary.json (times in seconds on the call's timeline)."""
        return {
            "caller_fragments": [{k: v for k, v in f.items() if k != "id"} for f in self.fragments],
            "decisions": self.decisions,
            "bot_turns": [u.report() for u in self.spoken],
            "barge_ins": self.barge_ins,
            "story": self.story.render(),
            "story_lines": [{"role": line.role, "text": line.text} for line in self.story.lines()],
            "ended": self.ended,
            "dictated_number": self._dictated_number(),
            "screening": self.screen.report(),
        }

    def _dictated_number(self) -> str | None:
        """The last number read back to the caller, unless they said no to it (E.164 when known)."""
        heard = [r for r in self._readbacks if r.utterance.state not in (State.HELD, State.CANCELLED)]
        return heard[-1].number if heard and not heard[-1].denied else None
