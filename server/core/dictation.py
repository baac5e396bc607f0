"""A phone number being dictated (DESIGN.md §2 rules 4 and 11): heard, judged complete, read back.

Callers dictate numbers in groups with pauses between them ("three four seven ... one two three ...").
A pause inside a number is not the end of the caller's turn, and a number once heard is read back once,
in groups, so the caller can put it right. The rules, pure (no clock, no I/O):

1. What counts. Digits come as numerals ("347 123"), as words in the call's language (English: "three
   four seven", "oh" for zero next to other digits, "double five", "twenty-one", "eight hundred";
   Italian: "tre quattro sette", "doppio cinque", "trentaquattro"), with "plus"/"più" or "00" before a
   country code, and from the keypad. They gather across the caller's consecutive lines (everything
   since the bot last spoke). Fillers ("uh", "and", "ehm", "poi") go unnoticed; any other word ends the
   number, as does "#" on the keypad.
2. When it is a dictation. A run of digits is a number being dictated when a word like "number" or
   "numero" was said (by the caller, or by the bot's last line, which asked for it; not "number 8",
   an address), when it began with a country code, or when it comes as three or more groups (each key
   pressed is one) or six or more digits. Anything less ("at 10.30", "two things", a lone key) is
   ordinary talk, decided as usual. The latest run that is a dictation is the number.
3. When it is complete: the numbering plan says so for the region (the call's options carry both; the
   runtime's plan is `phonenumbers`, server/numbering.py), never a digit count of ours. Too short to be
   a valid number, and nothing said after it: the caller is mid-number (SHORT: hold the floor, long
   backstop). Valid, shorter than the region's example number of its kind, and a longer number would
   be valid too (Italy's numbers run from 6 to 11 digits): the caller may go on (MAYBE: hold the floor
   for the ordinary backstop). Valid otherwise, or followed by other words or "#", or the backstop
   fired on a number of a possible length: DONE, read it back. Too short when it ended: not a number.
   An "extension"/"interno" just said keeps it at MAYBE.
4. The read-back is the plan's national format (international when the caller gave a country code
   other than the region's), each group spoken digit by digit in the call's language.

Without a region (an English-speaking owner who set none), a number without a country code cannot be
judged: it is MAYBE while it goes on, and DONE when the caller ends it or the backstop fires. Without a
plan (a core built bare, as in tests of other things) no number can be judged, with a country code or
without: none is called complete while the caller may still be saying it. Each is MAYBE while it goes
on and DONE once the caller ends it or the backstop fires, read back in threes as it was given.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DictationOptions", "Fit", "NumberingPlan", "PlanNumber", "Reading", "Status", "denies", "digits_said",
    "expects_digits", "read_lines", "spell",
]


class Fit(enum.StrEnum):
    """How digits fit the numbering plan of their country."""

    VALID = "valid"  # a number the plan has
    POSSIBLE = "possible"  # of a length some number of that country has, but not one the plan has
    TOO_SHORT = "too short"
    TOO_LONG = "too long"
    OTHER = "other"  # no such country code, or a length between those the country's numbers have


class PlanNumber(Protocol):
    """Digits as a numbering plan reads them."""

    @property
    def fit(self) -> Fit: ...

    @property
    def country_code(self) -> int: ...

    def usual_length(self) -> bool:
        """Whether it is as long as its country's example number of its kind (mobile, fixed line...)."""
        ...

    def e164(self) -> str: ...

    def national(self) -> str:
        """As dialled inside its country, in the plan's groups: "020 7946 0958"."""
        ...

    def international(self) -> str:
        """With its country code, in the plan's groups: "+44 20 7946 0958"."""
        ...


class NumberingPlan(Protocol):
    """What dictation needs to know of the world's phone numbers."""

    def parse(self, digits: str, region: str) -> PlanNumber | None:
        """`digits` ("+" first when they begin with a country code) as a number of `region` (ISO 3166;
        "" when they carry their own country code), or None when they cannot be read as one."""
        ...

    def country_code(self, region: str) -> int:
        """The calling code of `region` ("IT" -> 39)."""
        ...


