"""The message a call leaves: who called, the number to call back, what they want, how urgent.

At the end of a call the reply LLM reads the call's transcript and writes the message as JSON under a
schema (`MESSAGE_SCHEMA`: llama.cpp samples under a grammar made from it, vLLM under its own guided
decoding); what comes back is checked field by field before it is believed. A name or a number the
caller never said is not taken from the model: the address book's name and the number the call came
from stand in. When the engine cannot write JSON (the `script` engine), fails, times out or writes
something that does not hold up, the message is the transcript itself: the caller's lines, joined.

Prompts are `message.<language>.txt`, looked up like the reply templates (the owner's `[llm] prompts`
folder first, then the ones shipped in models/prompts/), with these placeholders: {owner_name}
{caller_number} {caller_name} {date} {time} {language}.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from models.engines import Line
from models.prompts import base_language, find_template
from server.contacts.numbers import normalise
from server.core.dictation import digits_said
from server.core.speech import WORDLESS
from server.core.story import CUT_OFF
from server.store.schema import Call, Message

log = logging.getLogger(__name__)

URGENCIES = ("low", "normal", "high")
MAX_NAME = 200
MAX_NUMBER = 64
MAX_TEXT = 2000
UNHEARD_FRAGMENT_S = 0.6  # a fragment with no words counts as unheard speech from this long (as rule 11 asks)
UNHEARD_MIN_S = 1.5  # a call with this much of it and no words at all still leaves a message

# No length limits here: llama.cpp turns each one into a grammar rule nested as deep as the limit.
# Lengths are checked on what comes back instead.
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "caller_name": {"type": "string"},
        "callback_number": {"type": "string", "pattern": "^[+0-9 ]*$"},
        "text": {"type": "string", "minLength": 1},
        "urgency": {"type": "string", "enum": list(URGENCIES)},
        "language": {"type": "string", "pattern": "^[a-z][a-z]$"},
    },
    "required": ["caller_name", "callback_number", "text", "urgency", "language"],
    "additionalProperties": False,
}

_PLACEHOLDER = re.compile(r"\{(owner_name|caller_number|caller_name|date|time|language)\}")
# in each template's language: the owner unnamed, a value unknown, and language names
_WORDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "en": ("the owner", "unknown", {"en": "English", "it": "Italian", "de": "German", "fr": "French",
                                    "es": "Spanish"}),
    "it": ("il titolare", "sconosciuto", {"en": "inglese", "it": "italiano", "de": "tedesco",
                                          "fr": "francese", "es": "spagnolo"}),
}
_WORD = re.compile(r"\w+", re.UNICODE)


class Extractor(Protocol):
    """A reply engine that can also write one JSON object under a schema (llama_cpp, openai)."""

    def extract(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *, max_tokens: int = 400,
                timeout_s: float = 60.0, interrupt: Callable[[], bool] | None = None) -> dict[str, Any]: ...


class InvalidMessage(ValueError):
    """What the model wrote does not hold up; the text names the field, never its value."""


class Interrupted(Exception):
    """The engine stopped writing because `interrupt()` said so; the message is still to be made."""


@dataclass(frozen=True, slots=True)
class CallStory:
    """What a message is made from: the call's lines and what is known about it besides."""

    lines: tuple[Line, ...]
    caller_number: str = ""  # as the network presented it ("" when withheld, "browser" for a test call)
    caller_name: str = ""  # from the address book
    owner_name: str = ""
    language: str = "en"
    started_at: datetime | None = None

    def caller_lines(self) -> list[str]:
        return [line.text for line in self.lines if line.role == "caller" and line.text.strip()]


@dataclass(frozen=True, slots=True)
class TakenMessage:
    caller_name: str
    callback_number: str
    text: str
    urgency: str
    language: str
    source: str  # llm | transcript
    transcript: str

    def row(self, call_id: int) -> Message:
        return Message(call_id=call_id, caller_name=self.caller_name, callback_number=self.callback_number,
                       text=self.text, urgency=self.urgency, language=self.language, source=self.source,
                       transcript=self.transcript)


