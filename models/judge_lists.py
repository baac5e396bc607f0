"""Lists a caller announces and then gives item by item ("I need to tell him three things. The van is
booked. ..."), for the rules judge (`models.judge_rules`): how many items were announced and how many
have been given since, counting ordinals ("second, ...") and enders ("and finally ...")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from models.judge_lexicons import Lexicon
from models.judge_text import SENTENCE_END, has_phrase

__all__ = ["ListState", "list_state"]


@dataclass(frozen=True, slots=True)
class ListState:
    announced: int  # items the caller said were coming
    given: int  # items given since


def _count_items(text: str, lex: Lexicon, given: int, announced: int) -> int:
    pending = 0  # an ordinal seen in a chunk with no item yet ("second," / "the third one is")
    for chunk in lex.list_split_re.split(text):
        tokens = lex.tokenize(chunk)
        if not tokens:
            continue
        joined = f" {' '.join(tokens)} "
        if any(has_phrase(e, joined) for e in lex.list_enders):
            return announced
        ordinal = max((lex.ordinals.get(t, 0) for t in tokens), default=0)
        if all(t in lex.no_content for t in tokens):
            pending = max(pending, ordinal)
            continue
        given = max(given + 1, ordinal, pending)
        pending = 0
    return given


def list_state(texts: Sequence[str], lex: Lexicon) -> ListState | None:
    """The latest announced list in `texts` (normalised caller lines, oldest first) and its items."""
    state: ListState | None = None
    for text in texts:
        for sentence in SENTENCE_END.split(text):
            matches = [m for m in lex.announce_re.finditer(sentence)  # not "alle cinque in punto"
                       if not any(lex.trailing.get(w) == "preposition" and w not in lex.partitives
                                  for w in sentence[m.end("count"):m.end()].split()[:-1])]
            if matches:
                m = matches[-1]
                count = lex.list_counts[m["count"]]
                rest = sentence[m.end():]
                colon = rest.find(":")
                given = _count_items(rest[colon + 1:], lex, 0, count) if colon >= 0 else 0
                state = ListState(count, given)
            elif state is not None:
                state = ListState(state.announced,
                                  _count_items(sentence, lex, state.given, state.announced))
    return state
