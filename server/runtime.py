"""The call runtime: one call's audio, engines, timers and playout around the conversation core.

It turns caller frames into VAD events, the core's commands into engine jobs (run by a `JobRunner`, so
never on the event loop) and playout steering, engine results into events, and timers into events. It
keeps no clock of its own: whoever drives it says what time it is, which is how the same runtime serves
a live call (`LiveCall`, frames from a transport in real time) and `standin simulate` (a virtual clock).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.engines import (
    CallContext,
    Line,
    ReplyDelta,
    ReplyEnd,
    ReplyModel,
    SpeechChunk,
    SpeechToText,
    TextToSpeech,
    Transcript,
    TurnJudge,
    VadModel,
    Verdict,
)
from server import audio
from server.core import events as ev
from server.core.conversation import Conversation
from server.dtmf import Keypad, ToneDetector
from server.echo import EchoGate, EchoOptions
from server.jobs import Failed, Finished, JobRunner, ThreadedJobs
from server.playout import Playout
from server.provenance import Provenance
from server.trace import Trace

if TYPE_CHECKING:
    from server.ringthrough import RingDriver

log = logging.getLogger(__name__)

# The prompt for a fragment likely to be digits of a number: whisper writes in the style of its prompt, and
# after this one wrote the dictated digits of 10 of 20 phone-number renders right against 3 of 20 (tiny.en,
# four voices); plain digits, the same in every language. It goes alone, without the owner's names: on
# the digit groups of the number scenarios' renders, tiny.en wrote 113 of 120 right with it alone, 109
# after "Marco, " (84 with no prompt); base on espeak Italian 24 and 23 of 72 (benchmarks/digit_prompts.py).
DIGITS_HINT = "0 1 5 2, 3 6 8, 4 9 7 0"


@dataclass(frozen=True, slots=True)
class Engines:
    vad: VadModel
    stt: SpeechToText
    judge: TurnJudge
    llm: ReplyModel
    tts: TextToSpeech
    provenance: Provenance | None = None  # what they are and run on (server/provenance.py), once built


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    language: str = "en"
    hints: tuple[str, ...] = ()  # names and words the STT should expect
    context: CallContext = field(default_factory=CallContext)
    timeouts_s: dict[str, float] = field(
        default_factory=lambda: {"stt": 15.0, "judge": 5.0, "llm": 20.0, "tts": 15.0})
    trim_level: int = 40  # leading TTS samples below this (int16) are silence, cut for a faster start
    echo: EchoOptions = field(default_factory=EchoOptions)
    caller_memory_s: float = 120.0  # caller audio kept for transcription
    # Evaluate the call's reply prompt in a thread of its own at the start ("background"), or not at
    # all here ("off": a simulated call primes before its virtual clock starts).
    prime_reply: str = "background"


class _Ring:
    """The last `size` samples of the caller's audio, addressed by call sample index."""

    def __init__(self, size: int) -> None:
        self._buf = np.zeros(size, np.int16)
        self.end = 0  # call sample index one past the newest sample

    def append(self, x: np.ndarray) -> None:
        n, size = len(x), len(self._buf)
        if n >= size:
            self._buf[:] = x[-size:]
        else:
            i = self.end % size
            k = min(n, size - i)
            self._buf[i:i + k] = x[:k]
            self._buf[: n - k] = x[k:]
        self.end += n

    def slice(self, start: int, end: int) -> np.ndarray:
        size = len(self._buf)
        start, end = max(start, self.end - size, 0), min(end, self.end)
        if end <= start:
            return np.zeros(0, np.int16)
        idx = np.arange(start, end) % size
        return self._buf[idx]


