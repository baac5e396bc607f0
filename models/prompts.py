"""Reply prompts: an owner-editable template per language, and the story as chat messages.

A template is `reply.<language>.txt`, looked up in the owner's template directory first, then among
the defaults shipped in `models/prompts/`; a language without a template gets the English one. These
placeholders are filled at call time (any other braces are left as written):
{owner_name} {caller_number} {caller_name} {date} {time} {language} {profile}.

`{profile}` becomes what the caller's profile and contact add: that the caller is known by name, the
manner to speak in, the owner's notes about the caller, and whether to end the call on a sales pitch;
a line holding only `{profile}` disappears when there is nothing to add. A template without `{profile}`
gets the manner, notes and sales instruction appended, so an owner's old template does not lose them.

The model ends the call with the `end_call` tool where the server offers tools, else by writing
`END_CALL_MARKER`, which the templates teach; `MarkerFilter` keeps the marker out of the spoken text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from models.engines import CallContext, Line
from models.judge_rules import caller_closed

__all__ = ["DEFAULT_DIR", "END_CALL_FORMS", "END_CALL_MARKER", "END_CALL_TOOL", "CutOffFilter",
           "MarkerFilter", "OwnerNameFilter", "ReplyText", "base_language", "build_messages", "cut_off_words",
           "find_template", "interrupted_words", "load_template", "may_end_call", "system_prompt"]

DEFAULT_DIR = Path(__file__).with_name("prompts")
END_CALL_MARKER = "[END_CALL]"
# What a small model writes for it: the 1.5B ended an Italian goodbye with "[CALL_END]", spoken aloud.
END_CALL_FORMS = (END_CALL_MARKER, "[CALL_END]", "[END CALL]", "[CALL END]", "[ENDCALL]", "[END-CALL]")
# How the story marks a bot line the caller cut off (server/core/story.py writes it; the reply prompt
# shows a note instead, below). A small model that has been cut off may write its line again, mark and all.
CUT_OFF_MARKS = ("... [cut off]", "[cut off]")
# How the reply prompt tells the model what the caller heard of its line before cutting it off, at the
# start of the caller's next message (build_messages). The note explains itself: explained in the
# system prompt instead, the 1.5B wrote one of its own to open 1 of 44 first replies ("Ti ho interrotto
# dopo: ...") and read it aloud, or began with the note and said nothing; this way 0 of 44.
CUT_OFF_NOTES = {
    "en": '(You were cut off: the caller heard only "{words}" of your last line.)',
    "it": '(Sei stato interrotto: chi chiama ha sentito solo "{words}" della tua ultima battuta.)',
}
_NOTE_LEADS = tuple(note.split('"')[0].strip("( ") for note in CUT_OFF_NOTES.values())
END_CALL_TOOL = {
    "type": "function",
    "function": {
        "name": "end_call",
        "description": "Hang up after your goodbye has been spoken, when the call is over as your "
                       "instructions describe.",
        "parameters": {"type": "object", "properties": {}},
    },
}

_PLACEHOLDER = re.compile(r"\{(owner_name|caller_number|caller_name|date|time|language|profile)\}")
_PROFILE_LINE = re.compile(r"^[ \t]*\{profile\}[ \t]*(\n|$)", re.MULTILINE)
_LANGUAGES = {"en": "English", "it": "Italian", "de": "German", "fr": "French", "es": "Spanish"}
_UNKNOWN = {"en": ("the owner", "unknown"), "it": ("il titolare", "sconosciuto")}  # owner, other
_PROFILE_TEXT = {
    "en": {
        "known": "- The caller is {caller_name}, whom {owner_name} knows: greet them by name and do not ask "
                 "who is calling.",
        "manner": "- How to speak with this caller: {manner}.",
        "notes": "- What {owner_name} noted about this caller (for you, not to be read out): {notes}",
        "sales": "- If the caller is trying to sell something, do not take a message: say politely that "
                 "{owner_name} is not interested, say goodbye in one sentence, and end the call.",
        "end_call": " Write {marker} on a line of its own after that goodbye.",
    },
    "it": {
        "known": "- Chi chiama è {caller_name}, che {owner_name} conosce: usa il suo nome nel saluto e non "
                 "chiedere chi parla.",
        "manner": "- Come parlare con chi chiama: {manner}.",
        "notes": "- Note di {owner_name} su chi chiama (per te, da non leggere ad alta voce): {notes}",
        "sales": "- Se chi chiama cerca di vendere qualcosa, non prendere il messaggio: di' con gentilezza "
                 "che {owner_name} non desidera offerte, saluta con una frase e chiudi la chiamata.",
        "end_call": " Dopo quel saluto scrivi {marker} su una riga a parte.",
    },
}


def base_language(code: str) -> str:
    """"it" for "it-IT", "it_IT" or "IT"."""
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0] or "en"


def find_template(kind: str, language: str, template_dir: str | Path | None = None) -> tuple[str, str]:
    """`<kind>.<language>.txt` (the owner's template directory first, then the defaults; English when
    the language has none): its text, and the language it is written in."""
    dirs = [Path(template_dir).expanduser()] if template_dir else []
    for lang in dict.fromkeys((base_language(language), "en")):
        for directory in (*dirs, DEFAULT_DIR):
            path = directory / f"{kind}.{lang}.txt"
            if path.is_file():
                return path.read_text(encoding="utf-8").strip(), lang
    raise FileNotFoundError(f"no {kind} template in {template_dir or DEFAULT_DIR}; reinstall standin")


def load_template(language: str, template_dir: str | Path | None = None) -> str:
    return find_template("reply", language, template_dir)[0]


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
    template = load_template(language, template_dir)
    extra = ""
    if "{profile}" in template:
        values["profile"] = profile_instructions(context, values["owner_name"])
        if not values["profile"]:
            template = _PROFILE_LINE.sub("", template).strip()
    else:
        extra = profile_instructions(context, values["owner_name"], known=False)
    text = _PLACEHOLDER.sub(lambda m: values[m[1]], template)
    return f"{text}\n{extra}" if extra else text


def profile_instructions(context: CallContext, owner_name: str, known: bool = True) -> str:
    """The `{profile}` lines for `context`, in its language ("" when the profile adds nothing).
    `known`: include the line about a caller known by name."""
    text = _PROFILE_TEXT.get(base_language(context.language), _PROFILE_TEXT["en"])
    lines = []
    if known and context.caller_name.strip():
        lines.append(text["known"].format(caller_name=_one_line(context.caller_name), owner_name=owner_name))
    if context.manner.strip():
        lines.append(text["manner"].format(manner=_one_line(context.manner).rstrip(".")))
    if context.caller_notes.strip():
        lines.append(text["notes"].format(owner_name=owner_name, notes=_one_line(context.caller_notes)))
    if context.end_on_sales:
        lines.append(text["sales"].format(owner_name=owner_name)
                     + text["end_call"].format(marker=END_CALL_MARKER))
    return "\n".join(lines)


def _one_line(text: str) -> str:
    """Owner-written text, kept to one line so it cannot pose as more of the template's rules."""
    return " ".join(text.split())