@dataclass(frozen=True, slots=True)
class DictationOptions:
    language: str = "en"  # the call's language: which number words count, and how they are read back
    region: str = ""  # ISO 3166 country for numbers said without a country code ("" = none known)
    enabled: bool = True
    plan: NumberingPlan | None = None  # None: no number is judged complete while it goes on


class Status(enum.StrEnum):
    NONE = "none"  # no number being dictated
    SHORT = "short"  # too short to be a number yet, and the caller has not ended it
    MAYBE = "maybe"  # may be complete, or the caller may go on: wait the ordinary backstop
    DONE = "done"  # complete: read it back


@dataclass(frozen=True, slots=True)
class Reading:
    status: Status
    digits: str = ""  # as dictated: digits, "+" first when a country code was said
    number: str = ""  # E.164 when the plan can tell, else the digits
    groups: tuple[str, ...] = ()  # as it is read back: ("347", "123", "4567"), ("+44", "20", ...)
    cued: bool = False  # a number was asked for or spoken of before these digits


# --------------------------------------------------------------------------- words

_END = ""  # an item that ends a number: a word that is not a digit
_PLUS = "+"
_MORE = "..."  # a word that ends a number and says more digits follow ("extension")
_CUE = "?"  # a word that ends a number and says one is coming ("number")


@dataclass(frozen=True, slots=True)
class _Words:
    digits: dict[str, str]  # single-digit words
    numbers: dict[str, str]  # words for 10-99
    tens: dict[str, str]  # twenty..ninety: a following unit word makes them one number
    zero_next_to_digits: frozenset[str]  # "oh": zero only beside other digits
    between_digits: dict[str, str]  # a word STT writes for a digit it misheard ("0 to 0"), there only
    repeat: dict[str, int]  # double, triple
    hundred: frozenset[str]
    plus: frozenset[str]
    fillers: frozenset[str]
    cues: frozenset[str]  # words that say a number is coming
    asks: frozenset[str]  # words in the bot's line that ask for one ("phone" alone names the owner's)
    codes: frozenset[str]  # words that make the number asked for a code, not a phone number
    more: frozenset[str]  # words after a number that say more digits follow
    no: frozenset[str]  # a first word that denies a read-back
    spoken: tuple[str, ...]  # 0-9 as the read-back says them
    plus_spoken: str


def _english() -> _Words:
    units = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    teens = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
             "eighteen", "nineteen")
    tens = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
    return _Words(
        digits={w: str(i) for i, w in enumerate(units)} | {"nought": "0"},
        numbers={w: str(10 + i) for i, w in enumerate(teens)},
        tens={w: str(20 + 10 * i) for i, w in enumerate(tens)},
        zero_next_to_digits=frozenset({"oh", "o"}),
        between_digits={"to": "2", "too": "2", "for": "4", "ate": "8", "won": "1"},
        repeat={"double": 2, "triple": 3},
        hundred=frozenset({"hundred"}),
        plus=frozenset({"plus"}),
        fillers=frozenset({"uh", "um", "umm", "er", "erm", "ah", "hmm", "mm", "and", "then", "dash",
                           "hyphen"}),
        cues=frozenset({"number", "numbers", "phone", "telephone", "mobile", "cell", "cellphone",
                        "landline", "digits"}),
        asks=frozenset({"number", "numbers", "digits"}),
        codes=frozenset({"reference", "order", "account", "invoice", "tracking", "booking", "customer",
                         "policy", "ticket", "case", "membership", "code", "pin", "serial"}),
        more=frozenset({"extension", "ext"}),
        no=frozenset({"no", "nope", "wrong", "incorrect", "not"}),
        spoken=units,
        plus_spoken="plus",
    )


