"""Unsure hearing (rule 11): a line heard too unsurely to act on, or speech that came to no words, makes
the bot ask the caller to say it again, once, never twice in a row. The question waits until the pause is
as long as the backstop, like any unfinished line: a caller who mumbled and goes on is not cut into.

After the question, a line heard unsurely again is taken as heard. Speech that again came to no words
leaves nothing to take: rather than dead air, the bot says once that it still cannot make the caller out
(`unheard`, no question: the line may be bad), and then waits for words it can hear.
"""

from __future__ import annotations

from collections.abc import Callable

from server.core import events as ev
from server.core.desk import Desk
from server.core.mouth import Mouth
from server.core.speech import Kind
from server.core.turns import TurnOptions

_ASK, _TELL = "ask", "tell"  # which line a pending timer says: the question, or that the caller is not heard


class AskToRepeat:
    """`set_aside` is the conversation's side of asking: the line stays out of the story, no turn is
    decided for it."""

    def __init__(self, options: TurnOptions, question: str, desk: Desk, mouth: Mouth, rate: int, *,
                 set_aside: Callable[[], None], unheard: str = "") -> None:
        self.options = options
        self._lines = {_ASK: question, _TELL: unheard}
        self._desk = desk
        self._mouth = mouth
        self._rate = rate
        self._set_aside = set_aside
        self.asked = False  # the bot's last answer to the caller asked them to say it again
        self.told = False  # ... and since then it said it still could not make them out
        self._epoch: int | None = None  # the caller's voice onset a pending line follows
        self._pending = _ASK

    def unsure(self, confidence: float, quiet_since: float | None, voice_epoch: int) -> bool:
        """A final line heard with `confidence`: whether it was set aside to be asked for again."""
        if confidence >= self.options.repeat_below or self.asked:
            return False
        return self._ask(_ASK, "unsure", quiet_since, voice_epoch, confidence=round(confidence, 3))

    def unheard(self, speech: int, quiet_since: float | None, voice_epoch: int) -> bool:
        """A fragment of `speech` samples that came to no words, while nothing the caller said since the bot
        last spoke stands: whether the bot will answer it by asking again (or, asked already, by saying it
        cannot make them out). Without this the caller would wait for an answer that never comes (whisper
        returns nothing for speech it cannot make out)."""
        if quiet_since is None:
            return False
        if speech < round(self.options.repeat_min_speech_ms * self._rate / 1000):
            return False  # a short noise
        line = _TELL if self.asked else _ASK
        if line == _TELL and (self.told or not self._lines[_TELL]):
            return False
        speech_ms = round(speech * 1000 / self._rate)
        return self._ask(line, "no words", quiet_since, voice_epoch, speech_ms=speech_ms)

    def _ask(self, line: str, why: str, quiet_since: float | None, voice_epoch: int, **note: object) -> bool:
        if self._mouth.line:
            return False
        self._desk.note(why.replace(" ", "_"), **note)
        self._set_aside()
        self._pending = line
        if quiet_since is not None:
            self._epoch = voice_epoch
            self._desk.emit(ev.StartTimer(ev.Timer.REPEAT, quiet_since + self.options.backstop_ms / 1000))
        return True

    def heard(self, text: str) -> None:
        """A final caller line joined the story: after words, a later one may be asked for again."""
        if text:
            self.asked = self.told = False

    def due(self, voice_epoch: int, quiet: bool, still_set_aside: bool) -> None:
        """The timer fired: ask (or tell), unless the caller spoke again (their next words are heard on
        their own), the bot has the line, or the story moved on."""
        epoch, self._epoch = self._epoch, None
        if epoch != voice_epoch or not quiet:
            return
        said = self.told if self._pending == _TELL else self.asked
        if said or self._mouth.line or not still_set_aside:
            return
        self.asked = True
        self.told = self._pending == _TELL
        self._mouth.say(Kind.REPEAT, self._lines[self._pending])