def build_messages(story: Sequence[Line], context: CallContext,
                   template_dir: str | Path | None = None) -> list[dict[str, str]]:
    """The system prompt, then the story: bot lines as the assistant, caller lines as the user.
    Consecutive lines of one side become one message. A bot line the caller cut off is not the
    assistant's: shown its own interrupted line, a small model writes it again, mark and all, and has
    nothing else to say (the 1.5B did in 6 of 12 such stories; 0 of 12 this way). What the caller heard
    of it opens their next message as a note instead (`CUT_OFF_NOTES`)."""
    messages = [{"role": "system", "content": system_prompt(context, template_dir)}]
    note = CUT_OFF_NOTES.get(base_language(context.language), CUT_OFF_NOTES["en"])
    heard: str | None = None  # the words of a cut-off bot line, for the caller's next message
    for line in story:
        text = line.text.strip()
        if not text:
            continue
        role = "assistant" if line.role == "bot" else "user"
        if role == "assistant" and (words := cut_off_words(text)) is not None:
            heard = words
            continue
        if role == "user" and heard:
            text = f"{note.format(words=heard)} {text}"
        heard = None if role == "user" else heard
        if messages[-1]["role"] == role:
            messages[-1]["content"] += " " + text
        else:
            messages.append({"role": role, "content": text})
    return messages


