"""STT `transcript`: answers from a timed transcript instead of listening.

A transcript is a tab-separated file of phrases, `start_s  end_s  label  text` (a header row is allowed,
as in the shared scenarios). A fragment of audio gets the words of every phrase it overlaps; a phrase only
partly covered gives the share of its words that fits the covered time, so a fragment cut mid-phrase
reads like a fragment cut mid-phrase. Used by tests and evaluation to study turn-taking on real audio
timing without STT weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.engines import EngineError, Transcript


@dataclass(frozen=True, slots=True)
class Phrase:
    start_s: float
    end_s: float
    label: str
    text: str


class TranscriptError(EngineError):
    pass


def read_transcript(path: Path) -> list[Phrase]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc}") from exc
    phrases: list[Phrase] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if number == 1 and cells[0].strip().lower() == "start_s":
            continue
        if len(cells) < 4:
            raise TranscriptError(
                f"{path}:{number}: expected 4 tab-separated columns (start_s, end_s, label, text), "
                f"found {len(cells)}")
        try:
            start, end = float(cells[0]), float(cells[1])
        except ValueError:
            raise TranscriptError(f"{path}:{number}: start_s and end_s must be numbers") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start or start < 0:
            raise TranscriptError(f"{path}:{number}: need 0 <= start_s <= end_s")
        phrases.append(Phrase(start, end, cells[2].strip(), "\t".join(cells[3:]).strip()))
    return sorted(phrases, key=lambda p: p.start_s)


class TranscriptStt:
    def __init__(self, phrases: Sequence[Phrase], rate: int = 16000, slack_s: float = 0.08) -> None:
        self.phrases = list(phrases)
        self.rate = rate
        self.slack_s = slack_s  # a phrase's edges may fall this far outside the fragment

    @classmethod
    def from_file(cls, path: Path) -> TranscriptStt:
        return cls(read_transcript(path))

    def transcribe(self, audio: np.ndarray, *, start_s: float, language: str,
                   hints: Sequence[str] = ()) -> Transcript:
        end_s = start_s + len(audio) / self.rate
        words: list[str] = []
        for p in self.phrases:
            covered = min(end_s, p.end_s) - max(start_s, p.start_s)
            if covered <= 0:
                continue
            tokens = p.text.split()
            span = p.end_s - p.start_s
            if span <= 0 or (start_s <= p.start_s + self.slack_s and end_s >= p.end_s - self.slack_s):
                words.extend(tokens)
            else:
                begin = max(0.0, (start_s - p.start_s) / span)
                share = max(0.0, (end_s - p.start_s) / span)
                words.extend(tokens[round(begin * len(tokens)):round(min(share, 1.0) * len(tokens))])
        return Transcript(" ".join(words))