def story_of_call(call: Call, owner_name: str = "", default_language: str = "en") -> CallStory:
    """A stored call's story: its caller fragments and what the caller heard of the bot, in time order
    (a bot line cut off ends in "... [cut off]", as the reply model saw it)."""
    timed: list[tuple[float, int, Line]] = []
    for f in call.fragments:
        if f.text.strip():
            timed.append((f.start_s, 1, Line("caller", f.text.strip())))
    for b in call.bot_turns:
        if b.kind in WORDLESS:
            continue
        heard = b.heard.strip()
        if b.cut_off:
            heard = f"{heard} {CUT_OFF}" if heard else ""
        if heard:
            timed.append((b.start_s, 0, Line("bot", heard)))
    timed.sort(key=lambda item: (item[0], item[1]))
    return CallStory(tuple(line for _, _, line in timed), caller_number=call.caller_number,
                     caller_name=call.caller_name, owner_name=owner_name,
                     language=call.language or default_language, started_at=call.started_at)


def transcript_text(lines: Sequence[Line]) -> str:
    return "\n".join(f"{'Caller' if line.role == 'caller' else 'Assistant'}: {line.text}" for line in lines)


def prompt_messages(story: CallStory, template_dir: str | Path | None = None) -> list[dict[str, str]]:
    template, written_in = find_template("message", story.language, template_dir)
    owner, unknown, names = _WORDS.get(written_in, _WORDS["en"])
    started = story.started_at.astimezone() if story.started_at else datetime.now().astimezone()
    language = base_language(story.language)
    values = {
        "owner_name": story.owner_name or owner,
        "caller_number": normalise(story.caller_number) or unknown,
        "caller_name": story.caller_name or unknown,
        "date": started.date().isoformat(),
        "time": started.strftime("%H:%M"),
        "language": names.get(language, language),
    }
    system = _PLACEHOLDER.sub(lambda m: values[m[1]], template)
    return [{"role": "system", "content": system}, {"role": "user", "content": transcript_text(story.lines)}]


def unheard_speech_s(call: Call) -> float:
    """Seconds of the caller's speech that came to no words, in fragments long enough to have held some
    (a cough or a knock is shorter)."""
    return sum(f.end_s - f.start_s for f in call.fragments
               if not f.text.strip() and f.end_s - f.start_s >= UNHEARD_FRAGMENT_S)


def unheard_message(story: CallStory, unheard_s: float) -> TakenMessage | None:
    """The message of a call whose caller spoke for `unheard_s` seconds and none of it came out as words
    (a bad line, a language the recogniser does not know): that they called, and from which number. None
    when words were heard (they make the message) or the speech was too short to be sure of a caller."""
    if story.caller_lines() or unheard_s < UNHEARD_MIN_S:
        return None
    text = (f"The caller spoke for about {round(unheard_s)} seconds, but none of it could be made out "
            "(the line may have been bad).")
    return TakenMessage(caller_name=story.caller_name[:MAX_NAME],
                        callback_number=normalise(story.caller_number)[:MAX_NUMBER], text=text,
                        urgency="normal", language="en", source="standin", transcript="")


def transcript_message(story: CallStory) -> TakenMessage:
    """The message when no model writes one: the caller's own words."""
    return TakenMessage(caller_name=story.caller_name[:MAX_NAME],
                        callback_number=normalise(story.caller_number)[:MAX_NUMBER],
                        text=" ".join(story.caller_lines())[:MAX_TEXT], urgency="normal",
                        language=base_language(story.language), source="transcript",
                        transcript=transcript_text(story.lines))


