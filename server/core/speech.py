"""The bot's utterances: one handle each, its life, clause splitting, and the word clock (DESIGN.md §2
rules 5-7).

An utterance gathers text (fixed, or streamed from the reply LLM), cuts it into clauses that go to TTS one
by one, and learns from the playout which of its samples reached the line and when. Its words carry
sample spans, so at any moment it can say which word is on the line, where that word ends, and exactly
which words the caller has heard.

Its life is `LIFE` below: every change of an utterance's state is a `Step` taken through
`Utterance.step`, and a step the table does not list for the state it is in raises `IllegalStep`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from server.core.events import PlayoutProgress, Word
from server.core.record import ReplyJobs


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    first_clause_min_words: int = 1  # the first clause goes to TTS at a comma once it has this many words,
    # and at a sentence's end whatever its length: "Sure," is spoken while the rest is written
    comma_clause_min_words: int = 6  # later clauses break at commas only when this long
    clause_max_words: int = 16  # a clause without punctuation is cut at this length
    yield_after_ms: int = 64  # caller speech that makes the bot stop at the end of its current word
    finish_word_max_ms: int = 250  # ... but never play on for longer than this
    finish_word_grace_ms: int = 60  # ... unless the word ends this little after it: no clipped last syllable
    fade_ms: int = 30
    backchannel_max_ms: int = 900  # caller speech longer than this interrupts without waiting for words


class Kind(enum.StrEnum):
    GREETING = "greeting"
    REPLY = "reply"
    ACK = "ack"
    BACKCHANNEL = "backchannel"
    GO_AHEAD = "go_ahead"  # the caller announced what is coming and stopped: "Go ahead."
    APOLOGY = "apology"
    REPEAT = "repeat"  # asking the caller to say again what was not heard clearly
    READBACK = "readback"  # a dictated number read back for the caller to confirm
    GOODBYE = "goodbye"
    RING = "ring"  # about putting the caller through to the owner (server/core/ringthrough.py)


# Lines with nothing to say of their own: they never join the story nor count as the bot's answer
WORDLESS = frozenset({Kind.ACK, Kind.BACKCHANNEL, Kind.GO_AHEAD})


class State(enum.StrEnum):
    HELD = "held"  # being prepared; not on the line yet
    PLAYING = "playing"
    PAUSED = "paused"  # stopped at a word boundary; may resume or be cut off
    DONE = "done"
    CUT_OFF = "cut_off"
    CANCELLED = "cancelled"  # never reached the line


class Step(enum.StrEnum):
    START = "start"  # its first sample reached the line
    YIELD = "yield"  # the caller's voice: stop at the end of the word on the line
    RESUME = "resume"  # that voice was no interruption: play on from the first word not fully heard
    FINISH = "finish"  # all it had to say has played
    CUT = "cut"  # off the line for good, heard up to where it stopped
    CANCEL = "cancel"  # dropped before any of it reached the line


LIFE: dict[tuple[State, Step], State] = {
    (State.HELD, Step.START): State.PLAYING,
    (State.HELD, Step.CANCEL): State.CANCELLED,
    (State.PLAYING, Step.YIELD): State.PAUSED,
    (State.PLAYING, Step.FINISH): State.DONE,
    (State.PLAYING, Step.CUT): State.CUT_OFF,
    (State.PAUSED, Step.YIELD): State.PAUSED,  # a second voice before the first one's words are in
    (State.PAUSED, Step.RESUME): State.PLAYING,
    (State.PAUSED, Step.CUT): State.CUT_OFF,
}


class IllegalStep(RuntimeError):
    pass


_BOUNDARY = re.compile(r"[.!?;:,]+[\"')\]]*(?=\s)")
_SENTENCE_END = re.compile(r"[.!?;:]")
_WORD = re.compile(r"\S+")


class ClauseSplitter:
    """Cuts streamed text into clauses for TTS: the first as early as it makes sense, the rest at
    natural boundaries."""

    def __init__(self, options: SpeechOptions) -> None:
        self.options = options
        self._buffer = ""
        self._clauses = 0

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while clause := self._next():
            out.append(clause)
        return out

    def flush(self) -> str | None:
        clause, self._buffer = self._buffer.strip(), ""
        if clause:
            self._clauses += 1
            return clause
        return None

    def _next(self) -> str | None:
        o = self.options
        for match in _BOUNDARY.finditer(self._buffer):
            head = self._buffer[: match.end()]
            words = len(head.split())
            at_least = o.first_clause_min_words if self._clauses == 0 else o.comma_clause_min_words
            if _SENTENCE_END.search(match.group()) or words >= at_least:
                return self._take(match.end())
        tokens = list(_WORD.finditer(self._buffer))
        if len(tokens) > o.clause_max_words:
            return self._take(tokens[o.clause_max_words - 1].end())
        return None

    def _take(self, end: int) -> str:
        clause, self._buffer = self._buffer[:end].strip(), self._buffer[end:].lstrip()
        self._clauses += 1
        return clause


@dataclass(slots=True)
class Utterance:
    id: int
    kind: Kind
    interruptible: bool = True
    reply_job: int | None = None  # the LLM job feeding it, while it runs
    jobs: ReplyJobs | None = None  # a reply's: the engine jobs behind it, for the call's record
    tts_jobs: list[int] = field(default_factory=list)  # in flight, in order
    text: str = ""  # everything it means to say (grows while the LLM streams)
    words: list[Word] = field(default_factory=list)  # utterance sample spans
    samples: int = 0  # synthesised so far
    generating: bool = True  # more text may come
    end_call: bool = False
    state: State = State.HELD
    released: bool = False  # allowed on the line
    played: int = 0  # samples that have gone to the line
    stop_at: int | None = None  # where a Stop was asked for
    start_t: float | None = None  # line time of its first sample
    end_t: float | None = None
    word_start_t: dict[int, float] = field(default_factory=dict)  # line times of words' first samples
    word_end_t: dict[int, float] = field(default_factory=dict)  # ... and of their ends, once played

    @property
    def complete(self) -> bool:
        """Everything it will ever say has been synthesised."""
        return not self.generating and not self.tts_jobs

    @property
    def on_line(self) -> bool:
        return self.state in (State.PLAYING, State.PAUSED)

    def step(self, step: Step) -> None:
        """Move on in its life as `LIFE` allows."""
        state = LIFE.get((self.state, step))
        if state is None:
            raise IllegalStep(f"utterance {self.id} ({self.kind}) cannot {step} when {self.state}")
        self.state = state

    def add_audio(self, samples: int, words: tuple[Word, ...]) -> None:
        base = self.samples
        self.words.extend(Word(w.text, base + w.start, base + w.end) for w in words)
        self.samples += samples

    def on_progress(self, ev: PlayoutProgress, rate: int) -> None:
        def line_time(sample: int) -> float:
            return ev.t + (ev.offset + sample - ev.first) / rate

        if self.start_t is None:
            self.start_t = line_time(ev.first)
        self.played = max(self.played, ev.last)
        for i, w in enumerate(self.words):
            if ev.first <= w.start < ev.last:
                self.word_start_t.setdefault(i, line_time(w.start))
            if i in self.word_start_t and ev.first < w.end <= ev.last:
                self.word_end_t[i] = line_time(w.end)
        self.end_t = line_time(ev.last)

    def word_at(self, sample: int) -> int | None:
        """Index of the word being spoken at `sample`, or of the next one when between words."""
        for i, w in enumerate(self.words):
            if sample < w.end:
                return i
        return None

    def stop_point(self, options: SpeechOptions, rate: int) -> int:
        """Where to stop so the word on the line is finished, but no later than the cap."""
        cap = self.played + options.finish_word_max_ms * rate // 1000
        grace = options.finish_word_grace_ms * rate // 1000
        i = self.word_at(self.played)
        if i is None:
            return min(self.played, self.samples)
        w = self.words[i]
        if w.start >= self.played:  # between words: stop right here
            return self.played
        return w.end if w.end <= cap + grace else cap

    def ends_after(self, at: int) -> tuple[int, ...]:
        """The ends of the words synthesised so far that lie after sample `at`."""
        return tuple(w.end for w in self.words if w.end > at)

    def resume_point(self) -> int:
        """The first sample of the first word not fully heard."""
        at = self.stop_at if self.stop_at is not None else self.played
        for w in self.words:
            if w.end > at:  # a word cut short was not heard: say it again from its start
                return w.start
        return self.samples

    def rewind(self, at: int) -> None:
        """Play on from sample `at` (a word boundary) after a pause."""
        self.step(Step.RESUME)
        self.played, self.stop_at = at, None
        for i, w in enumerate(self.words):
            if w.start >= at:
                self.word_start_t.pop(i, None)
                self.word_end_t.pop(i, None)

    def heard(self, until: int) -> list[str]:
        return [w.text for w in self.words if w.end <= until]

    def report(self) -> dict[str, object]:
        """The utterance as summary.json tells it: times in seconds on the call's timeline."""
        cut = self.state is State.CUT_OFF and self.stop_at is not None
        heard_until = self.stop_at if cut and self.stop_at is not None else self.played
        return {
            "kind": self.kind.value,
            "start_s": None if self.start_t is None else round(self.start_t, 3),
            "end_s": None if self.end_t is None else round(self.end_t, 3),
            "text_intended": self.text,
            "text_heard": " ".join(self.heard(heard_until)),
            "interrupted": self.state is State.CUT_OFF,
            "words": self.words_report(),
            **({} if self.jobs is None else {"jobs": {"stt": self.jobs.stt, "judge": self.jobs.judge,
                                                       "llm": self.jobs.llm, "tts": self.jobs.tts}}),
        }

    def words_report(self) -> list[dict[str, object]]:
        return [
            {"text": w.text, "start_s": round(self.word_start_t[i], 3), "end_s": round(self.word_end_t[i], 3)}
            for i, w in enumerate(self.words)
            if i in self.word_end_t
        ]