class CallRuntime:
    def __init__(self, conversation: Conversation, engines: Engines, jobs: JobRunner, *,
                 options: RuntimeOptions | None = None, trace: Trace | None = None,
                 recorder: audio.StereoWavWriter | None = None) -> None:
        self.core = conversation
        self.engines = engines
        self.jobs = jobs
        self.options = options or RuntimeOptions()
        self.trace = trace
        self.recorder = recorder
        self.rate = conversation.rate
        self.playout = Playout(self.rate, audio.FRAME * self.rate // audio.CALL_RATE)
        self.vad = engines.vad.stream(self.rate)
        self.echo = EchoGate(self.options.echo, self.rate)
        self.hangup: str | None = None
        self._caller = _Ring(int(self.options.caller_memory_s * self.rate))
        self._pending = np.zeros(0, np.int16)  # caller samples not yet in a VAD window
        self.keypad = Keypad()  # keys from RFC 2833 / SIP INFO and from tones in the audio, each once
        self._tones = ToneDetector(self.rate)
        self._timers: list[tuple[float, ev.Timer]] = []
        self._timer_at: dict[ev.Timer, float] = {}
        self._utterance_of: dict[int, int] = {}  # tts job -> utterance
        self._started_audio: set[int] = set()  # utterances whose first audio is in
        self._jobs: dict[int, str] = {}  # job -> engine, while it runs
        self._answered: set[int] = set()  # jobs whose first result is in
        self._reply_asked: dict[int, tuple[float, int]] = {}  # utterance -> when its reply was asked, job
        self.timings: dict[int, dict[str, float]] = {}  # job -> stage -> ms, what the record attaches
        self._rec_in: deque[np.ndarray] = deque()
        self._rec_out: deque[np.ndarray] = deque()
        self.now = 0.0
        self._prefills = 0  # ids of prefill jobs count down from -1, clear of the core's
        self.ring: RingDriver | None = None  # carries out ring-through commands (server/ringthrough.py)

    # ------------------------------------------------------------------ driving

    def start(self, t: float = 0.0) -> None:
        self._handle(ev.CallStarted(t))
        prime = getattr(self.engines.llm, "prime", None)
        if prime is not None and self.options.prime_reply == "background":  # while the greeting plays
            threading.Thread(target=self._prime, args=(prime,), name="prime-reply", daemon=True).start()

    def _prime(self, prime: Callable[[CallContext], None]) -> None:
        try:
            prime(self.options.context)
        except Exception as exc:  # the first reply then evaluates the prompt itself
            log.warning("priming the reply prompt failed (%s)", type(exc).__name__)

    def feed(self, frame: np.ndarray, t: float) -> None:
        """Caller audio (int16 at the call rate) that has arrived by time `t`."""
        self.advance(t)
        if self.core.ring.bridged:  # talking to the owner: recorded, not listened to
            self._record(self._rec_in, frame)
            return
        self._record(self._rec_in, frame)
        if self.keypad.in_band:
            for key, _ in self._tones.push(frame):
                if self.keypad.tone(key, t):
                    self._handle(ev.Dtmf(t, key))
            if self._tones.in_tone:  # a key's tone is no speech: not listened to, still recorded
                frame = np.zeros_like(frame)
        self._caller.append(frame)
        pcm = np.concatenate([self._pending, frame]) if len(self._pending) else frame
        w = self.vad.window
        n = len(pcm) // w * w
        first = self._caller.end - len(pcm)
        for i in range(0, n, w):
            x = audio.to_float(pcm[i:i + w])
            p = self.vad.probability(x)
            echo = self.echo.is_echo(x, first + i + w)
            self._handle(ev.VadWindow(t, first + i, first + i + w, p, echo))
        self._pending = pcm[n:].copy()

    def pull(self, t: float) -> np.ndarray:
        """The frame of bot audio that starts at `t` (single-threaded drivers)."""
        self.advance(t)
        frame, notes = self.playout.pull(t)
        self.on_playout(notes)
        self.played(frame)
        return frame

    def on_playout(self, notes: list[ev.PlayoutProgress | ev.PlayoutStopped]) -> None:
        for note in notes:
            self._handle(note)

    def advance(self, t: float) -> None:
        """Fire the timers due by `t`."""
        while self._timers and self._timers[0][0] <= t:
            at, name = heapq.heappop(self._timers)
            if self._timer_at.get(name) == at:
                del self._timer_at[name]
                self._handle(ev.TimerFired(max(at, self.now), name))
        self.now = max(self.now, t)

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def caller_hung_up(self, t: float) -> None:
        self.advance(t)
        self._handle(ev.CallerHungUp(t))
        self.hangup = self.hangup or "caller hung up"

    def dtmf(self, digit: str, t: float) -> None:
        """A key that came out of band (RFC 2833, SIP INFO)."""
        self.advance(t)
        if self.keypad.out_of_band(digit, t):
            self._handle(ev.Dtmf(t, digit))

    def deliver(self, event: ev.Event) -> None:
        """An event from outside the engines (the owner's call, for ring-through) at its time."""
        self.advance(event.t)
        self._handle(event)

    def idle(self) -> bool:
        """Nothing said, playing or being worked on (timers aside)."""
        return not self._jobs and not self.playout.busy() and not self.core.seg.voiced

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
        self.jobs.close()
        self._flush_recording()

    # ------------------------------------------------------------------ core plumbing

    def _handle(self, event: ev.Event) -> None:
        self.now = max(self.now, event.t)
        if self.trace is not None:
            self.trace.event(event)
        for command in self.core.handle(event):
            if self.trace is not None:
                self.trace.command(event.t, command)
            self._execute(command, event.t)

    def _execute(self, c: ev.Command, t: float) -> None:
        if isinstance(c, ev.Transcribe):
            pcm = audio.to_float(self._caller.slice(c.start, c.end))
            start_s = c.start / self.rate
            o = self.options
            hints = (DIGITS_HINT,) if c.digits else o.hints
            self._submit(c.job, "stt", lambda: iter([self.engines.stt.transcribe(
                pcm, start_s=start_s, language=o.language, hints=hints)]), t)
        elif isinstance(c, ev.Judge):
            lines = _lines(c.story)
            self._submit(c.job, "judge", lambda: iter([self.engines.judge.judge(
                lines, language=self.options.language)]), t)
        elif isinstance(c, ev.Reply):
            self._reply_asked[c.utterance] = (t, c.job)
            lines = _lines(c.story)
            self._submit(c.job, "llm", lambda: self.engines.llm.reply(lines, self.options.context), t)
        elif isinstance(c, ev.Prefill):
            prefill = getattr(self.engines.llm, "prefill", None)
            if prefill is not None:
                lines, context = _lines(c.story), self.options.context
                self._prefills -= 1  # a job of the runtime's own: its end never reaches the core

                def work() -> Iterator[Any]:
                    prefill(lines, context)
                    return iter(())
                self.jobs.submit(self._prefills, "llm", work, self.options.timeouts_s.get("llm", 20.0), t)
        elif isinstance(c, ev.Synthesize):
            self._utterance_of[c.job] = c.utterance
            asked = self._reply_asked.pop(c.utterance, None)
            if asked is not None:
                self._latency(asked[1], "llm_first_clause_ms", t - asked[0], t)
            text = c.text
            self._submit(c.job, "tts", lambda: self.engines.tts.synthesize(
                text, language=self.options.language), t)
        elif isinstance(c, ev.Cancel):
            self._jobs.pop(c.job, None)
            self.jobs.cancel(c.job, t)
        elif isinstance(c, ev.Play):
            self.playout.play(c.utterance)
        elif isinstance(c, ev.Stop):
            self.playout.stop(c.utterance, c.at, c.fade, ends=c.ends, within=c.within)
        elif isinstance(c, ev.Resume):
            self.playout.resume(c.utterance, c.at)
        elif isinstance(c, ev.Drop):
            self.playout.drop(c.utterance)
        elif isinstance(c, ev.StartTimer):
            self._timer_at[c.name] = c.at
            heapq.heappush(self._timers, (c.at, c.name))
        elif isinstance(c, ev.Hangup):
            self.hangup = c.reason
        elif self.ring is not None and self.ring.takes(c):
            self.ring.execute(c, t)

    def _submit(self, job: int, engine: str, work: Callable[[], Iterator[Any]], t: float) -> None:
        self._jobs[job] = engine
        self.jobs.submit(job, engine, work, self.options.timeouts_s.get(engine, 20.0), t)

    def on_result(self, job: int, item: Any, t: float, elapsed: float = 0.0) -> None:
        """A job's result (or its end) arrived at call time `t`, `elapsed` engine seconds after it began."""
        engine = self._jobs.get(job)
        if engine is None:
            return  # cancelled meanwhile
        self.advance(t)
        if job not in self._answered and not isinstance(item, Failed | Finished):
            self._answered.add(job)
            self._latency(job, _FIRST_RESULT[engine], elapsed, t)
        if isinstance(item, Failed):
            del self._jobs[job]
            # The engine's text can quote the caller: it goes to the call's trace, the log gets its type.
            log.warning("%s job %d failed (%s)", engine, job, item.kind)
            self._handle(ev.JobFailed(t, job, f"{engine}: {item.error}"))
        elif isinstance(item, Finished):
            del self._jobs[job]
            if engine == "llm":
                self._handle(ev.ReplyDone(t, job))
            elif engine == "tts":
                self._handle(ev.SynthesisDone(t, job))
        elif isinstance(item, Transcript):
            self._handle(ev.TranscriptReady(t, job, item.text, item.confidence))
        elif isinstance(item, Verdict):
            self._handle(ev.VerdictReady(t, job, item.p_complete, item.reason))
        elif isinstance(item, ReplyDelta):
            self._handle(ev.ReplyText(t, job, item.text))
        elif isinstance(item, ReplyEnd):
            self._jobs.pop(job, None)
            self.jobs.cancel(job, t)
            self._handle(ev.ReplyDone(t, job, item.end_call))
        elif isinstance(item, SpeechChunk):
            self._speech(job, item, t)

    def _latency(self, job: int, name: str, seconds: float, t: float) -> None:
        ms = round(seconds * 1000, 1)  # as trace.jsonl keeps it
        self.timings.setdefault(job, {})[name] = ms
        if self.trace is not None:
            self.trace.latency(name, seconds * 1000, t, job)

    def _speech(self, job: int, chunk: SpeechChunk, t: float) -> None:
        utterance = self._utterance_of[job]
        first = utterance not in self._started_audio
        pcm, words = prepare_speech(chunk, self.rate, trim_level=self.options.trim_level if first else None)
        if len(pcm):
            self._started_audio.add(utterance)
        self.playout.add(utterance, pcm)
        self._handle(ev.SpeechReady(t, job, len(pcm), words))

    # ------------------------------------------------------------------ recording

    def played(self, frame: np.ndarray) -> None:
        """Bot audio that went to the line, in order: for the echo gate and the recording."""
        self.echo.played(frame)
        if not self.core.ring.bridged:  # once bridged, the owner's voice is this side (owner_audio)
            self._record(self._rec_out, frame)

    def owner_audio(self, frame: np.ndarray) -> None:
        """The owner's voice on a bridged call: what the caller hears instead of the bot's."""
        self._record(self._rec_out, frame)

    def _record(self, side: deque[np.ndarray], frame: np.ndarray) -> None:
        if self.recorder is None:
            return
        side.append(frame)
        while self._rec_in and self._rec_out:
            self.recorder.write(self._rec_in.popleft(), self._rec_out.popleft())

    def _flush_recording(self) -> None:
        silence = np.zeros(self.playout.frame, np.int16)
        while self.recorder is not None and (self._rec_in or self._rec_out):
            left = self._rec_in.popleft() if self._rec_in else silence
            right = self._rec_out.popleft() if self._rec_out else silence
            self.recorder.write(left, right)


def prepare_speech(chunk: SpeechChunk, rate: int,
                   trim_level: int | None = None) -> tuple[np.ndarray, tuple[ev.Word, ...]]:
    """TTS audio as the line plays it: at the call rate, its words' spans moved along; with
    `trim_level`, leading samples quieter than that are cut (they only delay an answer's start)."""
    pcm = audio.resample(chunk.audio, chunk.sample_rate, rate)
    scale = rate / chunk.sample_rate
    words = [ev.Word(w.text, round(w.start * scale), round(w.end * scale)) for w in chunk.words]
    if trim_level is not None:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > trim_level)
        cut = int(loud[0]) if len(loud) else len(pcm)
        if words:
            cut = min(cut, words[0].start)
        pcm = pcm[cut:]
        words = [ev.Word(w.text, max(0, w.start - cut), max(0, w.end - cut)) for w in words]
    n = len(pcm)
    return pcm, tuple(ev.Word(w.text, min(w.start, n), min(w.end, n)) for w in words)


