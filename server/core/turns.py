"""Whose turn is it (DESIGN.md §2 rule 4): cheap signals first, the judge second, a clock last.

1. With `question_shortcut`, the caller's newest text ending in a question mark is the bot's turn, at
   once ("shortcut"). Off by default: the rules judge is as quick on such a line, and knows when a
   question is only the first of those announced ("two questions: first, ...?"); the LLM judge leaves
   it to the rules, which are sure of a question mark.
2. Otherwise the judge reads the story: p_complete >= `threshold` is the bot's turn ("judge").
   The bot's answer starts no sooner than `min_gap_ms` into the pause (`unsure_gap_ms` when the judge
   was not sure), so a breath between two sentences is not mistaken for the end.
3. A WAIT holds the floor for the caller; once the pause reaches the backstop the bot takes the turn
   anyway ("backstop"). A confident WAIT (p_complete < `sure_wait_p`) earns a longer backstop.
4. While the judge is still out and the pause reaches `ack_after_ms`, the bot says a short
   acknowledgement instead of leaving dead air.
5. In a long caller turn, a long WAIT pause gets a backchannel ("mm-hm") when they are enabled.
   A caller who announced what is coming ("I'd like to leave a message for Marco.") or only named a
   topic, then stopped, may be waiting to be invited: the WAIT holds the floor for them (the longer
   backstop), and after `go_ahead_after_ms` of quiet the bot invites them on ("Go ahead."), once until
   it next answers.
6. A line heard with low confidence is not judged at all: once the pause reaches the backstop, the bot
   asks the caller to say it again, once; the next line is taken as heard, however unsure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnOptions:
    speculate_ms: int = 64  # pause after which the open fragment is transcribed speculatively
    threshold: float = 0.5
    question_shortcut: bool = False
    min_gap_ms: int = 200  # the bot never starts talking sooner after the caller stops
    unsure_gap_ms: int = 400  # ... nor sooner than this when the judge's COMPLETE is not sure
    sure_complete_p: float = 0.9
    draft_while_judging: bool = True  # start the reply while the judge is out; kept for the backstop on
    # WAIT (its prompt also holds the caller's words so far for the next reply), dropped when they go on
    backstop_ms: int = 2000
    backstop_sure_ms: int = 4000
    sure_wait_p: float = 0.2
    ack_after_ms: int = 1200
    backchannels: bool = True
    backchannel_after_ms: int = 1500  # pause length that earns a backchannel
    backchannel_min_turn_ms: int = 6000  # caller speech in this turn before backchannels start
    backchannel_every_ms: int = 8000
    go_ahead_after_ms: int = 1500  # a pause as long as one that earns a backchannel; 0: never
    go_ahead_for: tuple[str, ...] = ("preamble", "topic")  # the judge's reasons for a WAIT that invite one
    # Rule 11: a caller's line heard with confidence below this is not guessed at: the bot asks once
    # to hear it again (never twice in a row). 0 turns it off. At 0.3, whisper's confidence on short
    # answers (benchmarks/whisper_noise.json) asks 1.9 % of those heard right and 39 % of those misheard.
    repeat_below: float = 0.3
    # ... and speech this long that gave no words at all is asked for again too (once), rather than left
    # unanswered or answered as if the caller's words before it were all they said.
    repeat_min_speech_ms: int = 600

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("turn threshold must be between 0 and 1")
        if self.backstop_sure_ms < self.backstop_ms:
            raise ValueError("backstop_sure_ms must not be shorter than backstop_ms")
        if self.go_ahead_after_ms < 0:
            raise ValueError("go_ahead_after_ms must not be negative")


_TRAILING = re.compile(r"[\s\"'»”)\]]+$")


def asks_question(text: str) -> bool:
    return _TRAILING.sub("", text).endswith("?")


def gap_ms(options: TurnOptions, by: str, p_complete: float | None) -> int:
    """How long the caller must have been quiet before the bot's answer may start."""
    if by == "judge" and p_complete is not None and p_complete < options.sure_complete_p:
        return max(options.min_gap_ms, options.unsure_gap_ms)
    return options.min_gap_ms


def backstop_ms(options: TurnOptions, p_complete: float | None) -> int:
    if p_complete is not None and p_complete < options.sure_wait_p:
        return options.backstop_sure_ms
    return options.backstop_ms


_WORD = re.compile(r"[\w'-]+")

# A caller saying only these over the bot lets it go on: "Thanks." over a read-back of their number is
# thanks for it, not a wish to stop it.
BACKCHANNELS = frozenset({
    "mhm", "mm-hm", "mm", "hm", "hmm", "uh-huh", "ok", "okay", "yeah", "yes", "yep", "right", "sure",
    "alright", "all right", "i see", "got it", "oh", "ah", "thanks", "thank you", "perfect",
    "sì", "si", "certo", "capito", "esatto", "ecco", "va bene", "già", "giusto", "ho capito", "grazie",
    "perfetto",
})


def is_backchannel(text: str, phrases: frozenset[str] = BACKCHANNELS) -> bool:
    """Only acknowledgements ("mhm", "ok, sure", "sì sì"), no content."""
    tokens = _WORD.findall(text.lower())
    if not tokens or len(tokens) > 4:
        return False
    i = 0
    while i < len(tokens):
        n = next((n for n in (3, 2, 1) if " ".join(tokens[i:i + n]) in phrases), 0)
        if n == 0:
            return False
        i += n
    return True
