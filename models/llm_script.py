"""LLM `script`: the bot's replies are lines written in advance.

The Nth reply of a call speaks the Nth line, counting the bot's lines already in the story after its
greeting (a reply that was cut off counts as given). When the lines run out the reply is empty and ends
the call. Text streams word by word, like tokens from a model, so the clause splitting downstream works
as it does with a real LLM. For tests, demos and evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from models.engines import CallContext, Line, ReplyDelta, ReplyEnd, ReplyEvent


class ScriptLlm:
    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = [line.strip() for line in lines if line.strip()]

    def reply(self, story: Sequence[Line], context: CallContext) -> Iterator[ReplyEvent]:
        given = sum(1 for line in story if line.role == "bot")
        if story and story[0].role == "bot":
            given -= 1  # the greeting
        if given >= len(self.lines):
            yield ReplyEnd(end_call=True)
            return
        words = self.lines[given].split(" ")
        for i, word in enumerate(words):
            yield ReplyDelta(word if i == 0 else " " + word)
        yield ReplyEnd(end_call=False)