_FIRST_RESULT = {"stt": "stt_ms", "judge": "judge_ms", "llm": "llm_first_token_ms",
                 "tts": "tts_first_audio_ms"}


def _lines(story: tuple[ev.StoryLine, ...]) -> tuple[Line, ...]:
    return tuple(Line("bot" if s.role == "bot" else "caller", s.text) for s in story)


# ---------------------------------------------------------------------------- live calls


class Transport(Protocol):
    """Where a live call's audio comes from and goes to (the SIP media port, a websocket, a test).

    Ordering rule: `pull` runs on the transport's thread and hands what it learnt (the playout's
    progress, the frame that went out) to the event loop with `call_soon_threadsafe`. `frames()` yields
    a caller frame only after the loop has run every callback queued before that frame arrived, so the
    runtime hears a tick's caller audio after it knows what the bot played in that tick (the echo gate
    and barge-in depend on it). Reading through `sip.media.InboundFrames.get` keeps the rule; the SIP
    and websocket transports both do, and `sip.media.Outbound` is their common `pull` wrapper.
    """

    def frames(self) -> AsyncIterator[np.ndarray]:
        """Caller audio, 20 ms int16 frames at the call rate, as they arrive (in the order above); ends
        when the caller hangs up."""
        ...

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        """From now on, get each outbound 20 ms frame by calling `pull` (from any thread)."""
        ...

    async def hang_up(self, reason: str) -> None: ...


