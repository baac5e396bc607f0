"""The engine Protocols: what the call runtime asks of VAD, STT, turn judge, reply LLM and TTS.

Every engine is blocking and runs in a worker thread owned by the runtime; none of them may touch the
event loop. Engines are shared between calls unless they say otherwise (VAD keeps state per call, so
the runtime asks the VAD model for a fresh stream per call).

An engine may also offer `warm_up() -> None`, one throwaway inference run when the service starts so the
first caller pays no loading or compilation cost.

Audio crossing these interfaces is numpy: float32 in [-1, 1] going in (STT, VAD), int16 coming out (TTS).
Times are seconds on the call's timeline where an engine needs them (the `transcript` STT does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


class EngineError(RuntimeError):
    """An engine could not do its job; the message says what the user can do about it."""


class ModelMissingError(EngineError):
    """A configured model file is absent (nothing is ever downloaded at run time)."""


# --------------------------------------------------------------------------- story, as engines see it


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the call's transcript as a model reads it."""

    role: Literal["caller", "bot"]
    text: str


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a prompt may mention about the call besides its transcript."""

    language: str = "en"
    caller_number: str = ""
    caller_name: str = ""  # the contact's name, when the number is in the owner's contacts
    owner_name: str = ""
    started_at: str = ""  # ISO 8601 local time of the call's start
    manner: str = ""  # how the caller's profile wants them spoken to ("brief", "warm and formal", ...)
    caller_notes: str = ""  # what the owner noted about this caller, for the model's eyes only
    end_on_sales: bool = False  # end the call politely once the caller turns out to be selling something


# --------------------------------------------------------------------------- VAD


class VadStream(Protocol):
    """Speech probability for consecutive fixed-size windows of one call's audio."""

    sample_rate: int
    window: int  # samples per window

    def probability(self, window: np.ndarray) -> float:
        """`window` is float32 mono of exactly `self.window` samples."""
        ...


class VadModel(Protocol):
    def stream(self, sample_rate: int) -> VadStream:
        """A fresh stream with its own recurrent state: one per call."""
        ...


# --------------------------------------------------------------------------- STT


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str  # empty when nothing intelligible was said
    confidence: float = 1.0  # 0..1; the core asks the caller to repeat below its threshold


class SpeechToText(Protocol):
    def transcribe(self, audio: np.ndarray, *, start_s: float, language: str,
                   hints: Sequence[str] = ()) -> Transcript:
        """Transcribe float32 mono 16 kHz `audio`, which begins `start_s` into the call."""
        ...


# --------------------------------------------------------------------------- turn judge


@dataclass(frozen=True, slots=True)
class Verdict:
    p_complete: float  # probability that the caller has finished their turn
    reason: str = ""  # a short tag for the trace (e.g. "trailing-conjunction"), never caller text


class TurnJudge(Protocol):
    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        """Judge whether the caller's last line in `story` ends their turn."""
        ...


# --------------------------------------------------------------------------- reply LLM


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    """A piece of reply text, in order. Pieces need not align with words or clauses."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyEnd:
    """The reply is complete; `end_call` asks the runtime to hang up once it has been spoken."""

    end_call: bool = False


ReplyEvent = ReplyDelta | ReplyEnd


class ReplyModel(Protocol):
    def reply(self, story: Sequence[Line], context: CallContext) -> Iterator[ReplyEvent]:
        """Stream the bot's next line. The runtime stops iterating (and closes the iterator) when the
        reply is cancelled, so generation must stop promptly when the generator is closed."""
        ...


# --------------------------------------------------------------------------- TTS


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A word of the synthesised text and the samples of the chunk that speak it."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    audio: np.ndarray  # int16 mono
    sample_rate: int
    words: tuple[WordSpan, ...] = field(default=())


class TextToSpeech(Protocol):
    def synthesize(self, text: str, *, language: str) -> Iterator[SpeechChunk]:
        """Speak `text`, yielding audio as it is made. Every word of `text` appears in exactly one
        chunk's `words`, in order, with sample offsets relative to that chunk."""
        ...
