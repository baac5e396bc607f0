"""Spelled letters and email addresses at the end of a caller's words, for the rules judge
(`models.judge_rules`): whether the words end in a spelling, and whether its letters spell a word said
before them (the spelling is done) or only the start of one (more letters are coming); whether they end
in the first half of an email address. Pure functions of normalised text and tokens.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal

from models.judge_lexicons import Lexicon

__all__ = ["email_started", "ends_in_postcode", "ends_in_spelling", "spells"]

_LETTER_RUN = re.compile(r"[a-z](?:-[a-z])+")  # letters spelled with hyphens: "k-o-w"
_DOTTED_NAME = re.compile(r"[^\W\d_]\.([^\W\d_]+)[.!]?$")  # whisper's "anna.berg."
_POSTCODE_MAX = 10  # characters: longer than any country's postcode
_DOMAIN_ENDS = frozenset({"com", "org", "net", "info", "edu", "gov", "io", "eu", "uk", "co", "it", "de", "fr",
                          "es", "ch"})


def ends_in_spelling(tokens: Sequence[str], lex: Lexicon) -> bool:
    """The words end in letters spelled one by one ("w h i", "u g o", "w-h-i") or in a spelling alphabet
    ("r come roma", "b for bravo")."""
    if _LETTER_RUN.fullmatch(tokens[-1]):
        return True
    tail = tokens[-3:]
    letters = len(tail) >= 2 and all(len(t) == 1 and t.isalpha() for t in tail[-2:])
    if letters and not all(t in lex.one_letter_words for t in tail[-2:]):
        return True
    return bool(lex.spelling_re.search(" ".join(tokens[-4:])))


def ends_in_postcode(tokens: Sequence[str], lex: Lexicon) -> bool:
    """The words end in a whole postcode, read out piece by piece or not ("b s six four q t", "bs6 4qt"):
    the address it ends is given. Its pieces are digits and runs of at most two letters (so no longer
    word is read as a part of one); the caller judges whether an address is being given at all."""
    tail = ""
    for token in reversed(tokens):
        piece = lex.digit_words.get(token, token)
        word = not any(c.isdigit() for c in piece) and len(piece) > 2
        if word or not (piece.isascii() and piece.isalnum()):
            return False
        tail = piece.upper() + tail
        if lex.postcode_re.fullmatch(tail):
            return True
        if len(tail) > _POSTCODE_MAX:
            return False
    return False


def email_started(sentence: str, tokens: Sequence[str], lex: Lexicon) -> bool:
    """The last sentence (`sentence`, its words `tokens`) ends in the name before an email address's "at"
    ("It's anna dot berg.", "È anna punto berti."), with no "at" said: the domain is still to come. Not a
    domain ("standin dot com")."""
    if "@" in sentence or any(t in lex.email_ats for t in tokens):
        return False
    dotted = _DOTTED_NAME.search(sentence)
    if dotted:
        return dotted[1].lower() not in _DOMAIN_ENDS
    if len(tokens) < 3 or tokens[-2] not in lex.email_dots or tokens[-1] in _DOMAIN_ENDS:
        return False
    return not any(t in lex.no_content or lex.number_re.fullmatch(t) for t in (tokens[-3], tokens[-1]))


def spells(said: Sequence[str], also: Iterable[str], lex: Lexicon) -> Literal["word", "part", ""]:
    """What the letters spelled at the end of `said` (the caller's tokens, oldest first) spell: "word" when
    a word said before them, or among `also` (the bot's last line: "how do you spell Kowalski?"), "part"
    when only the start of one, "" when neither."""
    letters, start = _spelled_run(said, lex)
    words = {_letters_of(t) for t in (*said[:start], *also)}
    words |= {a + b for a, b in itertools.pairwise(map(_letters_of, said[:start]))}  # "De Luca", "D'Angelo"
    if len(letters) < 2:
        return ""
    if letters in words:
        return "word"
    return "part" if any(len(w) > len(letters) and w.startswith(letters) for w in words) else ""


def _spelled_run(tokens: Sequence[str], lex: Lexicon) -> tuple[str, int]:
    """The letters spelled one by one at the end of `tokens` ("k o w", "k-o-w", "double l", "b come
    bologna" for "b") and the index of the first token that spells them."""
    pieces: list[str] = []
    i = len(tokens)
    while i > 0:
        token = tokens[i - 1]
        if len(token) == 1 and token.isalpha():
            double = i > 1 and tokens[i - 2] in lex.letter_doubles
            pieces.append(token * 2 if double else token)
            i -= 2 if double else 1
        elif _LETTER_RUN.fullmatch(token):
            pieces.append(token.replace("-", ""))
            i -= 1
        else:
            alphabet = (n for n in (3, 4) if i >= n and lex.spelling_re.fullmatch(" ".join(tokens[i - n:i])))
            n = next(alphabet, 0)
            if not n:
                break
            pieces.append(tokens[i - n])
            i -= n
    return "".join(reversed(pieces)), i


def _letters_of(word: str) -> str:
    """`word`'s letters, accents and apostrophes dropped ("d'angelo" -> "dangelo")."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if "a" <= c <= "z")