def _italian() -> _Words:
    units = ("zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove")
    teens = ("dieci", "undici", "dodici", "tredici", "quattordici", "quindici", "sedici", "diciassette",
             "diciotto", "diciannove")
    tens = ("venti", "trenta", "quaranta", "cinquanta", "sessanta", "settanta", "ottanta", "novanta")
    numbers = {w: str(10 + i) for i, w in enumerate(teens)}
    for i, ten in enumerate(tens):
        value = 20 + 10 * i
        numbers[ten] = str(value)
        for unit in range(1, 10):
            word = units[unit]
            # "ventuno", "trentotto": the ten loses its vowel before a vowel; "ventitré" takes an accent
            stem = ten[:-1] if word[0] in "uo" else ten
            numbers[stem + word] = str(value + unit)
            if word == "tre":
                numbers[stem + "tré"] = str(value + unit)
    return _Words(
        digits={w: str(i) for i, w in enumerate(units)} | {"tré": "3"},
        numbers=numbers,
        tens={},
        zero_next_to_digits=frozenset(),
        between_digits={},
        repeat={"doppio": 2, "doppia": 2, "triplo": 3, "tripla": 3},
        hundred=frozenset(),
        plus=frozenset({"più", "piu"}),
        fillers=frozenset({"ehm", "eh", "ehh", "mh", "mmh", "e", "poi", "allora", "trattino"}),
        cues=frozenset({"numero", "numeri", "telefono", "cellulare", "cell", "fisso", "cifre"}),
        asks=frozenset({"numero", "numeri", "cifre"}),
        codes=frozenset({"riferimento", "ordine", "conto", "fattura", "pratica", "cliente", "prenotazione",
                         "spedizione", "codice", "polizza", "tessera", "matricola", "contratto", "pin"}),
        more=frozenset({"interno"}),
        no=frozenset({"no", "sbagliato", "sbagliata", "non"}),
        spoken=units,
        plus_spoken="più",
    )


_LANGUAGES = {"en": _english(), "it": _italian()}


def _base(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-")[0]


def _words(language: str) -> _Words:
    return _LANGUAGES.get(_base(language), _LANGUAGES["en"])


# --------------------------------------------------------------------------- one line's items

_TOKEN = re.compile(r"\+|[0-9]+|[^\W\d_]+(?:['’][^\W\d_]+)*|[,.;:!?]", re.UNICODE)
_PUNCTUATION = frozenset(",.;:!?")


@dataclass(frozen=True, slots=True)
class _Line:
    items: tuple[str, ...]  # digits, _PLUS, _END, _MORE or _CUE

    @property
    def cue(self) -> bool:
        return _CUE in self.items


def _is_digit_token(token: str, w: _Words) -> bool:
    return token.isdigit() or token in w.digits or token in w.numbers or token in w.tens


def _scan(text: str, w: _Words) -> _Line:
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    items: list[str] = []

    def digit_before() -> bool:
        return bool(items) and items[-1].isdigit()

    i = 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        i += 1
        if token in _PUNCTUATION:
            if token == ":":
                items.append(_END)  # 10:30 is a time
            continue
        if token.isdigit():
            items.append(token)
        elif token in w.digits:
            items.append(w.digits[token])
        elif token in w.numbers:
            items.append(w.numbers[token])
        elif token in w.tens:
            if after in w.digits and w.digits[after] != "0":
                items.append(w.tens[token][0] + w.digits[after])
                i += 1
            else:
                items.append(w.tens[token])
        elif token in w.zero_next_to_digits and (digit_before() or _is_digit_token(after, w)):
            items.append("0")
        elif token in w.between_digits and digit_before() and _is_digit_token(after, w):
            items.append(w.between_digits[token])
        elif token in w.repeat and (after in w.digits or (after.isdigit() and len(after) == 1)):
            items.append(w.digits.get(after, after) * w.repeat[token])
            i += 1
        elif token in w.hundred and digit_before():
            items[-1] += "00"
        elif token == _PLUS or (token in w.plus and _is_digit_token(after, w)):
            items.append(_PLUS)
        elif token in w.fillers:
            continue
        elif token in w.more:
            items.append(_MORE)
        elif token in w.cues and not _is_digit_token(after, w):  # not "number 8": an address, an item
            items.append(_CUE)
        else:
            items.append(_END)
    return _Line(tuple(items))


def digits_said(text: str, language: str = "en") -> str:
    """Every digit in `text`, numerals and number words alike, in order ("tre 4 sette" -> "347")."""
    return "".join(d for d in _scan(text, _words(language)).items if d.isdigit())


def denies(text: str, language: str = "en") -> bool:
    """Whether a caller's line opens with a "no" (to a read-back)."""
    tokens = [t.lower() for t in _TOKEN.findall(text) if t not in _PUNCTUATION]
    return bool(tokens) and tokens[0] in _words(language).no


# --------------------------------------------------------------------------- the number so far


@dataclass(frozen=True, slots=True)
class _Span:
    digits: str
    groups: int
    cue: bool  # "number" was said since the run before it
    open: bool  # nothing that ends a number came after it
    more: bool  # the last thing said was "extension": more digits are coming


def _spans(items: Sequence[str], cue: bool) -> list[_Span]:
    """The runs of digits in `items` (each with a "+" just before it), oldest first; `cue`: a number
    was asked for before them."""
    spans: list[_Span] = []
    run: list[str] = []
    for i, item in enumerate([*items, _END]):
        if item.isdigit():
            run.append(item)
            continue
        if run:
            first = i - len(run)
            plus = _PLUS if first > 0 and items[first - 1] == _PLUS else ""
            rest = items[i:]
            ended = any(x in (_END, _MORE, _CUE) for x in rest)
            more = bool(rest) and rest[-1] == _MORE
            spans.append(_Span(plus + "".join(run), len(run), cue, not ended, more))
            run, cue = [], False
        cue = cue or item == _CUE
    return spans


def _parse(plan: NumberingPlan, digits: str, region: str) -> PlanNumber | None:
    """`digits` as a number of `region` (or of its country code), None when they cannot be read."""
    if digits.startswith("00") and not region:
        digits = "+" + digits[2:]
    if not digits.startswith("+") and not region:
        return None
    return plan.parse(digits, "" if digits.startswith("+") else region)


def _may_go_on(plan: NumberingPlan, digits: str, region: str) -> bool:
    """Whether some longer number that starts with `digits` is valid too."""
    for d in "0123456789":
        longer = _parse(plan, digits + d, region)
        if longer is not None and longer.fit is Fit.VALID:
            return True
    return False


def _chunks(digits: str) -> list[str]:
    """A lump of digits as groups of three, the last of four rather than leave one digit alone."""
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2:] = [groups[-2] + groups[-1]]
    return groups


