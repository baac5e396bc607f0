"""The number the caller dictates to be called back on, as the call goes (rule 11): the keys pressed, each
read-back the bot said, and whether the caller said no to the last one. What a number is and when it is
complete is `server/core/dictation.py`'s business; when it decides a turn, the conversation's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from server.core.dictation import DictationOptions, Reading, Status, denies, expects_digits, read_lines, spell
from server.core.events import StoryLine
from server.core.mouth import Mouth
from server.core.speech import WORDLESS, Kind, State, Utterance


@dataclass(slots=True)
class _ReadBack:
    utterance: Utterance
    number: str  # E.164 when it could be told
    denied: bool = False  # the caller's next line began with a "no"


class CallbackNumber:
    def __init__(self, options: DictationOptions, readback: str) -> None:
        self.options = options
        self._readback = readback  # {number} is the number
        self._keys: list[tuple[int, str]] = []  # keypad presses: (story lines before it, key)
        self._readbacks: list[_ReadBack] = []

    @property
    def keyed(self) -> bool:
        """The caller has pressed a key."""
        return bool(self._keys)

    def key(self, lines_before: int, digit: str) -> None:
        self._keys.append((lines_before, digit))

    def reading(self, story: Sequence[StoryLine], spoken: Sequence[Utterance], final: bool = False
                ) -> Reading:
        """The number the caller is dictating, if they are, after `story` and the bot's `spoken` lines."""
        lines = [(line.role, line.text) for line in story]
        last = self._last_readback(spoken)
        reading = read_lines(lines, self._keys, self.options, asked=last is not None, final=final)
        if last is not None:
            said = [text for _, text in itertools.takewhile(lambda x: x[0] == "caller", reversed(lines))]
            last.denied = bool(said) and denies(said[-1], self.options.language)
            if reading.number == last.number and not last.denied:
                return Reading(Status.NONE)  # said again after the read-back: that is a yes
        return reading

    def expects_digits(self, story: Sequence[StoryLine], spoken: Sequence[Utterance]) -> bool:
        """Whether the caller's next words are likely digits of the number (`dictation.expects_digits`)."""
        lines = [(line.role, line.text) for line in story]
        return expects_digits(lines, self._keys, self.options, asked=self._last_readback(spoken) is not None)

    def _last_readback(self, spoken: Sequence[Utterance]) -> _ReadBack | None:
        """The read-back that was the bot's last line, if it was one."""
        said = [u for u in spoken if u.kind not in WORDLESS]
        return next((r for r in self._readbacks if said and r.utterance is said[-1]), None)

    def read_back(self, reading: Reading, mouth: Mouth) -> Utterance | None:
        text = self._readback.replace("{number}", spell(reading, self.options.language))
        u = mouth.say(Kind.READBACK, text)
        if u is not None:
            self._readbacks.append(_ReadBack(u, reading.number))
        return u

    def number(self) -> str | None:
        """The last number read back to the caller, unless they said no to it (E.164 when known)."""
        heard = [r for r in self._readbacks if r.utterance.state not in (State.HELD, State.CANCELLED)]
        return heard[-1].number if heard and not heard[-1].denied else None