def cut_off_words(text: str) -> str | None:
    """The words before the story's cut-off mark when `text` ends in one, else None."""
    text = text.rstrip()
    for mark in CUT_OFF_MARKS:
        if text.endswith(mark):
            return text[:-len(mark)].strip()
    return None


class MarkerFilter:
    """Removes a marker, any of `markers` (case-insensitive; the end-call marker's forms by default),
    from streamed text, even when it arrives in pieces: text that could be the start of one is held back
    until the next piece decides. Once a marker is `seen`, everything after it is dropped."""

    def __init__(self, *markers: str) -> None:
        markers = markers or END_CALL_FORMS
        self._pattern = re.compile("|".join(map(re.escape, markers)), re.IGNORECASE)
        self._forms = tuple(m.lower() for m in markers)
        self._longest = max(map(len, self._forms))
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
        hold = next((k for k in range(min(self._longest - 1, len(text)), 0, -1)
                     if any(form.startswith(text[-k:].lower()) for form in self._forms)), 0)
        self._held = text[len(text) - hold:]
        return text[:len(text) - hold]

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.seen else held


class CutOffFilter:
    """Ends a streamed reply where the model starts writing the story's cut-off mark: what follows is more
    of the story, none of it for the caller's ears. Text before the mark is kept ("Could you ... [cut off]"
    says "Could you"), unless it is only the interrupted line said again (`recited`, the words the caller
    heard of it): text that may still be that line is held back until it turns into something else, and
    dropped if the mark follows (the 1.5B, cut off after "Got", answered the caller's next line with "Got
    ... [cut off]", and the caller heard "Got" and nothing more). `seen` says the reply was cut short."""

    def __init__(self, recited: str = "") -> None:
        # the note that stands for a cut-off line in the prompt is one more mark: the 1.5B read an
        # earlier Italian one aloud ('Ti ha interrotto dopo: "..."') in 2 of 8 Italian cut-off stories
        self._marks = MarkerFilter(*CUT_OFF_MARKS, *_NOTE_LEADS)
        self._recited = _plain(recited)
        self._holding = bool(self._recited)
        self._held = ""

    @property
    def seen(self) -> bool:
        return self._marks.seen

    def feed(self, text: str) -> str:
        return self._hold(self._marks.feed(text))

    def flush(self) -> str:
        text = self._hold(self._marks.flush())
        held, self._held, self._holding = self._held, "", False
        return held + text  # the stream ended on the interrupted line's words, with no mark: they stand

    def _hold(self, text: str) -> str:
        if not self._holding:
            return text
        self._held += text
        if self._recited.startswith(_plain(self._held)):
            if self.seen:
                self._held, self._holding = "", False
            return ""
        held, self._held, self._holding = self._held, "", False
        return held


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()


def interrupted_words(story: Sequence[Line]) -> str:
    """The words the caller heard of the bot's last line, when they cut it off; "" otherwise."""
    last = next((line.text for line in reversed(story) if line.role == "bot"), "")
    return cut_off_words(last) or ""


_GREETING_WORDS = ("hello|hi|hey|thanks|thank you|sure|okay|ok|got it|yes|no|right|great|perfect|of course|"
                   "certainly|understood|alright|all right|good morning|good afternoon|good evening|"
                   "ciao|salve|buongiorno|buonasera|pronto|grazie|certo|va bene|sì|d'accordo|perfetto|"
                   "benissimo|capito")
_GREETING = re.compile(rf"\b(?:{_GREETING_WORDS})\b", re.IGNORECASE)