class LiveCall:
    """Runs one call in real time: the call clock counts the caller's frames, engine results arrive from
    worker threads, the transport pulls bot audio from its own thread."""

    def __init__(self, make_runtime: Callable[[JobRunner], CallRuntime]) -> None:
        self._make_runtime = make_runtime
        self.runtime: CallRuntime | None = None
        self._frames = 0
        self._pulled = 0

    def now(self) -> float:
        """The call's time: the caller's audio received so far."""
        return self._frames * audio.FRAME / audio.CALL_RATE

    def dtmf(self, digit: str) -> None:
        if self.runtime is not None:
            self.runtime.dtmf(digit, self.now())

    async def run(self, transport: Transport) -> CallRuntime:
        loop = asyncio.get_running_loop()
        # The runtime needs the runner and the runner delivers to the runtime: bind late.
        runtime: CallRuntime
        jobs = ThreadedJobs(loop, lambda *result: runtime.on_result(*result), self.now)  # noqa: PLW0108
        runtime = self.runtime = self._make_runtime(jobs)

        def pull() -> np.ndarray:
            t = self._pulled * audio.FRAME / audio.CALL_RATE
            self._pulled += 1
            frame, notes = runtime.playout.pull(t)
            # Queued, not run here: by the Transport's ordering rule they land before this tick's frame.
            if notes:
                loop.call_soon_threadsafe(runtime.on_playout, notes)
            loop.call_soon_threadsafe(runtime.played, frame)
            return frame

        runtime.start(0.0)
        transport.attach(pull)
        try:
            async for frame in transport.frames():
                self._frames += 1
                runtime.feed(frame, self.now())
                if runtime.hangup is not None:
                    await transport.hang_up(runtime.hangup)
                    break
            else:
                runtime.caller_hung_up(self.now())
        finally:
            runtime.close()
        return runtime
