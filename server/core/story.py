"""The story: the call's transcript as the models read it (DESIGN.md §2 rule 3).

Lines are appended in the order they happened. The caller's newest fragment may sit in the story before
it is final (a speculative transcript read while the pause is still growing); it is replaced or
withdrawn when the caller goes on. Every change bumps `version`; work computed for an older version is
stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.events import StoryLine

CUT_OFF = "... [cut off]"


@dataclass(slots=True)
class _Line:
    role: str
    text: str
    fragment: int | None = None


class Story:
    def __init__(self) -> None:
        self.version = 0
        self._lines: list[_Line] = []
        self._pending: _Line | None = None  # the caller's fragment still being spoken

    def lines(self) -> tuple[StoryLine, ...]:
        lines = self._lines + ([self._pending] if self._pending else [])
        return tuple(StoryLine(line.role, line.text) for line in lines)

    def render(self) -> str:
        return "\n".join(f"{line.role.capitalize()}: {line.text}" for line in self.lines())

    @property
    def pending_fragment(self) -> int | None:
        return self._pending.fragment if self._pending else None

    def set_pending(self, fragment: int, text: str) -> None:
        """The caller's fragment `fragment` says `text` so far (empty: nothing intelligible)."""
        if not text:
            self.withdraw_pending()
            return
        if self._pending and self._pending.fragment == fragment and self._pending.text == text:
            return
        self._pending = _Line("caller", text, fragment)
        self.version += 1

    def withdraw_pending(self) -> None:
        if self._pending is not None:
            self._pending = None
            self.version += 1

    def commit_caller(self, fragment: int, text: str) -> None:
        """Fragment `fragment` is final. An open line for it becomes permanent, changed only if its
        text differs, so work done on the speculative text stays current."""
        if self._pending and self._pending.fragment == fragment:
            line, self._pending = self._pending, None
            if not text:
                self.version += 1
                return
            if line.text != text:
                line.text = text
                self.version += 1
            self._lines.append(line)
        elif text:
            self._lines.append(_Line("caller", text, fragment))
            self.version += 1

    def add_bot(self, heard: str, cut_off: bool) -> None:
        """The bot said `heard` (the words whose audio reached the line). Cut off before its first word,
        it said nothing the caller heard, and the story has no line for it: a reply model shown a bare
        "... [cut off]" wrote one back, which ends its reply before a word, and the caller got no answer."""
        heard = heard.strip()
        if not heard:
            return
        text = f"{heard} {CUT_OFF}" if cut_off else heard
        # A caller fragment still open (the one that cut the bot off) stays after this line.
        self._lines.append(_Line("bot", text))
        self.version += 1

    def last_caller_fragment(self) -> int | None:
        """The fragment the caller's newest line came from."""
        for line in reversed(self._lines + ([self._pending] if self._pending else [])):
            if line.role == "caller":
                return line.fragment
        return None

    def caller_has_last_word(self) -> bool:
        lines = self.lines()
        return bool(lines) and lines[-1].role == "caller"

    def last_caller_text(self) -> str:
        for line in reversed(self._lines + ([self._pending] if self._pending else [])):
            if line.role == "caller":
                return line.text
        return ""