def _groups(number: PlanNumber | None, digits: str, home: int) -> tuple[str, ...]:
    """How `digits` are read back: `number` in its plan's groups, or without one in threes; `home` is
    the calling code of the caller's region (0: none)."""
    if number is None:
        plus = [_PLUS] if digits.startswith("+") else []
        return (*plus, *_chunks(digits.lstrip("+")))
    international = digits.startswith(("+", "00")) or number.country_code != home
    written = number.international() if international else number.national()
    out: list[str] = []
    for group in re.findall(r"\+?\d+", written):
        out += [group] if len(group.lstrip("+")) <= 4 else _chunks(group)
    return tuple(out)


def _reading(span: _Span, options: DictationOptions, final: bool) -> Reading:
    region, plan = options.region, options.plan
    going_on = span.open and not final
    number = _parse(plan, span.digits, region) if plan is not None else None
    if plan is None or number is None:
        if plan is not None and (region or span.digits.startswith(("+", "00"))):  # not a number, so far
            return Reading(Status.SHORT if going_on else Status.NONE, span.digits, cued=span.cue)
        status = Status.MAYBE if going_on or (span.more and not final) else Status.DONE
        return Reading(status, span.digits, span.digits, _groups(None, span.digits, 0), cued=span.cue)
    fit = number.fit
    if fit is Fit.VALID:
        status = Status.DONE
        if going_on and not number.usual_length() and _may_go_on(plan, span.digits, region):
            status = Status.MAYBE
    elif fit is Fit.TOO_LONG:
        status = Status.DONE  # past any number's length: read it back so the caller can put it right
    elif going_on:
        status = Status.SHORT
    elif fit is Fit.POSSIBLE:
        status = Status.DONE
    else:
        return Reading(Status.NONE, span.digits)
    if status is Status.DONE and span.more and not final:
        status = Status.MAYBE  # "... extension": let them say it before reading back
    home = plan.country_code(region) if region else 0
    return Reading(status, span.digits, number.e164(), _groups(number, span.digits, home), cued=span.cue)