def parse_message(data: Mapping[str, Any], story: CallStory) -> TakenMessage:
    """Check what the model wrote against `MESSAGE_SCHEMA` and against the call; raises InvalidMessage."""
    fields = {}
    for key in MESSAGE_SCHEMA["required"]:
        value = data.get(key)
        if not isinstance(value, str):
            raise InvalidMessage(f"{key} is missing or not a string")
        fields[key] = " ".join(value.split())
    text = fields["text"]
    if not text or len(text) > MAX_TEXT:
        raise InvalidMessage(f"text is empty or longer than {MAX_TEXT} characters")
    if fields["urgency"] not in URGENCIES:
        raise InvalidMessage("urgency is not one of " + ", ".join(URGENCIES))
    if not _grounded(text, story):
        raise InvalidMessage("the text is not made of what the caller said")
    language = fields["language"].lower()
    if not re.fullmatch(r"[a-z]{2}", language):
        language = base_language(story.language)
    heard = " ".join(story.caller_lines())
    name = fields["caller_name"][:MAX_NAME]
    if name and not _said(name, heard):
        name = ""  # a name the caller never said is the model's invention
    number = normalise(fields["callback_number"])
    if number and not _number_said(number, heard):
        number = ""
    return TakenMessage(caller_name=name or story.caller_name[:MAX_NAME],
                        callback_number=(number or normalise(story.caller_number))[:MAX_NUMBER],
                        text=text, urgency=fields["urgency"], language=language, source="llm",
                        transcript=transcript_text(story.lines))


def take_message(story: CallStory, engine: object, *, template_dir: str | Path | None = None,
                 timeout_s: float = 60.0, max_tokens: int = 400,
                 interrupt: Callable[[], bool] | None = None) -> TakenMessage | None:
    """The message `story` leaves (None when the caller said nothing): written by `engine` when it can
    extract, else, or when that fails, the transcript. Raises Interrupted when `interrupt()` stopped it."""
    if not story.caller_lines():
        return None
    extract = getattr(engine, "extract", None)
    if extract is None:
        return transcript_message(story)
    try:
        data = extract(prompt_messages(story, template_dir), MESSAGE_SCHEMA, max_tokens=max_tokens,
                       timeout_s=timeout_s, interrupt=interrupt)
        return parse_message(data, story)
    except Exception as exc:
        if interrupt is not None and interrupt():
            raise Interrupted from exc
        # An engine's text can quote the caller (even an EngineError, from an engine not ours); the
        # checks' own reasons never do.
        reason = f"InvalidMessage: {exc}" if isinstance(exc, InvalidMessage) else type(exc).__name__
        log.warning("the message is the transcript (the message writer failed: %s)", reason)
        return transcript_message(story)


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) >= 4 and not w.isdigit()}


def _grounded(text: str, story: CallStory) -> bool:
    """Whether a written message is made of what the caller said: at least a third of its words are the
    caller's, and no more of them come from the bot's lines alone than from the caller's. A small model
    may hand back the greeting, its own last reply or a refusal as the message; the caller's own words
    (the transcript) are then the better message. A fluent paraphrase keeps the caller's names and
    nouns, so it passes."""
    caller = _content_words(" ".join(story.caller_lines()))
    if not caller:
        return True
    bot = _content_words(" ".join(line.text for line in story.lines if line.role == "bot")) - caller
    words = _content_words(text)
    from_caller, from_bot = len(words & caller), len(words & bot)
    return 3 * from_caller >= len(words) and from_bot <= from_caller


def _said(name: str, heard: str) -> bool:
    """Every word of `name` is a word of what the caller said."""
    words = {w.lower() for w in _WORD.findall(heard)}
    return all(w.lower() in words for w in _WORD.findall(name))


def _number_said(number: str, heard: str) -> bool:
    """`number`'s digits were dictated in what the caller said, possibly after the country code: as
    numerals or as words, in English or Italian, the way the core hears a dictated number ("oh two oh",
    "double five", "trentaquattro"; server/core/dictation.py). The E.164 form the core reports for a
    number it read back (summary.json's `dictated_number`) passes, trunk 0 and all, when it was spoken:
    digits keyed on the keypad are not in the transcript."""
    digits = number.lstrip("+")
    for spoken in {digits_said(heard, language) for language in ("en", "it")}:
        if len(digits) >= 3 and (digits in spoken or any(
                digits[k:] in spoken and len(digits) - k >= 6 for k in range(1, 4))):
            return True
    return False