class OwnerNameFilter:
    """Takes the owner's name out of streamed reply text where it addresses the caller: after a greeting
    word ("Thank you, Marco." -> "Thank you."; "Sure, Marco's phone, ..." -> "Sure, ...") or opening a
    sentence ("Marco, the parcel came." -> "The parcel came."). Small reply models take the caller for
    the owner whose phone they answer. The name in any other place ("Marco will call you back") is left
    alone. Text that could still become such a name is held back until the next piece decides. Off
    when the caller has the owner's first name."""

    def __init__(self, owner_name: str, caller_name: str = "") -> None:
        first = (owner_name.split(maxsplit=1) or [""])[0]
        self._on = bool(first) and first.lower() != (caller_name.split(maxsplit=1) or [""])[0].lower()
        names = sorted({owner_name.strip(), first}, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        # after a greeting word: the name, then the greeting's own punctuation, which stays
        self._greeted = re.compile(rf"\s*,?\s*(?:{alternatives})(?:'s phone)?(?=\s*[,.!?;:])", re.IGNORECASE)
        self._greeted_forms = [f"{comma}{n}{tail}".lower() for n in names for comma in (", ", " ", ",")
                               for tail in ("", "'s phone")]
        # opening a sentence: the name and its comma, before the sentence's first word
        self._opening = re.compile(rf"(?:{alternatives})\s*,\s*(?=\w)", re.IGNORECASE)
        self._opening_forms = [f"{n}, ".lower() for n in names]
        self._before = ""  # the end of what was let through
        self._started = False  # anything let through yet
        self._held = ""

    def feed(self, text: str) -> str:
        if not self._on:
            return text
        text = self._cut(self._held + text)
        hold = self._holdable(text)
        out, self._held = text[:len(text) - hold], text[len(text) - hold:]
        self._before = (self._before + out)[-40:]
        self._started = self._started or bool(out)
        return out

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        held, self._held = self._held, ""
        return held

    def _sites(self, text: str) -> list[tuple[int, bool]]:
        """Where in `text` the name could begin to address the caller, in order: (position, whether it
        opens a sentence rather than follows a greeting word)."""
        released = len(self._before)
        joined = self._before + text
        sites = [(m.end() - released, False) for m in _GREETING.finditer(joined) if m.end() >= released]
        sites += [(m.end() - released, True) for m in re.finditer(r"[.!?]\s+", joined) if m.end() >= released]
        if not self._started:
            sites.append((0, True))
        return sorted(set(sites))

    def _cut(self, text: str) -> str:
        for at, opens in reversed(self._sites(text)):
            found = (self._opening if opens else self._greeted).match(text, at)
            if found:
                rest = text[found.end():]
                if opens:
                    rest = rest[:1].upper() + rest[1:]
                text = text[:at] + rest
        return text

    def _holdable(self, text: str) -> int:
        for at, opens in self._sites(text):
            rest = text[at:].lower()
            forms = self._opening_forms if opens else self._greeted_forms
            if rest and any(form.startswith(rest) for form in forms):
                return len(text) - at
        return 0


def may_end_call(story: Sequence[Line], context: CallContext) -> bool:
    """Whether a reply to `story` may end the call: the caller has closed it (`caller_closed`: thanks,
    goodbye, "no" to "anything else?"), or the owner has sales calls ended, which the model judges. A small
    model ends calls mid-message otherwise: the 1.5B wrote the end mark in 18 of its 85 first replies to the
    scenario callers (benchmarks/reply_quality.json), 15 of them after lines that closed nothing ("The
    delivery address is forty two Rosewood Avenue, flat three, ..."), and the caller's next pause would
    have been hung up on."""
    return context.end_on_sales or caller_closed(story, context.language)


class ReplyText:
    """A streamed reply's text on its way to the caller, through every filter in order: the end-call
    marker (the reply ends, and so does the call where `may_end`), the story's cut-off mark (the reply
    ends), the owner's name where it addresses the caller. Both reply engines read their stream through
    one."""

    def __init__(self, names: OwnerNameFilter, may_end: bool = True, recited: str = "") -> None:
        self._markers, self._recited, self._names = MarkerFilter(), CutOffFilter(recited), names
        self.may_end = may_end  # see may_end_call

    @classmethod
    def answering(cls, story: Sequence[Line], context: CallContext) -> ReplyText:
        """The filters of a reply to `story`."""
        return cls(OwnerNameFilter(context.owner_name, context.caller_name), may_end_call(story, context),
                   interrupted_words(story))

    @property
    def end_call(self) -> bool:
        """The model wrote the end-call marker where the call may end."""
        return self._markers.seen and self.may_end

    @property
    def done(self) -> bool:
        """Nothing more of the stream can reach the caller: read no further."""
        return self._markers.seen or self._recited.seen

    def feed(self, delta: str) -> str:
        return self._names.feed(self._recited.feed(self._markers.feed(delta)))

    def flush(self) -> str:
        """What the filters still hold, at the end of the stream."""
        held = self._recited.feed(self._markers.flush()) + self._recited.flush()
        return self._names.feed(held) + self._names.flush()
