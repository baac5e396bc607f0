"""Text to speech with espeak-ng through its C library, with exact per-word sample spans.

espeak-ng is driven in synchronous mode: `espeak_Synth` returns once the callback has received all
the audio (int16) and the events. WORD events carry the word's character position in the text and
its first sample; END events mark the end of each clause, after its pause. A word therefore ends
where the next one starts, except before a clause end, where it ends as its audio falls silent.

The library is a process-wide singleton with global state, so every use holds `_lock`.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.engines import EngineError, SpeechChunk, WordSpan

RATE_MIN, RATE_NORMAL, RATE_MAX = 80, 175, 450  # words per minute, as espeak-ng's speak_lib.h

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END = 0, 1, 5

_SILENCE = 32  # int16 amplitude at or below which a sample counts as silent (about -60 dBFS)
_CLAUSE_END = re.compile(r"[.!?;:][\"'”’»)\]]*(?=\s|$)")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class EspeakTts:
    """espeak-ng voice for a language (`synthesize(language=...)`), or the named `voice`
    (e.g. "en-us", "it+f3") when one is given; `rate` in words per minute."""

    voice: str | None = None
    rate: int = RATE_NORMAL

    def __post_init__(self) -> None:
        if not RATE_MIN <= self.rate <= RATE_MAX:
            raise ValueError(f"espeak-ng rate must be {RATE_MIN}..{RATE_MAX} words per minute, "
                             f"not {self.rate}")

    def synthesize(self, text: str, *, language: str) -> Iterator[SpeechChunk]:
        voice = self.voice or language.strip().lower().replace("_", "-")
        for chunk in split_clauses(text):
            with _lock:
                sample_rate, audio, events = _library().synth(chunk, voice, self.rate)
            yield SpeechChunk(audio, sample_rate, word_spans(chunk, audio, events))


def split_clauses(text: str) -> list[str]:
    """`text` cut after sentence punctuation (. ! ? ; :) that ends a token; a piece with nothing to
    say (no letter or digit) stays with its neighbour."""
    ranges: list[list[int]] = []
    start = 0
    for end in [m.end() for m in _CLAUSE_END.finditer(text)] + [len(text)]:
        if text[start:end].strip():
            if ranges and not (_speakable(text[start:end]) and _speakable(text[slice(*ranges[-1])])):
                ranges[-1][1] = end
            else:
                ranges.append([start, end])
        start = end
    return [text[a:b].strip() for a, b in ranges]


def _speakable(text: str) -> bool:
    return any(c.isalnum() for c in text)


@dataclass(frozen=True, slots=True)
class Event:
    """A WORD or END event: `position` is 1-based in characters of the text, `sample` in its audio."""

    type: int
    position: int
    sample: int


def word_spans(text: str, audio: np.ndarray, events: list[Event]) -> tuple[WordSpan, ...]:
    """Every whitespace-separated token of `text` in one span, in order. A token joins the span
    before it (or, first in the text, the one after it) unless espeak-ng reported it starting after
    every event of that span."""
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    if not tokens:
        return ()
    token_ends = [end for _, end in tokens]
    samples: list[list[int]] = [[] for _ in tokens]
    for event in events:  # position 0: a stray WORD event espeak-ng adds at some clause ends
        i = bisect.bisect_right(token_ends, event.position - 1)
        if event.type == _EVENT_WORD and event.position > 0 and i < len(tokens) and event.sample < len(audio):
            samples[i].append(event.sample)

    groups: list[_Group] = []
    for i, heard in enumerate(samples):
        if not groups or (heard and groups[-1].samples and min(heard) > max(groups[-1].samples)):
            groups.append(_Group(i, i, heard))
        else:
            groups[-1].last = i
            groups[-1].samples += heard

    clause_ends = [e.sample for e in events if e.type == _EVENT_END]
    starts = [min(g.samples, default=0) for g in groups]
    spans = []
    for group, start, bound in zip(groups, starts, [*starts[1:], len(audio)], strict=True):
        end = bound
        if bound == len(audio) or any(start < c <= bound for c in clause_ends):
            end = _sounding_end(audio, start, bound)
        spans.append(WordSpan(text[tokens[group.first][0]:tokens[group.last][1]], start, end))
    return tuple(spans)


@dataclass(slots=True)
class _Group:
    first: int  # token indices
    last: int
    samples: list[int]  # where espeak-ng's word events put its tokens


def _sounding_end(audio: np.ndarray, start: int, end: int) -> int:
    loud = np.flatnonzero(np.abs(audio[start:end].astype(np.int32)) > _SILENCE)
    return start + int(loud[-1]) + 1 if len(loud) else end


# --------------------------------------------------------------------------- the C library


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # union {int number; const char *name; char string[8];}
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))

_lock = threading.Lock()
_instance: _Espeak | None = None


def _library() -> _Espeak:
    global _instance  # noqa: PLW0603 (the one process-wide espeak-ng, made on first use)
    if _instance is None:
        _instance = _Espeak()
    return _instance


class _Espeak:
    """The initialised library; callers hold `_lock`."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
        except OSError as exc:
            raise EngineError(
                "espeak-ng's library (libespeak-ng.so.1) was not found; install it with "
                "`apt-get install libespeak-ng1`") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EngineError("espeak-ng could not load its voice data; install it with "
                              "`apt-get install espeak-ng-data`")
        self._lib = lib
        self._audio: list[np.ndarray] = []
        self._events: list[Event] = []
        self._callback = _SynthCallback(self._receive)
        lib.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav: ctypes._Pointer[ctypes.c_short], count: int,
                 events: ctypes._Pointer[_Event]) -> int:
        if wav and count > 0:
            self._audio.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while (event := events[i]).type != _EVENT_LIST_TERMINATED:
            if event.type in (_EVENT_WORD, _EVENT_END):
                self._events.append(Event(event.type, event.text_position, event.sample))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int) -> tuple[int, np.ndarray, list[Event]]:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(f"espeak-ng has no voice for {voice!r}; `espeak-ng --voices` lists the "
                              "languages and voices it has")
        self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self._audio, self._events = [], []
        data = text.encode()
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                        _CHARS_UTF8 | _ENDPAUSE, None, None)
        if status != 0:
            raise EngineError(f"espeak-ng failed to synthesise (status {status})")
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        return self.sample_rate, audio.astype(np.int16, copy=False), self._events
