"""Caller text as the rules judge reads it (`models.judge_rules`): whisper's or a transcript's line
tidied (quotes, dashes, annotations, abbreviation periods), lower-cased, its end mark, its sentences and
clauses. Pure functions of strings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["CLAUSE_END", "SENTENCE_END", "VERB_CONTRACTION", "covered", "end_mark", "has_phrase", "normalise",
           "tidy"]

_CHARS = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "“": '"', "”": '"', "„": '"',
                        "«": '"', "»": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "})
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")  # [inaudible], (laughs), <noise>
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.;:!?])")
_END_JUNK = ' "\')]>*'
# Titles and abbreviations whisper writes with a period inside a sentence ("from Dr. Patel's office",
# "at 10 a.m. on Monday"): that period ends nothing, so it is dropped where more words follow.
_ABBREVIATION = re.compile(r"(?<![\w.])((?:dr|mr|mrs|ms|mt|st|prof|jr|sr|sig|sigg|sig\.ra|dott|dott\.ssa"
                           r"|avv|ing|geom|arch|rag|a\.m|p\.m))\.(?=\s+\S)", re.IGNORECASE)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CLAUSE_END = re.compile(r"[,;:]\s*|\s-\s")
VERB_CONTRACTION = re.compile(r"^(?:it|that|there|here|he|she|what|who|where)'s$|'(?:re|ll|m|ve|d)$")


def tidy(text: str) -> str:
    """`text` with its quotes, dashes and spaces made plain and abbreviation periods dropped; case kept."""
    return _ABBREVIATION.sub(r"\1", " ".join(unicodedata.normalize("NFC", text).translate(_CHARS).split()))


def normalise(text: str) -> str:
    """`text` tidied, lower-cased, without annotations or spaces before punctuation."""
    text = unicodedata.normalize("NFC", text).translate(_CHARS).lower()
    text = _ABBREVIATION.sub(r"\1", _SPACE_BEFORE_PUNCT.sub("", _ANNOTATION.sub(" ", text)))
    return " ".join(text.split()).strip(_END_JUNK.replace("'", ""))


def end_mark(text: str) -> str:
    """"?", "!", ".", "," (anything that leaves the sentence open) or "" (no punctuation)."""
    text = text.rstrip(_END_JUNK)
    if text.endswith("..") or text[-1:] in (",", ";", ":", "-"):
        return ","
    return text[-1] if text[-1:] in ("?", "!", ".") else ""


def has_phrase(phrase: str, joined: str) -> bool:
    """Whether `phrase` occurs as whole words in `joined` (words with a space on either side)."""
    return f" {phrase} " in joined


def covered(tokens: Sequence[str], cover: Sequence[list[str]], extra: frozenset[str] = frozenset()) -> bool:
    """Whether `tokens` are nothing but phrases of `cover` (see `judge_lexicons._cover`) and single words
    of `extra`."""
    i = 0
    while i < len(tokens):
        for words in cover:
            if tokens[i:i + len(words)] == words:
                i += len(words)
                break
        else:
            if tokens[i] not in extra:
                return False
            i += 1
    return True
