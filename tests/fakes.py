"""Engines with exactly known behaviour, for driving the real runtime in tests.

They stand in for models, never for the code under test: the conversation core, the runtime, the
playout and the simulator are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from models.engines import (
    CallContext,
    Line,
    ReplyDelta,
    ReplyEnd,
    ReplyEvent,
    SpeechChunk,
    Transcript,
    Verdict,
    WordSpan,
)

RATE = 16000


class SpanVad:
    """Speech probability 0.95 inside the given (start_s, end_s) spans, 0.02 elsewhere."""

    def __init__(self, spans: Sequence[tuple[float, float]]) -> None:
        self.spans = list(spans)

    def stream(self, sample_rate: int) -> SpanVad.Stream:
        return SpanVad.Stream(self.spans, sample_rate)

    class Stream:
        window = 512

        def __init__(self, spans: list[tuple[float, float]], sample_rate: int) -> None:
            self.spans, self.sample_rate, self._i = spans, sample_rate, 0

        def probability(self, window: np.ndarray) -> float:
            mid = (self._i + 0.5) * self.window / self.sample_rate
            self._i += 1
            return 0.95 if any(a <= mid < b for a, b in self.spans) else 0.02


class FakeClock:
    """An engine clock that moves only when told: a stalling fake engine advances it instead of
    sleeping, so the jobs' watchdogs see the stall at once (server/jobs.py `engine_clock`)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class SpanStt:
    """The text of every phrase whose middle falls inside the fragment; `stall_s` of `clock` per call."""

    def __init__(self, phrases: Sequence[tuple[float, float, str]], fail: bool = False,
                 stall_s: float = 0.0, clock: FakeClock | None = None) -> None:
        if stall_s and clock is None:
            raise ValueError("a stall moves a FakeClock: pass the one the jobs read")
        self.phrases, self.fail, self.stall_s, self.clock = list(phrases), fail, stall_s, clock

    def transcribe(self, audio: np.ndarray, *, start_s: float, language: str,
                   hints: Sequence[str] = ()) -> Transcript:
        if self.fail:
            raise RuntimeError("stt exploded")
        if self.clock is not None:
            self.clock.advance(self.stall_s)
        end_s = start_s + len(audio) / RATE
        words = [text for a, b, text in self.phrases if start_s <= (a + b) / 2 <= end_s]
        return Transcript(" ".join(words))


class FnJudge:
    def __init__(self, fn: Callable[[str], float]) -> None:
        self.fn = fn
        self.calls = 0

    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        self.calls += 1
        last = next((line.text for line in reversed(story) if line.role == "caller"), "")
        return Verdict(self.fn(last), "test")


@dataclass
class LinesLlm:
    """Replies with the given lines in order (by the bot lines already in the story); can fail; with
    `end_call`, its last line asks to end the call once spoken."""

    lines: Sequence[str]
    fail: bool = False
    end_call: bool = False

    def reply(self, story: Sequence[Line], context: CallContext) -> Iterator[ReplyEvent]:
        if self.fail:
            raise RuntimeError("llm exploded")
        given = sum(1 for line in story if line.role == "bot" and "[cut off]" not in line.text)
        line = self.lines[min(given, len(self.lines) - 1)]
        for word in line.split():
            yield ReplyDelta(word + " ")
        yield ReplyEnd(end_call=self.end_call and given >= len(self.lines) - 1)


class ToneTts:
    """Each word is `word_s` of a tone, words `gap_s` apart, at 22.05 kHz like espeak and piper."""

    rate = 22050

    def __init__(self, word_s: float = 0.3, gap_s: float = 0.05, fail_on: str = "") -> None:
        self.word_s, self.gap_s, self.fail_on = word_s, gap_s, fail_on

    def synthesize(self, text: str, *, language: str) -> Iterator[SpeechChunk]:
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("tts exploded")
        words = text.split()
        w, g = round(self.word_s * self.rate), round(self.gap_s * self.rate)
        tone = (8000 * np.sin(np.arange(w) * 2 * np.pi * 300 / self.rate)).astype(np.int16)
        audio = np.zeros(len(words) * (w + g), np.int16)
        spans = []
        for i, word in enumerate(words):
            audio[i * (w + g):i * (w + g) + w] = tone
            spans.append(WordSpan(word, i * (w + g), i * (w + g) + w))
        yield SpeechChunk(audio, self.rate, tuple(spans))
