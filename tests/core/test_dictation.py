"""Phone numbers dictated to the bot: the parser, completeness by region, and the core holding the floor
between digit groups and reading the number back once (server/core/dictation.py). Completeness is judged
by the numbering plan a configured call gets (server/numbering.py), or by none."""

from __future__ import annotations

from typing import TypeVar

import pytest

from server.core import events as ev
from server.core.conversation import CallOptions, Conversation, ConversationOptions
from server.core.dictation import (
    DictationOptions,
    Reading,
    Status,
    denies,
    digits_said,
    expects_digits,
    read_lines,
    spell,
)
from server.core.phrases import PHRASES
from server.numbering import PhoneNumbersPlan

W = 512
PLAN = PhoneNumbersPlan()
IT = DictationOptions("it", "IT", plan=PLAN)
GB = DictationOptions("en", "GB", plan=PLAN)
US = DictationOptions("en", "US", plan=PLAN)
NO_REGION = DictationOptions("en", "", plan=PLAN)
NO_PLAN = DictationOptions("en", "GB")


C = TypeVar("C", bound=ev.Command)


def of(kind: type[C], commands: list[ev.Command]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


def read(options: DictationOptions, *lines: str, final: bool = False) -> tuple[Status, str]:
    r = read_lines([("caller", line) for line in lines], [], options, final=final)
    return r.status, r.number


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(("text", "language", "digits"), [
    ("three four seven", "en", "347"),
    ("oh two oh, seven nine four six", "en", "0207946"),
    ("double five, triple two", "en", "55222"),
    ("twenty-one forty six", "en", "2146"),
    ("one eight hundred", "en", "1800"),
    ("347-123-4567", "en", "3471234567"),
    ("three 4 seven, 123", "en", "347123"),
    ("tre quattro sette", "it", "347"),
    ("zero due, doppio cinque", "it", "0255"),
    ("trentaquattro ventotto ventitré", "it", "342823"),
    ("tre 4 sette, 123", "it", "347123"),
    ("Oh, I see.", "en", ""),  # an interjection, not a zero
    ("tre o quattro", "it", "34"),  # "o" is "or" in Italian
    ("My number is 0 to 0, 7 9 4 6", "en", "0207946"),  # whisper's "to" between digits is a two
    ("three for five", "en", "345"),
    ("call me back for 3 4 5 to talk", "en", "345"),  # not between two digits: a word
])
def test_digits_as_words_and_numerals_in_english_and_italian(text: str, language: str, digits: str) -> None:
    assert digits_said(text, language) == digits


def test_a_country_code_is_kept_and_read_back_in_the_international_format() -> None:
    r = read_lines([("caller", "plus four four twenty, seventy-nine forty-six, oh nine five eight")], [], GB)
    assert (r.status, r.number) == (Status.DONE, "+442079460958")
    r = read_lines([("caller", "+44 20 7946 0958")], [], IT)
    assert r.groups == ("+44", "20", "7946", "0958")
    assert spell(r, "it") == "più quattro quattro, due zero, sette nove quattro sei, zero nove cinque otto"


def test_ordinary_talk_with_numbers_is_no_dictation() -> None:
    for text in ("I need three things.", "See you at 10.30 tomorrow", "at 10:30", "Oh.", "the wrong number"):
        assert read(GB, text)[0] is Status.NONE
    assert read(GB, "My number is three three three.")[0] is Status.SHORT  # "number" says one is coming
    assert read(IT, "Il mio numero è tre tre nove.")[0] is Status.SHORT


def test_an_address_is_no_number_and_an_extension_is_waited_for() -> None:
    assert read(GB, "The parcel is with the neighbour at number 8.")[0] is Status.NONE
    assert read(GB, "I'm Oliver, the new neighbour from number twelve")[0] is Status.NONE
    assert read(US, "The office number is 212 555 1234, extension")[0] is Status.MAYBE
    # the extension's digits are not part of the number, nor do they hide it
    assert read(US, "The office number is 212 555 1234, extension 12.") == (Status.DONE, "+12125551234")
    assert read(US, "My number is 212 555 1234, call after 5") == (Status.DONE, "+12125551234")


def test_denies() -> None:
    assert denies("No, it's 4568", "en") and denies("No, è 4568", "it")
    assert not denies("Yes.", "en") and not denies("Sì, giusto", "it") and not denies("", "it")


# --------------------------------------------------------------------------- completeness by region


def test_an_italian_mobile_is_short_after_two_groups_and_complete_at_the_end() -> None:
    assert read(IT, "347 123") == (Status.SHORT, "+39347123")
    assert read(IT, "tre quattro sette", "uno due tre")[0] is Status.SHORT
    assert read(IT, "347 123", "4567") == (Status.DONE, "+393471234567")
    # valid already, but shorter than Italy's example mobile and a digit more would be valid too
    assert read(IT, "347 123", "456") == (Status.MAYBE, "+39347123456")
    assert read(IT, "347 123", "456", final=True) == (Status.DONE, "+39347123456")
    assert read(IT, "347 123", "quarantacinque sessantasette. Grazie.") == (Status.DONE, "+393471234567")
    assert read(IT, "il numero è 3471, grazie") == (Status.NONE, "")  # ended too short for any number
    assert read(IT, "347 123, grazie")[0] is Status.DONE  # a length some Italian numbers have: read back


def test_a_uk_and_a_us_number_are_complete_when_their_last_group_comes() -> None:
    assert read(GB, "oh two oh, seven nine four six")[0] is Status.SHORT
    assert read(GB, "oh two oh, seven nine four six", "oh nine five eight") == (Status.DONE, "+442079460958")
    assert read(US, "two one two, five five five")[0] is Status.SHORT
    assert read(US, "212 555", "1234") == (Status.DONE, "+12125551234")


def test_without_a_region_the_caller_ends_the_number() -> None:
    assert read(NO_REGION, "My number is 555 0100")[0] is Status.MAYBE  # it may go on: the ordinary backstop
    assert read(NO_REGION, "My number is 555 0100, thanks")[0] is Status.DONE
    assert read(NO_REGION, "My number is 555 0100", final=True) == (Status.DONE, "5550100")


def test_without_a_plan_no_number_is_complete_until_the_caller_ends_it() -> None:
    # with the plan, GB: too short, then complete; without it, neither can be told
    assert read(NO_PLAN, "oh two oh, seven nine four six")[0] is Status.MAYBE
    assert read(NO_PLAN, "oh two oh, seven nine four six", "oh nine five eight")[0] is Status.MAYBE
    said = [("caller", "oh two oh, seven nine four six, oh nine five eight")]
    r = read_lines(said, [], NO_PLAN, final=True)
    assert (r.status, r.number, r.groups) == (Status.DONE, "02079460958", ("020", "794", "609", "58"))
    r = read_lines([("caller", "plus four four 20 7946 0958, thanks")], [], NO_PLAN)
    assert (r.status, r.number, r.groups) == (Status.DONE, "+442079460958", ("+", "442", "079", "460", "958"))
    assert spell(r, "en").startswith("plus, four four two, zero seven nine")


@pytest.mark.parametrize(("lines", "expected"), [
    ([("bot", "What number can he call you back on?")], True),
    ([("bot", "What number can he call you back on?"), ("caller", "Sure, it's")], True),
    ([("bot", "What number can he call you back on?"), ("caller", "three four seven,")], True),
    ([("bot", "Could I get a number?"), ("caller", "It's 212 555 1234.")], False),  # given, to be read back
    ([("bot", "Hello, how can I help?"), ("caller", "Please ask him to call me on")], False),
    ([("bot", "Hello, how can I help?"), ("caller", "My number is")], True),
    ([("bot", "Hello, how can I help?"), ("caller", "You can reach me on two one two,")], True),
    ([("bot", "Hello, how can I help?"), ("caller", "Tell him the car is ready.")], False),
    ([("bot", "Do you have a reference number?")], True),
    ([], False),
])
def test_the_next_words_are_expected_to_be_digits_while_a_number_is_asked_for_or_under_way(
        lines: list[tuple[str, str]], expected: bool) -> None:
    assert expects_digits(lines, [], US) is expected


def test_after_a_read_back_a_correction_may_come_and_no_number_is_expected_when_dictation_is_off() -> None:
    lines = [("caller", "two one two five five five one two three four"), ("bot", "Let me read that back.")]
    assert expects_digits(lines, [], US, asked=True)
    assert not expects_digits(lines, [], US)
    asked = [("bot", "What number can he call you back on?")]
    assert not expects_digits(asked, [], DictationOptions("en", "US", enabled=False))


# --------------------------------------------------------------------------- the core


class Call:
    """A core driven by hand on a continuous run of VAD windows."""

    def __init__(self, dictation: DictationOptions, language: str = "en") -> None:
        call = CallOptions(greeting="", readback=PHRASES[language]["readback"])
        self.c = Conversation(ConversationOptions(call=call, dictation=dictation))
        self.c.handle(ev.CallStarted(0.0))
        self.i = 0

    @property
    def t(self) -> float:
        return self.i * W / 16000

    def windows(self, probs: list[float]) -> list[ev.Command]:
        out: list[ev.Command] = []
        for p in probs:
            out += self.c.handle(ev.VadWindow((self.i + 1) * W / 16000, self.i * W, (self.i + 1) * W, p))
            self.i += 1
        return out

    def line(self, text: str) -> list[ev.Command]:
        """The caller says `text`; its transcript lands 96 ms into the pause, which then goes on."""
        out = self.windows([0.02] * 5 + [0.9] * 20 + [0.02] * 3)
        [t] = of(ev.Transcribe, out)
        out += self.c.handle(ev.TranscriptReady(self.t, t.job, text))
        return out + self.windows([0.02] * 20)

    def key(self, digit: str) -> list[ev.Command]:
        self.windows([0.02] * 10)
        return self.c.handle(ev.Dtmf(self.t, digit))

    def fire(self, name: str, out: list[ev.Command]) -> list[ev.Command]:
        [timer] = [x for x in of(ev.StartTimer, out) if x.name == name]
        return self.c.handle(ev.TimerFired(timer.at, timer.name))

    def play(self, out: list[ev.Command]) -> list[ev.Command]:
        """Synthesise and play to its end every utterance `out` asked for."""
        more: list[ev.Command] = []
        samples: dict[int, int] = {}
        for s in of(ev.Synthesize, out):
            words = tuple(ev.Word(w, i * 1600, (i + 1) * 1600) for i, w in enumerate(s.text.split()))
            more += self.c.handle(ev.SpeechReady(self.t, s.job, len(words) * 1600, words))
            more += self.c.handle(ev.SynthesisDone(self.t, s.job))
            samples[s.utterance] = samples.get(s.utterance, 0) + len(words) * 1600
        for utterance, n in samples.items():
            more += self.c.handle(ev.PlayoutProgress(self.t, utterance, 0, n))
        self.windows([0.02] * 10)
        return more


def spoken(out: list[ev.Command]) -> str:
    return " ".join(s.text for s in of(ev.Synthesize, out))


def held(out: list[ev.Command]) -> bool:
    """The floor stays with the caller: no judge, no reply, nothing said."""
    return not of(ev.Judge, out) and not of(ev.Reply, out) and not of(ev.Synthesize, out)


def test_fragments_are_heard_as_digits_once_a_number_is_under_way() -> None:
    call = Call(US)
    first = call.line("Hello, it's Anna, my number is two one two")
    second = call.line("five five five")
    third = call.line("one two three four.")
    readback = call.fire("readback", third)
    call.play(readback)
    after = call.line("Yes, thanks.")
    assert [t.digits for out in (first, second, third, after) for t in of(ev.Transcribe, out)] == [
        False, True, True, True]  # the last: a read-back may be corrected


def test_the_floor_is_held_between_digit_groups_and_the_number_read_back_once_in_groups() -> None:
    call = Call(US)
    first = call.line("My number is two one two")
    assert held(first)
    [backstop] = [x for x in of(ev.StartTimer, first) if x.name == "backstop"]
    assert backstop.at == pytest.approx(25 * W / 16000 + 4.0)  # the longer backstop, from the pause
    assert held(call.line("five five five"))
    last = call.line("one two three four.")
    assert held(last)  # not yet: the answer waits the minimum gap into the pause
    readback = call.fire("readback", last)
    assert spoken(readback) == ("Let me read that back: two one two, five five five, one two three four. "
                                "Is that right?")
    assert [(d["verdict"], d["by"]) for d in call.c.decisions] == [
        ("WAIT", "dictation"), ("WAIT", "dictation"), ("COMPLETE", "dictation")]
    assert call.c.handle(ev.TimerFired(backstop.at, backstop.name)) == []  # the first group's timer is stale
    call.play(readback)
    out = call.line("Yes.")
    assert of(ev.Judge, out) and not of(ev.Synthesize, out)  # a yes: the conversation goes on as usual
    assert call.c.report()["dictated_number"] == "+12125551234"


def test_an_italian_call_reads_back_in_italian() -> None:
    call = Call(IT, "it")
    assert held(call.line("Il mio numero è tre quattro sette"))
    assert held(call.line("uno due tre"))
    out = call.fire("readback", call.line("quattro cinque sei sette"))
    assert spoken(out) == ("Le rileggo il numero: tre quattro sette, uno due tre, quattro cinque sei sette. "
                           "È corretto?")


def test_a_number_that_may_go_on_is_read_back_after_the_ordinary_backstop() -> None:
    call = Call(IT, "it")
    assert held(call.line("Il mio numero è 347 123"))
    last = call.line("456")
    assert held(last)
    [backstop] = [x for x in of(ev.StartTimer, last) if x.name == "backstop"]
    assert backstop.at == pytest.approx((call.i - 23) * W / 16000 + 2.0)
    out = call.fire("backstop", last)
    assert spoken(out).startswith("Le rileggo il numero: tre quattro sette, uno due tre, quattro cinque sei.")


def test_a_correction_is_read_back_once_more_and_replaces_the_number() -> None:
    call = Call(IT, "it")
    call.line("Il mio numero è 347 123")
    out = call.fire("readback", call.line("4567"))
    call.play(out)
    correction = call.line("No, 347 123 4568")
    assert held(correction)
    again = call.fire("readback", correction)
    assert spoken(again).endswith("quattro cinque sei otto. È corretto?")
    call.play(again)
    assert of(ev.Judge, call.line("Sì, esatto."))
    assert call.c.report()["dictated_number"] == "+393471234568"


def test_a_no_without_digits_leaves_no_number_and_the_reply_model_answers() -> None:
    call = Call(GB)
    out = call.fire("readback", call.line("My number is 020 7946 0958"))
    assert "zero two zero, seven nine four six, zero nine five eight" in spoken(out)
    call.play(out)
    assert of(ev.Judge, call.line("No."))
    assert call.c.report()["dictated_number"] is None


def test_the_same_number_said_again_after_the_read_back_is_not_read_back_twice() -> None:
    call = Call(GB)
    out = call.fire("readback", call.line("My number is 020 7946 0958"))
    call.play(out)
    again = call.line("Yes, 020 7946 0958.")
    assert of(ev.Judge, again) and not of(ev.Synthesize, again)
    assert call.c.report()["dictated_number"] == "+442079460958"


def test_keypad_digits_count_and_mix_with_spoken_ones() -> None:
    call = Call(GB)
    assert held(call.line("It's oh two oh"))
    for digit in "7946":
        assert held(call.key(digit))
    out = call.line("oh nine five")
    assert held(out)
    last = call.key("8")
    out = call.fire("readback", last)
    assert spoken(out) == ("Let me read that back: zero two zero, seven nine four six, zero nine five eight. "
                           "Is that right?")


def test_hash_ends_a_number_keyed_without_a_region() -> None:
    call = Call(NO_REGION)
    for digit in "5550100":
        assert held(call.key(digit))
    out = call.fire("readback", call.key("#"))
    assert "five five five, zero one zero zero" in spoken(out)


def test_without_a_plan_the_number_is_read_back_as_given_when_the_caller_stops() -> None:
    call = Call(NO_PLAN)
    out = call.line("My number is oh two oh, seven nine four six, oh nine five eight")
    assert held(out)
    out = call.fire("backstop", out)
    assert spoken(out) == ("Let me read that back: zero two zero, seven nine four, six zero nine, "
                           "five eight. Is that right?")


def test_ordinary_lines_are_judged_as_before() -> None:
    call = Call(GB)
    out = call.line("I need three things.")
    assert of(ev.Judge, out)
    assert call.c.decisions == []  # the judge's verdict decides, as ever


def test_a_number_asked_for_as_a_reference_is_a_code_of_no_phone_plan() -> None:
    def reading(bot: str, *lines: str, final: bool = False) -> Reading:
        return read_lines([("bot", bot), *(("caller", line) for line in lines)], [], IT, final=final)

    code = reading("Ha un numero di riferimento?", "Ecco, nove nove uno,", "quattro zero sette.")
    assert code.status is Status.MAYBE and code.cued  # the caller may go on; the ordinary backstop
    done = reading("Ha un numero di riferimento?", "nove nove uno, quattro zero sette.", final=True)
    assert (done.status, done.number, done.groups) == (Status.DONE, "991407", ("991", "407"))
    phone = reading("Mi lascia il suo numero?", "tre quattro sette, uno due tre")
    assert phone.status is Status.SHORT and phone.cued  # a phone number, asked for: the long backstop
    # a greeting that names the owner's phone asks for no number
    greeting = "Pronto, telefono di Marco, come posso aiutarla?"
    assert not reading(greeting, "tre quattro sette, uno due tre").cued


def test_digits_nobody_asked_for_are_held_with_the_ordinary_backstop() -> None:
    call = Call(US)
    assert held(call.line("nine nine one"))
    out = call.line("four oh seven.")
    assert held(out)
    [backstop] = [x for x in of(ev.StartTimer, out) if x.name == "backstop"]
    assert backstop.at == pytest.approx((call.i - 23) * W / 16000 + 2.0)  # perhaps a whole code
