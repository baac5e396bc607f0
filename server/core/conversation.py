"""The conversation core: one call's rules as a sans-I/O state machine.

`Conversation.handle(event)` takes one timestamped event and returns the commands it leads to. It reads
no clock, starts no thread and touches no file, so a whole call runs in a test, synchronously, on
made-up time. It is the one place events are routed; the rules live in the modules it ties together:
`segmenter` (speech, onsets, fragments), `hearing` (their transcripts), `story` (the transcript and its
version), `turn_taking` and `turns` (whose turn), `speech` and `mouth` (utterances), `barge` (the caller
over the bot), `repeat` (asking to hear it again), `callback_number` (a number being dictated),
`ringthrough` and `screening`.

A caller's turn, in the happy path:
  voice stops -> pause reaches `speculate_ms` -> Transcribe (speculative) -> text joins the story ->
  question? grant : Judge (+ draft the reply) -> COMPLETE: grant -> Play -> first audio closes the
  caller's fragment and makes the speculative text final.
If the caller goes on at any point, the story's version moves and everything computed for the old one
is cancelled. While the bot speaks, caller voice makes it stop at the end of its word; words in the
caller's fragment make the stop final (cut off), silence or a backchannel lets it resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.core import events as ev
from server.core.barge import BargeIn
from server.core.callback_number import CallbackNumber
from server.core.desk import Desk
from server.core.dictation import DictationOptions, Reading, Status
from server.core.events import Timer
from server.core.hearing import Hearing
from server.core.mouth import Mouth
from server.core.phrases import PHRASES
from server.core.record import CutOff, Ended, ReplyStarted
from server.core.repeat import AskToRepeat
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
from server.core.speech import WORDLESS, Kind, SpeechOptions, State, Step, Utterance
from server.core.story import Story
from server.core.turn_taking import Moment, TurnTaking
from server.core.turns import (
    BACKCHANNELS,
    TurnOptions,
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
    go_ahead: str = _EN["go_ahead"]  # to a caller who announced what is coming, then stopped
    apology: str = _EN["apology"]
    repeat: str = _EN["repeat"]  # asked when the caller's words were not heard clearly (rule 11)
    unheard: str = _EN["unheard"]  # said when speech came to no words again right after that question
    readback: str = _EN["readback"]  # a dictated number read back (rule 11); {number} is the number
    caller_backchannels: frozenset[str] = BACKCHANNELS  # what counts as "mhm" from the caller
    silence_timeout_s: float = 10.0
    max_duration_s: float = 180.0
    # After a reply with which the model ends the call, the line stays open this long: a caller who
    # speaks meanwhile (or already is) was not done, and the call goes on.
    end_call_grace_s: float = 0.8

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.silence_timeout_s <= 0 or self.max_duration_s <= 0:
            raise ValueError("rate, silence_timeout_s and max_duration_s must be positive")
        if self.end_call_grace_s < 0:
            raise ValueError("end_call_grace_s must not be negative")


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
        self.hearing = Hearing(self._desk, self.rate)
        self.barge = BargeIn(self._desk, o.speech, self.rate)
        self.number = CallbackNumber(o.dictation, o.call.readback)
        self.turns = TurnTaking(o.turns, self._desk, self._mouth, self.story, self.hearing, rate=self.rate,
                                ack=o.call.ack, backchannel=o.call.backchannel, go_ahead=o.call.go_ahead,
                                reading=self._reading,
                                read_back=lambda r: self.number.read_back(r, self._mouth),
                                empty_reply=self._empty_reply)
        self.repeat = AskToRepeat(o.turns, o.call.repeat, self._desk, self._mouth, self.rate,
                                  set_aside=self._set_aside, unheard=o.call.unheard)
        self._quiet_since: float | None = 0.0  # caller silent since (None while voiced)
        self._voice_epoch = 0  # caller voice onsets so far
        self._hang_up: tuple[int, bool] | None = None  # a model's goodbye played: (voice epoch, quiet)
        self._last_activity = 0.0
        self._caller_turn_speech = 0  # speech samples since the bot last spoke
        self._goodbye_reason: str | None = None
        self._acknowledgements: set[int] = set()  # caller fragments that were only a backchannel
        # what happened, for summary.json
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

    def _moment(self) -> Moment:
        return Moment(self.t, self._quiet_since, self._voice_epoch, self._caller_turn_speech)

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return self.turns.decisions

    def _timer(self, name: Timer, at: float) -> None:
        self._desk.emit(ev.StartTimer(name, at))

    # ------------------------------------------------------------------ call start and end

    def _on_call_started(self, e: ev.CallStarted) -> None:
        c = self.options.call
        self._last_activity = e.t
        self._timer(Timer.MAX_DURATION, e.t + c.max_duration_s)
        self._timer(Timer.SILENCE, e.t + c.silence_timeout_s)
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

    def _say_goodbye(self, reason: str, text: str | None = None, for_model: bool = False) -> None:
        """The call's goodbye (or `text`), then the call ends. `for_model`: said for a reply model that
        ended the call without a word, it ends the call as the model's own words would have: the caller
        may talk over it, and a caller who goes on keeps the call (`_on_hang_up_timer`)."""
        if any(u.kind is Kind.GOODBYE for u in self._mouth.line):
            return
        self.turns.abandon()
        for u in list(self._mouth.line):
            if u.on_line:
                self._cut_off(u)
            else:
                self._mouth.drop(u)
        self._desk.note("goodbye", reason=reason)
        self._goodbye_reason = reason
        goodbye = self._mouth.say(Kind.GOODBYE, text or self.options.call.goodbye, interruptible=for_model)
        if goodbye is None:
            self._end(reason)
        else:
            goodbye.end_call = for_model

    def _on_dtmf(self, e: ev.Dtmf) -> None:
        self._desk.note("dtmf", digit=e.digit)
        self._last_activity = e.t
        dictating = self._reading().status is not Status.NONE
        if not dictating and self.ring.on_dtmf(e):
            return  # a 0 while a number is being dictated is one of its digits, not a call for the owner
        self._dictation_key(e)

    def _hush(self) -> None:
        """Ring-through: the bot stops talking (what the caller heard stays in the story), drafts go."""
        self.turns.abandon()
        self.barge.forget()
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
            ready = self.seg.enough_speech(frag) and not self.hearing.of(frag).asked
            if ready and self.seg.pause >= self.seg.samples(t.speculate_ms):
                self._transcribe(frag, speculative=True)
        if self.seg.voiced:
            self._last_activity = e.t
            if self.barge.active:
                self._barge_voiced()
        if self.screen.watching:  # the first minute or so; the story is not copied every window after
            alive = bool(self.story_caller_lines() or self.number.keyed or self.ring.record is not None)
            if self.screen.observe(e.t, self.seg.voiced, self._mouth.audible(), alive):
                self._say_goodbye(self.screen.ended(e.t, ""), self.screen.goodbye())

    def _on_segment(self, s: SegmentEvent) -> None:
        if isinstance(s, VoiceStarted):
            self.hearing.track(s.fragment)
            self._quiet_since = None
            self._voice_epoch += 1
            only_mhm = s.resumed and s.fragment.id in self._acknowledgements
            if s.resumed:
                self._caller_went_on(s.fragment)
            if ((not s.resumed or only_mhm) and self._mouth.audible() and self._mouth.front is not None
                    and self._mouth.front.interruptible):
                self.barge.begin(self._mouth.front, s.fragment.id, self._secs(s.at))
        elif isinstance(s, Onset):
            if self.barge.active:
                self._barge_voiced(onset=True)
            elif self._mouth.line and not self._mouth.audible():
                # The caller started again before the bot's answer reached the line: hold it back.
                self.turns.abandon()
        elif isinstance(s, VoiceStopped):
            self._quiet_since = self._secs(s.at)
            self._caller_turn_speech = s.fragment.speech
            self._last_activity = self.t
            self._timer(Timer.SILENCE, self.t + self.options.call.silence_timeout_s)
            if self.barge.unconfirmed:
                self._resume("no onset")
        elif isinstance(s, FragmentClosed):
            self._close_fragment(s.fragment)
        elif isinstance(s, FragmentDropped):
            self._desk.note("fragment_dropped", speech_ms=round(self.seg.ms(s.fragment.speech)))
            if self.barge.of_fragment(s.fragment.id):
                self._resume("noise")
            elif self.story.version != self.turns.decided and self.story.caller_has_last_word():
                self._decide()  # words came in while a noise was taken for more speech
            else:
                self._pause_goes_on()  # a noise, not the caller going on

    def _transcribe(self, frag: Fragment, speculative: bool) -> None:
        before = self.story.lines()
        if self.story.pending_fragment == frag.id:
            before = before[:-1]  # its own speculative hearing is not what came before it
        digits = self.number.expects_digits(before, self.spoken)
        self.hearing.transcribe(frag, speculative, round(self.t * self.rate), digits)

    def _close_fragment(self, frag: Fragment) -> None:
        heard = self.hearing.close(frag)
        if heard.text is not None:
            self._caller_text(frag, heard.text, final=True)
        elif not heard.in_flight:
            self._transcribe(frag, speculative=False)
        # otherwise the speculative transcript in flight becomes final when it lands

    def _caller_went_on(self, frag: Fragment) -> None:
        """Voice came back inside the open fragment: what was said so far is not the whole line (nor
        only a "mhm" over the bot, when its start was taken for one)."""
        self._acknowledgements.discard(frag.id)
        self.story.withdraw_pending()
        self.turns.abandon()

    # ------------------------------------------------------------------ transcripts

    def _on_transcript(self, e: ev.TranscriptReady) -> None:
        job = self._desk.jobs.pop(e.job, None)
        if job is None:
            return
        frag = self.hearing.answered(job)
        if frag is None:
            return  # the caller went on after this audio
        text = e.text.strip()
        self.hearing.transcript(frag, e.job, text, e.confidence)
        self._caller_text(frag, text, final=frag.closed)

    def _caller_text(self, frag: Fragment, text: str, final: bool) -> None:
        if frag.id in self._acknowledgements:
            return  # a "mhm" while the bot spoke: it let the bot go on and is not part of the story
        if self.barge.of_fragment(frag.id):
            missed = not text and frag.speech >= self.seg.samples(self.options.turns.repeat_min_speech_ms)
            if not missed and (not text or is_backchannel(text, self.options.call.caller_backchannels)):
                self._acknowledgements.add(frag.id)
                self._resume("backchannel" if text else "no words")
                return
            # words, or a stretch of speech the recogniser could not make out: the caller said something
            self._commit_barge(self.barge.commit())
        if final and text and self.repeat.unsure(self.hearing.of(frag).confidence, self._quiet_since,
                                                 self._voice_epoch):
            return
        if final:
            self.story.commit_caller(frag.id, text)
            self.repeat.heard(text)
        else:
            self.story.set_pending(frag.id, text)
        if self.ring.on_caller_line(self.t, text):  # asked for the owner: no turn to decide
            self.turns.decided = self.story.version
            return
        if text and self.story.version != self.turns.decided:
            self.turns.abandon()
            self._decide()
        elif final and not text and not self._unheard(frag):
            self._pause_goes_on()  # the voice held no words

    def _pause_goes_on(self) -> None:
        """Voice since the caller's last words came to none: their turn stands as it was, its timers
        counted from the new quiet. Voice that came back inside that fragment abandoned what was being
        prepared (`_caller_went_on`); then the same words are decided again, or nothing would ever answer
        them."""
        if self.turns.waiting:
            self.turns.renew(self._moment())
        elif self.turns.idle and self.story.caller_has_last_word():
            self._decide()

    def _unheard(self, frag: Fragment) -> bool:
        """The caller spoke at some length and none of it came out as words: whether the bot will ask for
        it again (rule 11), or, asked already, say it cannot make them out. Words of theirs heard before
        it stay in the story, but are not answered as if they were all: what came after them is what the
        bot asks for."""
        return self.repeat.unheard(frag.speech, self._quiet_since, self._voice_epoch)

    def _set_aside(self) -> None:
        """The caller's last line is to be said again: it stays out of the story and no turn is decided."""
        self.story.withdraw_pending()
        self.turns.abandon()
        self.turns.decided = self.story.version

    def _decide(self) -> None:
        if self._quiet_since is None or self.ring.holds_turns:
            return  # speaking again: the next transcript decides, or the noise that was no words
        self.turns.decide(self._moment())

    # ------------------------------------------------------------------ a number being dictated

    def _dictation_key(self, e: ev.Dtmf) -> None:
        """A keypad digit is part of the number being dictated; it may start, continue or end one."""
        self.number.key(len(self.story.lines()) - (self.story.pending_fragment is not None), e.digit)
        if self._quiet_since is None:
            return  # the caller is speaking too: their words make the next decision, keys included
        reading = self._reading()
        if reading.status is not Status.NONE:
            self.turns.keyed(self._moment(), reading, e.t)

    def _reading(self, final: bool = False) -> Reading:
        return self.number.reading(self.story.lines(), self.spoken, final)

    # ------------------------------------------------------------------ verdicts and timers

    def _on_verdict(self, e: ev.VerdictReady) -> None:
        self.turns.verdict(self._moment(), e)

    def _on_timer(self, e: ev.TimerFired) -> None:
        if self.ring.on_timer(e):
            return
        if e.name == Timer.REPEAT:
            self.repeat.due(self._voice_epoch, self._quiet_since is not None,
                            self.story.version == self.turns.decided)
        elif e.name == Timer.SILENCE:
            self._on_silence_timer()
        elif e.name == Timer.MAX_DURATION:
            self._say_goodbye("max duration")
        elif e.name == Timer.HANG_UP:
            self._on_hang_up_timer()
        else:
            self.turns.on_timer(self._moment(), e.name)

    def _on_silence_timer(self) -> None:
        limit = self.options.call.silence_timeout_s
        busy = self._mouth.line or self.seg.voiced or self.turns.waiting
        if not busy and self.t - self._last_activity >= limit - 1e-6:
            self._say_goodbye("silence")
        else:
            self._timer(Timer.SILENCE, max(self.t, self._last_activity) + limit)

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
        """The LLM had nothing to say. If it also wants to end the call, the goodbye says it; if not, the
        caller's finished turn is not left in silence: the acknowledgement hands it back to them."""
        self._mouth.drop(u)
        if u.end_call:
            self._say_goodbye("bot ended the call", for_model=True)
        else:
            self._desk.note("empty_reply")
            self._mouth.say(Kind.ACK, self.options.call.ack)

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
            frag = self.hearing.answered(job)
            if frag is None:
                return
            if not job.speculative:
                self.hearing.of(frag).text = ""
                self._apologise()
            elif frag.closed:
                self._transcribe(frag, speculative=False)  # one more try, for good
        elif job.kind == "judge":
            self.turns.judge_failed(self._moment(), e.job)
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
        self.turns.abandon()
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
        self.barge.forget(u)  # it ended on its own before the caller's words counted
        ending = u.kind is Kind.GOODBYE or u.end_call
        if u.kind not in WORDLESS:
            self._bot_said(" ".join(w.text for w in u.words), cut_off=False, more=not ending)
        self._timer(Timer.SILENCE, self.t + self.options.call.silence_timeout_s)
        if u.kind is Kind.GOODBYE and not u.end_call:
            self._end(self._goodbye_reason or "bot said goodbye")
        elif u.end_call:
            self._hang_up = (self._voice_epoch, self._quiet_since is not None)
            self._timer(Timer.HANG_UP, self.t + self.options.call.end_call_grace_s)

    def _on_hang_up_timer(self) -> None:
        """The model's goodbye has had its grace: hang up, unless the caller was speaking when it ended
        or has spoken since."""
        armed, self._hang_up = self._hang_up, None
        if armed is None:
            return
        epoch, quiet = armed
        if quiet and epoch == self._voice_epoch and self._quiet_since is not None:
            self._end("bot ended the call")
        else:
            self._desk.note("end_call_declined")  # the caller went on: so does the call

    def _bot_said(self, heard: str, cut_off: bool, more: bool = True) -> None:
        """`heard` joins the story; while the call goes on (`more`), the reply engine may prepare it."""
        self.story.add_bot(heard, cut_off=cut_off)
        if more and not self._mouth.thinking():
            self._desk.emit(ev.Prefill(self.story.lines()))

    def _barge_voiced(self, onset: bool = False) -> None:
        cut = self.barge.voiced(self.seg.run_speech, onset)
        if cut is not None:
            self._commit_barge(cut)

    def _on_stopped(self, e: ev.PlayoutStopped) -> None:
        u = self._mouth.utterances.get(e.utterance)
        if u is None:
            return
        u.stop_at = e.at
        self.barge.stopped(u, e)

    def _resume(self, why: str) -> None:
        u = self.barge.resume(why)
        if u is not None:
            self._maybe_finished(u)

    def _commit_barge(self, cut: Utterance) -> None:
        """The caller's words stop the bot for good: `cut` leaves the line where they stopped hearing it."""
        for u in list(self._mouth.line):
            if u is cut:
                self._cut_off(u)
            else:
                self._mouth.drop(u)
        self.turns.abandon()

    def _cut_off(self, u: Utterance) -> None:
        until = u.stop_at if u.stop_at is not None else u.played
        heard = u.heard(until)
        self._mouth.drop(u)
        u.step(Step.CUT)
        self.barge.forget(u)  # a barge-in still deciding over it (a goodbye came first) is over too
        if u.kind not in WORDLESS:
            self._bot_said(" ".join(heard), cut_off=True)
        self._desk.emit(CutOff(u.id, len(heard), len(u.words)))

    # ------------------------------------------------------------------ report

    def report(self) -> dict[str, Any]:
        """What happened in the call, for summary.json (times in seconds on the call's timeline)."""
        return {
            "caller_fragments": self.hearing.report(),
            "decisions": self.decisions,
            "bot_turns": [u.report() for u in self.spoken],
            "barge_ins": self.barge.records,
            "story": self.story.render(),
            "story_lines": [{"role": line.role, "text": line.text} for line in self.story.lines()],
            "ended": self.ended,
            "dictated_number": self.number.number(),
            "screening": self.screen.report(),
        }