def _since_bot(lines: Sequence[tuple[str, str]]) -> tuple[int, set[str]]:
    """Where the caller's lines since the bot last spoke begin, and the words of that bot line."""
    start = next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i][0] != "caller"), 0)
    return start, {t.lower() for t in _TOKEN.findall(lines[start - 1][1])} if start > 0 else set()


def expects_digits(lines: Sequence[tuple[str, str]], keys: Sequence[tuple[int, str]],
                   options: DictationOptions, *, asked: bool = False) -> bool:
    """Whether the caller's next words are likely digits: a number is being dictated and may go on, the
    caller's words end announcing one ("my number is"), or the bot's last line asked for one (`asked`:
    it read one back, which the caller may correct) and none has been given since. Told to expect
    digits, whisper writes them more faithfully (`server/runtime.py`, DIGITS_HINT)."""
    if not options.enabled:
        return False
    reading = read_lines(lines, keys, options, asked=asked)
    if reading.status in (Status.SHORT, Status.MAYBE):
        return True
    w = _words(options.language)
    start, bot = _since_bot(lines)
    said = [item for _, text in lines[start:] for item in _scan(text, w).items]
    last_cue = max((i for i, item in enumerate(said) if item == _CUE), default=-1)
    if last_cue >= 0 and not any(item.isdigit() for item in said[last_cue:]):
        return True  # "my number is", and no digit yet
    given = reading.status is not Status.NONE or any(item.isdigit() for item in said)
    return (asked or bool(bot & w.asks)) and not given


def read_lines(lines: Sequence[tuple[str, str]], keys: Sequence[tuple[int, str]],
               options: DictationOptions, *, asked: bool = False, final: bool = False) -> Reading:
    """The number being dictated in the caller's `lines` since the bot last spoke.

    `lines`: the call's story as (role, text), oldest first. `keys`: keypad presses as (position, key),
    position being how many lines the story had when it was pressed. `asked`: the bot's last line was a
    read-back, so whatever digits follow are a number (a correction). `final`: the caller has stopped
    (the backstop fired): a number still open is as complete as it will get."""
    if not options.enabled:
        return Reading(Status.NONE)
    w = _words(options.language)
    start, bot = _since_bot(lines)
    asked = asked or bool(bot & w.asks)
    if bot & w.asks and bot & w.codes:  # "do you have a reference number?": digits of no phone plan
        options = dataclasses.replace(options, plan=None, region="")
    items: list[str] = []
    pressed = sorted((k for k in keys if k[0] >= start), key=lambda k: k[0])

    def press(until: int) -> None:
        while pressed and pressed[0][0] <= until:
            key = pressed.pop(0)[1]
            if key.isdigit():
                items.append(key)
            elif key == "+":
                items.append(_PLUS)
            else:
                items.append(_END)  # "#" ends the number, "*" too

    for i in range(start, len(lines)):
        press(i)
        items += _scan(lines[i][1], w).items
    press(max(len(lines), pressed[-1][0]) if pressed else 0)
    for span in reversed(_spans(items, asked)):
        if span.cue or span.digits.startswith("+") or span.groups >= 3 or len(span.digits) >= 6:
            reading = _reading(span, options, final)
            if reading.status is not Status.NONE:
                return reading
    return Reading(Status.NONE)


def spell(reading: Reading, language: str) -> str:
    """`reading`'s groups spoken digit by digit: "three four seven, one two three, four five six seven"."""
    w = _words(language)
    out = []
    for group in reading.groups:
        words = [w.plus_spoken] if group.startswith(_PLUS) else []
        words += [w.spoken[int(d)] for d in group.lstrip(_PLUS)]
        out.append(" ".join(words))
    return ", ".join(out)
