"""Reply prompts: an owner-editable template per language, and the story as chat messages.

A template is `reply.<language>.txt`, looked up in the owner's template directory first, then among
the defaults shipped in `models/prompts/`; a language without a template gets the English one. These
placeholders are filled at call time (any other braces are left as written):
{owner_name} {caller_number} {caller_name} {date} {time} {language}.

The model ends the call with the `end_call` tool where the server offers tools, else by writing
`END_CALL_MARKER`, which the templates teach; `MarkerFilter` keeps the marker out of the spoken text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from models.engines import CallContext, Line

__all__ = ["DEFAULT_DIR", "END_CALL_MARKER", "END_CALL_TOOL", "MarkerFilter", "base_language",
           "build_messages", "load_template", "system_prompt"]

DEFAULT_DIR = Path(__file__).with_name("prompts")
END_CALL_MARKER = "[END_CALL]"
END_CALL_TOOL = {
    "type": "function",
    "function": {
        "name": "end_call",
        "description": "Hang up after your goodbye has been spoken: the caller said goodbye, or is "
                       "only selling something.",
        "parameters": {"type": "object", "properties": {}},
    },
}

_PLACEHOLDER = re.compile(r"\{(owner_name|caller_number|caller_name|date|time|language)\}")
_LANGUAGES = {"en": "English", "it": "Italian", "de": "German", "fr": "French", "es": "Spanish"}
_UNKNOWN = {"en": ("the owner", "unknown"), "it": ("il titolare", "sconosciuto")}  # owner, other


def base_language(code: str) -> str:
    """"it" for "it-IT", "it_IT" or "IT"."""
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0] or "en"


def load_template(language: str, template_dir: str | Path | None = None) -> str:
    language = base_language(language)
    dirs = [Path(template_dir).expanduser()] if template_dir else []
    for name in (f"reply.{language}.txt", "reply.en.txt"):
        for directory in (*dirs, DEFAULT_DIR):
            path = directory / name
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
    raise FileNotFoundError(f"no reply template in {template_dir or DEFAULT_DIR}; reinstall standin")


def system_prompt(context: CallContext, template_dir: str | Path | None = None) -> str:
    language = base_language(context.language)
    owner, unknown = _UNKNOWN.get(language, _UNKNOWN["en"])
    try:
        started = datetime.fromisoformat(context.started_at) if context.started_at else datetime.now()
    except ValueError:
        started = datetime.now()
    values = {
        "owner_name": context.owner_name or owner,
        "caller_number": context.caller_number or unknown,
        "caller_name": context.caller_name or unknown,
        "date": started.date().isoformat(),
        "time": started.strftime("%H:%M"),
        "language": _LANGUAGES.get(language, language),
    }
    return _PLACEHOLDER.sub(lambda m: values[m[1]], load_template(language, template_dir))


def build_messages(story: Sequence[Line], context: CallContext,
                   template_dir: str | Path | None = None) -> list[dict[str, str]]:
    """The system prompt, then the story: bot lines as the assistant, caller lines as the user.
    Consecutive lines of one side become one message; bot lines keep their cut-off marks."""
    messages = [{"role": "system", "content": system_prompt(context, template_dir)}]
    for line in story:
        text = line.text.strip()
        if not text:
            continue
        role = "assistant" if line.role == "bot" else "user"
        if messages[-1]["role"] == role:
            messages[-1]["content"] += " " + text
        else:
            messages.append({"role": role, "content": text})
    return messages


class MarkerFilter:
    """Removes `marker` (case-insensitive) from streamed text, even when it arrives in pieces: text
    that could be the start of the marker is held back until the next piece decides. Once the marker
    is `seen`, everything after it is dropped."""

    def __init__(self, marker: str = END_CALL_MARKER) -> None:
        self._pattern = re.compile(re.escape(marker), re.IGNORECASE)
        self._lower = marker.lower()
        self._held = ""
        self.seen = False

    def feed(self, text: str) -> str:
        if self.seen:
            return ""
        text = self._held + text
        found = self._pattern.search(text)
        if found:
            self.seen = True
            self._held = ""
            return text[:found.start()]
        hold = next((k for k in range(min(len(self._lower) - 1, len(text)), 0, -1)
                     if text[-k:].lower() == self._lower[:k]), 0)
        self._held = text[len(text) - hold:]
        return text[:len(text) - hold]

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.seen else held
