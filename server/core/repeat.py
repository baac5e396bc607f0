"""Unsure hearing (rule 11): a line heard too unsurely to act on, or speech that came to no words, makes
the bot ask the caller to say it again, once, never twice in a row. The question waits until the pause is
as long as the backstop, like any unfinished line: a caller who mumbled and goes on is not cut into.
"""

from __future__ import annotations

from collections.abc import Callable

from server.core import events as ev
from server.core.desk import Desk
from server.core.mouth import Mouth
from server.core.speech import Kind
from server.core.turns import TurnOptions


class AskToRepeat:
    """`set_aside` is the conversation's side of asking: the line stays out of the story, no turn is
    decided for it."""

    def __init__(self, options: TurnOptions, question: str, desk: Desk, mouth: Mouth, rate: int, *,
                 set_aside: Callable[[], None]) -> None:
        self.options = options
        self._question = question
        self._desk = desk
        self._mouth = mouth
        self._rate = rate
        self._set_aside = set_aside
        self.asked = False  # the bot's last answer to the caller asked them to say it again
        self._epoch: int | None = None  # the caller's voice onset a pending question follows

    def unsure(self, confidence: float, quiet_since: float | None, voice_epoch: int) -> bool:
        """A final line heard with `confidence`: whether it was set aside to be asked for again."""
        if confidence >= self.options.repeat_below:
            return False
        return self._ask("unsure", quiet_since, voice_epoch, confidence=round(confidence, 3))

    def unheard(self, speech: int, quiet_since: float | None, voice_epoch: int) -> bool:
        """A fragment of `speech` samples that came to no words, while nothing the caller said since the bot
        last spoke stands: whether the bot will ask for it again. Without this the caller would wait for an
        answer that never comes (whisper returns nothing for speech it cannot make out)."""
        if quiet_since is None:
            return False
        if speech < round(self.options.repeat_min_speech_ms * self._rate / 1000):
            return False  # a short noise
        return self._ask("no words", quiet_since, voice_epoch, speech_ms=round(speech * 1000 / self._rate))

    def _ask(self, why: str, quiet_since: float | None, voice_epoch: int, **note: object) -> bool:
        if self.asked or self._mouth.line:
            return False
        self._desk.note(why.replace(" ", "_"), **note)
        self._set_aside()
        if quiet_since is not None:
            self._epoch = voice_epoch
            self._desk.emit(ev.StartTimer(ev.Timer.REPEAT, quiet_since + self.options.backstop_ms / 1000))
        return True

    def heard(self, text: str) -> None:
        """A final caller line joined the story: after words, a later one may be asked for again."""
        self.asked = self.asked and not text

    def due(self, voice_epoch: int, quiet: bool, still_set_aside: bool) -> None:
        """The question's timer fired: ask, unless the caller spoke again (their next words are heard on
        their own), the bot has the line, or the story moved on."""
        epoch, self._epoch = self._epoch, None
        if epoch != voice_epoch or not quiet:
            return
        if self.asked or self._mouth.line or not still_set_aside:
            return
        self.asked = True
        self._mouth.say(Kind.REPEAT, self._question)
